"""The pipeline under one report: tables written, run status kept honest, entry points usable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from rayjobs._common import compose
from recsys.errors import DataError
from recsys.pipeline import run_stages
from recsys.report.reader import load_tables, query
from tests.conftest import entry_run_tuned

REPO = Path(__file__).resolve().parents[1]
TINY = ["dataset.synthetic.n_users=200", "dataset.synthetic.n_items=120", "dataset.synthetic.n_topics=3",
        "dataset.synthetic.mean_interactions_per_user=10", "dataset.synthetic.chunk_users=100",
        "models=[pop,mf]", "train.epochs=2"]


@pytest.mark.ray
def test_prepare_stage_writes_runs_and_datasets_tables(tmp_path):
    cfg = compose(TINY + [f"report.dir={tmp_path}/run", f"data.cache_dir={tmp_path}/cache"])
    report = run_stages(cfg, ["prepare"])
    tables = load_tables(str(report))
    run = tables["runs"].row(0, named=True)
    assert run["status"] == "succeeded" and json.loads(run["stages"]) == ["prepare"]
    assert json.loads(run["config"])["dataset"]["synthetic"]["n_users"] == 200
    assert json.loads(run["cluster"])["resources"]["CPU"] >= 1
    datasets = query("SELECT stage, n_rows, n_users FROM datasets ORDER BY n_rows DESC", str(report))
    assert set(datasets["stage"]) == {"loaded", "filtered", "train", "val", "test"}
    counts = dict(zip(datasets["stage"], datasets["n_rows"]))
    assert counts["train"] + counts["val"] + counts["test"] == counts["filtered"]
    assert (tables["datasets"]["dataset"] == "synthetic").all()


@pytest.mark.ray
def test_a_failing_stage_marks_the_run_failed_and_publishes_no_table(tmp_path):
    cfg = compose(["dataset=movielens", f"dataset.path={tmp_path}/missing",
                   f"report.dir={tmp_path}/run", f"data.cache_dir={tmp_path}/cache"])
    with pytest.raises(DataError):
        run_stages(cfg, ["prepare"])
    tables = load_tables(str(tmp_path / "run"))
    run = tables["runs"].row(0, named=True)
    assert run["status"] == "failed"
    assert "DataError" in run["error"] and "missing" in run["error"]
    assert run["ended_at"] is not None
    assert tables["datasets"].height == 0


@pytest.mark.ray
def test_pipeline_evaluates_the_trained_models_through_ray_data(tmp_path):
    cfg = compose(TINY + ["train.engine=local", "data.engine=local", "eval.bootstrap_samples=50",
                          f"report.dir={tmp_path}/run", f"data.cache_dir={tmp_path}/cache"])
    assert cfg.eval.engine == "ray"
    report = run_stages(cfg, ["prepare", "train", "evaluate"])
    tables = load_tables(str(report))
    assert json.loads(tables["runs"]["stages"][0]) == ["prepare", "train", "evaluate"]
    ndcg = query("SELECT model, split, value FROM metrics WHERE segment = 'all' AND metric = 'ndcg' AND k = 10",
                 str(report))
    assert set(zip(ndcg["model"], ndcg["split"])) == {(m, s) for m in ("pop", "mf") for s in ("val", "test")}
    assert tables["user_metrics"].height > 0 and tables["recommendations"].height > 0
    assert set(zip(tables["comparisons"]["baseline"], tables["comparisons"]["candidate"])) == {("pop", "mf")}


def _run_module(module: str, *overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, RAY_DATA_DISABLE_PROGRESS_BARS="1", RAY_AUTH_MODE="disabled")
    return subprocess.run([sys.executable, "-m", module, *overrides, "ray.num_cpus=2"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_pipeline_entry_point_runs_on_the_default_data_and_reports(pipeline_entry_run):
    """``python -m rayjobs.pipeline`` on tiny data with the default tuning round (the run of tests/conftest.py,
    whose console tests/test_console.py reads)."""
    result, run_dir = pipeline_entry_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert "succeeded" in result.stdout
    # the local Ray serves the state API, so Ray Train's placement-group cleaner does not warn every second
    assert "State API may be temporarily unavailable" not in result.stdout + result.stderr
    runs = pl.read_parquet(run_dir / "runs" / "*.parquet")
    assert runs["status"].to_list() == ["succeeded"]
    metrics = pl.read_parquet(run_dir / "metrics" / "*.parquet")
    # the pipeline's default tuning round searched the plugin (or mf: two_tower is not trained here)
    tuned = entry_run_tuned()
    assert set(metrics.filter(pl.col("segment") == "all")["model"]) - {"neumf"} == {"pop", "mf", f"{tuned}:directed"}
    trials = pl.read_parquet(run_dir / "trials" / "*.parquet")
    assert trials.height == 4 and set(trials["mode"]) == {"directed"} and trials["selected"].sum() == 1
    assert f"tuning {tuned} on synthetic" in result.stdout
    cli = subprocess.run([sys.executable, "-m", "recsys.cli", "report", "query",
                          "SELECT stage, n_rows FROM datasets WHERE stage = 'train'", "--runs", str(run_dir),
                          "--format", "csv"], capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0 and cli.stdout.startswith("stage,n_rows\ntrain,")


@pytest.mark.slow
def test_entry_point_bad_data_ends_with_one_clear_line_and_a_failed_run(tmp_path):
    result = _run_module("rayjobs.prepare", "dataset=movielens", f"dataset.path={tmp_path}/nowhere",
                         f"report.dir={tmp_path}/run", f"data.cache_dir={tmp_path}/cache",
                         f"hydra.run.dir={tmp_path}/hydra", cwd=REPO)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "error:" in result.stderr and "nowhere" in result.stderr
    runs = pl.read_parquet(tmp_path / "run" / "runs" / "*.parquet")
    assert runs["status"].to_list() == ["failed"]
