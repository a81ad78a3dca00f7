"""One trial of the search: train the searched model with a sampled configuration, reporting every epoch.

Pure: no Ray here. :func:`run_trial` takes the trial's flat settings
(``{"train.lr": 0.003, "model.two_tower.depth": 1}``), trains in this process
(``train.engine=local``: a trial is a function trainable, so many fit on a small
machine) and calls ``report`` after every epoch with the validation NDCG the
scheduler judges. A trial whose loss turns NaN ends with status ``diverged``; a
setting the model rejects raises its :class:`~recsys.errors.ConfigError` (the
search records it and goes on; when every trial raised, the run ends with it, or,
for an unexpected error, with :class:`~recsys.tune._ray.SearchFailed` and its traceback).

>>> from recsys.config import RecsysConfig
>>> from recsys.train.data import TrainingData
>>> data = TrainingData.from_arrays([0, 0, 1, 1], [0, 1, 2, 3], n_users=2, n_items=4, val_users=[1], val_items=[0])
>>> ctx = TrialContext(RecsysConfig(), "mf", data, {None: None}, epochs=2)
>>> reports = []
>>> run_trial({"train.lr": 0.01, "model.mf.dim": 4}, ctx, reports.append).status
'completed'
>>> [(r["epoch"], r["finished"]) for r in reports]
[(1, False), (2, True)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Optional

import numpy as np
import torch

from recsys.config import RecsysConfig
from recsys.train.checkpoint import FitState
from recsys.train.data import TrainingData
from recsys.train.loop import Distributed, fit
from recsys.tune.settings import with_settings

TEMPLATE = "encoder.template"
OBJECTIVE = "val_ndcg"


@dataclass
class TrialContext:
    """What every trial shares: the baseline config, the model searched, the data, item vectors per template."""

    cfg: RecsysConfig
    model: str
    data: TrainingData
    vectors: dict[Optional[str], Optional[np.ndarray]]   # None: the run's own item vectors
    epochs: Optional[int] = None                          # most epochs of a trial; None: train.epochs
    threads: int = 1
    plugin: Optional[str] = None                          # a plugin model's import path (pkg.module:Class)


def with_trial_settings(cfg: RecsysConfig, settings: Mapping[str, Any]) -> RecsysConfig:
    """``cfg`` with a trial's settings applied; ``encoder.template`` picks item vectors, not a setting.

    >>> with_trial_settings(RecsysConfig(), {"train.lr": 0.5, TEMPLATE: "{title}"}).train.lr
    0.5
    """
    return with_settings(cfg, {k: v for k, v in settings.items() if k != TEMPLATE})


def trial_config(ctx: TrialContext, settings: Mapping[str, Any]) -> RecsysConfig:
    """The baseline config with the trial's settings, trained in this process for at most ``ctx.epochs``.

    A ``train.epochs`` setting (a remedy's "+10 epochs") is the retrain's budget; a trial still stops
    at ``ctx.epochs``, the scheduler's ``max_t``, so its learning-rate schedule spans what it runs.

    >>> ctx = TrialContext(RecsysConfig(), "mf", None, {None: None}, epochs=3)
    >>> cfg = trial_config(ctx, {"train.lr": 0.01})
    >>> cfg.train.lr, cfg.train.epochs, cfg.train.engine
    (0.01, 3, 'local')
    >>> trial_config(ctx, {"train.epochs": 30}).train.epochs, trial_config(ctx, {"train.epochs": 2}).train.epochs
    (3, 2)
    """
    cfg = with_trial_settings(ctx.cfg, settings)
    epochs = cfg.train.epochs if ctx.epochs is None else min(cfg.train.epochs, ctx.epochs)
    return replace(cfg, train=replace(cfg.train, epochs=epochs, engine="local", use_gpu=False))


def item_vectors_for(ctx: TrialContext, settings: Mapping[str, Any]) -> Optional[np.ndarray]:
    """The item vectors of the trial's template (prepared before the search; see :mod:`recsys.tune.stage`)."""
    template = settings.get(TEMPLATE)
    if template not in ctx.vectors:
        from recsys.errors import ConfigError

        raise ConfigError(f"no item vectors were prepared for template {template!r}", setting=TEMPLATE,
                          hint="templates are embedded before the search; pin encoder.template in tune.space")
    return ctx.vectors[template]


def run_trial(settings: Mapping[str, Any], ctx: TrialContext, report: Callable[[dict], None]) -> FitState:
    """Train ``ctx.model`` with ``settings``; ``report`` gets ``{val_ndcg, best_val_ndcg, epoch, status, finished}``."""
    from recsys.models.registry import ensure_registered
    from recsys.train.stage import new_model

    ensure_registered(ctx.model, ctx.plugin)              # a trial runs in a Ray worker: import a plugin there
    cfg = trial_config(ctx, settings)
    model = new_model(ctx.model, cfg.model.for_model(ctx.model), ctx.data, item_vectors_for(ctx, settings),
                      cfg.train.seed)

    def on_epoch_end(model, best_state, optimizer, state: FitState, telemetry) -> None:
        diverged = state.status == "diverged"
        last = state.val_history[-1] if state.val_history and not diverged else 0.0
        best = state.best_metric if math.isfinite(state.best_metric) else 0.0
        report({OBJECTIVE: float(last), "best_val_ndcg": float(best), "epoch": int(state.epoch),
                "status": state.status, "where": state.where or "", "finished": state.status != "running"})

    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, ctx.threads))
    try:
        return fit(model, ctx.data, cfg.train, dist=Distributed(device=torch.device("cpu")),
                   on_epoch_end=on_epoch_end).state
    finally:
        torch.set_num_threads(previous)
