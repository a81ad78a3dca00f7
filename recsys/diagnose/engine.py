"""Run every diagnosis rule over the report tables: the explicit rule list, skips, ordering.

A rule is a pure function ``rule(inputs, cfg) -> list[Finding]``. :data:`RULES`
lists every rule with the tables it reads; a rule whose tables are missing or
empty is skipped and the skip is reported (logged at INFO level and returned by
:func:`run_rules`), never an error. Findings come out ordered by model, then
severity (critical first), then code.

>>> import polars as pl
>>> from recsys.diagnose.config import DiagnoseConfig
>>> m = pl.DataFrame({"model": ["pop", "mf"], "split": ["val"] * 2, "segment": ["all"] * 2,
...                   "metric": ["ndcg"] * 2, "k": [10, 10], "value": [0.10, 0.30]})
>>> result = run_rules(DiagnosisInputs(metrics=m), DiagnoseConfig())
>>> result.findings, result.skipped[0]
([], Skipped(rule='nan_gradients', reason='no grad_stats table'))
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from recsys.diagnose import curves, embeddings, encoder, features, fitting, gradients, outcomes
from recsys.diagnose.config import DiagnoseConfig, check_diagnose_config
from recsys.diagnose.finding import Finding
from recsys.diagnose.inputs import DiagnosisInputs
from recsys.diagnose.remedies import remedy
from recsys.errors import ConfigError

log = logging.getLogger(__name__)

Rule = Callable[[DiagnosisInputs, DiagnoseConfig], "list[Finding]"]


@dataclass(frozen=True)
class RuleSpec:
    """A rule, the tables it reads (``all`` of them, or ``any`` one), and the codes it can emit."""

    func: Rule
    needs: tuple[str, ...]
    codes: tuple[str, ...]
    needs_any: bool = False


RULES: dict[str, RuleSpec] = {
    "nan_gradients": RuleSpec(gradients.nan_gradients, ("grad_stats",), ("NAN_GRADIENTS",)),
    "exploding_gradients": RuleSpec(gradients.exploding_gradients, ("grad_stats",), ("EXPLODING_GRADIENTS",)),
    "vanishing_gradients": RuleSpec(gradients.vanishing_gradients, ("grad_stats",), ("VANISHING_GRADIENTS",)),
    "learning_rate": RuleSpec(gradients.learning_rate, ("grad_stats",), ("LR_TOO_HIGH", "LR_TOO_LOW")),
    "dead_rows_from_gradients": RuleSpec(gradients.dead_rows_from_gradients, ("grad_stats",),
                                         ("DEAD_EMBEDDING_ROWS",)),
    "nan_loss": RuleSpec(curves.nan_loss, ("curves",), ("NAN_LOSS",)),
    "loss_divergence": RuleSpec(curves.loss_divergence, ("curves",), ("LOSS_DIVERGENCE",)),
    "loss_plateau": RuleSpec(curves.loss_plateau, ("curves",), ("LOSS_PLATEAU",)),
    "loss_oscillation": RuleSpec(curves.loss_oscillation, ("curves",), ("LOSS_OSCILLATION",)),
    "overfitting": RuleSpec(fitting.overfitting, ("curves",), ("OVERFITTING",)),
    "underfitting": RuleSpec(fitting.underfitting, ("curves", "metrics"), ("UNDERFITTING",)),
    "early_stop_unstable": RuleSpec(fitting.early_stop_unstable, ("curves",), ("EARLY_STOP_UNSTABLE",)),
    "stopped_too_early": RuleSpec(fitting.stopped_too_early, ("curves",), ("STOPPED_TOO_EARLY",)),
    "dead_rows_from_health": RuleSpec(embeddings.dead_rows_from_health, ("embedding_health",),
                                      ("DEAD_EMBEDDING_ROWS",)),
    "dimensional_collapse": RuleSpec(embeddings.dimensional_collapse, ("embedding_health",),
                                     ("DIMENSIONAL_COLLAPSE",)),
    "norm_popularity_coupling": RuleSpec(embeddings.norm_popularity_coupling, ("item_norms",),
                                         ("NORM_POPULARITY_COUPLING",)),
    "anisotropic_text_vectors": RuleSpec(embeddings.anisotropic_text_vectors, ("embedding_health",),
                                         ("ANISOTROPIC_TEXT_VECTORS",)),
    "encoder_forgetting": RuleSpec(encoder.encoder_forgetting, ("curves",), ("ENCODER_FORGETTING",)),
    "encoder_not_learning": RuleSpec(encoder.encoder_not_learning, ("curves", "grad_stats"),
                                     ("ENCODER_NOT_LEARNING",)),
    "finetune_overfitting": RuleSpec(encoder.finetune_overfitting, ("curves",), ("FINETUNE_OVERFITTING",)),
    "text_collapse": RuleSpec(encoder.text_collapse, ("curves",), ("TEXT_COLLAPSE",)),
    "popularity_bias": RuleSpec(outcomes.popularity_bias, ("metrics",), ("POPULARITY_BIAS",)),
    "segment_weakness": RuleSpec(outcomes.segment_weakness, ("metrics",), ("SEGMENT_WEAKNESS",)),
    "not_beating_popularity": RuleSpec(outcomes.not_beating_popularity, ("comparisons", "metrics"),
                                       ("NOT_BEATING_POPULARITY",), needs_any=True),
    "feature_rules": RuleSpec(features.feature_rules, ("feature_importance",),
                              ("TEXT_IGNORED", "TEXT_DOMINANT", "ID_EMBEDDINGS_UNUSED", "TEXT_FIELD_HURTS")),
}


@dataclass(frozen=True)
class Skipped:
    """A rule that did not run, and why."""

    rule: str
    reason: str


@dataclass(frozen=True)
class Diagnosis:
    findings: list[Finding]
    skipped: list[Skipped]


def order(findings: list[Finding]) -> list[Finding]:
    """Findings by model (None last), severity (critical first), code, then where."""
    return sorted(findings, key=lambda f: (f.model is None, f.model or "", -f.rank, f.code,
                                           sorted((k, str(v)) for k, v in f.where.items())))


def _skip_reason(spec: RuleSpec, available: set[str]) -> str | None:
    missing = [t for t in spec.needs if t not in available]
    if spec.needs_any and len(missing) < len(spec.needs):
        return None
    if not missing:
        return None
    joined = " or ".join(missing) if spec.needs_any else ", ".join(missing)
    return f"no {joined} table" + ("" if len(missing) == 1 else "s")


def run_rules(inputs: DiagnosisInputs, cfg: DiagnoseConfig) -> Diagnosis:
    """Run every rule of :data:`RULES` not in ``cfg.disabled_rules`` over ``inputs``.

    Tables are checked and typed first (:func:`recsys.diagnose.inputs.prepare`): a table missing
    a needed column is a :class:`~recsys.errors.DataError`.
    """
    check_diagnose_config(cfg)
    unknown = sorted(set(cfg.disabled_rules) - set(RULES))
    if unknown:
        raise ConfigError(f"unknown rule(s) {', '.join(unknown)}", setting="diagnose.disabled_rules",
                          hint=f"use names from: {', '.join(RULES)}")
    prepared = inputs.prepared()
    available = set(prepared.available())
    findings: list[Finding] = []
    skipped: list[Skipped] = []
    for name, spec in RULES.items():
        reason = "disabled by diagnose.disabled_rules" if name in cfg.disabled_rules else _skip_reason(spec, available)
        if reason:
            log.info("diagnosis rule %s skipped: %s", name, reason)
            skipped.append(Skipped(name, reason))
            continue
        findings += spec.func(prepared, cfg)
    return Diagnosis(order(defer_to_encoder(findings)), skipped)


def defer_to_encoder(findings: list[Finding]) -> list[Finding]:
    """LR_TOO_LOW of a model whose ENCODER_NOT_LEARNING fired, where only the encoder blocks are slow
    (evidence ``rest_median_update_ratio`` not below the level, or no other layers), becomes ``info``
    without edits: ENCODER_NOT_LEARNING explains it and carries the remedy (the encoder learning rate);
    ``train.lr`` would only speed up the parts that already learn. When the other layers are slow too,
    LR_TOO_LOW keeps its ``train.lr`` advice.

    >>> from recsys.diagnose.finding import Finding
    >>> low = Finding("LR_TOO_LOW", "critical", {"model": "finetune"}, "tiny updates",
    ...               {"rest_median_update_ratio": 1e-3, "update_ratio_low": 1e-5}, remedy("raise it"))
    >>> stuck = Finding("ENCODER_NOT_LEARNING", "warning", {"model": "finetune"}, "stuck", {}, remedy("x"))
    >>> [(f.code, f.severity, len(f.remedy.edits)) for f in defer_to_encoder([low, stuck])]
    [('LR_TOO_LOW', 'info', 0), ('ENCODER_NOT_LEARNING', 'warning', 0)]
    """
    stuck = {f.model for f in findings if f.code == "ENCODER_NOT_LEARNING"}
    out = []
    for f in findings:
        rest = f.evidence.get("rest_median_update_ratio")
        if f.code == "LR_TOO_LOW" and f.model in stuck and (rest is None or rest >= f.evidence["update_ratio_low"]):
            f = replace(f, severity="info", evidence={**f.evidence, "explained_by": "ENCODER_NOT_LEARNING"},
                        remedy=remedy("The slow layers are the encoder blocks: see ENCODER_NOT_LEARNING (raise the "
                                      "encoder learning rate); train.lr is not the lever."))
        out.append(f)
    return out


def diagnose(inputs: DiagnosisInputs, cfg: DiagnoseConfig) -> list[Finding]:
    """Every finding of every applicable rule, ordered (skipped rules are logged at INFO level).

    >>> import polars as pl
    >>> from recsys.diagnose.config import DiagnoseConfig
    >>> curves = pl.DataFrame({"model": ["mf"] * 3, "step": [0, 1, 2], "name": ["train/loss"] * 3,
    ...                        "value": [2.0, float("inf"), 1.0]})
    >>> [(f.code, f.severity) for f in diagnose(DiagnosisInputs(curves=curves), DiagnoseConfig())]
    [('NAN_LOSS', 'critical')]
    """
    return run_rules(inputs, cfg).findings
