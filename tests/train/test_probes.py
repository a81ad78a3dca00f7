"""Instrumentation: statistics checked by hand, cadence, touched rows, switching it off, clipping."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from recsys.models.mf import MFConfig
from recsys.models.registry import build_model
from recsys.train.batching import epoch_examples, epoch_order
from recsys.train.config import TrainConfig
from recsys.train.loop import fit
from recsys.train.probes import Probes, Telemetry
from tests.train.blocks import block_data

CFG = TrainConfig(epochs=2, batch_size=16, lr=0.01, engine="local", patience=0, log_every=2, probe_every=3)


@pytest.fixture(scope="module")
def blocks():
    return block_data()


def mf(data, text, dim=8):
    torch.manual_seed(0)
    return build_model("mf", MFConfig(dim=dim), data.model_inputs(text))


def test_statistics_by_hand_with_sgd():
    layer = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[3.0, 4.0]]))
    probes = Probes(layer, Telemetry("toy"), log_every=1, probe_every=1)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer(torch.tensor([[1.0, 2.0]])).sum().backward()          # grad = x = [1, 2]
    probes.after_backward(0, 0)
    probes.before_update(0)
    optimizer.step()                                             # w = [3, 4] - 0.5 [1, 2] = [2.5, 3]
    probes.after_update(0, 0)
    row = probes.telemetry.grad_stats[0]
    assert row["grad_norm"] == pytest.approx(5 ** 0.5)
    assert row["weight_norm"] == pytest.approx((2.5 ** 2 + 9) ** 0.5)
    assert row["update_ratio"] == pytest.approx(0.5 * 5 ** 0.5 / (2.5 ** 2 + 9) ** 0.5)
    assert "rows_touched_share" not in row                      # not an embedding table


def test_cadence_and_rows_touched(blocks):
    data, text = blocks
    model = mf(data, text)
    result = fit(model, data, CFG)
    n_params = len(list(model.parameters()))
    steps_per_epoch = data.nnz // 16
    probed = sorted({row["step"] for row in result.telemetry.grad_stats})
    assert probed == list(range(0, 2 * steps_per_epoch, 3))
    assert len(result.telemetry.grad_stats) == n_params * len(probed)
    loss_steps = [row["step"] for row in result.telemetry.curves if row["name"] == "train/loss"]
    assert loss_steps == list(range(1, 2 * steps_per_epoch, 2))
    # step 0's window is step 0 alone: the user table was touched by that batch's users only
    examples = epoch_examples(data.indptr, "pairs")
    first = epoch_order(len(examples.users), CFG.seed, 0)[:16]
    expected = len(np.unique(examples.users[first])) / data.n_users
    user_row = next(r for r in result.telemetry.grad_stats if r["step"] == 0 and r["layer"] == "user_embedding.weight")
    assert user_row["rows_touched_share"] == pytest.approx(expected)
    item_row = next(r for r in result.telemetry.grad_stats if r["step"] == 0 and r["layer"] == "item_embedding.weight")
    assert item_row["rows_touched_share"] == 1.0          # full softmax: every item is a negative
    # cumulative: at step 3 the share counts every user of steps 0..3, not only those since the last probe
    so_far = epoch_order(len(examples.users), CFG.seed, 0)[:64]
    since_last_probe = epoch_order(len(examples.users), CFG.seed, 0)[16:64]
    user_row = next(r for r in result.telemetry.grad_stats if r["step"] == 3 and r["layer"] == "user_embedding.weight")
    assert user_row["rows_touched_share"] == pytest.approx(len(np.unique(examples.users[so_far])) / data.n_users)
    assert len(np.unique(examples.users[so_far])) > len(np.unique(examples.users[since_last_probe]))
    shares = [r["rows_touched_share"] for r in result.telemetry.grad_stats if r["layer"] == "user_embedding.weight"]
    assert shares == sorted(shares) and shares[-1] == 1.0     # never falls; every user trained by the end
    names = {row["name"] for row in result.telemetry.curves}
    assert {"train/loss", "lr", "train/samples_per_s", "train/epoch_loss", "val/ndcg@10", "epoch_seconds",
            "instrumentation/share", "peak_memory_mb"} <= names


def test_instrumentation_off_keeps_only_epoch_curves(blocks):
    data, text = blocks
    result = fit(mf(data, text), data, replace(CFG, instrument=False))
    assert result.telemetry.grad_stats == []
    names = {row["name"] for row in result.telemetry.curves}
    assert "train/loss" not in names and "train/epoch_loss" in names
    on = fit(mf(data, text), data, CFG)
    assert all(torch.equal(a, b) for a, b in zip(on.best_state.values(), result.best_state.values()))


def test_grad_norm_is_recorded_before_clipping_and_the_update_is_clipped(blocks):
    data, text = blocks
    free = fit(mf(data, text), data, replace(CFG, epochs=1, optimizer="adam", lr=0.1))
    clipped = fit(mf(data, text), data, replace(CFG, epochs=1, grad_clip=1e-3, optimizer="adam", lr=0.1))

    def rows(result):
        return {(r["step"], r["layer"]): r for r in result.telemetry.grad_stats}

    a, b = rows(free), rows(clipped)
    key = (0, "user_embedding.weight")
    assert a[key]["grad_norm"] == pytest.approx(b[key]["grad_norm"])      # same first step, norm before clipping
    assert b[key]["grad_norm"] > 1e-3
    assert any(not torch.equal(x, y) for x, y in zip(free.best_state.values(), clipped.best_state.values()))
