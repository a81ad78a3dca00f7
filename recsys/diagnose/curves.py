"""Loss-curve rules: NaN loss, divergence, plateau, oscillation (``curves`` table).

Each rule looks at one training unit at a time (run, dataset, model, trial) and at
its training loss: the step-level series ``cfg.train_loss`` and the epoch-level
``cfg.train_loss_epoch`` (epoch means of the step-level loss when absent). The
loss at the *start* is the median of the first ``curves.start_points`` step-level
points (the first epoch-level point without them). Every measure is a ratio of
loss values, so multiplying a loss by a positive constant changes no finding.
Validation-curve rules live in :mod:`recsys.diagnose.fitting`.

>>> import polars as pl
>>> from recsys.diagnose.inputs import DiagnosisInputs, prepare
>>> from recsys.diagnose.config import DiagnoseConfig
>>> loss = [1.0, 0.8, 0.7, float("nan")]
>>> df = pl.DataFrame({"model": ["mf"] * 4, "step": [0, 1, 2, 3], "name": ["train/loss"] * 4, "value": loss})
>>> [f.code for f in nan_loss(DiagnosisInputs(curves=prepare(df, "curves")), DiagnoseConfig())]
['NAN_LOSS']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import polars as pl

from recsys.diagnose.config import DiagnoseConfig
from recsys.diagnose.finding import Finding, fmt, severity_of
from recsys.diagnose.inputs import DiagnosisInputs, against_baseline, by_unit, has_rows, same_run
from recsys.diagnose.remedies import remedy
from recsys.diagnose.series import Series, curve, end_medians, finite_part, sign_change_share, smooth, step_curve


@dataclass(frozen=True)
class LossView:
    """The finite training loss of one unit at two resolutions, and its value at the start."""

    steps: Optional[Series]      # step-level points
    epochs: Optional[Series]     # epoch-level points (epoch means when only steps were logged)
    start: float


def loss_view(rows: pl.DataFrame, cfg: DiagnoseConfig) -> Optional[LossView]:
    """The training loss of one unit's curve rows, or None when it has no finite point."""
    steps = step_curve(rows, cfg.train_loss)
    steps = finite_part(steps) if steps is not None else None
    epochs = curve(rows, cfg.train_loss_epoch)
    if epochs is None and steps is not None:
        coarse = curve(rows, cfg.train_loss)
        epochs = coarse if coarse is not None and coarse.unit == "epoch" else None
    epochs = finite_part(epochs) if epochs is not None else None
    steps = steps if steps is not None and len(steps) else None
    epochs = epochs if epochs is not None and len(epochs) else None
    if steps is None and epochs is None:
        return None
    if steps is not None:
        start = float(np.median(steps.y[: max(1, cfg.curves.start_points)]))
    else:
        start = float(epochs.y[0])
    return LossView(steps, epochs, start)


def smoothed_final(view: LossView, cfg: DiagnoseConfig) -> float:
    """The training loss now: trailing mean of the last epoch-level (else step-level) points."""
    if view.epochs is not None:
        return float(smooth(view.epochs.y, cfg.curves.smooth_window)[-1])
    return float(smooth(view.steps.y, cfg.curves.step_smooth_window)[-1])


def _units(inputs: DiagnosisInputs):
    for where, rows in by_unit(inputs.curves):
        yield {**where, "table": "curves"}, rows


def nan_loss(inputs: DiagnosisInputs, cfg: DiagnoseConfig) -> list[Finding]:
    """NAN_LOSS (critical): a series whose name contains ``loss`` has a NaN or infinite value.

    Evidence: the count of non-finite points, the first step with one, the last finite value before it.
    """
    out = []
    for where, rows in _units(inputs):
        for name in sorted(n for n in rows.get_column("name").unique().to_list() if "loss" in n):
            series = step_curve(rows, name)
            bad = ~np.isfinite(series.y.astype(np.float64))
            if not bad.any():
                continue
            first = int(np.argmax(bad))
            last_finite = float(series.y[first - 1]) if first > 0 else None
            out.append(Finding(
                "NAN_LOSS", "critical", {**where, "series": name},
                f"{name} has {int(bad.sum())} non-finite value(s) out of {len(series)}, "
                f"the first at step {int(series.x[first])}",
                {"n_nonfinite": int(bad.sum()), "n_points": len(series), "first_step": int(series.x[first]),
                 "last_finite_value": last_finite},
                remedy("The loss overflowed: lower the learning rate, clip gradients, and check the inputs "
                       "(text vectors, ratings) for NaN; train in fp32.",
                       {"param": "train.lr", "op": "scale_range", "factor": 0.1},
                       {"param": "train.grad_clip", "op": "set", "value": 1.0})))
    return out


def loss_divergence(inputs: DiagnosisInputs, cfg: DiagnoseConfig) -> list[Finding]:
    """LOSS_DIVERGENCE: the smoothed training loss ends well above its minimum.

    On the step-level loss (trailing mean over ``curves.step_smooth_window``) when it has
    ``curves.min_points`` points, else the epoch-level loss (``curves.smooth_window``):
    ``rise = (final - min) / max(|min|, start - min)``. Warning at ``rise >= curves.divergence_rise``;
    critical at ``curves.divergence_rise_critical`` or when the final loss is back at or above the start.
    A loss that never came down is judged by where it ends: ``above_start = (final - start) / |start|``
    at or above ``curves.divergence_above_start`` is a warning (the rise over a minimum that is the
    first point says little then).
    """
    t = cfg.curves
    out = []
    for where, rows in _units(inputs):
        view = loss_view(rows, cfg)
        if view is None:
            continue
        if view.steps is not None and len(view.steps) >= t.min_points:
            series, window = view.steps, t.step_smooth_window
        elif view.epochs is not None and len(view.epochs) >= t.min_points:
            series, window = view.epochs, t.smooth_window
        else:
            continue
        s = smooth(series.y, window)
        i_min = int(np.argmin(s))
        low, final = float(s[i_min]), float(s[-1])
        scale = max(abs(low), view.start - low)
        if scale <= 0:
            continue
        rise = (final - low) / scale
        above_start = (final - view.start) / abs(view.start) if view.start != 0 else 0.0
        severity = severity_of(rise, t.divergence_rise, t.divergence_rise_critical)
        if severity is not None:
            if final >= view.start:
                severity = "critical"
            message = (f"smoothed {series.name} rose from its minimum {fmt(low)} ({series.unit} "
                       f"{int(series.x[i_min])}) to {fmt(final)}: rise {fmt(rise)} >= {fmt(t.divergence_rise)} "
                       f"(start {fmt(view.start)})")
        elif above_start >= t.divergence_above_start:
            severity = "warning"
            message = (f"smoothed {series.name} ends at {fmt(final)}, {fmt(100 * above_start)}% above its start "
                       f"{fmt(view.start)}: training made the loss worse (lowest {fmt(low)})")
        else:
            continue
        out.append(Finding(
            "LOSS_DIVERGENCE", severity, {**where, "series": series.name}, message,
            {"start": view.start, "min": low, "min_at": int(series.x[i_min]), "unit": series.unit, "final": final,
             "rise": rise, "above_start": above_start, "divergence_rise": t.divergence_rise,
             "divergence_rise_critical": t.divergence_rise_critical,
             "divergence_above_start": t.divergence_above_start},
            remedy("Training diverged: lower the learning rate and clip gradients.",
                   {"param": "train.lr", "op": "scale_range", "factor": 0.1},
                   {"param": "train.grad_clip", "op": "set", "value": 1.0})))
    return out


def loss_plateau(inputs: DiagnosisInputs, cfg: DiagnoseConfig) -> list[Finding]:
    """LOSS_PLATEAU (warning): training stalled before it learned much.

    On the epoch-level loss smoothed over ``curves.smooth_window`` (``s``), with
    ``W = curves.plateau_window`` and at least ``max(curves.min_points, W + 1)`` epochs:
    ``recent = (s[-W-1] - s[-1]) / |s[-W-1]| < curves.plateau_rel_improvement`` and the best
    improvement ever, ``total = (start - min(s)) / |start| < curves.plateau_max_total_improvement``.
    A loss that flattens after a real drop is convergence (or, if it rose again, divergence), not a
    plateau. When ``metrics`` show the model at ``curves.plateau_learned_ratio`` times the popularity
    baseline or more, the flat loss is reported as ``info``: the inputs (e.g. the text vectors) carried
    the signal from the first step, so the loss starts near where it can get.
    """
    t = cfg.curves
    w = t.plateau_window
    out = []
    for where, rows in _units(inputs):
        view = loss_view(rows, cfg)
        if view is None or view.epochs is None or len(view.epochs) < max(t.min_points, w + 1):
            continue
        s = smooth(view.epochs.y, t.smooth_window)
        before, final = float(s[-w - 1]), float(s[-1])
        if before == 0 or view.start == 0:
            continue
        recent = (before - final) / abs(before)
        total = (view.start - float(np.min(s))) / abs(view.start)
        if recent >= t.plateau_rel_improvement or total >= t.plateau_max_total_improvement:
            continue
        learned = _over_baseline(inputs, where, cfg)
        severity, note = "warning", ""
        if learned is not None and learned["ratio"] >= t.plateau_learned_ratio:
            severity = "info"
            note = f"; yet {learned['metric']} is {fmt(learned['ratio'])}x {cfg.baseline_model}'s: it learned early"
        out.append(Finding(
            "LOSS_PLATEAU", severity, {**where, "series": view.epochs.name},
            f"{view.epochs.name} improved {fmt(100 * recent)}% over the last {w} epochs and "
            f"at best {fmt(100 * total)}% since the start ({fmt(view.start)} -> {fmt(final)}){note}",
            {"start": view.start, "final": final, "recent_rel_improvement": recent, "total_rel_improvement": total,
             "plateau_window": w, "plateau_rel_improvement": t.plateau_rel_improvement,
             "plateau_max_total_improvement": t.plateau_max_total_improvement,
             "plateau_learned_ratio": t.plateau_learned_ratio, **(learned or {})},
            remedy("The loss is stuck near its starting value: raise the learning rate, and check the gradients "
                   "(VANISHING_GRADIENTS, LR_TOO_LOW) and that the inputs carry signal.",
                   {"param": "train.lr", "op": "scale_range", "factor": 10.0})))
    return out


def _over_baseline(inputs: DiagnosisInputs, where: dict[str, Any], cfg: DiagnoseConfig) -> Optional[dict[str, Any]]:
    """The unit's model against the popularity baseline on ``diagnose.metric@k``, or None without both values."""
    model = where.get("model")
    if model is None or model == cfg.baseline_model or not has_rows(inputs.metrics):
        return None
    found = against_baseline(same_run(inputs.metrics, where), model, cfg.metric, cfg.k, cfg.splits,
                             cfg.baseline_model)
    if found is None or found[2]["value"] <= 0:
        return None
    split, own, pop = found
    return {"metric": f"{cfg.metric}@{cfg.k}", "split": split, "value": own["value"],
            "baseline_value": pop["value"], "ratio": own["value"] / pop["value"]}


def _oscillation(series: Series, start: float) -> dict[str, Any]:
    y = series.y
    amplitude = float(np.median(np.abs(np.diff(y))))
    scale = max(float(np.median(np.abs(y))), start - float(np.min(y)))
    early, late = end_medians(y, max(1, len(y) // 4))
    trend = abs(late - early) / max(len(y) - 1, 1)
    return {"rel_amplitude": amplitude / scale if scale > 0 else 0.0,
            "sign_change_share": sign_change_share(y) or 0.0,
            "trend_multiple": amplitude / trend if trend > 0 else (float("inf") if amplitude > 0 else 0.0)}


def loss_oscillation(inputs: DiagnosisInputs, cfg: DiagnoseConfig) -> list[Finding]:
    """LOSS_OSCILLATION (warning): the training loss swings up and down more than it trends.

    On the step-level loss (the epoch-level one when it has fewer than
    ``curves.oscillation_min_points`` points), raw: with ``d`` the point-to-point changes,
    ``median|d| / max(median|loss|, start - min) >= curves.oscillation_rel_amplitude``, the share
    of consecutive changes that flip sign ``>= curves.oscillation_sign_changes``, and
    ``median|d| >= curves.oscillation_trend_multiple x`` the mean change per point between the
    first and the last quarter.
    """
    t = cfg.curves
    out = []
    for where, rows in _units(inputs):
        view = loss_view(rows, cfg)
        if view is None:
            continue
        candidates = [s for s in (view.steps, view.epochs) if s is not None and len(s) >= t.oscillation_min_points]
        if not candidates:
            continue
        series = candidates[0]
        m = _oscillation(series, view.start)
        if (m["rel_amplitude"] < t.oscillation_rel_amplitude or m["sign_change_share"] < t.oscillation_sign_changes
                or m["trend_multiple"] < t.oscillation_trend_multiple):
            continue
        out.append(Finding(
            "LOSS_OSCILLATION", "warning", {**where, "series": series.name},
            f"{series.name} swings {fmt(100 * m['rel_amplitude'])}% per {series.unit} "
            f"({fmt(100 * m['sign_change_share'])}% sign flips, {fmt(m['trend_multiple'])}x the trend)",
            {**m, "n_points": len(series), "unit": series.unit,
             "oscillation_rel_amplitude": t.oscillation_rel_amplitude,
             "oscillation_sign_changes": t.oscillation_sign_changes,
             "oscillation_trend_multiple": t.oscillation_trend_multiple},
            remedy("The optimiser overshoots: lower the learning rate, use larger batches, clip gradients.",
                   {"param": "train.lr", "op": "scale_range", "factor": 0.3},
                   {"param": "train.batch_size", "op": "scale_range", "factor": 2.0},
                   {"param": "train.grad_clip", "op": "set", "value": 1.0})))
    return out
