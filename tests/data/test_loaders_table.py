"""Generic Parquet/CSV loader: column mappings, id and timestamp types, item and user files."""

from __future__ import annotations

import datetime as dt
import gzip

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.data.config import DatasetConfig
from recsys.data.loaders import SourceWarning, detect_layout, load_source, read_interactions
from recsys.data.schema import INTERACTION_SCHEMA

MAPPING = {"user_id": "uid", "item_id": "iid", "timestamp": "ts"}


def _table(interactions, **kwargs) -> DatasetConfig:
    kwargs.setdefault("columns", MAPPING)
    return DatasetConfig(name="table", interactions=str(interactions), **kwargs)


def _events(**columns) -> pl.DataFrame:
    base = {"uid": [7, 7, 8], "iid": [100, 101, 100], "ts": [1_600_000_000, 1_600_000_060, 1_600_000_120]}
    return pl.DataFrame({**base, **columns})


def test_parquet_with_integer_ids_and_no_rating(tmp_path):
    _events().write_parquet(tmp_path / "events.parquet")
    source = load_source(_table(tmp_path / "events.parquet"))
    assert source.layout.format == "table-parquet"
    assert dict(source.interactions.schema) == INTERACTION_SCHEMA
    assert source.interactions.rows() == [("7", "100", 1_600_000_000, None), ("7", "101", 1_600_000_060, None),
                                          ("8", "100", 1_600_000_120, None)]


@pytest.mark.parametrize("timestamps", [
    [1.6e9, 1_600_000_060.9, 1_600_000_120.0],
    [dt.datetime(2020, 9, 13, 12, 26, 40), dt.datetime(2020, 9, 13, 12, 27, 40, 900_000),
     dt.datetime(2020, 9, 13, 12, 28, 40)],
    ["2020-09-13 12:26:40", "2020-09-13 12:27:40", "2020-09-13 12:28:40"],
])
def test_float_datetime_and_datetime_text_timestamps_become_seconds(tmp_path, timestamps):
    _events(ts=timestamps).write_parquet(tmp_path / "events.parquet")
    frame = load_source(_table(tmp_path / "events.parquet")).interactions
    assert frame["timestamp"].to_list() == [1_600_000_000, 1_600_000_060, 1_600_000_120]


def test_numeric_timestamps_keep_their_unit_for_validation_and_whole_float_ids_lose_the_fraction(tmp_path):
    ms = [1_600_000_000_999, 1_600_000_060_000, 1_600_000_120_001]
    _events(ts=ms, iid=[100.0, 101.0, 100.0]).write_parquet(tmp_path / "events.parquet")
    frame = load_source(_table(tmp_path / "events.parquet", timestamp_unit="ms")).interactions
    assert frame["timestamp"].to_list() == ms
    assert frame["item_id"].to_list() == ["100", "101", "100"]


def test_csv_tsv_and_gzip_csv_with_rating_read_alike(tmp_path):
    frame = _events(stars=[4.5, 3, 1])
    frame.write_csv(tmp_path / "events.csv")
    frame.write_csv(tmp_path / "events.tsv", separator="\t")
    (tmp_path / "events.csv.gz").write_bytes(gzip.compress((tmp_path / "events.csv").read_bytes()))
    columns = {**MAPPING, "rating": "stars"}
    results = [load_source(_table(tmp_path / name, columns=columns)).interactions
               for name in ("events.csv", "events.tsv", "events.csv.gz")]
    assert results[0]["rating"].to_list() == [4.5, 3.0, 1.0]
    assert results[0]["user_id"].to_list() == ["7", "7", "8"]
    assert all(r.equals(results[0]) for r in results[1:])


def test_unmapped_columns_default_to_canonical_names(tmp_path):
    pl.DataFrame({"user_id": ["a"], "item_id": ["b"], "timestamp": [5], "rating": [2]}) \
        .write_parquet(tmp_path / "x.parquet")
    frame = load_source(DatasetConfig(name="table", interactions=str(tmp_path / "x.parquet"))).interactions
    assert frame.rows() == [("a", "b", 5, 2.0)]


def test_folder_and_glob_of_parquet_parts_give_one_file_each(tmp_path):
    parts = tmp_path / "events"
    parts.mkdir()
    _events().slice(0, 2).write_parquet(parts / "part-0.parquet")
    _events().slice(2).write_parquet(parts / "part-1.parquet")
    (parts / "_SUCCESS").write_text("")
    by_folder = detect_layout(_table(parts))
    by_glob = detect_layout(_table(parts / "part-*.parquet"))
    assert [f.rsplit("/", 1)[-1] for f in by_folder.interaction_files] == ["part-0.parquet", "part-1.parquet"]
    assert by_glob.interaction_files == by_folder.interaction_files
    assert load_source(_table(parts)).interactions.height == 3


def test_relative_paths_resolve_from_dataset_path_and_file_uris_work(tmp_path):
    _events().write_parquet(tmp_path / "events.parquet")
    relative = load_source(_table("events.parquet", path=str(tmp_path))).interactions
    uri = load_source(_table((tmp_path / "events.parquet").as_uri())).interactions
    assert relative.equals(uri) and relative.height == 3


def test_items_keep_every_string_column_by_default(tmp_path):
    _events().write_parquet(tmp_path / "events.parquet")
    pl.DataFrame({"iid": [100, 101, 100], "name": ["Lamp", "Desk", "Lamp again"], "price": [1.0, 2.0, 3.0],
                  "blurb": ["Bright", None, "x"]}).write_parquet(tmp_path / "items.parquet")
    with pytest.warns(SourceWarning, match="1 repeated item rows"):
        items = load_source(_table(tmp_path / "events.parquet", items=str(tmp_path / "items.parquet"))).items
    assert items.columns == ["item_id", "name", "blurb"]
    assert items.rows() == [("100", "Lamp", "Bright"), ("101", "Desk", None)]


def test_item_columns_choose_and_rename_fields(tmp_path):
    _events().write_parquet(tmp_path / "events.parquet")
    pl.DataFrame({"product": [100, 101], "name": ["Lamp", "Desk"], "year": [1999, 2001], "junk": ["a", "b"]}) \
        .write_csv(tmp_path / "items.csv")
    cfg = _table(tmp_path / "events.parquet", items="items.csv", path=str(tmp_path),
                 item_columns={"item_id": "product", "title": "name", "description": "year"})
    items = load_source(cfg).items
    assert items.rows() == [("100", "Lamp", "1999"), ("101", "Desk", "2001")]
    assert items.columns == ["item_id", "title", "description"]


def test_users_keep_attributes(tmp_path):
    _events().write_parquet(tmp_path / "events.parquet")
    pl.DataFrame({"uid": [7, 8], "age": [31, 44], "country": ["FR", "NZ"]}).write_parquet(tmp_path / "users.parquet")
    users = load_source(_table(tmp_path / "events.parquet", users=str(tmp_path / "users.parquet"))).users
    assert users.rows() == [("7", 31, "FR"), ("8", 44, "NZ")]
    assert users.columns == ["user_id", "age", "country"]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(-2**40, 2**40),
                          st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=8),
                          st.integers(0, 4_000_000_000)), min_size=1, max_size=20))
def test_any_ids_and_timestamps_survive_a_csv_round_trip(tmp_path_factory, rows):
    folder = tmp_path_factory.mktemp("roundtrip")
    pl.DataFrame(rows, schema=["uid", "iid", "ts"], orient="row").write_csv(folder / "e.csv")
    cfg = _table(folder / "e.csv")
    layout = detect_layout(cfg)
    frame = read_interactions(layout, layout.interaction_files[0], cfg)
    assert frame.rows() == [(str(u), i, t, None) for u, i, t in rows]
