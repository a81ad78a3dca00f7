"""Check a loaded interaction table and conform it to the canonical schema.

Validation is a map over blocks followed by a reduce, so one frame and a sharded
dataset are checked by the same code:

1. :func:`select_columns` (per block): canonical names from ``dataset.columns``,
   missing or misnamed columns, column types that cannot hold the field;
2. :func:`block_stats` (per block): additive counts of every problem, with one
   example each; :func:`merge_stats` combines two blocks' statistics;
3. :func:`decide_timestamp_unit` and :func:`check_stats` (once, on merged
   statistics, in :mod:`recsys.data.checks`): the timestamp unit and the errors,
   with counts over all blocks;
4. :func:`conform_block` (per block): canonical types, timestamps in seconds.

:func:`validate_interactions` runs the four steps on one frame. Timestamps with
``dataset.timestamp_unit=auto`` are read as seconds unless the largest value is
beyond 1e11 (year 5138 in seconds), then as ms, us or ns by magnitude; a column
whose smallest positive value looks like a coarser unit than its largest is an
error (mixed units).

Invalid rows: a null, NaN or empty ('' or spaces) user or item id; a null, NaN,
infinite or unparseable timestamp; a negative timestamp (before 1970-01-01) or one
after 2100-01-01 (both bounds in seconds, after the unit conversion); a NaN or
infinite rating. With ``data.invalid_rows=error`` (the default) the first kind found
is a :class:`DataError` naming the file and column with the count and the first bad
row; with ``drop`` such rows are removed by :func:`conform_block` and counted
(:func:`invalid_rows_summary`). A null rating is not invalid: ratings are optional.
Timestamps that were given an explicit finer unit (``ms``, ``us``, ``ns``) but then all
fall in 1970 while their values look like seconds are always an error (a unit mix-up).

>>> import polars as pl
>>> from recsys.data.config import DatasetConfig
>>> raw = pl.DataFrame({"userId": [1, 2], "movieId": [10, 20],
...                     "timestamp": [1_600_000_000_000, 1_600_000_100_000], "rating": [4.0, 5.0]})
>>> frame, stats = validate_interactions(raw, source="r.csv",
...     cfg=DatasetConfig(columns={"user_id": "userId", "item_id": "movieId"}))
>>> frame["timestamp"].to_list(), stats["timestamp_unit"], frame.schema["user_id"]
([1600000000, 1600000100], 'ms', String)
"""

from __future__ import annotations

import difflib

import polars as pl

from recsys.data.config import DatasetConfig
from recsys.data.schema import (INTERACTION_SCHEMA, ITEM_ID, RATING, SPLIT, SPLITS, TIMESTAMP, USER_ID,
                                 conform_interactions)
from recsys.data.checks import (  # noqa: F401 - the checks on merged statistics, re-exported
    DROPPABLE,
    INVALID_ROW_POLICIES,
    LATEST_PLAUSIBLE,
    TIMESTAMP_UNITS,
    check_settings,
    check_stats,
    decide_timestamp_unit,
    invalid_rows_summary,
)
from recsys.errors import ConfigError, DataError

REQUIRED = (USER_ID, ITEM_ID, TIMESTAMP)
_MISSING_WORDS = ("", "nan", "null", "none", "na", "n/a")
_MISSING_RATING_WORDS = ("", "null", "none", "na", "n/a")   # a "nan" rating is invalid, not missing
_MISSING_LABEL = "<missing>"
_DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S%.f",
                     "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d")
_ALIASES = {
    USER_ID: ("userid", "user", "uid", "reviewerid", "customerid", "visitorid", "memberid", "users"),
    ITEM_ID: ("itemid", "item", "iid", "movieid", "asin", "parentasin", "productid", "bookid",
              "isbn", "trackid", "songid", "movie", "product"),
    TIMESTAMP: ("ts", "time", "unixreviewtime", "datetime", "date", "eventtime", "createdat", "unixtime"),
    RATING: ("score", "stars", "overall", "rate", "ratings", "value"),
}
_WHAT = {USER_ID: "user ids", ITEM_ID: "item ids", TIMESTAMP: "timestamps", RATING: "ratings"}


def _close_names(target: str, columns: list[str]) -> list[str]:
    def norm(name: str) -> str:
        return "".join(ch for ch in name.lower() if ch.isalnum())

    hits = [c for c in columns if norm(c) == norm(target) or norm(c) in _ALIASES.get(target, ())]
    hits += [c for c in difflib.get_close_matches(target, columns, n=3, cutoff=0.6) if c not in hits]
    return hits[:3]


def select_columns(frame: pl.DataFrame, *, source: str, cfg: DatasetConfig) -> pl.DataFrame:
    """Rename mapped columns to canonical names and keep only those (values still raw).

    A missing ``rating`` becomes an all-null column; a missing id or timestamp
    column is an error that suggests close names.

    >>> select_columns(pl.DataFrame({"uid": ["a"], "item_id": ["x"], "timestamp": [1]}),
    ...                source="f.csv", cfg=DatasetConfig()).columns
    Traceback (most recent call last):
    ...
    recsys.errors.DataError: f.csv, column 'user_id': missing column 'user_id' (columns found: uid, item_id, timestamp). What to do: the column 'uid' looks like it: set dataset.columns.user_id=uid
    """
    unknown = sorted(set(cfg.columns) - set(INTERACTION_SCHEMA) - {SPLIT})
    if unknown:
        raise ConfigError(f"unknown canonical column(s) {unknown} in the column mapping", setting="dataset.columns",
                          hint="map only " + ", ".join(INTERACTION_SCHEMA) + " (canonical name -> source column)")
    found = ", ".join(frame.columns[:20]) + (", ..." if frame.width > 20 else "")
    picked: dict[str, pl.Expr] = {}
    for canon in INTERACTION_SCHEMA:
        mapped = cfg.columns.get(canon)
        if mapped and mapped in frame.columns:
            picked[canon] = pl.col(mapped)
        elif canon in frame.columns:
            picked[canon] = pl.col(canon)
        elif mapped:
            raise DataError(f"the column '{mapped}' named by dataset.columns.{canon} is not there (columns found: {found})",
                            file=source, column=mapped, hint=_rename_hint(canon, frame.columns))
        elif canon == RATING:
            picked[canon] = pl.lit(None, dtype=pl.Float32)
        else:
            raise DataError(f"missing column '{canon}' (columns found: {found})", file=source, column=canon,
                            hint=_rename_hint(canon, frame.columns))
    if SPLIT in frame.columns:
        picked[SPLIT] = pl.col(SPLIT)
    selected = frame.select([expr.alias(name) for name, expr in picked.items()])
    for name, dtype in selected.schema.items():
        if name == SPLIT:
            continue
        if not _supported(name, dtype):
            expected = {USER_ID: "text or integer ids", ITEM_ID: "text or integer ids",
                        TIMESTAMP: "integer seconds/milliseconds or a date-time", RATING: "numbers"}[name]
            raise DataError(f"column '{name}' has type {dtype}; expected {expected}", file=source, column=name,
                            hint=f"convert the column to {expected}, or map another column with dataset.columns.{name}=NAME")
    return selected


def _rename_hint(canon: str, columns: list[str]) -> str:
    close = _close_names(canon, columns)
    if close:
        return f"the column '{close[0]}' looks like it: set dataset.columns.{canon}={close[0]}"
    return f"name the source column with dataset.columns.{canon}=NAME"


def _supported(name: str, dtype: pl.DataType) -> bool:
    text = dtype == pl.Utf8 or isinstance(dtype, (pl.Categorical, pl.Enum)) or dtype == pl.Null
    if name in (USER_ID, ITEM_ID):
        return text or dtype.is_integer() or dtype.is_float()
    if name == TIMESTAMP:
        return text or dtype.is_integer() or dtype.is_float() or isinstance(dtype, (pl.Datetime, pl.Date))
    return text or dtype.is_numeric() or dtype == pl.Boolean


def _text(col: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    stripped = col.cast(pl.Utf8).str.strip_chars()
    return stripped, col.is_null() | stripped.str.to_lowercase().is_in(list(_MISSING_WORDS))


def _ids(name: str, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(value as Utf8, missing, empty) expressions for an id column."""
    col = pl.col(name)
    if dtype.is_float():
        integral = (col == col.floor()) & (col.abs() < 2.0**62)
        value = pl.when(integral).then(col.cast(pl.Int64, strict=False).cast(pl.Utf8)).otherwise(col.cast(pl.Utf8))
        return value, col.is_null() | col.is_nan(), pl.lit(False)
    value = col.cast(pl.Utf8)
    return value, col.is_null(), value.str.strip_chars() == ""


def _timestamps(dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(raw Int64 value, missing, fractional) expressions for the timestamp column."""
    col = pl.col(TIMESTAMP)
    if isinstance(dtype, (pl.Datetime, pl.Date)):
        return col.cast(pl.Datetime("us")).dt.epoch("s"), col.is_null(), pl.lit(False)
    if dtype.is_integer():
        return col.cast(pl.Int64, strict=False), col.is_null(), pl.lit(False)
    if dtype.is_float():
        finite = col.is_finite()
        return (pl.when(finite).then(col.floor().cast(pl.Int64, strict=False)),
                col.is_null() | col.is_nan(), finite & (col != col.floor()))
    text, missing = _text(col)
    number = text.cast(pl.Float64, strict=False)
    parsed = [text.cast(pl.Int64, strict=False),
              pl.when(number.is_finite()).then(number.floor().cast(pl.Int64, strict=False))]
    parsed += [text.str.strptime(pl.Datetime("us"), fmt, strict=False).dt.epoch("s") for fmt in _DATETIME_FORMATS]
    value = pl.when(missing).then(None).otherwise(pl.coalesce(parsed))
    return value, missing, number.is_finite() & (number != number.floor())


def _ratings(dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(Float64 value or null, missing, invalid: NaN, infinite or not a number) expressions for the rating column."""
    col = pl.col(RATING)
    if dtype == pl.Null:
        return pl.lit(None, dtype=pl.Float64), pl.lit(True), pl.lit(False)
    if dtype.is_numeric() or dtype == pl.Boolean:
        number = col.cast(pl.Float64)
        missing = number.is_null()
    else:
        text = col.cast(pl.Utf8).str.strip_chars()
        missing = col.is_null() | text.str.to_lowercase().is_in(list(_MISSING_RATING_WORDS))
        number = text.cast(pl.Float64, strict=False)
    bad = ~missing & (number.is_null() | ~number.is_finite())
    return pl.when(missing | bad).then(None).otherwise(number), missing, bad


def _row_checks(schema: dict) -> tuple[dict[str, pl.Expr], pl.Expr]:
    """({problem: condition} for the droppable row problems, the raw Int64 timestamp expression)."""
    _, user_missing, user_empty = _ids(USER_ID, schema[USER_ID])
    _, item_missing, item_empty = _ids(ITEM_ID, schema[ITEM_ID])
    ts, ts_missing, _ = _timestamps(schema[TIMESTAMP])
    _, _, rating_bad = _ratings(schema[RATING])
    checks = {
        "user_id_missing": user_missing, "user_id_empty": ~user_missing & user_empty,
        "item_id_missing": item_missing, "item_id_empty": ~item_missing & item_empty,
        "timestamp_missing": ts_missing, "timestamp_uncastable": ~ts_missing & ts.is_null(),
        "timestamp_negative": ts < 0, "rating_uncastable": rating_bad,
    }
    return {name: cond.fill_null(False) for name, cond in checks.items()}, ts


def _after_2100(ts: pl.Expr, unit: str) -> pl.Expr:
    return (ts > LATEST_PLAUSIBLE * TIMESTAMP_UNITS[unit]).fill_null(False)


def _example(frame: pl.DataFrame, cond: pl.Expr) -> dict:
    return frame.filter(cond).head(1).select(pl.all().cast(pl.Utf8)).row(0, named=True)


def block_stats(frame: pl.DataFrame, *, rating_scale: list[float] | None = None) -> dict:
    """Additive statistics of one block returned by :func:`select_columns`.

    Counts of every row problem with the first example of each; ``n_invalid_rows``
    counts rows with any droppable problem, per timestamp unit (the after-2100 check
    depends on the unit, decided later on the merged statistics). A ``split`` column
    adds label counts (``n_split_labels``) and the unknown labels (``n_split_unknown``).

    >>> raw = pl.DataFrame({"user_id": ["a", None], "item_id": ["x", "y"],
    ...                     "timestamp": [5, 7], "rating": [1.0, None]})
    >>> s = block_stats(raw)
    >>> s["n_rows"], s["n_user_id_missing"], s["timestamp_max"], s["n_rating_missing"], s["n_invalid_rows"]["s"]
    (2, 1, 7, 1, 1)
    """
    schema = frame.schema
    checks, ts = _row_checks(schema)
    _, _, ts_fraction = _timestamps(schema[TIMESTAMP])
    rating, rating_missing, _ = _ratings(schema[RATING])
    if rating_scale is not None:
        checks["rating_outside_scale"] = ((rating < rating_scale[0]) | (rating > rating_scale[1])).fill_null(False)
    any_droppable = pl.any_horizontal(*[checks[name] for name in DROPPABLE])
    exprs = [pl.len().alias("n_rows")]
    exprs += [cond.sum().alias(f"n_{name}") for name, cond in checks.items()]
    exprs += [ts_fraction.fill_null(False).sum().alias("n_timestamp_fractional"),
              rating_missing.sum().alias("n_rating_missing"), rating.is_not_null().sum().alias("n_rating_values"),
              ts.min().alias("timestamp_min"), ts.max().alias("timestamp_max"),
              ts.filter(ts > 0).min().alias("timestamp_min_positive"),
              rating.min().alias("rating_min"), rating.max().alias("rating_max")]
    exprs += [_after_2100(ts, u).sum().alias(f"after_2100_{u}") for u in TIMESTAMP_UNITS]
    exprs += [(any_droppable | _after_2100(ts, u)).sum().alias(f"invalid_{u}") for u in TIMESTAMP_UNITS]
    row = frame.select(exprs).row(0, named=True)
    stats = {k: v for k, v in row.items() if not k.startswith(("after_2100_", "invalid_"))}
    stats = {k: int(v) if k.startswith("n_") else v for k, v in stats.items()}
    stats["n_timestamp_after_2100"] = {u: int(row[f"after_2100_{u}"]) for u in TIMESTAMP_UNITS}
    stats["n_invalid_rows"] = {u: int(row[f"invalid_{u}"]) for u in TIMESTAMP_UNITS}
    stats["timestamp_is_datetime"] = isinstance(schema[TIMESTAMP], (pl.Datetime, pl.Date))
    stats["rating_scale"] = list(rating_scale) if rating_scale is not None else None
    stats["examples"] = {}
    for name, cond in checks.items():
        if stats[f"n_{name}"]:
            stats["examples"][name] = _example(frame, cond)
    for unit, count in stats["n_timestamp_after_2100"].items():
        if count:
            stats["examples"][f"timestamp_after_2100_{unit}"] = _example(frame, _after_2100(ts, unit))
    if SPLIT in schema:
        stats.update(_label_counts(frame[SPLIT]))
    return stats


def _label_counts(labels: pl.Series) -> dict:
    """Rows per known split label, and per unknown label (null as ``<missing>``)."""
    counts = labels.cast(pl.Utf8).fill_null(_MISSING_LABEL).value_counts(name="n")
    known = {name: 0 for name in SPLITS}
    unknown: dict[str, int] = {}
    for value, n in counts.iter_rows():
        (known if value in known else unknown)[value] = int(n)
    return {"n_split_labels": known, "n_split_unknown": unknown}


def merge_stats(a: dict, b: dict) -> dict:
    """Combine two blocks' :func:`block_stats` (associative; keeps ``a``'s examples first).

    >>> a = block_stats(pl.DataFrame({"user_id": ["u"], "item_id": ["i"], "timestamp": [3], "rating": [None]}))
    >>> b = block_stats(pl.DataFrame({"user_id": ["v"], "item_id": ["j"], "timestamp": [9], "rating": [2.0]}))
    >>> m = merge_stats(a, b)
    >>> m["n_rows"], m["timestamp_min"], m["timestamp_max"], m["rating_max"]
    (2, 3, 9, 2.0)
    """
    merged: dict = {}
    for key in a.keys() | b.keys():
        x, y = a.get(key), b.get(key)
        if key == "examples":
            merged[key] = {**(y or {}), **(x or {})}
        elif key.startswith("n_") and (isinstance(x, dict) or isinstance(y, dict)):
            x, y = x or {}, y or {}
            merged[key] = {u: x.get(u, 0) + y.get(u, 0) for u in x.keys() | y.keys()}
        elif key.startswith("n_"):
            merged[key] = (x or 0) + (y or 0)
        elif key.endswith(("_min", "_min_positive", "_max")):
            values = [v for v in (x, y) if v is not None]
            merged[key] = (max if key.endswith("_max") else min)(values) if values else None
        elif key == "timestamp_is_datetime":
            merged[key] = bool(x) or bool(y)
        else:
            merged[key] = x if x is not None else y
    return merged


def conform_block(frame: pl.DataFrame, unit: str, *, drop_invalid: bool = False) -> pl.DataFrame:
    """Canonical types for a block from :func:`select_columns`, timestamps converted from ``unit`` to seconds.

    ``drop_invalid`` removes the rows :func:`check_stats` lets through under
    ``data.invalid_rows=drop``. A ``split`` label column is kept (as text).

    >>> raw = pl.DataFrame({"user_id": [7], "item_id": [1.0], "timestamp": ["1500"], "rating": ["4"]})
    >>> conform_block(raw, "ms").row(0)
    ('7', '1', 1, 4.0)
    >>> conform_block(raw.with_columns(rating=pl.lit("nan")), "ms", drop_invalid=True).height
    0
    """
    schema = frame.schema
    if drop_invalid:
        checks, ts_raw = _row_checks(schema)
        after = pl.lit(False) if isinstance(schema[TIMESTAMP], (pl.Datetime, pl.Date)) else _after_2100(ts_raw, unit)
        frame = frame.filter(~pl.any_horizontal(*[checks[name] for name in DROPPABLE], after))
    factor = 1 if isinstance(schema[TIMESTAMP], (pl.Datetime, pl.Date)) else TIMESTAMP_UNITS[unit]
    ts = _timestamps(schema[TIMESTAMP])[0]
    out = conform_interactions(frame.select(
        _ids(USER_ID, schema[USER_ID])[0].alias(USER_ID),
        _ids(ITEM_ID, schema[ITEM_ID])[0].alias(ITEM_ID),
        (ts // factor if factor != 1 else ts).alias(TIMESTAMP),
        _ratings(schema[RATING])[0].alias(RATING),
    ))
    if SPLIT in schema:
        out = out.with_columns(frame[SPLIT].cast(pl.Utf8).alias(SPLIT))
    return out


def validate_interactions(frame: pl.DataFrame, *, source: str, cfg: DatasetConfig,
                          invalid_rows: str = "error") -> tuple[pl.DataFrame, dict]:
    """Check ``frame`` and return it in the canonical schema with a JSON-serialisable summary.

    >>> validate_interactions(pl.DataFrame({"user_id": []}), source="x.parquet", cfg=DatasetConfig())
    Traceback (most recent call last):
    ...
    recsys.errors.DataError: x.parquet, column 'item_id': missing column 'item_id' (columns found: user_id). What to do: name the source column with dataset.columns.item_id=NAME
    """
    check_settings(cfg)
    selected = select_columns(frame, source=source, cfg=cfg)
    stats = block_stats(selected, rating_scale=cfg.rating_scale)
    summary = check_stats(stats, source, cfg, invalid_rows=invalid_rows)
    return conform_block(selected, summary["timestamp_unit"], drop_invalid=invalid_rows == "drop"), summary


def items_without_metadata(
    interactions: pl.DataFrame, items: pl.DataFrame | None, *, max_examples: int = 20
) -> tuple[int, list[str]]:
    """How many distinct interacted items have no row in ``items``, and the first few (sorted).

    Such items are kept; the count goes into the report. ``items=None`` means no metadata at all.

    >>> inter = pl.DataFrame({"item_id": ["a", "b", "c", "c"]})
    >>> items_without_metadata(inter, pl.DataFrame({"item_id": ["a"], "title": ["A"]}))
    (2, ['b', 'c'])
    """
    seen = interactions.select(pl.col(ITEM_ID).cast(pl.Utf8)).unique()
    if items is not None:
        if ITEM_ID not in items.columns:
            raise DataError(f"the item table has no 'item_id' column (columns found: {', '.join(items.columns)})",
                            column=ITEM_ID, hint="map the item id with dataset.item_columns.item_id=NAME")
        seen = seen.join(items.select(pl.col(ITEM_ID).cast(pl.Utf8)).unique(), on=ITEM_ID, how="anti")
    lacking = seen.sort(ITEM_ID)[ITEM_ID]
    return len(lacking), lacking.head(max_examples).to_list()
