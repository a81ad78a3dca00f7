"""The key numbers on a stage's done line, read from what the stage left in the run's state.

>>> from recsys.run_state import RunState
>>> stage_summary("diagnose", RunState(cfg=None, writer=None))
''
"""

from __future__ import annotations

import logging
from typing import Callable

from recsys.console import format_count, format_seconds


def stage_summary(stage: str, run) -> str:
    """The key numbers of ``stage`` from what it left in ``run`` (a :class:`~recsys.run_state.RunState`).

    >>> from recsys.run_state import RunState, TrainedModelRecord
    >>> run = RunState(cfg=None, writer=None, models={
    ...     "pop": TrainedModelRecord("p.pt", status="completed", epochs=0, best_val=0.2154),
    ...     "mf": TrainedModelRecord("m.pt", status="completed", epochs=2, best_val=0.0401, seconds=75.2)})
    >>> stage_summary("train", run)
    'pop best val 0.2154; mf 2 epochs, best val 0.0401, 1m15s'
    >>> stage_summary("tune", RunState(cfg=None, writer=None))
    ''
    """
    summarise = _SUMMARIES.get(stage)
    try:
        return summarise(run) if summarise is not None else ""
    except Exception as exc:  # noqa: BLE001 - a summary line never fails a run
        logging.getLogger(__name__).debug("no summary for stage %s: %s", stage, exc)
        return ""


def _prepare_summary(run) -> str:
    if run.prepared is None:
        return ""
    rows = {row["stage"]: row for row in run.prepared.audit_rows()}
    kept = rows.get("filtered") or rows.get("loaded")
    text = (f"{format_count(kept['n_rows'])} interactions, {format_count(kept['n_users'])} users, "
            f"{format_count(kept['n_items'])} items")
    splits = [f"{name} {format_count(rows[name]['n_rows'])}" for name in ("train", "val", "test") if name in rows]
    return text + (f" ({', '.join(splits)})" if splits else "")


def _embed_summary(run) -> str:
    result = run.embedding.result if run.embedding is not None else None
    if result is None:
        return "item vectors reused" if run.embedding is not None else ""
    counts = result.counts
    return (f"{format_count(counts.get('n_items', 0))} items, {format_count(counts.get('n_encoded', 0))} embedded, "
            f"{format_count(counts.get('n_cached', 0))} from the cache")


def _train_summary(run) -> str:
    parts = []
    for name, record in run.models.items():
        bits = [f"{record.epochs} epochs"] if record.epochs else []
        if record.best_val is not None:
            bits.append(f"best val {record.best_val:.4f}")
        if record.seconds is not None:
            bits.append(format_seconds(record.seconds))
        if record.status not in (None, "completed", "early_stopped"):
            bits.append(str(record.status))
        parts.append(f"{name} {', '.join(bits)}".strip())
    return "; ".join(parts)


def _evaluate_summary(run) -> str:
    if run.evaluation is None:
        return ""
    users: dict[str, int] = {}
    for per_split in run.evaluation.rows.values():
        for split, rows in per_split.items():
            users[split] = max(users.get(split, 0), int(rows.n_users))
    return f"{len(run.evaluation.rows)} models, users evaluated: " + ", ".join(
        f"{split} {format_count(n)}" for split, n in users.items())


def _diagnose_summary(run) -> str:
    if run.diagnosis is None:
        return ""
    counts = {severity: 0 for severity in ("critical", "warning", "info")}
    for finding in run.diagnosis.findings:
        counts[finding.severity] = counts.get(finding.severity, 0) + 1
    return f"{len(run.diagnosis.findings)} findings (" + ", ".join(f"{n} {s}" for s, n in counts.items()) + ")"


def _tune_summary(run) -> str:
    if not run.tune:
        return "" if run.cfg is None or run.cfg.tune.enabled else "skipped (tune.enabled=false)"
    parts = []
    for mode, result in run.tune.items():
        trials = sum(len(r.trials) for r in result.rounds)
        parts.append(f"{mode}: {len(result.rounds)} rounds, {trials} trials")
    return "; ".join(parts)


_SUMMARIES: dict[str, Callable] = {
    "prepare": _prepare_summary, "embed": _embed_summary, "train": _train_summary,
    "evaluate": _evaluate_summary, "diagnose": _diagnose_summary, "tune": _tune_summary,
}
