"""Feature rules over ``feature_importance``: text ignored or dominant, ID embeddings unused, a text field that hurts.

Per (run, dataset, model), the rows for ``diagnose.metric@k`` in the first split of
``diagnose.splits`` that has them, measured by the first method of
``features.methods`` present (ablation, then permutation). A *group* row has a null
``feature_group``; the text group is a feature named in ``features.text_features``, the
ID group one in ``features.id_features``. A *text field* row has ``feature_group`` in
``features.text_field_groups`` or ``features.text_features``. Drops are taken relative
to ``baseline_value`` (the metric with every feature), so they are scale-free.

>>> import polars as pl
>>> from recsys.diagnose.config import DiagnoseConfig
>>> from recsys.diagnose.inputs import DiagnosisInputs, prepare
>>> fi = pl.DataFrame({"model": ["two_tower"], "split": ["val"], "feature": ["text"], "method": ["ablation"],
...                    "metric": ["ndcg"], "k": [10], "baseline_value": [0.2], "drop": [0.001]})
>>> [f.code for f in feature_rules(DiagnosisInputs(feature_importance=prepare(fi, "feature_importance")),
...                                DiagnoseConfig())]
['TEXT_IGNORED']
"""

from __future__ import annotations

from typing import Any, Optional

import polars as pl

from recsys.diagnose.config import DiagnoseConfig
from recsys.diagnose.finding import Finding, fmt
from recsys.diagnose.inputs import DiagnosisInputs, by_unit
from recsys.diagnose.remedies import model_edit, remedy


def _selected(rows: pl.DataFrame, cfg: DiagnoseConfig) -> pl.DataFrame:
    rows = rows.filter((pl.col("metric") == cfg.metric) & (pl.col("k") == cfg.k) & pl.col("drop").is_finite())
    for split in cfg.splits:
        part = rows.filter(pl.col("split") == split)
        if part.height:
            rows = part
            break
    else:
        rows = rows.filter(pl.col("split").is_null())
    for method in cfg.features.methods:
        part = rows.filter(pl.col("method") == method)
        if part.height:
            return part
    return rows.clear()


def _relative(row: dict[str, Any]) -> Optional[float]:
    base = row["baseline_value"]
    return row["drop"] / base if base is not None and base > 0 else None


def _group(rows: pl.DataFrame, names: list[str]) -> Optional[dict[str, Any]]:
    wanted = {n.lower() for n in names}
    for row in rows.filter(pl.col("feature_group").is_null()).iter_rows(named=True):
        if row["feature"].lower() in wanted and _relative(row) is not None:
            return row
    return None


def _evidence(row: dict[str, Any], rel: float, **thresholds: float) -> dict[str, Any]:
    return {"feature": row["feature"], "method": row["method"], "split": row["split"],
            "baseline_value": row["baseline_value"], "drop": row["drop"], "rel_drop": rel,
            "ci_low": row["ci_low"], "ci_high": row["ci_high"], **thresholds}


def feature_rules(inputs: DiagnosisInputs, cfg: DiagnoseConfig) -> list[Finding]:
    """TEXT_IGNORED, TEXT_DOMINANT, ID_EMBEDDINGS_UNUSED and TEXT_FIELD_HURTS.

    - TEXT_IGNORED (warning): text group ``rel_drop < features.text_ignored_rel_drop`` and its
      interval reaches 0 (``ci_low <= 0`` or no interval).
    - TEXT_DOMINANT (info): text group ``rel_drop >= features.text_dominant_rel_drop`` and
      ``>= features.text_dominant_over_id x`` the ID group's rel_drop (needs both groups).
    - ID_EMBEDDINGS_UNUSED (warning): ID group ``rel_drop < features.id_unused_rel_drop`` and
      ``ci_low <= 0`` (or no interval).
    - TEXT_FIELD_HURTS (warning): removing a text field raises the metric: ``-rel_drop >=
      features.field_hurts_rel_gain`` and ``ci_high < 0`` (or no interval).
    """
    t = cfg.features
    out = []
    name = f"{cfg.metric}@{cfg.k}"
    for where, rows in by_unit(inputs.feature_importance):
        rows = _selected(rows, cfg)
        if rows.height == 0:
            continue
        model = where.get("model")
        base = {**where, "table": "feature_importance"}
        text, ids = _group(rows, t.text_features), _group(rows, t.id_features)
        if text is not None:
            rel = _relative(text)
            if rel < t.text_ignored_rel_drop and (text["ci_low"] is None or text["ci_low"] <= 0):
                out.append(Finding(
                    "TEXT_IGNORED", "warning", {**base, "feature": text["feature"]},
                    f"removing {text['feature']} changes {name} by {fmt(100 * rel)}% "
                    f"(drop {fmt(text['drop'])}, CI {fmt(text['ci_low'])}..{fmt(text['ci_high'])})",
                    _evidence(text, rel, text_ignored_rel_drop=t.text_ignored_rel_drop),
                    remedy("The model does not use the text vectors: check that the template fills the item "
                           "fields, try a stronger encoder, or drop the text to save compute.",
                           {"param": "encoder.name", "op": "choice_add", "value": "bert-base"})))
            id_rel = _relative(ids) if ids is not None else None
            if (id_rel is not None and rel >= t.text_dominant_rel_drop
                    and rel >= t.text_dominant_over_id * id_rel):
                out.append(Finding(
                    "TEXT_DOMINANT", "info", {**base, "feature": text["feature"]},
                    f"removing {text['feature']} costs {fmt(100 * rel)}% of {name}, removing {ids['feature']} "
                    f"{fmt(100 * id_rel)}%",
                    {**_evidence(text, rel, text_dominant_rel_drop=t.text_dominant_rel_drop,
                                 text_dominant_over_id=t.text_dominant_over_id),
                     "id_feature": ids["feature"], "id_rel_drop": id_rel},
                    remedy("The model rests on the text vectors: good for cold items; if warm items matter, "
                           "train the ID embeddings longer or with a higher learning rate.")))
        if ids is not None:
            rel = _relative(ids)
            if rel < t.id_unused_rel_drop and (ids["ci_low"] is None or ids["ci_low"] <= 0):
                out.append(Finding(
                    "ID_EMBEDDINGS_UNUSED", "warning", {**base, "feature": ids["feature"]},
                    f"removing {ids['feature']} changes {name} by {fmt(100 * rel)}% "
                    f"(drop {fmt(ids['drop'])}, CI {fmt(ids['ci_low'])}..{fmt(ids['ci_high'])})",
                    _evidence(ids, rel, id_unused_rel_drop=t.id_unused_rel_drop),
                    remedy("The ID embeddings add nothing: drop them (fewer parameters) or train them longer.",
                           model_edit(model, "use_item_id", "choice_add", value=False))))
        field_groups = {g.lower() for g in [*t.text_field_groups, *t.text_features]}
        fields = rows.filter(pl.col("feature_group").str.to_lowercase().is_in(list(field_groups)))
        for row in fields.iter_rows(named=True):
            rel = _relative(row)
            interval_below_zero = row["ci_high"] is None or row["ci_high"] < 0
            if not row["feature"] or rel is None or -rel < t.field_hurts_rel_gain or not interval_below_zero:
                continue
            out.append(Finding(
                "TEXT_FIELD_HURTS", "warning", {**base, "feature": row["feature"]},
                f"removing text field '{row['feature']}' raises {name} by {fmt(-100 * rel)}% "
                f"(CI of the drop {fmt(row['ci_low'])}..{fmt(row['ci_high'])})",
                _evidence(row, rel, field_hurts_rel_gain=t.field_hurts_rel_gain),
                remedy(f"The field '{row['feature']}' adds noise to the item text: leave it out of the template.",
                       {"param": "encoder.template", "op": "remove_field", "value": row["feature"]})))
    return out
