"""Report tables, the embedding cache, checkpoints and datasets on s3:// URIs, against a real S3 API (moto).

Object keys are listed with boto3, independently of the pyarrow filesystem the code
writes through. A whole run with its report, embedding cache and checkpoints on S3 is a job
submitted to a cluster: tests/cluster/test_job_submit.py.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys.embed.cache import EmbeddingCache, embedding_array, write_cache_part
from recsys.errors import ConfigError
from recsys.report.reader import load_tables
from recsys.report.writer import RunWriter, write_part
from tests.cluster.conftest import BUCKET, s3_keys

pytestmark = pytest.mark.cluster
CURVE = {"model": "mf", "step": 0, "name": "train/loss", "value": 0.7}


def test_a_run_written_to_s3_has_every_committed_file_and_nothing_of_a_failed_transaction(aws_env):
    uri = f"s3://{BUCKET}/reports/run-a"
    with RunWriter(uri, run_id="run-a", config={"seed": 0}) as run:
        with run.transaction():
            run.write("curves", [CURVE])
            run.write_text("diagnosis.txt", "no findings\n")
        with pytest.raises(RuntimeError), run.transaction():
            run.write("grad_stats", [{"model": "mf", "step": 0, "layer": "w", "grad_norm": 1.0}])
            raise RuntimeError("stage failed")
        run.mark_stage_done("train")
        working_copy = run.run_dir
    assert not working_copy.exists()                                   # nothing left on the local disk
    keys = [k.removeprefix("reports/run-a/") for k in s3_keys(aws_env, "reports/run-a/")]
    assert sorted(k.split("/")[0] for k in keys) == ["curves", "diagnosis.txt", "runs"]
    assert not any(k.split("/")[-1].startswith(".") for k in keys)     # no temporary object left
    tables = load_tables(uri)
    run_row = tables["runs"].row(0, named=True)
    assert (run_row["status"], json.loads(run_row["stages"])) == ("succeeded", ["train"])
    assert tables["curves"]["value"].to_list() == [0.7] and tables["grad_stats"].height == 0


def test_a_second_run_cannot_take_over_an_s3_report_dir(aws_env):
    uri = f"s3://{BUCKET}/reports/run-b"
    RunWriter(uri, run_id="run-b").start().finish()
    with pytest.raises(ConfigError, match="already holds run 'run-b'"):
        RunWriter(uri, run_id="other").start()


def test_a_worker_adds_a_part_straight_to_s3(aws_env):
    location = write_part(f"s3://{BUCKET}/reports/run-c", "curves", [CURVE], "run-c")
    assert location.startswith(f"s3://{BUCKET}/reports/run-c/curves/part-")
    assert s3_keys(aws_env, "reports/run-c/") == [location.removeprefix(f"s3://{BUCKET}/")]


def test_the_embedding_cache_on_s3_reads_back_what_it_wrote_and_compacts(aws_env):
    payload = {"sha256": "ab", "pooling": "mean"}
    cache = EmbeddingCache.open(f"s3://{BUCKET}/embeddings", "tiny", payload)
    assert isinstance(cache.directory, str) and cache.key in cache.directory
    for i in range(3):
        write_cache_part(cache.parts_dir, pa.table({"text_hash": [f"h{i}", "dup"],
                                                    "embedding": embedding_array(np.array([[i, 0.0], [9, 9]]))}))
    assert cache.known_hashes() == {"h0", "h1", "h2", "dup"}
    assert cache.vectors_for(["h2", "dup"]).tolist() == [[2.0, 0.0], [9.0, 9.0]]
    assert cache.compact(max_parts=2) == 3 and len(cache.part_files()) == 1
    assert cache.read().num_rows == 4
    assert EmbeddingCache.open(f"s3://{BUCKET}/embeddings", "tiny", payload).directory == cache.directory
    keys = s3_keys(aws_env, "embeddings/")
    assert sum(k.endswith("identity.json") for k in keys) == 1 and sum("/parts/part-" in k for k in keys) == 1


def test_a_dataset_read_from_s3_prepares_like_the_local_copy(aws_env, tmp_path):
    import pyarrow.fs as pafs

    from recsys.data.config import DataConfig, DatasetConfig, SplitConfig
    from recsys.data.prepare import prepare

    rng = np.random.default_rng(0)
    events = pa.table({"uid": [f"u{u}" for u in rng.integers(0, 40, 600)],
                       "iid": [f"i{i}" for i in rng.integers(0, 30, 600)],
                       "ts": rng.integers(1_600_000_000, 1_700_000_000, 600)})
    local = tmp_path / "events.parquet"
    pq.write_table(events, local)
    s3 = pafs.S3FileSystem(endpoint_override=aws_env, scheme="http", region="us-east-1", access_key="testing",
                           secret_key="testing")
    pq.write_table(events, f"{BUCKET}/datasets/events.parquet", filesystem=s3)
    columns = {"user_id": "uid", "item_id": "iid", "timestamp": "ts"}

    def prepared(location, cache):
        dataset = DatasetConfig(name="table", interactions=location, columns=columns)
        return prepare(dataset, DataConfig(cache_dir=str(tmp_path / cache), engine="local"), SplitConfig())

    remote, here = prepared(f"s3://{BUCKET}/datasets/events.parquet", "a"), prepared(str(local), "b")
    for split in ("train", "val", "test"):
        assert remote.split(split).sort(["user_idx", "item_idx", "timestamp"]).equals(
            here.split(split).sort(["user_idx", "item_idx", "timestamp"])), split
