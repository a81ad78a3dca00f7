"""Validation-curve rules: overfitting, underfitting, early-stopping instability (``curves``, ``metrics``).

The validation curve of a unit is the series ``cfg.val_series`` (default
``val/ndcg@10``; higher is better), one point per epoch. Training and validation
points are aligned by step. Measures are ratios, so scaling the loss or the metric
by a positive constant changes no finding.

>>> from recsys.diagnose.config import DiagnoseConfig
>>> simulated_stop(np.array([0.1, 0.2, 0.19, 0.18, 0.17, 0.3]), patience=3)
(4, 1)
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import polars as pl

from recsys.diagnose.config import DiagnoseConfig
from recsys.diagnose.curves import loss_view, smoothed_final
from recsys.diagnose.finding import Finding, fmt
from recsys.diagnose.inputs import DiagnosisInputs, against_baseline, by_unit, has_rows, same_run
from recsys.diagnose.remedies import model_edit, remedy
from recsys.diagnose.series import curve, finite_part, smooth, value_at


def _val_units(inputs: DiagnosisInputs, cfg: DiagnoseConfig):
    for where, rows in by_unit(inputs.curves):
        val = curve(rows, cfg.val_series)
        yield {**where, "table": "curves"}, rows, (finite_part(val) if val is not None else None)


def overfitting(inputs: DiagnosisInputs, cfg: DiagnoseConfig) -> list[Finding]:
    """OVERFITTING: the validation metric fell since its best epoch while the training loss kept falling.

    On the validation curve smoothed over ``curves.smooth_window`` (``s``), with at least
    ``curves.overfit_min_epochs`` points and its maximum before the last point:
    ``val_drop = (max(s) - s[-1]) / |max(s)| >= curves.overfit_val_drop`` (critical at
    ``curves.overfit_val_drop_critical``), and the training loss at the best raw epoch's step
    fell by ``>= curves.overfit_train_fall`` (relative) to its smoothed final value.
    Evidence includes the best epoch (raw maximum), the gap ``max(s) - s[-1]`` and epochs since the best.
    """
    t = cfg.curves
    out = []
    for where, rows, val in _val_units(inputs, cfg):
        if val is None or len(val) < max(t.overfit_min_epochs, 2):
            continue
        s = smooth(val.y, t.smooth_window)
        b_smooth = int(np.argmax(s))
        best, now = float(s[b_smooth]), float(s[-1])
        view = loss_view(rows, cfg)
        if b_smooth >= len(val) - 1 or best == 0 or view is None:
            continue
        b = int(np.argmax(val.y[: b_smooth + 1]))          # raw best epoch up to the smoothed maximum
        train = view.epochs if view.epochs is not None else view.steps
        at_best, train_now = value_at(train.steps, train.y, val.steps[b]), smoothed_final(view, cfg)
        if at_best == 0:
            continue
        drop, fall = (best - now) / abs(best), (at_best - train_now) / abs(at_best)
        if drop < t.overfit_val_drop or fall < t.overfit_train_fall:
            continue
        severity = "critical" if drop >= t.overfit_val_drop_critical else "warning"
        model = where.get("model")
        out.append(Finding(
            "OVERFITTING", severity, {**where, "series": val.name},
            f"smoothed {val.name} fell {fmt(100 * drop)}% from its best {fmt(best)} (best {val.unit} "
            f"{int(val.x[b])}) to {fmt(now)} while the training loss fell {fmt(100 * fall)}% more",
            {"best_epoch": int(val.x[b]), "unit": val.unit, "best_value": float(val.y[b]),
             "smoothed_best": best, "smoothed_now": now, "gap": best - now, "val_rel_drop": drop,
             "epochs_since_best": int(val.x[-1] - val.x[b]), "train_loss_at_best": at_best,
             "train_loss_now": train_now, "train_rel_fall": fall, "overfit_val_drop": t.overfit_val_drop,
             "overfit_val_drop_critical": t.overfit_val_drop_critical, "overfit_train_fall": t.overfit_train_fall},
            remedy(f"The model memorises the training data after {val.unit} {int(val.x[b])}: regularise "
                   "(weight decay, dropout), shrink it, or stop at the best epoch.",
                   {"param": "train.weight_decay", "op": "choice_add", "value": 1e-4},
                   model_edit(model, "dropout", "add", value=0.1),
                   model_edit(model, "dim", "scale_range", factor=0.5))))
    return out


def underfitting(inputs: DiagnosisInputs, cfg: DiagnoseConfig) -> list[Finding]:
    """UNDERFITTING (warning): close to the popularity baseline while the training loss stays high.

    The model's overall ``metric@k`` (``diagnose.metric``, ``diagnose.k``, first split of
    ``diagnose.splits`` it has) is ``<= popularity x (1 + curves.underfit_margin)`` and the
    smoothed final training loss over its start is ``>= curves.underfit_loss_fraction``.
    The baseline model itself (``diagnose.baseline_model``) is never judged.
    """
    t = cfg.curves
    out = []
    if not has_rows(inputs.metrics):
        return out
    for where, rows in by_unit(inputs.curves):
        model = where.get("model")
        view = loss_view(rows, cfg)
        if model is None or model == cfg.baseline_model or view is None or view.start <= 0:
            continue
        found = against_baseline(same_run(inputs.metrics, where), model, cfg.metric, cfg.k, cfg.splits,
                                 cfg.baseline_model)
        if found is None:
            continue
        split, own, pop = found
        final = smoothed_final(view, cfg)
        loss_fraction = final / view.start
        limit = pop["value"] * (1 + t.underfit_margin) if pop["value"] >= 0 else pop["value"]
        if own["value"] > limit or loss_fraction < t.underfit_loss_fraction:
            continue
        name = f"{cfg.metric}@{cfg.k}"
        out.append(Finding(
            "UNDERFITTING", "warning", {**where, "table": "curves", "split": split},
            f"{name} {fmt(own['value'])} is within {fmt(100 * t.underfit_margin)}% of {cfg.baseline_model} "
            f"({fmt(pop['value'])}) and the training loss is still {fmt(100 * loss_fraction)}% of its start",
            {"metric": name, "split": split, "value": own["value"], "baseline_value": pop["value"],
             "baseline_model": cfg.baseline_model, "loss_start": view.start, "loss_final": final,
             "loss_fraction": loss_fraction, "underfit_margin": t.underfit_margin,
             "underfit_loss_fraction": t.underfit_loss_fraction},
            remedy("The model has not learned beyond popularity: train longer, with a higher learning rate, "
                   "or give it more capacity.",
                   {"param": "train.epochs", "op": "add", "value": 10},
                   {"param": "train.lr", "op": "scale_range", "factor": 3.0},
                   model_edit(model, "dim", "scale_range", factor=2.0),
                   model_edit(model, "depth", "add", value=1))))
    return out


def simulated_stop(values: np.ndarray, patience: int) -> tuple[Optional[int], int]:
    """Where patience-based early stopping would stop on ``values`` (higher is better).

    Returns ``(stop index or None, index of the best value at the stop)``.
    """
    best = 0
    for i in range(1, len(values)):
        if values[i] > values[best]:
            best = i
        elif i - best >= patience:
            return i, best
    return None, best


def early_stop_unstable(inputs: DiagnosisInputs, cfg: DiagnoseConfig) -> list[Finding]:
    """EARLY_STOP_UNSTABLE (warning): where early stopping lands is decided by noise.

    With at least ``curves.early_stop_min_points`` validation points, either
    (a) *lost gain*: stopping after ``curves.early_stop_patience`` epochs without improvement
    would have stopped at a point after which the metric still rose by
    ``>= curves.early_stop_lost_gain`` of its total gain ``max - first``, or
    (b) *noise*: the median epoch-to-epoch change over the total gain ``max - first`` is
    ``>= curves.early_stop_noise_ratio``.
    """
    t = cfg.curves
    out = []
    for where, _, val in _val_units(inputs, cfg):
        if val is None or len(val) < t.early_stop_min_points:
            continue
        y = val.y
        stop, best_at_stop = simulated_stop(y, t.early_stop_patience)
        gain = float(np.max(y) - y[0])
        lost = noise = None
        if gain > 0:
            noise = float(np.median(np.abs(np.diff(y)))) / gain
            if stop is not None and stop < len(y) - 1:
                lost = (float(np.max(y[stop + 1:])) - float(y[best_at_stop])) / gain
        reasons = []
        if lost is not None and lost >= t.early_stop_lost_gain:
            reasons.append(f"stopping at {val.unit} {int(val.x[stop])} would miss {fmt(100 * lost)}% of the total "
                           "gain, reached later")
        if noise is not None and noise >= t.early_stop_noise_ratio:
            reasons.append(f"epoch-to-epoch noise is {fmt(noise)} of the total gain")
        if not reasons:
            continue
        out.append(Finding(
            "EARLY_STOP_UNSTABLE", "warning", {**where, "series": val.name},
            f"{val.name}: " + "; ".join(reasons),
            {"simulated_stop": int(val.x[stop]) if stop is not None else None, "unit": val.unit,
             "lost_share_of_gain": lost, "noise_ratio": noise, "total_gain": gain,
             "early_stop_patience": t.early_stop_patience, "early_stop_lost_gain": t.early_stop_lost_gain,
             "early_stop_noise_ratio": t.early_stop_noise_ratio},
            remedy("The validation metric is too noisy for the stopping rule: raise the patience, lower the "
                   "learning rate, or validate on more users.",
                   {"param": "train.patience", "op": "add", "value": 2},
                   {"param": "train.lr", "op": "scale_range", "factor": 0.5})))
    return out


def stopped_too_early(inputs: DiagnosisInputs, cfg: DiagnoseConfig) -> list[Finding]:
    """STOPPED_TOO_EARLY: the validation metric was still rising when the epoch budget ran out.

    With at least ``curves.stopped_min_points`` finite validation points, the raw best
    is the last point (so early stopping cannot have ended the run: the budget did) and
    its relative gain over the point ``curves.stopped_window`` epochs before (the first
    point when there are fewer) is ``>= curves.stopped_recent_gain`` (critical at
    ``curves.stopped_recent_gain_critical``), whatever the distance to popularity. A unit
    whose training loss went non-finite is left to NAN_LOSS.

    >>> import polars as pl
    >>> from recsys.diagnose.inputs import prepare
    >>> rows = pl.DataFrame({"model": "mf", "step": [9, 19, 29], "epoch": [0, 1, 2],
    ...                      "name": "val/ndcg@10", "value": [0.05, 0.10, 0.14]})
    >>> [(f.code, f.severity) for f in stopped_too_early(DiagnosisInputs(curves=prepare(rows, "curves")),
    ...                                                  DiagnoseConfig())]
    [('STOPPED_TOO_EARLY', 'critical')]
    """
    t = cfg.curves
    out = []
    for where, rows, val in _val_units(inputs, cfg):
        if val is None or len(val) < max(t.stopped_min_points, 2):
            continue
        losses = rows.filter(pl.col("name").str.contains("loss"))["value"].to_numpy().astype(np.float64)
        if not np.isfinite(losses).all():                                 # a diverged run: NAN_LOSS says it
            continue
        y = val.y
        last = float(y[-1])
        if int(np.argmax(y)) != len(y) - 1 or np.sum(y == last) > 1:      # best epoch is not (only) the last
            continue
        before = float(y[max(len(y) - 1 - t.stopped_window, 0)])
        if before <= 0 and last <= 0:
            continue
        gain = (last - before) / max(abs(before), 1e-12)
        if gain < t.stopped_recent_gain:
            continue
        severity = "critical" if gain >= t.stopped_recent_gain_critical else "warning"
        window = min(t.stopped_window, len(y) - 1)
        out.append(Finding(
            "STOPPED_TOO_EARLY", severity, {**where, "series": val.name},
            f"{val.name} was still rising when training stopped: its best is the last {val.unit} "
            f"({int(val.x[-1])}), {fmt(100 * gain)}% above {window} {val.unit}(s) before",
            {"best_epoch": int(val.x[-1]), "unit": val.unit, "epochs": len(y), "last_value": last,
             "value_before": before, "window": window, "recent_rel_gain": gain,
             "stopped_recent_gain": t.stopped_recent_gain,
             "stopped_recent_gain_critical": t.stopped_recent_gain_critical},
            remedy("The epoch budget ran out while the model was still improving: train for more epochs "
                   "or with a higher learning rate.",
                   {"param": "train.epochs", "op": "scale_range", "factor": 2.0},
                   {"param": "train.lr", "op": "scale_range", "factor": 2.0})))
    return out
