"""A planted fault (a learning rate 100x too high) steers the first round's space away from it, and the tuned
model no longer shows the finding; the undirected search of the same budget runs beside it in the same command."""

from __future__ import annotations

import json

import pytest

from rayjobs._common import compose
from recsys.pipeline import run_stages
from recsys.report.reader import load_tables

# the diagnosis matrix's tiny world and pinned models (tests/diagnose/scenarios.py BASE), mf at lr 1.0
from tests.diagnose.scenarios import BASE

STAGES = ["prepare", "train", "evaluate", "diagnose", "tune"]


@pytest.mark.ray
@pytest.mark.slow
def test_a_far_too_high_learning_rate_is_searched_away_and_the_finding_fixed(tmp_path):
    cfg = compose([*BASE, "models=[pop,mf]", "train.lr=1.0", "eval.bootstrap_samples=100",
                   "tune.mode=both", "tune.trials=3", "tune.rounds=1", "tune.epochs=6",
                   "tune.space.train.lr.low=0.1", "tune.space.train.lr.high=1.0",     # the fault is inside the space
                   f"report.dir={tmp_path}/run", f"data.cache_dir={tmp_path}/cache"])
    tables = load_tables(str(run_stages(cfg, STAGES)))

    findings = tables["findings"]
    before = findings.filter(findings["model"] == "mf")
    assert "LOSS_DIVERGENCE" in before["code"].to_list()

    trials = tables["trials"]
    directed = trials.filter(trials["mode"] == "directed")
    assert directed.height == 3 and set(directed["round"]) == {0}
    notes = json.loads(directed["remedies"][0])
    lr_notes = [n for n in notes if n["param"] == "train.lr" and n["status"] == "applied"]
    assert any(n["code"] == "LOSS_DIVERGENCE" for n in lr_notes)
    assert "LOSS_DIVERGENCE" in directed["origin_remedy"][0].split(",")
    for config in directed["config"]:
        assert json.loads(config)["train.lr"] <= 0.1 + 1e-12            # every trial away from 1.0
    assert directed["selected"].sum() == 1
    undirected = trials.filter(trials["mode"] == "undirected")
    assert undirected.height == 3 and all(json.loads(r) == [] for r in undirected["remedies"])

    after = findings.filter(findings["model"] == "mf:directed")
    assert (after["round"] == 0).all()
    assert "LOSS_DIVERGENCE" not in after.filter(after["severity"] != "info")["code"].to_list()

    m = tables["metrics"]
    ndcg = {row["model"]: row["value"] for row in m.filter((m["split"] == "test") & (m["segment"] == "all") &
                                                           (m["metric"] == "ndcg") & (m["k"] == 10)).iter_rows(named=True)}
    assert {"mf", "mf:directed", "mf:undirected"} <= set(ndcg)
    assert ndcg["mf:directed"] > ndcg["mf"]

    c = tables["comparisons"]
    pairs = set(zip(c["baseline"], c["candidate"]))
    assert {("mf", "mf:directed"), ("mf", "mf:undirected"), ("mf:undirected", "mf:directed")} <= pairs
    row = c.filter((c["baseline"] == "mf") & (c["candidate"] == "mf:directed") & (c["split"] == "test") &
                   (c["segment"] == "all") & (c["metric"] == "ndcg") & (c["k"] == 10)).row(0, named=True)
    assert row["delta"] > 0 and row["p_value"] is not None and row["n_users"] > 0
