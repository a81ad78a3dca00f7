"""Search spaces as data, and the one place they become Ray Tune objects.

A space maps a setting path (``train.lr``, ``model.two_tower.depth``) to a
:class:`Param`. In ``configs/tune/default.yaml`` it is written as a nested mapping whose
leaves carry a ``type``::

    train:
      lr: {type: loguniform, low: 1.0e-4, high: 1.0e-2}
    model:
      two_tower:
        depth: {type: int, low: 0, high: 2}
        pooling: {type: choice, values: [mean, attention]}

=============  =====================  ===============================================
type           fields                 sampled as
=============  =====================  ===============================================
loguniform     low, high (> 0)        ``tune.loguniform(low, high)``
uniform        low, high              ``tune.uniform(low, high)``
int            low, high (inclusive)  ``tune.randint(low, high + 1)``
choice         values (non-empty)     ``tune.choice(values)``
fixed          value                  the value itself (not searched)
=============  =====================  ===============================================

>>> space = space_from_mapping({"train": {"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2}},
...                             "model": {"mf": {"dim": {"type": "choice", "values": [32, 64]}},
...                                       "two_tower": {"depth": {"type": "int", "low": 0, "high": 2}}}})
>>> sorted(for_model(space, "mf"))
['model.mf.dim', 'train.lr']
>>> space["train.lr"].describe()
'loguniform[0.0001, 0.01]'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Optional

from recsys.errors import ConfigError

TYPES = ("loguniform", "uniform", "int", "choice", "fixed")
RANGE_TYPES = ("loguniform", "uniform", "int")

Space = dict[str, "Param"]


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class Param:
    """One searched (or pinned) setting; construction checks it.

    >>> Param("int", low=3, high=1)
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: search space parameter int[3, 1]: low 3 is above high 1. What to do: write low <= high
    """

    type: str
    low: Optional[float] = None
    high: Optional[float] = None
    values: tuple = ()
    value: Any = None

    def __post_init__(self) -> None:
        def fail(problem: str, hint: str) -> None:
            raise ConfigError(f"search space parameter {self.describe()}: {problem}", hint=hint)

        if self.type not in TYPES:
            fail(f"unknown type {self.type!r}", f"use one of {', '.join(TYPES)}")
        if self.type in RANGE_TYPES:
            if not (_number(self.low) and _number(self.high)):
                fail("needs numeric low and high", "e.g. {type: uniform, low: 0.0, high: 0.3}")
            if self.low > self.high:
                fail(f"low {self.low:g} is above high {self.high:g}", "write low <= high")
            if self.type == "loguniform" and self.low <= 0:
                fail("a log-uniform range needs low > 0", "use a positive low, or type uniform")
            if self.type == "int" and (int(self.low) != self.low or int(self.high) != self.high):
                fail("an int range needs whole low and high", "e.g. {type: int, low: 0, high: 2}")
        if self.type == "choice" and not self.values:
            fail("a choice needs at least one value", "e.g. {type: choice, values: [mean, attention]}")

    def describe(self) -> str:
        if self.type in RANGE_TYPES:
            return f"{self.type}[{self.low:g}, {self.high:g}]" if _number(self.low) and _number(self.high) \
                else f"{self.type}[{self.low}, {self.high}]"
        if self.type == "choice":
            return "choice" + repr(list(self.values))
        return f"fixed {self.value!r}" if self.type == "fixed" else self.type

    def contains(self, value: Any) -> bool:
        """Whether ``value`` can be drawn from this parameter.

        >>> Param("loguniform", low=1e-4, high=1e-2).contains(0.5), Param("choice", values=(1, 2)).contains(2)
        (False, True)
        """
        if self.type in RANGE_TYPES:
            return _number(value) and self.low <= value <= self.high
        if self.type == "choice":
            return value in self.values
        return value == self.value

    @property
    def searched(self) -> bool:
        """Whether the search draws this parameter (False: fixed, an empty range or a single choice).

        >>> Param("int", low=2, high=2).searched, Param("choice", values=(1, 2)).searched
        (False, True)
        """
        if self.type in RANGE_TYPES:
            return self.low < self.high
        return self.type == "choice" and len(self.values) > 1

    def nearest(self, value: Any) -> Any:
        """``value`` if this parameter can draw it; else a range's nearest end, or a choice's first option.

        >>> Param("loguniform", low=0.01, high=0.1).nearest(1.0), Param("int", low=0, high=2).nearest(1)
        (0.1, 1)
        >>> Param("choice", values=("mean", "attention")).nearest("max")
        'mean'
        """
        if self.contains(value):
            return int(value) if self.type == "int" else value
        if self.type in RANGE_TYPES:
            near = self.low if not _number(value) or value < self.low else self.high
            return int(near) if self.type == "int" else near
        return self.values[0] if self.type == "choice" else self.value

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.type in RANGE_TYPES:
            out.update(low=self.low, high=self.high)
        elif self.type == "choice":
            out["values"] = list(self.values)
        else:
            out["value"] = self.value
        return out

    def with_(self, **changes: Any) -> "Param":
        return replace(self, **changes)


def param_from_mapping(spec: Mapping[str, Any], path: str) -> Param:
    """A :class:`Param` from its YAML form; errors name the setting path.

    >>> param_from_mapping({"type": "choice", "values": [32, 64]}, "model.mf.dim").values
    (32, 64)
    """
    known = {"type", "low", "high", "values", "value"}
    unknown = sorted(set(map(str, spec)) - known)
    if unknown:
        raise ConfigError(f"search space entry {path!r} has unknown key(s) {unknown}", setting=f"tune.space.{path}",
                          hint=f"an entry takes {', '.join(sorted(known))}")
    try:
        return Param(str(spec["type"]), low=spec.get("low"), high=spec.get("high"),
                     values=tuple(spec.get("values") or ()), value=spec.get("value"))
    except ConfigError as err:
        raise ConfigError(f"search space entry {path!r}: {err.problem}", setting=f"tune.space.{path}",
                          hint=err.hint) from None


def space_from_mapping(tree: Mapping[str, Any], prefix: str = "") -> Space:
    """Flatten the nested YAML form into ``{setting path: Param}``; a mapping with ``type`` is a leaf."""
    space: Space = {}
    for key, node in tree.items():
        path = f"{prefix}{key}"
        if isinstance(node, Mapping) and "type" in node:
            space[path] = param_from_mapping(node, path)
        elif isinstance(node, Mapping):
            space.update(space_from_mapping(node, f"{path}."))
        else:
            raise ConfigError(f"search space entry {path!r} is {node!r}, not a parameter",
                              setting=f"tune.space.{path}",
                              hint="write {type: ..., ...} at the leaves (see recsys.tune.space)")
    return space


def for_model(space: Space, model: str) -> Space:
    """The parameters that apply to ``model``: every non-``model.`` setting plus ``model.<model>.*``."""
    own = f"model.{model}."
    return {path: p for path, p in space.items() if not path.startswith("model.") or path.startswith(own)}


def to_tune(space: Space) -> dict[str, Any]:
    """The Ray Tune ``param_space`` of ``space`` (keys are the setting paths).

    >>> sorted(to_tune({"train.lr": Param("loguniform", low=1e-4, high=1e-2),
    ...                 "train.epochs": Param("fixed", value=3)}).items())[0]
    ('train.epochs', 3)
    """
    from ray import tune

    def one(p: Param) -> Any:
        if not p.searched:
            return p.value if p.type == "fixed" else p.values[0] if p.type == "choice" else p.nearest(p.low)
        if p.type == "loguniform":
            return tune.loguniform(p.low, p.high)
        if p.type == "uniform":
            return tune.uniform(p.low, p.high)
        if p.type == "int":
            return tune.randint(int(p.low), int(p.high) + 1)
        return tune.choice(list(p.values))

    return {path: one(p) for path, p in space.items()}


def start_point(space: Space, values: Mapping[str, Any]) -> dict[str, Any]:
    """The first configuration a search evaluates: ``values`` (e.g. the baseline's settings) on every
    searched parameter, moved to the nearest value the space can draw where it lies outside.

    Searchers need a complete point, so a parameter missing from ``values`` makes the whole point
    empty (nothing is seeded).

    >>> space = {"train.lr": Param("loguniform", low=0.01, high=0.1), "train.epochs": Param("fixed", value=3),
    ...          "model.mf.dim": Param("choice", values=(32, 64))}
    >>> start_point(space, {"train.lr": 1.0, "model.mf.dim": 64, "train.epochs": 20})
    {'train.lr': 0.1, 'model.mf.dim': 64}
    >>> start_point(space, {"train.lr": 0.05})
    {}
    """
    searched = {path: p for path, p in space.items() if p.searched}
    if any(path not in values for path in searched):
        return {}
    return {path: p.nearest(values[path]) for path, p in searched.items()}


def describe_space(space: Space) -> list[str]:
    """One line per parameter, sorted by path, for logs and the trials table."""
    return [f"{path} {p.describe()}" for path, p in sorted(space.items())]
