"""The order of a search's rounds and where each starts, with steps that are plain functions (pure: no Ray)."""

from __future__ import annotations

from recsys.diagnose.finding import Finding
from recsys.diagnose.remedies import remedy
from recsys.tune._ray import TrialOutcome
from recsys.tune.config import TuneConfig
from recsys.tune.rounds import Retrained, Steps, directed_search, undirected_search
from recsys.tune.space import Param

BASELINE = {"train.lr": 1.0, "model.mf.dim": 64, "train.grad_clip": None}
SPACE = {"train.lr": Param("loguniform", low=0.1, high=1.0), "model.mf.dim": Param("choice", values=(32, 64)),
         "train.weight_decay": Param("fixed", value=0.0)}


class Recorder:
    """Search: the start point as trial 0, then one trial per budget slot at the space's lower ends; its
    objective grows with the trial number. Retrain: validation NDCG from a table keyed by round."""

    def __init__(self, retrained_val: dict[int, float]):
        self.searches, self.retrained_val = [], retrained_val

    def search(self, space, mode, budget, seed, name, start, origin):
        self.searches.append({"mode": mode, "budget": budget, "seed": seed, "start": start, "origin": origin,
                              "lr": space["train.lr"]})
        drawn = {p: (q.low if q.type == "loguniform" else q.values[0]) for p, q in space.items() if q.searched}
        trials = [TrialOutcome(f"{name}-{i}", dict(start if i == 0 else drawn), objective=0.1 + 0.01 * i)
                  for i in range(budget)]
        trials[0].seeded_from = origin
        return trials

    def retrain(self, trial, mode, index):
        return Retrained(self.retrained_val.get(index, 0.2), findings=[])


def steps(recorder: Recorder) -> Steps:
    return Steps(search=recorder.search, retrain=recorder.retrain)


def divergence() -> Finding:
    return Finding("LOSS_DIVERGENCE", "critical", {"model": "mf"}, "loss diverged", {},
                   remedy("Lower the learning rate.", {"param": "train.lr", "op": "scale_range", "factor": 0.1}))


def test_round_zero_starts_at_the_baseline_moved_into_the_edited_space_and_round_one_at_round_zeros_pick():
    recorder = Recorder({0: 0.25, 1: 0.22})
    result = directed_search(SPACE, [divergence()], "mf", TuneConfig(rounds=2, trials=3), BASELINE.__getitem__,
                             steps(recorder), "toy")
    first, second = recorder.searches
    assert first["lr"].high < 1.0                                    # the remedy moved the range below 1.0
    assert first["origin"] == "baseline"
    assert first["start"] == {"train.lr": first["lr"].high, "model.mf.dim": 64}    # lr 1.0 -> nearest end
    assert second["origin"] == "round 0"
    assert second["start"] == {k: result.rounds[0].selected.config[k] for k in second["start"]}
    assert [s["seed"] for s in recorder.searches] == [0, 1] and result.best_round == 0


def test_the_undirected_search_starts_at_the_baseline_in_the_unedited_space_with_the_whole_budget():
    recorder = Recorder({})
    undirected_search(SPACE, TuneConfig(rounds=2, trials=3), BASELINE.__getitem__, steps(recorder), "toy")
    (only,) = recorder.searches
    assert only["budget"] == 6 and only["origin"] == "baseline"
    assert only["start"] == {"train.lr": 1.0, "model.mf.dim": 64}
