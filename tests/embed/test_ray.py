"""The Ray Data path: parity with the in-process path, cache reuse and resume, a killed actor, the stage."""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys.config import RecsysConfig
from recsys.embed.cache import EmbeddingCache
from recsys.embed.catalogue import embed_catalogue, load_item_vectors
from recsys.embed.config import EncoderConfig
from recsys.embed.stage import stage_embed
from recsys.errors import ConfigError, DataError
from recsys.pipeline import RunState
from recsys.report.reader import load_tables
from recsys.report.writer import RunWriter
from tests.embed.fixtures import movie_items, write_prepared

pytestmark = pytest.mark.ray

ENCODER_ACTOR = "MapBatches(TextEncoder)"


def by_id(path: Path) -> dict[str, np.ndarray]:
    table = pq.read_table(path)
    return dict(zip(table.column("item_id").to_pylist(), np.array(table.column("embedding").to_pylist())))


def cached_hashes(cache_dir: Path) -> list[str]:
    return [h for p in EmbeddingCache(cache_dir).part_files() for h in pq.read_table(p).column("text_hash").to_pylist()]


@pytest.fixture(scope="module")
def ray_cfg(tiny_model):
    return EncoderConfig(name="tiny", path=str(tiny_model), max_length=64, batch_size=16, rows_per_block=32,
                         engine="ray", progress_every_s=0.0)


def awkward_items(n: int) -> pa.Table:
    """Movie items whose text has every hard case: non-UTF-8 bytes, an empty row, a 100k-character tag."""
    items = movie_items(n)
    titles = [t.encode() for t in items["title"]]
    titles[1] = b"Caf\xe9 Society (2016)"           # latin-1 byte: not UTF-8
    tags = list(items["tags"])
    tags[2] = "long " * 20_000                          # 100k characters
    titles[4], items["genres"][4], tags[4] = None, None, None
    return pa.table({"item_id": items["item_id"], "title": pa.array(titles, pa.binary()),
                     "genres": items["genres"], "tags": tags})


@pytest.fixture(scope="module")
def ray_run(tmp_path_factory, ray_cfg, ray_session):
    """One Ray Data run over 150 awkward items plus 3 items without metadata; later tests reuse its cache."""
    root = tmp_path_factory.mktemp("ray-run")
    prepared = write_prepared(root / "p", awkward_items(150), interaction_only=["x1", "x2", "x3"])
    return prepared, embed_catalogue(prepared, ray_cfg, root / "cache"), root


def test_ray_path_equals_in_process_path(tmp_path, ray_cfg, ray_run):
    prepared, ray_result, _ = ray_run
    local_result = embed_catalogue(prepared, replace(ray_cfg, engine="local"), tmp_path / "local-cache")
    got, want = by_id(ray_result.path), by_id(local_result.path)
    assert list(got) == list(want) and len(got) == 153
    cosine = np.array([got[k] @ want[k] / np.linalg.norm(got[k]) / np.linalg.norm(want[k]) for k in want])
    assert cosine.min() > 0.9999
    assert ray_result.counts == local_result.counts
    assert ray_result.cache_dir.name == local_result.cache_dir.name     # same key: the engine is not in it


def test_ray_path_counts_bad_text_instead_of_failing(ray_run):
    _, result, _ = ray_run
    assert {k: result.counts[k] for k in ("n_items", "n_fallback", "n_truncated", "n_repaired")} == \
        {"n_items": 153, "n_fallback": 4, "n_truncated": 1, "n_repaired": 1}
    assert result.counts["n_texts"] == 150                # the four fallback items share one text


def test_rerun_encodes_nothing(ray_cfg, ray_run):
    prepared, first, root = ray_run
    parts = EmbeddingCache(first.cache_dir).part_files()
    again = embed_catalogue(prepared, ray_cfg, root / "cache")
    assert (again.counts["n_encoded"], again.counts["n_cached"]) == (0, 150)
    assert EmbeddingCache(first.cache_dir).part_files() == parts


def test_lost_parts_are_recomputed_and_nothing_else(tmp_path, ray_cfg, ray_run):
    prepared, first, root = ray_run
    shutil.copytree(root / "cache", tmp_path / "cache")
    parts = EmbeddingCache(tmp_path / "cache" / first.cache_dir.name).part_files()
    assert len(parts) >= 2
    lost = pq.read_table(parts[0]).num_rows
    parts[0].unlink()                                   # as if the run had stopped before this part landed
    resumed = embed_catalogue(prepared, ray_cfg, tmp_path / "cache")
    assert (resumed.counts["n_encoded"], resumed.counts["n_cached"]) == (lost, 150 - lost)
    want = by_id(first.path)
    for item, vector in by_id(resumed.path).items():
        np.testing.assert_allclose(vector, want[item], atol=1e-6)


def _encoder_actor_processes() -> list[psutil.Process]:
    found = []
    for proc in psutil.Process().children(recursive=True):     # only processes this test session started
        try:
            if ENCODER_ACTOR in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            continue
    return found


@pytest.mark.slow
def test_killed_encoder_actor_still_gives_every_item_exactly_once(tmp_path, ray_cfg):
    n = 400
    prepared = write_prepared(tmp_path / "p", movie_items(n))
    cfg = replace(ray_cfg, rows_per_block=16, batch_size=8)
    killed: list[int] = []
    parts_at_kill: list[int] = []

    def kill_mid_run() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            parts = list((tmp_path / "cache").glob("tiny-*/parts/part-*.parquet"))
            actors = _encoder_actor_processes()
            if len(parts) >= 2 and actors:
                for proc in actors:
                    proc.send_signal(signal.SIGKILL)
                    killed.append(proc.pid)
                parts_at_kill.append(len(parts))
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_mid_run, daemon=True)
    killer.start()
    result = embed_catalogue(prepared, cfg, tmp_path / "cache")
    killer.join(timeout=5)
    assert killed, "no encoder actor was found to kill"
    assert parts_at_kill[0] < n // cfg.rows_per_block, "the actor was killed after the work was done"

    table = pq.read_table(result.path)
    ids = table.column("item_id").to_pylist()
    assert sorted(ids) == sorted(str(i) for i in range(n)) and len(set(ids)) == n
    hashes = cached_hashes(result.cache_dir)
    assert len(hashes) == len(set(hashes)) == n            # each text encoded and stored exactly once
    assert result.counts["n_encoded"] == n
    vectors = np.array(table.column("embedding").to_pylist())
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_broken_weights_are_a_config_error_before_any_actor_starts(tmp_path, ray_cfg, tiny_model):
    shutil.copytree(tiny_model, tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x00" * 64)
    prepared = write_prepared(tmp_path / "p", movie_items(10))
    with pytest.raises(ConfigError, match="cannot load the encoder"):
        embed_catalogue(prepared, replace(ray_cfg, path=str(tmp_path / "m")), tmp_path / "cache")


def test_stage_records_vectors_and_health(tmp_path, ray_cfg, ray_run):
    prepared, first, root = ray_run
    cfg = RecsysConfig(encoder=replace(ray_cfg, cache_dir=str(root / "cache")))
    with RunWriter(tmp_path / "report", run_id="r1") as writer:
        run = RunState(cfg=cfg, writer=writer, prepared=prepared)
        with writer.transaction():
            stage_embed(run)
    vectors = load_item_vectors(run.embedding.vectors_path, prepared.item_map())
    assert vectors.shape == (153, 32)
    rows = load_tables(str(tmp_path / "report"))["embedding_health"].to_dicts()
    assert len(rows) == 1
    row = rows[0]
    assert (row["dataset"], row["model"], row["embedding"], row["n_rows"], row["dim"]) == \
        ("movielens", "text_encoder", "item_text", 153, 32)
    assert row["norm_mean"] == pytest.approx(1.0, abs=1e-5) and row["dead_rows"] == 0
    details = json.loads(row["details"])
    assert details["n_fallback"] == 4 and details["duplicate_vectors"] == 3     # four fallback items, one vector
    assert (details["n_encoded"], details["n_cached"]) == (0, 150)
    assert details["encoder"]["source"] == "path" and len(details["encoder"]["sha256"]) == 64


def test_stage_without_prepared_dataset_is_a_config_error(tmp_path):
    with RunWriter(tmp_path / "report", run_id="r2") as writer:
        with pytest.raises(ConfigError, match="prepare"):
            stage_embed(RunState(cfg=RecsysConfig(), writer=writer))


def test_ray_path_rejects_a_table_without_text(tmp_path, ray_cfg):
    prepared = write_prepared(tmp_path / "p", {"item_id": ["1"], "name": ["x"]}, name="my-table")
    with pytest.raises(DataError, match="none of the text columns"):
        embed_catalogue(prepared, ray_cfg, tmp_path / "cache")
