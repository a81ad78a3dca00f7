"""Beyond-accuracy metrics: hand-computed cases and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.errors import DataError
from recsys.evaluate.beyond import (
    CatalogueStats,
    average_popularity,
    beyond_at_ks,
    exposure_counts,
    gini_of_exposure,
    held_out_popularity,
    intra_list_diversity,
    item_coverage,
    long_tail_mask,
    long_tail_share,
    novelty,
)
from recsys.evaluate.useritems import UserItems

LISTS = np.array([[0, 1, 2], [0, 3, -1]])          # second list is short (padded)


def test_coverage_and_gini_hand_computed():
    assert item_coverage(LISTS, n_items=5, k=3) == 4 / 5
    assert item_coverage(LISTS, n_items=5, k=1) == 1 / 5
    # exposure at k=3: [2, 1, 1, 1, 0] -> ascending [0, 1, 1, 1, 2], weights (2i - n - 1) = [-4, -2, 0, 2, 4]
    assert exposure_counts(LISTS, 5, 3).tolist() == [2, 1, 1, 1, 0]
    assert gini_of_exposure(LISTS, n_items=5, k=3) == pytest.approx((0 * -4 + 1 * -2 + 0 + 2 + 2 * 4) / (5 * 5))
    assert gini_of_exposure(np.array([[0], [1]]), n_items=2, k=1) == 0.0
    assert math.isnan(gini_of_exposure(np.array([[-1]]), n_items=2, k=1))


def test_novelty_popularity_long_tail_hand_computed():
    users_per_item = np.array([8, 4, 2, 0, 1])
    assert novelty(LISTS, users_per_item, n_users=8, k=3).tolist() == [(0 + 1 + 2) / 3, (0 + 3) / 2]
    assert average_popularity(LISTS, users_per_item, k=3).tolist() == [14 / 3, 4.0]
    tail = long_tail_mask(users_per_item, head_fraction=0.4)       # head: the 2 most popular items 0 and 1
    assert tail.tolist() == [False, False, True, True, True]
    assert long_tail_share(LISTS, tail, k=3).tolist() == [1 / 3, 1 / 2]
    assert long_tail_share(LISTS, tail, k=1).tolist() == [0.0, 0.0]


def test_intra_list_diversity_hand_computed():
    vectors = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.0, 0.0]])
    cos_02 = 1 / math.sqrt(2)
    # list [0, 1, 2]: distances 1, 1 - cos_02, 1 - cos_02 (item 1 and 2 also at 45 degrees)
    expected = (1 + 2 * (1 - cos_02)) / 3
    out = intra_list_diversity(np.array([[0, 1, 2], [0, 3, -1], [2, -1, -1]]), vectors, k=3, chunk_users=2)
    assert out[0] == pytest.approx(expected)
    assert out[1] == pytest.approx(1.0)          # a zero vector has cosine 0 with everything
    assert math.isnan(out[2])                    # one item: no pair


def test_held_out_popularity_is_the_test_side_of_arp():
    relevant = UserItems.from_pairs([0, 0, 2], [1, 4, 0], n_users=3, n_items=5)
    out = held_out_popularity(relevant, np.array([0, 1, 2]), np.array([8, 4, 2, 0, 1]))
    assert out[0] == 2.5 and math.isnan(out[1]) and out[2] == 8


def test_catalogue_stats_from_train_and_checks():
    train = UserItems.from_pairs([0, 1, 2, 2], [0, 0, 0, 1], n_users=3, n_items=4)
    stats = CatalogueStats.from_train(train, head_fraction=0.25)
    assert stats.popularity.tolist() == [3, 1, 0, 0] and stats.n_users == 3
    assert stats.long_tail.tolist() == [False, True, True, True]
    values = beyond_at_ks(np.array([[1, 0]]), [1, 2], stats)
    assert values["novelty@1"].tolist() == [math.log2(3)]
    assert values["novelty@2"].tolist() == [math.log2(3) / 2]
    with pytest.raises(DataError, match="4 items"):
        CatalogueStats.from_train(train, item_vectors=np.zeros((3, 2)))
    with pytest.raises(DataError, match="head_fraction"):
        long_tail_mask(np.array([1, 2]), head_fraction=2)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.integers(1, 6), st.integers(1, 5), st.integers(0, 2**31))
def test_bounds(n_users, k, n_extra, seed):
    rng = np.random.default_rng(seed)
    n_items = k + n_extra
    lists = np.stack([rng.permutation(n_items)[:k] for _ in range(n_users)])
    lists[rng.random(lists.shape) < 0.2] = -1
    lists = -np.sort(-lists, axis=1)                       # padding at the end, as the kernel pads
    popularity = rng.integers(0, 10, n_items)
    assert 0 <= item_coverage(lists, n_items, k) <= 1
    gini = gini_of_exposure(lists, n_items, k)
    assert math.isnan(gini) or 0 <= gini < 1
    share = long_tail_share(lists, long_tail_mask(popularity), k)
    assert np.all(np.isnan(share) | ((share >= 0) & (share <= 1)))
    diversity = intra_list_diversity(lists, rng.normal(size=(n_items, 3)), k)
    assert np.all(np.isnan(diversity) | ((diversity >= -1e-12) & (diversity <= 2 + 1e-12)))
    assert np.all(np.isnan(n := novelty(lists, popularity, 10, k)) | (n >= 0))
