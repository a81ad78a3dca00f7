"""EvalContext: masks per split, ids and sets read from a prepared dataset, seen items never recommended."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys.data.config import DataConfig, DatasetConfig, SplitConfig, SyntheticConfig
from recsys.data.prepare import prepare
from recsys.errors import ConfigError, DataError
from recsys.evaluate.config import EvalConfig
from recsys.evaluate.context import EvalContext, evaluate_split


def _random_context(seed=0, n_users=50, n_items=40) -> EvalContext:
    rng = np.random.default_rng(seed)
    pairs = [(rng.integers(0, n_users, n), rng.integers(0, n_items, n)) for n in (400, 60, 60)]
    return EvalContext.from_arrays(*pairs, n_users=n_users, n_items=n_items)


def test_masks_are_train_for_val_and_train_and_val_for_test():
    ctx = _random_context()
    relevant, seen = ctx.masks("val")
    assert relevant is ctx.val and seen is ctx.train
    relevant, seen = ctx.masks("test")
    assert relevant is ctx.test
    for user in range(ctx.n_users):
        assert seen.row(user).tolist() == sorted(set(ctx.train.row(user)) | set(ctx.val.row(user)))
    with pytest.raises(ConfigError, match="eval.splits"):
        ctx.masks("train")


@pytest.mark.parametrize("split", ["val", "test"])
def test_a_seen_item_is_never_in_a_top_k_list_even_when_it_scores_highest(split):
    ctx = _random_context(1)
    _, seen = ctx.masks(split)
    # scores: seen items 100 + noise, others noise: an unmasked ranking would list seen items first
    rng = np.random.default_rng(2)
    table = torch.tensor(rng.random((ctx.n_users, ctx.n_items)), dtype=torch.float32)
    rows_, items_ = seen.pairs()
    table[rows_, items_] += 100.0

    def score(users: torch.Tensor) -> torch.Tensor:
        return table[users].clone()

    rows = evaluate_split(score, ctx, split, EvalConfig(k=[10], memory_budget_mb=1))
    listed = rows.topk_items[rows.evaluated]
    assert (listed >= 0).any()
    assert not seen.contains(rows.user_idx[rows.evaluated], listed).any()
    # each list is the best unseen items, in score order
    for user, items in zip(rows.user_idx[rows.evaluated], listed):
        unseen = np.setdiff1d(np.arange(ctx.n_items), seen.row(user))
        best = unseen[np.argsort(-table[user, unseen].numpy(), kind="stable")][:10]
        assert items[items >= 0].tolist() == best.tolist()


def test_context_from_a_prepared_dataset_matches_its_splits_and_ids(tmp_path):
    dataset = DatasetConfig(synthetic=SyntheticConfig(n_users=40, n_items=30, n_topics=2,
                                                      mean_interactions_per_user=6, chunk_users=40))
    prepared = prepare(dataset, DataConfig(cache_dir=str(tmp_path), engine="local"), SplitConfig())
    ctx = EvalContext.from_prepared(prepared, np.ones((prepared.item_map().height, 3)), EvalConfig())
    assert (ctx.n_users, ctx.n_items) == (prepared.user_map().height, prepared.item_map().height)
    for name, sets in (("train", ctx.train), ("val", ctx.val), ("test", ctx.test)):
        frame = prepared.split(name)
        ids = set(zip(frame["user_id"].to_list(), frame["item_id"].to_list()))
        users, items = sets.pairs()
        assert set(zip(ctx.user_ids[users], ctx.item_ids[items])) == ids
    assert ctx.stats.item_vectors is not None
    assert ctx.stats.popularity.sum() == ctx.train.counts().sum()
    np.testing.assert_array_equal(ctx.cold_items(), prepared.item_map().sort("item_idx")["is_cold"].to_numpy())
    with pytest.raises(DataError, match="item vectors"):
        EvalContext.from_prepared(prepared, np.ones((3, 3)), EvalConfig())
