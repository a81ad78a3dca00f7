"""Segments by hand: activity quartiles, cold-start and holdout users, popularity groups, attributes, item groups."""

from __future__ import annotations

import numpy as np
import polars as pl

from recsys.data.config import DataConfig, DatasetConfig, SplitConfig
from recsys.data.prepare import prepare
from recsys.evaluate.config import EvalConfig
from recsys.evaluate.context import EvalContext
from recsys.evaluate.rows import evaluate_users
from recsys.evaluate.segments import item_group_rows, item_groups, popularity_groups, user_segments
from recsys.evaluate.useritems import UserItems
from tests.evaluate.worlds import random_pairs, random_world


def _hand_context() -> EvalContext:
    # training counts per user 0..5: 1, 2, 3, 4, 6, 0 (user 5 is a holdout user); 8 items
    train_users = [0, 1, 1, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4]
    train_items = [0, 0, 1, 0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3, 4, 5]
    test = ([0, 1, 2, 3, 4, 5, 5], [6, 5, 7, 6, 7, 0, 7])
    ctx = EvalContext.from_arrays((train_users, train_items), ([], []), test, n_users=6, n_items=8)
    ctx.user_attributes = pl.DataFrame({"user_idx": [0, 1, 2, 3, 4, 5], "gender": ["F", "M", "F", "M", "F", None],
                                        "age": [18, 25, 25, 35, 50, 56]})
    ctx.item_attributes = pl.DataFrame({"item_idx": list(range(8)),
                                        "genres": ["A|B", "A", "B", "C", "A", "C|B", "A", None],
                                        "title": [f"t{i}" for i in range(8)]})
    return ctx


def test_user_segments_by_hand():
    ctx = _hand_context()
    segments = user_segments(ctx, np.arange(6), cold_start_max=2, max_attribute_values=2)
    got = {name: members.tolist() for name, members in segments.items()}
    # counts [1, 2, 3, 4, 6, 0]; quartile edges 1.25, 2.5, 3.75 (linear interpolation)
    assert got["all"] == [0, 1, 2, 3, 4, 5]
    assert got["activity_q1"] == [0, 5] and got["activity_q2"] == [1]
    assert got["activity_q3"] == [2] and got["activity_q4"] == [3, 4]
    assert got["cold_start_users"] == [0, 1, 5] and got["holdout_users"] == [5]
    assert got["user_gender=F"] == [0, 2, 4] and got["user_gender=M"] == [1, 3]
    # age has 5 distinct values > max_attribute_values=2: quartile ranges with inclusive bounds
    assert got["user_age=18-25"] == [0, 1, 2] and got["user_age=35-35"] == [3]
    assert got["user_age=50-56"] == [4, 5]


def test_item_groups_by_hand():
    ctx = _hand_context()
    groups = {name: np.flatnonzero(mask).tolist()
              for name, mask in item_groups(ctx, head_fraction=0.25, max_attribute_values=2).items()}
    # popularity [5, 4, 3, 2, 1, 1, 0, 0]: head = 2 items; the rest hold 7 interactions, torso = first half
    assert groups["items_head"] == [0, 1]
    assert groups["items_torso"] == [2, 3]            # 0 and 3 interactions before them: < 3.5
    assert groups["items_tail"] == [4, 5, 6, 7]
    assert groups["cold_items"] == [6, 7]
    assert groups["item_genres=A"] == [0, 1, 4, 6]     # the two most frequent genres (A: 4, B: 3, C: 2)
    assert groups["item_genres=B"] == [0, 2, 5]
    assert not any(name.startswith("item_title") for name in groups)     # free text makes no segment


def test_popularity_groups_partition_the_catalogue():
    rng = np.random.default_rng(0)
    popularity = rng.integers(0, 50, 200)
    groups = popularity_groups(popularity, 0.2)
    stacked = np.stack(list(groups.values()))
    assert (stacked.sum(axis=0) == 1).all()
    assert popularity[groups["items_head"]].min() >= popularity[groups["items_torso"]].max()
    assert popularity[groups["items_torso"]].min() >= popularity[groups["items_tail"]].max()


def test_item_group_rows_equal_evaluating_with_the_group_items_only():
    rng = np.random.default_rng(1)
    n_users, n_items = 40, 30
    score, seen = random_world(rng, n_users, n_items, dim=3, n_seen=200)
    relevant = random_pairs(rng, n_users, n_items, 120)
    group = rng.random(n_items) < 0.3
    users = np.flatnonzero(relevant.counts())
    rows = evaluate_users(score, users, relevant, [3, 10], seen=seen, auc=False)
    restricted = item_group_rows(rows, relevant.difference(seen), group, [3, 10])
    rel_users, rel_items = relevant.pairs()
    keep = group[rel_items]
    group_relevant = UserItems.from_pairs(rel_users[keep], rel_items[keep], n_users=n_users, n_items=n_items)
    reference = evaluate_users(score, users, group_relevant, [3, 10], seen=seen, auc=False)
    np.testing.assert_array_equal(restricted.n_relevant, reference.n_relevant)
    assert 0 < restricted.evaluated.sum() < len(users)
    for name in reference.values:
        np.testing.assert_allclose(restricted.values[name], reference.values[name], rtol=0, atol=0, err_msg=name)


def test_segments_of_a_prepared_dataset_use_its_user_and_item_files(tmp_path):
    # six users with 3..8 events each; leave_last: the last event is test, the one before val
    events = {"uid": [], "iid": [], "ts": []}
    for user, n in zip(range(6), (3, 4, 5, 6, 7, 8)):
        for j in range(n):
            events["uid"].append(f"u{user}")
            events["iid"].append(f"i{(user + j) % 9}")
            events["ts"].append(1_600_000_000 + 60 * j)
    pl.DataFrame(events).write_parquet(tmp_path / "events.parquet")
    pl.DataFrame({"uid": [f"u{u}" for u in range(6)], "gender": list("FMFMFM")}).write_parquet(tmp_path / "users.parquet")
    pl.DataFrame({"iid": [f"i{i}" for i in range(9)], "title": [f"Film {i}" for i in range(9)],
                  "genres": ["Drama|Comedy" if i % 2 else "Drama" for i in range(9)]}).write_parquet(tmp_path / "items.parquet")
    dataset = DatasetConfig(name="table", interactions=str(tmp_path / "events.parquet"),
                            users=str(tmp_path / "users.parquet"), items=str(tmp_path / "items.parquet"),
                            columns={"user_id": "uid", "item_id": "iid", "timestamp": "ts"},
                            item_columns={"item_id": "iid", "title": "title", "genres": "genres"},
                            user_columns={"user_id": "uid", "gender": "gender"})
    prepared = prepare(dataset, DataConfig(cache_dir=str(tmp_path / "cache"), engine="local"),
                       SplitConfig(protocol="leave_last"))
    ctx = EvalContext.from_prepared(prepared, None, EvalConfig())
    users = np.flatnonzero(ctx.test.counts())
    segments = user_segments(ctx, users, cold_start_max=2, max_attribute_values=20)
    named = {name: sorted(ctx.user_ids[members]) for name, members in segments.items()}
    assert named["user_gender=F"] == ["u0", "u2", "u4"] and named["user_gender=M"] == ["u1", "u3", "u5"]
    assert named["cold_start_users"] == ["u0", "u1"]              # 1 and 2 training events
    groups = item_groups(ctx, head_fraction=0.2, max_attribute_values=20)
    comedy = sorted(ctx.item_ids[groups["item_genres=Comedy"]])
    assert comedy == ["i1", "i3", "i5", "i7"]
    assert groups["item_genres=Drama"].all()
