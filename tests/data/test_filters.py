"""Implicit feedback, deduplication and k-core: hand cases, a brute-force maximal core, properties."""

from __future__ import annotations

import itertools

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.data.filters import (
    count_duplicates,
    deduplicate,
    interaction_counts,
    kcore,
    kcore_is_stable,
    kcore_step,
    sum_counts,
    to_implicit,
)
from recsys.errors import ConfigError, DataError


def frame_of(rows):
    return pl.DataFrame(rows, schema={"user_id": pl.Utf8, "item_id": pl.Utf8, "timestamp": pl.Int64,
                                      "rating": pl.Float32}, orient="row")


def pairs(rows):
    return frame_of([(u, i, k, None) for k, (u, i) in enumerate(rows)])


# ---------------------------------------------------------------- implicit


def test_to_implicit_keeps_ratings_at_or_above_the_threshold():
    frame = frame_of([("u", "a", 1, 5.0), ("u", "b", 2, 3.5), ("u", "c", 3, 4.0), ("v", "a", 4, None)])
    kept, removed = to_implicit(frame, 4.0)
    assert kept["item_id"].to_list() == ["a", "c"] and removed == 2
    same, removed = to_implicit(frame, None)
    assert same.equals(frame) and removed == 0


def test_to_implicit_errors_name_the_setting():
    no_ratings = frame_of([("u", "a", 1, None)])
    with pytest.raises(DataError) as err:
        to_implicit(no_ratings, 4.0)
    assert "setting 'data.implicit_threshold': the interactions have no rating values" in str(err.value)
    with pytest.raises(DataError) as err:
        to_implicit(frame_of([("u", "a", 1, 3.0)]), 4.5)
    assert "no rating is >= 4.5 (largest 3), so nothing is left" in str(err.value)
    assert "lower data.implicit_threshold" in str(err.value)


# ---------------------------------------------------------------- duplicates

DUPES = frame_of([("u", "a", 1, 4.0), ("u", "a", 1, 2.0), ("u", "b", 1, 5.0), ("u", "a", 1, None),
                  ("v", "a", 1, 3.0), ("u", "a", 2, 1.0)])


def test_dedup_policies_by_hand():
    kept, removed = deduplicate(DUPES, "keep")
    assert kept.equals(DUPES) and removed == 0
    first, removed = deduplicate(DUPES, "first")
    assert removed == 2 and first.rows() == [("u", "b", 1, 5.0), ("u", "a", 1, None), ("v", "a", 1, 3.0),
                                             ("u", "a", 2, 1.0)]
    last, removed = deduplicate(DUPES, "last")
    assert removed == 2 and last.rows() == [("u", "a", 1, 4.0), ("u", "b", 1, 5.0), ("v", "a", 1, 3.0),
                                            ("u", "a", 2, 1.0)]
    assert count_duplicates(DUPES) == 2


def test_dedup_error_names_the_count_and_an_example():
    with pytest.raises(DataError) as err:
        deduplicate(DUPES, "error", source="ratings.csv")
    assert str(err.value) == (
        "ratings.csv, setting 'data.duplicates': 2 duplicate (user_id, item_id, timestamp) rows, e.g. "
        "user_id='u', item_id='a', timestamp=1 appears 3 times. What to do: set data.duplicates to keep, first "
        "or last, or remove the repeats from the source")
    kept, removed = deduplicate(DUPES.head(1), "error")
    assert kept.equals(DUPES.head(1)) and removed == 0


def test_unknown_dedup_policy():
    with pytest.raises(ConfigError, match="setting 'data.duplicates': unknown duplicate policy 'newest'"):
        deduplicate(DUPES, "newest")


dupe_rows = st.lists(st.tuples(st.sampled_from(["u", "v"]), st.sampled_from(["a", "b"]), st.integers(0, 2),
                               st.sampled_from([None, 1.0, 2.0, 5.0])), max_size=25)


@settings(max_examples=60, deadline=None)
@given(rows=dupe_rows, policy=st.sampled_from(["first", "last"]), data=st.data())
def test_dedup_is_independent_of_row_order(rows, policy, data):
    frame = frame_of(rows)
    kept, removed = deduplicate(frame, policy)
    assert count_duplicates(kept) == 0 and removed == count_duplicates(frame) == frame.height - kept.height
    order = data.draw(st.permutations(range(frame.height)))
    shuffled, _ = deduplicate(frame[list(order)] if frame.height else frame, policy)
    assert sorted(shuffled.rows(), key=repr) == sorted(kept.rows(), key=repr)
    ratings = kept.join(frame.group_by("user_id", "item_id", "timestamp").agg(
        pl.col("rating").min().alias("lo"), pl.col("rating").max().alias("hi"),
        pl.col("rating").null_count().alias("nulls")), on=["user_id", "item_id", "timestamp"])
    for row in ratings.iter_rows(named=True):
        if policy == "last":
            assert row["rating"] == row["hi"]
        else:
            assert row["rating"] is None if row["nulls"] else row["rating"] == row["lo"]


# ---------------------------------------------------------------- k-core

CHAIN = [("u1", "a"), ("u1", "b"), ("u2", "b"), ("u2", "c"), ("u3", "c"), ("u3", "d"), ("u4", "d")]
BLOCK = [("x", "p"), ("x", "q"), ("y", "p"), ("y", "q")]


def test_kcore_by_hand_peels_the_chain_and_keeps_the_dense_block():
    kept, history = kcore(pairs(CHAIN + BLOCK), 2, 2, 10)
    assert sorted(zip(kept["user_id"], kept["item_id"])) == sorted(BLOCK)
    # iteration 1 drops (u1,a) and (u4,d); 2 drops (u1,b),(u3,d); 3 drops (u2,b),(u3,c); 4 drops (u2,c)
    assert [h["n_removed"] for h in history] == [2, 2, 2, 1]
    assert history[-1] == {"iteration": 4, "n_rows": 4, "n_users": 2, "n_items": 2, "n_removed": 1}


def test_kcore_that_removes_everything_names_the_settings():
    with pytest.raises(ConfigError) as err:
        kcore(pairs(CHAIN), 2, 2, 10)
    assert "removes every interaction" in str(err.value) and "data.min_user_interactions" in str(err.value)


def test_kcore_that_does_not_settle_names_max_iterations():
    with pytest.raises(ConfigError) as err:
        kcore(pairs(CHAIN + BLOCK), 2, 2, 2)
    assert "setting 'data.kcore_max_iterations'" in str(err.value) and "after 2 iterations" in str(err.value)
    kept, history = kcore(pairs(CHAIN + BLOCK), 2, 2, 4)   # exactly enough removal iterations
    assert kept.height == 4 and len(history) == 4


def test_kcore_disabled_and_bad_settings():
    frame = pairs(CHAIN)
    kept, history = kcore(frame, 1, 0, 5)
    assert kept.equals(frame) and history == []
    with pytest.raises(ConfigError, match="setting 'data.min_item_interactions': expected an integer >= 0"):
        kcore(frame, 2, -1, 5)


def brute_force_core(rows, min_user, min_item):
    """Union of every subset that satisfies the thresholds = the maximal one."""
    best = set()
    for mask in itertools.product([False, True], repeat=len(rows)):
        chosen = [k for k, keep in enumerate(mask) if keep]
        users, items = {}, {}
        for k in chosen:
            users[rows[k][0]] = users.get(rows[k][0], 0) + 1
            items[rows[k][1]] = items.get(rows[k][1], 0) + 1
        if all(v >= min_user for v in users.values()) and all(v >= min_item for v in items.values()):
            best |= set(chosen)
    return best


small_graphs = st.lists(st.tuples(st.sampled_from(["u1", "u2", "u3", "u4"]), st.sampled_from(["a", "b", "c"])),
                        min_size=1, max_size=10)


@settings(max_examples=40, deadline=None)
@given(rows=small_graphs, min_user=st.integers(0, 3), min_item=st.integers(0, 3))
def test_kcore_is_the_maximal_subset_meeting_the_thresholds(rows, min_user, min_item):
    frame = pairs(rows)
    expected = brute_force_core(rows, min_user, min_item)
    try:
        kept, _ = kcore(frame, min_user, min_item, 50)
    except ConfigError:
        assert expected == set()
        return
    assert set(kept["timestamp"].to_list()) == expected   # timestamp is the row number here
    assert kcore_is_stable(interaction_counts(kept, "user_id"), interaction_counts(kept, "item_id"),
                           min_user, min_item)


def test_kcore_from_block_count_tables_matches_the_single_frame():
    frame = pairs(CHAIN + BLOCK + [("x", "r"), ("z", "p"), ("z", "q"), ("y", "r")])
    blocks = [frame.filter(pl.col("user_id").is_in(group)) for group in (["u1", "u2", "x"], ["u3", "u4", "y", "z"])]
    while True:
        users = sum_counts([interaction_counts(b, "user_id") for b in blocks], "user_id")
        items = sum_counts([interaction_counts(b, "item_id") for b in blocks], "item_id")
        if kcore_is_stable(users, items, 2, 3):
            break
        blocks = [kcore_step(b, users, items, 2, 3)[0] for b in blocks]
    expected, _ = kcore(frame, 2, 3, 50)
    assert sorted(pl.concat(blocks).rows()) == sorted(expected.rows())
    # r has 2 users (< 3): the core is users x, y, z with items p, q
    assert expected.height == 6 and sorted(set(expected["item_id"])) == ["p", "q"]
