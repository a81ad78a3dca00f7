"""RunWriter on real Parquet files: lifecycle of the runs row, validation, atomic parts, transactions."""

from __future__ import annotations

import json
import re
import threading
from datetime import datetime, timedelta, timezone

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from recsys.errors import ConfigError, DataError
from recsys.report import writer as writer_module
from recsys.report.schema import TABLES
from recsys.report.writer import (
    COMMIT_MARKER,
    STAGING_DIR,
    RunWriter,
    complete_committed_transactions,
    new_run_id,
    write_part,
)


def runs_row(run_dir):
    rows = pq.read_table(run_dir / "runs" / "part-run.parquet").to_pylist()
    assert len(rows) == 1
    return rows[0]


def parts(run_dir, table):
    return sorted((run_dir / table).glob("part-*.parquet")) if (run_dir / table).is_dir() else []


def every_file(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


CURVE = {"model": "mf", "step": 3, "epoch": 1, "name": "train/loss", "value": 0.5}
DATASET_ROW = {"dataset": "synthetic", "stage": "train", "n_rows": 8, "n_users": 2, "n_items": 4}


# ------------------------------------------------------------------- run ids


def test_run_id_format():
    run_id = new_run_id(datetime(2026, 11, 29, 19, 30, 5, tzinfo=timezone.utc))
    assert re.fullmatch(r"20261129-193005-[0-9a-f]{6}", run_id)


def test_run_id_is_in_utc():
    local = datetime(2026, 11, 29, 21, 30, 5, tzinfo=timezone(timedelta(hours=2)))
    assert new_run_id(local).startswith("20261129-193005-")


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1)),
       st.integers(min_value=1, max_value=10**9))
def test_run_ids_sort_by_start_time(start, later_by_seconds):
    start = start.replace(tzinfo=timezone.utc)
    later = start + timedelta(seconds=later_by_seconds)
    assert new_run_id(start) < new_run_id(later)


# ------------------------------------------------------------------- lifecycle


def test_start_writes_a_running_row(tmp_path):
    run = RunWriter(tmp_path / "run", run_id="r1", config={"split": {"seed": 3}},
                    cluster={"address": "local", "resources": {"CPU": 2}}).start()
    row = runs_row(run.run_dir)
    assert row["run_id"] == "r1" and row["status"] == "running"
    assert row["ended_at"] is None and row["error"] is None
    assert row["started_at"].tzinfo is not None
    assert json.loads(row["config"]) == {"split": {"seed": 3}}
    assert json.loads(row["cluster"]) == {"address": "local", "resources": {"CPU": 2}}
    assert json.loads(row["stages"]) == []
    versions = json.loads(row["versions"])
    assert {"python", "recsys", "polars", "pyarrow"} <= set(versions)
    assert row["host"]


def test_stages_and_success(tmp_path):
    run = RunWriter(tmp_path / "run", run_id="r1").start()
    run.mark_stage_done("prepare")
    run.mark_stage_done("train")
    run.mark_stage_done("prepare")
    assert json.loads(runs_row(run.run_dir)["stages"]) == ["prepare", "train"]
    assert runs_row(run.run_dir)["status"] == "running"
    run.finish()
    row = runs_row(run.run_dir)
    assert row["status"] == "succeeded" and row["error"] is None
    assert row["ended_at"] >= row["started_at"]


def test_context_manager_marks_failure_and_reraises(tmp_path):
    with pytest.raises(ValueError, match="boom"):
        with RunWriter(tmp_path / "run", run_id="r1") as run:
            run.mark_stage_done("prepare")
            raise ValueError("boom")
    row = runs_row(tmp_path / "run")
    assert (row["status"], row["error"]) == ("failed", "ValueError: boom")
    assert row["ended_at"] is not None
    assert json.loads(row["stages"]) == ["prepare"]


def test_keyboard_interrupt_still_finalises_the_run(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with RunWriter(tmp_path / "run", run_id="r1"):
            raise KeyboardInterrupt
    row = runs_row(tmp_path / "run")
    assert (row["status"], row["error"]) == ("failed", "KeyboardInterrupt")


def test_context_manager_success(tmp_path):
    with RunWriter(tmp_path / "run", run_id="r1") as run:
        run.write("curves", [CURVE])
    assert runs_row(tmp_path / "run")["status"] == "succeeded"


def test_exit_handler_fails_an_unfinished_run(tmp_path):
    run = RunWriter(tmp_path / "run", run_id="r1").start()
    run._finish_at_exit()
    row = runs_row(run.run_dir)
    assert row["status"] == "failed"
    assert "exited before the run finished" in row["error"]


def test_finish_rejects_an_unknown_status(tmp_path):
    run = RunWriter(tmp_path / "run").start()
    with pytest.raises(ConfigError, match="'succeeded' or 'failed', got 'done'"):
        run.finish("done")


def test_finish_before_start_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"finish\(\) called before start\(\)"):
        RunWriter(tmp_path / "run", run_id="r1").finish()


def test_a_used_report_dir_is_refused_unless_resumed(tmp_path):
    with RunWriter(tmp_path / "run", run_id="first") as run:
        run.mark_stage_done("prepare")
    with pytest.raises(ConfigError, match="already holds run 'first'.*report.dir"):
        RunWriter(tmp_path / "run").start()
    with pytest.raises(ConfigError, match="cannot resume run 'first' as run 'other'"):
        RunWriter(tmp_path / "run", run_id="other", resume=True).start()
    resumed = RunWriter(tmp_path / "run", resume=True).start()
    assert resumed.run_id == "first"
    resumed.mark_stage_done("train")
    row = runs_row(tmp_path / "run")
    assert (row["status"], row["ended_at"]) == ("running", None)
    assert json.loads(row["stages"]) == ["prepare", "train"]


# ------------------------------------------------------------------- writing rows


def test_list_of_dicts_roundtrip_fills_run_id_nulls_and_types(tmp_path):
    path = write_part(tmp_path, "curves", [CURVE, {**CURVE, "step": 4, "epoch": None}], "r1")
    data = pq.read_table(path)
    assert data.schema.equals(TABLES["curves"], check_metadata=False)
    assert data.to_pylist() == [
        {"run_id": "r1", "dataset": None, "model": "mf", "trial_id": None, "step": 3, "epoch": 1,
         "name": "train/loss", "value": 0.5},
        {"run_id": "r1", "dataset": None, "model": "mf", "trial_id": None, "step": 4, "epoch": None,
         "name": "train/loss", "value": 0.5},
    ]


def test_polars_frame_is_cast_to_the_schema(tmp_path):
    frame = pl.DataFrame({
        "dataset": ["d", "d"], "model": ["mf", "pop"], "split": ["test", "test"],
        "segment": ["all", "all"], "metric": ["ndcg", "ndcg"],
        "k": [10, None],                # Int64 in polars, int32 in the table
        "value": [0.25, 0.5], "n_users": [7, 7],
    })
    data = pq.read_table(write_part(tmp_path, "metrics", frame, "r1"))
    assert data.schema.field("k").type == pa.int32()
    assert data.column("k").to_pylist() == [10, None]
    assert data.column("run_id").to_pylist() == ["r1", "r1"]
    assert data.column("ci_low").null_count == 2


def test_arrow_table_and_json_columns(tmp_path):
    rows = pa.table({"code": ["COLD_ITEMS"], "severity": ["warning"], "component": ["data"],
                     "message": ["4 test items never appear in train"],
                     "evidence": [json.dumps({"n_cold_items": 4})]})
    data = pq.read_table(write_part(tmp_path, "findings", rows, "r1")).to_pylist()[0]
    assert json.loads(data["evidence"]) == {"n_cold_items": 4} and data["remedy"] is None


def test_dicts_in_json_columns_are_serialised(tmp_path):
    row = {"code": "X", "severity": "info", "component": "model", "message": "m",
           "evidence": {"ratio": 0.5, "layers": ["a", "b"]}, "remedy": [{"set": {"lr": 0.01}}]}
    data = pq.read_table(write_part(tmp_path, "findings", [row], "r1")).to_pylist()[0]
    assert json.loads(data["evidence"]) == {"ratio": 0.5, "layers": ["a", "b"]}
    assert json.loads(data["remedy"]) == [{"set": {"lr": 0.01}}]


def test_no_rows_writes_nothing(tmp_path):
    assert write_part(tmp_path, "curves", [], "r1") is None
    assert write_part(tmp_path, "curves", pl.DataFrame(schema={"model": pl.String, "step": pl.Int64,
                                                               "name": pl.String, "value": pl.Float64}), "r1") is None
    assert every_file(tmp_path) == []


@pytest.mark.parametrize(
    ("table", "rows", "error", "message"),
    [
        ("metric", [CURVE], ConfigError, "unknown report table 'metric'. What to do: use one of: runs,"),
        ("curves", [{"model": "mf", "step": 1, "value": 0.1}], DataError,
         "column 'name': report table 'curves' is missing required column(s) 'name'"),
        ("curves", [{**CURVE, "loss": 0.1}], DataError,
         "column 'loss': report table 'curves' has no column(s) 'loss'"),
        ("datasets", [{**DATASET_ROW, "n_rows": "eight"}], DataError,
         "column 'n_rows': report table 'datasets': values do not fit type int64"),
        ("datasets", pl.DataFrame([{**DATASET_ROW, "n_rows": "eight"}]), DataError,
         "column 'n_rows': report table 'datasets': cannot cast"),
        ("metrics", pl.DataFrame({"dataset": ["d"], "model": ["m"], "split": ["test"], "segment": ["all"],
                                  "metric": ["ndcg"], "k": [2.5]}), DataError,
         "column 'k': report table 'metrics': cannot cast double to int32"),
        ("curves", [CURVE, {**CURVE, "name": None}], DataError,
         "column 'name': report table 'curves': 1 null value(s) in a required column"),
        ("findings", [{"code": "X", "severity": "info", "component": "model", "message": "m",
                       "evidence": "{not json"}], DataError,
         "column 'evidence': report table 'findings': value is not valid JSON"),
        ("curves", [{**CURVE, "run_id": "another"}], DataError,
         "column 'run_id': report table 'curves': rows carry a run_id other than the writer's 'r1'"),
        ("curves", {"model": ["mf"]}, DataError,
         "rows must be a polars DataFrame, a pyarrow Table or a list of dicts, got dict"),
    ],
)
def test_invalid_rows_are_refused_with_a_clear_message(tmp_path, table, rows, error, message):
    with pytest.raises(error) as caught:
        write_part(tmp_path, table, rows, "r1")
    assert message in str(caught.value)
    assert "What to do:" in str(caught.value)
    assert every_file(tmp_path) == []


# ------------------------------------------------------------------- atomicity


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    """A disk that fills up half-way: the temporary file is removed, no part appears."""
    def write_half_then_fail(table, where, **kwargs):
        where.write(b"PAR1 half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer_module.pq, "write_table", write_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        write_part(tmp_path, "curves", [CURVE], "r1")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_transaction_publishes_all_parts_on_clean_exit(tmp_path):
    run = RunWriter(tmp_path / "run", run_id="r1").start()
    with run.transaction():
        run.write("datasets", [DATASET_ROW])
        run.write("curves", [CURVE])
        run.write("curves", [CURVE])
        assert parts(run.run_dir, "datasets") == [] and parts(run.run_dir, "curves") == []
        assert len(list((run.run_dir / STAGING_DIR).rglob("part-*.parquet"))) == 3
    assert len(parts(run.run_dir, "datasets")) == 1 and len(parts(run.run_dir, "curves")) == 2
    assert not (run.run_dir / STAGING_DIR).exists()


def test_failed_transaction_leaves_no_part_and_no_staging(tmp_path):
    run = RunWriter(tmp_path / "run", run_id="r1").start()
    run.write("curves", [CURVE])                    # outside: kept
    with pytest.raises(RuntimeError, match="stage crashed"):
        with run.transaction():
            run.write("datasets", [DATASET_ROW])
            run.write("curves", [CURVE])
            raise RuntimeError("stage crashed")
    assert parts(run.run_dir, "datasets") == []
    assert len(parts(run.run_dir, "curves")) == 1
    assert not (run.run_dir / STAGING_DIR).exists()


def test_invalid_rows_inside_a_transaction_discard_the_earlier_parts(tmp_path):
    run = RunWriter(tmp_path / "run", run_id="r1").start()
    with pytest.raises(DataError):
        with run.transaction():
            run.write("datasets", [DATASET_ROW])
            run.write("datasets", [{**DATASET_ROW, "n_rows": None}])
    assert parts(run.run_dir, "datasets") == []


def test_nested_transaction_joins_the_outer_one(tmp_path):
    run = RunWriter(tmp_path / "run", run_id="r1").start()
    with pytest.raises(RuntimeError):
        with run.transaction():
            with run.transaction():
                run.write("curves", [CURVE])
            raise RuntimeError("outer fails")
    assert parts(run.run_dir, "curves") == []


def test_interrupted_publish_is_completed_by_the_next_writer(tmp_path):
    """A crash after the commit marker: start() moves the committed parts, drops uncommitted ones' visibility."""
    run_dir = tmp_path / "run"
    committed = run_dir / STAGING_DIR / "txn-1"
    write_part(committed, "curves", [CURVE], "r1")
    write_part(committed, "datasets", [DATASET_ROW], "r1")
    (committed / COMMIT_MARKER).touch()
    uncommitted = run_dir / STAGING_DIR / "txn-2"
    write_part(uncommitted, "curves", [CURVE], "r1")
    assert complete_committed_transactions(run_dir) == 1
    assert len(parts(run_dir, "curves")) == 1 and len(parts(run_dir, "datasets")) == 1
    assert not committed.exists() and uncommitted.exists()


def test_parts_from_many_threads_never_collide(tmp_path):
    run = RunWriter(tmp_path / "run", run_id="r1")
    threads = [threading.Thread(target=run.write, args=("curves", [{**CURVE, "step": i}])) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    steps = sorted(pq.read_table(p).column("step")[0].as_py() for p in parts(run.run_dir, "curves"))
    assert steps == list(range(16))
    assert [p for p in (run.run_dir / "curves").iterdir() if not p.name.startswith("part-")] == []


def test_an_explicit_finish_is_not_overwritten_on_exit(tmp_path):
    with RunWriter(tmp_path / "run", run_id="r1") as run:
        run.finish("failed", error="evaluation found no users")
    row = runs_row(tmp_path / "run")
    assert (row["status"], row["error"]) == ("failed", "evaluation found no users")


def test_the_same_writer_can_start_again(tmp_path):
    run = RunWriter(tmp_path / "run", run_id="r1").start()
    started = runs_row(run.run_dir)["started_at"]
    run.finish()
    run.start()
    row = runs_row(run.run_dir)
    assert (row["status"], row["started_at"], row["ended_at"]) == ("running", started, None)
