"""Settings of the diagnosis-driven search (``tune.*``).

``space`` is the default search space in its nested YAML form (``configs/tune/default.yaml``,
see :mod:`recsys.tune.space`); the remedies of the diagnosis edit it round by round.

>>> cfg = TuneConfig()
>>> cfg.mode, searched_model(cfg, ["pop", "mf", "two_tower"]), cfg.rounds * cfg.trials
('directed', 'two_tower', 4)
>>> check_tune_config(TuneConfig(mode="guided"))
Traceback (most recent call last):
...
recsys.errors.ConfigError: setting 'tune.mode': unknown value 'guided'. What to do: use one of directed, undirected, both
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from recsys.errors import ConfigError

MODES = ("directed", "undirected", "both")


@dataclass
class TuneConfig:
    """Search budget, mode, scheduler and resources.

    ``mode``: ``directed`` (the diagnosis edits the space, Optuna's TPE searches it),
    ``undirected`` (random search over the whole default space, the same budget: the
    baseline of the claim) or ``both`` in one run. ``trials`` is the budget of one round;
    the undirected search gets ``rounds * trials`` trials.
    """

    enabled: bool = True               # false: the pipeline's tune stage does nothing
    model: Optional[str] = None         # the model searched; null: two_tower when trained, else the first trained
                                        # model other than pop
    rounds: int = 1
    trials: int = 4
    mode: str = "directed"              # directed | undirected | both
    seed: int = 0
    epochs: Optional[int] = 6           # most epochs of one trial (ASHA's max_t, at most train.epochs); null: train.epochs
    grace_period: int = 2               # ASHA: epochs every trial gets before it may be stopped
    reduction_factor: int = 2           # ASHA: keep the best 1/reduction_factor at each rung
    startup_trials: Optional[int] = None  # TPE: random trials before the model takes over (null: trials // 3, >= 2)
    cpus_per_trial: float = 1.0
    max_concurrent_trials: Optional[int] = None   # null: as many as the cluster's CPUs hold
    space: dict[str, Any] = field(default_factory=dict)   # the default space (configs/tune/default.yaml)


def searched_model(cfg: TuneConfig, trained: list[str]) -> Optional[str]:
    """The model the search tunes: ``tune.model``, or by default two_tower (when trained), else the first
    trained model other than pop; None when there is none.

    >>> searched_model(TuneConfig(), ["pop", "mf"]), searched_model(TuneConfig(), ["pop"])
    ('mf', None)
    """
    if cfg.model is not None:
        return cfg.model
    if "two_tower" in trained:
        return "two_tower"
    return next((name for name in trained if name != "pop"), None)


def _one_of(value, choices, setting: str) -> None:
    if value not in choices:
        raise ConfigError(f"unknown value {value!r}", setting=setting, hint=f"use one of {', '.join(choices)}")


def check_tune_config(cfg: TuneConfig) -> None:
    """Raise a :class:`ConfigError` naming the setting when ``cfg`` asks for something impossible."""
    _one_of(cfg.mode, MODES, "tune.mode")
    checks = [
        ("rounds", cfg.rounds >= 1, "use e.g. tune.rounds=2"),
        ("trials", cfg.trials >= 1, "use e.g. tune.trials=8"),
        ("epochs", cfg.epochs is None or cfg.epochs >= 1, "use e.g. tune.epochs=10"),
        ("grace_period", cfg.grace_period >= 1, "use e.g. tune.grace_period=2"),
        ("reduction_factor", cfg.reduction_factor >= 2, "use e.g. tune.reduction_factor=2"),
        ("cpus_per_trial", cfg.cpus_per_trial > 0, "use e.g. tune.cpus_per_trial=1"),
        ("max_concurrent_trials", cfg.max_concurrent_trials is None or cfg.max_concurrent_trials >= 1,
         "use a positive number, or null"),
        ("startup_trials", cfg.startup_trials is None or cfg.startup_trials >= 1, "use a positive number, or null"),
    ]
    for name, ok, hint in checks:
        if not ok:
            raise ConfigError(f"impossible value {getattr(cfg, name)!r}", setting=f"tune.{name}", hint=hint)
    if cfg.model == "pop":
        raise ConfigError("pop has nothing to search", setting="tune.model", hint="tune a trained model, e.g. two_tower")
