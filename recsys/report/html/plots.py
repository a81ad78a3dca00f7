"""Small matplotlib plots (Agg backend) rendered as inline SVG strings.

Each function takes plain Python/NumPy data and returns ``<svg ...>...</svg>``,
ready to sit inside the HTML page; nothing refers to a file or the network.
Text stays text in the SVG (``svg.fonttype: none``), so section titles and
labels are searchable in the page.

>>> svg = bars_with_ci(["pop", "mf"], [0.2, 0.3], [0.15, 0.25], [0.25, 0.35], "NDCG@10")
>>> svg.startswith("<svg") and "NDCG@10" in svg
True
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence

import numpy as np

_PALETTE = ["#0969da", "#cf222e", "#1a7f37", "#bf8700", "#8250df", "#57606a", "#e16f24", "#0598bc"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
                         "axes.spines.right": False, "figure.dpi": 80})
    return plt


def colour(index: int) -> str:
    """The ``index``-th colour of the report's palette (cycling)."""
    return _PALETTE[index % len(_PALETTE)]


def to_svg(fig) -> str:
    """The figure as an SVG element (XML header and DOCTYPE dropped); closes the figure."""
    plt = _plt()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return re.sub(r"<metadata>.*?</metadata>", "", text[text.index("<svg"):], flags=re.S)


def _ci_errors(values, lows, highs) -> np.ndarray | None:
    v = np.asarray(values, dtype=float)
    lo = np.asarray([np.nan if x is None else x for x in lows], dtype=float)
    hi = np.asarray([np.nan if x is None else x for x in highs], dtype=float)
    if np.all(np.isnan(lo)) and np.all(np.isnan(hi)):
        return None
    return np.vstack([np.nan_to_num(v - lo), np.nan_to_num(hi - v)]).clip(min=0)


def bars_with_ci(labels: Sequence[str], values, lows, highs, xlabel: str, title: str = "") -> str:
    """Horizontal bars, one per label, with confidence-interval whiskers."""
    plt = _plt()
    values = np.asarray([np.nan if v is None else v for v in values], dtype=float)
    fig, ax = plt.subplots(figsize=(6.4, 0.35 * len(labels) + 0.9))
    y = np.arange(len(labels))
    ax.barh(y, np.nan_to_num(values), xerr=_ci_errors(values, lows, highs), color=colour(0), alpha=0.85,
            capsize=3, ecolor="#24292f")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.axvline(0, color="#57606a", linewidth=0.6)
    if title:
        ax.set_title(title)
    return to_svg(fig)


def grouped_bars(groups: Sequence[str], series: Mapping[str, tuple[list, list, list]], ylabel: str,
                 title: str = "") -> str:
    """Vertical bars: one group per entry of ``groups``, one bar per series (value, low, high lists)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(min(1.0 + 0.9 * len(groups) * max(len(series), 1) / 2, 9.5), 3.0))
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for index, (name, (values, lows, highs)) in enumerate(series.items()):
        values = np.asarray([np.nan if v is None else v for v in values], dtype=float)
        ax.bar(x + (index - (len(series) - 1) / 2) * width, np.nan_to_num(values), width,
               yerr=_ci_errors(values, lows, highs), capsize=2, label=name, color=colour(index))
    ax.set_xticks(x, groups, rotation=20 if len(groups) > 5 else 0)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, frameon=False)
    if title:
        ax.set_title(title)
    return to_svg(fig)


def heatmap(matrix: np.ndarray, rows: Sequence[str], cols: Sequence[str], *, title: str = "",
            colorbar: str = "", cmap: str = "viridis", annotate: Sequence[Sequence[str]] | None = None,
            center: float | None = None, xlabel: str = "") -> str:
    """A matrix as coloured cells (NaN left blank), optionally annotated and centred (diverging)."""
    plt = _plt()
    matrix = np.asarray(matrix, dtype=float)
    height = max(1.6, 0.28 * len(rows) + 1.2)
    width = min(max(3.5, 0.55 * len(cols) + 2.5), 11)
    fig, ax = plt.subplots(figsize=(width, height))
    kwargs = {}
    finite = matrix[np.isfinite(matrix)]
    if center is not None and finite.size:
        span = max(float(np.max(np.abs(finite - center))), 1e-12)
        kwargs = {"vmin": center - span, "vmax": center + span}
    image = ax.imshow(np.ma.masked_invalid(matrix), aspect="auto", cmap=cmap, interpolation="nearest", **kwargs)
    ax.set_yticks(range(len(rows)), rows)
    step = max(1, math.ceil(len(cols) / 24))
    ax.set_xticks(range(0, len(cols), step), [cols[i] for i in range(0, len(cols), step)],
                  rotation=45 if max((len(str(c)) for c in cols), default=0) > 4 else 0, ha="right")
    if annotate is not None:
        for i, row in enumerate(annotate):
            for j, text in enumerate(row):
                if text and np.isfinite(matrix[i, j]):
                    r, g, b, _ = image.cmap(image.norm(matrix[i, j]))
                    dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.55
                    ax.text(j, i, text, ha="center", va="center", fontsize=7,
                            color="#ffffff" if dark else "#000000")
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label(colorbar)
    if xlabel:
        ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    return to_svg(fig)


def line_panels(panels: Mapping[str, Mapping[str, tuple[Sequence, Sequence]]], xlabel: str,
                right: Mapping[str, Mapping[str, tuple[Sequence, Sequence]]] | None = None,
                ylabel: str = "", right_label: str = "", logy: bool = False) -> str:
    """One small panel per key; each holds named lines ``(x, y)``; optional second y axis per panel."""
    plt = _plt()
    names = list(panels)
    ncols = min(3, max(len(names), 1))
    nrows = math.ceil(len(names) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 2.4 * nrows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, names):
        handles = []
        for index, (label, (x, y)) in enumerate(panels[name].items()):
            handles += ax.plot(x, y, marker="o", markersize=2.5, linewidth=1.2, label=label, color=colour(index))
        if logy:
            ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if right and right.get(name):
            twin = ax.twinx()
            for index, (label, (x, y)) in enumerate(right[name].items(), start=len(panels[name])):
                handles += twin.plot(x, y, marker="s", markersize=2.5, linewidth=1.2, linestyle="--",
                                     label=label, color=colour(index))
            twin.set_ylabel(right_label)
        if handles:
            ax.legend(handles=handles, fontsize=7, frameon=False)
    fig.tight_layout()
    return to_svg(fig)


def lines(series: Mapping[str, tuple[Sequence, Sequence]], xlabel: str, ylabel: str, title: str = "") -> str:
    """Named lines ``(x, y)`` on one wide axis, the legend outside on the right (many lines stay readable)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 2.8))
    for index, (name, (x, y)) in enumerate(series.items()):
        ax.plot(x, y, marker="o", markersize=2.5, linewidth=1.2, label=name, color=colour(index))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return to_svg(fig)


def scatter_groups(groups: Mapping[str, tuple[Sequence, Sequence]], xlabel: str, ylabel: str, title: str = "",
                   markers: Mapping[str, str] | None = None, lines: Mapping[str, tuple[Sequence, Sequence]] | None = None
                   ) -> str:
    """Points coloured by group (and optionally step lines, e.g. best-so-far), one legend entry each."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    for index, (name, (x, y)) in enumerate(groups.items()):
        ax.scatter(x, y, s=22, color=colour(index), marker=(markers or {}).get(name, "o"), label=name, alpha=0.85)
    for index, (name, (x, y)) in enumerate((lines or {}).items()):
        ax.step(x, y, where="post", linewidth=1.4, color=colour(index + 4), label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7, frameon=False, loc="best")
    return to_svg(fig)
