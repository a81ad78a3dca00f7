"""Per-user metric rows → averages with percentile-bootstrap confidence intervals.

A metric's value is the mean over evaluated users (users with at least one
relevant item) of their non-NaN values; ``n_users`` says how many that is. Its
interval is the percentile bootstrap: users are resampled with replacement
``n_samples`` times, the mean is taken in each resample, and the
``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of those means are
the ends. All metrics share the same resamples. Resampling is seeded, vectorised
(resamples become count vectors, the means one matrix product) and done in
chunks so memory stays bounded for millions of users. Coverage and Gini of
exposure are properties of the whole set of lists and come without an interval.

>>> rows = summarize_values({"hit_rate@1": np.array([1.0, 0.0, 1.0, 1.0])}, n_samples=200, seed=0)
>>> rows[0]["metric"], rows[0]["k"], rows[0]["value"], rows[0]["n_users"]
('hit_rate', 1, 0.75, 4)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from recsys.errors import ConfigError, DataError
from recsys.evaluate.beyond import coverage_from_exposure, exposure_counts, gini_from_exposure
from recsys.evaluate.rows import MetricRows, split_column_name

CHUNK_ELEMENTS = 1 << 22      # resample counts held at once (chunk x users); 32 MiB of float64


def check_bootstrap(n_samples: int, confidence: float) -> None:
    """Raise :class:`ConfigError` for a non-positive sample count or a confidence outside (0, 1).

    >>> check_bootstrap(1000, 0.95)
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ConfigError(f"bootstrap samples must be an integer >= 1, got {n_samples!r}",
                          setting="eval.bootstrap_samples", hint="use e.g. 1000")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must lie strictly between 0 and 1, got {confidence!r}",
                          setting="eval.confidence", hint="use e.g. 0.95")


def bootstrap_means(values: np.ndarray, n_samples: int, seed: int) -> np.ndarray:
    """Means of each column over ``n_samples`` resamples of the rows, shape ``(n_samples, n_columns)``.

    NaN entries are left out of each resample's mean (NaN when a resample has none).

    >>> bootstrap_means(np.array([[1.0], [1.0]]), n_samples=3, seed=0).tolist()
    [[1.0], [1.0], [1.0]]
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    n, m = values.shape
    out = np.full((n_samples, m), np.nan)
    if n == 0:
        return out
    present = ~np.isnan(values)
    filled = np.where(present, values, 0.0)
    rng = np.random.default_rng(seed)
    chunk = max(1, CHUNK_ELEMENTS // n)
    for start in range(0, n_samples, chunk):
        size = min(chunk, n_samples - start)
        draws = rng.integers(0, n, size=(size, n))                               # (c, n) row indices
        flat = (draws + (np.arange(size) * n)[:, None]).ravel()
        counts = np.bincount(flat, minlength=size * n).reshape(size, n).astype(np.float64)  # (c, n)
        totals, used = counts @ filled, counts @ present                         # (c, m) each
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:start + size] = np.where(used > 0, totals / np.where(used > 0, used, 1), np.nan)
    return out


def percentile_interval(means: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper quantiles of bootstrap means per column, ignoring NaN resamples.

    >>> low, high = percentile_interval(np.arange(101, dtype=float)[:, None], 0.9)
    >>> low.round(6).tolist(), high.round(6).tolist()
    ([5.0], [95.0])
    """
    alpha = (1.0 - confidence) / 2.0
    means = np.asarray(means, dtype=np.float64)
    low, high = np.full(means.shape[1], np.nan), np.full(means.shape[1], np.nan)
    usable = ~np.all(np.isnan(means), axis=0)
    if usable.any():
        quantiles = np.nanquantile(means[:, usable], [alpha, 1.0 - alpha], axis=0)
        low[usable], high[usable] = quantiles
    return low, high


def summarize_values(values: Mapping[str, np.ndarray], *, n_samples: int = 1000, confidence: float = 0.95,
                     seed: int = 0) -> list[dict]:
    """Mean, bootstrap interval and user count of each per-user column (column names as ``"ndcg@10"``).

    >>> summarize_values({"auc": np.array([0.5, np.nan])}, n_samples=10)[0]["n_users"]
    1
    """
    check_bootstrap(n_samples, confidence)
    names = list(values)
    if not names:
        return []
    matrix = np.column_stack([np.asarray(values[name], dtype=np.float64) for name in names])
    present = ~np.isnan(matrix)
    counts = present.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, np.where(present, matrix, 0.0).sum(axis=0) / np.maximum(counts, 1), np.nan)
    low, high = percentile_interval(bootstrap_means(matrix, n_samples, seed), confidence)
    out = []
    for j, name in enumerate(names):
        metric, k = split_column_name(name)
        out.append({"metric": metric, "k": k, "value": _float(means[j]), "ci_low": _float(low[j]),
                    "ci_high": _float(high[j]), "n_users": int(counts[j])})
    return out


def _float(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def summarize(rows: MetricRows, *, n_samples: int = 1000, confidence: float = 0.95, seed: int = 0) -> list[dict]:
    """Report rows (``metric, k, value, ci_low, ci_high, n_users``) for every metric of evaluated users.

    Adds ``coverage`` and ``gini`` (of exposure) at each cut-off from the top-k lists;
    undefined values are ``None``. Excluded users (no relevant item) take no part;
    :attr:`MetricRows.n_excluded` counts them.

    >>> rows = MetricRows(np.array([0, 1]), np.array([1, 1]), np.zeros(2, np.int64),
    ...                   {"hit_rate@1": np.array([1.0, 0.0])}, np.array([[0], [2]], np.int32),
    ...                   np.zeros((2, 1), np.float32), n_items=4)
    >>> [(r["metric"], r["value"]) for r in summarize(rows, n_samples=50)]
    [('hit_rate', 0.5), ('coverage', 0.5), ('gini', 0.5)]
    """
    if not isinstance(rows, MetricRows):
        raise DataError(f"expected MetricRows, got {type(rows).__name__}", hint="pass evaluate_users(...) output")
    evaluated = rows.select(rows.evaluated)
    out = summarize_values(evaluated.values, n_samples=n_samples, confidence=confidence, seed=seed)
    for k in rows.ks if evaluated.n_users else []:
        exposure = exposure_counts(evaluated.topk_items, rows.n_items, k)
        for metric, value in (("coverage", coverage_from_exposure(exposure)), ("gini", gini_from_exposure(exposure))):
            out.append({"metric": metric, "k": k, "value": _float(value), "ci_low": None, "ci_high": None,
                        "n_users": evaluated.n_users})
    return out
