"""The finetune model through the pipeline: token states cached by the embed stage (Ray Data), trained
with Ray Train, evaluated from its checkpoint; Ray Train with one worker matches the plain loop."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from rayjobs._common import compose
from recsys.embed.tokens import catalogue_tokens, token_cache_root
from recsys.models.finetune import FineTuneConfig
from recsys.pipeline import run_stages
from recsys.report.reader import load_tables
from recsys.train.config import TrainConfig
from recsys.train.data import TrainingData
from recsys.train.stage import train_local
from tests.embed.fixtures import save_tiny_bert
from tests.train.test_stage import TINY

FINETUNE = ["model.finetune.dim=8", "model.finetune.width=16", "model.finetune.max_tokens=16",
            "model.finetune.negatives=8", "model.finetune.encoder_lr=1e-3", "train.epochs=2"]


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def run_pipeline(tmp_path, bert, engine: str, stages=("prepare", "embed", "train", "evaluate")):
    cfg = compose(TINY + FINETUNE + ["models=[finetune]", f"encoder.path={bert}", f"encoder.engine={engine}",
                                     f"train.engine={engine}", "train.num_workers=1", "train.cpus_per_worker=1",
                                     f"report.dir={tmp_path}/run", f"data.cache_dir={tmp_path}/cache"])
    return cfg, run_stages(cfg, list(stages))


def check_run(cfg, report):
    tables = load_tables(str(report))
    assert tables["runs"].row(0, named=True)["status"] == "succeeded"
    curves = tables["curves"].filter(pl.col("model") == "finetune")
    names = set(curves["name"])
    assert {"text/drift_cosine", "text/anisotropy", "text/cka/encoder.layer.1", "text/score_share"} <= names
    assert curves.filter(pl.col("name") == "text/drift_cosine").height == 2          # one row per epoch
    layers = set(tables["grad_stats"].filter(pl.col("model") == "finetune")["layer"])
    assert any(layer.startswith("encoder.layer.1.") for layer in layers)
    metrics = tables["metrics"].filter(pl.col("model") == "finetune")
    assert metrics.height > 0 and metrics["value"].is_finite().all()
    caches = list(token_cache_root(cfg).glob("tokens-*/identity.json"))
    assert len(caches) == 1 and json.loads(caches[0].read_text())["layer_from"] == 1


def test_pipeline_in_process(tmp_path, bert):
    check_run(*run_pipeline(tmp_path, bert, "local"))


@pytest.mark.ray
def test_pipeline_on_ray_and_ray_train_with_one_worker_matches_the_plain_loop(tmp_path, bert):
    """The run's own Ray Train curves (one worker) against the plain loop on the same token states."""
    cfg, report = run_pipeline(tmp_path, bert, "ray")
    check_run(cfg, report)
    from recsys.data.prepare import prepare

    prepared = prepare(cfg.dataset, cfg.data, cfg.split)             # the run's prepared dataset (cached)
    local = catalogue_tokens(prepared, cfg.encoder, tmp_path / "local-tokens", train_layers=1, max_tokens=16)
    ray_cache = next(token_cache_root(cfg).glob("tokens-*"))
    assert np.allclose(local.states.numpy(), np.load(ray_cache / "states.npy"), atol=1e-5)   # Ray Data == in-process
    data = TrainingData.from_prepared(prepared)
    model_cfg = replace(cfg.model.finetune, token_cache=str(ray_cache.resolve()))          # what the run trained on
    plain = train_local("finetune", model_cfg, data, None, replace(cfg.train, engine="local"), tmp_path / "plain")
    curves = load_tables(str(report))["curves"].filter(pl.col("model") == "finetune").sort("step", maintain_order=True)
    on_ray = curves.filter(pl.col("name") == "train/loss")["value"].to_list()
    plain_losses = [r["value"] for r in plain.telemetry.curves if r["name"] == "train/loss"]
    assert len(plain_losses) > 3 and on_ray == pytest.approx(plain_losses, rel=1e-4, abs=1e-5)
    on_ray_val = curves.filter(pl.col("name") == "val/ndcg@10")["value"].to_list()
    assert on_ray_val == pytest.approx(plain.state.val_history, abs=1e-4)


def test_a_relative_cache_dir_gives_workers_an_absolute_token_cache(tmp_path, bert, monkeypatch):
    """Ray Train workers and Tune trials run elsewhere: the token cache they are handed must not be relative."""
    from pathlib import Path

    from recsys.data.prepare import prepare
    from recsys.embed.tokens import with_token_cache

    monkeypatch.chdir(tmp_path)
    cfg = compose(TINY + FINETUNE + ["models=[finetune]", f"encoder.path={bert}", "encoder.engine=local",
                                     "data.engine=local", "data.cache_dir=relative_cache"])
    prepared = prepare(cfg.dataset, cfg.data, cfg.split)
    config = with_token_cache(cfg.model.finetune, prepared, cfg)
    assert Path(config.token_cache).is_absolute() and Path(config.token_cache).is_dir()
    assert Path(config.token_cache).is_relative_to(tmp_path / "relative_cache")
