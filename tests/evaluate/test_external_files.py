"""Reading list files from outside: every format, and each bad file gives one clear error naming file and column."""

from __future__ import annotations

import logging
import math

import polars as pl
import pytest

from recsys.errors import ConfigError, DataError
from recsys.evaluate.config import EvalConfig, check_eval_config
from recsys.evaluate.context import EvalContext
from recsys.evaluate.external import evaluate_lists
from recsys.evaluate.external_files import ExternalListConfig, check_external_lists, detect_format, read_list

ROWS = [("u1", "i2", 0.9, 1), ("u1", "i7", 0.5, 2), ("u2", "i7", 3.0, 1)]


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _frame() -> pl.DataFrame:
    return pl.DataFrame(ROWS, schema=["user_id", "item_id", "score", "rank"], orient="row")


@pytest.mark.parametrize("name, fmt", [("l.parquet", "parquet"), ("l.csv", "csv"), ("l.tsv", "tsv"),
                                       ("l.trec", "trec"), ("l.run", "trec"), ("l.txt", "trec"),
                                       ("l.data", "csv")])
def test_every_format_reads_to_the_same_frame(tmp_path, name, fmt):
    path = tmp_path / name
    frame = _frame()
    if fmt == "parquet":
        frame.write_parquet(path)
    elif fmt in ("csv", "tsv"):
        frame.write_csv(path, separator="\t" if fmt == "tsv" else ",")
    else:
        path.write_text("".join(f"{u} Q0 {i}\t{r}  {s} sys\n\n" for u, i, s, r in ROWS))   # mixed whitespace
    given = fmt if name.endswith(".data") else "auto"
    read = read_list(str(path), given)
    assert read.schema == {"user_id": pl.Utf8, "item_id": pl.Utf8, "score": pl.Float64, "rank": pl.Int64}
    assert read.rows() == ROWS


def test_rank_is_optional_and_integer_ids_in_parquet_become_text(tmp_path):
    path = tmp_path / "ints.parquet"
    pl.DataFrame({"user_id": [1, 2], "item_id": [10, 20], "score": [1, 2], "extra": ["a", "b"]}).write_parquet(path)
    read = read_list(str(path))
    assert read.rows() == [("1", "10", 1.0, None), ("2", "20", 2.0, None)]


def test_detect_format_by_extension_and_explicit_format():
    assert [detect_format(p) for p in ("a.parquet", "a.pq", "a.CSV", "b.tsv", "c.trec", "s3://b/x.run")] == \
        ["parquet", "parquet", "csv", "tsv", "trec", "trec"]
    assert detect_format("whatever.bin", "tsv") == "tsv"


BAD_TEXT_FILES = [
    ("empty.csv", "", None, "empty"),
    ("blank.tsv", "\n\n", None, "empty"),
    ("header.csv", "user_id,item_id,score\n", None, "header but no rows"),
    ("columns.csv", "user,item_id,score\nu1,i1,1\n", "user_id", "no column 'user_id'"),
    ("noscore.tsv", "user_id\titem_id\nu1\ti1\n", "score", "no column 'score'"),
    ("score.csv", "user_id,item_id,score\nu1,i1,high\nu1,i2,0.5\n", "score", "1 values are not numbers.*'high'"),
    ("nan.csv", "user_id,item_id,score\nu1,i1,NaN\nu1,i2,inf\nu1,i3,1\n", "score", "2 scores are NaN or infinite"),
    ("rank.csv", "user_id,item_id,score,rank\nu1,i1,1,0\nu1,i2,0.5,-2\n", "rank", "2 ranks are not whole numbers"),
    ("rank2.csv", "user_id,item_id,score,rank\nu1,i1,1,1.5\n", "rank", "not whole numbers >= 1.*'1.5'"),
    ("noid.csv", "user_id,item_id,score\n,i1,1\n", "user_id", "1 rows have no user_id"),
    ("short.trec", "u1 Q0 i1 1 0.5 sys\nu1 Q0 i2 2 0.4\n", None, "1 lines are not 'qid Q0 docid rank score tag'.*line 2"),
    ("ragged.csv", 'user_id,item_id,score\nu1,"i1,1\n', None, "not a readable CSV file"),
]


@pytest.mark.parametrize("name, text, column, message", BAD_TEXT_FILES, ids=[c[0] for c in BAD_TEXT_FILES])
def test_bad_text_files_name_the_file_and_column(tmp_path, name, text, column, message):
    path = _write(tmp_path, name, text)
    with pytest.raises(DataError, match=message) as caught:
        read_list(path)
    assert caught.value.file == path and caught.value.column == column
    assert caught.value.hint                                             # says what to do


def test_a_corrupted_parquet_file_is_one_data_error(tmp_path):
    path = tmp_path / "broken.parquet"
    _frame().write_parquet(path)
    path.write_bytes(path.read_bytes()[:40])                            # cut short
    with pytest.raises(DataError, match="not a readable Parquet file") as caught:
        read_list(str(path))
    assert caught.value.file == str(path)


@pytest.mark.parametrize("frame, column, message", [
    (pl.DataFrame({"user_id": [1.5], "item_id": ["a"], "score": [1.0]}), "user_id", "text .* found Float64"),
    (pl.DataFrame({"user_id": ["u"], "item_id": ["a"], "score": ["x"]}), "score", "not numbers"),
    (pl.DataFrame({"user_id": ["u"], "item_id": ["a"], "score": [True]}), "score", "must be numeric"),
    (pl.DataFrame({"user_id": ["u"], "item_id": ["a"], "score": [math.nan]}), "score", "NaN or infinite"),
    (pl.DataFrame({"user_id": ["u"], "item_id": ["a"], "score": [1.0], "rank": [2.5]}), "rank", "whole numbers"),
    (pl.DataFrame(schema={"user_id": pl.Utf8, "item_id": pl.Utf8, "score": pl.Float64}), None, "no rows"),
])
def test_bad_parquet_columns(tmp_path, frame, column, message):
    path = tmp_path / "bad.parquet"
    frame.write_parquet(path)
    with pytest.raises(DataError, match=message) as caught:
        read_list(str(path))
    assert caught.value.column == column


def test_unknown_format_missing_file_and_bad_settings(tmp_path):
    with pytest.raises(DataError, match="cannot tell the list format from the extension '.xlsx'"):
        read_list(_write(tmp_path, "lists.xlsx", "x"))
    with pytest.raises(ConfigError, match="unknown list format 'json'"):
        read_list(_write(tmp_path, "lists.csv", "x"), "json")
    with pytest.raises(DataError, match="does not exist"):
        read_list(str(tmp_path / "nowhere.csv"))
    with pytest.raises(ConfigError, match=r"eval\.external\[0\]\.name"):
        check_external_lists([ExternalListConfig(name="", path="a.csv")])
    with pytest.raises(ConfigError, match=r"eval\.external\[1\]\.split.*'train'"):
        check_external_lists([ExternalListConfig("a", "a.csv"), ExternalListConfig("b", "b.csv", split="train")])
    with pytest.raises(ConfigError, match=r"eval\.external\[0\]\.format"):
        check_eval_config(EvalConfig(external=[ExternalListConfig("a", "a.csv", format="xls")]))


def test_unknown_ids_and_duplicates_are_counted_with_a_warning(tmp_path, caplog):
    ctx = EvalContext.from_arrays(([0], [0]), ([], []), ([0, 1], [1, 2]), n_users=2, n_items=3,
                                  user_ids=["u0", "u1"], item_ids=["a", "b", "c"])
    path = _write(tmp_path, "l.csv", "user_id,item_id,score\n"
                                     "u0,b,2\nu0,b,1\nu0,zz,3\nstranger,a,1\nstranger,b,1\nu1,c,1\n")
    with caplog.at_level(logging.WARNING, logger="recsys.evaluate.external"):
        rows, counts = evaluate_lists([ExternalListConfig("ext", path)], ctx, EvalConfig(k=[2], splits=["test"]))
    (found,) = counts
    assert (found.n_rows, found.n_users, found.n_unknown_users, found.n_unknown_user_rows) == (6, 3, 1, 2)
    assert (found.n_unknown_items, found.n_unknown_item_rows, found.n_duplicate_rows) == (1, 1, 1)
    assert "1 unknown users (2 rows), 1 unknown items (1 rows), 1 duplicate rows" in caplog.text
    assert rows["ext"]["test"].values["hit_rate@2"].tolist() == [1.0, 1.0]
