"""Per-user metric rows: the map step of evaluation (:func:`evaluate_users`) and its reduce (:func:`combine`).

A :class:`MetricRows` holds one row per requested user: the user's metric values,
the top-k list and scores, and how many held-out items the user has. Everything
is per user, so a sharded evaluation is ``combine([evaluate_users(shard) ...])``
and equals ``evaluate_users(all users)`` exactly, provided each user gets the
same scores in both runs. Rows come out sorted by ``user_idx``;
:func:`recsys.evaluate.aggregate.summarize` turns them into averages with
confidence intervals.

Bitwise parity for float models: a BLAS matrix product can round a user's row
differently depending on how many rows the batch has, which shifts scores in the
last bit and can, rarely, swap near-tied items. Cut shards with
:func:`shard_users` over :func:`evaluable_users`: every shard then starts on a
batch boundary of the single-process run, so each user is scored in a batch of
the same users and shape in both runs.

Held-out items the user has already seen (in the masked split) are unreachable
after masking; they are removed from the user's relevant items and counted in
``n_masked``. Users left with no relevant item are **excluded**: they keep a row
with ``n_relevant == 0``, NaN metric values and an empty list, are not scored,
and are counted by :attr:`MetricRows.n_excluded`.

>>> import torch
>>> from recsys.evaluate.topk import factor_scorer
>>> relevant = UserItems.from_pairs([0, 1], [1, 2], n_users=3, n_items=3)
>>> score = factor_scorer(torch.eye(3), torch.eye(3))          # user u likes item u best
>>> rows = evaluate_users(score, [0, 1, 2], relevant, ks=[1])
>>> rows.values["hit_rate@1"].tolist(), rows.n_excluded
([0.0, 0.0, nan], 1)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from recsys.errors import ConfigError, DataError
from recsys.evaluate.beyond import CatalogueStats, beyond_at_ks, held_out_popularity
from recsys.evaluate.metrics import ACCURACY_METRICS, accuracy_at_ks, auc_from_ranks
from recsys.evaluate.topk import DEFAULT_MEMORY_BUDGET_BYTES, Scorer, TopK, iter_topk
from recsys.evaluate.useritems import UserItems

BEYOND_METRICS = ("novelty", "popularity", "long_tail")
ROW_FIELDS = ("user_idx", "n_relevant", "n_masked", "topk_items", "topk_scores")


def column_name(metric: str, k: int | None = None) -> str:
    """``"ndcg@10"`` for a metric at a cut-off, the bare name otherwise.

    >>> column_name("ndcg", 10), column_name("auc")
    ('ndcg@10', 'auc')
    """
    return metric if k is None else f"{metric}@{k}"


def split_column_name(name: str) -> tuple[str, int | None]:
    """Inverse of :func:`column_name`.

    >>> split_column_name("ndcg@10"), split_column_name("auc")
    (('ndcg', 10), ('auc', None))
    """
    metric, _, k = name.partition("@")
    return metric, (int(k) if k else None)


def check_ks(ks: Sequence[int]) -> list[int]:
    """Distinct positive cut-offs, ascending; a :class:`ConfigError` names ``eval.k`` otherwise.

    >>> check_ks([10, 5, 10])
    [5, 10]
    """
    values = list(ks) if isinstance(ks, (list, tuple, np.ndarray)) else [ks]
    if not values or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in values):
        raise ConfigError(f"cut-offs must be a non-empty list of integers >= 1, got {ks!r}", setting="eval.k",
                          hint="use e.g. eval.k=[5,10,20]")
    return sorted({int(k) for k in values})


def metric_columns(ks: Sequence[int], *, auc: bool, stats: CatalogueStats | None) -> list[str]:
    """The value columns :func:`evaluate_users` produces for these settings.

    >>> metric_columns([10], auc=True, stats=None)[:3]
    ['precision@10', 'recall@10', 'f1@10']
    """
    names = [column_name(metric, k) for k in ks for metric in ACCURACY_METRICS]
    if auc:
        names.append("auc")
    if stats is not None:
        beyond = BEYOND_METRICS + (("diversity",) if stats.item_vectors is not None else ())
        names += [column_name(metric, k) for k in ks for metric in beyond] + ["test_popularity"]
    return names


@dataclass
class MetricRows:
    """One row per user: metric values, top-k list, relevant-item counts (see the module doc)."""

    user_idx: np.ndarray               # (n,) int64, ascending
    n_relevant: np.ndarray             # (n,) held-out items after masking; 0 = excluded user
    n_masked: np.ndarray               # (n,) held-out items dropped because the user had seen them
    values: dict[str, np.ndarray]      # column name -> (n,) float64; NaN where undefined
    topk_items: np.ndarray             # (n, K) int32 item indices, best first; -1 pads
    topk_scores: np.ndarray            # (n, K) float32 scores; -inf pads
    n_items: int                       # catalogue size (for coverage and exposure)

    @property
    def n_users(self) -> int:
        return len(self.user_idx)

    @property
    def evaluated(self) -> np.ndarray:
        """Boolean mask of users with at least one relevant item."""
        return self.n_relevant > 0

    @property
    def n_excluded(self) -> int:
        """Users asked for but left with no relevant item (not part of any average)."""
        return int(np.count_nonzero(self.n_relevant == 0))

    @property
    def ks(self) -> list[int]:
        """Cut-offs present in the value columns."""
        return sorted({k for k in (split_column_name(name)[1] for name in self.values) if k is not None})

    def select(self, which: np.ndarray) -> "MetricRows":
        """Rows picked by a boolean mask or positions (e.g. a user segment).

        >>> rows = MetricRows(np.array([3, 5]), np.array([1, 0]), np.zeros(2, np.int64), {"auc": np.ones(2)},
        ...                   np.zeros((2, 1), np.int32), np.zeros((2, 1), np.float32), n_items=9)
        >>> rows.select(rows.evaluated).user_idx.tolist()
        [3]
        """
        return replace(self, user_idx=self.user_idx[which], n_relevant=self.n_relevant[which],
                       n_masked=self.n_masked[which], values={n: v[which] for n, v in self.values.items()},
                       topk_items=self.topk_items[which], topk_scores=self.topk_scores[which])

    def to_batch(self) -> dict[str, np.ndarray]:
        """Columns as a dict of NumPy arrays (a Ray Data / Arrow batch); inverse of :meth:`from_batch`."""
        return {"user_idx": self.user_idx, "n_relevant": self.n_relevant, "n_masked": self.n_masked,
                "topk_items": self.topk_items, "topk_scores": self.topk_scores, **self.values}

    @classmethod
    def from_batch(cls, batch: Mapping[str, np.ndarray], n_items: int) -> "MetricRows":
        """Rebuild from :meth:`to_batch` columns (list columns are stacked back into matrices).

        >>> rows = MetricRows(np.array([3]), np.array([1]), np.array([0]), {"auc": np.array([0.5])},
        ...                   np.zeros((1, 2), np.int32), np.zeros((1, 2), np.float32), n_items=9)
        >>> MetricRows.from_batch(rows.to_batch(), n_items=9).values["auc"].tolist()
        [0.5]
        """
        missing = [name for name in ROW_FIELDS if name not in batch]
        if missing:
            raise DataError(f"metric rows lack the column(s) {missing}",
                            hint="pass the columns MetricRows.to_batch() produced")

        def matrix(name: str, dtype) -> np.ndarray:
            value = batch[name]
            if isinstance(value, np.ndarray) and value.ndim == 2:
                return value.astype(dtype, copy=False)
            return np.asarray([np.asarray(row) for row in value], dtype=dtype).reshape(len(batch["user_idx"]), -1)

        return cls(
            user_idx=np.asarray(batch["user_idx"], dtype=np.int64),
            n_relevant=np.asarray(batch["n_relevant"], dtype=np.int64),
            n_masked=np.asarray(batch["n_masked"], dtype=np.int64),
            values={name: np.asarray(value, dtype=np.float64) for name, value in batch.items()
                    if name not in ROW_FIELDS},
            topk_items=matrix("topk_items", np.int32), topk_scores=matrix("topk_scores", np.float32),
            n_items=int(n_items))


def evaluable_users(relevant: UserItems, seen: UserItems | None = None) -> np.ndarray:
    """Users with at least one held-out item that is not masked: the users :func:`evaluate_users` scores.

    >>> relevant = UserItems.from_pairs([0, 2, 2], [1, 0, 1], n_users=3, n_items=2)
    >>> evaluable_users(relevant, UserItems.from_pairs([0], [1], n_users=3, n_items=2)).tolist()
    [2]
    """
    held_out = relevant.difference(seen) if seen is not None else relevant
    return np.flatnonzero(held_out.counts() > 0)


def shard_users(users, n_shards: int, batch_size: int) -> list[np.ndarray]:
    """Split sorted ``users`` into at most ``n_shards`` contiguous shards whose cuts fall on batch boundaries.

    Use ``batch_size = batch_size_for(n_items, memory_budget_bytes)`` and the
    users from :func:`evaluable_users`, so each shard's batches are batches of the
    unsharded run (see the module doc).

    >>> [s.tolist() for s in shard_users(np.arange(7), 3, batch_size=2)]
    [[0, 1, 2, 3], [4, 5], [6]]
    """
    users = np.sort(np.asarray(users, dtype=np.int64).ravel())
    if isinstance(n_shards, bool) or not isinstance(n_shards, (int, np.integer)) or n_shards < 1:
        raise ConfigError(f"the number of shards must be an integer >= 1, got {n_shards!r}",
                          hint="use e.g. the number of CPUs of the cluster")
    n_batches = -(-len(users) // batch_size)
    batches_per_shard = [len(part) for part in np.array_split(np.arange(n_batches), n_shards)]
    cuts = np.cumsum(batches_per_shard)[:-1] * batch_size
    return [shard for shard in np.split(users, cuts) if len(shard)]


def _check_users(users, n_users: int) -> np.ndarray:
    users = np.asarray(users)
    if users.size and users.dtype.kind not in "iu":
        raise DataError(f"users must be integer indices, got {users.dtype}", column="user_idx",
                        hint="map user ids to user_idx first")
    users = np.sort(users.astype(np.int64).ravel())
    if users.size and (users[0] < 0 or users[-1] >= n_users):
        raise DataError(f"user indices must lie in [0, {n_users}), found [{users[0]}, {users[-1]}]",
                        column="user_idx", hint="evaluate users of the id map the item sets were built with")
    repeated = users[1:][users[1:] == users[:-1]]
    if repeated.size:
        raise DataError(f"{repeated.size} users are asked for twice, e.g. user_idx {repeated[:5].tolist()}",
                        column="user_idx", hint="pass each user once (shards must not overlap)")
    return users


def evaluate_users(
    score: Scorer,
    users,
    relevant: UserItems,
    ks: Sequence[int],
    *,
    seen: UserItems | None = None,
    stats: CatalogueStats | None = None,
    auc: bool = True,
    recall_denominator: str = "relevant",
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES,
    on_topk: Callable[[TopK], None] | None = None,
) -> MetricRows:
    """Score ``users`` over the full catalogue and compute their metric rows (the map step).

    ``relevant``: held-out items per user; ``seen``: items to mask (train, plus val
    when testing); ``stats``: enables beyond-accuracy metrics; ``auc``: adds AUC over
    the full ranking (costs one comparison pass per held-out item); ``on_topk``
    receives each batch's :class:`TopK` (e.g. to stream recommendations out).

    >>> import torch
    >>> from recsys.evaluate.topk import factor_scorer
    >>> relevant = UserItems.from_pairs([0, 0], [0, 2], n_users=1, n_items=3)
    >>> rows = evaluate_users(factor_scorer(torch.ones(1, 1), torch.tensor([[3.], [2.], [1.]])), [0], relevant, [2])
    >>> rows.topk_items.tolist(), rows.values["precision@2"].tolist(), rows.values["auc"].tolist()
    ([[0, 1]], [0.5], [0.5])
    """
    ks = check_ks(ks)
    top_k = max(ks)
    users = _check_users(users, relevant.n_users)
    if stats is not None and stats.n_items != relevant.n_items:
        raise DataError(f"catalogue statistics cover {stats.n_items} items, the held-out items {relevant.n_items}",
                        hint="build CatalogueStats from the same item id map")
    relevant = relevant.restrict(users)                 # work in proportion to this shard, not to all users
    held_out = relevant.difference(seen) if seen is not None else relevant
    n_relevant = held_out.counts()[users]
    n_masked = relevant.counts()[users] - n_relevant
    names = metric_columns(ks, auc=auc, stats=stats)
    values = {name: np.full(len(users), np.nan) for name in names}
    topk_items = np.full((len(users), top_k), -1, dtype=np.int32)
    topk_scores = np.full((len(users), top_k), -np.inf, dtype=np.float32)
    included = np.flatnonzero(n_relevant > 0)
    done = 0
    for batch in iter_topk(score, users[included], top_k, n_items=relevant.n_items, seen=seen,
                           relevant=held_out if auc else None, with_ranks=auc,
                           memory_budget_bytes=memory_budget_bytes):
        rows = included[done:done + len(batch.users)]
        done += len(batch.users)
        hits = held_out.contains(batch.users, batch.items)
        batch_values = accuracy_at_ks(hits, n_relevant[rows], ks, recall_denominator)
        if auc:
            r = batch.ranks
            batch_values["auc"] = auc_from_ranks(r.row, r.score, r.n_above, r.n_tied, batch.n_candidates,
                                                 len(batch.users))
        if stats is not None:
            batch_values.update(beyond_at_ks(batch.items, ks, stats))
            batch_values["test_popularity"] = held_out_popularity(held_out, batch.users, stats.popularity)
        for name in names:
            values[name][rows] = batch_values[name]
        topk_items[rows] = batch.items
        topk_scores[rows] = batch.scores
        if on_topk is not None:
            on_topk(batch)
    return MetricRows(users, n_relevant, n_masked, values, topk_items, topk_scores, relevant.n_items)


def combine(parts: Sequence[MetricRows]) -> MetricRows:
    """Join the rows of user shards (the reduce step); the result is sorted by ``user_idx``.

    >>> def part(users):
    ...     n = len(users)
    ...     return MetricRows(np.array(users), np.ones(n, np.int64), np.zeros(n, np.int64),
    ...                       {"auc": np.array(users) / 10}, np.zeros((n, 1), np.int32),
    ...                       np.zeros((n, 1), np.float32), n_items=4)
    >>> combine([part([4, 1]), part([2])]).values["auc"].tolist()
    [0.1, 0.2, 0.4]
    """
    if not parts:
        raise DataError("no metric rows to combine", hint="evaluate at least one shard")
    first = parts[0]
    for part in parts[1:]:
        if set(part.values) != set(first.values) or part.n_items != first.n_items \
                or part.topk_items.shape[1] != first.topk_items.shape[1]:
            raise DataError("shards were evaluated with different settings (metrics, k or catalogue)",
                            hint="evaluate every shard with the same ks, stats, auc and item set")
    user_idx = np.concatenate([p.user_idx for p in parts])
    order = np.argsort(user_idx, kind="stable")
    user_idx = user_idx[order]
    repeated = user_idx[1:][user_idx[1:] == user_idx[:-1]]
    if repeated.size:
        raise DataError(f"{repeated.size} users appear in more than one shard, e.g. user_idx {repeated[:5].tolist()}",
                        hint="split users into disjoint shards")

    def joined(get) -> np.ndarray:
        return np.concatenate([get(p) for p in parts])[order]

    return MetricRows(
        user_idx=user_idx, n_relevant=joined(lambda p: p.n_relevant), n_masked=joined(lambda p: p.n_masked),
        values={name: joined(lambda p, name=name: p.values[name]) for name in first.values},
        topk_items=joined(lambda p: p.topk_items), topk_scores=joined(lambda p: p.topk_scores),
        n_items=first.n_items)
