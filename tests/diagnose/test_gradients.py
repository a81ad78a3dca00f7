"""Gradient rules on hand-built grad_stats: each fault triggers its code; healthy gradients trigger nothing."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recsys.diagnose.config import DiagnoseConfig, GradientThresholds
from recsys.diagnose.gradients import (dead_rows_from_gradients, exploding_gradients, layer_stacks, learning_rate,
                                       nan_gradients, vanishing_gradients)
from recsys.diagnose.inputs import DiagnosisInputs
from tests.diagnose.builders import grad_rows, healthy_grads

CFG = DiagnoseConfig()
RULES = [nan_gradients, exploding_gradients, vanishing_gradients, learning_rate, dead_rows_from_gradients]


def run(rule, rows) -> list:
    frame = rows if isinstance(rows, pl.DataFrame) else pl.DataFrame(rows)
    return rule(DiagnosisInputs(grad_stats=frame).prepared(), CFG)


@pytest.mark.parametrize("rule", RULES)
def test_healthy_gradients_trigger_nothing(rule):
    for seed in range(5):
        assert run(rule, healthy_grads(seed=seed)) == []


def test_layer_stacks_pair_the_first_and_last_index_of_each_stack():
    stacks = layer_stacks(["t.0.weight", "t.1.weight", "t.4.weight", "t.4.bias", "t.0.bias",
                           "blocks.0.attn.w", "blocks.3.attn.w", "emb.weight", "t.2.x"])
    assert stacks == {("t", "weight"): ["t.0.weight", "t.4.weight"], ("t", "bias"): ["t.0.bias", "t.4.bias"],
                      ("blocks", "attn.w"): ["blocks.0.attn.w", "blocks.3.attn.w"]}


def test_nan_and_inf_gradients_are_critical_with_counts():
    rows = healthy_grads().to_dicts()
    for row in rows:
        if row["layer"] == "item_tower.0.weight" and row["step"] == 42:
            row["nan_count"] = 3
        if row["layer"] == "item_tower.4.bias" and row["step"] == 50:
            row["inf_count"], row["grad_norm"] = 1, float("inf")
    [f] = run(nan_gradients, rows)
    assert (f.code, f.severity, f.where["layer"]) == ("NAN_GRADIENTS", "critical", "item_tower.0.weight")
    assert f.evidence["n_rows"] == 2 and f.evidence["first_step"] == 42
    assert (f.evidence["nan_total"], f.evidence["inf_total"]) == (3, 1)
    assert f.evidence["layers"] == ["item_tower.0.weight", "item_tower.4.bias"]


@pytest.mark.parametrize(("spike", "severity"), [(50.0, "warning"), (500.0, "critical")])
def test_a_gradient_spike_over_the_running_median_is_exploding(spike, severity):
    norms = np.ones(40)
    norms[30] = spike
    [f] = run(exploding_gradients, grad_rows("mf", "item_embedding.weight", norms))
    assert (f.code, f.severity, f.where) == ("EXPLODING_GRADIENTS", severity, {
        "model": "mf", "table": "grad_stats", "layer": "item_embedding.weight"})
    assert f.evidence["max_spike_ratio"] == pytest.approx(spike)
    assert f.evidence["spike_step"] == 30 and f.evidence["n_spikes"] == 1
    assert f.evidence["max_growth"] == pytest.approx(1.0)


def test_steady_geometric_growth_is_exploding_without_any_spike():
    t = np.arange(60)
    norms = 10.0 ** (3 * t / 59)                                    # 1 -> 1000 over 60 steps
    [f] = run(exploding_gradients, grad_rows("mf", "w", norms))
    expected = 10.0 ** (3 * 54.5 / 59) / 10.0 ** (3 * 4.5 / 59)    # geometric medians of the last / first 10
    assert f.severity == "warning" and f.evidence["max_growth"] == pytest.approx(expected)
    assert f.evidence["max_spike_ratio"] < CFG.gradients.spike_factor


def recovering_stack(first_layer_late: float) -> list[dict]:
    """A three-layer stack whose first layer starts near zero (4e-7) and rises at step 12 to
    ``first_layer_late``; the other two stay at 0.15 and 0.05 (the vanishing run measured 0.13 and 0.15)."""
    rng = np.random.default_rng(0)
    first = np.where(np.arange(36) < 12, 4e-7, first_layer_late) * (1 + 0.1 * rng.standard_normal(36))
    return (grad_rows("two_tower", "item_tower.0.weight", first)
            + grad_rows("two_tower", "item_tower.4.weight", np.full(36, 0.05))
            + grad_rows("two_tower", "item_tower.8.weight", np.full(36, 0.15)))


def test_a_layer_recovering_to_its_peers_level_is_not_exploding():
    rows = recovering_stack(0.13)
    assert run(exploding_gradients, rows) == []
    ungated = DiagnoseConfig(gradients=GradientThresholds(explode_level_factor=1e-9))   # every level counts
    [f] = exploding_gradients(DiagnosisInputs(grad_stats=pl.DataFrame(rows)).prepared(), ungated)
    assert f.severity == "critical" and f.evidence["max_growth"] > 1e4 and f.evidence["max_spike_ratio"] > 1e4


@pytest.mark.parametrize(("late", "severity"), [(2.0, "critical"), (150.0, "critical")])
def test_a_layer_growing_far_above_its_peers_or_the_absolute_bound_is_exploding(late, severity):
    [f] = run(exploding_gradients, recovering_stack(late))       # 2.0: 13x the largest peer's 0.15
    assert (f.severity, f.where["layer"]) == (severity, "item_tower.0.weight")
    assert f.evidence["peer_level"] == pytest.approx(0.15) and f.evidence["recovered_layers"] == {}


@pytest.mark.parametrize(("level", "severity"), [(500.0, "critical"), (50.0, "warning")])
def test_every_layer_exploding_together_is_exploding(level, severity):
    rows = []
    for layer in ("a.weight", "b.weight", "c.weight"):
        norms = np.ones(40)
        norms[30:] = level                     # at once: each layer's peers jump too, but their median stays 1
        rows += grad_rows("mf", layer, norms)
    [f] = run(exploding_gradients, rows)
    assert f.severity == severity and f.evidence["spike_step"] == 30
    assert f.evidence["n_spikes"] == 30                # steps 30-39 of 3 layers: the running median of 20 stays 1


@pytest.mark.parametrize(("ratio", "severity"), [(1e-4, "warning"), (1e-6, "critical")])
def test_early_layers_far_below_the_output_layer_are_vanishing(ratio, severity):
    rows = (grad_rows("deep", "mlp.0.weight", np.full(20, ratio)) + grad_rows("deep", "mlp.4.weight", np.full(20, 0.5))
            + grad_rows("deep", "mlp.8.weight", np.ones(20)))
    [f] = run(vanishing_gradients, rows)
    assert (f.code, f.severity, f.where["layer"]) == ("VANISHING_GRADIENTS", severity, "mlp.0.weight")
    assert f.evidence["depth_ratios"] == {"mlp.0.weight": pytest.approx(ratio)}
    assert f.evidence["collapsed_layers"] == {}
    assert [e.param for e in f.remedy.edits] == ["model.deep.norm", "model.deep.depth"]


def test_a_gradient_collapsing_over_training_is_vanishing():
    norms = np.concatenate([np.ones(30), np.full(30, 1e-5)])
    [f] = run(vanishing_gradients, grad_rows("mf", "user_embedding.weight", norms))
    assert (f.severity, f.where["layer"]) == ("warning", "user_embedding.weight")
    assert f.evidence["collapsed_layers"] == {"user_embedding.weight": pytest.approx(1e-5)}


@pytest.mark.parametrize(("ratio", "code", "severity", "factor"), [
    (0.3, "LR_TOO_HIGH", "warning", 0.1), (2.0, "LR_TOO_HIGH", "critical", 0.1),
    (1e-6, "LR_TOO_LOW", "warning", 10.0), (1e-8, "LR_TOO_LOW", "critical", 10.0)])
def test_update_ratio_far_from_1e3_judges_the_learning_rate(ratio, code, severity, factor):
    rows = []
    for i, layer in enumerate(["a.weight", "b.weight", "c.weight"]):
        rows += grad_rows("mf", layer, np.ones(20), np.full(20, ratio * (1 + i)))
    [f] = run(learning_rate, rows)
    assert (f.code, f.severity) == (code, severity)
    assert f.evidence["median_update_ratio"] == pytest.approx(2 * ratio)
    assert f.evidence["n_layers"] == 3
    assert f.remedy.edits[0].to_dict() == {"param": "train.lr", "op": "scale_range", "factor": factor}
    assert f.where["layer"] == ("c.weight" if code == "LR_TOO_HIGH" else "a.weight")


def test_one_hot_layer_does_not_move_the_median_and_zero_weights_are_ignored():
    rows = grad_rows("mf", "a", np.ones(20), np.full(20, 5.0))
    rows += grad_rows("mf", "b", np.ones(20)) + grad_rows("mf", "c", np.ones(20))
    rows += grad_rows("mf", "bias", np.ones(20), np.full(20, np.inf), weight_norm=0.0)
    assert run(learning_rate, rows) == []


@pytest.mark.parametrize(("touched", "severity"), [(0.8, "warning"), (0.3, "critical")])
def test_embedding_rows_never_touched_are_dead(touched, severity):
    share = np.linspace(0.1, touched, 20)
    [f] = run(dead_rows_from_gradients, grad_rows("mf", "item_embedding.weight", np.ones(20), rows_touched=share))
    assert (f.code, f.severity, f.where["layer"]) == ("DEAD_EMBEDDING_ROWS", severity, "item_embedding.weight")
    assert f.evidence["dead_share"] == pytest.approx(1 - touched)


def test_rows_touched_are_judged_only_after_one_full_pass():
    # measured: mf with 4 steps per epoch probed at step 0 only saw 88% of its users in that first batch
    first_batch = grad_rows("mf", "user_embedding.weight", np.ones(1), rows_touched=[0.883])
    assert run(dead_rows_from_gradients, first_batch) == []
    later = grad_rows("mf", "user_embedding.weight", np.ones(12), rows_touched=np.linspace(0.5, 0.883, 12))
    [f] = run(dead_rows_from_gradients, later)                 # steps 10 and 11 are in epoch 1
    assert f.evidence["dead_share"] == pytest.approx(1 - 0.883)


def test_units_are_judged_separately_per_model_and_trial():
    rows = grad_rows("mf", "w", np.ones(20), np.full(20, 0.5))
    for row in rows:
        row["trial_id"] = "t1"
    rows += [{**r, "trial_id": "t2", "update_ratio": 1e-3} for r in rows]
    [f] = run(learning_rate, rows)
    assert f.where == {"model": "mf", "trial_id": "t1", "table": "grad_stats", "layer": "w"}
