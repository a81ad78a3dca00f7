"""Embedding health of trained models: dead rows against the initial weights, item norms, the shared statistics."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from recsys.diagnose.inputs import DiagnosisInputs, prepare
from recsys.diagnose.config import DiagnoseConfig
from recsys.diagnose.embeddings import norm_popularity_coupling
from recsys.diagnose.model_health import id_tables, item_norms, model_health_rows, untrained_rows
from recsys.diagnose.stage import initial_model
from recsys.embed.health import embedding_health
from recsys.models.mf import MFConfig
from recsys.models.registry import ModelSettings, build_model
from recsys.models.two_tower import TwoTowerConfig
from tests.diagnose.known_models import clustered


def test_untrained_rows_are_the_initial_vector_or_that_vector_shrunk():
    init = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5], [1.0, 0.0], [0.0, 0.0]])
    trained = np.array([[1.0, 2.0],        # untouched
                        [2.4, -0.8],       # decayed by 0.8: still untouched by gradients
                        [0.6, 0.4],        # moved off its direction
                        [1.5, 0.0],        # grew along its direction: a gradient did that
                        [0.0, 0.0]])       # zero at init: judged by its norm instead
    assert untrained_rows(trained, init).tolist() == [True, True, False, False, False]


def test_dead_rows_count_untouched_and_zero_rows_of_a_trained_table():
    torch.manual_seed(0)
    inputs, _, _ = clustered(n_users=8)
    model = build_model("mf", MFConfig(dim=4), inputs)
    init = initial_model(model, seed=0)
    torch.manual_seed(0)
    assert torch.equal(init.item_embedding.weight, build_model("mf", MFConfig(dim=4), inputs).item_embedding.weight)
    with torch.no_grad():
        model.item_embedding.weight.copy_(init.item_embedding.weight)
        model.item_embedding.weight[:10] += 0.3                 # ten rows trained
        model.item_embedding.weight[10:14] *= 0.5               # four rows only decayed
        model.item_embedding.weight[14:16] = 0.0                # two rows zero
        model.user_embedding.weight.copy_(init.user_embedding.weight + 0.1)
    rows = {r["embedding"]: r for r in model_health_rows(model, init=init)}
    assert rows["item_id"]["n_rows"] == 24 and rows["item_id"]["dead_rows"] == 24 - 10
    assert rows["user_id"]["dead_rows"] == 0
    without_init = {r["embedding"]: r for r in model_health_rows(model)}
    assert without_init["item_id"]["dead_rows"] == 2
    assert "initial vector" in rows["item_id"]["details"]["dead_test"]


def test_health_rows_use_the_shared_statistics_and_skip_the_padding_row():
    torch.manual_seed(0)
    inputs, _, _ = clustered(n_users=8)
    model = build_model("two_tower", TwoTowerConfig(dim=4, width=8), inputs)
    assert id_tables(model) == {"item_id": "item_id.weight"}
    rows = {r["embedding"]: r for r in model_health_rows(model)}
    weights = model.item_id.weight.detach().numpy()[:-1]
    expected = embedding_health(weights)
    assert rows["item_id"]["n_rows"] == inputs.n_warm_items == len(weights)
    for column in ("effective_rank", "isotropy", "mean_cosine", "norm_mean"):
        assert rows["item_id"][column] == pytest.approx(expected[column])
    output = model.item_vectors().detach().numpy()
    assert rows["output"]["mean_cosine"] == pytest.approx(embedding_health(output)["mean_cosine"])


def test_item_norms_feed_the_coupling_rule():
    torch.manual_seed(0)
    inputs, _, _ = clustered(n_users=40)
    model = build_model("mf", MFConfig(dim=4, item_bias=False), inputs)
    with torch.no_grad():      # plant the fault: each item's vector length grows with its popularity
        counts = model.item_counts
        model.item_embedding.weight.mul_((counts / counts.max() + 0.1)[:, None] /
                                         model.item_embedding.weight.norm(dim=1, keepdim=True))
    frame = item_norms(model, [f"i{i}" for i in range(inputs.n_items)])
    assert set(frame["embedding"]) == {"output", "item_id"}
    out = frame.filter(pl.col("embedding") == "output")
    assert out["popularity"].to_list() == counts.tolist() and out["item_id"][0] == "i0"
    findings = norm_popularity_coupling(DiagnosisInputs(item_norms=prepare(frame, "item_norms")), DiagnoseConfig())
    assert {f.where["embedding"] for f in findings} == {"output", "item_id"}
    assert all(f.severity == "critical" for f in findings)


def test_popularity_has_no_id_tables_and_its_norms_are_its_counts():
    model = build_model("pop", ModelSettings().pop, clustered(n_users=8)[0])
    assert [r["embedding"] for r in model_health_rows(model)] == ["output"]
    frame = item_norms(model)
    assert frame["norm"].to_list() == frame["popularity"].to_list()
