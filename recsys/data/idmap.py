"""Contiguous integer indices for users and items, assigned from the training split.

Training users/items get ``0 .. T-1`` in sorted id order (byte-wise string
order, so ``"10" < "9"``). Users/items first seen in val/test, and catalogue
items (from item metadata) that nobody interacted with in train, get
``T, T+1, ...`` (also in sorted id order) and are marked ``is_cold``: nothing is
dropped, and text-based models can still score cold items.

>>> import polars as pl
>>> train = pl.DataFrame({"user_id": ["u2", "u1", "u2"], "item_id": ["b", "a", "a"]})
>>> test = pl.DataFrame({"user_id": ["u3"], "item_id": ["c"]})
>>> maps = build_id_maps(train, None, test, pl.DataFrame({"item_id": ["a", "d"]}))
>>> maps.item_map.rows()
[('a', 0, False, 2, True), ('b', 1, False, 1, False), ('c', 2, True, 0, False), ('d', 3, True, 0, True)]
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from recsys.data.schema import ITEM_ID, ITEM_IDX, USER_ID, USER_IDX
from recsys.errors import DataError

N_TRAIN = "n_train"
IS_COLD = "is_cold"
HAS_METADATA = "has_metadata"
_INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class IdMaps:
    """``user_map``: user_id, user_idx (Int32), is_cold, n_train (Int64);
    ``item_map``: item_id, item_idx (Int32), is_cold, n_train (Int64), has_metadata."""

    user_map: pl.DataFrame
    item_map: pl.DataFrame

    @property
    def n_users(self) -> int:
        """All users, warm and cold."""
        return self.user_map.height

    @property
    def n_items(self) -> int:
        """All items that can be scored: training, cold, and catalogue-only."""
        return self.item_map.height

    @property
    def n_train_users(self) -> int:
        """Users with training rows (indices ``0 .. n_train_users - 1``)."""
        return int((~self.user_map[IS_COLD]).sum())

    @property
    def n_train_items(self) -> int:
        """Items with training rows (indices ``0 .. n_train_items - 1``)."""
        return int((~self.item_map[IS_COLD]).sum())


def index_ids(train_counts: pl.DataFrame, other_ids: pl.Series, column: str, idx_column: str) -> pl.DataFrame:
    """Index table from training counts (``column``, ``n_train``) and ids seen elsewhere.

    A distributed caller sums training counts over blocks and collects the
    distinct val/test/catalogue ids, then calls this once.

    >>> counts = pl.DataFrame({"user_id": ["b", "a"], "n_train": [1, 4]})
    >>> index_ids(counts, pl.Series(["c", "a"]), "user_id", "user_idx").rows()
    [('a', 0, False, 4), ('b', 1, False, 1), ('c', 2, True, 0)]
    """
    warm = (train_counts.select(pl.col(column).cast(pl.Utf8), pl.col(N_TRAIN).cast(pl.Int64))
            .sort(column).with_columns(pl.lit(False).alias(IS_COLD)))
    cold = (pl.DataFrame({column: other_ids.cast(pl.Utf8)}).unique().join(warm, on=column, how="anti")
            .sort(column).with_columns(pl.lit(True).alias(IS_COLD), pl.lit(0, dtype=pl.Int64).alias(N_TRAIN)))
    table = pl.concat([warm, cold.select(warm.columns)])
    if table.height > _INT32_MAX:
        raise DataError(f"{table.height} distinct values of {column} do not fit 32-bit indices", column=column,
                        hint="filter the data (e.g. data.min_user_interactions) to fewer ids")
    return table.select(column, pl.int_range(pl.len(), dtype=pl.Int32).alias(idx_column), IS_COLD, N_TRAIN)


def _ids(frames: list[pl.DataFrame | None], column: str) -> pl.Series:
    parts = [f[column].cast(pl.Utf8) for f in frames if f is not None and f.height]
    return pl.concat(parts) if parts else pl.Series(column, [], dtype=pl.Utf8)


def _train_counts(train: pl.DataFrame, column: str) -> pl.DataFrame:
    return train.group_by(column).agg(pl.len().cast(pl.Int64).alias(N_TRAIN))


def build_id_maps(
    train: pl.DataFrame,
    val: pl.DataFrame | None,
    test: pl.DataFrame | None,
    items: pl.DataFrame | None = None,
) -> IdMaps:
    """User and item index tables (see the module docstring); ``items`` is the item metadata, if any.

    >>> train = pl.DataFrame({"user_id": ["u1"], "item_id": ["a"]})
    >>> build_id_maps(train, pl.DataFrame({"user_id": ["u0"], "item_id": ["a"]}), None).user_map.rows()
    [('u1', 0, False, 1), ('u0', 1, True, 0)]
    """
    if train is None or train.height == 0:
        raise DataError("the training split is empty, so no ids can be indexed",
                        hint="check split.ratios / split.cutoffs (or the train rows of a given split) and the filters "
                        "(data.min_*_interactions, data.implicit_threshold)")
    if items is not None and ITEM_ID not in items.columns:
        raise DataError(f"the item table has no 'item_id' column (columns found: {', '.join(items.columns)})",
                        column=ITEM_ID, hint="map the item id with dataset.item_columns.item_id=NAME")
    return id_maps_from_counts(
        _train_counts(train, USER_ID), _train_counts(train, ITEM_ID),
        _ids([val, test], USER_ID), _ids([val, test], ITEM_ID), items,
    )


def id_maps_from_counts(
    train_user_counts: pl.DataFrame,
    train_item_counts: pl.DataFrame,
    other_user_ids: pl.Series,
    other_item_ids: pl.Series,
    items: pl.DataFrame | None = None,
) -> IdMaps:
    """Id maps from training counts (``user_id``/``item_id``, ``n_train``) and ids seen outside training.

    The distributed path sums training counts over blocks and collects the distinct
    val/test ids, then calls this once; :func:`build_id_maps` is the same on whole frames.

    >>> users = pl.DataFrame({"user_id": ["u1"], "n_train": [1]})
    >>> items = pl.DataFrame({"item_id": ["a"], "n_train": [1]})
    >>> maps = id_maps_from_counts(users, items, pl.Series(["u0"]), pl.Series(["b"]))
    >>> maps.item_map.rows()
    [('a', 0, False, 1, False), ('b', 1, True, 0, False)]
    """
    catalogue = items[ITEM_ID].cast(pl.Utf8) if items is not None else pl.Series([], dtype=pl.Utf8)
    user_map = index_ids(train_user_counts, other_user_ids, USER_ID, USER_IDX)
    item_map = index_ids(train_item_counts, pl.concat([other_item_ids.cast(pl.Utf8), catalogue]), ITEM_ID, ITEM_IDX)
    item_map = item_map.with_columns(pl.col(ITEM_ID).is_in(catalogue.implode()).alias(HAS_METADATA))
    return IdMaps(user_map=user_map, item_map=item_map)


def apply_id_maps(frame: pl.DataFrame, maps: IdMaps) -> pl.DataFrame:
    """Add ``user_idx`` and ``item_idx`` (Int32) to ``frame``, rows in input order.

    >>> maps = build_id_maps(pl.DataFrame({"user_id": ["u"], "item_id": ["a"]}), None, None)
    >>> apply_id_maps(pl.DataFrame({"user_id": ["u"], "item_id": ["a"]}), maps).row(0)
    ('u', 'a', 0, 0)
    """
    out = frame.drop([c for c in (USER_IDX, ITEM_IDX) if c in frame.columns])
    for column, idx, table in ((USER_ID, USER_IDX, maps.user_map), (ITEM_ID, ITEM_IDX, maps.item_map)):
        out = out.join(table.select(column, idx), on=column, how="left", maintain_order="left")
        unknown = out[idx].null_count()
        if unknown:
            example = out.filter(pl.col(idx).is_null())[column][0]
            raise DataError(f"{unknown} rows have a {column} that is not in the id map, e.g. {example!r}",
                            column=column, hint="build the id maps from the same train/val/test frames you index")
    return out
