"""Lists from outside on a hand-computed case, the models' rules (masking, ties, missing users), and row order."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.errors import ConfigError
from recsys.evaluate.config import EvalConfig
from recsys.evaluate.context import EvalContext
from recsys.evaluate.external import check_lists_have_users, evaluate_lists, list_rows
from recsys.evaluate.external_files import ExternalListConfig

USERS, ITEMS = ["u0", "u1", "u2"], ["a", "b", "c", "d", "e"]


def tiny() -> EvalContext:
    """train u0:a u1:b u2:a; val u0:b; test u0:c,d u1:a (u2 has no test item)."""
    return EvalContext.from_arrays(train=([0, 1, 2], [0, 1, 0]), val=([0], [1]), test=([0, 0, 1], [2, 3, 0]),
                                   n_users=3, n_items=5, user_ids=USERS, item_ids=ITEMS)


def tiny_list() -> pl.DataFrame:
    rows = [("u0", "a", 5.0), ("u0", "b", 4.0), ("u0", "e", 3.0), ("u0", "d", 3.0), ("u0", "c", 1.0),
            ("u2", "c", 1.0), ("zz", "a", 1.0)]
    return pl.DataFrame(rows, schema=["user_id", "item_id", "score"], orient="row")


def test_hand_computed_test_split():
    rows, counts = list_rows(tiny_list(), tiny(), "test", ks=[2])
    # u0: a (train) and b (val) dropped; d and e tie at 3, d has the lower index: [d, e]; hits [1, 0], 2 relevant
    # u1: no row in the file: an empty list, zero hits, still evaluated; u2 has no test item
    assert rows.user_idx.tolist() == [0, 1]
    assert rows.topk_items.tolist() == [[3, 4], [-1, -1]]
    assert rows.topk_scores.tolist() == [[3.0, 3.0], [-math.inf, -math.inf]]
    ndcg = 1 / (1 + 1 / math.log2(3))
    expected = {"precision@2": [0.5, 0.0], "recall@2": [0.5, 0.0], "ndcg@2": [ndcg, 0.0], "hit_rate@2": [1.0, 0.0],
                "mrr@2": [1.0, 0.0], "map@2": [0.5, 0.0], "f1@2": [0.5, 0.0]}
    for name, values in expected.items():
        assert rows.values[name].tolist() == pytest.approx(values), name
    assert "auc" not in rows.values
    assert rows.values["popularity@2"][0] == 0.0 and math.isnan(rows.values["popularity@2"][1])
    assert rows.values["test_popularity"].tolist() == [0.0, 2.0]           # popularity of c, d and of a
    assert (counts.n_rows, counts.n_users, counts.n_unknown_users, counts.n_seen_dropped) == (7, 3, 1, 2)
    assert (counts.n_outside_split_users, counts.n_split_users, counts.n_missing_users) == (1, 2, 1)
    assert (counts.n_short_lists, counts.n_duplicate_rows, counts.k) == (0, 0, 2)


def test_validation_masks_only_train_items():
    rows, counts = list_rows(tiny_list(), tiny(), "val", ks=[1, 2])
    # val users: u0 only (item b); a is dropped, b ranks first
    assert rows.user_idx.tolist() == [0] and rows.topk_items.tolist() == [[1, 3]]
    assert rows.values["ndcg@2"].tolist() == [1.0] and rows.values["precision@1"].tolist() == [1.0]
    assert counts.n_seen_dropped == 1 and counts.n_outside_split_users == 1


def test_short_lists_duplicates_and_rank_conflicts_are_counted():
    frame = pl.DataFrame({"user_id": ["u0", "u0", "u0", "u1"], "item_id": ["c", "c", "e", "a"],
                          "score": [1.0, 2.0, 3.0, 1.0], "rank": [2, 3, 1, 1]})
    rows, counts = list_rows(frame, tiny(), "test", ks=[3])
    assert rows.topk_items.tolist() == [[4, 2, -1], [0, -1, -1]]          # the duplicate keeps c's best score (2)
    assert rows.topk_scores[0, :2].tolist() == [3.0, 2.0]
    assert counts.n_duplicate_rows == 1 and counts.n_short_lists == 2 and counts.n_missing_users == 0
    assert counts.n_rank_conflicts == 0                                    # ranks 1 (e, 3.0), 2 (c, best 2.0)
    conflicting = frame.with_columns(pl.Series("rank", [1, 1, 2, 1]))      # c ranked above e, scored below it
    assert list_rows(conflicting, tiny(), "test", ks=[3])[1].n_rank_conflicts == 1


def test_lists_are_skipped_and_said_so_where_they_cannot_be_evaluated(tmp_path, caplog):
    path = tmp_path / "l.parquet"
    tiny_list().write_parquet(path)
    lists = [ExternalListConfig("ext", str(path), split="test"), ExternalListConfig("ext", str(path), split="val")]
    rows, counts = evaluate_lists(lists, tiny(), EvalConfig(k=[2], splits=["test"]))
    assert list(rows["ext"]) == ["test"]
    assert [c.status for c in counts] == ["evaluated", "not evaluated: split val is not in eval.splits"]
    assert counts[0].unavailable_metrics == "auc"
    rows, counts = evaluate_lists(lists[:1], tiny(), EvalConfig(k=[2], splits=["test"], protocol="uni100"))
    assert rows == {} and counts[0].status.startswith("not evaluated: eval.protocol=uni100")
    assert "uni100" in caplog.text
    with pytest.raises(Exception, match="no list was evaluated"):
        check_lists_have_users(rows)
    with pytest.raises(ConfigError, match="also trained models' names"):
        evaluate_lists(lists, tiny(), EvalConfig(k=[2]), models=["ext", "mf"])


# ------------------------------------------------------------------ property: row order changes nothing


def reference_lists(frame: pl.DataFrame, ctx: EvalContext, split: str, k: int) -> dict[int, list[int]]:
    """Top-k item indices per evaluated user, one user at a time in plain Python (an independent reading of the rules)."""
    user_at = {u: i for i, u in enumerate(ctx.user_ids)}
    item_at = {it: i for i, it in enumerate(ctx.item_ids)}
    relevant, seen = ctx.masks(split)
    best: dict[tuple[int, int], float] = {}
    for user, item, score in frame.select("user_id", "item_id", "score").iter_rows():
        if user in user_at and item in item_at:
            key = (user_at[user], item_at[item])
            best[key] = max(score, best.get(key, -math.inf))
    out = {}
    for user in range(ctx.n_users):
        held = set(relevant.row(user).tolist()) - set(seen.row(user).tolist())
        if not held:
            continue
        mine = [(-s, i) for (u, i), s in best.items() if u == user and i not in set(seen.row(user).tolist())]
        out[user] = [i for _, i in sorted(mine)[:k]]
    return out


pairs = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 6)), max_size=20)
list_entries = st.lists(st.tuples(st.sampled_from(["0", "1", "2", "3", "4", "x"]),
                                  st.sampled_from(["0", "1", "2", "3", "4", "5", "6", "y"]),
                                  st.sampled_from([0.0, 0.5, 1.0, 2.0, -1.0])), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(train=pairs, val=pairs, test=pairs, entries=list_entries, seed=st.integers(0, 2**31 - 1),
       split=st.sampled_from(["val", "test"]), k=st.integers(1, 4))
def test_shuffling_the_rows_changes_nothing_and_lists_follow_the_rules(train, val, test, entries, seed, split, k):
    splits = [([u for u, _ in p], [i for _, i in p]) for p in (train, val, test)]
    ctx = EvalContext.from_arrays(*splits, n_users=5, n_items=7)
    frame = pl.DataFrame(entries, schema=["user_id", "item_id", "score"], orient="row")
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=seed)
    rows, counts = list_rows(frame, ctx, split, ks=[k])
    again, counts_again = list_rows(shuffled, ctx, split, ks=[k])
    assert counts == counts_again
    assert np.array_equal(rows.user_idx, again.user_idx) and np.array_equal(rows.topk_items, again.topk_items)
    assert np.array_equal(rows.topk_scores, again.topk_scores)
    for name, values in rows.values.items():
        np.testing.assert_array_equal(values, again.values[name])
    expected = reference_lists(frame, ctx, split, k)
    evaluated = rows.user_idx[rows.evaluated].tolist()
    assert evaluated == sorted(expected)
    for row, user in enumerate(rows.user_idx.tolist()):
        if user in expected:
            listed = [i for i in rows.topk_items[row].tolist() if i >= 0]
            assert listed == expected[user]


def test_lists_of_several_datasets_name_theirs(tmp_path):
    path = tmp_path / "l.csv"
    tiny_list().write_csv(path)
    ctx = tiny()                                                          # dataset label "arrays"
    lists = [ExternalListConfig("ext", str(path), dataset="arrays"), ExternalListConfig("ext", str(path), dataset="b")]
    rows, counts = evaluate_lists(lists, ctx, EvalConfig(k=[2], splits=["test"]), several_datasets=True)
    assert list(rows) == ["ext"] and len(counts) == 1
    with pytest.raises(ConfigError, match=r"eval\.external\[0\]\.dataset"):
        evaluate_lists([ExternalListConfig("ext", str(path))], ctx, EvalConfig(k=[2]), several_datasets=True)
