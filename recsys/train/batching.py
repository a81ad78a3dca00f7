"""An epoch's training examples, shuffled reproducibly and split into per-worker batches.

An example is a (user, position) pair (see :mod:`recsys.models.base`): for pair
models every training interaction is one example with one target; for sequence
models a user's history is cut into windows of ``window - 1`` targets, from the
most recent backwards, so each item except a user's first is a target once.

The order depends only on ``(seed, epoch)``. A *global* batch of ``batch_size``
examples is split across ``world_size`` workers (worker ``r`` takes every
``world_size``-th example from ``r``), and each worker's loss is divided by the
global batch's target count, so the averaged gradient over workers equals the
single-worker gradient of the same global batch.

>>> indptr = np.array([0, 4, 6])               # user 0: 4 items, user 1: 2 items
>>> users, ends, n_targets = window_examples(indptr, window=3)
>>> users.tolist(), ends.tolist(), n_targets.tolist()
([0, 0, 1], [4, 2, 6], [2, 1, 1])
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from recsys.models.base import Batch


@dataclass
class Examples:
    users: np.ndarray       # (E,) int64
    positions: np.ndarray   # (E,) int64 absolute positions in the flat history
    n_targets: np.ndarray   # (E,) int64 targets the example trains on


def pair_examples(indptr: np.ndarray) -> Examples:
    """One example per training interaction.

    >>> pair_examples(np.array([0, 2, 3])).users.tolist()
    [0, 0, 1]
    """
    nnz = int(indptr[-1])
    users = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
    return Examples(users, np.arange(nnz, dtype=np.int64), np.ones(nnz, dtype=np.int64))


def window_examples(indptr: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows ending at each user's end, then every ``window - 1`` items earlier (users with >= 2 items).

    Returns ``(users, ends, n_targets)``; a window ending at ``end`` trains on
    ``min(window - 1, end - start - 1)`` targets (``start`` = the user's first position).
    """
    step = window - 1
    lengths = np.diff(indptr)
    counts = np.where(lengths >= 2, -(-(lengths - 1) // step), 0)     # ceil((n - 1) / step)
    users = np.repeat(np.arange(len(lengths), dtype=np.int64), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    k = np.arange(users.size, dtype=np.int64) - first                  # window number from the end
    ends = indptr[users + 1] - k * step
    n_targets = np.minimum(step, ends - indptr[users] - 1)
    return users, ends, n_targets


def epoch_examples(indptr: np.ndarray, kind: str, window: int = 0) -> Examples:
    """Every example of one epoch for a model of ``kind`` (``pairs`` or ``windows``), unshuffled."""
    if kind == "pairs":
        return pair_examples(indptr)
    users, ends, n_targets = window_examples(indptr, window)
    return Examples(users, ends, n_targets)


def epoch_order(n_examples: int, seed: int, epoch: int) -> np.ndarray:
    """A permutation that depends only on ``(seed, epoch)``.

    >>> (epoch_order(5, 0, 1) == epoch_order(5, 0, 1)).all(), sorted(epoch_order(5, 0, 1).tolist())
    (np.True_, [0, 1, 2, 3, 4])
    """
    return np.random.default_rng([seed, epoch]).permutation(n_examples)


def examples_per_batch(kind: str, batch_size: int, window: int) -> int:
    """Examples in a global batch: ``batch_size`` pairs, or enough windows for about ``batch_size`` targets.

    >>> examples_per_batch("pairs", 256, 0), examples_per_batch("windows", 256, 51)
    (256, 5)
    """
    return batch_size if kind == "pairs" else max(1, batch_size // max(1, window - 1))


def worker_batches(examples: Examples, order: np.ndarray, per_batch: int, rank: int = 0,
                   world_size: int = 1) -> Iterator[tuple[Batch, int]]:
    """This worker's share of each global batch and the global batch's target count.

    A final global batch with fewer examples than workers is dropped, so every
    worker takes the same number of steps.

    >>> ex = pair_examples(np.array([0, 3, 5]))
    >>> [(b.positions.tolist(), n) for b, n in worker_batches(ex, np.arange(5), 4, rank=1, world_size=2)]
    [([1, 3], 4)]
    """
    for start in range(0, len(order), per_batch):
        chosen = order[start:start + per_batch]
        if len(chosen) < world_size:
            break
        mine = chosen[rank::world_size]
        total = int(examples.n_targets[chosen].sum())
        yield Batch(torch.from_numpy(examples.users[mine]), torch.from_numpy(examples.positions[mine])), total


def steps_per_epoch(n_examples: int, per_batch: int, world_size: int = 1) -> int:
    """Optimizer steps one epoch takes (as :func:`worker_batches` yields them).

    >>> steps_per_epoch(5, 4, 2), steps_per_epoch(5, 4, 1)
    (1, 2)
    """
    if per_batch < world_size:
        return 0
    full, rest = divmod(n_examples, per_batch)
    return full + (1 if rest >= world_size and rest > 0 else 0)
