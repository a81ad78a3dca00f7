"""Preparation end to end in one process: steps, manifest, cache, real MovieLens, config errors."""

from __future__ import annotations

import json

import polars as pl
import pytest

from recsys.data.config import DataConfig, DatasetConfig, SplitConfig, SyntheticConfig
from recsys.data.prepare import prepare
from recsys.data.prepared import PreparedDataset
from recsys.errors import ConfigError, DataError

SMALL = SyntheticConfig(n_users=300, n_items=200, n_topics=4, mean_interactions_per_user=12, chunk_users=100)


def _data(tmp_path, **kw) -> DataConfig:
    return DataConfig(cache_dir=str(tmp_path / "cache"), engine="local", **kw)


def test_prepared_directory_holds_every_split_the_maps_and_a_manifest(tmp_path):
    ds = prepare(DatasetConfig(synthetic=SMALL), _data(tmp_path), SplitConfig())
    for name in ("train", "val", "test"):
        frame = ds.split(name)
        assert frame.columns == ["user_id", "item_id", "timestamp", "rating", "user_idx", "item_idx"]
        assert frame.height > 0
    manifest = json.loads((ds.path / "manifest.json").read_text())
    assert manifest["fingerprint"] in ds.path.name
    assert [s["step"] for s in manifest["steps"]] == ["loaded", "deduplicate", "implicit", "kcore", "filtered"]
    assert set(manifest["outputs"]) >= {"items.parquet", "user_map.parquet", "item_map.parquet"}
    assert all(len(h) == 64 for h in manifest["outputs"].values())


def test_no_row_is_lost_between_loading_and_the_splits(tmp_path):
    ds = prepare(DatasetConfig(synthetic=SMALL), _data(tmp_path), SplitConfig())
    stages = {row["stage"]: row for row in ds.audit_rows()}
    assert stages["loaded"]["n_rows"] == stages["filtered"]["n_rows"]
    assert sum(stages[s]["n_rows"] for s in ("train", "val", "test")) == stages["filtered"]["n_rows"]
    assert sum(ds.split(s).height for s in ("train", "val", "test")) == stages["filtered"]["n_rows"]


def test_id_maps_index_training_ids_first_and_cover_every_split(tmp_path):
    ds = prepare(DatasetConfig(synthetic=SMALL), _data(tmp_path), SplitConfig(protocol="temporal"))
    items = ds.item_map()
    warm = items.filter(~pl.col("is_cold"))
    assert warm["item_idx"].to_list() == list(range(warm.height))
    assert set(ds.split("train")["item_idx"].to_list()) == set(warm["item_idx"].to_list())
    # Every catalogue item has an index, interacted with or not.
    assert items.height == ds.items().height
    test_items = set(ds.split("test")["item_id"].to_list())
    assert test_items <= set(items["item_id"].to_list())


def test_filters_are_applied_and_counted(tmp_path):
    data = _data(tmp_path, implicit_threshold=4.0, min_user_interactions=5, min_item_interactions=5)
    ds = prepare(DatasetConfig(synthetic=SMALL), data, SplitConfig())
    steps = {s["step"]: s for s in ds.manifest["steps"]}
    assert steps["implicit"]["n_removed"] > 0
    kept = pl.concat([ds.split(s) for s in ("train", "val", "test")])
    assert kept["rating"].min() >= 4.0
    assert kept.group_by("user_id").len()["len"].min() >= 5
    assert kept.group_by("item_id").len()["len"].min() >= 5
    loaded = steps["loaded"]["n_rows"]
    removed = steps["deduplicate"]["n_removed"] + steps["implicit"]["n_removed"] + steps["kcore"]["n_removed"]
    assert loaded - removed == kept.height


def test_a_rerun_reuses_the_cache_and_a_changed_setting_does_not(tmp_path):
    first = prepare(DatasetConfig(synthetic=SMALL), _data(tmp_path), SplitConfig())
    again = prepare(DatasetConfig(synthetic=SMALL), _data(tmp_path), SplitConfig())
    assert again.path == first.path
    assert again.manifest["created_at"] == first.manifest["created_at"]
    other = prepare(DatasetConfig(synthetic=SMALL), _data(tmp_path), SplitConfig(seed=7))
    assert other.path != first.path
    assert not list((tmp_path / "cache").glob(".*tmp*")), "no temporary directory is left behind"


def test_the_same_seed_gives_the_same_split_and_another_seed_another(tmp_path):
    a = prepare(DatasetConfig(synthetic=SMALL), _data(tmp_path / "a"), SplitConfig(seed=1))
    b = prepare(DatasetConfig(synthetic=SMALL), _data(tmp_path / "b"), SplitConfig(seed=1))
    c = prepare(DatasetConfig(synthetic=SMALL), _data(tmp_path / "c"), SplitConfig(seed=2))
    assert a.split("test").equals(b.split("test"))
    assert not a.split("test").equals(c.split("test"))


def test_real_movielens_latest_small_prepares_with_every_rating(tmp_path, ml_latest_small):
    dataset = DatasetConfig(name="movielens", path=str(ml_latest_small), rating_scale=[0.5, 5.0])
    ds = prepare(dataset, _data(tmp_path), SplitConfig())
    stages = {row["stage"]: row for row in ds.audit_rows()}
    assert (stages["loaded"]["n_rows"], stages["loaded"]["n_users"], stages["loaded"]["n_items"]) == (100836, 610, 9724)
    assert stages["loaded"]["n_catalog_items"] == 9742
    assert ds.manifest["source"]["format"] == "ml-csv"
    assert ds.item_map().height == 9742
    assert ds.manifest["items_without_metadata"]["count"] == 0
    assert ds.items().filter(pl.col("item_id") == "11")["title"].item() == "American President, The (1995)"


def test_a_failed_preparation_leaves_nothing_in_the_cache(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,2,x,3\n")
    (bad / "movies.csv").write_text("movieId,title,genres\n2,A,Drama\n")
    with pytest.raises(DataError, match="rating"):
        prepare(DatasetConfig(name="movielens", path=str(bad)), _data(tmp_path), SplitConfig())
    cache = tmp_path / "cache"
    assert not cache.exists() or not any(cache.iterdir())


@pytest.mark.parametrize(
    "data, split, setting",
    [
        ({"engine": "spark"}, {}, "data.engine"),
        ({"duplicates": "newest"}, {}, "data.duplicates"),
        ({}, {"protocol": "by_moon"}, "split.protocol"),
        ({}, {"ratios": [0.5, 0.6, 0.1]}, "split.ratios"),
    ],
)
def test_impossible_settings_fail_before_any_work(tmp_path, data, split, setting):
    with pytest.raises(ConfigError, match=setting.replace(".", r"\.")):
        prepare(DatasetConfig(synthetic=SMALL), DataConfig(cache_dir=str(tmp_path), **{"engine": "local", **data}),
                SplitConfig(**split))
    assert not any(tmp_path.iterdir())


def test_unknown_dataset_and_missing_path_are_named(tmp_path):
    with pytest.raises(ConfigError, match="dataset"):
        prepare(DatasetConfig(name="netflix"), _data(tmp_path), SplitConfig())
    with pytest.raises((ConfigError, DataError), match="dataset.path"):
        prepare(DatasetConfig(name="movielens"), _data(tmp_path), SplitConfig())


def test_opening_a_directory_that_is_not_prepared_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match="rayjobs.prepare"):
        PreparedDataset.open(tmp_path)


def test_bad_rows_are_reported_with_the_file_that_holds_them(tmp_path):
    folder = tmp_path / "events"
    folder.mkdir()
    good = pl.DataFrame({"uid": ["u1", "u2"], "iid": ["a", "b"], "ts": [1, 2], "stars": [3.0, 4.0]})
    good.write_parquet(folder / "good.parquet")
    good.with_columns(pl.lit(9.0).alias("stars")).write_parquet(folder / "too_high.parquet")
    dataset = DatasetConfig(name="table", interactions=str(folder / "*.parquet"), rating_scale=[1.0, 5.0],
                            columns={"user_id": "uid", "item_id": "iid", "timestamp": "ts", "rating": "stars"})
    with pytest.raises(DataError) as info:
        prepare(dataset, _data(tmp_path), SplitConfig())
    message = str(info.value)
    assert "too_high.parquet" in message and "rating" in message and "dataset.rating_scale" in message
