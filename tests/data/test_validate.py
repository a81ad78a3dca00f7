"""Validation: every bad input gets a message naming the file, column or setting and what to do."""

from __future__ import annotations

import json
import math
from datetime import datetime

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.data.config import DatasetConfig
from recsys.data.validate import (
    block_stats,
    check_stats,
    conform_block,
    decide_timestamp_unit,
    items_without_metadata,
    merge_stats,
    select_columns,
    validate_interactions,
)
from recsys.errors import ConfigError, DataError

GOOD = {"user_id": ["u1", "u2", "u2"], "item_id": ["a", "b", "a"],
        "timestamp": [1_600_000_000, 1_600_000_100, 1_600_000_200], "rating": [4.0, 5.0, 3.0]}


def good(**changes):
    data = {**GOOD, **changes}
    return pl.DataFrame({k: v for k, v in data.items() if v is not None}, strict=False)


def error_of(frame, cfg=None, kind=DataError):
    with pytest.raises(kind) as err:
        validate_interactions(frame, source="ratings.csv", cfg=cfg or DatasetConfig())
    return str(err.value)


# ---------------------------------------------------------------- bad inputs, one message each


def test_missing_column_suggests_the_close_name():
    frame = good().rename({"user_id": "userId"})
    assert error_of(frame) == (
        "ratings.csv, column 'user_id': missing column 'user_id' (columns found: userId, item_id, timestamp, "
        "rating). What to do: the column 'userId' looks like it: set dataset.columns.user_id=userId")


def test_misnamed_amazon_columns_are_suggested():
    frame = good().rename({"item_id": "asin", "user_id": "reviewerID"})
    message = error_of(frame, DatasetConfig(columns={"user_id": "reviewerID"}))
    assert "missing column 'item_id'" in message and "set dataset.columns.item_id=asin" in message


def test_mapping_to_an_absent_column_names_the_mapping():
    message = error_of(good().rename({"timestamp": "unix_time"}), DatasetConfig(columns={"timestamp": "time"}))
    assert message.startswith("ratings.csv, column 'time': the column 'time' named by dataset.columns.timestamp is not there")


def test_unknown_canonical_name_in_the_mapping():
    message = error_of(good(), DatasetConfig(columns={"userid": "user_id"}), kind=ConfigError)
    assert "setting 'dataset.columns': unknown canonical column(s) ['userid']" in message


def test_wrong_column_type():
    message = error_of(good(item_id=[[1], [2], [3]]))
    assert "column 'item_id': column 'item_id' has type List(Int64); expected text or integer ids" in message
    assert "What to do: convert the column" in message


def test_empty_input():
    message = error_of(good().head(0))
    assert message == ("ratings.csv: the interaction table has no rows. What to do: check that dataset.path / "
                       "dataset.interactions points at the right, non-empty file")


def test_null_user_ids_are_counted_with_an_example():
    message = error_of(good(user_id=["u1", None, None]))
    assert "column 'user_id': 2 rows have no user_id (null or NaN)" in message
    assert "'item_id': 'b'" in message and "What to do: drop those rows" in message


def test_nan_item_ids():
    message = error_of(good(item_id=[1.0, float("nan"), 3.0]))
    assert "column 'item_id': 1 rows have no item_id (null or NaN)" in message


def test_empty_string_ids():
    message = error_of(good(item_id=["a", "  ", "b"]))
    assert "column 'item_id': 1 rows have an empty item_id ('' or only spaces)" in message


def test_uncastable_timestamps_are_counted_with_an_example():
    message = error_of(good(timestamp=["1600000000", "yesterday", "soon"]))
    assert "column 'timestamp': 2 timestamps are neither numbers nor dates" in message
    assert "'timestamp': 'yesterday'" in message


def test_null_and_nan_timestamps():
    message = error_of(good(timestamp=[1_600_000_000.0, None, float("nan")]))
    assert "column 'timestamp': 2 rows have no timestamp (null or NaN)" in message
    assert "What to do: drop those rows or fill in the timestamps" in message


def test_negative_timestamps():
    message = error_of(good(timestamp=[-86_400, 1_600_000_000, 5]))
    assert "1 timestamps are negative (before 1970-01-01), the smallest is -86400" in message


def test_far_future_timestamps_with_an_explicit_unit():
    message = error_of(good(timestamp=[1_600_000_000_000] * 3), DatasetConfig(timestamp_unit="s"))
    assert "3 timestamps are after 2100-01-01 when read in unit 's'" in message
    assert "set dataset.timestamp_unit=ms" in message


def test_mixed_seconds_and_milliseconds():
    message = error_of(good(timestamp=[1_600_000_000, 1_600_000_000_000, 1_600_000_100_000]))
    assert "timestamps mix units: the largest (1600000100000) looks like ms but the smallest positive " \
           "(1600000000) like s" in message


def test_uncastable_ratings():
    message = error_of(good(rating=["4", "five", "3.5"]))
    assert "column 'rating': 1 ratings are not finite numbers (NaN, infinite or text); e.g. the row" in message
    assert "'five'" in message


def test_ratings_outside_the_scale():
    message = error_of(good(rating=[0.0, 10.0, 3.0]), DatasetConfig(rating_scale=[1, 5]))
    assert "column 'rating': 2 ratings are outside the declared scale [1, 5] (found min 0, max 10)" in message
    assert "set dataset.rating_scale to the scale the source uses, or filter those rows first" in message


@pytest.mark.parametrize("cfg, setting", [
    (DatasetConfig(timestamp_unit="seconds"), "dataset.timestamp_unit"),
    (DatasetConfig(rating_scale=[5, 1]), "dataset.rating_scale"),
])
def test_bad_settings(cfg, setting):
    assert f"setting '{setting}'" in error_of(good(), cfg, kind=ConfigError)


# ---------------------------------------------------------------- conforming good input


def test_conforms_types_and_keeps_only_canonical_columns():
    frame = good(user_id=[1, 2, 2], item_id=[10.0, 20.0, 10.0], rating=[4, None, 3]).with_columns(
        pl.lit("x").alias("extra"))
    out, stats = validate_interactions(frame, source="f", cfg=DatasetConfig())
    assert out.schema == {"user_id": pl.Utf8, "item_id": pl.Utf8, "timestamp": pl.Int64, "rating": pl.Float32}
    assert out["item_id"].to_list() == ["10", "20", "10"] and out["user_id"].to_list() == ["1", "2", "2"]
    assert stats["n_rating_missing"] == 1 and stats["timestamp_unit"] == "s"
    json.dumps(stats)


def test_missing_rating_column_and_empty_ratings_become_null():
    out, stats = validate_interactions(good(rating=None), source="f", cfg=DatasetConfig())
    assert out["rating"].null_count() == 3 and stats["n_rating_values"] == 0
    out, _ = validate_interactions(good(rating=["1", "", "NA"]), source="f", cfg=DatasetConfig())
    assert out["rating"].to_list() == [1.0, None, None]


def test_milliseconds_are_detected_and_converted():
    out, stats = validate_interactions(good(timestamp=[1_600_000_000_123, 1_600_000_001_999, 0]), source="f",
                                       cfg=DatasetConfig())
    assert out["timestamp"].to_list() == [1_600_000_000, 1_600_000_001, 0]
    assert stats["timestamp_unit"] == "ms" and stats["timestamp_converted"] is True
    assert stats["timestamp_max_s"] == 1_600_000_001


def test_explicit_units_are_honoured():
    small = good(timestamp=[1_000, 2_000, 3_500])
    assert validate_interactions(small, source="f", cfg=DatasetConfig(timestamp_unit="ms"))[0]["timestamp"].to_list() == [1, 2, 3]
    assert validate_interactions(small, source="f", cfg=DatasetConfig(timestamp_unit="s"))[0]["timestamp"].to_list() == [1000, 2000, 3500]
    micro = good(timestamp=[1_600_000_000_000_000] * 3)
    assert decide_timestamp_unit(block_stats(select_columns(micro, source="f", cfg=DatasetConfig())), DatasetConfig()) == "us"


def test_datetime_and_text_timestamps():
    when = datetime(2020, 1, 1, 12, 0, 0)
    out, stats = validate_interactions(good(timestamp=[when] * 3), source="f", cfg=DatasetConfig(timestamp_unit="ms"))
    assert out["timestamp"].to_list() == [1_577_880_000] * 3 and stats["timestamp_unit"] == "s"
    text = good(timestamp=["2020-01-01 12:00:00", "1577880000", "1577880000.75"])
    out, stats = validate_interactions(text, source="f", cfg=DatasetConfig())
    assert out["timestamp"].to_list() == [1_577_880_000] * 3 and stats["n_timestamp_fractional"] == 1


def test_rating_scale_ok_and_mapping_applied():
    frame = good().rename({"rating": "stars"})
    out, _ = validate_interactions(frame, source="f", cfg=DatasetConfig(columns={"rating": "stars"},
                                                                        rating_scale=[1, 5]))
    assert out["rating"].to_list() == [4.0, 5.0, 3.0]


# ---------------------------------------------------------------- map + reduce parity


block_rows = st.lists(st.tuples(
    st.one_of(st.none(), st.sampled_from(["u1", "u2", " "])),
    st.sampled_from(["a", "b"]),
    st.one_of(st.none(), st.integers(-5, 2_000_000_000_000)),
    st.one_of(st.none(), st.floats(0, 10), st.just(float("nan"))),
), min_size=1, max_size=30)


@settings(max_examples=60, deadline=None)
@given(rows=block_rows, cut=st.integers(0, 30), unit=st.sampled_from(["auto", "s", "ms"]))
def test_merged_block_stats_decide_like_the_whole_frame(rows, cut, unit):
    frame = pl.DataFrame(rows, schema={"user_id": pl.Utf8, "item_id": pl.Utf8, "timestamp": pl.Int64,
                                       "rating": pl.Float64}, orient="row")
    cfg = DatasetConfig(timestamp_unit=unit, rating_scale=[1, 5])
    whole = block_stats(frame, rating_scale=cfg.rating_scale)
    parts = [frame.head(cut), frame.slice(cut)]
    merged = merge_stats(*[block_stats(p, rating_scale=cfg.rating_scale) for p in parts])
    assert merged == whole
    try:
        summary = check_stats(whole, "f", cfg)
    except DataError as err:
        with pytest.raises(DataError) as again:
            check_stats(merged, "f", cfg)
        assert str(again.value) == str(err)
        return
    assert check_stats(merged, "f", cfg) == summary
    unit_used = summary["timestamp_unit"]
    assert pl.concat([conform_block(p, unit_used) for p in parts]).equals(conform_block(frame, unit_used))


def test_items_without_metadata_are_counted_not_dropped():
    inter = pl.DataFrame({"item_id": ["c", "a", "b", "c", "d"]})
    assert items_without_metadata(inter, pl.DataFrame({"item_id": ["a", "z"]})) == (3, ["b", "c", "d"])
    assert items_without_metadata(inter, pl.DataFrame({"item_id": ["a"]}), max_examples=1) == (3, ["b"])
    assert items_without_metadata(inter, None) == (4, ["a", "b", "c", "d"])
    with pytest.raises(DataError, match="the item table has no 'item_id' column"):
        items_without_metadata(inter, pl.DataFrame({"movieId": ["a"]}))


# ---------------------------------------------------------------- silent bad data: NaN, inf, absurd timestamps


def test_nan_ratings_are_an_error_naming_the_column_count_and_first_row():
    message = error_of(good(rating=[4.0, float("nan"), float("nan")]))
    assert message.startswith("ratings.csv, column 'rating': 2 ratings are not finite numbers (NaN, infinite or text)")
    assert "'user_id': 'u2', 'item_id': 'b'" in message and "set data.invalid_rows=drop" in message


@pytest.mark.parametrize("values", [["4", "NaN", "3"], ["4", "inf", "3"], [4.0, float("inf"), 3.0]])
def test_nan_and_infinite_ratings_as_text_or_numbers(values):
    assert "column 'rating': 1 ratings are not finite numbers" in error_of(good(rating=values))


def test_infinite_timestamps():
    message = error_of(good(timestamp=[1.6e9, float("inf"), 1.6e9]))
    assert "column 'timestamp': 1 timestamps are neither numbers nor dates" in message and "infinite" in message


def test_negative_timestamps_show_the_first_bad_row():
    message = error_of(good(timestamp=[1_600_000_000, -5, -86_400]))
    assert "2 timestamps are negative (before 1970-01-01), the smallest is -86400; e.g. the row " \
           "{'user_id': 'u2', 'item_id': 'b', 'timestamp': '-5'" in message


def test_far_future_seconds_are_not_blamed_on_the_unit():
    message = error_of(good(timestamp=[1_600_000_000, 5_000_000_000, 1_600_000_100]))
    assert "1 timestamps are after 2100-01-01 when read in unit 's' (largest 5000000000)" in message
    assert "'timestamp': '5000000000'" in message and "timestamp_unit" not in message


def test_seconds_declared_as_milliseconds_say_so():
    message = error_of(good(), DatasetConfig(timestamp_unit="ms"))
    assert "read in unit 'ms', every timestamp falls in 1970 (the largest, 1600000200, is 1600000 s after " \
           "1970-01-01); the values look like s" in message
    assert message.endswith("What to do: set dataset.timestamp_unit=s (or auto)")


def test_drop_removes_invalid_rows_and_counts_them_by_problem():
    frame = pl.DataFrame({
        "user_id": ["u1", "", "u3", "u4", "u5", "u6", None],
        "item_id": ["a", "b", "c", "d", "e", "f", "g"],
        "timestamp": [1_600_000_000, 1_600_000_001, -1, 9_000_000_000, None, 1_600_000_005, 1_600_000_006],
        "rating": [4.0, 5.0, 1.0, 2.0, 3.0, float("nan"), float("inf")],
    })
    out, summary = validate_interactions(frame, source="f", cfg=DatasetConfig(), invalid_rows="drop")
    assert out["user_id"].to_list() == ["u1"]
    assert summary["invalid_rows"] == {"policy": "drop", "n_dropped": 6, "by_problem": {
        "user_id_missing": 1, "user_id_empty": 1, "timestamp_missing": 1, "timestamp_negative": 1,
        "rating_uncastable": 2, "timestamp_after_2100": 1}}


def test_drop_of_every_row_is_an_error():
    frame = good(rating=[float("nan")] * 3)
    with pytest.raises(DataError, match="every one of the 3 rows is invalid \\(rating_uncastable 3\\)"):
        validate_interactions(frame, source="f", cfg=DatasetConfig(), invalid_rows="drop")


def test_unknown_invalid_row_policy():
    with pytest.raises(ConfigError, match="setting 'data.invalid_rows'"):
        validate_interactions(good(), source="f", cfg=DatasetConfig(), invalid_rows="skip")


def _reference_valid(row) -> bool:
    """An independent, row-by-row statement of which rows are valid (timestamps in seconds)."""
    user, item, ts, rating = row
    if user is None or not user.strip() or item is None or not item.strip():
        return False
    if ts is None or ts < 0 or ts > 4_102_444_800:
        return False
    return rating is None or math.isfinite(rating)


@settings(max_examples=80, deadline=None)
@given(rows=st.lists(st.tuples(
    st.one_of(st.none(), st.sampled_from(["u1", "u2", "", " "])),
    st.one_of(st.none(), st.sampled_from(["a", "b", ""])),
    st.one_of(st.none(), st.integers(-10, 5_000_000_000)),
    st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=32)),
), min_size=1, max_size=25))
def test_drop_keeps_exactly_the_rows_a_row_by_row_reference_keeps(rows):
    frame = pl.DataFrame(rows, schema={"user_id": pl.Utf8, "item_id": pl.Utf8, "timestamp": pl.Int64,
                                       "rating": pl.Float64}, orient="row")
    cfg = DatasetConfig(timestamp_unit="s")
    expected = [r for r in rows if _reference_valid(r)]
    if not expected:
        with pytest.raises(DataError, match="every one of the"):
            validate_interactions(frame, source="f", cfg=cfg, invalid_rows="drop")
        return
    out, summary = validate_interactions(frame, source="f", cfg=cfg, invalid_rows="drop")
    assert out.select("user_id", "item_id", "timestamp").rows() == [r[:3] for r in expected]
    assert summary["invalid_rows"]["n_dropped"] == len(rows) - len(expected)
    if len(expected) < len(rows):
        with pytest.raises(DataError):
            validate_interactions(frame, source="f", cfg=cfg)
