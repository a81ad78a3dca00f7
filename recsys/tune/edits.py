"""Diagnosis remedies → search-space edits: how each op of :data:`recsys.diagnose.remedies.OPS` changes a space.

A parameter the space does not search yet is added, starting from the baseline's own
value (``baseline(path)``): scaling an absent ``model.mf.dim`` of 64 by 2 pins it to 128,
``choice_add`` on an absent setting searches ``[baseline, value]``.

=============  ===================================================================================
op             effect on the parameter
=============  ===================================================================================
set            pinned to ``value``
enable         pinned to true
disable        pinned to false
scale_range    a range's ends (a choice's numbers, a pinned number) multiplied by ``factor``
add            a range's ends (a choice's numbers, a pinned number) shifted by ``value``
choice_add     ``value`` added to a choice; a pinned value becomes a choice; a range widened to reach it
remove_field   ``encoder.template`` pinned to the template without the ``[... {value} ...]`` part
=============  ===================================================================================

Results stay inside each setting's :data:`LIMITS` (a dropout of 0.95 becomes 0.9, a
depth of -1 becomes 0); an edit that cannot apply (a text setting scaled) is kept as
``skipped`` with the reason, never dropped silently.

>>> from recsys.tune.space import Param
>>> from recsys.diagnose.remedies import SpaceEdit
>>> space = {"train.lr": Param("loguniform", low=1e-3, high=1e-1)}
>>> new, note = apply_edit(space, SpaceEdit("train.lr", "scale_range", factor=0.1), baseline=lambda p: 0.5)
>>> new["train.lr"].describe(), note.status
('loguniform[0.0001, 0.01]', 'applied')
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Optional

from recsys.diagnose.finding import Finding
from recsys.diagnose.remedies import SpaceEdit
from recsys.errors import ConfigError
from recsys.tune.space import RANGE_TYPES, Param, Space

# (lowest, highest) a setting may take, by the last part of its path; None: unbounded on that side
LIMITS: dict[str, tuple[Optional[float], Optional[float]]] = {
    "dropout": (0.0, 0.9), "history_dropout": (0.0, 0.9), "id_dropout": (0.0, 0.9),
    "depth": (0, None), "layers": (1, None), "heads": (1, None), "dim": (1, None), "width": (1, None),
    "epochs": (1, None), "batch_size": (1, None), "negatives": (1, None), "max_len": (2, None),
    "max_history": (1, None), "patience": (0, None), "lr": (1e-8, None), "weight_decay": (0.0, None),
    "temperature": (1e-4, None), "grad_clip": (1e-6, None),
}

Baseline = Callable[[str], Any]


@dataclass(frozen=True)
class EditNote:
    """What one edit did: the finding it came from, the parameter before and after, applied or skipped (why)."""

    code: str
    edit: str
    param: str
    before: str
    after: str
    status: str                  # applied | skipped
    reason: str = ""

    def to_dict(self) -> dict[str, str]:
        out = {"code": self.code, "edit": self.edit, "param": self.param, "before": self.before,
               "after": self.after, "status": self.status}
        if self.reason:
            out["reason"] = self.reason
        return out


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _clamp(path: str, x: float, integer: bool) -> float:
    low, high = LIMITS.get(path.rsplit(".", 1)[-1], (None, None))
    if integer:
        x = int(round(x))
    if low is not None:
        x = max(x, low)
    if high is not None:
        x = min(x, high)
    return x


def _numeric_map(path: str, p: Param, fn: Callable[[float], float]) -> Param:
    """``p`` with ``fn`` applied to its numbers (range ends, choice numbers, pinned number)."""
    if p.type in RANGE_TYPES:
        integer = p.type == "int"
        low, high = _clamp(path, fn(p.low), integer), _clamp(path, fn(p.high), integer)
        if p.type == "loguniform" and low <= 0:
            raise ValueError("the range would reach zero on a log scale")
        return p.with_(low=min(low, high), high=max(low, high))
    if p.type == "choice":
        if not all(_is_number(v) for v in p.values):
            raise ValueError("the choice holds values that are not numbers")
        out: list = []
        for v in p.values:
            new = _clamp(path, fn(v), isinstance(v, int))
            if new not in out:
                out.append(new)
        return p.with_(values=tuple(out))
    if not _is_number(p.value):
        raise ValueError(f"the pinned value {p.value!r} is not a number")
    return p.with_(value=_clamp(path, fn(p.value), isinstance(p.value, int)))


def _choice_add(p: Param, value: Any) -> Param:
    if p.type == "choice":
        return p if value in p.values else p.with_(values=(*p.values, value))
    if p.type == "fixed":
        return p if p.value == value else Param("choice", values=(p.value, value))
    if not _is_number(value):
        raise ValueError(f"{value!r} is not a number, the parameter is a numeric range")
    if p.type == "loguniform" and value <= 0:
        raise ValueError(f"{value!r} cannot join a log-uniform range")
    return p.with_(low=min(p.low, value), high=max(p.high, value))


def _edited(path: str, p: Param, edit: SpaceEdit) -> Param:
    if edit.op == "set":
        return Param("fixed", value=edit.value)
    if edit.op in ("enable", "disable"):
        return Param("fixed", value=edit.op == "enable")
    if edit.op == "scale_range":
        return _numeric_map(path, p, lambda x: x * edit.factor)
    if edit.op == "add":
        return _numeric_map(path, p, lambda x: x + edit.value)
    if edit.op == "choice_add":
        return _choice_add(p, edit.value)
    if edit.op == "remove_field":
        from recsys.embed.templates import optional_fields, remove_field

        if p.type != "fixed" or not isinstance(p.value, str):
            raise ValueError("remove_field needs one pinned template text")
        if edit.value not in optional_fields(p.value):
            raise ValueError(f"the template has no optional field {edit.value!r}")
        return Param("fixed", value=remove_field(p.value, edit.value))
    raise ValueError(f"unknown op {edit.op!r}")


def apply_edit(space: Space, edit: SpaceEdit, baseline: Baseline, code: str = "") -> tuple[Space, EditNote]:
    """``space`` with ``edit`` applied (a new dict) and the note saying what happened."""
    current = space.get(edit.param)
    if current is None:
        value = baseline(edit.param)
        current = Param("fixed", value=value)
    before = current.describe() if edit.param in space else f"not searched (baseline {current.value!r})"
    try:
        after = _edited(edit.param, current, edit)
    except (ValueError, TypeError, ConfigError) as exc:
        return dict(space), EditNote(code, edit.describe(), edit.param, before, before, "skipped", str(exc))
    if edit.param not in space and after == current:
        return dict(space), EditNote(code, edit.describe(), edit.param, before, before, "skipped",
                                     "the baseline already has this value")
    return {**space, edit.param: after}, EditNote(code, edit.describe(), edit.param, before, after.describe(),
                                                  "applied")


def steering_findings(findings: Iterable[Finding], model: str) -> list[Finding]:
    """The findings that steer the search of ``model``: its warnings and criticals, worst first."""
    own = [f for f in findings if f.model == model and f.severity in ("warning", "critical")]
    return sorted(own, key=lambda f: -f.rank)


def tunable(param: str, model: str) -> bool:
    """Whether a remedy's setting can be searched for ``model``: training, encoder, or the model's own settings."""
    return param.startswith(("train.", "encoder.")) or param.startswith(f"model.{model}.")


def apply_remedies(space: Space, findings: Iterable[Finding], model: str,
                   baseline: Baseline) -> tuple[Space, list[EditNote]]:
    """Apply the remedy edits of ``model``'s warning and critical findings to ``space``, worst finding first.

    A setting a worse finding already edited is not edited again by a milder one (a critical
    LOSS_DIVERGENCE lowers the learning rate; a warning UNDERFITTING does not raise it back);
    findings of equal severity compose. Edits of other models' settings are skipped too; every
    edit leaves an :class:`EditNote` saying what happened and why.
    """
    notes: list[EditNote] = []
    steered: dict[str, Finding] = {}         # setting -> the first (worst) finding that edited it
    for finding in steering_findings(findings, model):
        for edit in finding.remedy.edits:
            first = steered.get(edit.param)
            if not tunable(edit.param, model):
                reason = f"not a setting of {model}"
            elif first is not None and first.rank > finding.rank:
                reason = f"already steered by {first.code} ({first.severity})"
            else:
                space, note = apply_edit(space, edit, baseline, finding.code)
                notes.append(note)
                if note.status == "applied":
                    steered.setdefault(edit.param, finding)
                continue
            notes.append(EditNote(finding.code, edit.describe(), edit.param, "", "", "skipped", reason))
    return space, notes
