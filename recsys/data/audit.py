"""Rows of the report's ``datasets`` table: sizes, cold counts and leakage per stage.

Definitions, for a val/test row of user ``u``:

- cold user: ``u`` has no train rows; cold item: the item has no train rows;
  a cold row has a cold user or a cold item.
- leakage: the row's timestamp is strictly earlier than ``u``'s latest train
  timestamp (the model trains on ``u``'s future); ``n_leakage_users`` counts users
  with at least one such row.
- timestamp tie: the row's timestamp equals the timestamp of one of ``u``'s
  train rows (counted once per row). A row can be both a tie and a leak.

Train rows have none of these (all zero). ``n_items`` is the number of distinct
items in the stage; ``n_catalog_items`` the items that can be scored (the item map).

Distributed use: :func:`audit_pieces` on each block (blocks hold whole users),
:func:`merge_audit_pieces` to combine, :func:`finish_audit` once. Per-user counts
add up across whole-user blocks; distinct item counts do not, so each piece
carries a small (item_id, split, n) table that the merge sums and the finish
counts. For cold items/rows to be right per block, pass ``train_items`` (the
items of the *whole* train split, e.g. the warm rows of the item map).

>>> import polars as pl
>>> frame = pl.DataFrame({"user_id": ["u", "u", "u", "v"], "item_id": ["a", "b", "c", "a"],
...                       "timestamp": [5, 9, 7, 1], "split": ["train", "train", "test", "test"]})
>>> test = split_audit(frame)[2]
>>> test["n_cold_users"], test["n_cold_items"], test["n_leakage_rows"], test["n_cold_rows"]
(1, 1, 1, 2)
"""

from __future__ import annotations

import polars as pl

from recsys.data.idmap import IS_COLD
from recsys.data.schema import ITEM_ID, RATING, SPLITS, TIMESTAMP, USER_ID
from recsys.data.split import SPLIT
from recsys.errors import DataError

_MAX_TRAIN_TS, _TIE = "__max_train_ts", "__tie"
_COUNTS = ("n_rows", "n_users", "n_cold_users", "n_cold_user_rows", "n_cold_item_rows", "n_cold_rows",
           "n_leakage_rows", "n_leakage_users", "n_timestamp_ties")


def _require(frame: pl.DataFrame, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"the audit needs column(s) {missing}; found {frame.columns}", column=missing[0],
                        hint="audit the split interaction table (with its 'split' column)")


def audit_pieces(frame: pl.DataFrame, *, train_items: pl.Series | None = None) -> dict:
    """Additive audit pieces of a frame (or a block of whole users) with a ``split`` column.

    ``train_items``: the ids of items with train rows anywhere; default: this frame's train items.

    >>> frame = pl.DataFrame({"user_id": ["u"], "item_id": ["a"], "timestamp": [1], "split": ["train"]})
    >>> audit_pieces(frame)["counts"]["train"]["n_rows"]
    1
    """
    _require(frame, (USER_ID, ITEM_ID, TIMESTAMP, SPLIT))
    is_train = pl.col(SPLIT) == "train"
    train = frame.filter(is_train)
    if train_items is None:
        train_items = train[ITEM_ID].unique()
    latest = train.group_by(USER_ID).agg(pl.col(TIMESTAMP).max().alias(_MAX_TRAIN_TS))
    train_times = train.select(USER_ID, TIMESTAMP).unique().with_columns(pl.lit(True).alias(_TIE))
    rows = (frame.select(USER_ID, ITEM_ID, TIMESTAMP, SPLIT)
            .join(latest, on=USER_ID, how="left")
            .join(train_times, on=[USER_ID, TIMESTAMP], how="left")
            .with_columns(
                (~is_train & pl.col(_MAX_TRAIN_TS).is_null()).alias("cold_user"),
                (~is_train & ~pl.col(ITEM_ID).is_in(train_items.cast(pl.Utf8).implode())).alias("cold_item"),
                (~is_train & (pl.col(TIMESTAMP) < pl.col(_MAX_TRAIN_TS)).fill_null(False)).alias("leak"),
                (~is_train & pl.col(_TIE).fill_null(False)).alias("tie"),
            ))
    user = pl.col(USER_ID)
    table = rows.group_by(SPLIT).agg(
        pl.len().alias("n_rows"), user.n_unique().alias("n_users"),
        user.filter(pl.col("cold_user")).n_unique().alias("n_cold_users"),
        pl.col("cold_user").sum().alias("n_cold_user_rows"), pl.col("cold_item").sum().alias("n_cold_item_rows"),
        (pl.col("cold_user") | pl.col("cold_item")).sum().alias("n_cold_rows"),
        pl.col("leak").sum().alias("n_leakage_rows"), user.filter(pl.col("leak")).n_unique().alias("n_leakage_users"),
        pl.col("tie").sum().alias("n_timestamp_ties"),
        pl.col(TIMESTAMP).min().alias("timestamp_min"), pl.col(TIMESTAMP).max().alias("timestamp_max"),
    )
    counts = {}
    for row in table.iter_rows(named=True):
        stage = row.pop(SPLIT)
        counts[stage] = {k: (int(v) if k in _COUNTS else v) for k, v in row.items()}
    items = frame.group_by(ITEM_ID, SPLIT).agg(pl.len().cast(pl.Int64).alias("n"))
    return {"counts": counts, "stage_items": items}


def merge_audit_pieces(a: dict, b: dict) -> dict:
    """Combine the pieces of two blocks that hold disjoint sets of users.

    >>> f = pl.DataFrame({"user_id": ["u"], "item_id": ["a"], "timestamp": [1], "split": ["train"]})
    >>> merged = merge_audit_pieces(audit_pieces(f), audit_pieces(f.with_columns(pl.lit("v").alias("user_id"))))
    >>> merged["counts"]["train"]["n_users"], merged["stage_items"]["n"].to_list()
    (2, [2])
    """
    counts = {}
    for stage in a["counts"].keys() | b["counts"].keys():
        x, y = a["counts"].get(stage), b["counts"].get(stage)
        if x is None or y is None:
            counts[stage] = dict(x or y)
            continue
        merged = {k: x[k] + y[k] for k in _COUNTS}
        merged["timestamp_min"] = min(x["timestamp_min"], y["timestamp_min"])
        merged["timestamp_max"] = max(x["timestamp_max"], y["timestamp_max"])
        counts[stage] = merged
    items = (pl.concat([a["stage_items"], b["stage_items"]])
             .group_by(ITEM_ID, SPLIT).agg(pl.col("n").sum()))
    return {"counts": counts, "stage_items": items}


def finish_audit(pieces: dict, n_catalog_items: int | None = None) -> list[dict]:
    """One ``datasets`` row per stage (train, val, test) from merged pieces.

    ``n_catalog_items`` defaults to the distinct items over all stages.

    >>> f = pl.DataFrame({"user_id": ["u"], "item_id": ["a"], "timestamp": [1], "split": ["train"]})
    >>> [(r["stage"], r["n_rows"]) for r in finish_audit(audit_pieces(f))]
    [('train', 1), ('val', 0), ('test', 0)]
    """
    items = pieces["stage_items"]
    train_items = items.filter(pl.col(SPLIT) == "train").select(ITEM_ID)
    if n_catalog_items is None:
        n_catalog_items = items[ITEM_ID].n_unique()
    out = []
    for stage in SPLITS:
        stage_items = items.filter(pl.col(SPLIT) == stage).select(ITEM_ID)
        counts = pieces["counts"].get(stage) or {**dict.fromkeys(_COUNTS, 0), "timestamp_min": None,
                                                  "timestamp_max": None}
        cold_items = 0 if stage == "train" else stage_items.join(train_items, on=ITEM_ID, how="anti").height
        out.append({
            "stage": stage, "n_rows": counts["n_rows"], "n_users": counts["n_users"],
            "n_items": stage_items.height, "n_catalog_items": int(n_catalog_items),
            "n_cold_users": counts["n_cold_users"], "n_cold_items": cold_items, "n_cold_rows": counts["n_cold_rows"],
            "n_leakage_rows": counts["n_leakage_rows"], "n_leakage_users": counts["n_leakage_users"],
            "n_timestamp_ties": counts["n_timestamp_ties"],
            "details": {
                "n_cold_user_rows": counts["n_cold_user_rows"], "n_cold_item_rows": counts["n_cold_item_rows"],
                "timestamp_min": counts["timestamp_min"], "timestamp_max": counts["timestamp_max"],
                "rows_per_user": counts["n_rows"] / counts["n_users"] if counts["n_users"] else None,
            },
        })
    return out


def split_audit(
    frame: pl.DataFrame, item_map: pl.DataFrame | None = None, n_catalog_items: int | None = None
) -> list[dict]:
    """Audit rows (train, val, test) of a whole frame with a ``split`` column.

    ``item_map`` (from :func:`recsys.data.idmap.build_id_maps`) gives the train
    items and, by its size, ``n_catalog_items`` unless that is passed.

    >>> f = pl.DataFrame({"user_id": ["u", "u"], "item_id": ["a", "b"], "timestamp": [3, 3],
    ...                   "split": ["train", "val"]})
    >>> split_audit(f)[1]["n_timestamp_ties"]
    1
    """
    train_items = None
    if item_map is not None:
        train_items = item_map.filter(~pl.col(IS_COLD))[ITEM_ID]
        n_catalog_items = item_map.height if n_catalog_items is None else n_catalog_items
    return finish_audit(audit_pieces(frame, train_items=train_items), n_catalog_items)


def stage_counts(frame: pl.DataFrame, stage: str, n_catalog_items: int) -> dict:
    """A ``datasets`` row for a stage before the split (``loaded``, ``filtered``): split-only fields are None.

    >>> f = pl.DataFrame({"user_id": ["u", "v"], "item_id": ["a", "a"], "timestamp": [1, 2], "rating": [None, 3.0]})
    >>> row = stage_counts(f, "loaded", 5)
    >>> row["n_users"], row["n_items"], row["n_cold_users"]
    (2, 1, None)
    """
    _require(frame, (USER_ID, ITEM_ID, TIMESTAMP))
    ratings = int(frame[RATING].is_not_null().sum()) if RATING in frame.columns else 0
    return {
        "stage": stage, "n_rows": frame.height, "n_users": frame[USER_ID].n_unique(),
        "n_items": frame[ITEM_ID].n_unique(), "n_catalog_items": int(n_catalog_items),
        "n_cold_users": None, "n_cold_items": None, "n_cold_rows": None,
        "n_leakage_rows": None, "n_leakage_users": None, "n_timestamp_ties": None,
        "details": {"timestamp_min": frame[TIMESTAMP].min(), "timestamp_max": frame[TIMESTAMP].max(),
                    "n_rating_values": ratings},
    }
