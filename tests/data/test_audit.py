"""Split audit: hand-counted cold/leakage/tie numbers, a brute-force check, and block parity."""

from __future__ import annotations

import json

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.data.audit import audit_pieces, finish_audit, merge_audit_pieces, split_audit, stage_counts
from recsys.data.config import SplitConfig
from recsys.data.idmap import build_id_maps
from recsys.data.split import split_frame, split_parts

SCHEMA = {"user_id": pl.Utf8, "item_id": pl.Utf8, "timestamp": pl.Int64, "split": pl.Utf8}
HAND = pl.DataFrame([
    ("u", "a", 5, "train"), ("u", "b", 9, "train"), ("u", "c", 7, "val"), ("u", "d", 9, "test"),
    ("u", "a", 10, "test"), ("v", "a", 1, "test"), ("v", "e", 2, "test"), ("w", "a", 3, "train"),
    ("w", "b", 3, "val"), ("w", "b", 1, "val"),
], schema=SCHEMA, orient="row")


def by_stage(rows):
    return {row["stage"]: row for row in rows}


def test_audit_by_hand():
    rows = by_stage(split_audit(HAND))
    assert [r for r in rows] == ["train", "val", "test"]
    train, val, test = rows["train"], rows["val"], rows["test"]
    assert (train["n_rows"], train["n_users"], train["n_items"]) == (3, 2, 2)
    assert all(train[k] == 0 for k in ("n_cold_users", "n_cold_items", "n_cold_rows", "n_leakage_rows",
                                       "n_leakage_users", "n_timestamp_ties"))
    # val: c@7 < u's latest train 9 (leak, cold item), b@3 ties w's train 3, b@1 < 3 (leak)
    assert {k: val[k] for k in val if k.startswith("n_")} == {
        "n_rows": 3, "n_users": 2, "n_items": 2, "n_catalog_items": 5, "n_cold_users": 0, "n_cold_items": 1,
        "n_cold_rows": 1, "n_leakage_rows": 2, "n_leakage_users": 2, "n_timestamp_ties": 1}
    # test: v is a cold user; d and e are cold items; d@9 ties u's train b@9 but is not earlier than 9
    assert {k: test[k] for k in test if k.startswith("n_")} == {
        "n_rows": 4, "n_users": 2, "n_items": 3, "n_catalog_items": 5, "n_cold_users": 1, "n_cold_items": 2,
        "n_cold_rows": 3, "n_leakage_rows": 0, "n_leakage_users": 0, "n_timestamp_ties": 1}
    assert test["details"]["n_cold_user_rows"] == 2 and test["details"]["n_cold_item_rows"] == 2
    assert test["details"]["timestamp_min"] == 1 and test["details"]["rows_per_user"] == 2.0
    json.dumps(rows)


def test_item_map_sets_the_catalogue_size():
    train, val, test = split_parts(HAND)
    maps = build_id_maps(train, val, test, pl.DataFrame({"item_id": ["a", "z"]}))
    rows = split_audit(HAND, item_map=maps.item_map)
    assert {r["n_catalog_items"] for r in rows} == {6}
    assert rows == split_audit(HAND, n_catalog_items=6)


def test_stage_counts_for_stages_before_the_split():
    row = stage_counts(HAND.drop("split").with_columns(pl.lit(None, dtype=pl.Float32).alias("rating")), "loaded", 9)
    assert (row["stage"], row["n_rows"], row["n_users"], row["n_items"], row["n_catalog_items"]) == ("loaded", 10, 3, 5, 9)
    assert row["n_leakage_rows"] is None and row["details"]["timestamp_max"] == 10
    assert row["details"]["n_rating_values"] == 0


def brute_force(frame):
    """Leakage, ties and cold users per stage by plain loops over rows."""
    rows = frame.rows(named=True)
    train = [r for r in rows if r["split"] == "train"]
    out = {}
    for stage in ("val", "test"):
        mine = [r for r in rows if r["split"] == stage]
        latest = {}
        for r in train:
            latest[r["user_id"]] = max(latest.get(r["user_id"], r["timestamp"]), r["timestamp"])
        leaks = [r for r in mine if r["user_id"] in latest and r["timestamp"] < latest[r["user_id"]]]
        ties = [r for r in mine if any(t["user_id"] == r["user_id"] and t["timestamp"] == r["timestamp"] for t in train)]
        cold = {r["user_id"] for r in mine if r["user_id"] not in latest}
        out[stage] = (len(leaks), len({r["user_id"] for r in leaks}), len(ties), len(cold))
    return out


frames = st.lists(st.tuples(st.sampled_from([f"u{k}" for k in range(7)]), st.sampled_from(list("abcdef")),
                            st.integers(0, 8)), min_size=1, max_size=40)


@settings(max_examples=50, deadline=None)
@given(rows=frames, protocol=st.sampled_from(["random", "user_holdout", "temporal"]))
def test_block_pieces_merge_to_the_whole_frame_audit_and_match_brute_force(rows, protocol):
    frame = pl.DataFrame(rows, schema={k: SCHEMA[k] for k in ("user_id", "item_id", "timestamp")}, orient="row")
    cfg = SplitConfig(protocol=protocol, ratios=[0.5, 0.2, 0.3], cutoffs=[3, 6] if protocol == "temporal" else None)
    split = split_frame(frame, cfg)
    whole = split_audit(split)
    stages = by_stage(whole)
    for stage, (leak_rows, leak_users, ties, cold_users) in brute_force(split).items():
        got = stages[stage]
        assert (got["n_leakage_rows"], got["n_leakage_users"], got["n_timestamp_ties"], got["n_cold_users"]) == (
            leak_rows, leak_users, ties, cold_users)
    # blocks of whole users, audited separately with the global train items, then merged
    train_items = split.filter(pl.col("split") == "train")["item_id"].unique()
    blocks = [split.filter(pl.col("user_id").is_in(g)) for g in (["u0", "u3", "u5"], ["u1", "u2"], ["u4", "u6"])]
    pieces = [audit_pieces(b, train_items=train_items) for b in blocks]
    merged = pieces[0]
    for piece in pieces[1:]:
        merged = merge_audit_pieces(merged, piece)
    assert finish_audit(merged) == whole
    assert sum(r["n_rows"] for r in whole) == frame.height
