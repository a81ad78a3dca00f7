"""Id maps: contiguous training indices, cold users/items after them, nothing dropped."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.data.config import SplitConfig
from recsys.data.idmap import apply_id_maps, build_id_maps
from recsys.data.split import split_frame, split_parts
from recsys.errors import DataError


def pairs(rows):
    return pl.DataFrame(rows, schema={"user_id": pl.Utf8, "item_id": pl.Utf8}, orient="row")


TRAIN = pairs([("u2", "b"), ("u10", "a"), ("u2", "a"), ("u2", "c")])
VAL = pairs([("u2", "d"), ("u3", "a")])
TEST = pairs([("u1", "e"), ("u3", "b")])
ITEMS = pl.DataFrame({"item_id": ["a", "e", "z"], "title": ["A", "E", "Z"]})


def test_user_map_by_hand():
    maps = build_id_maps(TRAIN, VAL, TEST, ITEMS)
    assert maps.user_map.rows() == [("u10", 0, False, 1), ("u2", 1, False, 3), ("u1", 2, True, 0), ("u3", 3, True, 0)]
    assert maps.user_map.schema == {"user_id": pl.Utf8, "user_idx": pl.Int32, "is_cold": pl.Boolean,
                                    "n_train": pl.Int64}
    assert (maps.n_users, maps.n_train_users) == (4, 2)


def test_item_map_by_hand_includes_cold_and_catalogue_only_items():
    maps = build_id_maps(TRAIN, VAL, TEST, ITEMS)
    assert maps.item_map.rows() == [
        ("a", 0, False, 2, True), ("b", 1, False, 1, False), ("c", 2, False, 1, False),
        ("d", 3, True, 0, False), ("e", 4, True, 0, True), ("z", 5, True, 0, True),
    ]
    assert maps.item_map.schema["item_idx"] == pl.Int32
    assert (maps.n_items, maps.n_train_items) == (6, 3)
    assert not build_id_maps(TRAIN, VAL, TEST).item_map["has_metadata"].any()


def test_apply_id_maps_keeps_order_and_rows():
    maps = build_id_maps(TRAIN, VAL, TEST, ITEMS)
    out = apply_id_maps(TEST.with_columns(pl.lit(1).alias("extra")), maps)
    assert out.rows() == [("u1", "e", 1, 2, 4), ("u3", "b", 1, 3, 1)]
    with pytest.raises(DataError) as err:
        apply_id_maps(pairs([("u1", "a"), ("ghost", "a")]), maps)
    assert "1 rows have a user_id that is not in the id map, e.g. 'ghost'" in str(err.value)


def test_empty_train_is_an_error():
    with pytest.raises(DataError, match="the training split is empty.*split.ratios"):
        build_id_maps(TRAIN.head(0), VAL, TEST)


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.tuples(st.sampled_from([f"u{k}" for k in range(8)]), st.sampled_from(list("abcdefg")),
                               st.integers(0, 9)), min_size=1, max_size=40))
def test_every_id_is_indexed_once_warm_before_cold(rows):
    frame = pl.DataFrame(rows, schema={"user_id": pl.Utf8, "item_id": pl.Utf8, "timestamp": pl.Int64}, orient="row")
    train, val, test = split_parts(split_frame(frame, SplitConfig(protocol="user_holdout", ratios=[0.5, 0.2, 0.3])))
    if train.height == 0:
        return
    maps = build_id_maps(train, val, test)
    for table, column, idx in ((maps.user_map, "user_id", "user_idx"), (maps.item_map, "item_id", "item_idx")):
        assert table[idx].to_list() == list(range(table.height))
        assert set(table[column]) == set(frame[column]) and table[column].n_unique() == table.height
        warm = table.filter(~pl.col("is_cold"))
        assert set(warm[column]) == set(train[column]) and warm[column].to_list() == sorted(warm[column])
        assert (table["is_cold"].cast(pl.Int8).diff().drop_nulls() >= 0).all()   # cold ones come last
        assert warm["n_train"].sum() == train.height
    assert apply_id_maps(frame, maps).height == frame.height
