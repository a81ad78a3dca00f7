"""Per-user rows (map), combine (reduce), and summaries with bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys.errors import ConfigError, DataError
from recsys.evaluate.aggregate import bootstrap_means, percentile_interval, summarize, summarize_values
from recsys.evaluate.beyond import CatalogueStats
from recsys.evaluate.rows import MetricRows, combine, evaluable_users, evaluate_users, shard_users
from recsys.evaluate.topk import batch_size_for, factor_scorer
from recsys.evaluate.useritems import UserItems

N_USERS, N_ITEMS = 300, 120


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(7)
    # integer-valued factors: every score is exact in float32 whatever the batch shape, and ties occur
    users = torch.from_numpy(rng.integers(-2, 3, size=(N_USERS, 6)).astype(np.float32))
    items = torch.from_numpy(rng.integers(-2, 3, size=(N_ITEMS, 6)).astype(np.float32))
    train = UserItems.from_pairs(rng.integers(0, N_USERS, 3000), rng.integers(0, N_ITEMS, 3000),
                                 n_users=N_USERS, n_items=N_ITEMS)
    test = UserItems.from_pairs(rng.integers(0, N_USERS - 20, 900), rng.integers(0, N_ITEMS, 900),
                                n_users=N_USERS, n_items=N_ITEMS)        # the last 20 users have no test items
    stats = CatalogueStats.from_train(train, item_vectors=rng.normal(size=(N_ITEMS, 4)))
    return factor_scorer(users, items), train, test, stats


def _evaluate(world, users, **options):
    score, train, test, stats = world
    return evaluate_users(score, users, test, [1, 5, 10], seen=train, stats=stats, **options)


def _assert_same(a: MetricRows, b: MetricRows):
    assert np.array_equal(a.user_idx, b.user_idx)
    assert np.array_equal(a.topk_items, b.topk_items) and np.array_equal(a.topk_scores, b.topk_scores)
    assert np.array_equal(a.n_relevant, b.n_relevant) and np.array_equal(a.n_masked, b.n_masked)
    assert set(a.values) == set(b.values)
    for name in a.values:
        assert np.array_equal(a.values[name], b.values[name], equal_nan=True), name


def test_three_shards_combined_equal_one_evaluation(world):
    everyone = _evaluate(world, np.arange(N_USERS), memory_budget_bytes=64 * N_ITEMS * 4)
    shards = np.array_split(np.random.default_rng(0).permutation(N_USERS), 3)
    parts = [_evaluate(world, shard, memory_budget_bytes=size * N_ITEMS * 4) for shard, size in zip(shards, (7, 50, 1))]
    combined = combine(parts)
    _assert_same(combined, everyone)
    assert summarize(combined, n_samples=200, seed=3) == summarize(everyone, n_samples=200, seed=3)


def test_float_models_match_bitwise_when_shards_are_cut_on_batch_boundaries(world):
    _, train, test, stats = world
    rng = np.random.default_rng(3)
    score = factor_scorer(torch.randn(N_USERS, 16, generator=torch.Generator().manual_seed(0)),
                          torch.from_numpy(rng.normal(size=(N_ITEMS, 16)).astype(np.float32)))
    budget = 23 * N_ITEMS * 4
    users = torch.arange(N_USERS)
    one_by_one = torch.cat([score(users[i:i + 1]) for i in range(N_USERS)])
    in_batches = torch.cat([score(users[i:i + 23]) for i in range(0, N_USERS, 23)])
    assert not torch.equal(one_by_one, in_batches)     # the premise: a row's scores depend on its batch's shape
    options = dict(seen=train, stats=stats, memory_budget_bytes=budget)
    everyone = evaluate_users(score, np.arange(N_USERS), test, [1, 10], **options)
    shards = shard_users(evaluable_users(test, train), 3, batch_size_for(N_ITEMS, budget))
    assert len(shards) == 3 and all(len(shard) % 23 == 0 for shard in shards[:-1])
    others = np.setdiff1d(np.arange(N_USERS), evaluable_users(test, train))     # unscored: any shard will do
    shards[0] = np.r_[shards[0], others]
    combined = combine([evaluate_users(score, shard, test, [1, 10], **options) for shard in shards])
    _assert_same(combined, everyone)


def test_shard_users_cuts_on_batch_multiples():
    shards = shard_users(np.arange(100)[::-1], 4, batch_size=7)
    assert np.array_equal(np.concatenate(shards), np.arange(100))
    assert [len(s) for s in shards] == [28, 28, 28, 16]
    assert [len(s) for s in shard_users(np.arange(5), 10, batch_size=2)] == [2, 2, 1]
    assert shard_users(np.arange(0), 3, batch_size=2) == []


def test_rows_survive_a_round_trip_through_batch_columns(world):
    rows = _evaluate(world, np.arange(40))
    batch = rows.to_batch()
    as_lists = {**batch, "topk_items": list(batch["topk_items"]), "topk_scores": list(batch["topk_scores"])}
    _assert_same(MetricRows.from_batch(as_lists, n_items=N_ITEMS), rows)


def test_users_without_test_items_are_excluded_and_counted(world):
    score, train, test, _ = world
    rows = _evaluate(world, np.arange(N_USERS))
    held_out = test.difference(train).counts()
    assert rows.n_excluded == int(np.sum(held_out == 0)) >= 20
    excluded = rows.n_relevant == 0
    assert np.all(rows.topk_items[excluded] == -1)
    assert all(np.isnan(values[excluded]).all() for values in rows.values.values())
    assert np.array_equal(rows.n_masked, test.counts() - held_out)
    summary = {(r["metric"], r["k"]): r for r in summarize(rows, n_samples=100)}
    assert summary[("ndcg", 10)]["n_users"] == N_USERS - rows.n_excluded
    assert summary[("ndcg", 10)]["value"] == pytest.approx(np.nanmean(rows.values["ndcg@10"]))


def test_masked_held_out_items_are_dropped_from_relevance():
    relevant = UserItems.from_pairs([0, 0], [0, 1], n_users=1, n_items=3)
    seen = UserItems.from_pairs([0], [0], n_users=1, n_items=3)
    score = factor_scorer(torch.ones(1, 1), torch.tensor([[3.0], [2.0], [1.0]]))
    rows = evaluate_users(score, [0], relevant, [1], seen=seen)
    assert rows.n_relevant.tolist() == [1] and rows.n_masked.tolist() == [1]
    assert rows.values["recall@1"].tolist() == [1.0]


def test_summary_has_every_metric_and_exposure_rows(world):
    rows = _evaluate(world, np.arange(N_USERS))
    summary = summarize(rows, n_samples=100)
    names = {(r["metric"], r["k"]) for r in summary}
    for metric in ("precision", "recall", "f1", "ndcg", "map", "mrr", "hit_rate", "novelty", "diversity",
                   "popularity", "long_tail", "coverage", "gini"):
        assert {(metric, k) for k in (1, 5, 10)} <= names, metric
    assert ("auc", None) in names and ("test_popularity", None) in names
    for r in summary:
        if r["ci_low"] is not None:
            assert r["ci_low"] <= r["value"] <= r["ci_high"], r


def test_bootstrap_matches_a_plain_resampling_loop():
    rng = np.random.default_rng(0)
    values = rng.random((57, 2))
    values[3, 1] = np.nan
    fast = bootstrap_means(values, n_samples=300, seed=11)
    draws = np.random.default_rng(11).integers(0, 57, size=(300, 57))     # the same stream, one sample a row
    slow = np.array([np.nanmean(values[row], axis=0) for row in draws])
    np.testing.assert_allclose(fast, slow, rtol=1e-12)


def test_bootstrap_interval_is_seeded_and_covers_the_mean():
    values = {"ndcg@10": np.random.default_rng(1).random(500)}
    first = summarize_values(values, n_samples=500, seed=5)
    assert first == summarize_values(values, n_samples=500, seed=5)
    assert first != summarize_values(values, n_samples=500, seed=6)
    row = first[0]
    assert row["ci_low"] < row["value"] < row["ci_high"]
    # the interval of a mean of uniforms shrinks like 1/sqrt(n): about +-1.96 * 0.2887 / sqrt(500)
    assert row["ci_high"] - row["ci_low"] == pytest.approx(2 * 1.96 * 0.2887 / np.sqrt(500), rel=0.2)


def test_percentile_interval_ends():
    low, high = percentile_interval(np.arange(1001, dtype=float)[:, None], 0.95)
    assert low[0] == pytest.approx(25.0) and high[0] == pytest.approx(975.0)


def test_bad_settings_and_inputs_are_named(world):
    with pytest.raises(ConfigError, match="eval.bootstrap_samples"):
        summarize_values({"auc": np.ones(3)}, n_samples=0)
    with pytest.raises(ConfigError, match="eval.confidence"):
        summarize_values({"auc": np.ones(3)}, confidence=95)
    with pytest.raises(DataError, match="asked for twice"):
        _evaluate(world, [1, 1])
    with pytest.raises(DataError, match="more than one shard"):
        combine([_evaluate(world, [1, 2]), _evaluate(world, [2, 3])])
    with pytest.raises(ConfigError, match="eval.k"):
        evaluate_users(world[0], [1], world[2], [0])
