"""Accuracy metrics of top-k lists, one value per user, from a boolean hit matrix.

Every function takes ``hits`` of shape ``(n_users, K)``: ``hits[u, j]`` is True when
the item at rank ``j + 1`` of user ``u``'s list is one of the user's held-out
(relevant) items, and ``n_relevant`` (``(n_users,)``): how many relevant items the
user has. Relevance is binary. Lists shorter than ``k`` (padding) simply have no
hits there. Ranks follow :mod:`recsys.evaluate.topk`: seen items are masked before
ranking and equal scores are ordered by item index. A user with no relevant item
gets NaN (undefined) from metrics that divide by ``n_relevant``; the evaluator
excludes such users before computing anything and counts them.

Definitions, with ``h_j`` the hit at rank ``j`` and ``R = n_relevant``:

========================  ====================================================================
precision@k               ``sum_{j<=k} h_j / k``  (k even when the list is shorter)
recall@k                  ``sum_{j<=k} h_j / R`` (standard); option ``"min_k"``: ``/ min(k, R)``
f1@k                      ``2 P R / (P + R)``, 0 when both are 0
ndcg@k                    ``DCG / IDCG``; ``DCG = sum_{j<=k} h_j / log2(j + 1)``,
                          ``IDCG = sum_{j<=min(k, R)} 1 / log2(j + 1)``
map@k (per user: AP@k)    ``sum_{j<=k} h_j * precision@j / min(k, R)``
mrr@k (per user: RR@k)    ``1 / (rank of the first hit)`` if it is within k, else 0
hit_rate@k                1 if any hit within k, else 0
auc                       share of (relevant, non-relevant) pairs of unseen items in which the
                          relevant item scores higher, ties counting 1/2, over the full ranking;
                          averaged per user (NaN for a user with no non-relevant candidate)
========================  ====================================================================

Where libraries differ, the choices above are: recall divides by all relevant
items (``"min_k"`` is offered); AP divides by ``min(k, R)``, not by ``R`` nor by the
number of hits; the ideal DCG uses ``min(k, R)`` items; precision divides by ``k``
even for short lists; AUC counts ties as 1/2 and averages per user rather than
pooling all users' pairs.

>>> hits = np.array([[True, False, True]])
>>> ndcg_at_k(hits, np.array([2]), 3).round(6).tolist()     # (1 + 1/log2(4)) / (1 + 1/log2(3))
[0.919721]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recsys.errors import ConfigError, DataError
from recsys.evaluate.config import RECALL_DENOMINATORS

ACCURACY_METRICS = ("precision", "recall", "f1", "ndcg", "map", "mrr", "hit_rate")


def _hits_at(hits, k: int) -> np.ndarray:
    hits = np.asarray(hits)
    if hits.ndim != 2 or hits.dtype != bool:
        raise DataError(f"hits must be a boolean matrix (users x ranks), got {hits.dtype} of shape {hits.shape}",
                        hint="build it with UserItems.contains(users, topk_items)")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k must be an integer >= 1, got {k!r}", setting="eval.k", hint="use e.g. k=[5, 10, 20]")
    if hits.shape[1] < k:                              # a list shorter than k has no hits beyond its end
        hits = np.pad(hits, ((0, 0), (0, k - hits.shape[1])))
    return hits[:, :k]


def _relevant(n_relevant, hits: np.ndarray) -> np.ndarray:
    n_relevant = np.asarray(n_relevant, dtype=np.float64)
    if n_relevant.shape != (hits.shape[0],):
        raise DataError(f"n_relevant has shape {n_relevant.shape}, expected ({hits.shape[0]},) (one per user)",
                        hint="pass one relevant-item count per row of hits")
    if np.any(hits.sum(axis=1) > n_relevant):
        raise DataError("a user has more hits than relevant items",
                        hint="count relevant items after masking seen ones (the same sets used for hits)")
    return n_relevant


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def precision_at_k(hits, k: int) -> np.ndarray:
    """Hits in the top k divided by k.

    >>> precision_at_k(np.array([[True, False, True, False]]), 2).tolist()
    [0.5]
    """
    return _hits_at(hits, k).sum(axis=1) / k


def recall_at_k(hits, n_relevant, k: int, denominator: str = "relevant") -> np.ndarray:
    """Hits in the top k divided by the user's relevant items (``"relevant"``) or by ``min(k, R)`` (``"min_k"``).

    The ``"relevant"`` form is the standard one (and the default); ``"min_k"`` makes 1
    reachable for users with more than k relevant items.

    >>> hits = np.array([[True, True, False]])
    >>> recall_at_k(hits, [4], 2).tolist(), recall_at_k(hits, [4], 2, denominator="min_k").tolist()
    ([0.5], [1.0])
    """
    if denominator not in RECALL_DENOMINATORS:
        raise ConfigError(f"unknown recall denominator {denominator!r}", setting="eval.recall_denominator",
                          hint=f"use one of {', '.join(RECALL_DENOMINATORS)}")
    top = _hits_at(hits, k)
    relevant = _relevant(n_relevant, top)
    if denominator == "min_k":
        relevant = np.minimum(relevant, k)
    return _divide(top.sum(axis=1).astype(np.float64), relevant)


def f1_at_k(hits, n_relevant, k: int, denominator: str = "relevant") -> np.ndarray:
    """Harmonic mean of precision@k and recall@k; 0 when both are 0.

    >>> f1_at_k(np.array([[True, False]]), [1], 2).tolist()    # P = 1/2, R = 1
    [0.6666666666666666]
    """
    precision = precision_at_k(hits, k)
    recall = recall_at_k(hits, n_relevant, k, denominator)
    total = precision + recall
    return np.where(total > 0, _divide(2 * precision * recall, total), np.where(np.isnan(recall), np.nan, 0.0))


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def ndcg_at_k(hits, n_relevant, k: int) -> np.ndarray:
    """Binary-relevance NDCG@k; the ideal list puts ``min(k, R)`` relevant items first.

    >>> ndcg_at_k(np.array([[False, True]]), [1], 2).tolist()   # (1/log2(3)) / 1
    [0.6309297535714575]
    """
    top = _hits_at(hits, k)
    relevant = _relevant(n_relevant, top)
    discounts = _discounts(k)
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[np.minimum(relevant, k).astype(np.int64)]
    return _divide(top @ discounts, ideal)


def average_precision_at_k(hits, n_relevant, k: int) -> np.ndarray:
    """AP@k: mean of precision@j at the ranks j <= k of hits, divided by ``min(k, R)``; MAP@k is its mean.

    >>> average_precision_at_k(np.array([[True, False, True]]), [3], 3).tolist()   # (1/1 + 2/3) / 3
    [0.5555555555555555]
    """
    top = _hits_at(hits, k)
    relevant = _relevant(n_relevant, top)
    precision_at_j = np.cumsum(top, axis=1) / np.arange(1, k + 1)
    return _divide((precision_at_j * top).sum(axis=1), np.minimum(relevant, k))


def reciprocal_rank_at_k(hits, k: int) -> np.ndarray:
    """RR@k: 1 / rank of the first hit within k, 0 without one; MRR@k is its mean.

    >>> reciprocal_rank_at_k(np.array([[False, False, True], [False, False, False]]), 3).tolist()
    [0.3333333333333333, 0.0]
    """
    top = _hits_at(hits, k)
    first = np.argmax(top, axis=1)
    return np.where(top.any(axis=1), 1.0 / (first + 1), 0.0)


def hit_rate_at_k(hits, k: int) -> np.ndarray:
    """1 when at least one relevant item is in the top k, else 0.

    >>> hit_rate_at_k(np.array([[False, True], [False, False]]), 2).tolist()
    [1.0, 0.0]
    """
    return _hits_at(hits, k).any(axis=1).astype(np.float64)


def auc_from_ranks(row, score, n_above, n_tied, n_candidates, n_rows: int) -> np.ndarray:
    """Per-user AUC over the full ranking from :class:`~recsys.evaluate.topk.Ranks` counts.

    ``row``, ``score``, ``n_above``, ``n_tied`` have one entry per (user, relevant item)
    pair (``n_above``/``n_tied`` count unseen items of any kind; pairs with
    ``n_above == -1`` are masked relevant items and are ignored); ``n_candidates``
    is the number of unseen items per user. With ``N`` the user's non-relevant
    candidates and ``R`` the ranked relevant ones, AUC = (R·N − Σ above − ½ Σ tied)
    / (R·N) where the sums count non-relevant items only; relevant-vs-relevant
    pairs are removed using the ties among relevant scores. NaN when ``R`` or ``N`` is 0.

    >>> # 4 unseen items scored [0.9, 0.5, 0.5, 0.1]; relevant: the items scored 0.5 and 0.1
    >>> auc_from_ranks([0, 0], [0.5, 0.1], [1, 3], [1, 0], [4], 1).tolist()   # (0.5 + 0) / 4
    [0.125]
    """
    row = np.asarray(row, dtype=np.int64)
    score = np.asarray(score, dtype=np.float64)
    n_above = np.asarray(n_above, dtype=np.float64)
    n_tied = np.asarray(n_tied, dtype=np.float64)
    n_candidates = np.asarray(n_candidates, dtype=np.float64)
    ranked = n_above >= 0
    row, score, n_above, n_tied = row[ranked], score[ranked], n_above[ranked], n_tied[ranked]
    n_rel = np.bincount(row, minlength=n_rows).astype(np.float64)
    # ordered pairs of distinct relevant items with equal scores, per user
    order = np.lexsort((score, row))
    row_s, score_s = row[order], score[order]
    new_group = np.ones(len(row_s), dtype=bool)
    new_group[1:] = (row_s[1:] != row_s[:-1]) | (score_s[1:] != score_s[:-1])
    group_id = np.cumsum(new_group) - 1
    group_size = np.bincount(group_id).astype(np.float64)
    group_row = row_s[new_group]
    rel_tied = np.bincount(group_row, weights=group_size * (group_size - 1), minlength=n_rows)
    rel_above = (n_rel * (n_rel - 1) - rel_tied) / 2          # each untied relevant pair counts once
    neg_above = np.bincount(row, weights=n_above, minlength=n_rows) - rel_above
    neg_tied = np.bincount(row, weights=n_tied, minlength=n_rows) - rel_tied
    n_negative = n_candidates - n_rel
    pairs = n_rel * n_negative
    return _divide(pairs - neg_above - 0.5 * neg_tied, pairs)


def accuracy_at_ks(hits, n_relevant, ks: Sequence[int], recall_denominator: str = "relevant") -> dict[str, np.ndarray]:
    """Every accuracy metric at every cut-off, keyed ``"<metric>@<k>"`` (see the module table).

    >>> values = accuracy_at_ks(np.array([[True, False]]), [1], [1, 2])
    >>> sorted(values)[:3], values["precision@2"].tolist()
    (['f1@1', 'f1@2', 'hit_rate@1'], [0.5])
    """
    out: dict[str, np.ndarray] = {}
    for k in ks:
        out[f"precision@{k}"] = precision_at_k(hits, k)
        out[f"recall@{k}"] = recall_at_k(hits, n_relevant, k, recall_denominator)
        out[f"f1@{k}"] = f1_at_k(hits, n_relevant, k, recall_denominator)
        out[f"ndcg@{k}"] = ndcg_at_k(hits, n_relevant, k)
        out[f"map@{k}"] = average_precision_at_k(hits, n_relevant, k)
        out[f"mrr@{k}"] = reciprocal_rank_at_k(hits, k)
        out[f"hit_rate@{k}"] = hit_rate_at_k(hits, k)
    return out
