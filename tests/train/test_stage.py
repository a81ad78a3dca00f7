"""The train stage on a small prepared dataset: tables written, models published and loadable."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from rayjobs._common import compose
from recsys.data.prepare import prepare
from recsys.embed.cache import embedding_array
from recsys.errors import ConfigError
from recsys.pipeline import RunState
from recsys.run_state import Embedding
from recsys.report.reader import load_tables
from recsys.report.writer import RunWriter
from recsys.train.checkpoint import load_model
from recsys.train.stage import stage_train

TINY = ["dataset.synthetic.n_users=60", "dataset.synthetic.n_items=40", "dataset.synthetic.n_topics=3",
        "dataset.synthetic.mean_interactions_per_user=8", "dataset.synthetic.chunk_users=60",
        "model.mf.dim=8", "model.content.dim=8", "model.two_tower.dim=8", "model.two_tower.width=16",
        "model.sasrec.dim=8", "model.sasrec.max_len=8", "train.epochs=2", "train.batch_size=64",
        "train.engine=local", "train.probe_every=2", "train.log_every=2", "data.engine=local"]


def fake_vectors(prepared, path, dim=6) -> str:
    items = prepared.item_map()["item_id"]
    vectors = np.random.default_rng(0).standard_normal((len(items), dim)).astype(np.float32)
    pq.write_table(pa.table({"item_id": items.to_arrow(), "embedding": embedding_array(vectors)}), path)
    return str(path)


def run_train(tmp_path, overrides, with_vectors=True):
    cfg = compose(TINY + [f"data.cache_dir={tmp_path}/cache"] + overrides)
    prepared = prepare(cfg.dataset, cfg.data, cfg.split)
    with RunWriter(tmp_path / "run", run_id="r1", config=cfg) as writer:
        run = RunState(cfg=cfg, writer=writer, prepared=prepared)
        if with_vectors:
            run.embedding = Embedding(fake_vectors(prepared, tmp_path / "vectors.parquet"))
        with writer.transaction():
            stage_train(run)
    return run, load_tables(str(tmp_path / "run"))


def test_stage_trains_every_model_and_writes_its_rows(tmp_path):
    run, tables = run_train(tmp_path, [])
    names = ["pop", "mf", "content", "two_tower", "sasrec"]
    assert list(run.models) == names
    curves, grads = tables["curves"], tables["grad_stats"]
    assert set(curves["model"]) == set(names)
    assert set(grads["model"]) == {"mf", "content", "two_tower", "sasrec"}      # pop has no parameters
    assert (curves["dataset"] == "synthetic").all() and (curves["run_id"] == "r1").all()
    val = curves.filter(pl.col("name") == "val/ndcg@10")
    per_model = dict(val.group_by("model").len().iter_rows())
    assert per_model == {"pop": 1, "mf": 2, "content": 2, "two_tower": 2, "sasrec": 2}   # pop: validated once
    for name, record in run.models.items():
        model = load_model(record.path)
        scores = model.score(torch.arange(3))
        assert scores.shape == (3, run.prepared.item_map().height)
        assert record.status == "completed"
    mf_layers = set(grads.filter(pl.col("model") == "mf")["layer"])
    assert mf_layers == {"user_embedding.weight", "item_embedding.weight", "item_bias.weight"}


def test_stage_without_text_vectors_names_the_missing_stage(tmp_path):
    with pytest.raises(ConfigError, match="embed stage"):
        run_train(tmp_path, ["models=[mf,content]"], with_vectors=False)


def test_stage_without_text_trains_id_models(tmp_path):
    run, tables = run_train(tmp_path, ["models=[pop,mf]", "train.checkpoint_dir=" + str(tmp_path / "ck")],
                            with_vectors=False)
    assert run.models["mf"].path == (tmp_path / "ck" / "mf" / "best_model.pt").resolve()
    assert set(tables["curves"]["model"]) == {"pop", "mf"}
