"""Embedding rules over ``embedding_health`` and the ``item_norms`` side table.

One finding per (unit, embedding) row. ``embedding_health`` columns are defined in
:mod:`recsys.report.schema` and computed by :mod:`recsys.embed.health`.

>>> import polars as pl
>>> from recsys.diagnose.config import DiagnoseConfig
>>> from recsys.diagnose.inputs import DiagnosisInputs, prepare
>>> eh = pl.DataFrame({"model": ["mf"], "embedding": ["item_id"], "n_rows": [1000], "dim": [64],
...                    "effective_rank": [1.5]})
>>> [f.severity for f in dimensional_collapse(DiagnosisInputs(embedding_health=prepare(eh, "embedding_health")),
...                                            DiagnoseConfig())]
['critical']
"""

from __future__ import annotations

import numpy as np
import polars as pl

from recsys.diagnose.config import DiagnoseConfig
from recsys.diagnose.finding import Finding, fmt, severity_of
from recsys.diagnose.gradients import dead_rows_remedy
from recsys.diagnose.inputs import DiagnosisInputs, by_unit, same_run
from recsys.diagnose.outcomes import popularity_outcome
from recsys.diagnose.remedies import model_edit, remedy
from recsys.diagnose.series import spearman


def _rows(inputs: DiagnosisInputs):
    for where, rows in by_unit(inputs.embedding_health):
        for row in rows.iter_rows(named=True):
            yield {**where, "table": "embedding_health", "embedding": row["embedding"]}, row


def dead_rows_from_health(inputs: DiagnosisInputs, cfg: DiagnoseConfig) -> list[Finding]:
    """DEAD_EMBEDDING_ROWS from ``embedding_health``: ``dead_rows / n_rows`` (rows never updated or
    with a norm below the dead threshold); warning at ``embeddings.dead_share``, critical at
    ``embeddings.dead_share_critical``."""
    t = cfg.embeddings
    out = []
    for where, row in _rows(inputs):
        if row["dead_rows"] is None or row["n_rows"] <= 0:
            continue
        share = row["dead_rows"] / row["n_rows"]
        severity = severity_of(share, t.dead_share, t.dead_share_critical)
        if severity is None:
            continue
        out.append(Finding(
            "DEAD_EMBEDDING_ROWS", severity, where,
            f"{row['dead_rows']} of {row['n_rows']} rows ({fmt(100 * share)}%) of {row['embedding']} are dead",
            {"dead_rows": row["dead_rows"], "n_rows": row["n_rows"], "dead_share": share,
             "dead_share_warning": t.dead_share, "dead_share_critical": t.dead_share_critical},
            dead_rows_remedy()))
    return out


def dimensional_collapse(inputs: DiagnosisInputs, cfg: DiagnoseConfig) -> list[Finding]:
    """DIMENSIONAL_COLLAPSE: ``effective_rank / min(dim, n_rows)`` below ``embeddings.collapse_ratio``
    (warning) or ``embeddings.collapse_ratio_critical`` (critical); tables with
    ``min(dim, n_rows) < embeddings.collapse_min_dim`` are not judged."""
    t = cfg.embeddings
    out = []
    for where, row in _rows(inputs):
        room = min(row["dim"], row["n_rows"])
        rank = row["effective_rank"]
        if rank is None or not np.isfinite(rank) or room < t.collapse_min_dim:
            continue
        ratio = rank / room
        severity = severity_of(ratio, t.collapse_ratio, t.collapse_ratio_critical, lower_is_worse=True)
        if severity is None:
            continue
        model = where.get("model")
        out.append(Finding(
            "DIMENSIONAL_COLLAPSE", severity, where,
            f"{row['embedding']} has effective rank {fmt(rank)} of {room} possible ({fmt(ratio)})",
            {"effective_rank": rank, "dim": row["dim"], "n_rows": row["n_rows"], "rank_ratio": ratio,
             "collapse_ratio": t.collapse_ratio, "collapse_ratio_critical": t.collapse_ratio_critical},
            remedy("The vectors span few directions: add weight decay, lower the learning rate, and use a "
                   "dimension the data can fill.",
                   model_edit(model, "dim", "scale_range", factor=0.5),
                   {"param": "train.weight_decay", "op": "choice_add", "value": 1e-4})))
    return out


def norm_popularity_coupling(inputs: DiagnosisInputs, cfg: DiagnoseConfig) -> list[Finding]:
    """NORM_POPULARITY_COUPLING: Spearman correlation of item vector norms with item popularity
    (side table ``item_norms``) ``>= embeddings.coupling_rho`` (warning) or
    ``embeddings.coupling_rho_critical`` (critical), over at least ``embeddings.coupling_min_items``
    items with finite values.

    Coupling matters through what the model recommends: when ``metrics`` has the model's
    popularity numbers (:func:`recsys.diagnose.outcomes.popularity_outcome`) and they show no
    popularity bias by POPULARITY_BIAS's own levels, the finding is ``info``; without those
    numbers the correlation alone decides.
    """
    t = cfg.embeddings
    out = []
    for where, rows in by_unit(inputs.item_norms):
        model = where.get("model")
        metrics = same_run(inputs.metrics, where) if inputs.metrics is not None else None
        outcome = popularity_outcome(metrics, model, cfg) if model is not None else None
        for (embedding,), part in rows.partition_by("embedding", as_dict=True, maintain_order=True).items():
            part = part.filter(pl.col("norm").is_finite() & pl.col("popularity").is_finite())
            if part.height < t.coupling_min_items:
                continue
            rho = spearman(part.get_column("norm").to_numpy(), part.get_column("popularity").to_numpy())
            severity = severity_of(rho, t.coupling_rho, t.coupling_rho_critical) if rho is not None else None
            if severity is None:
                continue
            message = f"norms of {embedding} follow item popularity: Spearman {fmt(rho)} over {part.height} items"
            if outcome is not None and not outcome["biased"]:
                severity = "info"
                message += (f"; its recommendations show no popularity bias (items {fmt(outcome['ratio'])}x as "
                            f"popular as held-out ones)" if outcome["ratio"] is not None else
                            "; its recommendations show no popularity bias")
            elif outcome is not None:
                message += "; its recommendations are popularity-biased (see POPULARITY_BIAS)"
            out.append(Finding(
                "NORM_POPULARITY_COUPLING", severity, {**where, "table": "item_norms", "embedding": embedding},
                message,
                {"spearman": rho, "n_items": part.height, "coupling_rho": t.coupling_rho,
                 "coupling_rho_critical": t.coupling_rho_critical,
                 "outcome": None if outcome is None else {k: outcome[k] for k in (
                     "split", "ratio", "coverage", "baseline_coverage", "biased")}},
                remedy("Scores favour popular items through vector length: normalise the vectors (cosine "
                       "scores), add weight decay, or correct the loss for popularity (sampled softmax with logQ).",
                       model_edit(model, "normalize", "enable"),
                       {"param": "train.loss", "op": "choice_add", "value": "sampled_softmax"})))
    return out


def anisotropic_text_vectors(inputs: DiagnosisInputs, cfg: DiagnoseConfig) -> list[Finding]:
    """ANISOTROPIC_TEXT_VECTORS: a text embedding (``embeddings.text_embeddings``) with mean pairwise
    cosine ``>= embeddings.anisotropy_mean_cosine`` (warning) or
    ``embeddings.anisotropy_mean_cosine_critical`` (critical). Isotropy is reported as evidence."""
    t = cfg.embeddings
    out = []
    for where, row in _rows(inputs):
        cosine = row["mean_cosine"]
        if row["embedding"] not in t.text_embeddings or cosine is None or not np.isfinite(cosine):
            continue
        severity = severity_of(cosine, t.anisotropy_mean_cosine, t.anisotropy_mean_cosine_critical)
        if severity is None:
            continue
        out.append(Finding(
            "ANISOTROPIC_TEXT_VECTORS", severity, where,
            f"{row['embedding']} vectors share one direction: mean cosine {fmt(cosine)} "
            f"(isotropy {fmt(row['isotropy'])})",
            {"mean_cosine": cosine, "isotropy": row["isotropy"], "n_rows": row["n_rows"],
             "anisotropy_mean_cosine": t.anisotropy_mean_cosine,
             "anisotropy_mean_cosine_critical": t.anisotropy_mean_cosine_critical},
            remedy("All items look alike to the encoder: mean-pool instead of CLS, centre (subtract the mean "
                   "vector) or whiten the text vectors, and let a learned projection re-spread them.",
                   {"param": "encoder.pooling", "op": "set", "value": "mean"})))
    return out
