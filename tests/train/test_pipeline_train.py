"""The train stage inside a pipeline run, on Ray Train: run status, stage list, tables, model files."""

from __future__ import annotations

import json

import polars as pl
import pytest

from rayjobs._common import compose
from recsys import pipeline
from recsys.pipeline import run_stages
from recsys.report.reader import load_tables
from recsys.train.checkpoint import load_model
from recsys.train.stage import stage_train
from tests.train.test_stage import TINY


@pytest.mark.ray
def test_pipeline_trains_with_ray_train_and_reports(tmp_path, monkeypatch):
    monkeypatch.setitem(pipeline.STAGES, "train", stage_train)
    cfg = compose(TINY + ["models=[pop,mf]", "train.engine=ray", "train.num_workers=1", "train.cpus_per_worker=1",
                          f"report.dir={tmp_path}/run", f"data.cache_dir={tmp_path}/cache"])
    report = run_stages(cfg, ["prepare", "train"])
    tables = load_tables(str(report))
    run = tables["runs"].row(0, named=True)
    assert run["status"] == "succeeded" and json.loads(run["stages"]) == ["prepare", "train"]
    curves = tables["curves"]
    assert set(curves["model"]) == {"pop", "mf"}
    mf = curves.filter(pl.col("model") == "mf")
    assert mf.filter(pl.col("name") == "train/epoch_loss").height == 2
    assert tables["grad_stats"].filter(pl.col("model") == "mf").height > 0
    model = load_model(report / "checkpoints" / "mf" / "best_model.pt")
    assert model.n_users == 60
