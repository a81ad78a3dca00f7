"""A search whose pick is a configuration already trained in full (the baseline's own settings, or the last
round's pick) reuses that model, its evaluation and findings instead of training it again."""

from __future__ import annotations

import logging

import pytest

from rayjobs._common import compose
from recsys.pipeline import run_stages
from recsys.report.reader import load_tables

from tests.diagnose.scenarios import BASE

STAGES = ["prepare", "train", "evaluate", "diagnose", "tune"]


def _values(metrics, model: str) -> dict:
    rows = metrics.filter(metrics["model"] == model)
    return {(r["split"], r["segment"], r["metric"], r["k"]): r["value"] for r in rows.iter_rows(named=True)}


@pytest.mark.ray
@pytest.mark.slow
def test_the_baseline_settings_picked_again_are_reused_not_retrained(tmp_path, caplog):
    # one trial a search: the start point, i.e. the baseline's settings (round 0, undirected), then round 0's pick
    # train.batch_size=512: the baseline inside the default space, so the start point is the baseline itself
    # 12 epochs with early stopping: the baseline converges, so no finding edits its settings (STOPPED_TOO_EARLY
    # would fire on BASE's 6 epochs, and the directed start point would then differ from the baseline)
    cfg = compose([*BASE, "train.batch_size=512", "train.epochs=12", "train.patience=3", "models=[pop,mf]", "eval.bootstrap_samples=50", "tune.mode=both",
                   "tune.trials=1",
                   "tune.rounds=2", "tune.epochs=2", f"report.dir={tmp_path}/run", f"data.cache_dir={tmp_path}/cache"])
    with caplog.at_level(logging.INFO, logger="recsys.tune.stage"):
        tables = load_tables(str(run_stages(cfg, STAGES)))

    trials = tables["trials"]
    directed = trials.filter(trials["mode"] == "directed").sort("round")
    assert directed["selected"].all() and directed["seeded_from"].to_list() == ["baseline", "round 0"]
    reused = [r.getMessage() for r in caplog.records if "reused, not retrained" in r.getMessage()]
    assert sum("directed trial" in m and "undirected" not in m for m in reused) == 2
    assert all("the baseline" in m for m in reused)
    # the undirected search (2 trials: the baseline's settings, then one drawn) reuses only if it picks the former
    undirected = trials.filter((trials["mode"] == "undirected") & trials["selected"])
    picked_baseline = undirected["seeded_from"].to_list() == ["baseline"]
    assert sum("undirected trial" in m for m in reused) == int(picked_baseline)
    trained_in_full = sorted(p.name for p in (tmp_path / "run" / "checkpoints" / "tune").iterdir()
                             if p.name.startswith("mf-"))
    assert trained_in_full == ([] if picked_baseline else ["mf-undirected-r0"])

    metrics = tables["metrics"]
    baseline = _values(metrics, "mf")
    assert baseline and _values(metrics, "mf:directed") == baseline
    assert (_values(metrics, "mf:undirected") == baseline) == picked_baseline

    findings = tables["findings"]
    codes = sorted(findings.filter(findings["model"] == "mf")["code"].to_list())
    for round_ in (0, 1):
        tuned = findings.filter((findings["model"] == "mf:directed") & (findings["round"] == round_))
        assert sorted(tuned["code"].to_list()) == codes
