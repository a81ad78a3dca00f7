"""Numeric helpers the rules share: smoothing, running medians, rank correlation, curve extraction.

Every helper takes plain arrays and is scale-free where a rule needs it to be
(ratios, signs, ranks), so multiplying a loss by a constant changes no finding.

>>> smooth(np.array([1.0, 3.0, 5.0, 7.0]), 2).tolist()
[1.0, 2.0, 4.0, 6.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import polars as pl


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` points (fewer at the start).

    >>> smooth(np.array([2.0, 4.0, 6.0]), 5).tolist()
    [2.0, 3.0, 4.0]
    """
    values = np.asarray(values, dtype=np.float64)
    window = max(1, int(window))
    csum = np.concatenate([[0.0], np.cumsum(values)])
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(0, idx - window)
    return (csum[idx] - csum[lo]) / (idx - lo)


def end_medians(values: np.ndarray, window: int) -> tuple[float, float]:
    """Medians of the first and of the last ``min(window, n // 3)`` points (at least one each).

    >>> end_medians(np.arange(9.0), 2)
    (0.5, 7.5)
    """
    values = np.asarray(values, dtype=np.float64)
    w = max(1, min(int(window), len(values) // 3))
    return float(np.median(values[:w])), float(np.median(values[-w:]))


def spike_ratios(values: np.ndarray, window: int, min_history: int) -> np.ndarray:
    """Each value over the median of the up to ``window`` values before it; NaN where fewer than
    ``min_history`` values precede it or that median is not positive.

    >>> spike_ratios(np.array([1.0, 1.0, 1.0, 10.0, 1.0]), window=3, min_history=2).tolist()
    [nan, nan, 1.0, 10.0, 1.0]
    """
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    window = max(1, int(window))
    medians = np.full(n, np.nan)
    for t in range(min(n, window)):
        if t >= min_history and t > 0:
            medians[t] = np.median(values[:t])
    if n > window:
        windows = np.lib.stride_tricks.sliding_window_view(values[:-1], window)   # (n - window, window)
        medians[window:] = np.median(windows, axis=1)
    start = max(int(min_history), 1)
    medians[:start] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(medians > 0, values / np.where(medians > 0, medians, 1.0), np.nan)


def sign_change_share(values: np.ndarray) -> Optional[float]:
    """Share of consecutive non-zero differences that flip sign; None with fewer than two.

    >>> sign_change_share(np.array([1.0, 2.0, 1.0, 2.0, 3.0]))
    0.6666666666666666
    """
    diffs = np.diff(np.asarray(values, dtype=np.float64))
    signs = np.sign(diffs[diffs != 0])
    if len(signs) < 2:
        return None
    return float(np.mean(signs[1:] != signs[:-1]))


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties given their average rank.

    >>> ranks(np.array([10.0, 20.0, 10.0])).tolist()
    [1.5, 3.0, 1.5]
    """
    return pl.Series(np.asarray(values, dtype=np.float64)).rank("average").to_numpy().astype(np.float64)


def spearman(x: np.ndarray, y: np.ndarray) -> Optional[float]:
    """Spearman rank correlation (Pearson on average ranks); None when either side is constant.

    >>> spearman(np.array([1.0, 2.0, 3.0]), np.array([10.0, 30.0, 20.0]))
    0.5
    """
    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = float(np.sqrt((rx @ rx) * (ry @ ry)))
    if len(rx) < 2 or denom == 0.0:
        return None
    return float(np.clip((rx @ ry) / denom, -1.0, 1.0))


def value_at(x: np.ndarray, y: np.ndarray, x0: float) -> float:
    """``y`` at the last ``x <= x0`` (the first point when none is).

    >>> value_at(np.array([0, 1, 2]), np.array([5.0, 4.0, 3.0]), 1.5)
    4.0
    """
    i = int(np.searchsorted(np.asarray(x), x0, side="right")) - 1
    return float(np.asarray(y)[max(i, 0)])


@dataclass(frozen=True)
class Series:
    """One curve: ``x`` in ``unit`` (epoch or step), ascending, with its values and the step of each point
    (the last step of an epoch), so curves of different units can be aligned by step."""

    name: str
    unit: str
    x: np.ndarray
    y: np.ndarray
    steps: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


def curve(rows: pl.DataFrame, name: str) -> Optional[Series]:
    """The series ``name`` of one unit's curve rows, by epoch when every point has one, else by step.

    Non-finite values are kept (the NaN rule reads them); several points per epoch are averaged.

    >>> rows = pl.DataFrame({"step": [9, 19], "epoch": [0, 1], "name": ["val/ndcg@10"] * 2, "value": [0.1, 0.2]})
    >>> s = curve(rows, "val/ndcg@10"); s.unit, s.x.tolist(), s.y.tolist()
    ('epoch', [0, 1], [0.1, 0.2])
    """
    part = rows.filter(pl.col("name") == name)
    if part.height == 0:
        return None
    if part.get_column("epoch").null_count() == 0:
        by = part.group_by("epoch").agg(pl.col("value").mean(), pl.col("step").max()).sort("epoch", "step")
        return Series(name, "epoch", by.get_column("epoch").to_numpy(), by.get_column("value").to_numpy(),
                      by.get_column("step").to_numpy())
    return step_curve(rows, name)


def step_curve(rows: pl.DataFrame, name: str) -> Optional[Series]:
    """The series ``name`` by step, one point per logged row.

    >>> rows = pl.DataFrame({"step": [1, 0], "epoch": [0, 0], "name": ["train/loss"] * 2, "value": [2.0, 3.0]})
    >>> step_curve(rows, "train/loss").y.tolist()
    [3.0, 2.0]
    """
    part = rows.filter(pl.col("name") == name).sort("step")
    if part.height == 0:
        return None
    steps = part.get_column("step").to_numpy()
    return Series(name, "step", steps, part.get_column("value").to_numpy(), steps)


def finite_part(series: Series) -> Series:
    """The points of ``series`` whose value is finite."""
    keep = np.isfinite(series.y.astype(np.float64))
    return Series(series.name, series.unit, series.x[keep], series.y[keep].astype(np.float64), series.steps[keep])
