"""Overview and evaluation sections: run facts, leaderboards with intervals, segments, datasets, significance."""

from __future__ import annotations

import json

import numpy as np
import polars as pl

from recsys.report.html import plots
from recsys.report.html.data import RunData, same_k
from recsys.report.html.page import Section, esc, figure_html, fmt, note, table_html

LEADERBOARD_METRICS = (("ndcg", 10), ("recall", 10), ("hit_rate", 10), ("mrr", 10), ("coverage", 10),
                       ("novelty", 10))


def _protocol(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows of one ranking protocol: full ranking when present, else the first one."""
    if frame.is_empty() or "protocol" not in frame.columns:
        return frame
    protocols = [p for p in frame["protocol"].unique().to_list() if p is not None]
    if not protocols:
        return frame
    chosen = "full" if "full" in protocols else sorted(protocols)[0]
    return frame.filter(pl.col("protocol").is_null() | (pl.col("protocol") == chosen))


def overview(data: RunData) -> Section:
    """What ran: status, times, datasets, models, stages, data sizes and the comparison lines."""
    run = data.run
    duration = ("-" if run["ended_at"] is None
                else f"{(run['ended_at'] - run['started_at']).total_seconds():.1f} s")
    facts = pl.DataFrame({
        "field": ["run", "status", "started", "duration", "datasets", "models", "stages", "error", "directory"],
        "value": [data.run_id, run["status"], f"{run['started_at']:%Y-%m-%d %H:%M:%S} UTC", duration,
                  ", ".join(data.datasets) or "-", ", ".join(data.models) or "-",
                  ", ".join(json.loads(run["stages"] or "[]")) or "-", run["error"] or "-", str(data.run_dir)],
    })
    parts = [table_html(facts)]
    sizes = data.tables["datasets"]
    if sizes.height:
        parts.append("<h3>Data</h3>")
        parts.append(table_html(sizes.select("dataset", "stage", "n_rows", "n_users", "n_items",
                                             "n_cold_users", "n_cold_items", "n_leakage_rows")))
    insights = data.tables["insights"]
    if insights.height:
        parts.append("<h3>What the comparison says</h3><ul>")
        parts += [f"<li>[{esc(d or 'all datasets')}] {esc(t)}</li>"
                  for d, t in insights.select("dataset", "text").iter_rows()]
        parts.append("</ul>")
    config = json.dumps(data.config, indent=2, sort_keys=True)
    parts.append(f"<details><summary>configuration</summary><pre>{esc(config)}</pre></details>")
    return Section("overview", "Overview", "".join(parts))


def _leaderboard_table(frame: pl.DataFrame, order: list[str]) -> str:
    rows = []
    for model in order:
        row = {"model": model}
        for metric, k in LEADERBOARD_METRICS:
            hit = frame.filter((pl.col("model") == model) & (pl.col("metric") == metric) & same_k(k))
            if hit.height:
                r = hit.row(0, named=True)
                ci = "" if r["ci_low"] is None else f" [{fmt(r['ci_low'], 3)}, {fmt(r['ci_high'], 3)}]"
                row[f"{metric}@{k}"] = f"{fmt(r['value'], 3)}{ci}"
        rows.append(row)
    return table_html(pl.DataFrame(rows))


def leaderboard(data: RunData) -> str:
    """Per dataset: models ranked by the headline metric with intervals (bars), and a table of key metrics."""
    overall = _protocol(data.tables["metrics"].filter((pl.col("segment") == "all")
                                                      & (pl.col("split") == data.split)))
    if overall.is_empty():
        return note("No evaluation metrics in this run (the evaluate stage did not run).")
    parts = []
    for dataset in sorted(set(overall["dataset"].to_list())):
        rows = overall.filter(pl.col("dataset") == dataset)
        head = data.headline(rows).sort("value", descending=True, nulls_last=True)
        order = head["model"].to_list() or sorted(set(rows["model"].to_list()))
        parts.append(f"<h3>Leaderboard: {esc(dataset)} ({esc(data.split)} split)</h3>")
        if head.height:
            parts.append(figure_html(
                plots.bars_with_ci(order, head["value"].to_list(), head["ci_low"].to_list(),
                                   head["ci_high"].to_list(), data.label),
                f"{data.label} per model with its confidence interval (segment all)"))
        parts.append(_leaderboard_table(rows, order))
    return "".join(parts)


def segments(data: RunData) -> str:
    """Heatmap per dataset: models x segments, the headline metric in each cell."""
    rows = _protocol(data.headline())
    if rows.is_empty():
        return note("No metrics by segment in this run.")
    parts = []
    for dataset in sorted(set(rows["dataset"].to_list())):
        sub = rows.filter(pl.col("dataset") == dataset)
        models = sub.filter(pl.col("segment") == "all").sort("value", descending=True)["model"].to_list()
        models += sorted(set(sub["model"].to_list()) - set(models))
        segs = ["all"] + sorted(set(sub["segment"].to_list()) - {"all"})
        values = {(m, s): v for m, s, v in sub.select("model", "segment", "value").iter_rows()}
        matrix = np.array([[values.get((m, s), np.nan) if values.get((m, s)) is not None else np.nan
                            for s in segs] for m in models])
        notes = [[fmt(values.get((m, s)), 2) if values.get((m, s)) is not None else "" for s in segs]
                 for m in models]
        parts.append(f"<h3>Metrics by segment: {esc(dataset)}</h3>")
        parts.append(figure_html(plots.heatmap(matrix, models, segs, colorbar=data.label, annotate=notes),
                                 f"{data.label} on each user segment / item group ({data.split} split)"))
    return "".join(parts)


def across_datasets(data: RunData) -> str:
    """Grouped bars: the headline metric of each model on each dataset."""
    rows = _protocol(data.headline().filter(pl.col("segment") == "all"))
    datasets = sorted(set(rows["dataset"].to_list()))
    if len(datasets) < 2:
        return note(f"One dataset in this run ({', '.join(datasets) or 'none'}): nothing to compare across datasets.")
    models = sorted(set(rows["model"].to_list()))
    series = {}
    for dataset in datasets:
        sub = {m: r for m, *r in rows.filter(pl.col("dataset") == dataset)
               .select("model", "value", "ci_low", "ci_high").iter_rows()}
        series[dataset] = tuple([sub.get(m, (None, None, None))[i] for m in models] for i in range(3))
    return figure_html(plots.grouped_bars(models, series, data.label),
                       f"{data.label} per model on each dataset, with confidence intervals")


def significance(data: RunData) -> str:
    """Per dataset: a model x model matrix of deltas in the headline metric, starred where adjusted p < alpha."""
    alpha = float((data.config.get("eval") or {}).get("alpha", 0.05))
    rows = _protocol(data.tables["comparisons"].filter(
        (pl.col("metric") == data.metric) & same_k(data.k) & (pl.col("split") == data.split)
        & (pl.col("segment") == "all")))
    if rows.is_empty():
        return note("No paired significance tests in this run.")
    parts = []
    for dataset in sorted(set(rows["dataset"].to_list())):
        sub = rows.filter(pl.col("dataset") == dataset)
        models = sorted(set(sub["baseline"].to_list()) | set(sub["candidate"].to_list()))
        index = {m: i for i, m in enumerate(models)}
        matrix = np.full((len(models), len(models)), np.nan)
        text = [["" for _ in models] for _ in models]
        for base, cand, delta, p in sub.select("baseline", "candidate", "delta", "p_adjusted").iter_rows():
            star = "*" if p is not None and p < alpha else ""
            i, j = index[cand], index[base]
            matrix[i, j], matrix[j, i] = delta, -delta
            text[i][j], text[j][i] = f"{delta:+.3f}{star}", f"{-delta:+.3f}{star}"
        parts.append(f"<h3>Significance: {esc(dataset)}</h3>")
        parts.append(figure_html(
            plots.heatmap(matrix, models, models, colorbar=f"row - column, {data.label}", cmap="RdBu",
                          annotate=text, center=0.0, xlabel="compared with"),
            f"cell = row model minus column model on {data.label} ({data.split} split, all users); "
            f"* adjusted p < {alpha:g} ({sub['test'][0]}, {sub['correction'][0] or 'no correction'})"))
    return "".join(parts)


LIST_COUNTS = ("n_rows", "n_unknown_users", "n_unknown_items", "n_duplicate_rows", "n_seen_dropped",
               "n_split_users", "n_missing_users", "n_short_lists", "n_rank_conflicts")


def external_lists(data: RunData) -> str:
    """Lists from outside (``eval.external``): what was read, counted and dropped per list and split."""
    frame = data.tables.get("external_lists")
    if frame is None or frame.is_empty():
        return ""
    shown = frame.select("dataset", "model", "split", "status", *LIST_COUNTS, "k", "unavailable_metrics")
    return ("<h3>Lists from outside</h3>" + table_html(shown.sort("dataset", "model", "split"))
            + note("Evaluated like the models (seen items dropped, ties by item index); a user of the split "
                   "missing from a list counts as zero hits. Metrics that need every item's score (auc) are "
                   "not available for lists."))


def evaluation(data: RunData) -> Section:
    """The evaluation section: leaderboards, segments, datasets, significance, lists from outside."""
    body = "".join([
        leaderboard(data),
        "<h3>Across datasets</h3>", across_datasets(data),
        segments(data),
        significance(data),
        external_lists(data),
    ])
    return Section("evaluation", "Evaluation", body)
