"""The tune stage refuses a run that lacks what the search needs, naming the setting (pure: no Ray)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rayjobs._common import compose
from recsys.errors import ConfigError
from recsys.run_state import Evaluation, RunState, TrainedModelRecord
from recsys.tune.stage import stage_tune


def finished_run(tune_overrides: list[str], fields: dict) -> RunState:
    """A run as the stages before tune leave it: the composed config and the fields they set."""
    cfg = compose(tune_overrides)
    return RunState(cfg=cfg, writer=None, prepared=object(), **fields)


ALL_STAGES = {"models": {"pop": TrainedModelRecord("pop.pt"), "mf": TrainedModelRecord("mf.pt")},
              "evaluation": Evaluation(context=None), "diagnosis": SimpleNamespace(findings=[])}


def test_a_model_that_was_not_trained_is_named_with_what_was():
    run = finished_run(["tune.model=two_tower"], dict(ALL_STAGES))
    with pytest.raises(ConfigError, match=r"tune\.model.*'two_tower'.*trained: pop, mf"):
        stage_tune(run)


def test_searching_before_the_evaluate_stage_names_the_stages():
    run = finished_run([], {k: v for k, v in ALL_STAGES.items() if k != "evaluation"})
    with pytest.raises(ConfigError, match=r"'stages'.*evaluate stage"):
        stage_tune(run)


def test_a_directed_search_without_a_diagnosis_points_at_undirected():
    run = finished_run(["tune.mode=directed"], {k: v for k, v in ALL_STAGES.items() if k != "diagnosis"})
    with pytest.raises(ConfigError, match=r"tune\.mode.*diagnose stage.*tune\.mode=undirected"):
        stage_tune(run)


def test_an_undirected_search_does_not_need_the_diagnosis_and_a_bad_budget_is_refused_first():
    run = finished_run(["tune.mode=undirected", "tune.trials=0"], {k: v for k, v in ALL_STAGES.items()
                                                                  if k != "diagnosis"})
    with pytest.raises(ConfigError, match=r"tune\.trials"):
        stage_tune(run)


def test_only_pop_trained_skips_the_search_without_error():
    run = finished_run([], {"models": {"pop": TrainedModelRecord("pop.pt")}, "evaluation": Evaluation(context=None)})
    assert stage_tune(run) is None
