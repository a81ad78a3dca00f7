"""Accuracy metrics: hand-computed cases, properties, and scikit-learn as an independent reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import ndcg_score, roc_auc_score

from recsys.errors import ConfigError, DataError
from recsys.evaluate.metrics import (
    accuracy_at_ks,
    auc_from_ranks,
    average_precision_at_k,
    f1_at_k,
    hit_rate_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    reciprocal_rank_at_k,
)
from recsys.evaluate.rows import evaluate_users
from recsys.evaluate.useritems import UserItems

# One user, list of 5, relevant items at ranks 2 and 4, and 3 relevant items in total.
HITS = np.array([[False, True, False, True, False]])
N_REL = np.array([3])


def test_hand_computed_precision_recall_f1():
    assert precision_at_k(HITS, 2).tolist() == [0.5]
    assert precision_at_k(HITS, 5).tolist() == [0.4]
    assert recall_at_k(HITS, N_REL, 2).tolist() == [1 / 3]
    assert recall_at_k(HITS, N_REL, 4).tolist() == [2 / 3]
    assert recall_at_k(HITS, N_REL, 2, denominator="min_k").tolist() == [0.5]    # 1 / min(2, 3)
    p, r = 0.4, 2 / 3
    assert f1_at_k(HITS, N_REL, 5) == pytest.approx([2 * p * r / (p + r)])
    assert f1_at_k(HITS, N_REL, 1).tolist() == [0.0]


def test_hand_computed_ndcg():
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)        # min(5, 3) = 3 relevant at the top
    assert ndcg_at_k(HITS, N_REL, 5) == pytest.approx([dcg / idcg])
    # k = 2: ideal has min(2, 3) = 2 items
    assert ndcg_at_k(HITS, N_REL, 2) == pytest.approx([(1 / math.log2(3)) / (1 + 1 / math.log2(3))])


def test_hand_computed_map_mrr_hit_rate():
    assert average_precision_at_k(HITS, N_REL, 5) == pytest.approx([(1 / 2 + 2 / 4) / 3])
    assert average_precision_at_k(HITS, N_REL, 2) == pytest.approx([(1 / 2) / 2])      # / min(2, 3)
    assert reciprocal_rank_at_k(HITS, 5).tolist() == [0.5]
    assert reciprocal_rank_at_k(HITS, 1).tolist() == [0.0]
    assert hit_rate_at_k(HITS, 1).tolist() == [0.0]
    assert hit_rate_at_k(HITS, 2).tolist() == [1.0]


def test_lists_shorter_than_k_count_as_misses():
    short = np.array([[True]])
    assert precision_at_k(short, 4).tolist() == [0.25]
    assert ndcg_at_k(short, [1], 4).tolist() == [1.0]


def test_hand_computed_auc_with_ties():
    # unseen items scored [3, 2, 2, 1, 0]; relevant: item 1 (2.0) and item 4 (0.0); negatives 3, 2, 1
    # pairs: item1 vs {3: lose, 2: tie, 1: win} = 1.5; item4 vs all: 0  -> 1.5 / 6
    auc = auc_from_ranks(row=[0, 0], score=[2.0, 0.0], n_above=[1, 4], n_tied=[1, 0], n_candidates=[5], n_rows=1)
    assert auc.tolist() == [0.25]


def test_auc_is_undefined_without_negatives_and_ignores_masked_pairs():
    auc = auc_from_ranks(row=[0, 0, 1], score=[1.0, -np.inf, 1.0], n_above=[0, -1, 0], n_tied=[0, -1, 0],
                         n_candidates=[2, 1], n_rows=2)
    assert auc[0] == 1.0 and np.isnan(auc[1])


def test_users_without_relevant_items_are_undefined_not_zero():
    assert np.isnan(recall_at_k(np.array([[False]]), [0], 1)[0])
    assert np.isnan(ndcg_at_k(np.array([[False]]), [0], 1)[0])


def test_bad_inputs_are_named():
    with pytest.raises(DataError, match="more hits than relevant"):
        recall_at_k(np.array([[True, True]]), [1], 2)
    with pytest.raises(DataError, match="boolean matrix"):
        precision_at_k(np.array([[1, 0]]), 1)
    with pytest.raises(ConfigError, match="eval.k"):
        precision_at_k(HITS, 0)
    with pytest.raises(ConfigError, match="eval.recall_denominator"):
        recall_at_k(HITS, N_REL, 2, denominator="k")


@st.composite
def hit_matrices(draw):
    n_users = draw(st.integers(1, 6))
    width = draw(st.integers(1, 8))
    hits = np.array(draw(st.lists(st.lists(st.booleans(), min_size=width, max_size=width),
                                  min_size=n_users, max_size=n_users)), dtype=bool).reshape(n_users, width)
    extra = np.array(draw(st.lists(st.integers(0, 5), min_size=n_users, max_size=n_users)))
    n_relevant = np.maximum(hits.sum(axis=1) + extra, 1)
    return hits, n_relevant, draw(st.integers(1, 10))


@settings(max_examples=60, deadline=None)
@given(hit_matrices())
def test_metrics_lie_in_unit_interval(case):
    hits, n_relevant, k = case
    for name, values in accuracy_at_ks(hits, n_relevant, [k]).items():
        assert np.all((values >= 0) & (values <= 1 + 1e-12)), name
    assert np.all(recall_at_k(hits, n_relevant, k, "min_k") <= 1 + 1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 8))
def test_a_perfect_list_scores_one(n_relevant, k):
    hits = (np.arange(max(k, n_relevant)) < n_relevant)[None, :]
    values = accuracy_at_ks(hits, [n_relevant], [k])
    for name in ("ndcg", "map", "mrr", "hit_rate"):
        assert values[f"{name}@{k}"] == pytest.approx([1.0]), name
    assert recall_at_k(hits, [n_relevant], k, "min_k") == pytest.approx([1.0])
    assert precision_at_k(hits, k) == pytest.approx([min(n_relevant, k) / k])


def _score_matrix(draw, n_users, n_items, distinct):
    if distinct:
        return np.stack([np.random.default_rng(draw(st.integers(0, 2**31))).permutation(n_items)
                         for _ in range(n_users)]).astype(np.float32)
    return np.array(draw(st.lists(st.integers(0, 3), min_size=n_users * n_items, max_size=n_users * n_items)),
                    dtype=np.float32).reshape(n_users, n_items)


@st.composite
def ranking_cases(draw, distinct=True):
    n_users, n_items = draw(st.integers(1, 5)), draw(st.integers(3, 12))
    scores = _score_matrix(draw, n_users, n_items, distinct)
    cells = st.tuples(st.integers(0, n_users - 1), st.integers(0, n_items - 1))
    seen_pairs = draw(st.lists(cells, max_size=n_users * n_items // 3))
    rel_pairs = draw(st.lists(cells, min_size=1, max_size=n_users * n_items // 2))
    return scores, seen_pairs, rel_pairs


def _sets(pairs, n_users, n_items):
    users = [u for u, _ in pairs]
    items = [i for _, i in pairs]
    return UserItems.from_pairs(np.array(users, dtype=np.int64), np.array(items, dtype=np.int64),
                                n_users=n_users, n_items=n_items)


def _evaluate(scores, seen_pairs, rel_pairs, ks, **options):
    n_users, n_items = scores.shape
    table = torch.from_numpy(scores)
    return evaluate_users(lambda u: table[u], np.arange(n_users), _sets(rel_pairs, n_users, n_items), ks,
                          seen=_sets(seen_pairs, n_users, n_items), **options)


@settings(max_examples=50, deadline=None)
@given(ranking_cases(distinct=True), st.integers(1, 6))
def test_ndcg_matches_scikit_learn(case, k):
    scores, seen_pairs, rel_pairs = case
    rows = _evaluate(scores, seen_pairs, rel_pairs, [k], auc=False)
    seen = _sets(seen_pairs, *scores.shape)
    relevant = _sets(rel_pairs, *scores.shape)
    for position, user in enumerate(rows.user_idx):
        if rows.n_relevant[position] == 0:
            continue
        candidates = np.setdiff1d(np.arange(scores.shape[1]), seen.row(user))
        truth = np.isin(candidates, relevant.row(user)).astype(float)
        if len(candidates) < 2:
            continue                       # scikit-learn refuses a single document
        expected = ndcg_score(truth[None, :], scores[user, candidates][None, :], k=k)
        assert rows.values[f"ndcg@{k}"][position] == pytest.approx(expected, abs=1e-9)


@settings(max_examples=50, deadline=None)
@given(ranking_cases(distinct=False))
def test_auc_matches_scikit_learn_with_ties(case):
    scores, seen_pairs, rel_pairs = case
    rows = _evaluate(scores, seen_pairs, rel_pairs, [2], auc=True, memory_budget_bytes=8 * scores.shape[1])
    seen = _sets(seen_pairs, *scores.shape)
    relevant = _sets(rel_pairs, *scores.shape)
    for position, user in enumerate(rows.user_idx):
        candidates = np.setdiff1d(np.arange(scores.shape[1]), seen.row(user))
        truth = np.isin(candidates, relevant.row(user))
        if rows.n_relevant[position] == 0 or truth.all():
            continue
        expected = roc_auc_score(truth, scores[user, candidates])
        assert rows.values["auc"][position] == pytest.approx(expected, abs=1e-12)


def test_the_ndcg_reference_tells_definition_choices_apart():
    # 3 relevant items, k = 2, both top slots relevant. An ideal DCG over all 3 relevant items
    # (a common mistake) gives 0.77; scikit-learn and we use min(k, |relevant|) and give 1.
    expected = ndcg_score(np.array([[1.0, 1.0, 1.0, 0.0]]), np.array([[4.0, 3.0, 2.0, 1.0]]), k=2)
    wrong = (1 + 1 / math.log2(3)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    assert wrong != pytest.approx(expected)
    assert ndcg_at_k(np.array([[True, True]]), [3], 2) == pytest.approx([expected])


@settings(max_examples=40, deadline=None)
@given(ranking_cases(distinct=True), st.integers(0, 2**31))
def test_relabelling_items_changes_no_metric(case, seed):
    scores, seen_pairs, rel_pairs = case
    n_items = scores.shape[1]
    new_label = np.random.default_rng(seed).permutation(n_items)     # old item i becomes new_label[i]
    relabelled = np.empty_like(scores)
    relabelled[:, new_label] = scores
    moved = lambda pairs: [(u, int(new_label[i])) for u, i in pairs]  # noqa: E731
    before = _evaluate(scores, seen_pairs, rel_pairs, [1, 3], auc=True)
    after = _evaluate(relabelled, moved(seen_pairs), moved(rel_pairs), [1, 3], auc=True)
    for name, values in before.values.items():
        np.testing.assert_allclose(after.values[name], values, err_msg=name)
    assert np.array_equal(np.where(before.topk_items >= 0, new_label[before.topk_items], -1), after.topk_items)


def test_perfect_scorer_end_to_end():
    # every user's held-out items get the highest scores: each metric reaches its best value
    relevant = UserItems.from_pairs([0, 0, 1], [3, 5, 0], n_users=2, n_items=6)
    seen = UserItems.from_pairs([0, 1], [1, 2], n_users=2, n_items=6)
    scores = torch.zeros(2, 6)
    scores[0, [3, 5]] = 1.0
    scores[1, 0] = 1.0
    rows = evaluate_users(lambda u: scores[u], [0, 1], relevant, [1, 2], seen=seen)
    for name in ("ndcg@2", "map@2", "mrr@2", "hit_rate@2", "recall@2", "auc", "ndcg@1", "precision@1"):
        assert rows.values[name].tolist() == [1.0, 1.0], name
    assert rows.values["precision@2"].tolist() == [1.0, 0.5]
