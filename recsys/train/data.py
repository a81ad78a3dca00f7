"""Training data as index arrays: each user's training items in time order, and the held-out items.

Built once from a prepared dataset (``from_prepared``) or from plain arrays
(``from_arrays``: tests, benchmarks). Everything is NumPy so it pickles cheaply
to Ray Train workers; :meth:`TrainingData.model_inputs` turns it into the torch
:class:`~recsys.models.base.ModelInputs` a model is built from.

>>> data = TrainingData.from_arrays(users=[0, 0, 1], items=[2, 0, 1], timestamps=[5, 1, 3],
...                                 n_users=2, n_items=3)
>>> data.items.tolist(), data.indptr.tolist(), data.item_counts.tolist()
([0, 2, 1], [0, 2, 3], [1.0, 1.0, 1.0])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from recsys.data.prepared import PreparedDataset
from recsys.errors import DataError
from recsys.evaluate.useritems import UserItems
from recsys.models.base import ModelInputs


def _ints(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise DataError(f"{name} must hold integers, got {array.dtype}", column=name,
                        hint="pass the user_idx / item_idx columns of a prepared dataset")
    return array.astype(np.int64, copy=False).ravel()


def _tie_break(users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random order for a user's interactions with equal timestamps.

    Ties are common (MovieLens users rate many films in the same second); ordering them
    by item index would hand sequence models an artificial pattern ("the next item has a
    higher index") that held-out items do not follow. A hash of (user, item) is
    arbitrary but reproducible and independent of the row order of the input.

    >>> _tie_break(np.array([0, 0]), np.array([1, 2])).tolist() != [1, 2]
    True
    """
    mixed = (users.astype(np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
    mixed ^= (items.astype(np.uint64) + np.uint64(1)) * np.uint64(0xC2B2AE3D27D4EB4F)
    mixed ^= mixed >> np.uint64(31)
    return mixed * np.uint64(0x94D049BB133111EB)


@dataclass
class TrainingData:
    """Training interactions (CSR, time-ordered per user) plus the validation items of each user."""

    n_users: int
    n_items: int
    n_warm_items: int
    indptr: np.ndarray          # (n_users + 1,) int64
    items: np.ndarray           # (nnz,) int64: user u's items are items[indptr[u]:indptr[u + 1]], oldest first
    item_counts: np.ndarray     # (n_items,) float32 training interactions per item
    val: UserItems              # validation items per user (may be empty)

    @classmethod
    def from_arrays(cls, users, items, timestamps=None, *, n_users: int, n_items: int,
                    n_warm_items: int | None = None, val_users=(), val_items=()) -> "TrainingData":
        """Sort interactions by user, then timestamp (ties in a fixed pseudo-random order), and index them."""
        users, items = _ints(users, "user_idx"), _ints(items, "item_idx")
        stamps = np.zeros_like(users) if timestamps is None else _ints(timestamps, "timestamp")
        if not (users.shape == items.shape == stamps.shape):
            raise DataError(f"got {users.size} users, {items.size} items and {stamps.size} timestamps",
                            hint="pass one user, item and timestamp per interaction")
        for name, values, bound in (("user_idx", users, n_users), ("item_idx", items, n_items)):
            if values.size and (values.min() < 0 or values.max() >= bound):
                raise DataError(f"{name} values must lie in [0, {bound}), found [{values.min()}, {values.max()}]",
                                column=name, hint="build the indices with the dataset's id maps")
        order = np.lexsort((_tie_break(users, items), stamps, users))
        users, items = users[order], items[order]
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])
        counts = np.bincount(items, minlength=n_items).astype(np.float32)
        warm = int(n_items if n_warm_items is None else n_warm_items)
        val = UserItems.from_pairs(val_users, val_items, n_users=n_users, n_items=n_items)
        return cls(int(n_users), int(n_items), warm, indptr, items, counts, val)

    @classmethod
    def from_prepared(cls, prepared: PreparedDataset) -> "TrainingData":
        """Training split in time order and validation items, indexed by the dataset's id maps.

        Every catalogue item has an index; warm items come first (``0 .. n_warm - 1``).
        """
        item_map, user_map = prepared.item_map(), prepared.user_map()
        n_items, n_users = item_map.height, user_map.height
        n_warm = int((~item_map["is_cold"]).sum())
        warm_idx = item_map.filter(~pl.col("is_cold"))["item_idx"]
        if n_warm and (warm_idx.min() != 0 or warm_idx.max() != n_warm - 1):
            raise DataError("warm items do not hold indices 0..n_warm-1", file=str(prepared.path / "item_map.parquet"),
                            hint="prepare the dataset again with this version of recsys")
        train = prepared.split("train")
        val = prepared.split("val")
        return cls.from_arrays(train["user_idx"].to_numpy(), train["item_idx"].to_numpy(),
                               train["timestamp"].to_numpy(), n_users=n_users, n_items=n_items,
                               n_warm_items=n_warm, val_users=val["user_idx"].to_numpy(),
                               val_items=val["item_idx"].to_numpy())

    @property
    def nnz(self) -> int:
        return int(self.items.size)

    def position_users(self) -> np.ndarray:
        """(nnz,) the user of each position of the flat item array."""
        return np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(self.indptr))

    def seen(self) -> UserItems:
        """Training items per user as a set (masked in validation)."""
        return UserItems.from_pairs(self.position_users(), self.items, n_users=self.n_users, n_items=self.n_items)

    def model_inputs(self, item_text: np.ndarray | torch.Tensor | None = None) -> ModelInputs:
        """What a model is built from; ``item_text`` is ``(n_items, d)`` aligned with item_idx, or None."""
        text = None
        if item_text is not None:
            text = torch.tensor(np.asarray(item_text, dtype=np.float32))
            if text.ndim != 2 or text.shape[0] != self.n_items:
                raise DataError(f"item text vectors have shape {tuple(text.shape)}, expected ({self.n_items}, d)",
                                hint="load them aligned with this dataset's item_idx (one row per catalogue item)")
            if not bool(torch.isfinite(text).all()):
                raise DataError("item text vectors contain NaN or infinite values",
                                hint="recompute the embeddings (embed stage)")
        return ModelInputs(self.n_users, self.n_items, self.n_warm_items, torch.tensor(self.indptr),
                           torch.tensor(self.items), torch.tensor(self.item_counts), text)
