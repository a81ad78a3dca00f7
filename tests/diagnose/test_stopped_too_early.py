"""STOPPED_TOO_EARLY: still rising when the epochs ran out, far from popularity too; converged runs are quiet."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pytest
import torch

from recsys.diagnose.config import DiagnoseConfig
from recsys.diagnose.engine import diagnose
from recsys.diagnose.fitting import stopped_too_early
from recsys.diagnose.inputs import DiagnosisInputs
from recsys.models.registry import ModelSettings, build_model
from recsys.train.config import TrainConfig
from recsys.train.loop import fit
from tests.diagnose.builders import SPE, curves, healthy_step_loss, healthy_val, metric

CFG = DiagnoseConfig()


def run(frame, metrics=None, cfg=CFG) -> list:
    return stopped_too_early(DiagnosisInputs(curves=frame, metrics=metrics).prepared(), cfg)


def falling_loss(n_epochs: int) -> np.ndarray:
    return np.linspace(7.0, 5.0, n_epochs * SPE)


def test_two_epochs_still_rising_is_caught_with_hand_computed_evidence():
    [found] = run(curves("mf", falling_loss(2), [0.10, 0.12]))
    assert (found.code, found.severity, found.model) == ("STOPPED_TOO_EARLY", "critical", "mf")
    ev = found.evidence
    assert (ev["best_epoch"], ev["epochs"], ev["window"], ev["value_before"], ev["last_value"]) == (1, 2, 1, 0.10, 0.12)
    assert ev["recent_rel_gain"] == pytest.approx(0.2)
    edits = [e.to_dict() for e in found.remedy.edits]
    assert edits == [{"param": "train.epochs", "op": "scale_range", "factor": 2.0},
                     {"param": "train.lr", "op": "scale_range", "factor": 2.0}]


def test_the_gain_is_measured_over_the_window_and_sets_the_severity():
    # window 3: last 0.210 vs 0.200 three epochs before: +5% -> warning
    [found] = run(curves("mf", falling_loss(6), [0.05, 0.15, 0.200, 0.203, 0.206, 0.210]))
    assert found.severity == "warning"
    assert found.evidence["value_before"] == 0.200 and found.evidence["recent_rel_gain"] == pytest.approx(0.05)


def test_far_above_popularity_it_still_fires():
    """UNDERFITTING speaks only near popularity; this rule does not look at it."""
    metrics = pl.DataFrame([metric("pop", "ndcg", 0.05), metric("two_tower", "ndcg", 0.33)])
    frame = curves("two_tower", falling_loss(4), [0.20, 0.26, 0.30, 0.33])
    [found] = run(frame, metrics)
    assert found.model == "two_tower"


@pytest.mark.parametrize("seed", range(4))
def test_a_converged_run_raises_nothing(seed):
    assert run(curves("mf", healthy_step_loss(seed=seed), healthy_val(seed=seed))) == []


@pytest.mark.parametrize("val", [
    [0.10, 0.15, 0.19, 0.18, 0.190, 0.191],    # best is last, but +0.5% over 3 epochs: converged
    [0.10, 0.15, 0.18, 0.20, 0.19, 0.18],      # best before the end
    [0.10, 0.12, 0.12],                        # tied best: it stopped rising
    [0.10],                                    # one point says nothing about a trend
])
def test_no_finding_when_the_curve_is_not_rising_at_the_end(val):
    assert run(curves("mf", falling_loss(len(val)), val)) == []


def test_a_diverged_run_is_left_to_nan_loss():
    loss = falling_loss(3)
    loss[-1] = np.nan
    assert run(curves("mf", loss, [0.10, 0.12, 0.15])) == []


def test_scaling_the_metric_changes_nothing():
    a = run(curves("mf", falling_loss(3), [0.10, 0.12, 0.15]))
    b = run(curves("mf", falling_loss(3), [10.0, 12.0, 15.0]))
    assert [f.severity for f in a] == [f.severity for f in b] == ["critical"]
    assert a[0].evidence["recent_rel_gain"] == pytest.approx(b[0].evidence["recent_rel_gain"])


def test_thresholds_come_from_the_config_and_the_engine_runs_the_rule():
    frame = curves("mf", falling_loss(6), [0.05, 0.15, 0.200, 0.203, 0.206, 0.210])
    strict = replace(CFG, curves=replace(CFG.curves, stopped_recent_gain=0.06, stopped_recent_gain_critical=0.2))
    assert run(frame, cfg=strict) == []
    assert "STOPPED_TOO_EARLY" in [f.code for f in diagnose(DiagnosisInputs(curves=frame), CFG)]
    assert "STOPPED_TOO_EARLY" not in [f.code for f in diagnose(
        DiagnosisInputs(curves=frame), replace(CFG, disabled_rules=["stopped_too_early"]))]


def _real_curves(epochs: int, lr: float):
    from tests.train.blocks import block_data

    data, _ = block_data()
    torch.manual_seed(0)
    model = build_model("mf", replace(ModelSettings().mf, dim=16), data.model_inputs())
    result = fit(model, data, TrainConfig(epochs=epochs, batch_size=32, lr=lr, engine="local", patience=0))
    return pl.DataFrame(result.telemetry.curves)


def test_real_training_stopped_at_5_of_the_12_epochs_it_needs_fires_and_40_epochs_do_not():
    early = run(_real_curves(epochs=5, lr=0.01))       # val ndcg@10 0.10 -> 0.42 and rising (0.74 at epoch 10)
    assert [f.code for f in early] == ["STOPPED_TOO_EARLY"]
    assert run(_real_curves(epochs=40, lr=0.01)) == []
