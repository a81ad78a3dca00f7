"""Encoder rules on hand-made curves and gradient rows, and the representation measures they read."""

from __future__ import annotations

import polars as pl
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.diagnose.config import DiagnoseConfig
from recsys.diagnose.encoder import encoder_forgetting, encoder_not_learning, finetune_overfitting, text_collapse
from recsys.diagnose.engine import diagnose
from recsys.diagnose.inputs import DiagnosisInputs
from recsys.diagnose.representation import anisotropy, linear_cka, mean_cosine

CFG = DiagnoseConfig()


def curves(**series) -> pl.DataFrame:
    rows = []
    for name, values in series.items():
        name = {"drift": "text/drift_cosine", "val": "val/ndcg@10", "aniso": "text/anisotropy",
                "aniso0": "text/anisotropy_pretrained", "loss": "train/epoch_loss"}[name]
        rows += [{"model": "finetune", "step": 10 * (e + 1) - 1, "epoch": e, "name": name, "value": float(v)}
                 for e, v in enumerate(values)]
    return pl.DataFrame(rows)


def grad_rows(update_ratio: float, n_steps: int = 8) -> pl.DataFrame:
    return pl.DataFrame([{"model": "finetune", "step": s, "layer": layer, "grad_norm": 1e-3,
                          "weight_norm": 5.0, "update_ratio": update_ratio, "nan_count": 0, "inf_count": 0}
                         for s in range(n_steps) for layer in ("encoder.layer.5.output.dense.weight",
                                                               "item_proj.weight")])


HEALTHY = dict(drift=[0.97, 0.95, 0.94, 0.935, 0.93, 0.93], val=[0.20, 0.24, 0.26, 0.27, 0.275, 0.28],
               aniso=[0.3, 0.31, 0.31, 0.32, 0.32, 0.32], aniso0=[0.3] * 6, loss=[5.0, 4.5, 4.2, 4.0, 3.9, 3.8])


def codes(table, grads=None) -> list[str]:
    return [f.code for f in diagnose(DiagnosisInputs(curves=table, grad_stats=grads), CFG)]


def test_a_healthy_fine_tuning_run_raises_no_encoder_finding():
    assert not [c for c in codes(curves(**HEALTHY), grad_rows(1e-3)) if c.startswith(("ENCODER", "TEXT_", "FINE"))]


def test_forgetting_needs_the_jump_and_the_fall():
    found = encoder_forgetting(DiagnosisInputs(curves=curves(drift=[0.2, 0.1, 0.1], val=[0.2, 0.1, 0.05])), CFG)
    assert [(f.code, f.severity) for f in found] == [("ENCODER_FORGETTING", "critical")]
    assert found[0].evidence["first_epoch_jump"] == pytest.approx(0.8)
    assert {e.param for e in found[0].remedy.edits} >= {"model.finetune.encoder_lr", "model.finetune.train_layers"}
    # a big jump with a rising validation curve, or a falling curve without a jump: no finding
    assert not encoder_forgetting(DiagnosisInputs(curves=curves(drift=[0.2, 0.1], val=[0.1, 0.2])), CFG)
    assert not encoder_forgetting(DiagnosisInputs(curves=curves(drift=[0.99, 0.98], val=[0.2, 0.1])), CFG)


def test_not_learning_needs_trained_blocks_without_drift_and_updates():
    table = curves(drift=[1.0, 1.0, 1.0], val=[0.1, 0.1, 0.1])
    found = encoder_not_learning(DiagnosisInputs(curves=table, grad_stats=grad_rows(1e-9)), CFG)
    assert [f.code for f in found] == ["ENCODER_NOT_LEARNING"] and found[0].evidence["blocks"] == [5]
    assert found[0].remedy.edits[0].factor == 10.0
    assert not encoder_not_learning(DiagnosisInputs(curves=table, grad_stats=grad_rows(1e-3)), CFG)
    frozen = grad_rows(1e-9).filter(~pl.col("layer").str.starts_with("encoder"))      # train_layers=0
    assert not encoder_not_learning(DiagnosisInputs(curves=table, grad_stats=frozen), CFG)


def layer_rows(ratios: dict[str, float], n_steps: int = 8) -> pl.DataFrame:
    return pl.DataFrame([{"model": "finetune", "step": s, "layer": layer, "grad_norm": 1e-3, "weight_norm": 5.0,
                          "update_ratio": ratio, "nan_count": 0, "inf_count": 0}
                         for s in range(n_steps) for layer, ratio in ratios.items()])


BLOCK_5 = [f"encoder.layer.5.{part}.weight" for part in ("attention.self.query", "intermediate.dense", "output.dense")]


def test_slow_encoder_blocks_never_ask_for_a_higher_train_lr():
    """LR_TOO_LOW over a finetune unit whose slow layers are the encoder's (most of its tensors) while the
    recommender's own layers learn at train.lr: raising train.lr is the wrong lever."""
    slow_blocks = layer_rows({**dict.fromkeys(BLOCK_5, 1e-9), "item_proj.weight": 1e-3})
    stuck = curves(drift=[1.0, 1.0, 1.0], val=[0.1, 0.12, 0.13])
    found = {f.code: f for f in diagnose(DiagnosisInputs(curves=stuck, grad_stats=slow_blocks), CFG)}
    assert found["ENCODER_NOT_LEARNING"].severity == "warning"
    low = found["LR_TOO_LOW"]           # explained by ENCODER_NOT_LEARNING, which carries the remedy
    assert (low.severity, low.remedy.edits, low.evidence["explained_by"]) == ("info", (), "ENCODER_NOT_LEARNING")
    assert low.evidence["rest_median_update_ratio"] == pytest.approx(1e-3)
    # the text vectors moved (no ENCODER_NOT_LEARNING): LR_TOO_LOW stays, pointing at the encoder's rate
    moved = {f.code: f for f in diagnose(DiagnosisInputs(curves=curves(drift=[0.9, 0.8, 0.7], val=[0.1, 0.12, 0.13]),
                                                         grad_stats=slow_blocks), CFG)}
    assert "ENCODER_NOT_LEARNING" not in moved and moved["LR_TOO_LOW"].severity == "critical"
    assert [e.param for e in moved["LR_TOO_LOW"].remedy.edits] == ["model.finetune.encoder_lr"]
    # every layer slow: train.lr is a lever too, and LR_TOO_LOW keeps its advice
    all_slow = layer_rows({**dict.fromkeys(BLOCK_5, 1e-9), "item_proj.weight": 1e-9})
    both = {f.code: f for f in diagnose(DiagnosisInputs(curves=stuck, grad_stats=all_slow), CFG)}
    assert both["LR_TOO_LOW"].severity == "critical" and [e.param for e in both["LR_TOO_LOW"].remedy.edits] == [
        "train.lr"]


def test_finetune_overfitting_needs_drift_after_the_best_epoch():
    val = [0.2, 0.3, 0.31, 0.3, 0.26, 0.22, 0.2]
    drifting = curves(drift=[0.99, 0.97, 0.95, 0.9, 0.85, 0.8, 0.75], val=val)
    found = finetune_overfitting(DiagnosisInputs(curves=drifting), CFG)
    assert [f.code for f in found] == ["FINETUNE_OVERFITTING"]
    assert found[0].evidence["drift_at_best"] > found[0].evidence["drift_last"]
    assert found[0].evidence["triggers"] == ["drift"]
    still = curves(drift=[0.95] * 7, val=val)
    assert not finetune_overfitting(DiagnosisInputs(curves=still), CFG)


def with_cka(table: pl.DataFrame, **blocks) -> pl.DataFrame:
    """``table`` plus ``text/cka/encoder.layer.N`` series (``b4=[...]`` is block 4), one point per epoch."""
    rows = [{"model": "finetune", "step": 10 * (e + 1) - 1, "epoch": e, "name": f"text/cka/encoder.layer.{key[1:]}",
             "value": float(v)} for key, values in blocks.items() for e, v in enumerate(values)]
    return pl.concat([table, pl.DataFrame(rows)])


# the measured shape: after the first epochs the text vectors turn back towards the pretrained ones
# (the drift cosine rises) while the lower trained blocks keep changing (their CKA falls)
OVERFIT_VAL = [0.2, 0.3, 0.33, 0.31, 0.27, 0.24, 0.21]
RETURNING = [0.6, 0.62, 0.66, 0.7, 0.73, 0.76, 0.79]


def test_finetune_overfitting_fires_when_a_blocks_cka_falls_after_the_best_epoch():
    table = with_cka(curves(drift=RETURNING, val=OVERFIT_VAL),
                     b4=[0.95, 0.9, 0.86, 0.8, 0.74, 0.69, 0.64], b5=[0.9, 0.88, 0.88, 0.87, 0.87, 0.86, 0.86])
    [found] = finetune_overfitting(DiagnosisInputs(curves=table), CFG)
    ev = found.evidence
    assert (found.code, found.severity, ev["triggers"], ev["moved_block"]) == (
        "FINETUNE_OVERFITTING", "warning", ["cka"], 4)
    # smoothed over 3 epochs the best is epoch 3 (0.313, last 0.24): block 4 fell 0.80 -> 0.64 after it
    assert ev["best_epoch"] == 3 and ev["cka_at_best"] == {"encoder.layer.4": 0.8, "encoder.layer.5": 0.87}
    assert ev["cka_fall"]["encoder.layer.4"] == pytest.approx(0.16) and ev["max_cka_fall"] == pytest.approx(0.16)
    assert ev["drift_fall"] < 0 and ev["trained_blocks"] == 2 and ev["overfit_cka"] == CFG.encoder.overfit_cka
    assert "block 4" in found.message
    assert {e.param: e.value for e in found.remedy.edits}["model.finetune.train_layers"] == 1
    # the drift cosine alone (rising) would have missed it
    assert not finetune_overfitting(DiagnosisInputs(curves=curves(drift=RETURNING, val=OVERFIT_VAL)), CFG)


def test_finetune_overfitting_is_silent_while_the_encoder_stands_still_or_the_run_converges():
    # validation falls but every block's CKA is flat after the best epoch and the drift cosine too:
    # something other than the encoder overfits (OVERFITTING's business)
    flat = with_cka(curves(drift=[0.8, 0.75, 0.72, 0.72, 0.72, 0.72, 0.72], val=OVERFIT_VAL),
                    b4=[0.95, 0.85, 0.8, 0.8, 0.8, 0.8, 0.8], b5=[0.9, 0.87, 0.86, 0.86, 0.86, 0.86, 0.86])
    assert not finetune_overfitting(DiagnosisInputs(curves=flat), CFG)
    # a converged run: the CKA keeps falling but validation keeps its best
    converged = with_cka(curves(drift=RETURNING, val=[0.2, 0.3, 0.33, 0.34, 0.345, 0.345, 0.346]),
                         b4=[0.95, 0.9, 0.86, 0.8, 0.74, 0.69, 0.64])
    assert not finetune_overfitting(DiagnosisInputs(curves=converged), CFG)
    # a small fall of the CKA (below encoder.overfit_cka) is not movement
    small = with_cka(curves(drift=RETURNING, val=OVERFIT_VAL), b4=[0.95, 0.9, 0.86, 0.8, 0.795, 0.792, 0.79])
    assert not finetune_overfitting(DiagnosisInputs(curves=small), CFG)


def test_text_collapse_is_relative_to_the_pretrained_spread():
    assert [f.severity for f in text_collapse(DiagnosisInputs(curves=curves(aniso=[0.5, 0.97], aniso0=[0.4] * 2)),
                                               CFG)] == ["critical"]
    # an encoder that starts anisotropic (a random BERT: 0.98) and stays so has not collapsed
    assert not text_collapse(DiagnosisInputs(curves=curves(aniso=[0.98, 0.985], aniso0=[0.98] * 2)), CFG)


# ----- representation measures -----------------------------------------------------------------------------

def test_cka_hand_computed_and_mean_cosine_and_anisotropy():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    y = torch.tensor([[1.0], [0.0], [0.0]])
    # centred: X^T Y = (2/3, -1/3) -> 5/9; ||X^T X||_F = sqrt(90)/9; Y^T Y = 6/9 -> CKA = 5/(2 sqrt(10))
    assert linear_cka(x, y) == pytest.approx(5 / (2 * 10 ** 0.5))
    assert mean_cosine(x[:2], torch.tensor([[1.0, 1.0], [0.0, -1.0]])) == pytest.approx((2 ** -0.5 - 1) / 2)
    assert anisotropy(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])) == pytest.approx(2 ** -0.5 * 2 / 3)


matrices = st.integers(0, 10_000).map(
    lambda seed: torch.randn(12, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))


@settings(max_examples=30, deadline=None)
@given(matrices, st.integers(0, 10_000), st.floats(0.1, 50.0))
def test_cka_properties(x, seed, scale):
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=generator, dtype=torch.float64))   # orthogonal
    y = torch.randn(12, 3, generator=generator, dtype=torch.float64)
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x @ q, y) == pytest.approx(linear_cka(x, y), abs=1e-9)
    assert linear_cka(scale * x, y) == pytest.approx(linear_cka(x, y), abs=1e-9)
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x), abs=1e-12)
    assert 0.0 <= linear_cka(x, y) <= 1.0 + 1e-12
    stretch = torch.diag(torch.tensor([100.0, 1.0, 1.0, 1.0, 1.0], dtype=torch.float64))   # not orthogonal
    assert linear_cka(x @ stretch, x) < 0.999
