"""Embedding a catalogue in process: cache reuse, added items, resume after a kill, bad catalogues."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys.embed.cache import EmbeddingCache
from recsys.embed.catalogue import embed_catalogue, load_item_vectors, text_spec
from recsys.embed.encoder import TextEncoder
from recsys.embed.templates import build_text_table
from recsys.errors import ConfigError, DataError
from tests.embed.fixtures import movie_items, write_prepared

REPO = Path(__file__).resolve().parents[2]


def vectors_by_id(path: Path) -> dict[str, np.ndarray]:
    table = pq.read_table(path)
    return dict(zip(table.column("item_id").to_pylist(), np.array(table.column("embedding").to_pylist())))


def test_every_item_gets_its_own_texts_vector(tmp_path, tiny_cfg):
    prepared = write_prepared(tmp_path / "p", movie_items(40), interaction_only=["x1", "x2"])
    result = embed_catalogue(prepared, tiny_cfg, tmp_path / "cache")
    table = pq.read_table(result.path)
    assert table.column("item_id").to_pylist() == [str(i) for i in range(40)] + ["x1", "x2"]
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 32)
    assert table.column("is_fallback").to_pylist() == [False] * 40 + [True, True]
    assert result.counts == {"n_items": 42, "n_texts": 41, "n_encoded": 41, "n_cached": 0, "n_fallback": 2,
                             "n_truncated": 0, "n_repaired": 0}
    # independent check: item 3's vector is the encoder's vector of the text its template gives
    encoder = TextEncoder(tiny_cfg)
    want = encoder.encode(["Movie 3 (1953). Genres: Horror, Romance. Tags: tag3"])[0]
    np.testing.assert_allclose(vectors_by_id(result.path)["3"], want, atol=1e-6)


def test_vectors_align_with_item_idx(tmp_path, tiny_cfg):
    prepared = write_prepared(tmp_path / "p", movie_items(10))
    item_map = prepared.item_map().with_columns((9 - pl.col("item_idx")).alias("item_idx"))   # reversed order
    result = embed_catalogue(prepared, tiny_cfg, tmp_path / "cache")
    vectors = load_item_vectors(result.path, item_map)
    by_id = vectors_by_id(result.path)
    assert vectors.shape == (10, 32) and vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors[9], by_id["0"])
    with pytest.raises(DataError, match="have no vector"):
        load_item_vectors(result.path, pl.DataFrame({"item_id": ["0", "zz"], "item_idx": [0, 1]}))


def test_rerun_with_same_inputs_encodes_nothing(tmp_path, tiny_cfg):
    prepared = write_prepared(tmp_path / "p", movie_items(30))
    first = embed_catalogue(prepared, tiny_cfg, tmp_path / "cache")
    parts = sorted(p.name for p in EmbeddingCache(first.cache_dir).part_files())
    again = embed_catalogue(prepared, tiny_cfg, tmp_path / "cache")
    assert (again.counts["n_encoded"], again.counts["n_cached"]) == (0, 30)
    assert sorted(p.name for p in EmbeddingCache(first.cache_dir).part_files()) == parts
    assert vectors_by_id(again.path).keys() == vectors_by_id(first.path).keys()


def test_added_items_encode_only_the_new_ones(tmp_path, tiny_cfg):
    small = write_prepared(tmp_path / "a", movie_items(30))
    grown = write_prepared(tmp_path / "b", movie_items(45))
    first = embed_catalogue(small, tiny_cfg, tmp_path / "cache")
    second = embed_catalogue(grown, tiny_cfg, tmp_path / "cache")
    assert (second.counts["n_encoded"], second.counts["n_cached"]) == (15, 30)
    old, new = vectors_by_id(first.path), vectors_by_id(second.path)
    for item in old:
        np.testing.assert_array_equal(old[item], new[item])


def test_changed_setting_uses_a_new_cache(tmp_path, tiny_cfg):
    prepared = write_prepared(tmp_path / "p", movie_items(12))
    first = embed_catalogue(prepared, tiny_cfg, tmp_path / "cache")
    cls = embed_catalogue(prepared, replace(tiny_cfg, pooling="cls"), tmp_path / "cache")
    assert cls.cache_dir != first.cache_dir and cls.counts["n_encoded"] == 12


def test_interrupted_run_resumes_with_what_was_written(tmp_path, tiny_cfg):
    n = 600
    prepared = write_prepared(tmp_path / "p", movie_items(n))
    cfg = replace(tiny_cfg, rows_per_block=16)
    script = textwrap.dedent(f"""
        from recsys.data.prepared import PreparedDataset
        from recsys.embed.catalogue import embed_catalogue
        from recsys.embed.config import EncoderConfig
        cfg = EncoderConfig(name="tiny", path={str(cfg.path)!r}, max_length=64, batch_size=16, rows_per_block=16)
        embed_catalogue(PreparedDataset.open({str(prepared.path)!r}), cfg, {str(tmp_path / "cache")!r},
                        engine="local")
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    child = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=REPO)
    parts = lambda: list((tmp_path / "cache").glob("tiny-*/parts/part-*.parquet"))  # noqa: E731
    deadline = time.monotonic() + 120
    while len(parts()) < 3 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    written = pa.concat_tables([pq.read_table(p) for p in parts()]).num_rows
    assert child.returncode == -signal.SIGKILL and 48 <= written < n, "the run was not interrupted mid-way"

    resumed = embed_catalogue(prepared, cfg, tmp_path / "cache")
    assert (resumed.counts["n_cached"], resumed.counts["n_encoded"]) == (written, n - written)
    got = vectors_by_id(resumed.path)
    assert sorted(got) == sorted(str(i) for i in range(n))
    # vectors written before the kill and after the resume both equal a fresh encoding of their text
    texts = build_text_table(pq.read_table(prepared.path / "items.parquet"), text_spec(cfg, prepared.name))
    sample = list(range(0, n, 25))
    fresh = TextEncoder(cfg).encode([texts.column("text")[i].as_py() for i in sample])
    np.testing.assert_allclose(np.stack([got[str(i)] for i in sample]), fresh, atol=1e-5)


def test_bad_text_inputs_are_counted_not_fatal(tmp_path, tiny_cfg):
    items = pa.table({
        "item_id": ["1", "2", "3", "4"],
        "title": pa.array([b"Caf\xe9 Society", b"Heat", None, b"Ok"], pa.binary()),
        "genres": [None, "Action|Crime", None, None],
        "tags": ["x " * 50_000, None, None, None],      # 100k characters
    })
    prepared = write_prepared(tmp_path / "p", items)
    result = embed_catalogue(prepared, replace(tiny_cfg, max_chars=2000), tmp_path / "cache")
    assert {k: result.counts[k] for k in ("n_fallback", "n_truncated", "n_repaired")} == \
        {"n_fallback": 1, "n_truncated": 1, "n_repaired": 1}
    assert np.isfinite(np.array(pq.read_table(result.path).column("embedding").to_pylist())).all()


def test_empty_catalogue_is_a_data_error(tmp_path, tiny_cfg):
    prepared = write_prepared(tmp_path / "p", pa.table({"item_id": pa.array([], pa.string()),
                                                       "title": pa.array([], pa.string())}))
    with pytest.raises(DataError, match="catalogue is empty"):
        embed_catalogue(prepared, tiny_cfg, tmp_path / "cache")


def test_missing_text_columns_fail_before_loading_the_model(tmp_path, tiny_cfg):
    prepared = write_prepared(tmp_path / "p", {"item_id": ["1"], "name": ["Heat"]})
    with pytest.raises(DataError, match=r"needs column\(s\) \['title'\]") as err:
        embed_catalogue(prepared, replace(tiny_cfg, path=str(tmp_path / "no-model")), tmp_path / "cache")
    assert "items.parquet" in str(err.value) and "encoder.template" in str(err.value)
    unknown = write_prepared(tmp_path / "q", {"item_id": ["1"], "name": ["Heat"]}, name="my-table")
    with pytest.raises(DataError, match="none of the text columns"):
        embed_catalogue(unknown, tiny_cfg, tmp_path / "cache")


def test_unknown_engine_is_a_config_error(tmp_path, tiny_cfg):
    prepared = write_prepared(tmp_path / "p", movie_items(2))
    with pytest.raises(ConfigError, match="encoder.engine"):
        embed_catalogue(prepared, replace(tiny_cfg, engine="spark"), tmp_path / "cache")


def test_synthetic_prepared_dataset(small_prepared, tiny_cfg, tmp_path):
    result = embed_catalogue(small_prepared, tiny_cfg, tmp_path / "cache")
    vectors = load_item_vectors(result.path, small_prepared.item_map())
    assert vectors.shape == (small_prepared.item_map().height, 32)
    assert result.counts["n_fallback"] == int((~small_prepared.item_map()["has_metadata"]).sum())
