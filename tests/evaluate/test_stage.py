"""The evaluate stage on a small trained run: the four tables, original ids, masking, segments, comparisons."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from rayjobs._common import compose
from recsys.data.prepare import prepare
from recsys.errors import ConfigError
from recsys.evaluate.rows import MetricRows
from recsys.evaluate.stage import model_pairs, stage_evaluate
from recsys.pipeline import RunState
from recsys.report.reader import load_tables
from recsys.report.writer import RunWriter
from recsys.train.stage import stage_train

TINY = ["dataset.synthetic.n_users=60", "dataset.synthetic.n_items=40", "dataset.synthetic.n_topics=3",
        "dataset.synthetic.mean_interactions_per_user=8", "dataset.synthetic.chunk_users=60",
        "models=[pop,mf]", "model.mf.dim=8", "train.epochs=2", "train.batch_size=64", "train.engine=local",
        "data.engine=local", "eval.engine=local", "eval.bootstrap_samples=50"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A prepared synthetic dataset with pop and mf trained for two epochs (shared by the tests here)."""
    root = tmp_path_factory.mktemp("evaluate_stage")
    torch.set_num_threads(1)
    cfg = compose(TINY + [f"data.cache_dir={root}/cache", f"train.checkpoint_dir={root}/ck"])
    prepared = prepare(cfg.dataset, cfg.data, cfg.split)
    with RunWriter(root / "train_run", run_id="t", config=cfg) as writer:
        run = RunState(cfg=cfg, writer=writer, prepared=prepared)
        with writer.transaction():
            stage_train(run)
    return root, prepared, run.models


def run_evaluate(trained, tmp_path, overrides=()):
    root, prepared, models = trained
    cfg = compose(TINY + [f"data.cache_dir={root}/cache", *overrides])
    with RunWriter(tmp_path / "run", run_id="r1", config=cfg) as writer:
        run = RunState(cfg=cfg, writer=writer, prepared=prepared, models=dict(models))
        with writer.transaction():
            stage_evaluate(run)
    return run, load_tables(str(tmp_path / "run"))


def _pairs(prepared, split) -> set[tuple[str, str]]:
    frame = prepared.split(split)
    return set(zip(frame["user_id"].to_list(), frame["item_id"].to_list()))


def test_stage_writes_the_four_tables_with_original_ids(trained, tmp_path, capsys):
    run, tables = run_evaluate(trained, tmp_path)
    prepared = trained[1]
    for table in ("metrics", "user_metrics", "recommendations", "comparisons"):
        assert tables[table].height > 0, table
    recs = tables["recommendations"]
    assert set(recs["user_id"]) <= set(prepared.user_map()["user_id"])
    assert set(recs["item_id"]) <= set(prepared.item_map()["item_id"])
    assert set(recs["model"]) == {"pop", "mf"} and set(recs["split"]) == {"val", "test"}
    assert recs.group_by("model", "split", "user_id").agg(pl.col("rank").max())["rank"].max() == 20
    # masking, checked on original ids: nothing seen in train (and val, when testing) is ever recommended
    train, val = _pairs(prepared, "train"), _pairs(prepared, "val")
    for split, seen in (("val", train), ("test", train | val)):
        listed = recs.filter(pl.col("split") == split)
        assert not set(zip(listed["user_id"], listed["item_id"])) & seen
        held_out = _pairs(prepared, split)
        relevant = [(u, i) in held_out for u, i in zip(listed["user_id"], listed["item_id"])]
        assert listed["is_relevant"].to_list() == relevant
    assert "NDCG@10" in capsys.readouterr().out
    assert isinstance(run.evaluation.rows["mf"]["test"], MetricRows)


def test_metrics_carry_the_names_diagnosis_reads_and_match_user_rows(trained, tmp_path):
    _, tables = run_evaluate(trained, tmp_path)
    metrics = tables["metrics"]
    everyone = metrics.filter(pl.col("segment") == "all")
    keys = set(zip(everyone["metric"], everyone["k"]))
    assert {("ndcg", 10), ("popularity", 10), ("test_popularity", None), ("coverage", 10), ("auc", None)} <= keys
    assert (metrics["protocol"] == "full").all()
    segments = set(metrics["segment"])
    assert {"all", "activity_q1", "activity_q4", "cold_start_users", "items_head", "items_tail"} <= segments
    assert any(s.startswith("item_genres=") for s in segments)
    users = tables["user_metrics"].filter((pl.col("model") == "mf") & (pl.col("split") == "test")
                                          & (pl.col("metric") == "ndcg") & (pl.col("k") == 10))
    row = everyone.filter((pl.col("model") == "mf") & (pl.col("split") == "test") & (pl.col("metric") == "ndcg")
                          & (pl.col("k") == 10)).row(0, named=True)
    assert row["n_users"] == users.height
    assert row["value"] == pytest.approx(users["value"].mean(), rel=1e-12)
    assert row["ci_low"] <= row["value"] <= row["ci_high"]
    test_users = set(trained[1].split("test")["user_id"])
    assert set(users["user_id"]) <= test_users


def test_comparisons_pair_models_per_segment_with_adjusted_p_values(trained, tmp_path):
    _, tables = run_evaluate(trained, tmp_path)
    comparisons = tables["comparisons"]
    assert set(zip(comparisons["baseline"], comparisons["candidate"])) == {("pop", "mf")}
    ndcg = comparisons.filter((pl.col("segment") == "all") & (pl.col("metric") == "ndcg") & (pl.col("k") == 10)
                              & (pl.col("split") == "test")).row(0, named=True)
    assert ndcg["test"] == "paired_t" and ndcg["correction"] == "holm" and ndcg["protocol"] == "full"
    assert ndcg["delta"] == pytest.approx(ndcg["candidate_value"] - ndcg["baseline_value"])
    assert ndcg["p_adjusted"] == pytest.approx(ndcg["p_value"])          # a family of one pair
    assert "activity_q1" in set(comparisons["segment"])


def test_sampled_protocol_is_labelled_and_writes_no_lists(trained, tmp_path):
    _, tables = run_evaluate(trained, tmp_path, ["eval.protocol=pop100", "eval.splits=[test]"])
    metrics = tables["metrics"]
    assert (metrics["protocol"] == "pop100").all() and set(metrics["split"]) == {"test"}
    assert "coverage" not in set(metrics["metric"])
    assert (tables["user_metrics"]["protocol"] == "pop100").all()
    assert (tables["comparisons"]["protocol"] == "pop100").all()
    assert tables["recommendations"].height == 0


def test_model_pairs_put_the_baseline_first_then_every_other_pair():
    assert model_pairs(["mf", "pop", "sasrec"], "pop") == [("pop", "mf"), ("pop", "sasrec"), ("mf", "sasrec")]
    assert model_pairs(["mf", "sasrec"], "pop") == [("mf", "sasrec")]


@pytest.mark.parametrize("overrides, setting", [
    (["eval.splits=[train]"], "eval.splits"),
    (["eval.engine=spark"], "eval.engine"),
    (["eval.cold_start_max=-1"], "eval.cold_start_max"),
    (["eval.protocol=uni50"], "eval.protocol"),
])
def test_bad_settings_are_named_before_any_table_is_written(trained, tmp_path, overrides, setting):
    with pytest.raises(ConfigError, match=setting.replace(".", r"\.")):
        run_evaluate(trained, tmp_path, overrides)
    assert load_tables(str(tmp_path / "run"))["metrics"].height == 0


def test_stage_without_trained_models_names_the_missing_stage(trained, tmp_path):
    root, prepared, _ = trained
    cfg = compose(TINY + [f"data.cache_dir={root}/cache"])
    with RunWriter(tmp_path / "run", run_id="r1", config=cfg) as writer:
        run = RunState(cfg=cfg, writer=writer, prepared=prepared)
        with pytest.raises(ConfigError, match="train stage"):
            stage_evaluate(run)
