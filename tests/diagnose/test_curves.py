"""Loss- and validation-curve rules on hand-built curves, with hand-computed evidence."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recsys.diagnose.config import DiagnoseConfig
from recsys.diagnose.curves import loss_divergence, loss_oscillation, loss_plateau, nan_loss
from recsys.diagnose.fitting import early_stop_unstable, overfitting, simulated_stop, underfitting
from recsys.diagnose.inputs import DiagnosisInputs
from tests.diagnose.builders import SPE, curves, epoch_rows, healthy_step_loss, healthy_val, metric

CFG = DiagnoseConfig()
CURVE_RULES = [nan_loss, loss_divergence, loss_plateau, loss_oscillation, overfitting, early_stop_unstable]


def run(rule, frame: pl.DataFrame, metrics=None) -> list:
    return rule(DiagnosisInputs(curves=frame, metrics=metrics).prepared(), CFG)


def per_epoch(values) -> np.ndarray:
    """A step-level loss that is constant within each epoch."""
    return np.repeat(np.asarray(values, dtype=np.float64), SPE)


@pytest.mark.parametrize("rule", CURVE_RULES)
@pytest.mark.parametrize("seed", range(4))
def test_healthy_curves_trigger_nothing(rule, seed):
    assert run(rule, curves("mf", healthy_step_loss(seed=seed), healthy_val(seed=seed))) == []


def test_nan_loss_is_critical_and_says_where_it_started():
    loss = healthy_step_loss()
    loss[57], loss[90] = np.nan, np.inf
    [f] = run(nan_loss, curves("mf", loss, epoch_loss=False))
    assert (f.code, f.severity, f.where["series"]) == ("NAN_LOSS", "critical", "train/loss")
    assert f.evidence == {"n_nonfinite": 2, "n_points": 200, "first_step": 57,
                          "last_finite_value": pytest.approx(loss[56])}


@pytest.mark.parametrize(("last", "severity", "rise"), [(4.8, "warning", 0.6), (9.0, "critical", 2.0)])
def test_loss_rising_over_its_minimum_is_divergence(last, severity, rise):
    loss = np.concatenate([np.full(50, 6.0), np.full(50, 3.0), np.full(50, last)])
    [f] = run(loss_divergence, curves("mf", loss))
    assert (f.code, f.severity, f.where["series"]) == ("LOSS_DIVERGENCE", severity, "train/loss")
    assert f.evidence["start"] == 6.0 and f.evidence["min"] == pytest.approx(3.0)
    assert f.evidence["final"] == pytest.approx(last) and f.evidence["rise"] == pytest.approx(rise)


def test_a_loss_that_climbs_back_above_its_start_is_critical_even_for_a_small_rise():
    loss = np.concatenate([np.full(50, 6.0), np.full(50, 4.0), np.full(50, 6.5)])   # rise 2.5/4 = 0.625
    [f] = run(loss_divergence, curves("mf", loss))
    assert f.severity == "critical" and f.evidence["rise"] == pytest.approx(0.625)


def test_a_loss_that_never_comes_down_below_its_start_is_divergence():
    # the shape of mf at lr 0.2 (20x the healthy rate): 5.37 at the start, 6.0 within a few steps,
    # then slowly down to 5.58, never below the start; measured 3.1-5.7% above it over four seeds
    loss = np.concatenate([np.full(3, 5.37), np.linspace(6.0, 5.55, 87)])
    [f] = run(loss_divergence, curves("mf", loss))
    final = loss[-25:].mean()                                      # trailing mean over step_smooth_window
    assert (f.severity, f.evidence["start"]) == ("warning", 5.37)
    assert f.evidence["above_start"] == pytest.approx((final - 5.37) / 5.37)
    assert f.evidence["rise"] < CFG.curves.divergence_rise         # the minimum is the start: rise says little
    assert "above its start" in f.message


def test_a_flat_loss_at_its_start_is_not_divergence():
    # mf at lr 1e-6: the loss stays at ln(200) = 5.298 within 0.2% and ends at most 0.06% above its start
    rng = np.random.default_rng(0)
    for seed in range(4):
        loss = 5.298 * (1 + 0.001 * np.random.default_rng(seed).standard_normal(90))
        assert run(loss_divergence, curves("mf", loss)) == []
    rising = 5.298 * (1 + 0.02 * np.linspace(0, 1, 90) + 0.001 * rng.standard_normal(90))   # drifts 2% up
    [f] = run(loss_divergence, curves("mf", rising))
    assert f.severity == "warning" and 0.01 < f.evidence["above_start"] < 0.02


@pytest.mark.parametrize(("ndcg", "severity"), [(0.26, "info"), (0.16, "warning"), (0.10, "warning")])
def test_a_flat_loss_on_a_model_far_above_popularity_is_only_info(ndcg, severity):
    # content on the default synthetic data: loss 6.14 -> 5.85 (4.8%) while val ndcg@10 is 2x popularity's
    loss = per_epoch(6.14 - 0.015 * np.arange(20))
    metrics = pl.DataFrame([metric("pop", "ndcg", 0.13), metric("content", "ndcg", ndcg)])
    [f] = run(loss_plateau, curves("content", loss), metrics)
    assert (f.code, f.severity) == ("LOSS_PLATEAU", severity)
    assert f.evidence["ratio"] == pytest.approx(ndcg / 0.13) and f.evidence["split"] == "val"
    assert ("learned early" in f.message) == (severity == "info")


def test_a_loss_stuck_near_its_start_is_a_plateau():
    loss = per_epoch(7.0 - 0.007 * np.arange(20))
    [f] = run(loss_plateau, curves("mf", loss))
    assert (f.code, f.severity, f.where["series"]) == ("LOSS_PLATEAU", "warning", "train/epoch_loss")
    # smoothed over 3 epochs: s[-1] = 7 - 0.007 * 18, s[-4] = 7 - 0.007 * 15
    assert f.evidence["final"] == pytest.approx(6.874)
    assert f.evidence["recent_rel_improvement"] == pytest.approx(0.021 / 6.895)
    assert f.evidence["total_rel_improvement"] == pytest.approx(0.126 / 7.0)


def test_a_loss_that_flattens_after_a_real_drop_is_converged_not_a_plateau():
    loss = per_epoch([7.0, 6.0, 5.5, 5.2, 5.1] + [5.05] * 15)
    assert run(loss_plateau, curves("mf", loss)) == []


def test_an_alternating_loss_oscillates():
    loss = 5.0 + 1.5 * (-1.0) ** np.arange(200)
    [f] = run(loss_oscillation, curves("mf", loss))
    assert (f.code, f.severity, f.where["series"]) == ("LOSS_OSCILLATION", "warning", "train/loss")
    assert f.evidence["rel_amplitude"] == pytest.approx(3.0 / 5.0)
    assert f.evidence["sign_change_share"] == 1.0 and f.evidence["trend_multiple"] == "inf"


def test_small_batch_noise_is_not_oscillation():
    assert run(loss_oscillation, curves("mf", healthy_step_loss(noise=0.06))) == []


@pytest.mark.parametrize(("tail", "severity", "drop"), [
    ([0.19, 0.185, 0.18, 0.18, 0.18], "warning", 0.1),
    ([0.18, 0.16, 0.14, 0.12, 0.10], "critical", 0.4)])
def test_validation_falling_while_training_loss_falls_is_overfitting(tail, severity, drop):
    val = [0.10, 0.15, 0.20, 0.20, 0.20] + tail
    loss = per_epoch(7.0 - 0.1 * np.arange(10))
    [f] = run(overfitting, curves("big", loss, val))
    assert (f.code, f.severity, f.where["series"]) == ("OVERFITTING", severity, "val/ndcg@10")
    e = f.evidence
    assert (e["best_epoch"], e["best_value"], e["epochs_since_best"]) == (2, 0.2, 7)
    assert e["smoothed_best"] == pytest.approx(0.2) and e["val_rel_drop"] == pytest.approx(drop)
    assert e["gap"] == pytest.approx(0.2 * drop)
    assert e["train_loss_at_best"] == pytest.approx(6.8) and e["train_loss_now"] == pytest.approx(6.2)
    assert e["train_rel_fall"] == pytest.approx(0.6 / 6.8)
    assert [x.param for x in f.remedy.edits] == ["train.weight_decay", "model.big.dropout", "model.big.dim"]


def test_validation_falling_with_a_flat_training_loss_is_not_overfitting():
    val = [0.10, 0.15, 0.20, 0.20, 0.20, 0.18, 0.16, 0.14, 0.12, 0.10]
    assert run(overfitting, curves("mf", per_epoch([5.0] * 10), val)) == []


def stuck_loss() -> np.ndarray:
    return per_epoch(7.0 - 0.01 * np.arange(10))


def test_near_popularity_with_a_high_loss_is_underfitting():
    metrics = pl.DataFrame([metric("pop", "ndcg", 0.05), metric("mf", "ndcg", 0.052)])
    [f] = run(underfitting, curves("mf", stuck_loss()), metrics)
    assert (f.code, f.severity, f.where) == ("UNDERFITTING", "warning",
                                             {"model": "mf", "table": "curves", "split": "val"})
    assert f.evidence["value"] == 0.052 and f.evidence["baseline_value"] == 0.05
    assert f.evidence["loss_fraction"] == pytest.approx((7.0 - 0.08) / 7.0)


def test_underfitting_needs_both_a_weak_metric_and_a_high_loss():
    weak = pl.DataFrame([metric("pop", "ndcg", 0.05), metric("mf", "ndcg", 0.052)])
    strong = pl.DataFrame([metric("pop", "ndcg", 0.05), metric("mf", "ndcg", 0.12)])
    assert run(underfitting, curves("mf", stuck_loss()), strong) == []
    assert run(underfitting, curves("mf", healthy_step_loss()), weak) == []
    assert run(underfitting, curves("mf", stuck_loss()), weak.filter(pl.col("model") == "mf")) == []


def test_underfitting_reads_the_first_split_that_has_the_metric():
    metrics = pl.DataFrame([metric("pop", "ndcg", 0.05, split="test"), metric("mf", "ndcg", 0.05, split="test")])
    [f] = run(underfitting, curves("mf", stuck_loss()), metrics)
    assert f.where["split"] == "test"


def test_simulated_early_stopping_stops_after_patience_epochs_without_improvement():
    assert simulated_stop(np.array([0.1, 0.2, 0.19, 0.18, 0.17, 0.3]), patience=3) == (4, 1)
    assert simulated_stop(np.array([0.1, 0.2, 0.3]), patience=3) == (None, 2)


def test_a_late_recovery_after_the_stopping_point_is_unstable_early_stopping():
    val = [0.10, 0.20, 0.19, 0.18, 0.17, 0.30, 0.30]
    [f] = run(early_stop_unstable, curves("mf", healthy_step_loss(n_epochs=7), val))
    assert (f.code, f.severity) == ("EARLY_STOP_UNSTABLE", "warning")
    assert f.evidence["simulated_stop"] == 4
    assert f.evidence["lost_share_of_gain"] == pytest.approx(0.5)
    assert f.evidence["noise_ratio"] == pytest.approx(0.05)


def test_a_validation_metric_noisier_than_its_gain_is_unstable_early_stopping():
    val = [0.10, 0.13, 0.09, 0.14, 0.10, 0.13, 0.11]
    [f] = run(early_stop_unstable, curves("mf", healthy_step_loss(n_epochs=7), val))
    assert f.evidence["noise_ratio"] == pytest.approx(0.035 / 0.04)
    assert "noise" in f.message


def test_curves_without_epochs_are_read_by_step():
    rows = curves("mf", healthy_step_loss(n_epochs=7), [0.10, 0.20, 0.19, 0.18, 0.17, 0.30, 0.30])
    rows = rows.with_columns(pl.lit(None, dtype=pl.Int32).alias("epoch"))
    assert run(nan_loss, rows) == [] and run(loss_plateau, rows) == []
    [f] = run(early_stop_unstable, rows)
    assert (f.evidence["unit"], f.evidence["simulated_stop"]) == ("step", 4 * SPE + SPE - 1)


def test_validation_series_name_follows_the_configured_metric():
    rows = pl.DataFrame(epoch_rows("mf", [0.10, 0.20, 0.19, 0.18, 0.17, 0.30, 0.30], "val/recall@20"))
    cfg = DiagnoseConfig(metric="recall", k=20)
    assert len(early_stop_unstable(DiagnosisInputs(curves=rows).prepared(), cfg)) == 1
    assert run(early_stop_unstable, rows) == []
