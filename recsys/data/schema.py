"""Canonical tables every loader produces and every later stage reads.

Interactions (one row per event):

======== ================ ==============================================
column   type             notes
======== ================ ==============================================
user_id  string (Utf8)    original id, as text
item_id  string (Utf8)    original id, as text
timestamp int64           seconds since epoch
rating   float32, nullable explicit feedback when the source has it
======== ================ ==============================================

Items: ``item_id`` plus text fields (``title``, ``genres``, ``tags``,
``description``, ``brand``, ``categories``, ``features``...), all strings.
Users (optional): ``user_id`` plus attribute columns (e.g. ``gender``, ``age``).

>>> import polars as pl
>>> INTERACTION_SCHEMA["timestamp"]
Int64
>>> conform_interactions(pl.DataFrame({"user_id": ["u"], "item_id": ["i"],
...     "timestamp": [1], "rating": [None]})).schema["rating"]
Float32
"""

from __future__ import annotations

import polars as pl

USER_ID = "user_id"
ITEM_ID = "item_id"
TIMESTAMP = "timestamp"
RATING = "rating"
USER_IDX = "user_idx"
ITEM_IDX = "item_idx"

INTERACTION_SCHEMA: dict[str, pl.DataType] = {
    USER_ID: pl.Utf8(),
    ITEM_ID: pl.Utf8(),
    TIMESTAMP: pl.Int64(),
    RATING: pl.Float32(),
}

# Text fields loaders keep for the encoder, in the order templates usually use them.
ITEM_TEXT_FIELDS = ("title", "genres", "tags", "description", "brand", "categories", "features")

SPLITS = ("train", "val", "test")
SPLIT = "split"   # the column of split labels (train | val | test)


def conform_interactions(frame: pl.DataFrame) -> pl.DataFrame:
    """Select and cast the canonical interaction columns, in canonical order.

    Assumes the columns exist and are castable (validation checks that first).
    """
    return frame.select(
        [pl.col(name).cast(dtype) for name, dtype in INTERACTION_SCHEMA.items()]
    )
