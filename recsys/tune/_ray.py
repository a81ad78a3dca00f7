"""Ray Tune at the edge: run one search (ASHA + Optuna's TPE, or random search) over a space of trials.

Trials are function trainables around :func:`recsys.tune.trial.run_trial`, each holding
``tune.cpus_per_trial`` CPUs and training in its own process (no Ray Train trainer
inside a trial: on a small machine nested trainers starve each other of CPUs). The
data and item vectors travel once through the object store (``tune.with_parameters``).
A trial that raises or whose loss turns NaN is recorded and the search goes on; when every
trial raised and one of them a :class:`~recsys.errors.RecsysError` (a setting of the space that
the model rejects), the search ends with that error, as the stage would have without Ray.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from recsys.runtime import user_error
from recsys.tune.config import TuneConfig
from recsys.tune.space import Space, to_tune
from recsys.tune.trial import OBJECTIVE, TrialContext, run_trial

log = logging.getLogger(__name__)


@dataclass
class TrialOutcome:
    """What one trial did, as the ``trials`` table records it."""

    trial_id: str
    config: dict[str, Any]
    val_curve: list[float] = field(default_factory=list)
    objective: Optional[float] = None          # best validation NDCG the trial reached
    status: str = "completed"                  # completed | stopped | diverged | error
    stop_reason: str = ""                      # max_epochs | early_stopping | asha | nan | exception
    error: Optional[str] = None
    epochs: int = 0
    seeded_from: Optional[str] = None          # "baseline", "round N": the search's start point, else None
    recsys_error: Optional[Exception] = field(default=None, repr=False, compare=False)  # a RecsysError it raised
    error_detail: Optional[str] = field(default=None, repr=False, compare=False)  # Ray's text, with the traceback


def _trainable(config: dict, context: TrialContext) -> None:
    from ray import tune

    trial_id = tune.get_context().get_trial_id()
    run_trial(config, context, lambda metrics: tune.report(dict(metrics, trial_id=trial_id)))


def _searcher(mode: str, cfg: TuneConfig, seed: int, budget: int, parallel: int, start: dict):
    points = [start] if start else None           # evaluated first, then the searcher draws
    if mode == "undirected":
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator(random_state=seed, max_concurrent=parallel, points_to_evaluate=points)
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.disable_default_handler()      # Optuna's lines go where the run's logging sends them
    optuna.logging.enable_propagation()

    startup = cfg.startup_trials or max(2, budget // 3)
    return OptunaSearch(sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup),
                        points_to_evaluate=points)


def mark_start(outcomes: list[TrialOutcome], start: dict, label: str) -> None:
    """Label the trial that evaluated ``start`` (its configuration agrees on every key of ``start``).

    >>> trials = [TrialOutcome("a", {"lr": 0.5, "dim": 8}), TrialOutcome("b", {"lr": 0.1, "dim": 8})]
    >>> mark_start(trials, {"lr": 0.1, "dim": 8}, "baseline"); [t.seeded_from for t in trials]
    [None, 'baseline']
    """
    for outcome in outcomes:
        if start and all(outcome.config.get(k) == v for k, v in start.items()):
            outcome.seeded_from = label
            return


def concurrency(cfg: TuneConfig) -> int:
    """Trials at once: ``tune.max_concurrent_trials``, else as many as the cluster's free CPUs hold (at least 1)."""
    if cfg.max_concurrent_trials:
        return cfg.max_concurrent_trials
    import ray

    cpus = ray.available_resources().get("CPU", 1.0)
    return max(1, int(cpus // cfg.cpus_per_trial))


def error_text(error: BaseException) -> str:
    """The trial's own exception as ``Type: message`` (Ray's task wrapper and traceback removed).

    >>> error_text(ValueError("dim must be positive"))
    'ValueError: dim must be positive'
    """
    cause = getattr(error, "cause", None) or error
    while getattr(cause, "cause", None) is not None and cause.cause is not cause:
        cause = cause.cause
    lines = [line for line in str(cause).strip().splitlines() if line.strip()]
    return f"{type(cause).__name__}: {lines[-1] if lines else ''}"[:2000]


def outcome_of(result: Any, max_epochs: int) -> TrialOutcome:
    """A :class:`TrialOutcome` from one Ray Tune ``Result``."""
    frame = result.metrics_dataframe
    reports = frame.to_dict("records") if frame is not None and len(frame) else []
    last = reports[-1] if reports else dict(result.metrics or {})
    trial_id = str(last.get("trial_id") or Path(result.path).name)
    config = {k: v for k, v in (result.config or {}).items()}
    curve = [float(r[OBJECTIVE]) for r in reports if r.get("status") != "diverged" and OBJECTIVE in r]
    best = max((x for x in curve if math.isfinite(x)), default=None)
    out = TrialOutcome(trial_id, config, curve, best, epochs=int(last.get("epoch") or 0))
    if result.error is not None:
        out.status, out.stop_reason = "error", "exception"
        out.error = error_text(result.error)
        out.recsys_error = user_error(result.error)
        out.error_detail = str(result.error)[-20_000:]
    elif last.get("status") == "diverged":
        out.status, out.stop_reason, out.error = "diverged", "nan", f"non-finite loss: {last.get('where')}"
    elif not last.get("finished", False) and out.epochs < max_epochs:
        out.status, out.stop_reason = "stopped", "asha"
    else:                                       # ended by itself, or reached the search's epoch budget (max_t)
        out.stop_reason = "early_stopping" if last.get("status") == "early_stopped" else "max_epochs"
    return out


def trial_progress(budget: int, label: str):
    """A Tune callback (on the driver) that shows the trials finished so far (:class:`recsys.console.ProgressLine`)."""
    from ray.tune import Callback

    from recsys.console import ProgressLine

    class TrialProgress(Callback):
        def __init__(self) -> None:
            self.progress: Optional[ProgressLine] = None

        def setup(self, **info) -> None:
            self.progress = ProgressLine(budget, label, unit="trials")

        def _one_done(self) -> None:
            if self.progress is not None:
                self.progress.update(1)

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            self._one_done()

        def on_trial_error(self, iteration, trials, trial, **info) -> None:
            self._one_done()

        def on_experiment_end(self, trials, **info) -> None:
            if self.progress is not None:
                self.progress.close()

        def __getstate__(self) -> dict:           # Tune pickles its run config: the bar stays here
            return {"progress": None}

    return TrialProgress()


def run_search(space: Space, context: TrialContext, cfg: TuneConfig, *, mode: str, budget: int, seed: int,
               storage: str | Path, name: str, start: Optional[dict] = None,
               start_label: str = "baseline") -> list[TrialOutcome]:
    """Run ``budget`` trials over ``space`` and return their outcomes sorted by trial id.

    ``start`` (a value for every searched parameter, :func:`recsys.tune.space.start_point`) is
    the first trial, inside the budget; its outcome carries ``seeded_from=start_label``.
    """
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    max_epochs = context.epochs or context.cfg.train.epochs
    parallel = concurrency(cfg)
    trainable = tune.with_resources(tune.with_parameters(_trainable, context=context), {"cpu": cfg.cpus_per_trial})
    scheduler = ASHAScheduler(time_attr="training_iteration", max_t=max_epochs,
                              grace_period=min(cfg.grace_period, max_epochs), reduction_factor=cfg.reduction_factor)
    searcher = _searcher(mode, cfg, seed, budget, parallel, start or {})
    tuner = tune.Tuner(
        trainable,
        param_space=to_tune(space),
        tune_config=tune.TuneConfig(metric=OBJECTIVE, mode="max", scheduler=scheduler,
                                    search_alg=searcher, num_samples=budget,
                                    max_concurrent_trials=None if mode == "undirected" else parallel),
        run_config=tune.RunConfig(name=name, storage_path=str(Path(storage).resolve()), verbose=0,
                                  callbacks=[trial_progress(budget, f"tune {mode}")],
                                  failure_config=tune.FailureConfig(max_failures=0, fail_fast=False)),
    )
    log.info("tune: %s search, %d trials, at most %d epochs each", mode, budget, max_epochs)
    grid = tuner.fit()
    outcomes = [outcome_of(grid[i], max_epochs) for i in range(len(grid))]
    mark_start(outcomes, start or {}, start_label)
    outcomes = sorted(outcomes, key=lambda o: o.trial_id)
    raise_if_all_failed(outcomes)
    return outcomes


class SearchFailed(RuntimeError):
    """Every trial of a search raised something other than a :class:`~recsys.errors.RecsysError` (a bug, an
    out-of-memory kill): the run ends with the first trial's error, traceback included."""


def raise_if_all_failed(outcomes: list[TrialOutcome]) -> None:
    """End the run when every trial raised: with the RecsysError of the first trial that raised one, else with
    :class:`SearchFailed` carrying the first trial's error.

    Such a search has nothing to retrain. A RecsysError is the user's to fix: one ``error:`` line
    (:func:`rayjobs._common.report_failure`); anything else is unexpected: its traceback, once, and the
    run's log file. Never a warning and a run that looks successful.

    >>> from recsys.errors import ConfigError
    >>> failed = TrialOutcome("a", {}, status="error", recsys_error=ConfigError("dim must be >= 1"))
    >>> raise_if_all_failed([failed, TrialOutcome("b", {}, objective=0.1)])
    >>> raise_if_all_failed([failed, TrialOutcome("b", {}, status="error")])
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: dim must be >= 1
    >>> raise_if_all_failed([TrialOutcome("c", {}, status="error", error="ZeroDivisionError: division by zero")])
    Traceback (most recent call last):
    ...
    recsys.tune._ray.SearchFailed: every trial of the search failed (1 of 1); trial c: ZeroDivisionError: division by zero
    """
    if not outcomes or any(o.status != "error" for o in outcomes):
        return
    found = next((o.recsys_error for o in outcomes if o.recsys_error is not None), None)
    if found is not None:
        raise found
    first = outcomes[0]
    detail = f"\n{first.error_detail}" if first.error_detail else ""
    raise SearchFailed(f"every trial of the search failed ({len(outcomes)} of {len(outcomes)}); "
                       f"trial {first.trial_id}: {first.error}{detail}")
