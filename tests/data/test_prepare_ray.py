"""The Ray Data engine gives exactly the local engine's result, and reports bad input the same way."""

from __future__ import annotations

import json

import polars as pl
import pytest

from recsys.data.config import DataConfig, DatasetConfig, SplitConfig, SyntheticConfig
from recsys.data.prepare import prepare
from recsys.errors import DataError

pytestmark = pytest.mark.ray

# Several chunks, so the Ray path reads several parts and re-partitions users across blocks.
SYNTH = SyntheticConfig(n_users=900, n_items=300, n_topics=4, mean_interactions_per_user=15, chunk_users=200)


def _both(tmp_path, dataset, split, **data):
    common = dict(cache_dir=str(tmp_path), reuse_cache=False, **data)
    local = prepare(dataset, DataConfig(engine="local", **common), split)
    distributed = prepare(dataset, DataConfig(engine="ray", **common), split)
    return local, distributed


def _assert_identical(local, distributed):
    keys = ["user_id", "item_id", "timestamp", "rating"]
    for name in ("train", "val", "test"):
        a, b = local.split(name).sort(keys), distributed.split(name).sort(keys)
        assert a.height > 0
        assert a.equals(b), f"{name} differs: {a.height} vs {b.height} rows"
    assert local.user_map().equals(distributed.user_map())
    assert local.item_map().equals(distributed.item_map())
    for key in ("stages", "steps", "split", "validation", "items_without_metadata"):
        assert json.dumps(local.manifest[key], sort_keys=True) == json.dumps(distributed.manifest[key], sort_keys=True), key


@pytest.mark.parametrize("protocol", ["random", "temporal", "leave_last", "user_holdout"])
def test_ray_split_equals_local_split_for_every_protocol(tmp_path, protocol):
    local, distributed = _both(tmp_path, DatasetConfig(synthetic=SYNTH), SplitConfig(protocol=protocol, seed=3),
                               min_user_interactions=3, min_item_interactions=3, implicit_threshold=2.0)
    assert distributed.manifest["engine"] == "ray"
    _assert_identical(local, distributed)


def test_ray_path_equals_local_path_on_real_movielens(tmp_path, ml_latest_small):
    dataset = DatasetConfig(name="movielens", path=str(ml_latest_small), rating_scale=[0.5, 5.0])
    local, distributed = _both(tmp_path, dataset, SplitConfig(protocol="leave_last"), min_user_interactions=5)
    _assert_identical(local, distributed)


def test_duplicates_across_input_files_are_removed_the_same_way(tmp_path):
    folder = tmp_path / "events"
    folder.mkdir()
    rows = [("u1", "a", 10, 4.0), ("u1", "b", 11, 3.0), ("u1", "c", 12, 5.0), ("u2", "a", 10, 2.0),
            ("u2", "b", 13, 1.0), ("u2", "c", 14, 4.0), ("u3", "a", 15, 5.0), ("u3", "c", 16, 2.0)]
    frame = pl.DataFrame(rows, schema=["uid", "iid", "ts", "stars"], orient="row")
    frame.write_parquet(folder / "part-0.parquet")
    # The second file repeats two events of the first with other ratings.
    frame.head(2).with_columns(pl.col("stars") - 1).write_parquet(folder / "part-1.parquet")
    dataset = DatasetConfig(name="table", interactions=str(folder / "*.parquet"),
                            columns={"user_id": "uid", "item_id": "iid", "timestamp": "ts", "rating": "stars"})
    local, distributed = _both(tmp_path / "cache", dataset, SplitConfig(protocol="leave_last"), duplicates="last")
    _assert_identical(local, distributed)
    steps = {s["step"]: s for s in distributed.manifest["steps"]}
    assert steps["deduplicate"]["n_removed"] == 2


def test_bad_input_in_one_file_is_reported_by_name_not_as_a_ray_traceback(tmp_path):
    folder = tmp_path / "events"
    folder.mkdir()
    good = pl.DataFrame({"uid": ["u1", "u2"], "iid": ["a", "b"], "ts": [1, 2]})
    good.write_parquet(folder / "good.parquet")
    good.with_columns(pl.lit(None, dtype=pl.Utf8).alias("uid")).write_parquet(folder / "nulls.parquet")
    dataset = DatasetConfig(name="table", interactions=str(folder / "*.parquet"),
                            columns={"user_id": "uid", "item_id": "iid", "timestamp": "ts"})
    with pytest.raises(DataError) as info:
        prepare(dataset, DataConfig(cache_dir=str(tmp_path / "cache"), engine="ray"), SplitConfig())
    assert type(info.value) is DataError
    assert "nulls.parquet" in str(info.value) and "user_id" in str(info.value)
    assert "What to do" in str(info.value)
    assert not list((tmp_path / "cache").glob("table-*")), "a failed run publishes no prepared dataset"
