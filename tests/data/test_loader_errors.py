"""Bad input: every error names the file (and column or setting where there is one) and says what to do."""

from __future__ import annotations

import gzip
import json
import re

import polars as pl
import pytest

from recsys.data.config import DatasetConfig
from recsys.data.loaders import detect_layout, load_source
from recsys.errors import ConfigError, DataError
from tests.data import publisher_fixtures as pub


def _fails(cfg: DatasetConfig, error=DataError) -> str:
    with pytest.raises(error) as caught:
        load_source(cfg)
    message = str(caught.value)
    assert "What to do:" in message
    return message


def _movielens(path, **kwargs) -> DatasetConfig:
    return DatasetConfig(name="movielens", path=str(path), **kwargs)


def _table(path, **kwargs) -> DatasetConfig:
    return DatasetConfig(name="table", interactions=str(path), **kwargs)


def test_missing_folder(tmp_path):
    message = _fails(_movielens(tmp_path / "ml-nowhere"))
    assert "ml-nowhere" in message and "does not exist" in message


def test_empty_folder(tmp_path):
    message = _fails(_movielens(tmp_path))
    assert str(tmp_path) in message and "is empty" in message


def test_path_that_is_a_file(tmp_path):
    pub.write_ml_csv(tmp_path)
    message = _fails(_movielens(tmp_path / "ratings.csv"))
    assert "ratings.csv" in message and "expected the folder" in message


def test_unrecognised_folder_lists_what_was_looked_for_and_found(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    (tmp_path / "data.bin").write_bytes(b"\x00")
    message = _fails(_movielens(tmp_path))
    assert "u.data" in message and "ratings.dat" in message and "ratings.csv" in message
    assert "found: data.bin, readme.txt" in message


def test_explicit_format_whose_files_are_missing(tmp_path):
    pub.write_ml1m(tmp_path)
    message = _fails(_movielens(tmp_path, format="ml-100k"))
    assert "dataset.format=ml-100k needs u.data and u.item" in message and "ratings.dat" in message


def test_ratings_without_movies(tmp_path):
    pub.write_ml_csv(tmp_path)
    (tmp_path / "movies.csv").unlink()
    assert "found ratings.csv but not movies.csv" in _fails(_movielens(tmp_path))


def test_folder_holding_two_movielens_formats(tmp_path):
    pub.write_ml100k(tmp_path)
    pub.write_ml_csv(tmp_path)
    message = _fails(_movielens(tmp_path))
    assert "ml-100k, ml-csv" in message and "dataset.format" in message


def test_misnamed_column_suggests_the_close_name(tmp_path):
    pub.write_ml_csv(tmp_path)
    text = (tmp_path / "ratings.csv").read_text().replace("userId", "userid", 1)
    (tmp_path / "ratings.csv").write_text(text)
    message = _fails(_movielens(tmp_path))
    assert message.startswith(f"{tmp_path / 'ratings.csv'}, column 'userId': column 'userId' is missing")
    assert "did you mean 'userid'?" in message


def test_non_numeric_rating_names_count_value_and_line(tmp_path):
    pub.write_ml_csv(tmp_path)
    with open(tmp_path / "ratings.csv", "ab") as out:
        out.write(b"9,1,four,964982703\r\n9,2,five,964982704\r\n")
    message = _fails(_movielens(tmp_path))
    assert "ratings.csv, column 'rating': 2 row(s) are not numbers, e.g. 'four' at line 5" in message


def test_non_numeric_timestamp_in_tab_separated_ratings(tmp_path):
    pub.write_ml100k(tmp_path)
    lines = (tmp_path / "u.data").read_text().splitlines()
    lines[1] = "1\t2\t3\t2001-01-01"
    (tmp_path / "u.data").write_text("\n".join(lines) + "\n")
    message = _fails(_movielens(tmp_path))
    assert "u.data, column 'timestamp': 1 row(s) are not numbers, e.g. '2001-01-01' at line 2" in message


def test_short_line_in_double_colon_file(tmp_path):
    pub.write_ml1m(tmp_path)
    with open(tmp_path / "ratings.dat", "a") as out:
        out.write("4::1::5\n")
    message = _fails(_movielens(tmp_path))
    assert "ratings.dat, column 'timestamp': 1 line(s) have no value" in message and "line 6" in message


def test_long_lines_are_counted_with_the_first_line_number(tmp_path):
    pub.write_ml1m(tmp_path)
    lines = (tmp_path / "ratings.dat").read_text().splitlines()
    lines[2] += "::extra"
    lines[4] += "::extra"
    (tmp_path / "ratings.dat").write_text("\n".join(lines) + "\n")
    message = _fails(_movielens(tmp_path))
    assert "ratings.dat: 2 malformed line(s) without exactly 4 '::'-separated fields; first at line 3" in message


def test_bad_genre_flag_in_u_item(tmp_path):
    pub.write_ml100k(tmp_path)
    lines = (tmp_path / "u.item").read_text("latin-1").splitlines()
    lines[2] = lines[2][:-1] + "2"
    (tmp_path / "u.item").write_text("\n".join(lines) + "\n", "latin-1")
    message = _fails(_movielens(tmp_path))
    assert "u.item, column 'Western flag': 1 genre flag(s) are not 0 or 1, e.g. '2' at line 3" in message


@pytest.mark.parametrize("content", [b"", b"userId,movieId,rating,timestamp\r\n"])
def test_empty_interaction_file(tmp_path, content):
    pub.write_ml_csv(tmp_path)
    (tmp_path / "ratings.csv").write_bytes(content)
    message = _fails(_movielens(tmp_path))
    assert "ratings.csv" in message and ("is empty" in message or "holds no interactions" in message)


def test_undecodable_bytes_name_the_encoding_and_line(tmp_path):
    pub.write_ml_csv(tmp_path)
    with open(tmp_path / "movies.csv", "ab") as out:
        out.write(b"5,Caf\xe9 (1990),Drama\r\n")
    message = _fails(_movielens(tmp_path))
    assert "movies.csv" in message and "line 6" in message and "tried encoding utf-8" in message


def test_truncated_gzip(tmp_path):
    pub.write_amazon_2018(tmp_path)
    packed = (tmp_path / "Books_5.json.gz").read_bytes()
    (tmp_path / "Books_5.json.gz").write_bytes(packed[: len(packed) // 2])
    message = _fails(DatasetConfig(name="amazon", path=str(tmp_path)))
    assert "Books_5.json.gz" in message and "truncated" in message


def test_review_line_that_is_not_json(tmp_path):
    pub.write_amazon_2023(tmp_path)
    lines = (tmp_path / "All_Beauty.jsonl").read_text().splitlines()
    lines.insert(1, '{"user_id": "U9", "parent_asin": "P09", "rating": 5.0, "timestamp": 16')
    (tmp_path / "All_Beauty.jsonl").write_text("\n".join(lines) + "\n")
    message = _fails(DatasetConfig(name="amazon", path=str(tmp_path)))
    assert "All_Beauty.jsonl: 1 line(s) are not JSON objects; first at line 2" in message


def test_review_with_non_numeric_rating_and_review_without_user(tmp_path):
    reviews = [dict(r) for r in pub.REVIEWS_2018]
    reviews[2]["overall"] = "five"
    pub.write_amazon_2018(tmp_path / "a", reviews=reviews)
    message = _fails(DatasetConfig(name="amazon", path=str(tmp_path / "a")))
    assert "Books_5.json.gz, column 'overall': 1 row(s) are not numbers, e.g. 'five' at line 3" in message
    reviews = [dict(r) for r in pub.REVIEWS_2018]
    del reviews[1]["reviewerID"]
    pub.write_amazon_2018(tmp_path / "b", reviews=reviews)
    message = _fails(DatasetConfig(name="amazon", path=str(tmp_path / "b")))
    assert "Books_5.json.gz, column 'reviewerID': 1 review(s) have no reviewerID, first at line 2" in message


def test_meta_file_that_is_mostly_unreadable(tmp_path):
    pub.write_amazon_2018(tmp_path, meta=None)
    lines = [json.dumps(pub.META_2018[0]), "<html>not meta</html>", "{'asin': 'B1', 'title': "]
    (tmp_path / "meta_Books.json.gz").write_bytes(gzip.compress("\n".join(lines).encode()))
    message = _fails(DatasetConfig(name="amazon", path=str(tmp_path)))
    assert "meta_Books.json.gz: 2 of 3 lines are neither JSON nor Python dict literals; first at line 2" in message


def test_corrupted_parquet(tmp_path):
    pl.DataFrame({"user_id": ["a"] * 100, "item_id": ["b"] * 100, "timestamp": range(100)}) \
        .write_parquet(tmp_path / "events.parquet")
    data = (tmp_path / "events.parquet").read_bytes()
    (tmp_path / "events.parquet").write_bytes(data[: len(data) // 2])
    message = _fails(_table(tmp_path / "events.parquet"))
    assert "events.parquet: cannot read the file as Parquet" in message


def test_table_mapping_to_a_column_that_is_not_there(tmp_path):
    pl.DataFrame({"uid": [1], "item": [2], "ts": [3]}).write_parquet(tmp_path / "e.parquet")
    message = _fails(_table(tmp_path / "e.parquet", columns={"user_id": "uid", "item_id": "items", "timestamp": "ts"}))
    assert "e.parquet, column 'items': column 'items' is missing; did you mean 'item'?" in message
    assert "dataset.columns" in message


def test_table_timestamp_text_that_is_no_date(tmp_path):
    (tmp_path / "e.csv").write_text("user_id,item_id,timestamp\n1,2,2020-01-01\n1,3,yesterday\n")
    message = _fails(_table(tmp_path / "e.csv"))
    assert "e.csv, column 'timestamp': 1 row(s) are neither numbers nor date-times, e.g. 'yesterday' at line 3" \
        in message


def test_misspelt_canonical_name_in_column_mapping(tmp_path):
    pl.DataFrame({"uid": [1]}).write_parquet(tmp_path / "e.parquet")
    message = _fails(_table(tmp_path / "e.parquet", columns={"userid": "uid"}), ConfigError)
    assert "setting 'dataset.columns.userid'" in message and "did you mean 'user_id'?)" in message


def test_millisecond_unit_with_date_time_timestamps(tmp_path):
    (tmp_path / "e.csv").write_text("user_id,item_id,timestamp\n1,2,2020-01-01 10:00:00\n")
    message = _fails(_table(tmp_path / "e.csv", timestamp_unit="ms"), ConfigError)
    assert "setting 'dataset.timestamp_unit'" in message and "e.csv column 'timestamp' holds date-times" in message


@pytest.mark.parametrize("cfg, setting", [
    (DatasetConfig(name="synthetic"), "dataset.name"),
    (DatasetConfig(name="movielens", path=None), "dataset.path"),
    (DatasetConfig(name="movielens", path=".", format="amazon-2018"), "dataset.format"),
    (DatasetConfig(name="table"), "dataset.interactions"),
])
def test_settings_that_cannot_name_a_source(cfg, setting):
    with pytest.raises(ConfigError, match=re.escape(f"setting '{setting}'")):
        detect_layout(cfg)


def test_extra_field_in_a_quoted_csv_names_its_line(tmp_path):
    pub.write_ml_csv(tmp_path)
    with open(tmp_path / "movies.csv", "ab") as out:
        out.write(b'5,"Heat, Again (1995)",Action,extra\r\n')
    message = _fails(_movielens(tmp_path))
    assert "movies.csv: 1 malformed line(s) without exactly 3 ','-separated fields; first at line 6" in message
