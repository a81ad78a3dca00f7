"""Real Ray Tune searches: trials that raise or whose loss turns NaN are recorded and the search goes on."""

from __future__ import annotations

import pytest

from rayjobs._common import compose
from recsys.data.prepare import prepare
from recsys.train.data import TrainingData
from recsys.tune._ray import run_search
from recsys.tune.config import TuneConfig
from recsys.tune.space import Param
from recsys.tune.trial import TrialContext

TINY = ["dataset.synthetic.n_users=200", "dataset.synthetic.n_items=120", "dataset.synthetic.n_topics=3",
        "dataset.synthetic.mean_interactions_per_user=10", "data.engine=local", "train.batch_size=256"]


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    cfg = compose(TINY + [f"data.cache_dir={tmp_path_factory.mktemp('cache')}"])
    data = TrainingData.from_prepared(prepare(cfg.dataset, cfg.data, cfg.split))
    return TrialContext(cfg, "mf", data, {None: None}, epochs=2)


@pytest.mark.ray
@pytest.mark.slow
def test_failed_and_diverged_trials_are_recorded_and_the_others_finish(context, tmp_path):
    space = {"model.mf.dim": Param("choice", values=(8, -1)),           # -1: the model cannot be built
             "train.lr": Param("choice", values=(0.01, 1e30))}          # 1e30: the loss overflows
    outcomes = run_search(space, context, TuneConfig(grace_period=2), mode="undirected", budget=6, seed=3,
                          storage=tmp_path, name="faults", start={"model.mf.dim": -1, "train.lr": 0.01},
                          start_label="round 0")
    assert len(outcomes) == 6 and len({o.trial_id for o in outcomes}) == 6
    assert [o.seeded_from for o in outcomes if o.seeded_from] == ["round 0"]
    for o in outcomes:
        if o.config["model.mf.dim"] == -1:
            assert o.status == "error" and o.stop_reason == "exception" and o.objective is None
            assert o.error.startswith("RuntimeError") and "negative dimension" in o.error
        elif o.config["train.lr"] == 1e30:
            assert o.status == "diverged" and o.stop_reason == "nan" and "non-finite" in o.error
        else:
            assert o.status in ("completed", "stopped") and o.error is None
            assert len(o.val_curve) == o.epochs >= 1 and 0 < o.objective <= 1
            assert o.objective == max(o.val_curve)
    assert {o.status for o in outcomes} >= {"error", "diverged"}
    assert any(o.status in ("completed", "stopped") for o in outcomes)


@pytest.mark.ray
@pytest.mark.slow
def test_directed_search_samples_only_inside_its_space_with_tpe(context, tmp_path):
    space = {"train.lr": Param("loguniform", low=0.005, high=0.02), "model.mf.dim": Param("int", low=4, high=12)}
    start = {"train.lr": 0.0123, "model.mf.dim": 7}
    outcomes = run_search(space, context, TuneConfig(startup_trials=2), mode="directed", budget=4, seed=0,
                          storage=tmp_path, name="inside", start=start, start_label="baseline")
    assert len(outcomes) == 4 and all(o.status in ("completed", "stopped") for o in outcomes)
    for o in outcomes:
        assert 0.005 <= o.config["train.lr"] <= 0.02 and 4 <= o.config["model.mf.dim"] <= 12
    # the start point is one of the budget's trials, evaluated as given and labelled
    seeded = [o for o in outcomes if o.seeded_from is not None]
    assert len(seeded) == 1 and seeded[0].seeded_from == "baseline"
    assert seeded[0].config["train.lr"] == 0.0123 and seeded[0].config["model.mf.dim"] == 7
