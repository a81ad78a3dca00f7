"""Outcome rules over ``metrics`` and ``comparisons``: popularity bias, weak segments, losing to popularity.

Rules compare models of the same run and dataset on ``diagnose.metric`` at
``diagnose.k``, in the first split of ``diagnose.splits`` that has the numbers.
The popularity model (``diagnose.baseline_model``) is the reference and is never
judged itself.

>>> import polars as pl
>>> from recsys.diagnose.config import DiagnoseConfig
>>> from recsys.diagnose.inputs import DiagnosisInputs, prepare
>>> m = pl.DataFrame({"model": ["pop", "mf"], "split": ["val"] * 2, "segment": ["all"] * 2,
...                   "metric": ["ndcg"] * 2, "k": [10, 10], "value": [0.10, 0.08]})
>>> [f.code for f in not_beating_popularity(DiagnosisInputs(metrics=prepare(m, "metrics")), DiagnoseConfig())]
['NOT_BEATING_POPULARITY']
"""

from __future__ import annotations

import math
from typing import Any, Optional

import polars as pl

from recsys.diagnose.config import DiagnoseConfig
from recsys.diagnose.finding import Finding, fmt, severity_of
from recsys.diagnose.inputs import DiagnosisInputs, by_unit, has_rows, metric_row, pick_split
from recsys.diagnose.remedies import model_edit, remedy

RUN_KEYS = ("run_id", "dataset")
# Item groups of the evaluation (``items_tail``, ``cold_items``, ``item_genres=Drama``; see
# recsys.evaluate.segments): re-evaluated against the held-out items in the group only, so their
# value answers "are these items found", not "is this user segment served", and lies far below
# ``all`` for every model, popularity included. SEGMENT_WEAKNESS judges user segments only.
ITEM_GROUP_PREFIXES = ("items_", "cold_items", "item_")


def _judged_models(metrics: pl.DataFrame, cfg: DiagnoseConfig) -> list[str]:
    return [m for m in metrics.get_column("model").unique(maintain_order=True).to_list() if m != cfg.baseline_model]


def popularity_outcome(metrics: Optional[pl.DataFrame], model: str, cfg: DiagnoseConfig) -> Optional[dict[str, Any]]:
    """How popularity-biased ``model``'s recommendations are, in the first split with ``popularity@k``.

    ``ratio = popularity@k / test_popularity``; ``high`` when it is at least
    ``outcomes.popularity_ratio`` (``critical`` at ``outcomes.popularity_ratio_critical``);
    ``low_coverage`` when ``coverage@k`` is below ``outcomes.coverage_vs_popularity`` times the
    baseline model's; ``biased`` when either holds. None without the model's ``popularity@k``.

    >>> m = pl.DataFrame({"model": ["mf"] * 2, "split": ["val"] * 2, "segment": ["all"] * 2,
    ...                   "metric": ["popularity", "test_popularity"], "k": [10, None], "value": [30.0, 10.0]})
    >>> out = popularity_outcome(m, "mf", DiagnoseConfig()); out["ratio"], out["high"], out["biased"]
    (3.0, True, True)
    """
    t = cfg.outcomes
    if metrics is None or metrics.height == 0:
        return None
    split = pick_split(metrics, model, "popularity", cfg.k, cfg.splits)
    if split is None:
        return None
    arp = metric_row(metrics, model=model, split=split, metric="popularity", k=cfg.k)
    held = metric_row(metrics, model=model, split=split, metric="test_popularity", k=None)
    ratio = arp["value"] / held["value"] if held is not None and held["value"] > 0 else None
    cov = metric_row(metrics, model=model, split=split, metric="coverage", k=cfg.k)
    pop_cov = metric_row(metrics, model=cfg.baseline_model, split=split, metric="coverage", k=cfg.k)
    low_cov = bool(cov is not None and pop_cov is not None and pop_cov["value"] > 0
                   and cov["value"] < t.coverage_vs_popularity * pop_cov["value"])
    high = ratio is not None and ratio >= t.popularity_ratio
    return {"split": split, "popularity_at_k": arp["value"], "test_popularity": held["value"] if held else None,
            "ratio": ratio, "high": high, "critical": ratio is not None and ratio >= t.popularity_ratio_critical,
            "coverage": cov["value"] if cov else None, "baseline_coverage": pop_cov["value"] if pop_cov else None,
            "low_coverage": low_cov, "biased": high or low_cov}


def popularity_bias(inputs: DiagnosisInputs, cfg: DiagnoseConfig) -> list[Finding]:
    """POPULARITY_BIAS: recommended popularity far above what users consume, or coverage near popularity's.

    ``ratio = popularity@k / test_popularity`` (mean popularity of listed items over that of the
    users' held-out items); warning at ``outcomes.popularity_ratio``, critical at
    ``outcomes.popularity_ratio_critical``. *Low coverage*: ``coverage@k`` below
    ``outcomes.coverage_vs_popularity x`` the popularity model's: a warning alone, critical
    together with a high ratio (:func:`popularity_outcome` measures both).
    """
    t = cfg.outcomes
    out = []
    for where, metrics in by_unit(inputs.metrics, RUN_KEYS):
        for model in _judged_models(metrics, cfg):
            o = popularity_outcome(metrics, model, cfg)
            if o is None or not o["biased"]:
                continue
            severity = "critical" if o["critical"] or (o["high"] and o["low_coverage"]) else "warning"
            parts = [f"recommended items are {fmt(o['ratio'])}x as popular as held-out ones"] if o["high"] else []
            if o["low_coverage"]:
                parts.append(f"coverage@{cfg.k} {fmt(o['coverage'])} is under {fmt(t.coverage_vs_popularity)}x "
                             f"{cfg.baseline_model}'s {fmt(o['baseline_coverage'])}")
            out.append(Finding(
                "POPULARITY_BIAS", severity, {**where, "model": model, "table": "metrics", "split": o["split"]},
                "; ".join(parts),
                {"popularity_at_k": o["popularity_at_k"], "test_popularity": o["test_popularity"],
                 "popularity_ratio": o["ratio"], "coverage": o["coverage"],
                 "baseline_coverage": o["baseline_coverage"], "k": cfg.k, "split": o["split"],
                 "popularity_ratio_warning": t.popularity_ratio,
                 "popularity_ratio_critical": t.popularity_ratio_critical,
                 "coverage_vs_popularity": t.coverage_vs_popularity},
                remedy("The model mostly repeats popular items: correct the loss for popularity (sampled softmax "
                       "with logQ), normalise vectors, or re-rank for coverage.",
                       {"param": "train.loss", "op": "choice_add", "value": "sampled_softmax"},
                       model_edit(model, "normalize", "enable"))))
    return out


def _segment_edits(model: str, segment: str) -> list[Optional[dict[str, Any]]]:
    name = segment.lower()
    if "cold" in name:
        return [model_edit(model, "use_text", "enable")]
    if "tail" in name:
        return [{"param": "train.loss", "op": "choice_add", "value": "sampled_softmax"}]
    return []


def _baseline_gap(metrics: pl.DataFrame, cfg: DiagnoseConfig, split: str, segment: str) -> Optional[float]:
    """The baseline model's relative gap ``(overall - segment) / overall`` on ``segment``, or None."""
    overall = metric_row(metrics, model=cfg.baseline_model, split=split, metric=cfg.metric, k=cfg.k)
    seg = metric_row(metrics, model=cfg.baseline_model, split=split, metric=cfg.metric, k=cfg.k, segment=segment)
    if overall is None or seg is None or overall["value"] <= 0:
        return None
    return (overall["value"] - seg["value"]) / overall["value"]


def segment_weakness(inputs: DiagnosisInputs, cfg: DiagnoseConfig) -> list[Finding]:
    """SEGMENT_WEAKNESS: a user segment scores far below the model's overall value.

    For each user segment other than ``all`` (item groups, named ``items_*``, ``cold_items`` or
    ``item_*``, are not judged) with at least ``outcomes.segment_min_users`` users (or an
    unknown count): ``gap = (overall - segment) / overall >= outcomes.segment_rel_gap`` (critical
    at ``outcomes.segment_rel_gap_critical``), and, when the segment has a confidence interval,
    its upper end lies below the overall value (significantly worse). When the baseline model
    (``diagnose.baseline_model``) has the segment, the gap must also exceed the baseline's own gap
    there: a segment that is as hard for popularity is a property of the data, not of the model.
    """
    t = cfg.outcomes
    out = []
    name = f"{cfg.metric}@{cfg.k}"
    for where, metrics in by_unit(inputs.metrics, RUN_KEYS):
        for model in _judged_models(metrics, cfg):
            split = pick_split(metrics, model, cfg.metric, cfg.k, cfg.splits)
            overall = metric_row(metrics, model=model, split=split, metric=cfg.metric, k=cfg.k) if split else None
            if overall is None or overall["value"] <= 0:
                continue
            segments = metrics.filter((pl.col("model") == model) & (pl.col("split") == split)
                                      & (pl.col("segment") != "all")
                                      & ~pl.any_horizontal(pl.col("segment").str.starts_with(p)
                                                           for p in ITEM_GROUP_PREFIXES)
                                      & (pl.col("metric") == cfg.metric)
                                      & (pl.col("k") == cfg.k) & pl.col("value").is_finite())
            for row in segments.iter_rows(named=True):
                if row["n_users"] is not None and row["n_users"] < t.segment_min_users:
                    continue
                gap = (overall["value"] - row["value"]) / overall["value"]
                significant: Optional[bool] = None if row["ci_high"] is None else row["ci_high"] < overall["value"]
                severity = severity_of(gap, t.segment_rel_gap, t.segment_rel_gap_critical)
                baseline_gap = _baseline_gap(metrics, cfg, split, row["segment"])
                if severity is None or significant is False or (baseline_gap is not None and gap <= baseline_gap):
                    continue
                out.append(Finding(
                    "SEGMENT_WEAKNESS", severity,
                    {**where, "model": model, "table": "metrics", "split": split, "segment": row["segment"]},
                    f"{name} of segment '{row['segment']}' is {fmt(row['value'])}, {fmt(100 * gap)}% below "
                    f"the overall {fmt(overall['value'])} ({row['n_users'] if row['n_users'] is not None else '?'}"
                    f" users)",
                    {"metric": name, "split": split, "segment_value": row["value"], "overall_value": overall["value"],
                     "rel_gap": gap, "baseline_rel_gap": baseline_gap, "baseline_model": cfg.baseline_model,
                     "ci_low": row["ci_low"], "ci_high": row["ci_high"], "significant": significant,
                     "n_users": row["n_users"], "segment_rel_gap": t.segment_rel_gap,
                     "segment_rel_gap_critical": t.segment_rel_gap_critical,
                     "segment_min_users": t.segment_min_users},
                    remedy(f"Segment '{row['segment']}' is poorly served: give the model what that segment lacks "
                           "(text for cold items and users, popularity correction for tail items, history pooling "
                           "for short histories), and check the segment's size.",
                           *_segment_edits(model, row["segment"]))))
    return out


def _pop_comparison(rows: pl.DataFrame, model: str, cfg: DiagnoseConfig) -> Optional[dict[str, Any]]:
    """The comparison of ``model`` with the baseline on ``metric@k`` over all users, oriented so that
    ``delta > 0`` means the model is better; None when there is none."""
    pop = cfg.baseline_model
    rows = rows.filter((pl.col("metric") == cfg.metric) & (pl.col("k") == cfg.k)
                       & pl.col("delta").is_finite()
                       & (pl.col("segment").is_null() | (pl.col("segment") == "all"))
                       & (((pl.col("baseline") == pop) & (pl.col("candidate") == model))
                          | ((pl.col("baseline") == model) & (pl.col("candidate") == pop))))
    for split in [*cfg.splits, None]:
        part = rows if split is None else rows.filter(pl.col("split") == split)
        if part.height:
            row = part.row(0, named=True)
            sign = 1.0 if row["baseline"] == pop else -1.0
            p = next((v for v in (row["p_adjusted"], row["p_value"]) if v is not None and math.isfinite(v)), None)
            return {"delta": sign * row["delta"], "p": p, "split": row["split"], "test": row["test"]}
    return None


def _not_beating(where: dict[str, Any], model: str, cfg: DiagnoseConfig, delta: float, p: Optional[float],
                 split: Optional[str], source: str) -> Optional[Finding]:
    alpha = cfg.outcomes.alpha
    significant = p is not None and p < alpha
    if delta > 0 and (significant or p is None):
        return None
    severity = "critical" if delta < 0 and significant else "warning"
    verdict = ("significantly worse than" if severity == "critical" else
               "not significantly better than" if p is not None else "not better than")
    name = f"{cfg.metric}@{cfg.k}"
    return Finding(
        "NOT_BEATING_POPULARITY", severity, {**where, "model": model, "table": source, "split": split},
        f"{model} is {verdict} {cfg.baseline_model} on {name}: delta {fmt(delta)}, p {fmt(p)}",
        {"metric": name, "split": split, "delta": delta, "p_value": p, "alpha": alpha,
         "baseline_model": cfg.baseline_model, "source": source},
        remedy("The model adds nothing over recommending the most popular items: act on its other findings "
               "(underfitting, learning rate, ignored features), which carry the edits, and check the split."))


def not_beating_popularity(inputs: DiagnosisInputs, cfg: DiagnoseConfig) -> list[Finding]:
    """NOT_BEATING_POPULARITY: the model is not significantly better than the popularity model.

    From ``comparisons`` (either orientation, segment ``all``): critical when the model is
    significantly worse (``delta < 0``, adjusted p (else raw p) ``< outcomes.alpha``), warning when it
    is not significantly better. Models without a comparison fall back to ``metrics``: warning
    when the overall value is at most popularity's (no test available).
    """
    out: list[Finding] = []
    judged: set[tuple] = set()
    if has_rows(inputs.comparisons):
        for where, rows in by_unit(inputs.comparisons, RUN_KEYS):
            models = set(rows.get_column("candidate").to_list()) | set(rows.get_column("baseline").to_list())
            for model in sorted(models - {cfg.baseline_model}):
                found = _pop_comparison(rows, model, cfg)
                if found is None:
                    continue
                judged.add((tuple(sorted(where.items())), model))
                finding = _not_beating(where, model, cfg, found["delta"], found["p"], found["split"], "comparisons")
                out += [finding] if finding else []
    if has_rows(inputs.metrics):
        for where, metrics in by_unit(inputs.metrics, RUN_KEYS):
            for model in _judged_models(metrics, cfg):
                if (tuple(sorted(where.items())), model) in judged:
                    continue
                split = pick_split(metrics, model, cfg.metric, cfg.k, cfg.splits)
                own = metric_row(metrics, model=model, split=split, metric=cfg.metric, k=cfg.k) if split else None
                pop = (metric_row(metrics, model=cfg.baseline_model, split=split, metric=cfg.metric, k=cfg.k)
                       if split else None)
                if own is None or pop is None:
                    continue
                finding = _not_beating(where, model, cfg, own["value"] - pop["value"], None, split, "metrics")
                out += [finding] if finding else []
    return out
