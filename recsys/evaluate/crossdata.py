"""Compare models across segments and datasets: ranks, and plain-language lines backed by the tests.

Input: the ``metrics`` and ``comparisons`` rows of one run, any number of datasets
(docs/report.md; rows without a ``protocol`` column count as one protocol).
Output: ``rankings`` and ``insights`` rows.

**Ranks.** Within each (dataset, split, protocol, segment, metric, k) the models are ranked
by value, 1 = best. Best is the highest value, except for the metrics in
:data:`LOWER_IS_BETTER`. Ties share the smallest rank of their group
("competition" ranking: values 0.3, 0.3, 0.1 rank 1, 1, 3). A null or NaN value
gets no rank and does not count in ``n_models``. Ranks order point estimates;
they claim no significance.

**Lines**, for the split ``compare.split`` and each metric of ``compare.metrics``
(per ranking protocol; a sampled one is named before the metric, "uni100 NDCG@10"):

- ``tradeoff`` (per dataset, per pair of models): one model is significantly
  better on one segment and, on another, significantly worse ("but trails it
  on ...") or not significantly different ("but not significantly on ...").
  The larger of the two models' largest significant gains leads; the contrast
  is the other model's largest significant gain, else, among the segments
  where the test found no significant difference (p defined), the one least
  favourable to the leader. A pair with no significant difference, or with
  significant gains for one model on every tested segment, gets no line.
- ``best_segment`` / ``worst_segment`` (per dataset, per model): the segment
  furthest above / below the model's overall value whose confidence interval
  excludes that overall value.
- ``rank_change`` (across datasets, null ``dataset``): a model whose rank on the
  ``all`` segment differs between datasets.

A difference between models is claimed only when ``p_adjusted < alpha``
(``eval.alpha``), and the printed p is ``p_adjusted``; a segment differs from
overall only when its interval excludes the overall value. Lines are sorted by
the size of their effect (``|delta|``, ties by names), at most
``compare.max_lines`` of each kind per dataset and across datasets.

>>> metrics = pl.DataFrame({"dataset": "d", "model": ["pop", "mf"], "split": "test", "segment": "all",
...                         "metric": "ndcg", "k": 10, "value": [0.1, 0.3], "ci_low": None, "ci_high": None})
>>> rank_models(metrics).select("model", "rank", "n_models").rows()
[('mf', 1, 2), ('pop', 2, 2)]
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import polars as pl

from recsys.errors import ConfigError, DataError
from recsys.evaluate.rows import split_column_name
from recsys.evaluate.wording import (ACTIVITY_QUANTILES, activity_quantile, format_number, format_p,
                                     format_signed, metric_label, ordinal, segment_phrase)

LOWER_IS_BETTER = ("gini", "popularity")   # exposure concentration; mean popularity of what is recommended
KINDS = ("tradeoff", "best_segment", "worst_segment", "rank_change")
SPLITS = ("val", "test")
RANK_KEYS = ["dataset", "split", "protocol", "segment", "metric", "k"]

RANKING_SCHEMA = {
    "dataset": pl.String, "split": pl.String, "protocol": pl.String, "segment": pl.String, "metric": pl.String,
    "k": pl.Int32,
    "model": pl.String, "value": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64,
    "rank": pl.Int32, "n_models": pl.Int32,
}
INSIGHT_SCHEMA = {
    "dataset": pl.String, "split": pl.String, "protocol": pl.String, "kind": pl.String, "model": pl.String, "other_model": pl.String,
    "segment": pl.String, "other_segment": pl.String, "metric": pl.String, "k": pl.Int32,
    "delta": pl.Float64, "p_value": pl.Float64, "text": pl.String,
}
METRIC_COLUMNS = ["dataset", "model", "split", "segment", "metric", "k", "value", "ci_low", "ci_high"]
COMPARISON_COLUMNS = ["dataset", "split", "segment", "baseline", "candidate", "metric", "k", "delta", "p_adjusted"]
COMPARISON_KEYS = ["dataset", "split", "protocol", "segment", "baseline", "candidate", "metric", "k"]


@dataclass
class CompareConfig:
    """What the comparison lines talk about (``compare.*``); rankings cover every split and metric.

    >>> check_compare_config(CompareConfig())
    """

    split: str = "test"                 # the split the lines are about: val | test
    metrics: list[str] = field(default_factory=lambda: ["ndcg@10"])   # name@k (or a name without cut-off)
    max_lines: int = 10                 # at most this many lines of each kind per dataset (and across datasets)
    min_users: int = 10                 # segments (and paired tests) with fewer users make no line


def check_compare_config(cfg: CompareConfig, ks: Iterable[int] | None = None) -> None:
    """Raise :class:`ConfigError` naming the setting; with ``ks`` (``eval.k``) a metric's cut-off must be one of them.

    >>> check_compare_config(CompareConfig(metrics=["ndcg@15"]), ks=[5, 10])
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'compare.metrics': cut-off 15 of 'ndcg@15' is not evaluated (eval.k is [5, 10]). What to do: use a cut-off of eval.k, e.g. compare.metrics=[ndcg@5]
    """
    if cfg.split not in SPLITS:
        raise ConfigError(f"unknown split {cfg.split!r}", setting="compare.split", hint="use val or test")
    if isinstance(cfg.min_users, bool) or not isinstance(cfg.min_users, int) or cfg.min_users < 1:
        raise ConfigError(f"min_users must be an integer >= 1, got {cfg.min_users!r}", setting="compare.min_users",
                          hint="use e.g. compare.min_users=10")
    if isinstance(cfg.max_lines, bool) or not isinstance(cfg.max_lines, int) or cfg.max_lines < 0:
        raise ConfigError(f"max_lines must be an integer >= 0, got {cfg.max_lines!r}", setting="compare.max_lines",
                          hint="use e.g. 10 (0 writes rankings only)")
    if not cfg.metrics:
        raise ConfigError("no metric to talk about", setting="compare.metrics", hint="use e.g. [ndcg@10]")
    ks = None if ks is None else list(ks)
    for name in cfg.metrics:
        try:
            metric, k = split_column_name(name)
        except (ValueError, TypeError):
            metric, k = "", None
        if not metric or (k is not None and k < 1):
            raise ConfigError(f"cannot read metric {name!r}", setting="compare.metrics",
                              hint="write a metric as name@k, e.g. ndcg@10, or a bare name such as auc")
        if k is not None and ks is not None and k not in ks:
            raise ConfigError(f"cut-off {k} of {name!r} is not evaluated (eval.k is {ks})",
                              setting="compare.metrics", hint=f"use a cut-off of eval.k, e.g. compare.metrics=[{metric}@{ks[0]}]")


def _require(frame: pl.DataFrame, table: str, columns: list[str]) -> pl.DataFrame:
    """``frame`` with a null ``protocol`` column when it has none (rows written before protocols existed)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"the {table} rows lack column(s) {missing}", column=missing[0],
                        hint=f"pass rows of the report table '{table}' (columns: {', '.join(columns)})")
    return frame if "protocol" in frame.columns else frame.with_columns(protocol=pl.lit(None, pl.String))


def _refuse_duplicates(frame: pl.DataFrame, table: str, keys: list[str]) -> None:
    dupes = frame.filter(pl.struct(keys).is_duplicated())
    if dupes.height:
        first = dupes.row(0, named=True)
        raise DataError(f"the {table} rows hold {dupes.height} rows that repeat a key, e.g. "
                        + ", ".join(f"{key}={first[key]!r}" for key in keys),
                        hint="pass the rows of one run (split several runs by run_id first)")


def _direction(metric: str) -> int:
    return -1 if metric in LOWER_IS_BETTER else 1


def rank_models(metrics: pl.DataFrame) -> pl.DataFrame:
    """``rankings`` rows: each model's rank per (dataset, split, segment, metric, k), with value and interval.

    >>> frame = pl.DataFrame({"dataset": "d", "model": ["a", "b", "c"], "split": "test", "segment": "all",
    ...                       "metric": "gini", "k": 10, "value": [0.5, 0.2, 0.2], "ci_low": None, "ci_high": None})
    >>> rank_models(frame).select("model", "rank").rows()          # gini: lower is better; b and c tie
    [('b', 1), ('c', 1), ('a', 3)]
    """
    columns = METRIC_COLUMNS + ["protocol"]
    frame = _require(metrics, "metrics", METRIC_COLUMNS).select(columns).cast({c: RANKING_SCHEMA[c] for c in columns})
    _refuse_duplicates(frame, "metrics", RANK_KEYS + ["model"])
    value = pl.col("value").fill_nan(None)
    score = pl.when(pl.col("metric").is_in(list(LOWER_IS_BETTER))).then(-value).otherwise(value)
    ranked = frame.with_columns(
        value=value,
        rank=score.rank(method="min", descending=True).over(RANK_KEYS).cast(pl.Int32),
        n_models=value.count().over(RANK_KEYS).cast(pl.Int32),
    )
    return ranked.sort(RANK_KEYS + ["rank", "model"], nulls_last=True).select(list(RANKING_SCHEMA))


# ---------------------------------------------------------------- lines


@dataclass(frozen=True)
class Scope:
    """What a group of lines is about: one dataset (None across datasets), split, protocol and metric."""

    dataset: str | None
    split: str
    metric: str
    k: int | None
    protocol: str | None = None

    @property
    def label(self) -> str:
        return metric_label(self.metric, self.k, self.protocol)


@dataclass(frozen=True)
class Insight:
    """One line and the numbers behind it (an ``insights`` row without ``run_id``)."""

    scope: Scope
    kind: str
    text: str
    delta: float                        # the effect the line is sorted by (see docs/report.md, insights)
    model: str | None = None
    other_model: str | None = None
    segment: str | None = None
    other_segment: str | None = None
    p_value: float | None = None

    def row(self) -> dict:
        return {"dataset": self.scope.dataset, "split": self.scope.split, "protocol": self.scope.protocol,
                "kind": self.kind, "model": self.model, "other_model": self.other_model, "segment": self.segment,
                "other_segment": self.other_segment, "metric": self.scope.metric, "k": self.scope.k,
                "delta": self.delta, "p_value": self.p_value, "text": self.text}

    def order(self) -> tuple:
        """Largest effect first; ties by names, then by the text itself."""
        return (-abs(self.delta), self.model or "", self.other_model or "", self.scope.metric, self.scope.k or 0,
                self.scope.protocol or "", self.segment or "", self.text)


@dataclass(frozen=True)
class _Difference:
    """``model - other`` on one segment, as tested (``p`` adjusted)."""

    segment: str
    delta: float
    p: float | None

    def tested(self) -> bool:
        return self.p is not None and not math.isnan(self.p)


def _significant(diff: _Difference, alpha: float) -> bool:
    return diff.tested() and diff.p < alpha


def _pair_differences(comparisons: pl.DataFrame) -> dict[tuple[str, str], list[_Difference]]:
    """Per unordered pair ``(x, y)`` (sorted names): ``x - y`` on each segment."""
    pairs: dict[tuple[str, str], list[_Difference]] = {}
    for row in comparisons.sort("segment", "baseline", "candidate").iter_rows(named=True):
        x, y = sorted((row["baseline"], row["candidate"]))
        delta = row["delta"] if x == row["candidate"] else -row["delta"]
        pairs.setdefault((x, y), []).append(_Difference(row["segment"], delta, row["p_adjusted"]))
    return pairs


def tradeoff_lines(comparisons: pl.DataFrame, scope: Scope, *, alpha: float,
                   n_quantiles: int | None = None) -> list[Insight]:
    """``tradeoff`` lines of one scope (``comparisons`` already filtered to it).

    >>> rows = pl.DataFrame({"segment": ["cold_start_users", "activity_q4"], "baseline": "mf",
    ...                      "candidate": "two_tower", "delta": [0.08, -0.03], "p_adjusted": [0.0002, 0.004]})
    >>> tradeoff_lines(rows, Scope("d", "test", "ndcg", 10), alpha=0.05)[0].text
    'two_tower beats mf on cold-start users by 0.08 NDCG@10 (p<0.001) but trails it on heavy users by 0.03 (p=0.004)'
    """
    sign = _direction(scope.metric)
    out = []
    for (x, y), diffs in _pair_differences(comparisons).items():
        gain = {d.segment: sign * d.delta for d in diffs}          # x's advantage over y on each segment
        wins_x = [d for d in diffs if _significant(d, alpha) and gain[d.segment] > 0]
        wins_y = [d for d in diffs if _significant(d, alpha) and gain[d.segment] < 0]
        if not wins_x and not wins_y:
            continue
        best_x = max(wins_x, key=lambda d: (gain[d.segment], d.segment), default=None)
        best_y = min(wins_y, key=lambda d: (gain[d.segment], d.segment), default=None)
        x_leads = best_y is None or (best_x is not None and abs(gain[best_x.segment]) >= abs(gain[best_y.segment]))
        lead, other, claim, against = (x, y, best_x, best_y) if x_leads else (y, x, best_y, best_x)
        flip = 1 if x_leads else -1                                # turns x - y into lead - other
        if against is None:
            open_segments = [d for d in diffs if d.tested() and not _significant(d, alpha)]
            if not open_segments:
                continue
            against = min(open_segments, key=lambda d: (flip * gain[d.segment], d.segment))
            contrast = (f"but not significantly {segment_phrase(against.segment, n_quantiles)} "
                        f"({format_signed(flip * against.delta)}, {format_p(against.p)})")
        else:
            contrast = (f"but trails it {segment_phrase(against.segment, n_quantiles)} by "
                        f"{format_number(abs(against.delta))} ({format_p(against.p)})")
        text = (f"{lead} beats {other} {segment_phrase(claim.segment, n_quantiles)} by "
                f"{format_number(abs(claim.delta))} {scope.label} ({format_p(claim.p)}) {contrast}")
        out.append(Insight(scope, "tradeoff", text, flip * claim.delta, model=lead, other_model=other,
                           segment=claim.segment, other_segment=against.segment, p_value=claim.p))
    return out


def segment_lines(metrics: pl.DataFrame, scope: Scope, *, confidence: float,
                  n_quantiles: int | None = None) -> list[Insight]:
    """``best_segment`` and ``worst_segment`` lines of one scope (``metrics`` already filtered to it).

    >>> rows = pl.DataFrame({"model": "mf", "segment": ["all", "activity_q4", "activity_q1"],
    ...                      "value": [0.16, 0.21, 0.15], "ci_low": [0.15, 0.19, 0.12], "ci_high": [0.17, 0.23, 0.18]})
    >>> [line.text for line in segment_lines(rows, Scope("d", "test", "ndcg", 10), confidence=0.95)]
    ['mf does best on heavy users: 0.21 NDCG@10 against 0.16 overall (95% CI 0.19 to 0.23)']
    """
    sign = _direction(scope.metric)
    level = f"{confidence * 100:g}%"
    out = []
    for model in sorted(set(metrics["model"].to_list())):
        rows = {r["segment"]: r for r in metrics.filter(pl.col("model") == model).iter_rows(named=True)
                if r["value"] is not None and not math.isnan(r["value"])}
        overall = rows.pop("all", None)
        if overall is None:
            continue
        base = overall["value"]

        def clear(row, better: bool) -> bool:
            above = row["ci_low"] is not None and row["ci_low"] > base
            below = row["ci_high"] is not None and row["ci_high"] < base
            return (above if sign > 0 else below) if better else (below if sign > 0 else above)

        gain = {s: sign * (r["value"] - base) for s, r in rows.items()}
        better = [s for s, r in rows.items() if gain[s] > 0 and clear(r, True)]
        worse = [s for s, r in rows.items() if gain[s] < 0 and clear(r, False)]
        for kind, word, chosen in (("best_segment", "best", max(better, key=lambda s: (gain[s], s), default=None)),
                                   ("worst_segment", "worst", min(worse, key=lambda s: (gain[s], s), default=None))):
            if chosen is None:
                continue
            row = rows[chosen]
            text = (f"{model} does {word} {segment_phrase(chosen, n_quantiles)}: {format_number(row['value'])} "
                    f"{scope.label} against {format_number(base)} overall ({level} CI "
                    f"{format_number(row['ci_low'])} to {format_number(row['ci_high'])})")
            out.append(Insight(scope, kind, text, row["value"] - base, model=model, segment=chosen,
                               other_segment="all"))
    return out


def rank_change_lines(rankings: pl.DataFrame, scope: Scope) -> list[Insight]:
    """``rank_change`` lines: models ranked differently on the ``all`` segment of different datasets.

    >>> ranks = pl.DataFrame({"dataset": ["movielens", "synthetic"], "model": "sasrec", "rank": [1, 4],
    ...                       "n_models": [5, 5], "tied": [False, False]})
    >>> rank_change_lines(ranks, Scope(None, "test", "ndcg", 10))[0].text
    'sasrec ranks 1st of 5 on movielens but 4th of 5 on synthetic (NDCG@10)'
    """
    out = []
    for model in sorted(set(rankings["model"].to_list())):
        places = sorted((r["rank"], r["dataset"], r["n_models"], r["tied"])
                        for r in rankings.filter(pl.col("model") == model).iter_rows(named=True)
                        if r["rank"] is not None)
        if len(places) < 2 or places[0][0] == places[-1][0]:
            continue
        said = [f"{ordinal(rank)}{' (tied)' if tied else ''} of {n} on {dataset}"
                for rank, dataset, n, tied in places]
        text = f"{model} ranks {', '.join(said[:-1])} but {said[-1]} ({scope.label})"
        out.append(Insight(scope, "rank_change", text, float(places[-1][0] - places[0][0]), model=model,
                           segment="all"))
    return out


# ---------------------------------------------------------------- one run


def _where(split: str, protocol: str | None, metric: str, k: int | None) -> pl.Expr:
    same_k = pl.col("k").is_null() if k is None else pl.col("k") == k
    return ((pl.col("split") == split) & pl.col("protocol").eq_missing(protocol) & (pl.col("metric") == metric)
            & same_k)


def _n_quantiles(segments: Iterable[str]) -> int:
    return max([q for q in (activity_quantile(s) for s in segments) if q is not None] + [ACTIVITY_QUANTILES])


def _enough_users(frame: pl.DataFrame, min_users: int) -> pl.DataFrame:
    """Rows measured on at least ``min_users`` users (rows without a count are kept)."""
    if "n_users" not in frame.columns:
        return frame
    return frame.filter(pl.col("n_users").is_null() | (pl.col("n_users") >= min_users))


def _capped(lines: list[Insight], max_lines: int) -> list[Insight]:
    groups: dict[tuple[str | None, str], list[Insight]] = {}
    for line in lines:
        groups.setdefault((line.scope.dataset, line.kind), []).append(line)
    kept = []
    for dataset, kind in sorted(groups, key=lambda key: (key[0] is None, key[0] or "", KINDS.index(key[1]))):
        kept.extend(sorted(groups[dataset, kind], key=Insight.order)[:max_lines])
    return kept


def insight_lines(metrics: pl.DataFrame, comparisons: pl.DataFrame, rankings: pl.DataFrame, cfg: CompareConfig,
                  *, alpha: float = 0.05, confidence: float = 0.95) -> pl.DataFrame:
    """Every line of one run as ``insights`` rows (sorted: dataset, kind, effect; capped)."""
    check_compare_config(cfg)
    metrics = _require(metrics, "metrics", METRIC_COLUMNS).with_columns(pl.col("value").fill_nan(None))
    comparisons = _require(comparisons, "comparisons", COMPARISON_COLUMNS)
    _refuse_duplicates(comparisons, "comparisons", COMPARISON_KEYS)
    comparisons = comparisons.with_columns(pl.col("p_adjusted").fill_nan(None))
    tied = rankings.with_columns(tied=pl.len().over(RANK_KEYS + ["rank"]) > 1)
    protocols = sorted(set(metrics["protocol"].to_list()) | set(comparisons["protocol"].to_list()),
                       key=lambda p: (p is not None, p or ""))
    lines: list[Insight] = []
    for name in cfg.metrics:
        metric, k = split_column_name(name)
        for protocol in protocols:
            where = _where(cfg.split, protocol, metric, k)
            chosen_metrics = _enough_users(metrics.filter(where), cfg.min_users)
            chosen_comparisons = _enough_users(comparisons.filter(where), cfg.min_users)
            for dataset in sorted(set(chosen_metrics["dataset"]) | set(chosen_comparisons["dataset"])):
                rows = chosen_metrics.filter(pl.col("dataset") == dataset)
                tests = chosen_comparisons.filter(pl.col("dataset") == dataset)
                n_q = _n_quantiles(rows["segment"].to_list() + tests["segment"].to_list())
                scope = Scope(dataset, cfg.split, metric, k, protocol)
                lines += tradeoff_lines(tests, scope, alpha=alpha, n_quantiles=n_q)
                lines += segment_lines(rows, scope, confidence=confidence, n_quantiles=n_q)
            overall = tied.filter(where & (pl.col("segment") == "all"))
            lines += rank_change_lines(overall, Scope(None, cfg.split, metric, k, protocol))
    rows = [line.row() for line in _capped(lines, cfg.max_lines)]
    return pl.DataFrame(rows, schema=INSIGHT_SCHEMA)


@dataclass
class Comparison:
    """The comparison of one run: ``rankings`` and ``insights`` frames (report columns without ``run_id``)."""

    rankings: pl.DataFrame
    insights: pl.DataFrame

    def lines(self) -> list[str]:
        """The insight texts, each prefixed with its dataset (``[all datasets]`` for cross-dataset lines)."""
        return [f"[{dataset or 'all datasets'}] {text}"
                for dataset, text in self.insights.select("dataset", "text").iter_rows()]


def compare_run(metrics: pl.DataFrame, comparisons: pl.DataFrame, cfg: CompareConfig | None = None, *,
                alpha: float = 0.05, confidence: float = 0.95) -> Comparison:
    """Rankings and lines of one run's ``metrics`` and ``comparisons`` rows (a ``run_id`` column, if any, is dropped).

    >>> metrics = pl.DataFrame({"dataset": "d", "model": ["pop", "mf"], "split": "test", "segment": "all",
    ...                         "metric": "ndcg", "k": 10, "value": [0.1, 0.3], "ci_low": None, "ci_high": None})
    >>> comparisons = pl.DataFrame({"dataset": "d", "split": "test", "segment": ["all", "cold_start_users"],
    ...     "baseline": "pop", "candidate": "mf", "metric": "ndcg", "k": 10, "delta": [0.2, 0.01],
    ...     "p_adjusted": [0.0001, 0.6]})
    >>> compare_run(metrics, comparisons).lines()
    ['[d] mf beats pop overall by 0.20 NDCG@10 (p<0.001) but not significantly on cold-start users (+0.01, p=0.6)']
    """
    cfg = cfg or CompareConfig()
    for frame, table in ((metrics, "metrics"), (comparisons, "comparisons")):
        if "run_id" in frame.columns and frame["run_id"].n_unique() > 1:
            raise DataError(f"the {table} rows come from {frame['run_id'].n_unique()} runs",
                            column="run_id", hint="compare one run at a time (see compare_runs)")
    rankings = rank_models(metrics)
    insights = insight_lines(metrics, comparisons, rankings, cfg, alpha=alpha, confidence=confidence)
    return Comparison(rankings, insights)
