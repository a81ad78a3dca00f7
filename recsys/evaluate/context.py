"""What evaluating one dataset needs, loaded once: item sets per split, catalogue statistics, original ids.

:class:`EvalContext` is built from a prepared dataset (:meth:`EvalContext.from_prepared`)
or from arrays (:meth:`EvalContext.from_arrays`: tests, benchmarks). It is plain
NumPy, so it pickles cheaply into Ray's object store. :func:`evaluate_split`
scores one split of it in this process with the configured protocol.

Masking follows the split: validation ranks every item the user did not train
on; testing also masks the user's validation items, which the model may have
been selected on (:meth:`EvalContext.masks`).

>>> import torch
>>> from recsys.evaluate.topk import factor_scorer
>>> ctx = EvalContext.from_arrays(train=([0, 1], [0, 1]), val=([0], [1]), test=([0, 1], [2, 0]),
...                               n_users=2, n_items=3)
>>> relevant, seen = ctx.masks("test")
>>> seen.row(0).tolist(), relevant.row(0).tolist()
([0, 1], [2])
>>> score = factor_scorer(torch.ones(2, 1), torch.tensor([[3.0], [2.0], [1.0]]))
>>> rows = evaluate_split(score, ctx, "test", EvalConfig(k=[1], auc=False))
>>> rows.topk_items.tolist(), rows.values["hit_rate@1"].tolist()
([[2], [0]], [1.0, 1.0])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from recsys.errors import ConfigError, DataError
from recsys.evaluate.beyond import CatalogueStats
from recsys.evaluate.config import SPLITS, EvalConfig, check_eval_config
from recsys.evaluate.rows import MetricRows, evaluate_users
from recsys.evaluate.topk import Scorer
from recsys.evaluate.useritems import UserItems


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"cannot evaluate split {split!r}", setting="eval.splits",
                          hint=f"use one of {', '.join(SPLITS)}")


def _pairs(frame: pl.DataFrame, split: str, n_users: int, n_items: int) -> UserItems:
    for column in ("user_idx", "item_idx"):
        if column not in frame.columns:
            raise DataError(f"the {split} split has no {column} column", column=column,
                            hint="prepare the dataset again with this version of recsys")
        if frame[column].null_count():
            raise DataError(f"the {split} split has {frame[column].null_count()} rows without {column}",
                            column=column, hint="prepare the dataset again: every id must be mapped")
    return UserItems.from_pairs(frame["user_idx"].to_numpy(), frame["item_idx"].to_numpy(),
                                n_users=n_users, n_items=n_items)


def _ids_by_index(frame: pl.DataFrame, id_column: str, idx_column: str, file: str) -> np.ndarray:
    idx = frame[idx_column].to_numpy().astype(np.int64)
    if sorted(idx.tolist()) != list(range(len(idx))):
        raise DataError(f"{idx_column} is not 0..{len(idx) - 1}", file=file, column=idx_column,
                        hint="prepare the dataset again")
    ids = np.empty(len(idx), dtype=object)
    ids[idx] = frame[id_column].cast(pl.Utf8).to_numpy()
    return ids


@dataclass
class EvalContext:
    """Item sets, catalogue statistics and original ids of one dataset, in index space."""

    dataset: str
    n_users: int
    n_items: int
    train: UserItems
    val: UserItems
    test: UserItems
    stats: CatalogueStats            # popularity from train, item vectors (for diversity) if given
    user_ids: np.ndarray             # (n_users,) original user_id (str) by user_idx
    item_ids: np.ndarray             # (n_items,) original item_id (str) by item_idx
    item_is_cold: np.ndarray | None = None       # (n_items,) no training interaction; None: from train
    user_attributes: pl.DataFrame | None = None  # user_idx + attribute columns (users.parquet), if any
    item_attributes: pl.DataFrame | None = None  # item_idx + item table columns, if any
    val_order: tuple[np.ndarray, np.ndarray] | None = None   # (users, items) of val in time order (history.py)

    @classmethod
    def from_arrays(cls, train, val, test, *, n_users: int, n_items: int, item_vectors=None,
                    head_fraction: float = 0.2, dataset: str = "arrays", user_ids=None,
                    item_ids=None) -> "EvalContext":
        """From ``(user_idx, item_idx)`` pairs of each split; ids default to the indices as text.

        >>> ctx = EvalContext.from_arrays(([0], [1]), ([], []), ([0], [0]), n_users=1, n_items=2)
        >>> ctx.item_ids.tolist(), ctx.stats.popularity.tolist()
        (['0', '1'], [0, 1])
        """
        sets = [UserItems.from_pairs(u, i, n_users=n_users, n_items=n_items) for u, i in (train, val, test)]
        stats = CatalogueStats.from_train(sets[0], item_vectors, head_fraction)
        user_ids = np.array([str(u) for u in range(n_users)], dtype=object) if user_ids is None \
            else np.asarray(user_ids, dtype=object)
        item_ids = np.array([str(i) for i in range(n_items)], dtype=object) if item_ids is None \
            else np.asarray(item_ids, dtype=object)
        val_order = tuple(np.asarray(v, dtype=np.int64) for v in val)      # the pairs' order is their time order
        return cls(dataset, int(n_users), int(n_items), *sets, stats=stats, user_ids=user_ids, item_ids=item_ids,
                   val_order=val_order)

    @classmethod
    def from_prepared(cls, prepared, item_vectors: np.ndarray | None, cfg: EvalConfig) -> "EvalContext":
        """Read the splits and id maps of a :class:`~recsys.data.prepared.PreparedDataset`.

        ``item_vectors`` (``(n_items, d)`` in item_idx order, e.g. the embed stage's)
        enable intra-list diversity; popularity and the long tail come from train.
        """
        check_eval_config(cfg)
        user_map, item_map = prepared.user_map(), prepared.item_map()
        n_users, n_items = user_map.height, item_map.height
        user_ids = _ids_by_index(user_map, "user_id", "user_idx", str(prepared.path / "user_map.parquet"))
        item_ids = _ids_by_index(item_map, "item_id", "item_idx", str(prepared.path / "item_map.parquet"))
        val_frame = prepared.split("val")
        train, val, test = (_pairs(prepared.split(s) if s != "val" else val_frame, s, n_users, n_items)
                            for s in ("train", "val", "test"))
        if "timestamp" in val_frame.columns:
            val_frame = val_frame.sort(["user_idx", "timestamp"], maintain_order=True)
        val_order = tuple(val_frame[c].to_numpy().astype(np.int64) for c in ("user_idx", "item_idx"))
        if item_vectors is not None and len(item_vectors) != n_items:
            raise DataError(f"{len(item_vectors)} item vectors for {n_items} items of {prepared.name}",
                            hint="load the vectors aligned with this dataset's item map (load_item_vectors)")
        stats = CatalogueStats.from_train(train, item_vectors, cfg.long_tail_head_fraction)
        is_cold = np.zeros(n_items, dtype=bool)
        is_cold[item_map["item_idx"].to_numpy()] = item_map["is_cold"].to_numpy()
        users = prepared.users()
        if users is not None:
            users = (user_map.select("user_id", "user_idx")
                     .join(users.with_columns(pl.col("user_id").cast(pl.Utf8)), on="user_id", how="inner")
                     .drop("user_id"))
        items = (item_map.select("item_id", "item_idx")
                 .join(prepared.items().with_columns(pl.col("item_id").cast(pl.Utf8)), on="item_id", how="inner")
                 .drop("item_id"))
        return cls(prepared.name, n_users, n_items, train, val, test, stats, user_ids, item_ids,
                   item_is_cold=is_cold, user_attributes=users, item_attributes=items, val_order=val_order)

    def split_items(self, split: str) -> UserItems:
        """The held-out items of ``split`` (``val`` or ``test``)."""
        _check_split(split)
        return self.val if split == "val" else self.test

    def masks(self, split: str) -> tuple[UserItems, UserItems]:
        """``(relevant, seen)``: val -> (val, train); test -> (test, train ∪ val).

        >>> ctx = EvalContext.from_arrays(([0], [0]), ([0], [1]), ([0], [2]), n_users=1, n_items=3)
        >>> [s.row(0).tolist() for s in ctx.masks("val")]
        [[1], [0]]
        """
        _check_split(split)
        if split == "val":
            return self.val, self.train
        return self.test, self.train.union(self.val)

    def n_train(self) -> np.ndarray:
        """(n_users,) training interactions (distinct items) per user."""
        return self.train.counts()

    def cold_items(self) -> np.ndarray:
        """(n_items,) True for items without any training interaction."""
        if self.item_is_cold is not None:
            return self.item_is_cold
        return self.stats.popularity == 0


def split_users(relevant: UserItems) -> np.ndarray:
    """Users with at least one held-out item (the users a split asks about), ascending.

    >>> split_users(UserItems.from_pairs([2, 0], [1, 1], n_users=3, n_items=2)).tolist()
    [0, 2]
    """
    return np.flatnonzero(relevant.counts() > 0)


def evaluate_split(scorer: Scorer, ctx: EvalContext, split: str, cfg: EvalConfig, users=None) -> MetricRows:
    """Metric rows of ``users`` (default: every user with a held-out item) on ``split``, in this process.

    ``cfg.protocol`` chooses full ranking (every item not seen) or a sampled
    candidate protocol (:mod:`recsys.evaluate.sampled`). Users whose held-out items
    were all seen keep a row with NaN values and count as excluded.
    """
    check_eval_config(cfg)
    relevant, seen = ctx.masks(split)
    users = split_users(relevant) if users is None else np.asarray(users)
    if cfg.protocol != "full":
        from recsys.evaluate.sampled import evaluate_sampled

        return evaluate_sampled(scorer, users, relevant, cfg.k, seen=seen, popularity=ctx.stats.popularity,
                                protocol=cfg.protocol, seed=cfg.seed, memory_budget_bytes=cfg.memory_budget_bytes)
    return evaluate_users(scorer, users, relevant, cfg.k, seen=seen, stats=ctx.stats, auc=cfg.auc,
                          recall_denominator=cfg.recall_denominator, memory_budget_bytes=cfg.memory_budget_bytes)
