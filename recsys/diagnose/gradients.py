"""Gradient rules over ``grad_stats``: NaN/Inf, exploding, vanishing, learning rate from update ratios.

One training unit (run, dataset, model, trial) at a time; per layer, rows are
ordered by step. Non-finite gradient norms are left to NAN_GRADIENTS; the other
rules read the finite ones. Layers of a *stack* share a name up to an integer
index (``item_tower.0.weight`` ... ``item_tower.8.weight``): the lowest index is
the stack's earliest layer, the highest its output layer.

>>> layer_stacks(["tower.0.weight", "tower.1.weight", "tower.4.weight", "emb.weight", "tower.0.bias"])
{('tower', 'weight'): ['tower.0.weight', 'tower.4.weight']}
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Optional

import numpy as np
import polars as pl

from recsys.diagnose.config import DiagnoseConfig
from recsys.diagnose.finding import Finding, fmt, severity_of
from recsys.diagnose.inputs import DiagnosisInputs, by_unit, partition
from recsys.diagnose.remedies import model_edit, remedy
from recsys.diagnose.series import end_medians, spike_ratios

TOP_LAYERS = 10      # layers listed in evidence
ENCODER_BLOCK = re.compile(r"^encoder\.layer\.\d+\.")     # a trained language-model block (finetune)


def layer_stacks(layers: Iterable[str]) -> dict[tuple[str, str], list[str]]:
    """Stacks of at least two layers: ``(prefix, suffix) -> [earliest layer, output layer]``."""
    members: dict[tuple[str, str], dict[int, str]] = {}
    for layer in layers:
        parts = layer.split(".")
        for i, part in enumerate(parts):
            if part.isdigit():
                key = (".".join(parts[:i]), ".".join(parts[i + 1:]))
                members.setdefault(key, {})[int(part)] = layer
                break
    return {key: [idx[min(idx)], idx[max(idx)]] for key, idx in members.items() if len(idx) >= 2}


def _grad_units(inputs: DiagnosisInputs):
    for where, rows in by_unit(inputs.grad_stats):
        yield {**where, "table": "grad_stats"}, rows


def _finite_norms(rows: pl.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per layer, ``(steps, grad norms)`` of the finite norms in step order (layers without any left out)."""
    usable = rows.filter(pl.col("grad_norm").is_finite()).sort("layer", "step")
    return {layer: (part.get_column("step").to_numpy(), part.get_column("grad_norm").to_numpy().astype(np.float64))
            for layer, part in partition(usable, "layer").items()}


def nan_gradients(inputs: DiagnosisInputs, cfg: DiagnoseConfig) -> list[Finding]:
    """NAN_GRADIENTS (critical): some gradient had NaN or infinite entries (``nan_count``,
    ``inf_count`` > 0) or a non-finite ``grad_norm``. Evidence: layers, first step, totals."""
    out = []
    for where, rows in _grad_units(inputs):
        bad = rows.filter((pl.col("nan_count").fill_null(0) > 0) | (pl.col("inf_count").fill_null(0) > 0)
                          | ~pl.col("grad_norm").fill_null(0.0).is_finite()).sort("step", "layer")
        if bad.height == 0:
            continue
        layers = bad.get_column("layer").unique(maintain_order=True).to_list()
        first = bad.row(0, named=True)
        out.append(Finding(
            "NAN_GRADIENTS", "critical", {**where, "layer": first["layer"]},
            f"non-finite gradients in {len(layers)} layer(s) at {bad.height} logged step(s), "
            f"first at step {first['step']} in {first['layer']}",
            {"n_rows": bad.height, "first_step": first["step"], "layers": layers[:TOP_LAYERS],
             "nan_total": int(bad.get_column("nan_count").fill_null(0).sum()),
             "inf_total": int(bad.get_column("inf_count").fill_null(0).sum())},
            remedy("Gradients overflowed: lower the learning rate, clip gradients, check the inputs for NaN, "
                   "and train in fp32.",
                   {"param": "train.lr", "op": "scale_range", "factor": 0.1},
                   {"param": "train.grad_clip", "op": "set", "value": 1.0})))
    return out


def peer_levels(norms: dict[str, np.ndarray]) -> dict[str, Optional[float]]:
    """Per layer, the largest median grad norm among the unit's *other* layers (None for a lone layer).

    >>> peer_levels({"a": np.array([1.0, 3.0]), "b": np.array([5.0]), "c": np.array([0.1])})
    {'a': 5.0, 'b': 2.0, 'c': 5.0}
    """
    medians = {layer: float(np.median(g)) for layer, g in norms.items()}
    ranked = sorted(medians.values(), reverse=True)
    if len(ranked) < 2:
        return {layer: None for layer in medians}
    return {layer: ranked[1] if m == ranked[0] else ranked[0] for layer, m in medians.items()}


def exploding_gradients(inputs: DiagnosisInputs, cfg: DiagnoseConfig) -> list[Finding]:
    """EXPLODING_GRADIENTS: gradient norms spike above their running median or grow without bound.

    Per layer: *spike* = grad norm / median of the previous ``gradients.spike_window`` norms
    (judged after ``gradients.spike_min_history`` steps); *growth* = median of the last over
    median of the first ``gradients.end_window`` norms (layers with ``gradients.min_steps``).
    A spike or a growth counts only when the norm it reaches (the spiking norm; the late median)
    is large: at least ``gradients.explode_level_factor`` times the largest median norm of the
    unit's other layers (:func:`peer_levels`), or at least ``gradients.explode_abs_norm``. A layer
    that rises from near zero to its peers' level is recovering from vanishing gradients, not
    exploding; a lone layer has no peers and its own history decides.
    Warning at spike ``>= gradients.spike_factor`` or growth ``>= gradients.growth_factor``;
    critical at ``gradients.spike_factor_critical`` or ``gradients.growth_factor_critical``.
    """
    t = cfg.gradients
    out = []
    for where, rows in _grad_units(inputs):
        spike = (0.0, None, None)      # ratio, layer, step
        growth = (0.0, None)           # ratio, layer
        n_spikes = 0
        recovered: dict[str, float] = {}   # layers whose spike or growth stayed within the peers' level
        norms = _finite_norms(rows)
        peers = peer_levels({layer: g for layer, (_, g) in norms.items()})

        def large(level, layer: str):
            """Whether a norm (or each of an array of norms) reached by ``layer`` counts as exploded."""
            ref = peers[layer]
            if ref is None:
                return np.ones_like(level, dtype=bool) if isinstance(level, np.ndarray) else True
            return (level >= t.explode_abs_norm) | (level >= t.explode_level_factor * ref)

        for layer, (steps, g) in norms.items():
            ratios = spike_ratios(g, t.spike_window, t.spike_min_history)
            finite = np.isfinite(ratios)
            counted = finite & large(g, layer)
            n_spikes += int((ratios[counted] >= t.spike_factor).sum())
            if (ratios[finite & ~counted] >= t.spike_factor).any():
                recovered[layer] = float(np.max(ratios[finite & ~counted]))
            if counted.any():
                i = int(np.nanargmax(np.where(counted, ratios, -np.inf)))
                if ratios[i] > spike[0]:
                    spike = (float(ratios[i]), layer, int(steps[i]))
            early, late = end_medians(g, t.end_window) if len(g) >= t.min_steps else (0.0, 0.0)
            if early > 0 and not large(late, layer):
                if late / early >= t.growth_factor:
                    recovered[layer] = max(recovered.get(layer, 0.0), late / early)
            elif early > 0 and late / early > growth[0]:
                growth = (late / early, layer)
        sev_spike = severity_of(spike[0], t.spike_factor, t.spike_factor_critical)
        sev_growth = severity_of(growth[0], t.growth_factor, t.growth_factor_critical)
        severity = max((s for s in (sev_spike, sev_growth) if s), key=["warning", "critical"].index, default=None)
        if severity is None:
            continue
        layer = spike[1] if sev_spike else growth[1]
        parts = []
        if sev_spike:
            parts.append(f"spiked to {fmt(spike[0])}x its running median at step {spike[2]}")
        if sev_growth:
            parts.append(f"grew {fmt(growth[0])}x from the first to the last steps in {growth[1]}")
        top_recovered = dict(sorted(recovered.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_LAYERS])
        out.append(Finding(
            "EXPLODING_GRADIENTS", severity, {**where, "layer": layer},
            f"gradient norm of {layer} " + "; ".join(parts),
            {"max_spike_ratio": spike[0], "spike_layer": spike[1], "spike_step": spike[2], "n_spikes": n_spikes,
             "max_growth": growth[0], "growth_layer": growth[1], "peer_level": peers.get(layer),
             "recovered_layers": top_recovered, "spike_factor": t.spike_factor,
             "spike_factor_critical": t.spike_factor_critical, "growth_factor": t.growth_factor,
             "growth_factor_critical": t.growth_factor_critical, "explode_level_factor": t.explode_level_factor,
             "explode_abs_norm": t.explode_abs_norm},
            remedy("Gradients blow up: clip them, lower the learning rate, and add normalisation layers.",
                   {"param": "train.grad_clip", "op": "set", "value": 1.0},
                   {"param": "train.lr", "op": "scale_range", "factor": 0.1})))
    return out


def vanishing_gradients(inputs: DiagnosisInputs, cfg: DiagnoseConfig) -> list[Finding]:
    """VANISHING_GRADIENTS: early layers get almost no gradient, or a layer's gradient dies out.

    *depth*: for each stack, median grad norm of its earliest layer over that of its output
    layer; warning below ``gradients.vanish_depth_ratio``, critical below
    ``gradients.vanish_depth_ratio_critical``. *collapse*: per layer with
    ``gradients.min_steps`` steps, median of the last over the first ``gradients.end_window``
    norms below ``gradients.vanish_collapse_ratio`` (warning).
    """
    t = cfg.gradients
    out = []
    for where, rows in _grad_units(inputs):
        norms = {layer: g for layer, (_, g) in _finite_norms(rows).items()}
        medians = {layer: float(np.median(g)) for layer, g in norms.items()}
        depth = []
        for first, last in layer_stacks(norms).values():
            if medians[last] > 0:
                depth.append((medians[first] / medians[last], first, last))
        collapse = []
        for layer, g in norms.items():
            if len(g) >= t.min_steps:
                early, late = end_medians(g, t.end_window)
                if early > 0 and late / early < t.vanish_collapse_ratio:
                    collapse.append((late / early, layer))
        worst = min(depth, default=None)
        sev = severity_of(worst[0], t.vanish_depth_ratio, t.vanish_depth_ratio_critical,
                          lower_is_worse=True) if worst else None
        if sev is None and not collapse:
            continue
        if sev:
            layer = worst[1]
            message = (f"median gradient norm of {worst[1]} is {fmt(worst[0])} of the output layer {worst[2]}'s")
        else:
            collapse.sort()
            layer = collapse[0][1]
            message = f"gradient norm of {layer} fell to {fmt(collapse[0][0])} of its early value"
        model = where.get("model")
        out.append(Finding(
            "VANISHING_GRADIENTS", sev or "warning", {**where, "layer": layer}, message,
            {"depth_ratios": {f: r for r, f, _ in sorted(depth)[:TOP_LAYERS]},
             "collapsed_layers": {name: r for r, name in sorted(collapse)[:TOP_LAYERS]},
             "vanish_depth_ratio": t.vanish_depth_ratio,
             "vanish_depth_ratio_critical": t.vanish_depth_ratio_critical,
             "vanish_collapse_ratio": t.vanish_collapse_ratio},
            remedy("Gradients die out on the way down: add normalisation, use fewer layers or residual "
                   "connections, and check the initialisation scale.",
                   model_edit(model, "norm", "set", value="layer"),
                   model_edit(model, "depth", "add", value=-1))))
    return out


def _update_medians(rows: pl.DataFrame) -> dict[str, float]:
    """Per layer: median over steps of the finite update ratios where the weights are non-zero."""
    usable = rows.filter(pl.col("update_ratio").is_finite()
                         & (pl.col("weight_norm").is_null() | (pl.col("weight_norm") > 0)))
    return {layer: float(part.get_column("update_ratio").median())
            for layer, part in partition(usable, "layer").items()}


def learning_rate(inputs: DiagnosisInputs, cfg: DiagnoseConfig) -> list[Finding]:
    """LR_TOO_HIGH / LR_TOO_LOW from the update-to-weight ratio (healthy: about 1e-3).

    Per layer, the median over steps of ``update_ratio`` (rows with ``weight_norm > 0``);
    the unit's ratio is the median over layers. LR_TOO_HIGH above
    ``gradients.update_ratio_high`` (critical above ``gradients.update_ratio_high_critical``);
    LR_TOO_LOW below ``gradients.update_ratio_low`` (critical below
    ``gradients.update_ratio_low_critical``). Evidence lists the layers beyond the level.

    A unit with trained encoder blocks (``finetune``) also gets both parts' medians in evidence;
    when only the blocks are slow (the other layers' median is not below the level), the remedy
    raises ``model.<name>.encoder_lr``, never ``train.lr``, which would only speed up the parts
    that already learn.
    """
    t = cfg.gradients
    out = []
    for where, rows in _grad_units(inputs):
        per_layer = _update_medians(rows)
        if not per_layer:
            continue
        overall = float(np.median(list(per_layer.values())))
        high = severity_of(overall, t.update_ratio_high, t.update_ratio_high_critical)
        low = severity_of(overall, t.update_ratio_low, t.update_ratio_low_critical, lower_is_worse=True)
        if high:
            code, severity, level, factor, word = "LR_TOO_HIGH", high, t.update_ratio_high, 0.1, "above"
            beyond = {k: v for k, v in sorted(per_layer.items(), key=lambda kv: (-kv[1], kv[0])) if v > level}
        elif low:
            code, severity, level, factor, word = "LR_TOO_LOW", low, t.update_ratio_low, 10.0, "below"
            beyond = {k: v for k, v in sorted(per_layer.items(), key=lambda kv: (kv[1], kv[0])) if v < level}
        else:
            continue
        layer = next(iter(beyond), None)
        split = _encoder_split(per_layer)
        edits = [{"param": "train.lr", "op": "scale_range", "factor": factor}]
        advice = ("Each step moves the weights by a large share of their size: lower the learning rate."
                  if code == "LR_TOO_HIGH" else "Each step barely moves the weights: raise the learning rate.")
        if code == "LR_TOO_LOW" and split and split["rest_median_update_ratio"] >= t.update_ratio_low:
            # only the language-model blocks are slow: they train at their own rate, not train.lr
            edits = [model_edit(where.get("model"), "encoder_lr", "scale_range", factor=factor)]
            advice = ("Only the encoder blocks barely move; the other layers train well at train.lr: raise the "
                      "encoder learning rate, not train.lr.")
        elif code == "LR_TOO_HIGH":
            edits.append({"param": "train.grad_clip", "op": "set", "value": 1.0})
        out.append(Finding(
            code, severity, {**where, "layer": layer},
            f"median update/weight ratio {fmt(overall)} over {len(per_layer)} layer(s) is {word} {fmt(level)} "
            f"(healthy about 1e-3)",
            {"median_update_ratio": overall, "n_layers": len(per_layer),
             "layers_beyond": dict(list(beyond.items())[:TOP_LAYERS]), "healthy": 1e-3, **split,
             "update_ratio_high": t.update_ratio_high, "update_ratio_high_critical": t.update_ratio_high_critical,
             "update_ratio_low": t.update_ratio_low, "update_ratio_low_critical": t.update_ratio_low_critical},
            remedy(advice, *edits)))
    return out


def _encoder_split(per_layer: dict[str, float]) -> dict[str, float]:
    """Median update ratio of the trained encoder blocks (``encoder.layer.N.*``) and of the other layers,
    when a unit has both (empty otherwise): their learning rates differ (``encoder_lr`` vs ``train.lr``).

    >>> _encoder_split({"encoder.layer.5.attention.weight": 1e-9, "encoder.layer.5.output.weight": 3e-9,
    ...                 "item_proj.weight": 1e-3})
    {'encoder_median_update_ratio': 2e-09, 'rest_median_update_ratio': 0.001}
    >>> _encoder_split({"item_proj.weight": 1e-3})
    {}
    """
    encoder = [v for k, v in per_layer.items() if ENCODER_BLOCK.match(k)]
    rest = [v for k, v in per_layer.items() if not ENCODER_BLOCK.match(k)]
    if not encoder or not rest:
        return {}
    return {"encoder_median_update_ratio": float(np.median(encoder)),
            "rest_median_update_ratio": float(np.median(rest))}


def dead_rows_from_gradients(inputs: DiagnosisInputs, cfg: DiagnoseConfig) -> list[Finding]:
    """DEAD_EMBEDDING_ROWS from ``grad_stats.rows_touched_share`` (the share of an embedding's rows
    updated at least once so far; its maximum over steps counts). ``dead = 1 - max share``; warning
    at ``embeddings.dead_share``, critical at ``embeddings.dead_share_critical``. Only probes from
    the second epoch on are read (rows without an epoch too): before one full pass over the data,
    an untouched row may simply not have had its turn."""
    t = cfg.embeddings
    out = []
    for where, rows in _grad_units(inputs):
        after_first_pass = pl.col("epoch").is_null() | (pl.col("epoch") >= 1)
        touched = (rows.filter(pl.col("rows_touched_share").is_finite() & after_first_pass)
                   .group_by("layer").agg(pl.col("rows_touched_share").max()).sort("layer"))
        for layer, share in touched.iter_rows():
            dead = 1.0 - min(max(share, 0.0), 1.0)
            severity = severity_of(dead, t.dead_share, t.dead_share_critical)
            if severity is None:
                continue
            out.append(Finding(
                "DEAD_EMBEDDING_ROWS", severity, {**where, "layer": layer},
                f"{fmt(100 * dead)}% of the rows of {layer} never received a gradient",
                {"dead_share": dead, "max_rows_touched_share": share, "dead_share_warning": t.dead_share,
                 "dead_share_critical": t.dead_share_critical},
                dead_rows_remedy()))
    return out


def dead_rows_remedy():
    return remedy("Rows that never train are ids without training interactions or a learning rate too low "
                  "for sparse rows: filter rare ids, share parameters through text, or raise the learning rate.",
                  {"param": "data.min_item_interactions", "op": "add", "value": 2},
                  {"param": "train.lr", "op": "scale_range", "factor": 3.0})
