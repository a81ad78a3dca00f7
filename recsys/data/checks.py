"""Decisions on merged validation statistics: the timestamp unit, the errors, the rows to drop.

:func:`recsys.data.validate.block_stats` counts every problem per block;
:func:`check_stats` looks at the statistics merged over all blocks, so one frame
and a sharded dataset get the same decision and the same message. See
:mod:`recsys.data.validate` for the bounds (timestamps in [1970-01-01, 2100-01-01]
in seconds) and ``data.invalid_rows``.

>>> decide_timestamp_unit({"timestamp_max": 1_700_000_000, "timestamp_is_datetime": False}, DatasetConfig())
's'
"""

from __future__ import annotations

from recsys.data.config import DatasetConfig
from recsys.data.schema import ITEM_ID, RATING, SPLIT, TIMESTAMP, USER_ID
from recsys.errors import ConfigError, DataError

TIMESTAMP_UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
FINER_UNIT_THRESHOLD = 1e11          # a value above this (in seconds: year 5138) is in a finer unit
LATEST_PLAUSIBLE = 4_102_444_800     # 2100-01-01T00:00:00Z in seconds
END_OF_1970 = 31_536_000             # 1971-01-01T00:00:00Z in seconds
INVALID_ROW_POLICIES = ("error", "drop")
# row problems data.invalid_rows=drop removes (the after-2100 check depends on the unit: see block_stats)
DROPPABLE = ("user_id_missing", "user_id_empty", "item_id_missing", "item_id_empty", "timestamp_missing",
             "timestamp_uncastable", "timestamp_negative", "rating_uncastable")


def _unit_of(value: float) -> str:
    """The unit a single raw timestamp looks like it is in."""
    for unit in ("s", "ms", "us"):
        if value <= FINER_UNIT_THRESHOLD * TIMESTAMP_UNITS[unit]:
            return unit
    return "ns"


def check_settings(cfg: DatasetConfig) -> None:
    """Reject an unknown ``dataset.timestamp_unit`` or an impossible ``dataset.rating_scale``."""
    if cfg.timestamp_unit not in ("auto", *TIMESTAMP_UNITS):
        raise ConfigError(f"unknown timestamp unit {cfg.timestamp_unit!r}", setting="dataset.timestamp_unit",
                          hint="use auto, s, ms, us or ns")
    scale = cfg.rating_scale
    if scale is not None and (len(scale) != 2 or not float(scale[0]) < float(scale[1])):
        raise ConfigError(f"the rating scale must be [min, max] with min < max, got {list(scale)}",
                          setting="dataset.rating_scale", hint="e.g. dataset.rating_scale=[1,5], or leave it unset")


def decide_timestamp_unit(stats: dict, cfg: DatasetConfig) -> str:
    """The unit raw timestamps are in: ``cfg.timestamp_unit`` unless ``auto``; date-time columns are 's'.

    >>> decide_timestamp_unit({"timestamp_max": 1_700_000_000_000, "timestamp_is_datetime": False},
    ...                       DatasetConfig())
    'ms'
    """
    check_settings(cfg)
    if stats.get("timestamp_is_datetime"):
        return "s"
    if cfg.timestamp_unit != "auto":
        return cfg.timestamp_unit
    largest = stats.get("timestamp_max")
    return "s" if largest is None else _unit_of(largest)


def check_stats(stats: dict, source: str, cfg: DatasetConfig, *, invalid_rows: str = "error") -> dict:
    """Raise :class:`DataError` for the first problem the merged statistics show; else return a summary.

    ``invalid_rows="drop"`` lets through the row problems :func:`conform_block` then
    drops (unless every row has one). The summary is ``stats`` plus ``timestamp_unit``,
    ``timestamp_converted``, ``timestamp_min_s``/``timestamp_max_s`` (seconds) and
    ``invalid_rows`` (:func:`invalid_rows_summary`). JSON-serialisable.

    >>> import polars as pl
    >>> from recsys.data.validate import block_stats
    >>> stats = block_stats(pl.DataFrame({"user_id": ["u"], "item_id": ["i"], "timestamp": [-5], "rating": [1.0]}))
    >>> check_stats(stats, "f.csv", DatasetConfig())
    Traceback (most recent call last):
    ...
    recsys.errors.DataError: f.csv, column 'timestamp': 1 timestamps are negative (before 1970-01-01), the smallest is -5; e.g. the row {'user_id': 'u', 'item_id': 'i', 'timestamp': '-5', 'rating': '1.0'}. What to do: timestamps must count seconds since 1970-01-01: fix those rows, or set data.invalid_rows=drop to drop them (counted)
    """
    if invalid_rows not in INVALID_ROW_POLICIES:
        raise ConfigError(f"unknown policy {invalid_rows!r} for invalid rows", setting="data.invalid_rows",
                          hint="use error (stop at the first bad row) or drop (drop them, counted)")
    unit = decide_timestamp_unit(stats, cfg)
    examples = stats.get("examples", {})
    dropping = invalid_rows == "drop"
    drop_hint = ", or set data.invalid_rows=drop to drop them (counted)"

    def fail(check: str, column: str, problem: str, hint: str) -> None:
        if dropping and check in (*DROPPABLE, f"timestamp_after_2100_{unit}"):
            return
        example = examples.get(check)
        if example is not None:
            problem += f"; e.g. the row {example}"
        raise DataError(problem, file=source, column=column, hint=hint + (drop_hint if check in DROPPABLE else ""))

    if stats["n_rows"] == 0:
        raise DataError("the interaction table has no rows", file=source,
                        hint="check that dataset.path / dataset.interactions points at the right, non-empty file")
    _check_labels(stats, source, cfg)
    for col in (USER_ID, ITEM_ID):
        if stats[f"n_{col}_missing"]:
            fail(f"{col}_missing", col, f"{stats[f'n_{col}_missing']} rows have no {col} (null or NaN)",
                 "drop those rows or fill in the ids in the source")
        if stats[f"n_{col}_empty"]:
            fail(f"{col}_empty", col, f"{stats[f'n_{col}_empty']} rows have an empty {col} ('' or only spaces)",
                 "drop those rows or fill in the ids in the source")
    if stats["n_timestamp_uncastable"]:
        fail("timestamp_uncastable", TIMESTAMP,
             f"{stats['n_timestamp_uncastable']} timestamps are neither numbers nor dates (YYYY-MM-DD[ HH:MM:SS])"
             " or are infinite",
             "store timestamps as seconds since 1970-01-01 or as date-times, or map another column")
    if stats["n_timestamp_missing"]:
        fail("timestamp_missing", TIMESTAMP, f"{stats['n_timestamp_missing']} rows have no timestamp (null or NaN)",
             "drop those rows or fill in the timestamps (temporal splits and sequences need them)")
    if stats["n_timestamp_negative"]:
        fail("timestamp_negative", TIMESTAMP, f"{stats['n_timestamp_negative']} timestamps are negative "
             f"(before 1970-01-01), the smallest is {stats['timestamp_min']}",
             "timestamps must count seconds since 1970-01-01: fix those rows")
    smallest, largest = stats.get("timestamp_min_positive"), stats.get("timestamp_max")
    if cfg.timestamp_unit == "auto" and smallest is not None and _unit_of(smallest) != _unit_of(largest) \
            and not stats.get("timestamp_is_datetime"):
        raise DataError(f"timestamps mix units: the largest ({largest}) looks like {_unit_of(largest)} "
                        f"but the smallest positive ({smallest}) like {_unit_of(smallest)}",
                        file=source, column=TIMESTAMP,
                        hint="set dataset.timestamp_unit (s, ms, us or ns) to say which, and fix the other rows")
    datetime_column = bool(stats.get("timestamp_is_datetime"))
    too_late = 0 if datetime_column else stats["n_timestamp_after_2100"][unit]
    if too_late:
        fail(f"timestamp_after_2100_{unit}", TIMESTAMP,
             f"{too_late} timestamps are after 2100-01-01 when read in unit '{unit}' (largest {largest})",
             (f"if they are {_unit_of(largest)} set dataset.timestamp_unit={_unit_of(largest)} (or auto); "
              "otherwise " if _unit_of(largest) != unit else "")
             + "fix those rows, or set data.invalid_rows=drop to drop them (counted)")
    if not datetime_column and largest is not None and TIMESTAMP_UNITS[unit] > TIMESTAMP_UNITS[_unit_of(largest)] \
            and largest >= 1e8 and largest // TIMESTAMP_UNITS[unit] < END_OF_1970:
        raise DataError(f"read in unit '{unit}', every timestamp falls in 1970 (the largest, {largest}, is "
                        f"{largest // TIMESTAMP_UNITS[unit]} s after 1970-01-01); the values look like "
                        f"{_unit_of(largest)}", file=source, column=TIMESTAMP,
                        hint=f"set dataset.timestamp_unit={_unit_of(largest)} (or auto)")
    if stats["n_rating_uncastable"]:
        fail("rating_uncastable", RATING, f"{stats['n_rating_uncastable']} ratings are not finite numbers "
             "(NaN, infinite or text)",
             "store ratings as numbers, leave a missing rating empty, or map no rating column to treat the "
             "data as implicit feedback")
    scale = cfg.rating_scale
    if scale is not None:
        outside = stats.get("n_rating_outside_scale")
        if outside is None or stats.get("rating_scale") != list(scale):
            low, high = stats.get("rating_min"), stats.get("rating_max")
            outside = int(low is not None and (low < scale[0] or high > scale[1]))
        if outside:
            fail("rating_outside_scale", RATING,
                 f"{outside} ratings are outside the declared scale [{scale[0]:g}, {scale[1]:g}] "
                 f"(found min {stats['rating_min']:g}, max {stats['rating_max']:g})",
                 "set dataset.rating_scale to the scale the source uses, or filter those rows first")
    summary = invalid_rows_summary(stats, unit, invalid_rows)
    if dropping and summary["n_dropped"] == stats["n_rows"]:
        reasons = ", ".join(f"{k} {v}" for k, v in summary["by_problem"].items())
        raise DataError(f"every one of the {stats['n_rows']} rows is invalid ({reasons})", file=source,
                        hint="check the column mapping (dataset.columns) and dataset.timestamp_unit")
    factor = 1 if datetime_column else TIMESTAMP_UNITS[unit]
    return {**stats, "timestamp_unit": unit, "timestamp_converted": factor != 1,
            "timestamp_min_s": None if stats["timestamp_min"] is None else stats["timestamp_min"] // factor,
            "timestamp_max_s": None if largest is None else largest // factor,
            "invalid_rows": summary}


def invalid_rows_summary(stats: dict, unit: str, policy: str = "error") -> dict:
    """Rows ``policy`` drops: ``{"policy", "n_dropped", "by_problem"}`` (a row may have several problems).

    >>> import polars as pl
    >>> from recsys.data.validate import block_stats
    >>> stats = block_stats(pl.DataFrame({"user_id": ["u", ""], "item_id": ["i", "j"],
    ...                                   "timestamp": [1, 2], "rating": [float("nan"), 1.0]}))
    >>> invalid_rows_summary(stats, "s", "drop")
    {'policy': 'drop', 'n_dropped': 2, 'by_problem': {'user_id_empty': 1, 'rating_uncastable': 1}}
    """
    problems = [*DROPPABLE, "timestamp_after_2100"]
    counts = {name: stats[f"n_{name}"] for name in DROPPABLE}
    counts["timestamp_after_2100"] = 0 if stats.get("timestamp_is_datetime") else stats["n_timestamp_after_2100"][unit]
    if policy != "drop":
        return {"policy": policy, "n_dropped": 0, "by_problem": {}}
    return {"policy": policy, "n_dropped": stats["n_invalid_rows"][unit],
            "by_problem": {name: counts[name] for name in problems if counts[name]}}


def _check_labels(stats: dict, source: str, cfg: DatasetConfig) -> None:
    """Every row of a given split must be labelled train, val or test."""
    unknown = stats.get("n_split_unknown") or {}
    if not unknown:
        return
    shown = sorted(unknown.items(), key=lambda kv: (-kv[1], kv[0]))
    listed = ", ".join(f"{value!r} ({n} rows)" for value, n in shown[:5]) + (", ..." if len(shown) > 5 else "")
    raise DataError(f"{sum(unknown.values())} rows have a split label other than train, val or test: {listed}",
                    file=source, column=cfg.columns.get(SPLIT) or SPLIT,
                    hint="label every row train, val or test (val may be absent), or name the column that holds "
                    "the labels with split.column (dataset.columns.split for dataset=table)")
