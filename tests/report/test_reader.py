"""The reader over real run directories: selecting runs, concatenating tables, SQL, listing runs."""

from __future__ import annotations

import json

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys.errors import ConfigError, DataError
from recsys.report.reader import list_runs, load_tables, query, resolve_runs, scan_tables
from recsys.report.schema import TABLES
from recsys.report.writer import COMMIT_MARKER, STAGING_DIR, RunWriter, write_part


def metric_rows(model_values: dict[str, float], metric="ndcg", k=10):
    return [{"dataset": "synthetic", "model": model, "split": "test", "segment": "all",
             "metric": metric, "k": k, "value": value, "n_users": 100}
            for model, value in model_values.items()]


def make_run(root, run_id, *, metrics=None, datasets=("synthetic",), fail=False):
    run_dir = root / run_id
    try:
        with RunWriter(run_dir, run_id=run_id, config={"seed": 1}) as run:
            with run.transaction():
                run.write("datasets", [{"dataset": name, "stage": "loaded", "n_rows": 10, "n_users": 3,
                                        "n_items": 4} for name in datasets])
            run.mark_stage_done("prepare")
            if metrics:
                run.write("metrics", metric_rows(metrics))
                run.mark_stage_done("evaluate")
            if fail:
                raise RuntimeError("training diverged")
    except RuntimeError:
        pass
    return run_dir


@pytest.fixture
def two_runs(tmp_path):
    root = tmp_path / "reports"
    make_run(root, "20260101-000000-aaaaaa", metrics={"pop": 0.10, "mf": 0.20})
    make_run(root, "20260102-000000-bbbbbb")
    return root


# ------------------------------------------------------------------- resolve_runs


def test_resolve_a_run_dir_a_parent_a_glob_and_a_list(two_runs):
    a, b = two_runs / "20260101-000000-aaaaaa", two_runs / "20260102-000000-bbbbbb"
    assert resolve_runs(str(a)) == [a.resolve()]
    assert resolve_runs(two_runs) == [a.resolve(), b.resolve()]
    assert resolve_runs(str(two_runs / "*")) == [a.resolve(), b.resolve()]
    assert resolve_runs(str(two_runs / "*-bbbbbb")) == [b.resolve()]
    assert resolve_runs([str(b), str(a), str(two_runs / "*")]) == [b.resolve(), a.resolve()]


def test_glob_skips_directories_that_are_not_runs(two_runs):
    (two_runs / "notes").mkdir()
    (two_runs / "README.txt").write_text("not a run")
    assert len(resolve_runs(str(two_runs / "*"))) == 2


def test_nothing_matching_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"no report runs match '.*/empty/\*'.*run the pipeline first"):
        resolve_runs(str(tmp_path / "empty" / "*"))


def test_missing_directory_is_named(tmp_path):
    with pytest.raises(DataError, match=r"missing-run: the report directory does not exist"):
        resolve_runs(str(tmp_path / "missing-run"))


def test_directory_without_runs_is_named(tmp_path):
    (tmp_path / "other").mkdir()
    with pytest.raises(DataError, match=r"other: neither a run directory nor a directory holding runs"):
        resolve_runs(str(tmp_path / "other"))


# ------------------------------------------------------------------- load_tables


def test_glob_of_two_runs_concatenates_every_table(two_runs):
    tables = load_tables(str(two_runs / "*"))
    assert set(tables) == set(TABLES)
    assert tables["runs"].sort("run_id")["run_id"].to_list() == ["20260101-000000-aaaaaa", "20260102-000000-bbbbbb"]
    assert tables["datasets"].height == 2
    assert sorted(tables["metrics"]["model"].to_list()) == ["mf", "pop"]   # only one run has metrics
    assert tables["metrics"]["run_id"].unique().to_list() == ["20260101-000000-aaaaaa"]


def test_empty_tables_have_their_schema(two_runs):
    tables = load_tables(str(two_runs / "*"))
    for name in ("trials", "grad_stats", "recommendations"):
        expected = pl.from_arrow(TABLES[name].empty_table()).schema
        assert tables[name].height == 0 and tables[name].schema == expected
    assert tables["runs"].schema["started_at"] == pl.Datetime("us", "UTC")
    assert tables["metrics"].schema["k"] == pl.Int32


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.integers(min_value=0, max_value=5), max_size=3), min_size=1, max_size=3))
def test_rows_of_every_part_of_every_run_are_read_once(tmp_path_factory, parts_per_run):
    """Property: the loaded table is exactly the union of the parts written, across runs."""
    root = tmp_path_factory.mktemp("reports")
    written = []
    for index, part_sizes in enumerate(parts_per_run):
        run_id = f"run-{index}"
        run = RunWriter(root / run_id, run_id=run_id).start()
        for part, size in enumerate(part_sizes):
            rows = [{"model": "mf", "step": step, "epoch": part, "name": "loss", "value": float(step)}
                    for step in range(size)]
            run.write("curves", rows)
            written.extend((run_id, part, row["step"]) for row in rows)
        run.finish()
    curves = load_tables(str(root / "*"))["curves"]
    assert sorted(curves.select("run_id", "epoch", "step").rows()) == sorted(written)


def test_temporary_files_and_uncommitted_staging_are_never_read(two_runs):
    run_dir = two_runs / "20260102-000000-bbbbbb"
    (run_dir / "metrics").mkdir()
    (run_dir / "metrics" / ".part-123.parquet.abcd.tmp").write_bytes(b"half-written garbage")
    write_part(run_dir / STAGING_DIR / "txn-open", "metrics", metric_rows({"two_tower": 0.3}), "20260102-000000-bbbbbb")
    metrics = load_tables(str(run_dir))["metrics"]
    assert metrics.height == 0


def test_committed_but_unpublished_parts_are_read_once(two_runs):
    run_id = "20260102-000000-bbbbbb"
    run_dir = two_runs / run_id
    staged = write_part(run_dir / STAGING_DIR / "txn-done", "metrics", metric_rows({"sasrec": 0.4}), run_id)
    (run_dir / STAGING_DIR / "txn-done" / COMMIT_MARKER).touch()
    assert load_tables(str(run_dir))["metrics"]["model"].to_list() == ["sasrec"]
    (run_dir / "metrics").mkdir()
    staged.rename(run_dir / "metrics" / staged.name)        # half-way through publishing
    assert load_tables(str(run_dir))["metrics"]["model"].to_list() == ["sasrec"]


def test_a_corrupted_part_is_named(two_runs):
    bad = two_runs / "20260101-000000-aaaaaa" / "metrics" / "part-9999.parquet"
    bad.write_bytes(b"this is not parquet")
    with pytest.raises(DataError, match=r"part-9999.parquet: cannot read a part of table 'metrics'.*move it away"):
        load_tables(str(two_runs / "*"))


def test_a_part_with_an_older_schema_is_conformed(two_runs):
    """Parts written before a column was added read with nulls there; dropped columns are ignored."""
    run_dir = two_runs / "20260102-000000-bbbbbb"
    (run_dir / "curves").mkdir()
    pq.write_table(pa.table({"run_id": ["20260102-000000-bbbbbb"], "model": ["mf"], "step": [1],
                             "name": ["loss"], "value": [0.5], "retired_column": [1]}),
                   run_dir / "curves" / "part-old.parquet")
    write_part(run_dir, "curves", [{"model": "mf", "step": 2, "epoch": 0, "name": "loss", "value": 0.4}],
               "20260102-000000-bbbbbb")
    curves = load_tables(str(run_dir))["curves"].sort("step")
    assert curves.select("step", "epoch", "trial_id").rows() == [(1, None, None), (2, 0, None)]
    assert curves.columns == TABLES["curves"].names


def test_scan_tables_is_lazy(two_runs):
    frames = scan_tables(str(two_runs / "*"))
    assert all(isinstance(frame, pl.LazyFrame) for frame in frames.values())


# ------------------------------------------------------------------- query


def test_query_across_runs(tmp_path):
    root = tmp_path / "reports"
    make_run(root, "run-1", metrics={"pop": 0.10, "mf": 0.20})
    make_run(root, "run-2", metrics={"pop": 0.12, "mf": 0.30})
    result = query("SELECT model, AVG(value) AS mean_ndcg, COUNT(*) AS n FROM metrics "
                   "WHERE metric = 'ndcg' AND k = 10 GROUP BY model ORDER BY model", str(root / "*"))
    assert result.rows() == [("mf", pytest.approx(0.25), 2), ("pop", pytest.approx(0.11), 2)]


def test_query_joins_tables(two_runs):
    result = query("SELECT r.status, m.model FROM metrics m JOIN runs r ON m.run_id = r.run_id ORDER BY m.model",
                   str(two_runs / "*"))
    assert result.rows() == [("succeeded", "mf"), ("succeeded", "pop")]


def test_query_on_a_table_no_stage_wrote(two_runs):
    assert query("SELECT * FROM trials", str(two_runs)).columns == TABLES["trials"].names


def test_bad_sql_lists_the_tables_and_columns(two_runs):
    with pytest.raises(ConfigError) as caught:
        query("SELECT model, ndcg FROM metrics", str(two_runs))
    message = str(caught.value)
    assert 'the SQL query failed: unable to find column "ndcg"' in message
    assert "tables: runs, datasets, metrics," in message
    assert "metrics(run_id, dataset, model, split, protocol, segment, metric, k, value, ci_low, ci_high, n_users)" in message
    assert "\n" not in message


def test_unknown_table_in_sql(two_runs):
    with pytest.raises(ConfigError, match="relation 'metric' was not found.*tables: runs, datasets, metrics"):
        query("SELECT * FROM metric", str(two_runs))


# ------------------------------------------------------------------- list_runs


def test_list_runs_reports_status_stages_datasets_and_errors(tmp_path):
    root = tmp_path / "reports"
    make_run(root, "run-1", metrics={"mf": 0.2}, datasets=("synthetic", "movielens"))
    make_run(root, "run-2", fail=True)
    RunWriter(root / "run-3", run_id="run-3").start()         # still running
    runs = list_runs(str(root / "*"))
    assert runs.columns == ["run_id", "status", "started_at", "ended_at", "duration_s", "datasets",
                            "models", "stages", "error", "path"]
    by_id = {row["run_id"]: row for row in runs.iter_rows(named=True)}
    assert by_id["run-1"]["status"] == "succeeded"
    assert by_id["run-1"]["datasets"] == "movielens,synthetic"
    assert (by_id["run-1"]["models"], by_id["run-2"]["models"]) == ("mf", "")
    assert by_id["run-1"]["stages"] == "prepare,evaluate"
    assert by_id["run-1"]["duration_s"] >= 0
    assert (by_id["run-2"]["status"], by_id["run-2"]["error"]) == ("failed", "RuntimeError: training diverged")
    assert (by_id["run-3"]["status"], by_id["run-3"]["duration_s"], by_id["run-3"]["ended_at"]) == ("running", None, None)
    assert by_id["run-3"]["path"] == str((root / "run-3").resolve())
    assert runs["run_id"].to_list() == ["run-1", "run-2", "run-3"]    # by start time


def test_runs_table_keeps_the_config(two_runs):
    runs_table = load_tables(str(two_runs))["runs"]
    assert [json.loads(c) for c in runs_table["config"]] == [{"seed": 1}, {"seed": 1}]


def test_a_part_damaged_inside_its_pages_is_named(two_runs):
    """The footer still reads; the damage shows only when the data pages are decoded."""
    run_dir = two_runs / "20260102-000000-bbbbbb"
    part = write_part(run_dir, "curves", [{"model": "mf", "step": i, "name": "loss", "value": float(i)}
                                          for i in range(1000)], "20260102-000000-bbbbbb")
    damaged = bytearray(part.read_bytes())
    damaged[20:400] = b"\xff" * 380
    part.write_bytes(bytes(damaged))
    with pytest.raises(DataError, match=rf"{part.name}: cannot read a part of table 'curves'"):
        load_tables(str(run_dir))


def test_query_over_a_damaged_part_names_the_file_not_the_sql(two_runs):
    run_dir = two_runs / "20260102-000000-bbbbbb"
    part = write_part(run_dir, "curves", [{"model": "mf", "step": i, "name": "loss", "value": float(i)}
                                          for i in range(1000)], "20260102-000000-bbbbbb")
    damaged = bytearray(part.read_bytes())
    damaged[20:400] = b"\xff" * 380
    part.write_bytes(bytes(damaged))
    with pytest.raises(DataError, match=rf"{part.name}: cannot read a part of table 'curves'"):
        query("SELECT * FROM curves", str(run_dir))
    assert query("SELECT COUNT(*) AS n FROM datasets", str(run_dir))["n"].item() == 1
