"""The pipeline's ``evaluate`` stage: every trained model on every split, per user, per segment, compared.

For each model of ``run.models`` (the train stage's ``best_model.pt`` files)
and each split of ``eval.splits``: rank (full ranking, or the sampled
protocol of ``eval.protocol``), then write

- ``metrics``: averages with bootstrap intervals for segment ``all``, every user
  segment and every item group (:mod:`recsys.evaluate.segments`);
- ``user_metrics``: every evaluated user's values (original ``user_id``);
- ``recommendations``: the top-k lists (original ``item_id``, rank, score), when
  ``eval.save_topk`` and ranking is full; written in chunks of users;
- ``comparisons``: paired tests of accuracy metrics and AUC between models, on
  ``all`` and every user segment (see :func:`comparison_rows`).

Recommendation lists from outside (``eval.external``, :mod:`recsys.evaluate.external`)
are evaluated next to the models under their own names, on the splits they are given
for, into the same tables (without AUC), plus one ``external_lists`` row per list and
split with what was counted and dropped.

``run.evaluation`` (:class:`~recsys.run_state.Evaluation`) keeps the context, the rows
``{model: {split: MetricRows}}``, the user segments and the item groups for diagnose and tune.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import polars as pl

from recsys.evaluate.aggregate import summarize
from recsys.evaluate.config import EvalConfig, check_eval_config
from recsys.evaluate.context import EvalContext, evaluate_split
from recsys.evaluate.history import query_model
from recsys.evaluate.metrics import ACCURACY_METRICS
from recsys.evaluate.rows import MetricRows, split_column_name
from recsys.evaluate.segments import ALL, item_group_rows, item_groups, user_segments
from recsys.evaluate.significance import adjust_p_values, compare_models
from recsys.run_state import Evaluation, RunState
from recsys.models.contract import checked_scorer

log = logging.getLogger(__name__)

RECOMMENDATION_CHUNK_USERS = 20_000
COMPARED_METRICS = ACCURACY_METRICS + ("auc",)
LIST_METRICS = ("coverage", "gini")          # properties of a whole set of lists: full ranking only


def evaluate_models(models: Mapping, ctx: EvalContext, cfg: EvalConfig) -> dict[str, dict[str, MetricRows]]:
    """``{model: {split: MetricRows}}`` for ``models`` (name -> model) with the configured engine."""
    if cfg.engine == "ray":
        from recsys.evaluate._ray import evaluate_many_ray

        return evaluate_many_ray(models, ctx, list(cfg.splits), cfg)
    return {name: {split: evaluate_split(checked_scorer(query_model(model, ctx, split, cfg.query_history)), ctx,
                                         split, cfg) for split in cfg.splits}
            for name, model in models.items()}


def _summary_rows(rows: MetricRows, cfg: EvalConfig, keep=None) -> list[dict]:
    out = summarize(rows, n_samples=cfg.bootstrap_samples, confidence=cfg.confidence, seed=cfg.seed)
    if cfg.protocol != "full":
        out = [row for row in out if row["metric"] not in LIST_METRICS]
    return [row for row in out if keep is None or row["metric"] in keep]


def metric_rows(rows: MetricRows, ctx: EvalContext, split: str, cfg: EvalConfig,
                segments: Mapping[str, np.ndarray], groups: Mapping[str, np.ndarray]) -> list[dict]:
    """``metrics`` rows (without run/dataset/model) for segment ``all``, each user segment and item group."""
    out = []
    for name, users in segments.items():
        part = rows if name == ALL else rows.select(np.isin(rows.user_idx, users))
        if part.evaluated.any():
            out += [dict(row, segment=name) for row in _summary_rows(part, cfg)]
    if cfg.protocol == "full":
        relevant, seen = ctx.masks(split)
        held_out = relevant.difference(seen)
        for name, mask in groups.items():
            part = item_group_rows(rows, held_out, mask, rows.ks, cfg.recall_denominator)
            if part.evaluated.any():
                out += [dict(row, segment=name) for row in _summary_rows(part, cfg, keep=ACCURACY_METRICS)]
    return [dict(row, split=split, protocol=cfg.protocol) for row in out]


def user_metric_frame(rows: MetricRows, ctx: EvalContext) -> pl.DataFrame:
    """Long ``user_metrics`` frame (user_id, metric, k, value) of the evaluated users; NaN becomes null."""
    evaluated = rows.select(rows.evaluated)
    frames = []
    for column, values in evaluated.values.items():
        metric, k = split_column_name(column)
        frames.append(pl.DataFrame({"user_id": ctx.user_ids[evaluated.user_idx].astype(str),
                                    "metric": [metric] * evaluated.n_users,
                                    "k": pl.Series([k] * evaluated.n_users, dtype=pl.Int32),
                                    "value": pl.Series(values, dtype=pl.Float64)}))
    if not frames:
        return pl.DataFrame(schema={"user_id": pl.Utf8, "metric": pl.Utf8, "k": pl.Int32, "value": pl.Float64})
    return pl.concat(frames).with_columns(pl.col("value").fill_nan(None))


def recommendation_frames(rows: MetricRows, ctx: EvalContext, split: str,
                          chunk_users: int = RECOMMENDATION_CHUNK_USERS):
    """Yield ``recommendations`` frames (user_id, rank, item_id, score, is_relevant), ``chunk_users`` users at once."""
    relevant, _ = ctx.masks(split)
    evaluated = np.flatnonzero(rows.evaluated)
    for start in range(0, len(evaluated), chunk_users):
        which = evaluated[start:start + chunk_users]
        users, items = rows.user_idx[which], rows.topk_items[which].astype(np.int64)
        listed = items >= 0                                                    # padding of short lists is not a row
        position = np.nonzero(listed)
        yield pl.DataFrame({
            "user_id": ctx.user_ids[users[position[0]]].astype(str),
            "rank": pl.Series(position[1] + 1, dtype=pl.Int32),
            "item_id": ctx.item_ids[items[listed]].astype(str),
            "score": pl.Series(rows.topk_scores[which][listed], dtype=pl.Float32),
            "is_relevant": relevant.contains(users, items)[listed],
        })


def model_pairs(names: list[str], baseline: str | None) -> list[tuple[str, str]]:
    """Every model against ``baseline`` (when evaluated), then every pair among the others (earlier = baseline).

    >>> model_pairs(["pop", "mf", "sasrec", "content"], "pop")
    [('pop', 'mf'), ('pop', 'sasrec'), ('pop', 'content'), ('mf', 'sasrec'), ('mf', 'content'), ('sasrec', 'content')]
    """
    if baseline in names:
        others = [name for name in names if name != baseline]
        return [(baseline, name) for name in others] + \
            [(a, b) for i, a in enumerate(others) for b in others[i + 1:]]
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]


def comparison_rows(rows_by_model: Mapping[str, MetricRows], split: str, cfg: EvalConfig,
                    segments: Mapping[str, np.ndarray]) -> list[dict]:
    """Paired tests (``eval.significance_test``) for every pair of :func:`model_pairs`, metric and user segment.

    The users paired are those both models evaluated within the segment. p-values
    are adjusted (``eval.correction``) within each family of one (segment, metric, k):
    the comparisons of all model pairs on that metric.
    """
    out = []
    for segment, users in segments.items():
        for base, candidate in model_pairs(list(rows_by_model), cfg.baseline):
            pair = {}
            for name in (base, candidate):
                rows = rows_by_model[name]
                pair[name] = rows if segment == ALL else rows.select(np.isin(rows.user_idx, users))
            columns = [c for c in pair[base].values
                       if split_column_name(c)[0] in COMPARED_METRICS and c in pair[candidate].values]
            if not columns or not (pair[base].evaluated.any() and pair[candidate].evaluated.any()):
                continue
            found = compare_models(pair, baseline=base, metrics=columns, test=cfg.significance_test,
                                   correction="none", n_samples=cfg.bootstrap_samples, confidence=cfg.confidence,
                                   seed=cfg.seed)
            out += [dict(row, segment=segment) for row in found]
    families: dict[tuple, list[int]] = {}
    for i, row in enumerate(out):
        families.setdefault((row["segment"], row["metric"], row["k"]), []).append(i)
    for members in families.values():
        adjusted = adjust_p_values([out[i]["p_value"] for i in members], cfg.correction)
        for i, value in zip(members, adjusted):
            out[i]["p_adjusted"] = None if np.isnan(value) else float(value)
    for row in out:
        row.update(split=split, protocol=cfg.protocol, correction=cfg.correction)
        for key in ("p_value", "baseline_value", "candidate_value", "ci_low", "ci_high"):
            if row[key] is not None and np.isnan(row[key]):
                row[key] = None
    return [row for row in out if row["delta"] is not None and not np.isnan(row["delta"])]


def _cell(summary: list[dict], metric: str, k: int, interval: bool = True) -> str:
    for row in summary:
        if row["metric"] == metric and row["k"] == k and row["segment"] == ALL and row["value"] is not None:
            if row["ci_low"] is None or not interval:
                return f"{row['value']:.4f}"
            return f"{row['value']:.4f} [{row['ci_low']:.4f}, {row['ci_high']:.4f}]"
    return "-"


def summary_table(metric_summaries: Mapping[tuple[str, str], list[dict]], ks: list[int]) -> str:
    """A compact text table, one line per model: NDCG at k=10 (or the largest k) of every split but the last,
    then NDCG with its interval, recall and precision of the last split (test, when evaluated).

    >>> row = lambda metric, value: {"metric": metric, "k": 10, "segment": "all", "value": value,
    ...                              "ci_low": value - 0.01, "ci_high": value + 0.01}
    >>> summaries = {("mf", "val"): [row("ndcg", 0.2)],
    ...              ("mf", "test"): [row("ndcg", 0.25), row("recall", 0.3), row("precision", 0.1)]}
    >>> print(summary_table(summaries, [10]))
    model  val NDCG@10  test NDCG@10             test Recall@10  test Precision@10
    mf     0.2000       0.2500 [0.2400, 0.2600]  0.3000          0.1000
    """
    if not metric_summaries:
        return ""
    k = 10 if 10 in ks else max(ks)
    splits = list(dict.fromkeys(split for _, split in metric_summaries))
    models = list(dict.fromkeys(model for model, _ in metric_summaries))
    *before, last = splits
    header = ["model", *(f"{split} NDCG@{k}" for split in before),
              *(f"{last} {name}@{k}" for name in ("NDCG", "Recall", "Precision"))]
    lines = [header]
    for model in models:
        first = [_cell(metric_summaries.get((model, split), []), "ndcg", k, interval=False) for split in before]
        final = metric_summaries.get((model, last), [])
        lines.append([model, *first, _cell(final, "ndcg", k),
                      *(_cell(final, metric, k, interval=False) for metric in ("recall", "precision"))])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)


def _context(run: RunState, cfg: EvalConfig) -> EvalContext:
    from recsys.train.stage import load_item_text

    return EvalContext.from_prepared(run.prepared, load_item_text(run), cfg)


def evaluation_segments(ctx: EvalContext, cfg: EvalConfig) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """``({split: {segment: user_idx}}, {item group: item mask})`` of ``eval.splits``."""
    segments = {}
    for split in cfg.splits:
        relevant, _ = ctx.masks(split)
        segments[split] = user_segments(ctx, np.flatnonzero(relevant.counts()), cold_start_max=cfg.cold_start_max,
                                        max_attribute_values=cfg.max_attribute_values)
    groups = item_groups(ctx, head_fraction=cfg.long_tail_head_fraction, max_attribute_values=cfg.max_attribute_values)
    return segments, groups


def write_evaluation(writer, rows: Mapping[str, Mapping[str, MetricRows]], ctx: EvalContext, cfg: EvalConfig,
                     segments: Mapping[str, Mapping[str, np.ndarray]],
                     groups: Mapping[str, np.ndarray]) -> dict[tuple[str, str], list[dict]]:
    """Write metrics, user_metrics, recommendations and comparisons of ``rows`` (``{model or list: {split: rows}}``).

    A model or list without rows for a split (a list given for test only) is left
    out of that split. Returns the ``metrics`` rows per (name, split) for :func:`summary_table`.
    """
    dataset = ctx.dataset
    labels = {"dataset": dataset}
    summaries: dict[tuple[str, str], list[dict]] = {}
    for name in rows:
        for split in cfg.splits:
            if split not in rows[name]:
                continue
            result = rows[name][split]
            summary = metric_rows(result, ctx, split, cfg, segments[split], groups)
            summaries[(name, split)] = summary
            writer.write("metrics", [dict(row, model=name, **labels) for row in summary])
            frame = user_metric_frame(result, ctx).with_columns(
                pl.lit(dataset).alias("dataset"), pl.lit(name).alias("model"), pl.lit(split).alias("split"),
                pl.lit(cfg.protocol).alias("protocol"))
            writer.write("user_metrics", frame)
            if cfg.save_topk and cfg.protocol == "full":
                for chunk in recommendation_frames(result, ctx, split):
                    writer.write("recommendations", chunk.with_columns(
                        pl.lit(dataset).alias("dataset"), pl.lit(name).alias("model"), pl.lit(split).alias("split")))
            if result.n_excluded:
                log.info("%s/%s: %d users excluded (every held-out item already seen)", name, split, result.n_excluded)
    if len(rows) > 1 and cfg.baseline is not None and cfg.baseline not in rows:
        log.info("baseline %r was not evaluated; comparing every pair of %s", cfg.baseline, ", ".join(rows))
    for split in cfg.splits:
        by_name = {name: rows[name][split] for name in rows if split in rows[name]}
        if len(by_name) > 1:
            found = comparison_rows(by_name, split, cfg, segments[split])
            writer.write("comparisons", [dict(row, **labels) for row in found])
    return summaries


def stage_evaluate(run: RunState) -> None:
    """Evaluate ``run.models`` and the lists of ``eval.external`` on ``run.prepared`` (see the module doc)."""
    run.require("prepared", "evaluate")
    cfg: EvalConfig = run.cfg.eval
    check_eval_config(cfg)
    models = run.models if cfg.external else run.require("models", "evaluate")
    from recsys.train.checkpoint import load_model

    ctx = _context(run, cfg)
    dataset = ctx.dataset
    segments, groups = evaluation_segments(ctx, cfg)
    log.info("evaluating %s on %s/%s (%s ranking, engine %s)",
             ", ".join([*models, *dict.fromkeys(entry.name for entry in cfg.external)]), dataset,
             ",".join(cfg.splits), cfg.protocol, cfg.engine)
    rows = evaluate_models({name: load_model(record.path) for name, record in models.items()}, ctx, cfg) \
        if models else {}
    if cfg.external:
        from recsys.evaluate.external import evaluate_lists

        listed, counts = evaluate_lists(cfg.external, ctx, cfg, models=list(models))
        rows.update(listed)
        run.writer.write("external_lists", [dict(found.row(), dataset=dataset) for found in counts])
    summaries = write_evaluation(run.writer, rows, ctx, cfg, segments, groups)
    run.evaluation = Evaluation(context=ctx, rows=rows, segments=segments, item_groups=groups)
    print(f"evaluation of {dataset} ({cfg.protocol} ranking):")
    print(summary_table(summaries, list(cfg.k)))
