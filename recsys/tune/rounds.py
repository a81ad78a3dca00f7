"""Rounds of the search: edit the space from the findings, search it, retrain the best, evaluate, diagnose again.

Directed (``tune.mode=directed``), for each of ``tune.rounds`` rounds:

1. the warning and critical findings of the current model (the baseline's in round 0)
   edit the space (:func:`recsys.tune.edits.apply_remedies`), on top of the last round's;
2. Ray Tune runs ``tune.trials`` trials over it (ASHA on validation NDCG, Optuna's TPE).
   The first trial is a start point (:func:`recsys.tune.space.start_point`): in round 0 the
   baseline's own settings, later the best round so far's selected configuration, each moved
   into the edited space where an edit left it outside. So a round never searches blind of
   where it starts, and the budget includes that trial;
3. the best trial's configuration is retrained with the baseline's full training budget
   (``train.epochs``, ``train.engine``), evaluated on val and test, and diagnosed again:
   its findings steer the next round.

The directed result is the retrained model of the round with the best validation NDCG.
Undirected (``tune.mode=undirected``): one random search of ``rounds * trials`` trials over
the unedited default space, with the same seed, scheduler, retraining and baseline start point. The functions
that train, evaluate and diagnose are passed in (:class:`Steps`), so this module only
decides what happens in which order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from recsys.diagnose.finding import Finding
from recsys.tune._ray import TrialOutcome
from recsys.tune.config import TuneConfig
from recsys.tune.edits import Baseline, EditNote, apply_remedies
from recsys.tune.space import Space, start_point

log = logging.getLogger(__name__)


@dataclass
class Retrained:
    """A trial's configuration trained again in full: its validation NDCG and whatever the steps attach."""

    val_ndcg: float
    findings: list[Finding] = field(default_factory=list)
    payload: Any = None                       # the stage's own record (model path, evaluation rows, ...)


@dataclass
class Steps:
    """What a round does outside the search itself."""

    # (space, mode, budget, seed, name, start point, its label)
    search: Callable[[Space, str, int, int, str, dict, str], list[TrialOutcome]]
    retrain: Callable[[TrialOutcome, str, int], Retrained]               # (trial, mode, round)


@dataclass
class Round:
    index: int
    space: Space
    notes: list[EditNote]
    trials: list[TrialOutcome]
    selected: Optional[TrialOutcome] = None
    retrained: Optional[Retrained] = None


@dataclass
class SearchResult:
    mode: str
    rounds: list[Round]
    best_round: Optional[int] = None

    @property
    def best(self) -> Optional[Round]:
        return None if self.best_round is None else self.rounds[self.best_round]


def best_trial(trials: list[TrialOutcome]) -> Optional[TrialOutcome]:
    """The trial with the highest objective among those that produced one (None if none did).

    >>> best_trial([TrialOutcome("a", {}, objective=0.2), TrialOutcome("b", {}, objective=None, status="error"),
    ...             TrialOutcome("c", {}, objective=0.3, status="stopped")]).trial_id
    'c'
    """
    scored = [t for t in trials if t.objective is not None and t.status != "error"]
    return max(scored, key=lambda t: t.objective) if scored else None


def _retrain_best(mode: str, rnd: Round, steps: Steps) -> None:
    rnd.selected = best_trial(rnd.trials)
    if rnd.selected is None:
        log.warning("tune: no %s trial of round %d produced a validation metric; nothing retrained", mode, rnd.index)
        return
    rnd.retrained = steps.retrain(rnd.selected, mode, rnd.index)


def _pick(result: SearchResult) -> SearchResult:
    done = [r for r in result.rounds if r.retrained is not None]
    if done:
        result.best_round = max(done, key=lambda r: r.retrained.val_ndcg).index
    return result


def _start(space: Space, result: SearchResult, baseline: Baseline) -> tuple[dict, str]:
    """The round's start point and where it comes from: the best round so far, else the baseline."""
    best = _pick(result).best
    if best is not None:
        return start_point(space, {**_baseline_values(space, baseline), **best.selected.config}), \
            f"round {best.index}"
    return start_point(space, _baseline_values(space, baseline)), "baseline"


def _baseline_values(space: Space, baseline: Baseline) -> dict[str, Any]:
    return {path: baseline(path) for path, param in space.items() if param.searched}


def directed_search(default: Space, findings: list[Finding], model: str, cfg: TuneConfig, baseline: Baseline,
                    steps: Steps, label: str) -> SearchResult:
    """``cfg.rounds`` rounds, each space edited by the findings of the model the round before left."""
    result = SearchResult("directed", [])
    space = default
    for index in range(cfg.rounds):
        space, notes = apply_remedies(space, findings, model, baseline)
        for note in notes:
            log.info("tune round %d: %s %s (%s -> %s)%s", index, note.code, note.edit, note.before, note.after,
                     f" skipped: {note.reason}" if note.status == "skipped" else "")
        start, origin = _start(space, result, baseline)
        trials = steps.search(space, "directed", cfg.trials, cfg.seed + index, f"{label}-directed-r{index}",
                              start, origin)
        rnd = Round(index, space, notes, trials)
        result.rounds.append(rnd)
        _retrain_best("directed", rnd, steps)
        if rnd.retrained is None:
            break
        findings = rnd.retrained.findings
    return _pick(result)


def undirected_search(default: Space, cfg: TuneConfig, baseline: Baseline, steps: Steps, label: str) -> SearchResult:
    """One random search with the directed search's whole budget over the unedited default space."""
    start = start_point(default, _baseline_values(default, baseline))
    trials = steps.search(default, "undirected", cfg.rounds * cfg.trials, cfg.seed, f"{label}-undirected",
                          start, "baseline")
    rnd = Round(0, default, [], trials)
    _retrain_best("undirected", rnd, steps)
    return _pick(SearchResult("undirected", [rnd]))
