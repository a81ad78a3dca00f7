"""Tuning section: trials (objective vs trial by round and remedy), best so far, directed vs undirected, before/after.

Reads the ``trials`` table (columns ``round``, ``trial_id``, ``mode``, ``objective``,
``status``, ``origin_remedy``; and ``remedies``, ``val_curve``, ``stop_reason``,
``error``, ``model_variant`` when the schema has them) and the tuned models'
rows in ``metrics``/``comparisons`` (``<model>:directed``, ``<model>:undirected``).
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl

from recsys.report.html import plots
from recsys.report.html.data import RunData
from recsys.report.html.page import Section, esc, figure_html, fmt, note, table_html

OPTIONAL = ("remedies", "val_curve", "stop_reason", "error", "model_variant", "selected", "seeded_from")


def describe_note(note_item) -> str:
    """One applied (or skipped) space edit of the ``remedies`` column in words.

    >>> describe_note({"code": "UNDERFITTING", "edit": "scale_range x3", "param": "train.lr",
    ...                "before": "[0.001, 0.01]", "after": "[0.003, 0.03]", "status": "applied"})
    'UNDERFITTING: train.lr [0.001, 0.01] -> [0.003, 0.03] (scale_range x3, applied)'
    >>> describe_note("train.lr x3")
    'train.lr x3'
    """
    if not isinstance(note_item, dict):
        return str(note_item)
    change = f"{note_item.get('param', '?')} {note_item.get('before', '')} -> {note_item.get('after', '')}"
    extra = ", ".join(str(x) for x in (note_item.get("edit"), note_item.get("status"), note_item.get("reason")) if x)
    return f"{note_item.get('code', '?')}: {change} ({extra})" if extra else f"{note_item.get('code', '?')}: {change}"


def best_so_far(objectives) -> list[float]:
    """Running maximum, NaN entries (failed trials) skipped.

    >>> best_so_far([0.1, None, 0.3, 0.2])
    [0.1, 0.1, 0.3, 0.3]
    """
    out, best = [], np.nan
    for value in objectives:
        if value is not None and not np.isnan(value):
            best = value if np.isnan(best) else max(best, value)
        out.append(float(best))
    return out


def _ordered(trials: pl.DataFrame) -> pl.DataFrame:
    return trials.with_row_index("_written").sort("round", "_written").with_row_index("trial_no", offset=1)


def _scatter(trials: pl.DataFrame, by: str, title: str) -> str:
    groups, markers = {}, {}
    for (key, mode), group in trials.group_by([by, "mode"], maintain_order=True):
        name = f"{by} {key}" if by == "round" else f"{key or 'no remedy'}"
        name = f"{name} ({mode})" if mode else name
        groups[name] = (group["trial_no"].to_list(), group["objective"].to_list())
        markers[name] = "s" if mode == "undirected" else "o"
    lines = {}
    for (mode,), group in trials.group_by(["mode"], maintain_order=True):
        lines[f"best so far ({mode or 'all'})"] = (group["trial_no"].to_list(), best_so_far(group["objective"]))
    return plots.scatter_groups(groups, "trial (in order of rounds)", "objective", title=title,
                                markers=markers, lines=lines)


def trials_plots(data: RunData, trials: pl.DataFrame) -> str:
    trials = _ordered(trials)
    parts = [figure_html(_scatter(trials, "round", "objective per trial, by round"),
                         "circles: directed search; squares: undirected; lines: best objective so far per mode")]
    if trials["origin_remedy"].drop_nulls().len():
        parts.append(figure_html(_scatter(trials, "origin_remedy", "objective per trial, by originating remedy"),
                                 "colour = the finding whose remedy produced the trial's search space"))
    if "val_curve" in trials.columns and trials["val_curve"].drop_nulls().len():
        panels: dict[str, dict] = {}
        for trial_id, mode, curve in trials.select("trial_id", "mode", "val_curve").iter_rows():
            values = _json_list(curve)
            if values:
                panels.setdefault(mode or "trials", {})[str(trial_id)] = (list(range(1, len(values) + 1)), values)
        if panels:
            parts.append(figure_html(plots.line_panels(
                {k: dict(list(v.items())[:8]) for k, v in panels.items()}, "epoch", ylabel="val NDCG"),
                "per-epoch validation NDCG of the trials (at most 8 per mode)"))
    if "remedies" in trials.columns and trials["remedies"].drop_nulls().len():
        edits = (trials.filter(pl.col("remedies").is_not_null())
                 .select("round", "mode", "model", "remedies").unique(maintain_order=True))
        rows = [{"round": r, "mode": m, "model": model, "edit": describe_note(item)}
                for r, m, model, text in edits.iter_rows() for item in _json_list(text)]
        if rows:
            parts.append("<h3>Remedies applied to the search space, by round</h3>"
                         + table_html(pl.DataFrame(rows).unique(maintain_order=True)))
    shown = [c for c in ("round", "trial_id", "mode", "model", "objective", "status", "stopped_at",
                         "origin_remedy", *OPTIONAL) if c in trials.columns and c not in ("val_curve", "remedies")]
    table = trials.sort("objective", descending=True, nulls_last=True).select(shown)
    parts.append("<h3>Trials, best first</h3>" + table_html(table, max_rows=50))
    return "".join(parts)


def _json_list(text) -> list:
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return [text]
    return value if isinstance(value, list) else ([] if value is None else [value])


def _pairs(data: RunData, base_suffix: str, cand_suffix: str) -> list[tuple[str, str]]:
    models = set(data.tables["metrics"]["model"].to_list())
    return sorted((m.rsplit(":", 1)[0] + base_suffix, m) for m in models
                  if m.endswith(cand_suffix) and m.rsplit(":", 1)[0] + base_suffix in models)


def _panel(data: RunData, pairs: list[tuple[str, str]], heading: str, missing: str) -> str:
    if not pairs:
        return f"<h3>{esc(heading)}</h3>" + note(missing)
    metrics = data.headline().filter(pl.col("segment") == "all")
    comps = data.headline(data.tables["comparisons"]).filter(pl.col("segment") == "all")
    parts = [f"<h3>{esc(heading)}</h3>"]
    for base, cand in pairs:
        rows = metrics.filter(pl.col("model").is_in([base, cand]))
        for (dataset,), group in rows.group_by(["dataset"], maintain_order=True):
            group = group.sort(pl.col("model") == cand)
            parts.append(figure_html(plots.bars_with_ci(
                group["model"].to_list(), group["value"].to_list(), group["ci_low"].to_list(),
                group["ci_high"].to_list(), data.label, title=f"{base} vs {cand} [{dataset}]")))
        test = comps.filter((pl.col("baseline") == base) & (pl.col("candidate") == cand))
        if test.height:
            parts.append(table_html(test.select("dataset", "baseline", "candidate", "baseline_value",
                                                "candidate_value", "delta", "ci_low", "ci_high", "p_adjusted",
                                                "test")))
        else:
            parts.append(note(f"no paired test of {cand} against {base} in comparisons"))
    return "".join(parts)


def tuning(data: RunData) -> Section:
    """The tuning section; one line when the run has no trials."""
    trials = data.tables["trials"]
    if trials.is_empty():
        return Section("tuning", "Tuning", note("No tuning trials in this run (the tune stage did not run)."))
    done = trials.filter(pl.col("objective").is_not_null())
    summary = note(f"{trials.height} trials in {trials['round'].n_unique()} round(s); "
                   f"best objective {fmt(done['objective'].max()) if done.height else '-'}; "
                   f"status: {', '.join(f'{s} {n}' for s, n in trials.group_by('status').len().sort('status').iter_rows())}.")
    body = (summary + trials_plots(data, trials)
            + _panel(data, _pairs(data, ":undirected", ":directed"), "Directed vs undirected search",
                     "no model was tuned both ways (metrics of <model>:directed and <model>:undirected)")
            + _panel(data, _pairs(data, "", ":directed"), "Before and after tuning",
                     "no tuned model (<model>:directed) was evaluated"))
    return Section("tuning", "Tuning", body)
