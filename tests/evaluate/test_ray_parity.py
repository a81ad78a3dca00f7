"""Sharded evaluation over Ray Data equals single-process evaluation exactly (values, lists, scores)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys.evaluate._ray import evaluate_split_ray, plan_actors
from recsys.evaluate.config import EvalConfig
from recsys.evaluate.context import EvalContext, evaluate_split
from recsys.models.mf import MFConfig
from recsys.models.registry import build_model
from recsys.train.data import TrainingData


def _world(seed=0, n_users=200, n_items=16_384):
    """An untrained mf model over a catalogue wide enough that a 1 MiB budget scores 16 users per batch."""
    rng = np.random.default_rng(seed)
    train = (rng.integers(0, n_users, 3000), rng.integers(0, n_items, 3000))
    val = (rng.integers(0, n_users, 150), rng.integers(0, n_items, 150))
    test_users = rng.integers(0, n_users - 10, 300)
    test_items = rng.integers(0, n_items, 300)
    late = np.isin(train[0], np.arange(n_users - 10, n_users))            # their only test items are seen ones
    test = (np.concatenate([test_users, train[0][late]]), np.concatenate([test_items, train[1][late]]))
    torch.manual_seed(seed)
    data = TrainingData.from_arrays(*train, n_users=n_users, n_items=n_items, val_users=val[0], val_items=val[1])
    model = build_model("mf", MFConfig(dim=8), data.model_inputs())
    ctx = EvalContext.from_arrays(train, val, test, n_users=n_users, n_items=n_items,
                                  item_vectors=rng.normal(size=(n_items, 4)))
    return model, ctx


def _assert_identical(a, b):
    np.testing.assert_array_equal(a.user_idx, b.user_idx)
    np.testing.assert_array_equal(a.n_relevant, b.n_relevant)
    np.testing.assert_array_equal(a.n_masked, b.n_masked)
    np.testing.assert_array_equal(a.topk_items, b.topk_items)
    np.testing.assert_array_equal(a.topk_scores, b.topk_scores)
    assert set(a.values) == set(b.values)
    for name in a.values:                                     # bitwise, NaN in the same places
        np.testing.assert_array_equal(a.values[name], b.values[name], err_msg=name)


@pytest.mark.ray
@pytest.mark.parametrize("protocol, split", [("full", "test"), ("uni100", "val")])
def test_sharded_rows_equal_single_process_rows(protocol, split):
    model, ctx = _world()
    cfg = EvalConfig(k=[3, 10], protocol=protocol, memory_budget_mb=1, engine="ray")
    local = evaluate_split(model.scorer(), ctx, split, cfg)
    sharded = evaluate_split_ray(model, ctx, split, cfg, n_shards=3)
    assert local.n_users > 3 * 16                          # several batches, so three shards
    assert local.n_excluded > 0 or split == "val"
    _assert_identical(local, sharded)


def test_actor_plan_leaves_a_cpu_for_ray_data():
    assert plan_actors({"CPU": 2.0}, 10) == (1, 1.0)
    assert plan_actors({"CPU": 16.0}, 4) == (4, 1.0)
    assert plan_actors({}, 4) == (1, 0.01)
