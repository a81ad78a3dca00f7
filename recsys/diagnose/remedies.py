"""Remedies: advice for a person plus structured edits of the search space that tuning can apply.

An edit names a setting by the path users type (``train.lr``, ``model.two_tower.depth``,
``encoder.template``) and one operation from :data:`OPS`, the only place the
operations are defined:

=============  ================  ===================================================================
op             argument          meaning for the search space of the next round
=============  ================  ===================================================================
set            value             fix the setting to ``value``
scale_range    factor (> 0)      multiply a numeric setting, or both ends of its range, by ``factor``
add            value (number)    add ``value`` to a numeric setting, or to both ends of its range
choice_add     value             add ``value`` to the choices searched for the setting
enable         -                 turn a boolean setting on
disable        -                 turn a boolean setting off
remove_field   value (text)      drop the optional ``[... {value} ...]`` part of a text template
=============  ================  ===================================================================

>>> edit = validate_edit({"param": "train.lr", "op": "scale_range", "factor": 0.1})
>>> edit.to_dict()
{'param': 'train.lr', 'op': 'scale_range', 'factor': 0.1}
>>> validate_edit({"param": "train.lr", "op": "scale", "factor": 0.1})
Traceback (most recent call last):
...
recsys.errors.ConfigError: remedy edit {'param': 'train.lr', 'op': 'scale', 'factor': 0.1}: unknown op 'scale'. What to do: use one of set, scale_range, add, choice_add, enable, disable, remove_field
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Optional

from recsys.errors import ConfigError


@dataclass(frozen=True)
class OpSpec:
    """Which argument an operation takes: ``value``, ``factor`` or nothing, and what kind."""

    argument: Optional[str]      # "value", "factor" or None
    kind: str                    # any | number | positive | text | none


OPS: dict[str, OpSpec] = {
    "set": OpSpec("value", "any"),
    "scale_range": OpSpec("factor", "positive"),
    "add": OpSpec("value", "number"),
    "choice_add": OpSpec("value", "any"),
    "enable": OpSpec(None, "none"),
    "disable": OpSpec(None, "none"),
    "remove_field": OpSpec("value", "text"),
}

_SEGMENT = r"[A-Za-z0-9_@-]+"
_PARAM = re.compile(rf"^[A-Za-z_][A-Za-z0-9_]*(\.{_SEGMENT})+$")
_JSON_SCALARS = (str, int, float, bool, type(None))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _json_value(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_json_value(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, _JSON_SCALARS)


@dataclass(frozen=True)
class SpaceEdit:
    """One search-space edit; construction validates it (see :data:`OPS`).

    >>> SpaceEdit("model.two_tower.depth", "add", value=1).to_dict()
    {'param': 'model.two_tower.depth', 'op': 'add', 'value': 1}
    """

    param: str
    op: str
    value: Any = None
    factor: Optional[float] = None

    def __post_init__(self) -> None:
        where = repr(self.to_dict())

        def fail(problem: str, hint: str) -> None:
            raise ConfigError(f"remedy edit {where}: {problem}", hint=hint)

        if not isinstance(self.param, str) or not _PARAM.match(self.param):
            fail(f"param {self.param!r} is not a dotted setting path", "name a setting like train.lr")
        spec = OPS.get(self.op)
        if spec is None:
            fail(f"unknown op {self.op!r}", f"use one of {', '.join(OPS)}")
        if spec.argument != "value" and self.value is not None:
            fail(f"op '{self.op}' takes no value", "drop 'value'")
        if spec.argument != "factor" and self.factor is not None:
            fail(f"op '{self.op}' takes no factor", "drop 'factor'")
        if spec.kind == "positive" and not (_is_number(self.factor) and self.factor > 0):
            fail(f"op '{self.op}' needs a finite factor > 0, got {self.factor!r}", "e.g. factor: 0.1")
        if spec.kind == "number" and not (_is_number(self.value) and self.value != 0):
            fail(f"op '{self.op}' needs a finite non-zero number, got {self.value!r}", "e.g. value: 1")
        if spec.kind == "text" and not (isinstance(self.value, str) and self.value):
            fail(f"op '{self.op}' needs a non-empty text value, got {self.value!r}", "e.g. value: description")
        if spec.kind == "any" and not _json_value(self.value):
            fail(f"op '{self.op}' needs a JSON scalar or list value, got {self.value!r}", "e.g. value: 1.0")

    def describe(self) -> str:
        """The edit in a few words, for terminal summaries.

        >>> SpaceEdit("train.lr", "scale_range", factor=0.1).describe()
        'train.lr x0.1'
        """
        text = {
            "set": f"= {self.value!r}",
            "scale_range": f"x{self.factor:g}" if self.factor is not None else "",
            "add": f"{self.value:+g}" if _is_number(self.value) else "",
            "choice_add": f"also try {self.value!r}",
            "enable": "on",
            "disable": "off",
            "remove_field": f"without {{{self.value}}}",
        }[self.op]
        return f"{self.param} {text}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"param": self.param, "op": self.op}
        spec = OPS.get(self.op)
        if spec is not None and spec.argument == "value":
            out["value"] = list(self.value) if isinstance(self.value, tuple) else self.value
        elif self.value is not None:
            out["value"] = self.value
        if self.factor is not None:
            out["factor"] = self.factor
        return out


def validate_edit(edit: Mapping[str, Any]) -> SpaceEdit:
    """Check a dict edit (keys ``param``, ``op`` and the op's argument only) and return it as a :class:`SpaceEdit`.

    >>> validate_edit({"param": "train.grad_clip", "op": "set", "value": 1.0}).value
    1.0
    """
    if not isinstance(edit, Mapping):
        raise ConfigError(f"remedy edit {edit!r} is not a mapping", hint="write {param: ..., op: ...}")
    unknown = set(edit) - {"param", "op", "value", "factor"}
    if unknown or "param" not in edit or "op" not in edit:
        raise ConfigError(f"remedy edit {dict(edit)!r}: needs keys param and op, plus value or factor; "
                          f"unknown keys: {sorted(map(str, unknown))}", hint="see recsys.diagnose.remedies.OPS")
    spec = OPS.get(edit["op"])
    if spec is not None and spec.argument == "value" and "value" not in edit:
        raise ConfigError(f"remedy edit {dict(edit)!r}: op '{edit['op']}' needs a value", hint="add value: ...")
    return SpaceEdit(edit["param"], edit["op"], value=edit.get("value"), factor=edit.get("factor"))


@dataclass(frozen=True)
class Remedy:
    """Advice for a person and the edits that carry it out (possibly none).

    >>> r = remedy("Lower the learning rate.", {"param": "train.lr", "op": "scale_range", "factor": 0.1})
    >>> r.edit_dicts()
    [{'param': 'train.lr', 'op': 'scale_range', 'factor': 0.1}]
    """

    advice: str
    edits: tuple[SpaceEdit, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.advice, str) or not self.advice.strip():
            raise ConfigError("a remedy needs advice text", hint="say what to change and why")
        if not all(isinstance(e, SpaceEdit) for e in self.edits):
            raise ConfigError(f"remedy edits must be SpaceEdit objects, got {self.edits!r}",
                              hint="build them with validate_edit")

    def edit_dicts(self) -> list[dict[str, Any]]:
        return [e.to_dict() for e in self.edits]


def remedy(advice: str, *edits: Optional[Mapping[str, Any]]) -> Remedy:
    """Build a :class:`Remedy` from advice and dict edits, validating each edit (None entries are skipped).

    >>> remedy("Add a layer.", {"param": "model.mf.dim", "op": "scale_range", "factor": 2}).edits[0].factor
    2
    """
    return Remedy(advice, tuple(validate_edit(e) for e in edits if e is not None))


def model_edit(model: Optional[str], name: str, op: str, **argument: Any) -> Optional[dict[str, Any]]:
    """An edit of ``model.<model>.<name>``, or None when there is no model or its name cannot be part
    of a setting path.

    >>> model_edit("two_tower", "depth", "add", value=1)
    {'param': 'model.two_tower.depth', 'op': 'add', 'value': 1}
    >>> model_edit("my model", "depth", "add", value=1) is None
    True
    """
    if not isinstance(model, str) or not re.fullmatch(_SEGMENT, model):
        return None
    return {"param": f"model.{model}.{name}", "op": op, **argument}


def applicable(rem: Remedy, known_params: Iterable[str]) -> Remedy:
    """Keep only the edits whose ``param`` is in ``known_params`` (e.g. the settings a model really has).

    >>> r = remedy("x", {"param": "model.mf.dropout", "op": "set", "value": 0.1},
    ...            {"param": "train.lr", "op": "scale_range", "factor": 0.5})
    >>> [e.param for e in applicable(r, {"train.lr", "model.mf.dim"}).edits]
    ['train.lr']
    """
    known = set(known_params)
    return Remedy(rem.advice, tuple(e for e in rem.edits if e.param in known))
