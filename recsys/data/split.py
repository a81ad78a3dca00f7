"""Train / val / test splits that depend only on each user's rows and the seed.

:func:`split_frame` adds a ``split`` column (``train`` | ``val`` | ``test``, Utf8) to
every row and never drops one. Five protocols (``split.protocol``):

``random``
    Per user, rows are ordered by a seeded hash of (user, item, timestamp), ties
    by item id, timestamp and rating. With ``n`` rows and ``ratios = [r1, r2, r3]``
    the boundaries are ``b1 = floor(n*r1 + 0.5)`` and ``b2 = floor(n*(r1+r2) + 0.5)``
    (round half up): positions ``< b1`` train, ``< b2`` val, the rest test.
    Users with 1 or 2 rows go wholly to train.
``temporal``
    Global cutoffs ``c1 <= c2``: ``ts < c1`` train, ``c1 <= ts < c2`` val,
    ``ts >= c2`` test. Cutoffs come from the ``cutoffs`` argument, else
    ``split.cutoffs``, else from ``ratios`` with :func:`temporal_cutoffs`.
``leave_last``
    Per user in time order (ties by a seeded hash, then item id, then rating):
    the last ``n`` rows test, the ``n`` before val. Users with fewer than
    ``2n + 1`` rows go wholly to train.
``user_holdout``
    Whole users: a seeded hash of the user id, read as a number ``x`` in [0, 1),
    sends the user to train if ``x < r1``, val if ``x < r1 + r2``, else test, so
    ``ratios`` are the expected user fractions.
``given``
    The user's own split: the frame already holds the ``split`` labels (read from a
    label column or one file per split, see :mod:`recsys.data.given`); they are
    checked and kept.

Partition independence: ids are hashed with BLAKE2b (stable across library
versions) and mixed with the seed by splitmix64, so a user's split depends only
on that user's rows and the seed, never on row order or on other users. Rows
identical in every canonical column are interchangeable, so ties among them
cannot change the result. A distributed caller can therefore split blocks that
hold whole users independently (with global ``cutoffs`` for ``temporal``).

>>> import polars as pl
>>> frame = pl.DataFrame({"user_id": ["u"] * 3, "item_id": ["a", "b", "c"],
...                       "timestamp": [1, 2, 3], "rating": [None] * 3})
>>> split_frame(frame, SplitConfig(protocol="leave_last"))["split"].to_list()
['train', 'val', 'test']
"""

from __future__ import annotations

import hashlib
import math
from typing import Callable, Sequence

import numpy as np
import polars as pl

from recsys.data.config import SplitConfig
from recsys.data.given import check_given_config, given_files
from recsys.data.schema import ITEM_ID, RATING, SPLIT, SPLITS, TIMESTAMP, USER_ID
from recsys.errors import ConfigError, DataError

PROTOCOLS = ("random", "temporal", "leave_last", "user_holdout", "given")

_SALT_RANDOM = 0x52414E444F4D5350  # distinct streams per protocol for the same seed
_SALT_LEAVE_LAST = 0x4C4541564C415354
_SALT_USERS = 0x55534552484F4C44
_MASK64 = (1 << 64) - 1
_ROW, _KEY, _POS, _N = "__row", "__key", "__pos", "__n"
_PASS_POINTS = 1024  # thresholds per pass of temporal_cutoffs
_RATIO_TOLERANCE = 1e-6


def splitmix64(values: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on uint64 values (wrapping arithmetic).

    >>> int(splitmix64(np.array([0], dtype=np.uint64))[0])
    16294208416658607535
    """
    z = np.atleast_1d(np.asarray(values, dtype=np.uint64)) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def stable_hash(ids: pl.Series) -> np.ndarray:
    """64-bit BLAKE2b hash of each string id (computed once per distinct id), as uint64.

    >>> stable_hash(pl.Series(["u1", "u1"])).tolist() == [stable_hash(pl.Series(["u1"]))[0]] * 2
    True
    """
    text = ids.cast(pl.Utf8)
    distinct = text.unique()
    codes = [
        int.from_bytes(hashlib.blake2b(value.encode("utf-8"), digest_size=8).digest(), "little")
        for value in distinct.to_list()
    ]
    mapped = text.replace_strict(distinct, pl.Series(codes, dtype=pl.UInt64), return_dtype=pl.UInt64)
    return mapped.to_numpy().astype(np.uint64, copy=False)


def check_split_config(cfg: SplitConfig) -> None:
    """Raise :class:`ConfigError` naming the setting when ``cfg`` asks for something impossible.

    >>> check_split_config(SplitConfig(protocol="random", ratios=[0.8, 0.0, 0.2]))
    >>> check_split_config(SplitConfig(protocol="shuffle"))
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'split.protocol': unknown split protocol 'shuffle'. What to do: use one of random, temporal, leave_last, user_holdout, given
    """
    if cfg.protocol not in PROTOCOLS:
        raise ConfigError(f"unknown split protocol {cfg.protocol!r}", setting="split.protocol",
                          hint="use one of " + ", ".join(PROTOCOLS))
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool):
        raise ConfigError(f"the seed must be an integer, got {cfg.seed!r}", setting="split.seed",
                          hint="set split.seed to an integer, e.g. split.seed=42")
    if cfg.protocol == "given":
        check_given_config(cfg)
        return
    if given_files(cfg):
        raise ConfigError(f"split.files gives the user's own split, but split.protocol is {cfg.protocol}",
                          setting="split.files", hint="set split.protocol=given, or remove split.files")
    if cfg.protocol == "leave_last":
        n = cfg.leave_last_n
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ConfigError(f"leave_last_n must be an integer >= 1, got {n!r}",
                              setting="split.leave_last_n",
                              hint="set split.leave_last_n=1 (the last event of each user to test)")
        return
    if cfg.protocol == "temporal" and cfg.cutoffs is not None:
        check_cutoffs(cfg.cutoffs)
        return
    check_ratios(cfg.ratios)


def check_ratios(ratios: Sequence[float]) -> list[float]:
    """Validate ``[train, val, test]`` fractions and return them as floats.

    Train and test must be positive, val may be 0, and they must sum to 1.

    >>> check_ratios([0.8, 0.1, 0.1])
    [0.8, 0.1, 0.1]
    """
    hint = "give three fractions [train, val, test] that sum to 1, e.g. split.ratios=[0.8,0.1,0.1] (val may be 0)"
    try:
        values = [float(r) for r in ratios]
    except (TypeError, ValueError):
        raise ConfigError(f"ratios must be numbers, got {ratios!r}", setting="split.ratios", hint=hint) from None
    if len(values) != 3:
        raise ConfigError(f"expected 3 ratios [train, val, test], got {len(values)}: {values}",
                          setting="split.ratios", hint=hint)
    if not all(math.isfinite(r) and r >= 0 for r in values):
        raise ConfigError(f"ratios must be finite and >= 0, got {values}", setting="split.ratios", hint=hint)
    if values[0] == 0 or values[2] == 0:
        raise ConfigError(f"the train and test ratios must be > 0, got {values}", setting="split.ratios", hint=hint)
    if abs(sum(values) - 1.0) > _RATIO_TOLERANCE:
        raise ConfigError(f"ratios must sum to 1, got {values} (sum {sum(values):g})",
                          setting="split.ratios", hint=hint)
    return values


def check_cutoffs(cutoffs: Sequence[int]) -> list[int]:
    """Validate two temporal cutoffs ``[c1, c2]`` (seconds, ``c1 <= c2``).

    >>> check_cutoffs([10, 20])
    [10, 20]
    """
    hint = "give two timestamps in seconds [val_start, test_start], e.g. split.cutoffs=[1600000000,1650000000]"
    values = list(cutoffs)
    if len(values) != 2 or not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in values):
        raise ConfigError(f"expected two integer cutoffs, got {values!r}", setting="split.cutoffs", hint=hint)
    if values[0] > values[1]:
        raise ConfigError(f"the val cutoff {values[0]} is after the test cutoff {values[1]}",
                          setting="split.cutoffs", hint=hint)
    return [int(c) for c in values]


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _cumulative(ratios: Sequence[float]) -> tuple[float, float]:
    # Rounded so that 0.8 + 0.1 gives 0.9, not 0.9000000000000001, at exact halves.
    return round(ratios[0], 12), round(ratios[0] + ratios[1], 12)


def temporal_cutoffs(
    count_le_many: Callable[[np.ndarray], np.ndarray],
    lo: int,
    hi: int,
    n_total: int,
    ratios: Sequence[float],
) -> list[int]:
    """Exact cutoffs ``[c1, c2]`` for a temporal split by ``ratios``, from counts alone.

    With ``k = floor(n_total * cumulative_ratio + 0.5)``, the cutoff is the
    smallest integer ``c`` with ``count(ts <= c) > k``: the timestamp of row
    ``k + 1`` in time order (``hi + 1`` when ``k >= n_total``). So train
    (``ts < c1``) holds the first ``k1`` rows in time order, less any that share
    their timestamp with row ``k1 + 1``: rows with equal timestamps never straddle
    a cutoff. ``count_le_many(thresholds)`` returns ``count(ts <= t)`` for each
    threshold (locally with numpy, or summed over blocks); each pass asks for at
    most 1024 thresholds per cutoff and narrows the interval 1024-fold.
    ``lo``/``hi`` are the smallest and largest timestamp.

    >>> ts = np.array([5, 1, 3, 3, 9, 7, 2, 8, 4, 6])
    >>> temporal_cutoffs(local_count_le_many(ts), 1, 9, 10, [0.6, 0.2, 0.2])
    [6, 8]

    Ties at a boundary go to the later split (here train gets 2 rows, not 4):

    >>> ts = np.array([1, 2, 3, 3, 3, 4, 5, 6, 7, 8])
    >>> temporal_cutoffs(local_count_le_many(ts), 1, 8, 10, [0.4, 0.3, 0.3])
    [3, 6]
    """
    values = check_ratios(ratios)
    if n_total <= 0:
        raise DataError("cannot compute temporal cutoffs of an empty interaction table",
                        hint="check that filtering left some interactions")
    cuts: list[int | None] = []
    bounds: list[list[int]] = []  # per cutoff: [a, b] with count(<= a) <= k < count(<= b)
    targets = [_round_half_up(n_total * c) for c in _cumulative(values)]
    for k in targets:
        cuts.append(hi + 1 if k >= n_total else None)
        bounds.append([lo - 1, hi])
    while any(c is None for c in cuts):
        asks: list[tuple[int, list[int]]] = []
        for j, (a, b) in enumerate(bounds):
            if cuts[j] is not None:
                continue
            if b - a == 1:
                cuts[j] = b
                continue
            step = b - a
            points = sorted({a + (step * i) // _PASS_POINTS for i in range(1, _PASS_POINTS)} - {a, b})
            asks.append((j, points))
        if not asks:
            break
        flat = np.array([p for _, pts in asks for p in pts], dtype=np.int64)
        counts = np.asarray(count_le_many(flat), dtype=np.int64)
        if counts.shape != flat.shape:
            raise ValueError(f"count_le_many returned {counts.shape} counts for {flat.shape} thresholds")
        offset = 0
        for j, points in asks:
            k = targets[j]
            for point, count in zip(points, counts[offset:offset + len(points)]):
                if count <= k:
                    bounds[j][0] = max(bounds[j][0], point)
                else:
                    bounds[j][1] = min(bounds[j][1], point)
            offset += len(points)
    return [int(c) for c in cuts]


def local_count_le_many(timestamps: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A ``count_le_many`` over timestamps held in memory (sorted once).

    >>> local_count_le_many(np.array([3, 1, 2]))(np.array([0, 2, 5])).tolist()
    [0, 2, 3]
    """
    ordered = np.sort(np.asarray(timestamps, dtype=np.int64))
    return lambda thresholds: np.searchsorted(ordered, thresholds, side="right").astype(np.int64)


def frame_cutoffs(frame: pl.DataFrame, ratios: Sequence[float]) -> list[int]:
    """Temporal cutoffs of one in-memory frame (same definition as :func:`temporal_cutoffs`).

    >>> frame_cutoffs(pl.DataFrame({"timestamp": [1, 2, 3, 4]}), [0.5, 0.25, 0.25])
    [3, 4]
    """
    ts = frame[TIMESTAMP].to_numpy()
    return temporal_cutoffs(local_count_le_many(ts), int(ts.min()), int(ts.max()), len(ts), ratios)


def split_frame(frame: pl.DataFrame, cfg: SplitConfig, *, cutoffs: list[int] | None = None) -> pl.DataFrame:
    """Return ``frame`` with a ``split`` column (train | val | test), rows in input order.

    ``cutoffs`` (temporal only) overrides ``cfg.cutoffs`` and the ratios; a
    distributed caller passes the global cutoffs here.

    >>> frame = pl.DataFrame({"user_id": ["u"] * 4, "item_id": list("abcd"),
    ...                       "timestamp": [1, 2, 3, 4], "rating": [None] * 4})
    >>> split_frame(frame, SplitConfig(protocol="temporal", cutoffs=[3, 4]))["split"].to_list()
    ['train', 'train', 'val', 'test']
    """
    check_split_config(cfg)
    if cutoffs is not None:
        cutoffs = check_cutoffs(cutoffs)
    if cfg.protocol == "given":
        return _given(frame)
    needed = {"random": (USER_ID, ITEM_ID, TIMESTAMP), "temporal": (TIMESTAMP,),
              "leave_last": (USER_ID, ITEM_ID, TIMESTAMP), "user_holdout": (USER_ID,)}[cfg.protocol]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(f"the {cfg.protocol} split needs column(s) {missing}; found {frame.columns}",
                        column=missing[0], hint="split the canonical interaction table (after validation)")
    if SPLIT in frame.columns:
        frame = frame.drop(SPLIT)
    if frame.height == 0:
        return frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias(SPLIT))
    if frame.select(pl.any_horizontal(pl.col(c).is_null().any() for c in needed)).item():
        raise DataError(f"null values in {list(needed)}", hint="validate the interactions before splitting")
    if cfg.protocol == "temporal":
        cuts = cutoffs or (check_cutoffs(cfg.cutoffs) if cfg.cutoffs is not None else frame_cutoffs(frame, cfg.ratios))
        return frame.with_columns(_temporal_expr(cuts))
    if cfg.protocol == "user_holdout":
        return frame.with_columns(pl.Series(SPLIT, _user_holdout(frame[USER_ID], cfg), dtype=pl.Utf8))
    return _split_within_users(frame, cfg)


def _given(frame: pl.DataFrame) -> pl.DataFrame:
    """A given split's frame, its labels checked (validation reports them first, naming the file)."""
    if SPLIT not in frame.columns:
        raise DataError("the given split needs the 'split' label column", column=SPLIT,
                        hint="read the interactions with split.protocol=given (split.column or split.files)")
    labels = frame[SPLIT].cast(pl.Utf8)
    bad = labels.is_null() | ~labels.is_in(list(SPLITS))
    if bad.any():
        raise DataError(f"{int(bad.sum())} rows have a split label other than train, val or test, "
                        f"e.g. {labels.filter(bad)[0]!r}", column=SPLIT, hint="label every row train, val or test")
    return frame.with_columns(labels)


def _temporal_expr(cuts: list[int]) -> pl.Expr:
    ts = pl.col(TIMESTAMP)
    return (pl.when(ts < cuts[0]).then(pl.lit("train")).when(ts < cuts[1]).then(pl.lit("val"))
            .otherwise(pl.lit("test")).alias(SPLIT))


def _user_holdout(users: pl.Series, cfg: SplitConfig) -> np.ndarray:
    seed = np.uint64((cfg.seed ^ _SALT_USERS) & _MASK64)
    mixed = splitmix64(splitmix64(np.full(len(users), seed, dtype=np.uint64)) ^ stable_hash(users))
    unit = (mixed >> np.uint64(11)).astype(np.float64) * 2.0**-53
    c1, c2 = _cumulative(cfg.ratios)
    return np.where(unit < c1, "train", np.where(unit < c2, "val", "test"))


def _row_keys(frame: pl.DataFrame, seed: int, salt: int) -> np.ndarray:
    """A seeded hash per row of (user, item, timestamp): the same row gets the same key anywhere."""
    start = np.uint64((seed ^ salt) & _MASK64)
    key = splitmix64(np.full(frame.height, start, dtype=np.uint64))
    key = splitmix64(key ^ stable_hash(frame[USER_ID]))
    key = splitmix64(key ^ stable_hash(frame[ITEM_ID]))
    return splitmix64(key ^ frame[TIMESTAMP].cast(pl.Int64).to_numpy().view(np.uint64))


def _split_within_users(frame: pl.DataFrame, cfg: SplitConfig) -> pl.DataFrame:
    random = cfg.protocol == "random"
    key = _row_keys(frame, cfg.seed, _SALT_RANDOM if random else _SALT_LEAVE_LAST)
    ties = [c for c in (ITEM_ID, TIMESTAMP, RATING) if c in frame.columns]
    order = [USER_ID, _KEY, *ties] if random else [USER_ID, TIMESTAMP, _KEY, *ties]
    ranked = (
        frame.with_row_index(_ROW)
        .with_columns(pl.Series(_KEY, key, dtype=pl.UInt64))
        .sort(order, nulls_last=True)
        .with_columns(pl.int_range(pl.len()).over(USER_ID).alias(_POS), pl.len().over(USER_ID).alias(_N))
    )
    pos, n = pl.col(_POS), pl.col(_N).cast(pl.Int64)
    if random:
        c1, c2 = _cumulative(cfg.ratios)
        b1 = (n.cast(pl.Float64) * c1 + 0.5).floor()
        b2 = (n.cast(pl.Float64) * c2 + 0.5).floor()
        label = (pl.when(n <= 2).then(pl.lit("train")).when(pos < b1).then(pl.lit("train"))
                 .when(pos < b2).then(pl.lit("val")).otherwise(pl.lit("test")))
    else:
        k = cfg.leave_last_n
        from_end = n - 1 - pos
        label = (pl.when(n < 2 * k + 1).then(pl.lit("train")).when(from_end < k).then(pl.lit("test"))
                 .when(from_end < 2 * k).then(pl.lit("val")).otherwise(pl.lit("train")))
    return (ranked.with_columns(label.alias(SPLIT)).sort(_ROW)
            .drop(_ROW, _KEY, _POS, _N))


def split_parts(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The train, val and test rows of a frame with a ``split`` column (that column dropped).

    >>> f = pl.DataFrame({"user_id": ["u", "v"], "split": ["train", "test"]})
    >>> [part.height for part in split_parts(f)]
    [1, 0, 1]
    """
    if SPLIT not in frame.columns:
        raise DataError("the frame has no 'split' column", column=SPLIT, hint="call split_frame first")
    return tuple(frame.filter(pl.col(SPLIT) == name).drop(SPLIT) for name in SPLITS)  # type: ignore[return-value]
