"""Sampled protocols: hand-computed ranks, what negatives may be, reproducibility, and agreement with full ranking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys.errors import ConfigError
from recsys.evaluate.rows import evaluate_users
from recsys.evaluate.sampled import evaluate_sampled, sample_negatives
from recsys.evaluate.topk import factor_scorer
from recsys.evaluate.useritems import UserItems
from tests.evaluate.worlds import random_pairs, random_world

ITEM_SCORES = torch.tensor([[6.0], [5.0], [4.0], [3.0], [2.0], [1.0]])


def _hand_case():
    # user 0 likes item 0 best, user 1 the reverse, user 2 is excluded, user 3 scores every item 0
    score = factor_scorer(torch.tensor([[1.0], [-1.0], [1.0], [0.0]]), ITEM_SCORES)
    seen = UserItems.from_pairs([0, 1, 2], [0, 5, 3], n_users=4, n_items=6)
    relevant = UserItems.from_pairs([0, 0, 1, 1, 2, 3], [1, 4, 5, 2, 3, 2], n_users=4, n_items=6)
    return score, seen, relevant


def test_hand_computed_ranks_and_metrics():
    score, seen, relevant = _hand_case()
    rows = evaluate_sampled(score, [0, 1, 2, 3], relevant, [1, 3], seen=seen, popularity=np.ones(6),
                            protocol="uni100")
    v = rows.values
    # user 0: negatives {2, 3, 5}; item 1 ranks 1st (auc 1), item 4 ranks 3rd (2 above, auc 1/3)
    # user 1: item 5 is masked; item 2 (score -4) against {0, 1, 3, 4}: 2 above, rank 3, auc 2/4
    # user 3: all scores tie; item 2 ranks after the lower indices 0 and 1: rank 3, auc (5 - 2.5) / 5
    assert rows.n_relevant.tolist() == [2, 1, 0, 1] and rows.n_masked.tolist() == [0, 1, 1, 0]
    np.testing.assert_allclose(v["hit_rate@1"], [0.5, 0.0, np.nan, 0.0])
    np.testing.assert_allclose(v["ndcg@3"], [(1 + 0.5) / 2, 0.5, np.nan, 0.5])
    np.testing.assert_allclose(v["mrr@3"], [(1 + 1 / 3) / 2, 1 / 3, np.nan, 1 / 3])
    np.testing.assert_allclose(v["precision@3"], [1 / 3, 1 / 3, np.nan, 1 / 3])
    np.testing.assert_allclose(v["recall@1"], [0.5, 0.0, np.nan, 0.0])
    np.testing.assert_allclose(v["f1@3"], [0.5, 0.5, np.nan, 0.5])
    np.testing.assert_allclose(v["auc"], [(1 + 1 / 3) / 2, 0.5, np.nan, 0.5])
    assert (rows.topk_items == -1).all()                         # no lists under a sampled protocol


def test_negatives_are_never_seen_nor_held_out_and_fill_100_when_possible():
    rng = np.random.default_rng(0)
    n_users, n_items = 30, 400
    seen = UserItems.from_pairs(rng.integers(0, n_users, 900), rng.integers(0, n_items, 900),
                                n_users=n_users, n_items=n_items)
    held = UserItems.from_pairs(rng.integers(0, n_users, 90), rng.integers(0, n_items, 90),
                                n_users=n_users, n_items=n_items)
    excluded = held.union(seen)
    users, positives = held.pairs()
    for protocol in ("uni100", "pop100"):
        negatives = sample_negatives(users, positives, excluded, 100, protocol=protocol,
                                     popularity=np.arange(n_items) % 7 + 1, seed=1)
        assert negatives.shape == (len(users), 100) and (negatives >= 0).all()
        assert not excluded.contains(users, negatives).any()
        assert all(len(np.unique(row)) == 100 for row in negatives)


def test_a_user_who_has_seen_most_items_gets_every_eligible_item_once():
    n_items = 400
    excluded = UserItems.from_pairs(np.zeros(360, np.int64), np.arange(360), n_users=1, n_items=n_items)
    for protocol in ("uni100", "pop100"):
        negatives = sample_negatives([0, 0], [3, 5], excluded, 100, protocol=protocol, popularity=np.ones(n_items))
        assert negatives[:, :40].tolist() == [list(range(360, 400))] * 2 and (negatives[:, 40:] == -1).all()


def test_uniform_draws_are_uniform_and_popularity_draws_follow_popularity():
    n_items, n_pairs = 50, 4000
    users = np.arange(n_pairs)
    excluded = UserItems.from_pairs(users, np.zeros(n_pairs, np.int64), n_users=n_pairs, n_items=n_items)
    uniform = sample_negatives(users, np.zeros(n_pairs, np.int64), excluded, 10, protocol="uni100")
    counts = np.bincount(uniform.ravel(), minlength=n_items)
    assert counts[0] == 0
    expected = n_pairs * 10 / 49                         # each of the 49 eligible items, p = 10/49 per pair
    assert np.abs(counts[1:] - expected).max() < 6 * np.sqrt(expected)
    popularity = np.zeros(n_items)
    popularity[1:] = np.arange(1, n_items) % 5            # items with popularity 0 are never drawn
    first = sample_negatives(users, np.zeros(n_pairs, np.int64), excluded, 1, protocol="pop100",
                             popularity=popularity)[:, 0]
    counts = np.bincount(first, minlength=n_items)
    assert counts[popularity == 0].sum() == 0
    share = popularity / popularity.sum()
    assert np.abs(counts / n_pairs - share).max() < 0.02


def test_draws_are_reproducible_and_independent_of_batching():
    rng = np.random.default_rng(3)
    n_users, n_items = 40, 300
    score, seen = random_world(rng, n_users, n_items, dim=4, n_seen=400)
    relevant = random_pairs(rng, n_users, n_items, 80)
    users = np.flatnonzero(relevant.counts())
    kwargs = dict(seen=seen, popularity=np.bincount(seen.indices, minlength=n_items),
                  protocol="pop100", seed=5)
    whole = evaluate_sampled(score, users, relevant, [10], **kwargs)
    small = evaluate_sampled(score, users, relevant, [10], memory_budget_bytes=3 * n_items * 4, **kwargs)
    other_seed = evaluate_sampled(score, users, relevant, [10], **dict(kwargs, seed=6))
    for name in whole.values:
        np.testing.assert_array_equal(whole.values[name], small.values[name])
    assert not np.array_equal(np.nan_to_num(whole.values["auc"]), np.nan_to_num(other_seed.values["auc"]))


def test_with_every_item_a_candidate_uni100_equals_full_ranking():
    # fewer than 100 eligible items and one held-out item per user: the sampled candidates are all items
    rng = np.random.default_rng(7)
    n_users, n_items = 25, 60
    score, seen = random_world(rng, n_users, n_items, dim=3, n_seen=200)
    relevant = UserItems.from_pairs(np.arange(n_users), rng.integers(0, n_items, n_users),
                                    n_users=n_users, n_items=n_items)
    users = np.arange(n_users)
    sampled = evaluate_sampled(score, users, relevant, [1, 5, 10], seen=seen, popularity=np.ones(n_items),
                               protocol="uni100")
    full = evaluate_users(score, users, relevant, [1, 5, 10], seen=seen, auc=True)
    for name in ("hit_rate@5", "ndcg@10", "mrr@10", "recall@1", "precision@5", "map@10", "auc"):
        np.testing.assert_allclose(sampled.values[name], full.values[name], rtol=1e-12, err_msg=name)


def test_unknown_protocol_is_named():
    score, seen, relevant = _hand_case()
    with pytest.raises(ConfigError, match="eval.protocol"):
        evaluate_sampled(score, [0], relevant, [1], seen=seen, popularity=np.ones(6), protocol="uni50")
