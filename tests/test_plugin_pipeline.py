"""A model from outside the package through every stage: the example plugin (examples/neumf, entry point)
on the default Ray engines, and a module:Class plugin whose checkpoint is reloaded in another process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

from rayjobs._common import compose
from recsys.models.registry import SPECS
from recsys.pipeline import run_stages
from recsys.report.reader import load_tables

TINY = ["dataset.synthetic.n_users=150", "dataset.synthetic.n_items=80", "dataset.synthetic.n_topics=3",
        "dataset.synthetic.mean_interactions_per_user=10", "dataset.synthetic.chunk_users=100",
        "train.epochs=2", "eval.bootstrap_samples=50", "diagnose.importance.bootstrap_samples=50"]


@pytest.mark.slow
@pytest.mark.skipif("neumf" not in SPECS, reason="the example package examples/neumf is not installed")
def test_the_example_plugin_goes_through_every_stage_on_the_ray_engines(pipeline_entry_run):
    """The entry-point run of tests/conftest.py (``python -m rayjobs.pipeline`` on the default Ray engines)
    trains, evaluates, diagnoses and compares the plugin beside pop and mf."""
    result, run_dir = pipeline_entry_run
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    tables = load_tables(str(run_dir))
    assert tables["runs"]["status"][0] == "succeeded"
    config = json.loads(tables["runs"]["config"][0])
    assert {config[stage]["engine"] for stage in ("train", "eval", "data")} == {"ray"}

    def rows(table: str) -> pl.DataFrame:
        return tables[table].filter(pl.col("model") == "neumf")

    for table in ("curves", "grad_stats", "metrics", "user_metrics", "recommendations", "feature_importance",
                  "embedding_health"):
        assert rows(table).height > 0, f"no {table} rows for the plugin model"
    assert set(rows("feature_importance")["feature"]) >= {"item_id", "user_id"}
    # its four ID tables, as it declares them; no "output" row: it is not a dot-product model
    assert set(rows("embedding_health")["embedding"]) == {"item_id", "item_mlp", "user_id", "user_mlp"}
    assert {"pop", "neumf"} <= set(tables["comparisons"]["candidate"]) | set(tables["comparisons"]["baseline"])
    assert config["models"] == ["pop", "mf", "neumf"] and config["model"]["neumf"]["dim"] == 8
    trials = tables["trials"]                                          # the tuning round searched the plugin
    assert trials.height == 4 and set(tables["metrics"]["model"]) >= {"neumf", "neumf:directed"}


PLUGIN = '''
from dataclasses import dataclass

import torch
import torch.nn as nn

from recsys.models.base import Batch, ModelInputs, Output, Recommender


@dataclass
class ItemKNNishConfig:
    dim: int = 8


class Shallow(Recommender):
    """A module:Class plugin: user and item vectors, trained by the shared losses."""

    Config = ItemKNNishConfig

    def __init__(self, config, inputs: ModelInputs) -> None:
        super().__init__(inputs)
        self.config = config
        self.users = nn.Embedding(inputs.n_users, config.dim)
        self.items = nn.Embedding(inputs.n_items, config.dim)

    def feature_tensors(self):
        return {"item_id": ["items.weight"], "user_id": ["users.weight"]}

    def item_vectors(self):
        return self.items.weight

    def user_vectors(self, users, items):
        return self.users(users)

    def forward(self, batch: Batch) -> Output:
        items = self.item_vectors()
        return Output(self.users(batch.users), self.history_items[batch.positions], items)
'''


@pytest.mark.ray
def test_a_module_class_plugin_trains_and_its_checkpoint_reloads_in_a_fresh_process(tmp_path, ray_session,
                                                                                    monkeypatch):
    (tmp_path / "my_plugin.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = compose(TINY + ["models=[my_plugin:Shallow]", "train.engine=local", "data.engine=local",
                          "eval.engine=local", f"report.dir={tmp_path}/run", f"data.cache_dir={tmp_path}/cache"])
    assert cfg.models == ["shallow"]
    report = run_stages(cfg, ["prepare", "train", "evaluate"])
    checkpoint = Path(report) / "checkpoints" / "shallow" / "best_model.pt"
    assert checkpoint.exists()
    script = ("import sys, torch; from recsys.train.checkpoint import load_model; "
              "m = load_model(sys.argv[1]); print(type(m).__module__, m.name, tuple(m.scorer()(torch.tensor([0])).shape))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", script, str(checkpoint)], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    module, name, shape = out.stdout.split(maxsplit=2)
    assert (module, name) == ("my_plugin", "shallow") and shape.strip().startswith("(1,")
    metrics = load_tables(str(report))["metrics"]
    assert metrics.filter(pl.col("model") == "shallow").height > 0
