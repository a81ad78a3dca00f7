"""Per-user item sets in compressed sparse row (CSR) form: seen items to mask, held-out items to find.

Row ``u`` holds the sorted, distinct item indices of user ``u``
(``indices[indptr[u]:indptr[u + 1]]``). Every operation is vectorised over users;
none loops over users in Python.

>>> seen = UserItems.from_pairs([0, 0, 2], [3, 1, 1], n_users=3, n_items=5)
>>> seen.counts().tolist()
[2, 0, 1]
>>> seen.row(0).tolist()
[1, 3]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys.errors import DataError


def _as_index_array(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.dtype.kind not in "iu":
        raise DataError(f"{name} must be integer indices, got dtype {array.dtype}", column=name,
                        hint="map ids to contiguous indices first (recsys.data.idmap)")
    return array.astype(np.int64, copy=False).ravel()


@dataclass(frozen=True)
class UserItems:
    """Sorted distinct item indices per user (CSR).

    ``indptr`` has ``n_users + 1`` entries; ``indices`` holds the items of all users.
    Build it with :meth:`from_pairs`, which sorts, removes duplicates and checks ranges.

    >>> UserItems.from_pairs([1, 1], [2, 2], n_users=2, n_items=3).counts().tolist()
    [0, 1]
    """

    indptr: np.ndarray
    indices: np.ndarray
    n_items: int

    @classmethod
    def from_pairs(cls, user_idx, item_idx, *, n_users: int, n_items: int) -> "UserItems":
        """Build from parallel arrays of (user, item) pairs; repeated pairs count once.

        >>> UserItems.from_pairs([0, 1, 0], [2, 0, 0], n_users=2, n_items=3).indices.tolist()
        [0, 2, 0]
        """
        users = _as_index_array(user_idx, "user_idx")
        items = _as_index_array(item_idx, "item_idx")
        if users.shape != items.shape:
            raise DataError(f"user_idx has {users.size} values but item_idx has {items.size}",
                            hint="pass one user and one item per interaction")
        for name, values, bound in (("user_idx", users, n_users), ("item_idx", items, n_items)):
            if values.size and (values.min() < 0 or values.max() >= bound):
                raise DataError(
                    f"{name} values must lie in [0, {bound}), found [{values.min()}, {values.max()}]",
                    column=name, hint=f"check that n_users/n_items match the id maps used to build {name}")
        keys = np.unique(users * n_items + items)
        rows = keys // n_items if n_items else keys
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_users), out=indptr[1:])
        return cls(indptr=indptr, indices=keys - rows * n_items, n_items=int(n_items))

    @classmethod
    def _from_sorted(cls, rows: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> "UserItems":
        """From pairs already sorted by (user, item) without repeats (no checks, no sort)."""
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_users), out=indptr[1:])
        return cls(indptr=indptr, indices=np.asarray(items, dtype=np.int64), n_items=int(n_items))

    @classmethod
    def empty(cls, n_users: int, n_items: int) -> "UserItems":
        """No items for any user.

        >>> UserItems.empty(2, 4).counts().tolist()
        [0, 0]
        """
        return cls(np.zeros(n_users + 1, dtype=np.int64), np.zeros(0, dtype=np.int64), int(n_items))

    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    def counts(self) -> np.ndarray:
        """Items per user, shape ``(n_users,)``."""
        return np.diff(self.indptr)

    def row(self, user: int) -> np.ndarray:
        """The sorted items of one user."""
        return self.indices[self.indptr[user]:self.indptr[user + 1]]

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """All (user, item) pairs, sorted by user then item.

        >>> [a.tolist() for a in UserItems.from_pairs([1, 0], [0, 2], n_users=2, n_items=3).pairs()]
        [[0, 1], [2, 0]]
        """
        return np.repeat(np.arange(self.n_users, dtype=np.int64), self.counts()), self.indices

    def take(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Items of ``users`` as flat pairs ``(position in users, item)``, sorted by position then item.

        >>> seen = UserItems.from_pairs([0, 0, 2], [3, 1, 1], n_users=3, n_items=5)
        >>> [a.tolist() for a in seen.take(np.array([2, 0]))]
        [[0, 1, 1], [1, 1, 3]]
        """
        users = np.asarray(users, dtype=np.int64)
        starts = self.indptr[users]
        lengths = self.indptr[users + 1] - starts
        positions = np.repeat(np.arange(len(users), dtype=np.int64), lengths)
        first = np.cumsum(lengths) - lengths
        offsets = np.arange(len(positions), dtype=np.int64) - np.repeat(first, lengths)
        return positions, self.indices[np.repeat(starts, lengths) + offsets]

    def restrict(self, users) -> "UserItems":
        """The same sets for ``users`` only; every other user's set is empty (shape unchanged).

        >>> seen = UserItems.from_pairs([0, 0, 2], [3, 1, 1], n_users=3, n_items=5)
        >>> seen.restrict(np.array([2])).counts().tolist()
        [0, 0, 1]
        """
        users = np.unique(np.asarray(users, dtype=np.int64))
        positions, items = self.take(users)
        return UserItems._from_sorted(users[positions], items, self.n_users, self.n_items)

    def has(self, users, items) -> np.ndarray:
        """Whether each pair ``(users[i], items[i])`` is in the sets: a binary search within each user's row.

        >>> seen = UserItems.from_pairs([0, 0, 2], [3, 1, 1], n_users=3, n_items=5)
        >>> seen.has(np.array([0, 0, 2, 1]), np.array([3, 2, 1, 1])).tolist()
        [True, False, True, False]
        """
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        low, end = self.indptr[users], self.indptr[users + 1]
        high = end.copy()
        longest = int((end - low).max()) if len(users) else 0
        for _ in range(int(np.ceil(np.log2(longest + 1)))):       # all pairs bisect in lock-step
            open_ = low < high
            middle = (low + high) // 2
            below = open_ & (self.indices[np.minimum(middle, len(self.indices) - 1)] < items)
            low = np.where(below, middle + 1, low)
            high = np.where(open_ & ~below, middle, high)
        found = low < end
        found[found] = self.indices[low[found]] == items[found]
        return found

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether ``items[i, j]`` is in the set of ``users[i]``; negative items (padding) are never in.

        >>> seen = UserItems.from_pairs([0, 0, 2], [3, 1, 1], n_users=3, n_items=5)
        >>> seen.contains(np.array([0, 2]), np.array([[3, 2], [1, -1]])).tolist()
        [[True, False], [True, False]]
        """
        items = np.asarray(items, dtype=np.int64)
        positions, row_items = self.take(users)
        keys = positions * self.n_items + row_items             # sorted: positions, then items ascending
        query = np.arange(len(users), dtype=np.int64)[:, None] * self.n_items + items
        found = np.searchsorted(keys, query)
        found = np.minimum(found, max(len(keys) - 1, 0))
        inside = keys[found] == query if len(keys) else np.zeros(query.shape, dtype=bool)
        return inside & (items >= 0)

    def _check_same_shape(self, other: "UserItems") -> None:
        if (other.n_users, other.n_items) != (self.n_users, self.n_items):
            raise DataError(
                f"item sets of different shapes: {self.n_users}x{self.n_items} and "
                f"{other.n_users}x{other.n_items} (users x items)",
                hint="build both from the same user and item id maps")

    def union(self, other: "UserItems") -> "UserItems":
        """Items in either set (e.g. train ∪ validation items to mask when testing).

        >>> a = UserItems.from_pairs([0], [1], n_users=1, n_items=3)
        >>> a.union(UserItems.from_pairs([0], [2], n_users=1, n_items=3)).row(0).tolist()
        [1, 2]
        """
        self._check_same_shape(other)
        rows = np.concatenate([self.pairs()[0], other.pairs()[0]])
        return UserItems.from_pairs(rows, np.concatenate([self.indices, other.indices]),
                                    n_users=self.n_users, n_items=self.n_items)

    def difference(self, other: "UserItems") -> "UserItems":
        """Items in this set but not in ``other``.

        >>> a = UserItems.from_pairs([0, 0], [1, 2], n_users=1, n_items=3)
        >>> a.difference(UserItems.from_pairs([0], [2], n_users=1, n_items=3)).row(0).tolist()
        [1]
        """
        self._check_same_shape(other)
        rows, items = self.pairs()
        keep = ~other.has(rows, items)
        return UserItems._from_sorted(rows[keep], items[keep], self.n_users, self.n_items)
