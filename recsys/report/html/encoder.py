"""A language model inside a recommender (``finetune``) in the report: its transformer blocks in the
gradient heatmaps, one row per block, and its drift from the pretrained encoder over epochs.

``grad_stats`` holds one row per parameter tensor (``encoder.layer.4.attention.self.query.weight``,
16 per BERT block); :func:`by_block` sums a block's tensors into one row per step, so the
heatmap shows ``encoder.layer.0`` ... ``encoder.layer.5`` in order, under the model's other layers.
:func:`drift` plots the per-epoch series the model records (``text/drift_cosine`` and
``text/cka/encoder.layer.N``, see :meth:`recsys.models.finetune.FineTune.epoch_curves`).

>>> rows = pl.DataFrame({"step": [0, 0, 0], "layer": ["encoder.layer.1.a.weight", "encoder.layer.1.b.weight",
...                                                   "item_proj.weight"], "grad_norm": [3.0, 4.0, 1.0],
...                      "weight_norm": [1.0, 1.0, 2.0], "update_ratio": [0.1, 0.1, 0.5],
...                      "nan_count": [0, 0, 0], "inf_count": [0, 0, 0]})
>>> by_block(rows).select("layer", "grad_norm", "update_ratio").rows()
[('item_proj.weight', 1.0, 0.5), ('encoder.layer.1', 5.0, 0.1)]
"""

from __future__ import annotations

import polars as pl

from recsys.report.html import plots
from recsys.report.html.page import figure_html

BLOCK = r"^(encoder\.layer\.(\d+))\."
DRIFT = "text/drift_cosine"
CKA = "text/cka/"


def by_block(frame: pl.DataFrame) -> pl.DataFrame:
    """``grad_stats`` rows of one model with each encoder block's tensors merged per step.

    A block's gradient and weight norms are the L2 norms over its tensors
    (``sqrt(sum g_i^2)``), its update ratio ``sqrt(sum (r_i w_i)^2) / sqrt(sum w_i^2)`` (the
    block's update norm over its weight norm); NaN/Inf counts add up. The other layers are kept
    as they are, first; blocks follow, bottom block first.
    """
    tagged = frame.with_columns(pl.col("layer").str.extract(BLOCK, 1).alias("_block"),
                                pl.col("layer").str.extract(BLOCK, 2).cast(pl.Int64).alias("_number"))
    blocks = tagged.filter(pl.col("_block").is_not_null())
    if blocks.is_empty():
        return frame
    merged = (blocks.group_by("_block", "_number", "step")
              .agg((pl.col("grad_norm") ** 2).sum().sqrt().alias("grad_norm"),
                   (pl.col("weight_norm") ** 2).sum().sqrt().alias("weight_norm"),
                   ((pl.col("update_ratio") * pl.col("weight_norm")) ** 2).sum().sqrt().alias("_update"),
                   pl.col("nan_count").sum(), pl.col("inf_count").sum())
              .with_columns((pl.col("_update") / pl.col("weight_norm")).alias("update_ratio"))
              .sort("_number", "step")
              .rename({"_block": "layer"}))
    rest = tagged.filter(pl.col("_block").is_null())
    columns = ["step", "layer", "grad_norm", "weight_norm", "update_ratio", "nan_count", "inf_count"]
    return pl.concat([rest.select(columns), merged.select(columns)], how="vertical_relaxed")


def drift(curves: pl.DataFrame, label: str) -> str:
    """The figure of one model's drift from its pretrained encoder per epoch (empty without the series).

    Lines: mean cosine of the item text vectors to the pretrained ones, and the linear CKA of each
    trained block's output, now vs pretrained (1 = unchanged).

    >>> rows = pl.DataFrame({"step": [9, 19], "epoch": [0, 1], "name": ["text/drift_cosine"] * 2,
    ...                      "value": [0.99, 0.97]})
    >>> drift(rows, "finetune").startswith("<figure><svg"), drift(rows.head(0), "finetune")
    (True, '')
    """
    series = curves.filter((pl.col("name") == DRIFT) | pl.col("name").str.starts_with(CKA))
    if series.is_empty():
        return ""
    x = "epoch" if "epoch" in series.columns and series["epoch"].null_count() == 0 else "step"
    lines = {}
    for (name,), group in series.sort(x).group_by(["name"], maintain_order=True):
        title = "text cosine to pretrained" if name == DRIFT else "CKA " + name[len(CKA):]
        lines[title] = (group[x].to_list(), group["value"].to_list())
    ordered = dict(sorted(lines.items(), key=lambda kv: (not kv[0].startswith("text"), _block_number(kv[0]))))
    return figure_html(plots.lines(ordered, x, "similarity (1 = pretrained)",
                                   title=f"{label}: drift from the pretrained encoder"),
                       "mean cosine of the item text vectors to the pretrained ones, and linear CKA of each "
                       "trained block's output now vs pretrained (probe items); a fall in the first epoch is "
                       "forgetting, a flat 1 an encoder that does not learn")


def _block_number(title: str) -> int:
    tail = title.rsplit(".", 1)[-1]
    return int(tail) if tail.isdigit() else -1
