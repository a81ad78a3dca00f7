"""Diagnosis section: findings ranked by severity (evidence, advice, remedy), feature importance, embedding health."""

from __future__ import annotations

import json

import polars as pl

from recsys.report.html import plots
from recsys.report.html.data import RunData
from recsys.report.html.page import Section, esc, figure_html, note, table_html

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def describe_edit(edit: dict) -> str:
    """One search-space edit in words.

    >>> describe_edit({"param": "train.lr", "op": "scale_range", "factor": 3.0})
    'train.lr: scale_range x3'
    >>> describe_edit({"param": "train.epochs", "op": "add", "value": 10})
    'train.epochs: add 10'
    """
    if not isinstance(edit, dict):
        return str(edit)
    amount = f"x{edit['factor']:g}" if isinstance(edit.get("factor"), (int, float)) else edit.get("value", "")
    return f"{edit.get('param', '?')}: {edit.get('op', '?')} {amount}".rstrip()


def _json(text: str | None):
    try:
        return json.loads(text) if text else None
    except (TypeError, ValueError):
        return text


def _finding_html(row: dict) -> str:
    severity = row["severity"] if row["severity"] in SEVERITY_ORDER else "info"
    where = ", ".join(x for x in (row["model"], row["dataset"]) if x)
    remedy = _json(row["remedy"])
    edits = "".join(f"<li>{esc(describe_edit(e))}</li>" for e in remedy) if isinstance(remedy, list) else ""
    evidence = _json(row["evidence"])
    evidence_text = json.dumps(evidence, indent=2, sort_keys=True) if not isinstance(evidence, str) else evidence
    return (
        f'<div class="finding {severity}"><span class="badge {severity}">{esc(severity)}</span> '
        f"<b>{esc(row['code'])}</b> <span class=\"muted\">{esc(where)} / {esc(row['component'])}</span>"
        f"<div>{esc(row['message'])}</div>"
        + (f"<div><i>What to do:</i> {esc(row['advice'])}</div>" if row["advice"] else "")
        + (f"<div><i>Remedy (search-space edits):</i><ul>{edits}</ul></div>" if edits else "")
        + (f"<details><summary>evidence</summary><pre>{esc(evidence_text)}</pre></details>" if evidence else "")
        + "</div>"
    )


def findings(data: RunData) -> str:
    """Every finding outside a search, worst first."""
    frame = data.tables["findings"].filter(pl.col("trial_id").is_null())
    if frame.is_empty():
        return note("No findings: diagnosis did not run, or found nothing to report.")
    frame = (frame.with_columns(pl.col("severity").replace_strict(SEVERITY_ORDER, default=3).alias("_order"))
             .sort("_order", "dataset", "model", "code", nulls_last=True))
    counts = frame.group_by("severity").len().sort("severity")
    summary = ", ".join(f"{n} {s}" for s, n in counts.iter_rows())
    return note(f"{frame.height} findings ({summary}), worst first.") + "".join(
        _finding_html(row) for row in frame.iter_rows(named=True))


def importance(data: RunData) -> str:
    """Per model and dataset: bars of the metric drop without each feature, with intervals."""
    frame = data.tables["feature_importance"]
    if frame.is_empty():
        return note("No feature importance in this run.")
    parts = []
    for (dataset, model), group in frame.sort("dataset", "model").group_by(["dataset", "model"],
                                                                             maintain_order=True):
        group = group.sort("method", "drop", descending=[False, True])
        labels = [f"{f} ({m}, {s})" for f, m, s in group.select("feature", "method", "split").iter_rows()]
        parts.append(f"<h3>Feature importance: {esc(model)} [{esc(dataset)}]</h3>")
        parts.append(figure_html(
            plots.bars_with_ci(labels, group["drop"].to_list(), group["ci_low"].to_list(),
                               group["ci_high"].to_list(), "metric drop without the feature"),
            "positive = the model relies on the feature (ablation, permutation: drop in the metric; "
            "grad_x_input: attribution share)"))
    return "".join(parts)


def embeddings(data: RunData) -> str:
    """The embedding health table."""
    frame = data.tables["embedding_health"]
    if frame.is_empty():
        return note("No embedding health rows in this run.")
    shown = frame.select("dataset", "model", "embedding", "n_rows", "dim", "effective_rank", "norm_mean",
                         "norm_std", "isotropy", "mean_cosine", "dead_rows")
    return note("effective rank far below dim, isotropy near 0 or a high mean cosine mean the vectors "
                "crowd into few directions; dead rows were never trained.") + table_html(shown)


def diagnosis(data: RunData) -> Section:
    """The diagnosis section."""
    body = ("<h3>Findings</h3>" + findings(data) + importance(data)
            + "<h3>Embedding health</h3>" + embeddings(data))
    return Section("diagnosis", "Diagnosis", body)
