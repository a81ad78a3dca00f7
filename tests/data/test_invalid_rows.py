"""Silent bad data is never silent: NaN/inf values, absurd timestamps and empty ids, through prepare().

Each engine gives the same clear DataError (data.invalid_rows=error, the default), or
drops the rows, warns with the count and records it in the loaded stage's details.
"""

from __future__ import annotations

import json
import logging

import pytest

from recsys.data.config import DataConfig, DatasetConfig, SplitConfig
from recsys.data.prepare import prepare
from recsys.errors import ConfigError, DataError

HEADER = "userId,movieId,rating,timestamp\n"
GOOD = ["1,10,4.0,964982703", "1,11,3.0,964982710", "1,12,5.0,964982720", "2,10,2.0,964982730",
        "2,11,4.5,964982740", "2,12,1.0,964982750", "3,10,3.5,964982760", "3,12,4.0,964982770"]


def _source(tmp_path, extra):
    folder = tmp_path / "ml"
    folder.mkdir(exist_ok=True)
    (folder / "ratings.csv").write_text(HEADER + "\n".join([*GOOD, *extra]) + "\n")
    (folder / "movies.csv").write_text("movieId,title,genres\n10,A,Drama\n11,B,Comedy\n12,C,Action\n")
    return DatasetConfig(name="movielens", path=str(folder))


def _prepare(tmp_path, dataset, engine, **data):
    cache = tmp_path / f"cache-{engine}"
    return prepare(dataset, DataConfig(cache_dir=str(cache), engine=engine, reuse_cache=False, **data),
                   SplitConfig(protocol="leave_last"))


def _error(tmp_path, dataset, engine, **data):
    with pytest.raises(DataError) as info:
        _prepare(tmp_path, dataset, engine, **data)
    assert type(info.value) is DataError
    return str(info.value)


BAD_ROWS = [
    ("1,13,NaN,964982780", "column 'rating': 1 ratings are not finite numbers (NaN, infinite or text)"),
    ("1,13,inf,964982780", "column 'rating': 1 ratings are not finite numbers"),
    ("1,13,4.0,-1", "column 'timestamp': 1 timestamps are negative (before 1970-01-01)"),
    ("1,13,4.0,9999999999", "column 'timestamp': 1 timestamps are after 2100-01-01 when read in unit 's'"),
]


@pytest.mark.parametrize("row, expected", BAD_ROWS)
def test_a_bad_row_is_an_error_naming_file_column_count_and_row(tmp_path, row, expected):
    message = _error(tmp_path, _source(tmp_path, [row]), "local")
    assert message.startswith(f"{tmp_path / 'ml' / 'ratings.csv'}, {expected}")
    assert "e.g. the row {'user_id': '1', 'item_id': '13'" in message


def test_an_empty_id_in_a_table_is_an_error(tmp_path):
    (tmp_path / "events.csv").write_text('uid,iid,ts\nu1,a,1\n"",b,2\n  ,c,3\nu2,c,3\n')
    dataset = DatasetConfig(name="table", interactions=str(tmp_path / "events.csv"),
                            columns={"user_id": "uid", "item_id": "iid", "timestamp": "ts"})
    message = _error(tmp_path, dataset, "local")
    assert message.startswith(f"{tmp_path / 'events.csv'}, column 'user_id': 2 rows have an empty user_id "
                              "('' or only spaces); e.g. the row {'user_id': '', 'item_id': 'b'")


def test_drop_removes_the_rows_warns_and_counts_them_in_the_loaded_stage(tmp_path, caplog):
    bad = ["1,13,NaN,964982780", "2,13,4.0,-5", "3,13,2.0,9999999999"]
    with caplog.at_level(logging.WARNING, logger="recsys.data.prepare"):
        ds = _prepare(tmp_path, _source(tmp_path, bad), "local", invalid_rows="drop")
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "dropped 3 invalid interaction rows of 11 (data.invalid_rows=drop): timestamp_negative 1, "
        "rating_uncastable 1, timestamp_after_2100 1"]
    loaded = ds.audit_rows()[0]
    assert loaded["stage"] == "loaded" and loaded["n_rows"] == len(GOOD)
    assert loaded["details"]["n_invalid_rows_dropped"] == 3
    assert loaded["details"]["invalid_rows"] == {"timestamp_negative": 1, "rating_uncastable": 1,
                                                 "timestamp_after_2100": 1}
    assert "13" not in ds.item_map()["item_id"].to_list()


def test_an_unknown_policy_is_a_setting_error(tmp_path):
    with pytest.raises(ConfigError, match="setting 'data.invalid_rows'"):
        _prepare(tmp_path, _source(tmp_path, []), "local", invalid_rows="ignore")


@pytest.mark.ray
def test_the_ray_engine_raises_the_same_error_and_drops_the_same_rows(tmp_path):
    dataset = _source(tmp_path, ["1,13,NaN,964982780", "2,13,4.0,-5"])
    assert _error(tmp_path, dataset, "ray") == _error(tmp_path, dataset, "local")
    local = _prepare(tmp_path, dataset, "local", invalid_rows="drop")
    distributed = _prepare(tmp_path, dataset, "ray", invalid_rows="drop")
    for key in ("stages", "validation"):
        assert json.dumps(local.manifest[key], sort_keys=True) == json.dumps(distributed.manifest[key], sort_keys=True)
    for name in ("train", "val", "test"):
        keys = ["user_id", "item_id", "timestamp"]
        assert local.split(name).sort(keys).equals(distributed.split(name).sort(keys))
