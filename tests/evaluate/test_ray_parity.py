"""Sharded evaluation over Ray Data equals single-process evaluation exactly (values, lists, scores)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys.evaluate._ray import evaluate_many_ray, evaluate_split_ray, plan_actors
from recsys.evaluate.config import EvalConfig
from recsys.evaluate.context import EvalContext, evaluate_split
from recsys.models.mf import MFConfig
from recsys.models.registry import build_model
from recsys.train.data import TrainingData


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Score in this process with the one thread each actor gets: a matrix product may round differently
    with another thread count (the rows of a batch are split differently), and parity is bitwise."""
    yield


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
def test_sharded_rows_of_several_models_and_splits_equal_single_process_rows():
    model, ctx = _world()
    other, _ = _world(seed=1)
    cfg = EvalConfig(k=[3, 10], memory_budget_mb=1, engine="ray")
    sharded = evaluate_many_ray({"a": model, "b": other}, ctx, ["val", "test"], cfg, n_shards=3)
    for name, m in (("a", model), ("b", other)):
        for split in ("val", "test"):
            local = evaluate_split(m.scorer(), ctx, split, cfg)
            assert local.n_users > 3 * 16                  # several batches of 16 users, so three shards
            _assert_identical(local, sharded[name][split])
    assert sharded["a"]["test"].n_excluded == 10


@pytest.mark.ray
def test_sharded_sampled_protocol_rows_equal_single_process_rows():
    model, ctx = _world()
    cfg = EvalConfig(k=[3, 10], protocol="pop100", memory_budget_mb=1, engine="ray")
    _assert_identical(evaluate_split(model.scorer(), ctx, "test", cfg),
                      evaluate_split_ray(model, ctx, "test", cfg, n_shards=3))


def test_actor_plan_leaves_a_cpu_for_ray_data():
    assert plan_actors({"CPU": 2.0}, 10) == (1, 1.0)
    assert plan_actors({"CPU": 16.0}, 4) == (4, 1.0)
    assert plan_actors({}, 4) == (1, 0.01)
