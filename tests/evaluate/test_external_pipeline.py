"""A list from outside through the whole pipeline: evaluated beside the models, diagnosed around, compared, in the HTML."""

from __future__ import annotations

from dataclasses import replace

import polars as pl
import pytest

from rayjobs._common import compose
from recsys.data.prepare import prepare
from recsys.errors import ConfigError
from recsys.evaluate.external_files import ExternalListConfig
from recsys.pipeline import run_stages
from recsys.report.reader import load_tables

pytestmark = pytest.mark.ray

TINY = ["dataset.synthetic.n_users=100", "dataset.synthetic.n_items=60", "dataset.synthetic.n_topics=3",
        "dataset.synthetic.mean_interactions_per_user=8", "dataset.synthetic.chunk_users=100",
        "models=[pop,mf]", "model.mf.dim=8", "train.epochs=2", "train.engine=local", "data.engine=local",
        "eval.bootstrap_samples=50"]


def popular_list(prepared) -> pl.DataFrame:
    """Every test user gets the 10 most popular training items, plus one unknown user and one unknown item."""
    train, test = prepared.split("train"), prepared.split("test")
    top = train.group_by("item_id").len().sort(["len", "item_id"], descending=[True, False]).head(10)["item_id"]
    users = test["user_id"].unique().sort()
    frame = pl.DataFrame({"user_id": users}).join(
        pl.DataFrame({"item_id": top, "score": [float(10 - i) for i in range(len(top))]}), how="cross")
    extra = pl.DataFrame({"user_id": ["nobody", users[0]], "item_id": [top[0], "no-such-item"], "score": [1.0, 0.5]})
    return pl.concat([frame, extra])


def test_a_list_runs_through_the_pipeline_beside_the_models(tmp_path):
    cfg = compose(TINY + [f"report.dir={tmp_path}/run", f"data.cache_dir={tmp_path}/cache"])
    prepared = prepare(cfg.dataset, cfg.data, cfg.split)
    path = tmp_path / "toppop.csv"
    popular_list(prepared).write_csv(path)
    lists = [ExternalListConfig(name="toppop", path=str(path))]
    with pytest.raises(ConfigError, match=r"eval\.external\[0\]\.name.*name of a trained model"):
        run_stages(replace(cfg, eval=replace(cfg.eval, external=[replace(lists[0], name="mf")])))
    assert not (tmp_path / "run").exists()                                # refused before any work
    report = run_stages(replace(cfg, eval=replace(cfg.eval, external=lists)),
                        ["prepare", "train", "evaluate", "diagnose", "compare"])
    tables = load_tables(str(report))
    assert tables["runs"]["status"].to_list() == ["succeeded"]
    everyone = tables["metrics"].filter(pl.col("segment") == "all")
    assert set(zip(everyone["model"], everyone["split"])) == {("pop", "val"), ("pop", "test"), ("mf", "val"),
                                                              ("mf", "test"), ("toppop", "test")}
    counts = tables["external_lists"].filter(pl.col("split") == "test").row(0, named=True)
    assert tables["external_lists"].filter(pl.col("split") == "val")["status"].to_list() == [
        "no list given for this split"]
    assert (counts["n_unknown_users"], counts["n_unknown_items"], counts["status"]) == (1, 1, "evaluated")
    assert counts["n_split_users"] > 0 and counts["n_seen_dropped"] > 0              # popular items were seen
    pairs = set(zip(tables["comparisons"]["baseline"], tables["comparisons"]["candidate"]))
    assert {("pop", "toppop"), ("mf", "toppop")} <= pairs
    assert "toppop" in set(tables["rankings"]["model"])
    assert set(tables["findings"]["model"].drop_nulls()) <= {"pop", "mf"}          # diagnosis needs a model
    assert "toppop" in (report / "report.html").read_text()
