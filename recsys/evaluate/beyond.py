"""Beyond-accuracy metrics of top-k lists: coverage, exposure, novelty, diversity, popularity, long tail.

``items`` is a ``(n_users, K)`` matrix of top-k item indices, best first, ``-1``
padding short lists (as :mod:`recsys.evaluate.topk` returns them); metrics at
``k`` look at the first ``k`` columns and ignore padding. ``popularity`` is, per
item, the number of distinct training users who interacted with it (``(n_items,)``).

Per user (averaged over users downstream):

================  ===========================================================================
novelty@k         mean self-information of the listed items, ``-log2(users_i / n_users)``,
                  ``users_i`` = training users who interacted with item i (an item nobody
                  interacted with counts as one user, the highest finite novelty)
diversity@k       intra-list diversity: mean over item pairs of ``1 - cos(v_i, v_j)`` on the
                  given item vectors (a zero vector has cosine 0 with everything); NaN for
                  lists of fewer than 2 items
popularity@k      average recommended popularity (mean ``popularity`` of the listed items);
                  compare with ``test_popularity``: mean popularity of the user's held-out items
long_tail@k       share of listed items that are in the long tail (see :func:`long_tail_mask`)
================  ===========================================================================

Over all users (from the lists of every user, no per-user value):

================  ===========================================================================
coverage@k        distinct items in any top-k list / catalogue size
gini@k            Gini coefficient of exposure (how often each catalogue item is listed,
                  unlisted items count as 0): 0 = equal exposure, near 1 = a few items get all
================  ===========================================================================

>>> items = np.array([[0, 1], [0, 2]])
>>> item_coverage(items, n_items=4, k=2), round(gini_of_exposure(items, n_items=4, k=2), 3)
(0.75, 0.375)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recsys.errors import DataError
from recsys.evaluate.useritems import UserItems


def _top(items, k: int) -> tuple[np.ndarray, np.ndarray]:
    items = np.asarray(items)
    if items.ndim != 2 or items.dtype.kind not in "iu":
        raise DataError(f"top-k items must be an integer matrix (users x ranks), got {items.dtype} {items.shape}",
                        hint="pass TopK.items")
    top = items[:, :k].astype(np.int64, copy=False)
    return top, top >= 0


def exposure_counts(items, n_items: int, k: int) -> np.ndarray:
    """How many top-k lists contain each item, shape ``(n_items,)``; additive over user shards.

    >>> exposure_counts(np.array([[0, 1], [0, -1]]), n_items=3, k=2).tolist()
    [2, 1, 0]
    """
    top, valid = _top(items, k)
    return np.bincount(top[valid], minlength=n_items)


def coverage_from_exposure(exposure) -> float:
    """Share of catalogue items listed at least once.

    >>> coverage_from_exposure(np.array([2, 1, 0, 0]))
    0.5
    """
    exposure = np.asarray(exposure)
    return float(np.count_nonzero(exposure) / len(exposure)) if len(exposure) else float("nan")


def gini_from_exposure(exposure) -> float:
    """Gini coefficient ``sum_i (2i - n - 1) x_(i) / (n sum x)`` over ascending exposures ``x_(i)``.

    NaN when nothing was listed.

    >>> gini_from_exposure(np.array([5, 5, 5])), gini_from_exposure(np.array([0, 0, 9]))
    (0.0, 0.6666666666666666)
    """
    x = np.sort(np.asarray(exposure, dtype=np.float64))
    n, total = len(x), x.sum()
    if n == 0 or total == 0:
        return float("nan")
    weights = 2 * np.arange(1, n + 1) - n - 1
    return float(weights @ x / (n * total))


def item_coverage(items, n_items: int, k: int) -> float:
    """Distinct listed items / catalogue size (``n_items``).

    >>> item_coverage(np.array([[0, 1], [1, 0]]), n_items=4, k=1)
    0.5
    """
    return coverage_from_exposure(exposure_counts(items, n_items, k))


def gini_of_exposure(items, n_items: int, k: int) -> float:
    """Gini coefficient of how often each catalogue item appears in the top-k lists.

    >>> gini_of_exposure(np.array([[0], [1]]), n_items=2, k=1)
    0.0
    """
    return gini_from_exposure(exposure_counts(items, n_items, k))


def _mean_over_list(per_item: np.ndarray, items, k: int) -> np.ndarray:
    top, valid = _top(items, k)
    values = np.where(valid, per_item[np.where(valid, top, 0)], 0.0)
    count = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, values.sum(axis=1) / np.maximum(count, 1), np.nan)


def self_information(users_per_item, n_users: int) -> np.ndarray:
    """``-log2(max(users_i, 1) / n_users)`` per item.

    >>> self_information(np.array([8, 2, 0]), n_users=8).tolist()
    [0.0, 2.0, 3.0]
    """
    counts = np.maximum(np.asarray(users_per_item, dtype=np.float64), 1.0)
    return np.log2(n_users / counts)


def novelty(items, users_per_item, n_users: int, k: int) -> np.ndarray:
    """Per user: mean self-information of the listed items (see :func:`self_information`).

    >>> novelty(np.array([[0, 1]]), np.array([8, 2]), n_users=8, k=2).tolist()
    [1.0]
    """
    return _mean_over_list(self_information(users_per_item, n_users), items, k)


def average_popularity(items, popularity, k: int) -> np.ndarray:
    """Per user: mean popularity of the listed items (ARP).

    >>> average_popularity(np.array([[0, 1], [2, -1]]), np.array([10, 4, 1]), k=2).tolist()
    [7.0, 1.0]
    """
    return _mean_over_list(np.asarray(popularity, dtype=np.float64), items, k)


def long_tail_share(items, long_tail, k: int) -> np.ndarray:
    """Per user: share of listed items in the long tail (``long_tail`` is a boolean item mask).

    >>> long_tail_share(np.array([[0, 1, 2]]), np.array([False, True, True]), k=3).tolist()
    [0.6666666666666666]
    """
    return _mean_over_list(np.asarray(long_tail, dtype=np.float64), items, k)


def held_out_popularity(relevant: UserItems, users, popularity) -> np.ndarray:
    """Per user: mean popularity of the user's held-out items (the test set's side of ARP); NaN without any.

    >>> relevant = UserItems.from_pairs([0, 0, 1], [0, 2, 1], n_users=2, n_items=3)
    >>> held_out_popularity(relevant, np.array([1, 0]), np.array([10, 4, 2])).tolist()
    [4.0, 6.0]
    """
    positions, items = relevant.take(users)
    totals = np.bincount(positions, weights=np.asarray(popularity, dtype=np.float64)[items], minlength=len(users))
    counts = np.bincount(positions, minlength=len(users))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)


def long_tail_mask(popularity, head_fraction: float = 0.2) -> np.ndarray:
    """Items outside the head, where the head is the ``head_fraction`` most popular items of the catalogue.

    Items are ordered by popularity, ties by item index (lower first); the head
    holds ``round(head_fraction * n_items)`` items, the long tail everything else.

    >>> long_tail_mask(np.array([5, 0, 9, 1, 1]), head_fraction=0.4).tolist()
    [False, True, False, True, True]
    """
    popularity = np.asarray(popularity)
    if not 0.0 <= head_fraction <= 1.0:
        raise DataError(f"head_fraction must lie in [0, 1], got {head_fraction}",
                        hint="use e.g. 0.2 (the 20% most popular items form the head)")
    order = np.lexsort((np.arange(len(popularity)), -popularity))
    tail = np.ones(len(popularity), dtype=bool)
    tail[order[: int(round(head_fraction * len(popularity)))]] = False
    return tail


def unit_vectors(item_vectors) -> np.ndarray:
    """Rows scaled to unit length (float64); zero rows stay zero.

    >>> unit_vectors(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
    [[0.6, 0.8], [0.0, 0.0]]
    """
    if isinstance(item_vectors, torch.Tensor):
        item_vectors = item_vectors.detach().cpu().numpy()
    vectors = np.asarray(item_vectors, dtype=np.float64)
    if vectors.ndim != 2:
        raise DataError(f"item vectors must be a matrix (items x dimensions), got shape {vectors.shape}",
                        hint="pass the item embedding matrix in item_idx order")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def diversity_at_ks(items, unit: np.ndarray, ks, chunk_users: int = 1024) -> dict[int, np.ndarray]:
    """Intra-list diversity at several cut-offs from one Gram matrix per chunk of users (``unit``: :func:`unit_vectors`).

    >>> unit = unit_vectors(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))
    >>> {k: v.tolist() for k, v in diversity_at_ks(np.array([[0, 1, 2]]), unit, [2, 3]).items()}
    {2: [1.0], 3: [0.6666666666666666]}
    """
    top_k = max(ks)
    top, valid = _top(items, top_k)
    out = {k: np.full(len(top), np.nan) for k in ks}
    for start in range(0, len(top), chunk_users):
        part = slice(start, start + chunk_users)
        mask = valid[part].astype(np.float64)                                     # (c, K)
        gathered = unit[np.where(valid[part], top[part], 0)]                       # (c, K, d)
        distance = 1.0 - gathered @ gathered.transpose(0, 2, 1)                    # (c, K, K)
        pair_mask = mask[:, :, None] * mask[:, None, :]
        pair_mask[:, np.arange(top_k), np.arange(top_k)] = 0.0                     # ordered pairs i != j
        weighted = distance * pair_mask
        for k in ks:
            n_pairs = pair_mask[:, :k, :k].sum(axis=(1, 2))
            total = weighted[:, :k, :k].sum(axis=(1, 2))
            with np.errstate(invalid="ignore", divide="ignore"):
                out[k][part] = np.where(n_pairs > 0, total / np.maximum(n_pairs, 1), np.nan)
    return out


def intra_list_diversity(items, item_vectors, k: int, chunk_users: int = 4096) -> np.ndarray:
    """Per user: mean pairwise cosine distance ``1 - cos`` between the first ``k`` listed items' vectors.

    Computed in chunks of users (a ``(chunk, k, d)`` gather at a time).

    >>> vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    >>> intra_list_diversity(np.array([[0, 1, 2]]), vectors, k=3).tolist()   # distances 1, 0, 1
    [0.6666666666666666]
    """
    return diversity_at_ks(items, unit_vectors(item_vectors), [k], chunk_users)[k]


@dataclass
class CatalogueStats:
    """What beyond-accuracy metrics need to know about items, taken from the training split.

    >>> train = UserItems.from_pairs([0, 1, 1], [0, 0, 2], n_users=2, n_items=3)
    >>> stats = CatalogueStats.from_train(train)
    >>> stats.popularity.tolist(), stats.long_tail.tolist()
    ([2, 0, 1], [False, True, True])
    """

    popularity: np.ndarray               # (n_items,) training interactions (= training users here)
    n_users: int                          # training users, for self-information
    long_tail: np.ndarray                 # (n_items,) bool
    item_vectors: np.ndarray | None = None  # (n_items, d) for diversity; None skips it

    def __post_init__(self) -> None:
        self._unit = None if self.item_vectors is None else unit_vectors(self.item_vectors)

    @classmethod
    def from_train(cls, train: UserItems, item_vectors=None, head_fraction: float = 0.2) -> "CatalogueStats":
        """Popularity = distinct training users per item; long tail from :func:`long_tail_mask`."""
        popularity = np.bincount(train.indices, minlength=train.n_items)
        if item_vectors is not None and len(item_vectors) != train.n_items:
            raise DataError(f"{len(item_vectors)} item vectors for a catalogue of {train.n_items} items",
                            hint="pass one vector per item, in item_idx order")
        return cls(popularity=popularity, n_users=train.n_users,
                   long_tail=long_tail_mask(popularity, head_fraction), item_vectors=item_vectors)

    @property
    def n_items(self) -> int:
        return len(self.popularity)


def beyond_at_ks(items, ks, stats: CatalogueStats) -> dict[str, np.ndarray]:
    """Per-user beyond-accuracy metrics at every cut-off, keyed ``"<metric>@<k>"``.

    >>> stats = CatalogueStats(np.array([4, 1, 0]), n_users=4, long_tail=np.array([False, True, True]))
    >>> values = beyond_at_ks(np.array([[0, 2]]), [2], stats)
    >>> {name: value.tolist() for name, value in values.items()}
    {'novelty@2': [1.0], 'popularity@2': [2.0], 'long_tail@2': [0.5]}
    """
    out: dict[str, np.ndarray] = {}
    for k in ks:
        out[f"novelty@{k}"] = novelty(items, stats.popularity, stats.n_users, k)
        out[f"popularity@{k}"] = average_popularity(items, stats.popularity, k)
        out[f"long_tail@{k}"] = long_tail_share(items, stats.long_tail, k)
    if stats.item_vectors is not None:
        for k, values in diversity_at_ks(items, stats._unit, ks).items():
            out[f"diversity@{k}"] = values
    return out
