"""Rules for a model with the language model inside (``finetune``): forgetting, a stuck encoder,
fine-tuning that overfits, text collapse (``curves``, ``grad_stats``).

They read the per-epoch series the model records (:meth:`recsys.models.finetune.FineTune.epoch_curves`):
``text/drift_cosine`` (mean cosine of the item text vectors to the pretrained ones),
``text/anisotropy`` and ``text/anisotropy_pretrained`` (mean pairwise cosine now and before
training), ``text/cka/encoder.layer.N`` (linear CKA of trained block N's output to the pretrained
block's), and the encoder blocks' ``grad_stats`` rows (layers named ``encoder.layer.N.*``).
A model without these series (every other model, or ``train_layers=0`` for the rules that
need trained blocks) is never judged. Thresholds: ``diagnose.encoder.*``.

>>> import polars as pl
>>> from recsys.diagnose.config import DiagnoseConfig
>>> rows = pl.DataFrame({"model": ["finetune"] * 4, "step": [9, 19, 9, 19], "epoch": [0, 1, 0, 1],
...                      "name": ["text/anisotropy"] * 2 + ["text/anisotropy_pretrained"] * 2,
...                      "value": [0.95, 0.99, 0.2, 0.2]})
>>> [f.code for f in text_collapse(DiagnosisInputs(curves=rows), DiagnoseConfig())]
['TEXT_COLLAPSE']
"""

from __future__ import annotations

import re

import numpy as np
import polars as pl

from recsys.diagnose.config import DiagnoseConfig
from recsys.diagnose.finding import Finding, fmt
from recsys.diagnose.inputs import DiagnosisInputs, by_unit, has_rows, same_run
from recsys.diagnose.remedies import model_edit, remedy
from recsys.diagnose.series import curve, finite_part, smooth

DRIFT = "text/drift_cosine"
ANISOTROPY = "text/anisotropy"
ANISOTROPY_PRETRAINED = "text/anisotropy_pretrained"
CKA = "text/cka/"
BLOCK = re.compile(r"^encoder\.layer\.(\d+)\.")


def _series(rows: pl.DataFrame, name: str):
    found = curve(rows, name)
    return finite_part(found) if found is not None else None


def _blocks(grad_rows: pl.DataFrame | None) -> list[int]:
    """Numbers of the encoder blocks with gradient rows."""
    if not has_rows(grad_rows):
        return []
    return sorted({int(m.group(1)) for layer in grad_rows.get_column("layer").unique().to_list()
                   if (m := BLOCK.match(str(layer)))})


def _encoder_rows(inputs: DiagnosisInputs, where: dict) -> pl.DataFrame | None:
    if not has_rows(inputs.grad_stats):
        return None
    rows = same_run(inputs.grad_stats, where)
    if "model" in where and "model" in rows.columns:
        rows = rows.filter(pl.col("model") == where["model"])
    return rows.filter(pl.col("layer").cast(pl.Utf8).str.starts_with("encoder.layer."))


def _fewer_layers(model, n_blocks: int):
    return model_edit(model, "train_layers", "set", value=max(n_blocks - 1, 0))


def encoder_forgetting(inputs: DiagnosisInputs, cfg: DiagnoseConfig) -> list[Finding]:
    """ENCODER_FORGETTING: the text vectors jump away from the pretrained ones in the first epoch and
    the validation metric falls: the encoder learning rate is far too high (catastrophic forgetting).

    ``jump = 1 - drift_cosine[first epoch] >= encoder.forget_drift`` (critical at
    ``encoder.forget_drift_critical``) and ``(max(val) - val[-1]) / |max(val)| >= encoder.forget_val_drop``.
    """
    t = cfg.encoder
    out = []
    for where, rows in by_unit(inputs.curves):
        drift, val = _series(rows, DRIFT), _series(rows, cfg.val_series)
        if drift is None or val is None or len(drift) == 0 or len(val) < 2:
            continue
        jump = 1.0 - float(drift.y[0])
        best, last = float(np.max(val.y)), float(val.y[-1])
        fall = (best - last) / abs(best) if best != 0 else 0.0
        if jump < t.forget_drift or fall < t.forget_val_drop:
            continue
        model = where.get("model")
        n_blocks = len(_blocks(_encoder_rows(inputs, where))) or 1
        out.append(Finding(
            "ENCODER_FORGETTING", "critical" if jump >= t.forget_drift_critical else "warning",
            {**where, "table": "curves", "series": DRIFT},
            f"after one epoch the item text vectors kept a mean cosine of {fmt(float(drift.y[0]))} to the "
            f"pretrained ones and {val.name} fell {fmt(100 * fall)}% from its best {fmt(best)} to {fmt(last)}",
            {"drift_cosine": drift.y.tolist(), "first_epoch_jump": jump, "val_best": best, "val_last": last,
             "val_rel_fall": fall, "trained_blocks": n_blocks, "forget_drift": t.forget_drift,
             "forget_drift_critical": t.forget_drift_critical, "forget_val_drop": t.forget_val_drop},
            remedy("The encoder forgets what it knew: lower the encoder learning rate (10x), warm it up, "
                   "or train fewer of its layers.",
                   model_edit(model, "encoder_lr", "scale_range", factor=0.1),
                   model_edit(model, "warmup_steps", "choice_add", value=100),
                   _fewer_layers(model, n_blocks))))
    return out


def encoder_not_learning(inputs: DiagnosisInputs, cfg: DiagnoseConfig) -> list[Finding]:
    """ENCODER_NOT_LEARNING: blocks are trained but the text vectors do not move and their updates are tiny.

    ``1 - drift_cosine[-1] <= encoder.stuck_drift`` and the median update-to-weight ratio of the
    encoder blocks' rows ``<= encoder.stuck_update_ratio``.
    """
    t = cfg.encoder
    out = []
    for where, rows in by_unit(inputs.curves):
        drift = _series(rows, DRIFT)
        encoder = _encoder_rows(inputs, where)
        if drift is None or len(drift) == 0 or not has_rows(encoder):
            continue
        moved = 1.0 - float(drift.y[-1])
        ratios = encoder.get_column("update_ratio").drop_nulls().to_numpy() if "update_ratio" in encoder.columns \
            else np.array([])
        ratios = ratios[np.isfinite(ratios)]
        if len(ratios) == 0:
            continue
        median = float(np.median(ratios))
        if moved > t.stuck_drift or median > t.stuck_update_ratio:
            continue
        model = where.get("model")
        blocks = _blocks(encoder)
        out.append(Finding(
            "ENCODER_NOT_LEARNING", "warning", {**where, "table": "curves", "series": DRIFT},
            f"{len(blocks)} encoder block(s) train but the text vectors moved {fmt(moved)} (1 - cosine) and "
            f"their median update/weight ratio is {fmt(median)}",
            {"drift_final": moved, "median_update_ratio": median, "blocks": blocks,
             "stuck_drift": t.stuck_drift, "stuck_update_ratio": t.stuck_update_ratio},
            remedy("The trained encoder layers do not learn: raise the encoder learning rate (10x), "
                   "or freeze them (train_layers=0) and save the cost.",
                   model_edit(model, "encoder_lr", "scale_range", factor=10.0))))
    return out


def _at(series, x: float) -> float:
    """The series' value at the last point at or before ``x`` (its first point when none is)."""
    i = int(np.searchsorted(series.x, x, side="right")) - 1
    return float(series.y[min(max(i, 0), len(series) - 1)])


def _cka_series(rows: pl.DataFrame) -> dict[int, object]:
    """Block number -> its ``text/cka/encoder.layer.N`` series (finite part), for the blocks that have one."""
    names = rows.filter(pl.col("name").cast(pl.Utf8).str.starts_with(CKA)).get_column("name").unique().to_list()
    found = {}
    for name in names:
        if (m := re.fullmatch(re.escape(CKA) + r"encoder\.layer\.(\d+)", str(name))) is None:
            continue
        series = _series(rows, name)
        if series is not None and len(series):
            found[int(m.group(1))] = series
    return dict(sorted(found.items()))


def _by_block(values: dict[int, float]) -> dict[str, float]:
    return {f"encoder.layer.{n}": v for n, v in values.items()}


def finetune_overfitting(inputs: DiagnosisInputs, cfg: DiagnoseConfig) -> list[Finding]:
    """FINETUNE_OVERFITTING: the validation metric fell from its best while the encoder kept changing.

    On the smoothed validation curve (``curves.smooth_window``) the best is before the last
    point and ``(best - last) / |best| >= curves.overfit_val_drop``, and after the best epoch
    the trained encoder kept moving away from the pretrained one: some trained block's
    ``text/cka/encoder.layer.N`` (linear CKA of its output to the pretrained block's) fell by
    ``>= encoder.overfit_cka``, or the drift cosine fell by ``>= encoder.overfit_drift``. The
    encoder's own change, not the rest of the model, keeps going while the ranking gets worse.

    The CKA is the main witness: the pooled text vectors often turn *back* towards the
    pretrained ones after the first epochs (the drift cosine rises) while the lower trained
    blocks keep changing, which the drift cosine alone would miss.

    >>> rows = pl.DataFrame({"model": "finetune", "step": list(range(6)) * 3, "epoch": list(range(6)) * 3,
    ...     "name": ["val/ndcg@10"] * 6 + ["text/drift_cosine"] * 6 + ["text/cka/encoder.layer.0"] * 6,
    ...     "value": [0.2, 0.3, 0.32, 0.3, 0.25, 0.2] + [0.7, 0.72, 0.75, 0.77, 0.78, 0.8]
    ...              + [0.95, 0.9, 0.85, 0.8, 0.75, 0.7]})
    >>> [(f.code, f.evidence["moved_block"]) for f in finetune_overfitting(DiagnosisInputs(curves=rows), DiagnoseConfig())]
    [('FINETUNE_OVERFITTING', 0)]
    """
    t = cfg.encoder
    out = []
    for where, rows in by_unit(inputs.curves):
        drift, val, cka = _series(rows, DRIFT), _series(rows, cfg.val_series), _cka_series(rows)
        if (drift is None and not cka) or val is None or len(val) < max(cfg.curves.overfit_min_epochs, 2):
            continue
        s = smooth(val.y, cfg.curves.smooth_window)
        b = int(np.argmax(s))
        if b >= len(s) - 1 or s[b] == 0:
            continue
        drop = float((s[b] - s[-1]) / abs(s[b]))
        if drop < cfg.curves.overfit_val_drop:
            continue
        best_x = float(val.x[b])
        cka_at_best = {n: _at(c, best_x) for n, c in cka.items()}
        cka_last = {n: float(c.y[-1]) for n, c in cka.items()}
        cka_fall = {n: cka_at_best[n] - cka_last[n] for n in cka}
        moved = max(cka_fall, key=cka_fall.get) if cka_fall else None
        at_best = _at(drift, best_x) if drift is not None and len(drift) else None
        drift_last = float(drift.y[-1]) if at_best is not None else None
        further = at_best - drift_last if at_best is not None else None
        by_cka = moved is not None and cka_fall[moved] >= t.overfit_cka
        by_drift = further is not None and further >= t.overfit_drift
        if not (by_cka or by_drift):
            continue
        model = where.get("model")
        n_blocks = max(len(_blocks(_encoder_rows(inputs, where))), len(cka), 1)
        moves = []
        if moved is not None:
            moves.append(f"encoder block {moved}'s CKA to its pretrained output fell {fmt(cka_fall[moved])} "
                         f"({fmt(cka_at_best[moved])} -> {fmt(cka_last[moved])})")
        if further is not None:
            moves.append(f"the text vectors' drift cosine went {fmt(at_best)} -> {fmt(drift_last)}")
        out.append(Finding(
            "FINETUNE_OVERFITTING", "warning", {**where, "table": "curves", "series": val.name},
            f"smoothed {val.name} fell {fmt(100 * drop)}% after {val.unit} {int(val.x[b])} while the trained "
            f"encoder kept moving: {'; '.join(moves)}",
            {"best_epoch": int(val.x[b]), "smoothed_best": float(s[b]), "smoothed_last": float(s[-1]),
             "val_rel_drop": drop, "triggers": [n for n, on in (("cka", by_cka), ("drift", by_drift)) if on],
             "cka_at_best": _by_block(cka_at_best), "cka_last": _by_block(cka_last), "cka_fall": _by_block(cka_fall),
             "moved_block": moved, "max_cka_fall": cka_fall[moved] if moved is not None else None,
             "drift_at_best": at_best, "drift_last": drift_last, "drift_fall": further,
             "trained_blocks": n_blocks, "overfit_cka": t.overfit_cka, "overfit_drift": t.overfit_drift},
            remedy("Fine-tuning overfits: train fewer encoder layers or lower the encoder learning rate.",
                   _fewer_layers(model, n_blocks),
                   model_edit(model, "encoder_lr", "scale_range", factor=0.3))))
    return out


def text_collapse(inputs: DiagnosisInputs, cfg: DiagnoseConfig) -> list[Finding]:
    """TEXT_COLLAPSE: fine-tuning made the item text vectors alike.

    ``spread = (1 - anisotropy[-1]) / (1 - anisotropy_pretrained) <= encoder.collapse_spread``
    (critical at ``encoder.collapse_spread_critical``) and ``anisotropy[-1] >= encoder.collapse_anisotropy``.
    """
    t = cfg.encoder
    out = []
    for where, rows in by_unit(inputs.curves):
        now, before = _series(rows, ANISOTROPY), _series(rows, ANISOTROPY_PRETRAINED)
        if now is None or before is None or len(now) == 0 or len(before) == 0:
            continue
        last, pre = float(now.y[-1]), float(before.y[-1])
        if pre >= 1.0:
            continue
        spread = (1.0 - last) / (1.0 - pre)
        if spread > t.collapse_spread or last < t.collapse_anisotropy:
            continue
        model = where.get("model")
        out.append(Finding(
            "TEXT_COLLAPSE", "critical" if spread <= t.collapse_spread_critical else "warning",
            {**where, "table": "curves", "series": ANISOTROPY},
            f"the fine-tuned item text vectors have a mean pairwise cosine of {fmt(last)} (pretrained "
            f"{fmt(pre)}): {fmt(100 * spread)}% of their spread is left",
            {"anisotropy": now.y.tolist(), "anisotropy_pretrained": pre, "spread_left": spread,
             "collapse_spread": t.collapse_spread, "collapse_spread_critical": t.collapse_spread_critical,
             "collapse_anisotropy": t.collapse_anisotropy},
            remedy("The encoder collapsed the item texts onto one direction: lower the encoder learning rate "
                   "and train fewer layers.",
                   model_edit(model, "encoder_lr", "scale_range", factor=0.1),
                   _fewer_layers(model, len(_blocks(_encoder_rows(inputs, where))) or 1))))
    return out
