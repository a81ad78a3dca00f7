"""Training section: loss and validation curves per model, gradient norms and update ratios per layer over steps
(a fine-tuned encoder's tensors one row per transformer block), and the encoder's drift from its pretrained state."""

from __future__ import annotations

import numpy as np
import polars as pl

from recsys.report.html import plots
from recsys.report.html.encoder import by_block, drift
from recsys.report.html.data import RunData
from recsys.report.html.page import Section, esc, figure_html, note, pair, table_html

LOSS_NAMES = ("train/loss", "train/epoch_loss")


def _series(frame: pl.DataFrame, x: str = "step") -> dict[str, tuple[list, list]]:
    out = {}
    for (name,), group in frame.sort(x).group_by(["name"], maintain_order=True):
        out[name] = (group[x].to_list(), group["value"].to_list())
    return out


def _model_label(dataset: str | None, model: str, several: bool) -> str:
    return f"{model} [{dataset}]" if several and dataset else model


def curves(data: RunData) -> str:
    """Small multiples: training loss (left axis) and validation metrics (right axis) per model and dataset."""
    frame = data.tables["curves"].filter(pl.col("trial_id").is_null())
    losses = frame.filter(pl.col("name").is_in(LOSS_NAMES))
    vals = frame.filter(pl.col("name").str.starts_with("val/"))
    if losses.is_empty() and vals.is_empty():
        return note("No training curves in this run (the train stage did not run, or only untrained models).")
    several = len(set(frame["dataset"].drop_nulls().to_list())) > 1
    left, right = {}, {}
    keys = sorted(set(losses.select("dataset", "model").rows()) | set(vals.select("dataset", "model").rows()),
                  key=lambda r: (r[0] or "", r[1]))
    for dataset, model in keys:
        label = _model_label(dataset, model, several)
        mine = (pl.col("model") == model) & (pl.col("dataset").is_null() if dataset is None
                                             else pl.col("dataset") == dataset)
        if losses.filter(mine).is_empty() and vals.filter(mine)["step"].n_unique() < 2:
            continue                  # an untrained model (pop): one validation point, no curve
        left[label] = _series(losses.filter(mine))
        right[label] = _series(vals.filter(mine))
    if not left:
        return note("No trained model in this run has a training curve.")
    return figure_html(plots.line_panels(left, "step", right=right, ylabel="loss", right_label="validation"),
                       "training loss (solid, left axis) and validation metrics (dashed, right axis) per model")


def _matrix(frame: pl.DataFrame, column: str) -> tuple[np.ndarray, list[str], list[int]]:
    layers = frame.select("layer").unique(maintain_order=True)["layer"].to_list()
    steps = sorted(set(frame["step"].to_list()))
    li, si = {name: i for i, name in enumerate(layers)}, {s: j for j, s in enumerate(steps)}
    matrix = np.full((len(layers), len(steps)), np.nan)
    for layer, step, value in frame.select("layer", "step", column).iter_rows():
        if value is not None and value > 0:
            matrix[li[layer], si[step]] = np.log10(value)
    return matrix, layers, steps


def gradients(data: RunData) -> str:
    """Per model: heatmaps of log10 gradient norm and log10 update ratio, layers x steps (trained encoder
    blocks one row each, :func:`~recsys.report.html.encoder.by_block`); NaN/Inf counts; the drift
    from the pretrained encoder of a model that records it."""
    frame = data.tables["grad_stats"].filter(pl.col("trial_id").is_null())
    if frame.is_empty():
        return note("No gradient statistics in this run.")
    several = len(set(frame["dataset"].drop_nulls().to_list())) > 1
    curve_rows = data.tables["curves"].filter(pl.col("trial_id").is_null())
    parts = []
    for (dataset, model), group in frame.sort("dataset", "model", "step").group_by(["dataset", "model"],
                                                                                     maintain_order=True):
        label = _model_label(dataset, model, several)
        group = by_block(group)
        grad, layers, steps = _matrix(group, "grad_norm")
        ratio, _, _ = _matrix(group, "update_ratio")
        parts.append(f"<h3>Gradients: {esc(label)}</h3>")
        parts.append(pair(
            figure_html(plots.heatmap(grad, layers, [str(s) for s in steps], colorbar="log10 grad norm",
                                      cmap="magma", xlabel="step", title=f"{label}: gradient norm per layer"),
                        "dark rows = vanishing gradients, bright cells = exploding ones (log10 scale)"),
            figure_html(plots.heatmap(ratio, layers, [str(s) for s in steps], colorbar="log10 update / weight",
                                      cmap="viridis", xlabel="step", title=f"{label}: update ratio per layer"),
                        "norm of the step's update / weight norm; around 1e-3 is the usual healthy range")))
        bad = group.filter((pl.col("nan_count").fill_null(0) > 0) | (pl.col("inf_count").fill_null(0) > 0))
        if bad.height:
            parts.append("<p><b>Non-finite gradients:</b></p>")
            parts.append(table_html(bad.select("step", "layer", "nan_count", "inf_count"), max_rows=20))
        mine = (pl.col("model") == model) & (pl.col("dataset").is_null() if dataset is None
                                             else pl.col("dataset") == dataset)
        parts.append(drift(curve_rows.filter(mine), label))
    return "".join(parts)


def training(data: RunData) -> Section:
    """The training section."""
    return Section("training", "Training", "<h3>Loss and validation curves</h3>" + curves(data) + gradients(data))
