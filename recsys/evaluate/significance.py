"""Paired significance tests over per-user metric values, and multiple-comparison corrections.

Two models are compared on the users both evaluated (and for whom both values
are defined): ``d_u = candidate_u - baseline_u``; ``delta`` is the mean of ``d``.
All tests are two-sided.

- ``paired_t``: ``t = mean(d) / (sd(d) / sqrt(n))`` with ``sd`` using ``n - 1``,
  Student's t with ``n - 1`` degrees of freedom; the interval is the t interval
  of ``delta``. Same statistic and p-value as ``scipy.stats.ttest_rel``.
- ``wilcoxon``: signed-rank test; zero differences are dropped (Wilcoxon's
  method), tied ``|d|`` get average ranks, the statistic is ``min(W+, W-)``. The
  p-value is exact (the sign-flip distribution of ``W+`` given the ranks) when at
  most 50 differences have no ties or zeros, or when there are at most 13;
  otherwise the normal approximation with tie correction and no continuity
  correction. These are ``scipy.stats.wilcoxon``'s defaults. The interval is the
  percentile bootstrap interval of ``delta``.
- ``bootstrap``: paired bootstrap over users; the interval is the percentile
  interval of resampled ``delta``; the p-value is
  ``(1 + #{|delta* - delta| >= |delta|}) / (B + 1)`` (resampled deltas centred on
  the null hypothesis, so it is never exactly 0).

A p-value is NaN when the test is undefined (fewer than two pairs, or no non-zero
difference at all: identical values). Corrections (:func:`adjust_p_values`) are
applied over one family of comparisons and leave NaN p-values out of it:
``holm`` (family-wise error) or ``benjamini_hochberg`` (false discovery rate).

>>> result = paired_test(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.3, 0.3, 0.6, 0.5]), "paired_t")
>>> round(result.delta, 3), round(result.p_value, 4)
(0.175, 0.0354)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from recsys.errors import ConfigError, DataError
from recsys.evaluate.aggregate import bootstrap_means, check_bootstrap, percentile_interval
from recsys.evaluate.config import CORRECTIONS
from recsys.evaluate.config import SIGNIFICANCE_TESTS as TESTS
from recsys.evaluate.rows import MetricRows, split_column_name

EXACT_WILCOXON_MAX = 50         # exact without ties or zeros up to this many differences
EXACT_WILCOXON_TIES_MAX = 13    # exact even with ties or zeros up to this many


@dataclass
class PairedTest:
    """Outcome of one paired comparison (``delta = candidate - baseline``)."""

    test: str
    n: int
    baseline_mean: float
    candidate_mean: float
    delta: float
    statistic: float
    p_value: float
    ci_low: float
    ci_high: float


def _pairs(baseline, candidate) -> tuple[np.ndarray, np.ndarray]:
    baseline = np.asarray(baseline, dtype=np.float64).ravel()
    candidate = np.asarray(candidate, dtype=np.float64).ravel()
    if baseline.shape != candidate.shape:
        raise DataError(f"paired values differ in length: {baseline.size} baseline, {candidate.size} candidate",
                        hint="align both models' values on the same users first")
    keep = ~(np.isnan(baseline) | np.isnan(candidate))
    return baseline[keep], candidate[keep]


def _t_test(d: np.ndarray, confidence: float) -> tuple[float, float, float, float]:
    n = len(d)
    if n < 2:
        return np.nan, np.nan, np.nan, np.nan
    mean, sd = d.mean(), d.std(ddof=1)
    se = sd / np.sqrt(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mean / se
    p = np.nan if np.isnan(t) else float(2.0 * special.stdtr(n - 1, -abs(t)))
    half = special.stdtrit(n - 1, 0.5 + confidence / 2.0) * se
    return float(t), p, float(mean - half), float(mean + half)


def _average_ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ranks 1..n with ties averaged, and the size of each tie group."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    sizes = np.diff(np.r_[starts, len(values)])
    average = starts + (sizes + 1) / 2.0                     # mean of ranks starts+1 .. starts+size
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(average, sizes)
    return ranks, sizes


def _signflip_p_value(ranks: np.ndarray, w_plus: float) -> float:
    """Exact two-sided p of ``W+`` over all 2^n sign assignments of the (doubled, integral) ranks."""
    doubled = np.rint(2 * ranks).astype(np.int64)
    counts = np.zeros(int(doubled.sum()) + 1)
    counts[0] = 1.0
    for r in doubled:                                 # at most 50 ranks (each >= 2): one shifted add each
        counts[r:] = counts[r:] + counts[:-r]
    probabilities = counts / counts.sum()
    observed = int(round(2 * w_plus))
    lower, upper = probabilities[:observed + 1].sum(), probabilities[observed:].sum()
    return float(min(1.0, 2.0 * min(lower, upper)))


def _wilcoxon(d: np.ndarray) -> tuple[float, float]:
    nonzero = d[d != 0]
    n = len(nonzero)
    if n == 0:
        return np.nan, np.nan
    ranks, sizes = _average_ranks(np.abs(nonzero))
    w_plus, w_minus = ranks[nonzero > 0].sum(), ranks[nonzero < 0].sum()
    statistic = float(min(w_plus, w_minus))
    clean = n == len(d) and np.all(sizes == 1)
    if len(d) <= EXACT_WILCOXON_TIES_MAX or (clean and len(d) <= EXACT_WILCOXON_MAX):
        return statistic, _signflip_p_value(ranks, w_plus)
    mean = n * (n + 1) / 4.0
    variance = (n * (n + 1) * (2 * n + 1) - np.sum(sizes ** 3 - sizes) / 2.0) / 24.0
    if variance <= 0:
        return statistic, np.nan
    z = (w_plus - mean) / np.sqrt(variance)
    return statistic, float(2.0 * special.ndtr(-abs(z)))


def paired_test(baseline, candidate, test: str = "paired_t", *, n_samples: int = 1000,
                confidence: float = 0.95, seed: int = 0) -> PairedTest:
    """Compare per-user values of two models (NaN pairs dropped) with ``paired_t``, ``wilcoxon`` or ``bootstrap``.

    >>> paired_test([0.0, 0.5, 1.0], [0.0, 0.5, 1.0], "wilcoxon").p_value    # identical: undefined
    nan
    """
    if test not in TESTS:
        raise ConfigError(f"unknown significance test {test!r}", setting="eval.significance_test",
                          hint=f"use one of {', '.join(TESTS)}")
    check_bootstrap(n_samples, confidence)
    baseline, candidate = _pairs(baseline, candidate)
    d = candidate - baseline
    n = len(d)
    delta = float(d.mean()) if n else np.nan
    if test == "paired_t":
        statistic, p, low, high = _t_test(d, confidence)
    else:
        means = bootstrap_means(d, n_samples, seed)[:, 0]
        low, high = (float(v[0]) for v in percentile_interval(means[:, None], confidence))
        if test == "wilcoxon":
            statistic, p = _wilcoxon(d)
        else:
            statistic = delta
            p = float((1 + np.count_nonzero(np.abs(means - delta) >= abs(delta))) / (n_samples + 1)) \
                if n >= 2 else np.nan
    return PairedTest(test=test, n=n, baseline_mean=float(baseline.mean()) if n else np.nan,
                      candidate_mean=float(candidate.mean()) if n else np.nan, delta=delta,
                      statistic=statistic, p_value=p, ci_low=low, ci_high=high)


def adjust_p_values(p_values, method: str = "holm") -> np.ndarray:
    """Adjusted p-values over one family; NaN entries stay NaN and do not count in the family size.

    ``holm``: ``max_{j<=i} min(1, (m - j + 1) p_(j))`` over ascending ``p_(j)``;
    ``benjamini_hochberg``: ``min_{j>=i} min(1, m p_(j) / j)``; ``none``: unchanged.

    >>> adjust_p_values([0.01, 0.04, 0.03], "holm").tolist()
    [0.03, 0.06, 0.06]
    >>> adjust_p_values([0.01, 0.04, 0.03], "benjamini_hochberg").round(4).tolist()
    [0.03, 0.04, 0.04]
    """
    if method not in CORRECTIONS:
        raise ConfigError(f"unknown correction {method!r}", setting="eval.correction",
                          hint=f"use one of {', '.join(CORRECTIONS)}")
    p = np.asarray(p_values, dtype=np.float64)
    out = p.copy()
    present = np.flatnonzero(~np.isnan(p))
    m = len(present)
    if method == "none" or m == 0:
        return out
    order = present[np.argsort(p[present], kind="stable")]
    ranked = p[order]
    position = np.arange(1, m + 1)
    if method == "holm":
        adjusted = np.maximum.accumulate(np.minimum(1.0, (m - position + 1) * ranked))
    else:
        adjusted = np.minimum.accumulate(np.minimum(1.0, m * ranked / position)[::-1])[::-1]
    out[order] = adjusted
    return out


def _aligned(a: MetricRows, b: MetricRows) -> tuple[np.ndarray, np.ndarray]:
    a_rows, b_rows = a.select(a.evaluated), b.select(b.evaluated)
    _, in_a, in_b = np.intersect1d(a_rows.user_idx, b_rows.user_idx, assume_unique=True, return_indices=True)
    return a_rows.select(in_a), b_rows.select(in_b)


def compare_models(models: Mapping[str, MetricRows], *, baseline: str | None = None,
                   metrics: Sequence[str] | None = None, test: str = "paired_t", correction: str = "holm",
                   n_samples: int = 1000, confidence: float = 0.95, seed: int = 0) -> list[dict]:
    """Paired tests for every metric column between models, corrected over all of them as one family.

    With ``baseline`` every other model is compared against it, otherwise every
    pair in the mapping's order (the earlier one is the baseline). Users are those
    evaluated by both models. Rows carry the ``comparisons`` report columns.

    >>> def rows(values):
    ...     n = len(values)
    ...     return MetricRows(np.arange(n), np.ones(n, np.int64), np.zeros(n, np.int64),
    ...                       {"ndcg@10": np.array(values)}, np.zeros((n, 1), np.int32),
    ...                       np.zeros((n, 1), np.float32), n_items=5)
    >>> out = compare_models({"pop": rows([0.1, 0.2, 0.3]), "mf": rows([0.3, 0.5, 0.4])})
    >>> out[0]["baseline"], out[0]["candidate"], out[0]["metric"], out[0]["k"], round(out[0]["delta"], 3)
    ('pop', 'mf', 'ndcg', 10, 0.2)
    """
    names = list(models)
    if baseline is not None and baseline not in models:
        raise ConfigError(f"baseline model {baseline!r} is not among the compared models {names}",
                          setting="baseline", hint="name one of the evaluated models")
    if baseline is not None:
        pairs = [(baseline, name) for name in names if name != baseline]
    else:
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    out = []
    for base_name, cand_name in pairs:
        base, cand = _aligned(models[base_name], models[cand_name])
        columns = [c for c in base.values if c in cand.values] if metrics is None else list(metrics)
        for column in columns:
            if column not in base.values or column not in cand.values:
                raise ConfigError(f"metric {column!r} is missing from {base_name!r} or {cand_name!r}",
                                  setting="metrics", hint="compare metrics both models were evaluated with")
            result = paired_test(base.values[column], cand.values[column], test, n_samples=n_samples,
                                 confidence=confidence, seed=seed)
            metric, k = split_column_name(column)
            out.append({"baseline": base_name, "candidate": cand_name, "metric": metric, "k": k,
                        "baseline_value": result.baseline_mean, "candidate_value": result.candidate_mean,
                        "delta": result.delta, "ci_low": result.ci_low, "ci_high": result.ci_high,
                        "p_value": result.p_value, "test": test, "correction": correction, "n_users": result.n})
    adjusted = adjust_p_values([row["p_value"] for row in out], correction)
    for row, value in zip(out, adjusted):
        row["p_adjusted"] = float(value)
    return out
