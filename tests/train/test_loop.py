"""The pure training loop: learning a known structure, reproducibility, resume, early stopping, NaN guard."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from recsys.models.registry import BUILTINS, ModelSettings, build_model
from recsys.train.checkpoint import LocalCheckpoints, load_checkpoint, load_model
from recsys.train.config import TrainConfig
from recsys.train.loop import fit, validate
from tests.train.blocks import block_data

SMALL = ModelSettings()
SMALL.mf = replace(SMALL.mf, dim=16)
SMALL.content = replace(SMALL.content, dim=16)
SMALL.two_tower = replace(SMALL.two_tower, dim=16, width=32, dropout=0.1, history_dropout=0.0)
SMALL.sasrec = replace(SMALL.sasrec, dim=16, max_len=5, dropout=0.1)
CFG = TrainConfig(epochs=20, batch_size=32, lr=0.01, engine="local", patience=0, log_every=2, probe_every=3,
                  negatives=8)


@pytest.fixture(scope="module")
def blocks():
    return block_data()


def build(name, data, text, seed=0):
    torch.manual_seed(seed)
    return build_model(name, getattr(SMALL, name), data.model_inputs(text))


def curve(result, name):
    return [row["value"] for row in result.telemetry.curves if row["name"] == name]


@pytest.fixture(scope="module")
def pop_ndcg(blocks):
    data, text = blocks
    return validate(build("pop", data, text), data, CFG)


@pytest.mark.parametrize("name, loss", [(s.name, "softmax") for s in BUILTINS if s.name not in ("pop", "finetune")]  # finetune: test_finetune.py
                         + [("mf", "sampled_softmax"), ("mf", "bpr"), ("two_tower", "sampled_softmax")])
def test_models_learn_the_block_structure(name, loss, blocks, pop_ndcg):
    """Loss goes down and validation NDCG reaches the group level (~0.7), far above popularity (~0.1)."""
    data, text = blocks
    result = fit(build(name, data, text), data, replace(CFG, loss=loss))
    losses = curve(result, "train/epoch_loss")
    assert losses[-1] < losses[0]
    if name in ("mf", "sasrec"):    # content and two_tower pool text that says the group: they start low
        assert losses[-1] < 0.8 * losses[0]
    assert result.state.best_metric >= 0.6
    assert result.state.best_metric > pop_ndcg + 0.4


def test_single_worker_cpu_training_is_bit_for_bit_reproducible(blocks):
    """Also with two threads: every gather in the models and losses has a deterministic backward."""
    data, text = blocks
    torch.set_num_threads(2)
    cfg = replace(CFG, epochs=3, loss="sampled_softmax")
    a = fit(build("two_tower", data, text), data, cfg)
    b = fit(build("two_tower", data, text), data, cfg)
    assert all(torch.equal(x, y) for x, y in zip(a.best_state.values(), b.best_state.values()))
    assert curve(a, "train/loss") == curve(b, "train/loss")
    c = fit(build("two_tower", data, text), data, replace(cfg, seed=1))
    assert curve(a, "train/loss") != curve(c, "train/loss")


@pytest.mark.parametrize("name", ["two_tower", "sasrec"])
def test_resumed_run_equals_uninterrupted_run(name, blocks, tmp_path):
    data, text = blocks
    cfg = replace(CFG, epochs=4, loss="sampled_softmax")
    straight = fit(build(name, data, text), data, cfg)

    store = LocalCheckpoints(tmp_path / name)
    fit(build(name, data, text), data, replace(cfg, epochs=2), on_epoch_end=lambda *a: store.save(
        a[0], a[1], a[2].state_dict(), a[3], a[4].state()))
    snapshot = load_checkpoint(store.latest())
    assert snapshot.state.epoch == 2
    resumed = fit(build(name, data, text, seed=99), data, cfg, resume=snapshot)   # other init: overwritten
    assert resumed.state.epoch == 4 and resumed.state.step == straight.state.step
    assert all(torch.equal(x, y) for x, y in zip(straight.best_state.values(), resumed.best_state.values()))
    assert curve(resumed, "train/loss") == curve(straight, "train/loss")
    assert curve(resumed, "val/ndcg@10") == curve(straight, "val/ndcg@10")


def test_early_stopping_keeps_the_best_epoch(blocks, tmp_path):
    data, text = blocks
    cfg = replace(CFG, epochs=60, patience=2, lr=0.05)
    store = LocalCheckpoints(tmp_path / "mf")
    model = build("mf", data, text)
    result = fit(model, data, cfg, on_epoch_end=lambda *a: store.save(a[0], a[1], a[2].state_dict(), a[3],
                                                                       a[4].state()))
    state = result.state
    assert state.status == "early_stopped" and state.epoch < 60
    assert state.bad_epochs == 2 and state.best_epoch == state.epoch - 3
    assert state.best_metric == max(state.val_history)
    best = load_model(store.latest())                                    # best_model.pt of the last checkpoint
    assert validate(best, data, cfg) == pytest.approx(state.best_metric)


def test_non_finite_gradient_stops_the_run_and_keeps_the_last_good_weights(blocks):
    data, text = blocks
    model = build("mf", data, text)
    calls = {"n": 0}

    def poison(grad):                         # a real fault on the 7th backward pass
        calls["n"] += 1
        return grad * float("nan") if calls["n"] == 7 else grad

    model.item_embedding.weight.register_hook(poison)
    saved = []
    result = fit(model, data, replace(CFG, epochs=5), on_epoch_end=lambda *a: saved.append(
        (a[3].status, {k: v.clone() for k, v in a[0].state_dict().items()})))
    assert result.state.status == "diverged"
    assert result.state.where == "grad:item_embedding.weight at step 6"
    assert result.state.step == 6 and result.state.epoch == 1          # 5 steps per epoch: died in epoch 1
    rows = [r for r in result.telemetry.grad_stats if r["step"] == 6]
    by_layer = {r["layer"]: r for r in rows}
    assert by_layer["item_embedding.weight"]["nan_count"] > 0 and by_layer["user_embedding.weight"]["nan_count"] == 0
    assert [r["value"] for r in result.telemetry.curves if r["name"] == "train/nonfinite"] == [1.0]
    status, weights = saved[-1]
    assert status == "diverged"
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_non_finite_loss_is_named(blocks):
    data, text = blocks
    model = build("two_tower", data, text)
    with torch.no_grad():
        model.item_tower[0].weight[0, 0] = float("inf")
    result = fit(model, data, replace(CFG, epochs=2))
    assert result.state.status == "diverged" and result.state.where.startswith("loss at step 0")


def test_models_without_training_are_validated_once(blocks, pop_ndcg):
    data, text = blocks
    result = fit(build("pop", data, text), data, CFG)
    assert result.state.status == "completed" and result.state.step == 0
    assert curve(result, "val/ndcg@10") == [pytest.approx(pop_ndcg)]


def test_training_writes_the_series_the_diagnosis_reads(blocks):
    from recsys.diagnose.config import DiagnoseConfig

    data, text = blocks
    result = fit(build("mf", data, text), data, replace(CFG, epochs=2))
    names = {row["name"] for row in result.telemetry.curves}
    diagnose = DiagnoseConfig()
    assert {diagnose.train_loss, diagnose.train_loss_epoch, diagnose.val_series} <= names
