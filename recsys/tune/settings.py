"""Read and replace settings of a :class:`~recsys.config.RecsysConfig` by the dotted paths users type.

A trial's configuration is a flat ``{path: value}`` mapping (``{"train.lr": 0.003,
"model.two_tower.depth": 1}``); :func:`with_settings` returns a new config with
those values, checked against the dataclass tree (an unknown path or a value of the
wrong kind is a :class:`~recsys.errors.ConfigError` naming the path).

>>> from recsys.config import RecsysConfig
>>> cfg = with_settings(RecsysConfig(), {"train.lr": 0.003, "model.two_tower.depth": 1.0})
>>> cfg.train.lr, cfg.model.two_tower.depth, get_setting(cfg, "model.two_tower.pooling")
(0.003, 1, 'mean')
>>> with_settings(RecsysConfig(), {"train.lrate": 0.1})
Traceback (most recent call last):
...
recsys.errors.ConfigError: setting 'train.lrate': no such setting. What to do: settings of train include batch_size, checkpoint_dir, cpus_per_worker, engine, epochs, grad_clip, instrument, log_every, loss, lr, lr_schedule, max_failures, negative_sampling, negatives, num_workers, optimizer, patience, probe_every, seed, use_gpu, val_k, val_memory_budget_mb, weight_decay
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from recsys.errors import ConfigError

_MISSING = object()


def _child(node: Any, name: str, path: str) -> Any:
    if not dataclasses.is_dataclass(node) or name not in {f.name for f in dataclasses.fields(node)}:
        where = path.rsplit(".", 1)[0] if "." in path else "the config"
        names = sorted(f.name for f in dataclasses.fields(node)) if dataclasses.is_dataclass(node) else []
        raise ConfigError("no such setting", setting=path,
                          hint=f"settings of {where} include {', '.join(names)}" if names else
                          f"{where} has no sub-settings")
    return getattr(node, name)


def get_setting(cfg: Any, path: str) -> Any:
    """The value at ``path`` (a :class:`ConfigError` naming it when there is none)."""
    node = cfg
    for name in path.split("."):
        node = _child(node, name, path)
    return node


def _coerce(current: Any, value: Any, path: str) -> Any:
    if current is None or value is None:
        return value
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(current, int):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer():
            return int(value)
    elif isinstance(current, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(current, str):
        if isinstance(value, str):
            return value
    else:
        return value
    raise ConfigError(f"value {value!r} does not fit a setting of type {type(current).__name__}", setting=path,
                      hint=f"give a {type(current).__name__} like the default {current!r}")


def _replace(node: Any, names: list[str], value: Any, path: str) -> Any:
    current = _child(node, names[0], path)
    if len(names) == 1:
        return dataclasses.replace(node, **{names[0]: _coerce(current, value, path)})
    return dataclasses.replace(node, **{names[0]: _replace(current, names[1:], value, path)})


def with_settings(cfg: Any, settings: Mapping[str, Any]) -> Any:
    """A copy of ``cfg`` with every ``path: value`` of ``settings`` applied (``cfg`` is not changed)."""
    for path, value in settings.items():
        cfg = _replace(cfg, path.split("."), value, path)
    return cfg
