"""A plain-text diagnosis summary per model, worst first, for terminals and ``ray job logs``.

>>> from recsys.diagnose.finding import Finding
>>> from recsys.diagnose.remedies import remedy
>>> f = Finding("LR_TOO_HIGH", "warning", {"model": "mf", "layer": "item_embedding.weight"},
...             "median update/weight ratio 0.3 is above 0.1 (healthy about 1e-3)", {},
...             remedy("Lower the learning rate.", {"param": "train.lr", "op": "scale_range", "factor": 0.1}))
>>> print(summarize([f], models=["mf", "pop"]))
diagnosis: 1 finding (0 critical, 1 warning, 0 info) in 2 models
<BLANKLINE>
mf: 1 warning
  WARNING  LR_TOO_HIGH  layer=item_embedding.weight
           median update/weight ratio 0.3 is above 0.1 (healthy about 1e-3)
           remedy: Lower the learning rate.
           edits: train.lr x0.1
<BLANKLINE>
pop: no findings

On the pipeline's console each model takes one line (:func:`brief`); the text above is
the run's ``diagnosis.txt``.

>>> print(brief([f], models=["mf", "pop"]))
diagnosis: 1 finding (0 critical, 1 warning, 0 info) in 2 models
  mf: 1 warning: LR_TOO_HIGH
  pop: no findings
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

from recsys.diagnose.finding import SEVERITIES, Finding

WIDTH = 100
INDENT = " " * 11
HIDDEN_KEYS = ("model", "run_id", "dataset", "table")


def _counts(findings: list[Finding]) -> dict[str, int]:
    return {s: sum(f.severity == s for f in findings) for s in SEVERITIES}


def _wrap(label: str, text: str) -> list[str]:
    return textwrap.wrap(f"{label}{text}", width=WIDTH, initial_indent=INDENT, subsequent_indent=INDENT + "  ",
                         break_on_hyphens=False) or [INDENT + label]


def _finding_lines(f: Finding) -> list[str]:
    location = "  ".join(f"{k}={v}" for k, v in f.where.items() if k not in HIDDEN_KEYS)
    lines = [f"  {f.severity.upper():<8} {f.code}" + (f"  {location}" if location else "")]
    lines += _wrap("", f.message)
    lines += _wrap("remedy: ", f.remedy.advice)
    if f.remedy.edits:
        lines += _wrap("edits: ", "; ".join(e.describe() for e in f.remedy.edits))
    return lines


def _head(findings: list[Finding], groups: dict) -> str:
    counts = _counts(findings)
    return (f"diagnosis: {len(findings)} finding{'s' if len(findings) != 1 else ''} ("
            + ", ".join(f"{counts[s]} {s}" for s in reversed(SEVERITIES))
            + f") in {len(groups)} model{'s' if len(groups) != 1 else ''}")


def _groups(findings: list[Finding], models: Iterable[str]) -> list[tuple[str, list[Finding]]]:
    """Findings per model, the worst model first, each model's findings worst first."""
    groups: dict[str, list[Finding]] = {m: [] for m in models}
    for f in findings:
        groups.setdefault(f.model if f.model is not None else "(no model)", []).append(f)

    def worst(item: tuple[str, list[Finding]]) -> tuple:
        name, fs = item
        return (-max((f.rank for f in fs), default=-1), -len(fs), name)

    return [(name, sorted(fs, key=lambda f: (-f.rank, f.code))) for name, fs in sorted(groups.items(), key=worst)]


def brief(findings: list[Finding], models: Iterable[str] = (), codes: int = 3) -> str:
    """:func:`summarize` in one line per model: its counts and its ``codes`` worst finding codes."""
    groups = _groups(findings, models)
    if not groups:
        return "diagnosis: no findings"
    lines = [_head(findings, dict(groups))]
    for name, fs in groups:
        if not fs:
            lines.append(f"  {name}: no findings")
            continue
        c = _counts(fs)
        named = list(dict.fromkeys(f.code for f in fs))
        more = f", +{len(named) - codes} more" if len(named) > codes else ""
        lines.append(f"  {name}: " + ", ".join(f"{c[s]} {s}" for s in reversed(SEVERITIES) if c[s])
                     + ": " + ", ".join(named[:codes]) + more)
    return "\n".join(lines)


def summarize(findings: list[Finding], models: Iterable[str] = ()) -> str:
    """Per model (worst model first), findings ranked by severity, with message, advice and edits.

    ``models`` lists models to show even without findings. Findings without a model are grouped
    under ``(no model)``.
    """
    groups = _groups(findings, models)
    if not groups:
        return "diagnosis: no findings"
    lines = [_head(findings, dict(groups))]
    for name, fs in groups:
        lines.append("")
        if not fs:
            lines.append(f"{name}: no findings")
            continue
        c = _counts(fs)
        lines.append(f"{name}: " + ", ".join(f"{c[s]} {s}" for s in reversed(SEVERITIES) if c[s]))
        for f in fs:
            lines += _finding_lines(f)
    return "\n".join(lines)
