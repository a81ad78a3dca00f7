"""split.protocol=given: the user's own split, from a label column or one file per split (RecBole's too)."""

from __future__ import annotations

import hashlib
import json

import polars as pl
import pytest

from recsys.data.config import DataConfig, DatasetConfig, SplitConfig
from recsys.data.prepare import prepare
from recsys.errors import ConfigError, DataError

HEADER = "uid,iid,ts,fold\n"
ROWS = ["u1,a,1,train", "u1,b,2,train", "u1,c,3,test", "u2,a,1,train", "u2,d,5,val", "u2,b,6,test", "u3,c,9,test"]
COLUMNS = {"user_id": "uid", "item_id": "iid", "timestamp": "ts"}
ATOMIC_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"


def _table(tmp_path, rows=ROWS, name="events.csv", header=HEADER):
    path = tmp_path / name
    path.write_text(header + "\n".join(rows) + "\n")
    return path


def _prepare(tmp_path, dataset, split, engine="local", **data):
    return prepare(dataset, DataConfig(cache_dir=str(tmp_path / "cache"), engine=engine, reuse_cache=False, **data),
                   split)


def _column_dataset(path, **columns):
    return DatasetConfig(name="table", interactions=str(path), columns={**COLUMNS, **columns})


def _atomic(tmp_path, name, rows):
    path = tmp_path / name
    path.write_text(ATOMIC_HEADER + "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows))
    return path


def _error(tmp_path, dataset, split, kind=DataError, **data):
    with pytest.raises(kind) as info:
        _prepare(tmp_path, dataset, split, **data)
    assert type(info.value) is kind
    return str(info.value)


# ---------------------------------------------------------------- the label column


def test_a_label_column_gives_exactly_the_labelled_rows_to_each_split(tmp_path):
    ds = _prepare(tmp_path, _column_dataset(_table(tmp_path)), SplitConfig(protocol="given", column="fold"))
    got = {name: sorted(ds.split(name).select("user_id", "item_id", "timestamp").rows()) for name in
           ("train", "val", "test")}
    assert got == {"train": [("u1", "a", 1), ("u1", "b", 2), ("u2", "a", 1)], "val": [("u2", "d", 5)],
                   "test": [("u1", "c", 3), ("u2", "b", 6), ("u3", "c", 9)]}
    given = ds.manifest["split"]["given"]
    assert ds.manifest["split"]["protocol"] == "given"
    assert given == {"source": "column", "column": "fold", "rows_loaded": {"train": 3, "val": 1, "test": 3}}
    # u3 is only in test and item d only in val: the audit reports them as cold, nothing is dropped
    audit = {row["stage"]: row for row in ds.audit_rows()}
    assert (audit["test"]["n_cold_users"], audit["test"]["n_cold_items"]) == (1, 1)
    assert (audit["val"]["n_cold_users"], audit["val"]["n_cold_items"]) == (0, 1)
    assert ds.user_map().filter(pl.col("user_id") == "u3")["is_cold"].to_list() == [True]


def test_dataset_columns_split_maps_the_label_column_of_a_parquet_table(tmp_path):
    frame = pl.DataFrame({"uid": [1, 1, 2, 2], "iid": [10, 11, 10, 12], "ts": [5, 6, 5, 7],
                          "phase": ["train", "test", "train", "test"]})
    frame.write_parquet(tmp_path / "events.parquet")
    dataset = _column_dataset(tmp_path / "events.parquet", split="phase")
    ds = _prepare(tmp_path, dataset, SplitConfig(protocol="given", column="ignored"))
    assert sorted(ds.split("test")["item_id"].to_list()) == ["11", "12"]
    assert ds.manifest["split"]["given"]["column"] == "phase"


def test_filters_apply_to_every_split_of_a_given_split(tmp_path):
    rows = ["u1,a,1,4,train", "u1,b,2,2,test", "u2,a,3,5,train", "u2,b,4,5,test"]
    path = _table(tmp_path, rows, header="uid,iid,ts,stars,fold\n")
    ds = _prepare(tmp_path, _column_dataset(path, rating="stars"), SplitConfig(protocol="given", column="fold"),
                  implicit_threshold=4.0)
    assert ds.split("test").select("user_id", "item_id").rows() == [("u2", "b")]


# ---------------------------------------------------------------- one file per split


def test_one_file_per_split_relative_to_dataset_path_with_hashes_in_the_manifest(tmp_path):
    _table(tmp_path, ["u1,a,1", "u1,b,2", "u2,a,3"], "train.csv", header="uid,iid,ts\n")
    _table(tmp_path, ["u2,b,4"], "val.csv", header="uid,iid,ts\n")
    _table(tmp_path, ["u1,c,5", "u2,c,6"], "test.csv", header="uid,iid,ts\n")
    dataset = DatasetConfig(name="table", path=str(tmp_path), columns=COLUMNS)
    split = SplitConfig(protocol="given", files={"train": "train.csv", "val": "val.csv", "test": "test.csv"})
    ds = _prepare(tmp_path, dataset, split)
    assert [ds.split(n).height for n in ("train", "val", "test")] == [3, 1, 2]
    files = ds.manifest["split"]["given"]["files"]
    for name in ("train", "val", "test"):
        path = tmp_path / f"{name}.csv"
        assert files[name] == {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def test_recbole_benchmark_files_load_with_their_typed_headers(tmp_path):
    _atomic(tmp_path, "ml.train.inter", [(1, 10, 4.0, "978300760.0"), (1, 11, 3.0, "978300761.0"),
                                         (2, 10, 5.0, "978300762.0"), (2, 12, 2.0, "978300763.0")])
    _atomic(tmp_path, "ml.valid.inter", [(1, 12, 1.0, "978300770.0")])
    _atomic(tmp_path, "ml.test.inter", [(1, 13, 4.5, "978300790.0"), (3, 10, 1.0, "978300799.0")])
    (tmp_path / "ml.item").write_text("item_id:token\tmovie_title:token_seq\tgenre:token_seq\n"
                                      "10\tToy Story\tAnimation Comedy\n11\tHeat\tAction\n12\tJumanji\tAdventure\n"
                                      "13\tCasino\tDrama\n")
    dataset = DatasetConfig(name="table", path=str(tmp_path), items="ml.item")
    split = SplitConfig(protocol="given",
                        files={"train": "ml.train.inter", "val": "ml.valid.inter", "test": "ml.test.inter"})
    ds = _prepare(tmp_path, dataset, split)
    test = ds.split("test").sort("user_id")
    assert test.select("user_id", "item_id", "timestamp", "rating").rows() == [
        ("1", "13", 978300790, 4.5), ("3", "10", 978300799, 1.0)]
    assert ds.split("val").select("user_id", "item_id").rows() == [("1", "12")]
    assert ds.items().sort("item_id")["movie_title"].to_list() == ["Toy Story", "Heat", "Jumanji", "Casino"]
    assert {row["stage"]: row["n_cold_users"] for row in ds.audit_rows()}["test"] == 1


# ---------------------------------------------------------------- bad labels and files, one error each


def test_unknown_labels_are_named_with_their_counts(tmp_path):
    rows = ["u1,a,1,train", "u1,b,2,training", "u2,a,3,training", "u2,b,4,tst", "u3,c,5,test"]
    message = _error(tmp_path, _column_dataset(_table(tmp_path, rows)), SplitConfig(protocol="given", column="fold"))
    assert message.startswith(f"{tmp_path / 'events.csv'}, column 'fold': 3 rows have a split label other than "
                              "train, val or test: 'training' (2 rows), 'tst' (1 rows)")


def test_a_missing_label_is_an_unknown_label(tmp_path):
    rows = ["u1,a,1,train", "u1,b,2,", "u2,c,3,test"]
    message = _error(tmp_path, _column_dataset(_table(tmp_path, rows)), SplitConfig(protocol="given", column="fold"))
    assert "column 'fold': 1 rows have a split label other than train, val or test: '<missing>' (1 rows)" in message


def test_a_label_column_that_is_not_there_is_named(tmp_path):
    message = _error(tmp_path, _column_dataset(_table(tmp_path)), SplitConfig(protocol="given"))
    assert "column 'split': column 'split' is missing" in message and "split.column=NAME" in message


def test_the_same_event_in_two_splits_is_an_error(tmp_path):
    rows = [*ROWS, "u1,a,1,test", "u2,d,5,test"]
    message = _error(tmp_path, _column_dataset(_table(tmp_path, rows)), SplitConfig(protocol="given", column="fold"))
    assert message.startswith(f"{tmp_path / 'events.csv'}, column 'fold': 2 events (user_id, item_id, timestamp) "
                              "are in more than one split, e.g. user_id='u1', item_id='a', timestamp=1 is in test "
                              "and train")


def test_the_same_event_in_two_files_names_both_files(tmp_path):
    _atomic(tmp_path, "x.train.inter", [(1, 10, 4.0, 5), (1, 11, 3.0, 6)])
    _atomic(tmp_path, "x.test.inter", [(1, 11, 3.0, 6), (2, 10, 1.0, 7)])
    split = SplitConfig(protocol="given", files={"train": "x.train.inter", "test": "x.test.inter"})
    message = _error(tmp_path, DatasetConfig(name="table", path=str(tmp_path)), split, duplicates="first")
    train, test = tmp_path / "x.train.inter", tmp_path / "x.test.inter"
    assert message.startswith(f"{train}, {test}: 1 events (user_id, item_id, timestamp) are in more than one split, "
                              f"e.g. user_id='1', item_id='11', timestamp=6 is in test ({test}) and train ({train})")


@pytest.mark.parametrize("missing", ["train", "test"])
def test_no_train_or_no_test_rows_is_an_error(tmp_path, missing):
    rows = [r for r in ROWS if not r.endswith(missing)]
    message = _error(tmp_path, _column_dataset(_table(tmp_path, rows)), SplitConfig(protocol="given", column="fold"))
    assert f"column 'fold': the given split has no {missing} rows (rows per label: " in message


def test_a_header_only_split_file_is_named(tmp_path):
    _table(tmp_path, ["u1,a,1"], "train.csv", header="uid,iid,ts\n")
    (tmp_path / "test.csv").write_text("uid,iid,ts\n")
    split = SplitConfig(protocol="given", files={"train": "train.csv", "test": "test.csv"})
    message = _error(tmp_path, DatasetConfig(name="table", path=str(tmp_path), columns=COLUMNS), split)
    assert message.startswith(f"{tmp_path / 'test.csv'}: the file holds no interactions")


def test_a_split_file_that_does_not_exist_names_its_setting(tmp_path):
    _table(tmp_path, ["u1,a,1"], "train.csv", header="uid,iid,ts\n")
    split = SplitConfig(protocol="given", files={"train": "train.csv", "test": "nope.csv"})
    message = _error(tmp_path, DatasetConfig(name="table", path=str(tmp_path), columns=COLUMNS), split)
    assert "setting 'split.files.test': file not found" in message


def test_split_files_of_two_formats_are_refused(tmp_path):
    _table(tmp_path, ["u1,a,1"], "train.csv", header="uid,iid,ts\n")
    pl.DataFrame({"uid": ["u1"], "iid": ["b"], "ts": [2]}).write_parquet(tmp_path / "test.parquet")
    split = SplitConfig(protocol="given", files={"train": "train.csv", "test": "test.parquet"})
    message = _error(tmp_path, DatasetConfig(name="table", path=str(tmp_path), columns=COLUMNS), split)
    assert "setting 'split.files': the split files must share one format" in message


@pytest.mark.parametrize("dataset, split, setting", [
    (DatasetConfig(name="table", interactions="x.csv"), SplitConfig(protocol="given", files={"train": "a.csv"}),
     "split.files"),
    (DatasetConfig(name="table", interactions="x.csv"),
     SplitConfig(protocol="given", files={"train": "a.csv", "test": "a.csv"}), "split.files"),
    (DatasetConfig(name="table", interactions="x.csv"),
     SplitConfig(protocol="given", files={"train": "a.csv", "valid": "b.csv", "test": "c.csv"}), "split.files"),
    (DatasetConfig(name="table", interactions="x.csv"),
     SplitConfig(protocol="given", files={"train": "a.csv", "test": "c.csv"}), "split.files"),
    (DatasetConfig(name="table", interactions="x.csv"), SplitConfig(protocol="given", column=""), "split.column"),
    (DatasetConfig(), SplitConfig(protocol="given"), "split.protocol"),
    (DatasetConfig(name="movielens", path="x"), SplitConfig(protocol="given"), "split.protocol"),
    (DatasetConfig(name="table", interactions="x.csv", columns={"split": "fold"}), SplitConfig(),
     "dataset.columns.split"),
    (DatasetConfig(name="table", interactions="x.csv"), SplitConfig(files={"train": "a.csv", "test": "b.csv"}),
     "split.files"),
])
def test_impossible_given_settings_fail_before_reading_anything(tmp_path, dataset, split, setting):
    assert f"setting '{setting}'" in _error(tmp_path, dataset, split, kind=ConfigError)


def test_the_hydra_override_for_split_files_composes():
    from rayjobs._common import compose

    cfg = compose(["dataset=table", "split.protocol=given", "split.files={train: a.inter, test: c.inter}"])
    assert cfg.split.files == {"train": "a.inter", "val": None, "test": "c.inter"}
    cfg = compose(["dataset=table", "split.protocol=given", "dataset.columns.split=fold", "dataset.columns.rating=x"])
    assert (cfg.dataset.columns["split"], cfg.dataset.columns["rating"]) == ("fold", "x")


# ---------------------------------------------------------------- engines and an independent reference


def _log_cut(ml_latest_small, tmp_path):
    """ml-latest-small (its first 120 users) cut by two timestamps into RecBole files, plus a label column."""
    ratings = pl.read_csv(ml_latest_small / "ratings.csv").filter(pl.col("userId") <= 120)
    c1, c2 = 1_400_000_000, 1_480_000_000
    labelled = ratings.with_columns(
        pl.when(pl.col("timestamp") < c1).then(pl.lit("train")).when(pl.col("timestamp") < c2)
        .then(pl.lit("val")).otherwise(pl.lit("test")).alias("fold"))
    labelled.write_parquet(tmp_path / "labelled.parquet")
    for name, label in (("train", "train"), ("valid", "val"), ("test", "test")):
        part = labelled.filter(pl.col("fold") == label)
        with open(tmp_path / f"ml.{name}.inter", "w") as out:
            out.write(ATOMIC_HEADER)
            for u, i, r, t in part.select("userId", "movieId", "rating", "timestamp").iter_rows():
                out.write(f"{u}\t{i}\t{r}\t{float(t)}\n")
    return [c1, c2]


def _same(a, b, keys=("user_id", "item_id", "timestamp", "rating")):
    for name in ("train", "val", "test"):
        x, y = a.split(name).sort(list(keys)), b.split(name).sort(list(keys))
        assert x.height > 0 and x.equals(y), name
    assert a.user_map().equals(b.user_map()) and a.item_map().equals(b.item_map())
    assert json.dumps(a.manifest["stages"], sort_keys=True) == json.dumps(b.manifest["stages"], sort_keys=True)


@pytest.mark.ray
def test_both_engines_give_the_temporal_split_a_log_cut_describes(tmp_path, ml_latest_small):
    cutoffs = _log_cut(ml_latest_small, tmp_path)
    files = SplitConfig(protocol="given",
                        files={"train": "ml.train.inter", "val": "ml.valid.inter", "test": "ml.test.inter"})
    from_files = DatasetConfig(name="table", path=str(tmp_path))
    column = DatasetConfig(name="table", interactions=str(tmp_path / "labelled.parquet"),
                           columns={"user_id": "userId", "item_id": "movieId", "split": "fold"})
    common = dict(min_user_interactions=3)
    local = _prepare(tmp_path / "l", from_files, files, "local", **common)
    distributed = _prepare(tmp_path / "r", from_files, files, "ray", **common)
    _same(local, distributed)
    assert local.manifest["split"] == distributed.manifest["split"]
    unlabelled = DatasetConfig(name="table", interactions=str(tmp_path / "labelled.parquet"),
                               columns={"user_id": "userId", "item_id": "movieId"})
    reference = _prepare(tmp_path / "t", unlabelled, SplitConfig(protocol="temporal", cutoffs=cutoffs), "local",
                         **common)
    _same(local, reference)
    by_column = _prepare(tmp_path / "c", column, SplitConfig(protocol="given"), "ray", **common)
    _same(by_column, reference)


@pytest.mark.ray
def test_both_engines_report_an_overlap_with_the_same_error(tmp_path):
    rows = [*ROWS, "u3,c,9,train"]
    dataset, split = _column_dataset(_table(tmp_path, rows)), SplitConfig(protocol="given", column="fold")
    messages = [_error(tmp_path / engine, dataset, split, engine=engine) for engine in ("local", "ray")]
    assert messages[0] == messages[1] and "are in more than one split" in messages[0]


def test_the_run_config_check_refuses_a_given_split_of_synthetic_data_before_any_work():
    from recsys.checks import check_config
    from recsys.config import RecsysConfig

    with pytest.raises(ConfigError, match="setting 'split.protocol': split.protocol=given reads the split from a "
                                          "table of interactions, not from dataset=synthetic"):
        check_config(RecsysConfig(split=SplitConfig(protocol="given")))
