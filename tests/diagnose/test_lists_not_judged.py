"""Recommendation lists from elsewhere are evaluated beside the models but never judged by diagnosis."""

from __future__ import annotations

import polars as pl

from recsys.diagnose.config import DiagnoseConfig
from recsys.diagnose.stage import DiagnoseResult, judge, stage_diagnose
from recsys.run_state import Evaluation, RunState


def _metrics(values: dict[str, float]) -> pl.DataFrame:
    n = len(values)
    return pl.DataFrame({"run_id": ["r"] * n, "dataset": ["d"] * n, "model": list(values), "split": ["val"] * n,
                         "segment": ["all"] * n, "metric": ["ndcg"] * n, "k": [10] * n,
                         "value": list(values.values())})


def _comparisons(baseline: str, candidate: str, delta: float) -> pl.DataFrame:
    return pl.DataFrame({"run_id": ["r"], "dataset": ["d"], "baseline": [baseline], "candidate": [candidate],
                         "split": ["val"], "segment": ["all"], "metric": ["ndcg"], "k": [10], "delta": [delta],
                         "p_adjusted": [0.001]})


def test_a_list_that_loses_to_popularity_gets_no_finding_a_model_does():
    metrics = _metrics({"pop": 0.10, "mf": 0.12, "toppop": 0.08})
    comparisons = pl.concat([_comparisons("pop", "mf", 0.02), _comparisons("pop", "toppop", -0.02)])
    tables = {"metrics": metrics, "comparisons": comparisons}
    # without the external_lists table toppop is taken for a model, and it loses to popularity
    before = {(f.model, f.code) for f in judge(tables, DiagnoseResult(), DiagnoseConfig())}
    assert ("toppop", "NOT_BEATING_POPULARITY") in before
    lists = pl.DataFrame({"run_id": ["r"], "dataset": ["d"], "model": ["toppop"], "split": ["val"]})
    after = {(f.model, f.code) for f in judge({**tables, "external_lists": lists}, DiagnoseResult(),
                                              DiagnoseConfig())}
    assert after == before - {f for f in before if f[0] == "toppop"}
    # a worse model is still judged next to the list
    worse = {"metrics": _metrics({"pop": 0.10, "mf": 0.07, "toppop": 0.08}), "external_lists": lists,
             "comparisons": pl.concat([_comparisons("pop", "mf", -0.03), _comparisons("pop", "toppop", -0.02)])}
    assert ("mf", "NOT_BEATING_POPULARITY") in {(f.model, f.code) for f in judge(worse, DiagnoseResult(),
                                                                                 DiagnoseConfig())}


def test_a_run_with_only_lists_is_not_diagnosed_and_says_why(caplog):
    from rayjobs._common import compose

    run = RunState(cfg=compose([]), writer=None, prepared=object(),
                   evaluation=Evaluation(context=None, rows={"toppop": {}}))
    with caplog.at_level("INFO", logger="recsys.diagnose.stage"):
        stage_diagnose(run)
    assert run.diagnosis is None and "lists are not diagnosed" in caplog.text
