"""Validation NDCG@k during training, over every item, with each user's training items masked.

Uses the evaluation stage's full-ranking top-k (:func:`recsys.evaluate.topk.topk`)
and its NDCG (:func:`recsys.evaluate.metrics.ndcg_at_k`), so training selects models
with exactly the metric evaluation reports. Users are split across workers
(worker ``r`` takes every ``world_size``-th user) and the workers' sums are
added, so every worker gets the same value.

>>> import torch
>>> from recsys.evaluate.topk import factor_scorer
>>> from recsys.evaluate.useritems import UserItems
>>> score = factor_scorer(torch.eye(2), torch.tensor([[1., 0.], [0., 1.], [.5, .5]]))
>>> seen = UserItems.from_pairs([0], [0], n_users=2, n_items=3)
>>> held_out = UserItems.from_pairs([0, 1], [2, 0], n_users=2, n_items=3)
>>> total, n = ndcg_sum(score, seen, held_out, k=2)
>>> n, round(total, 4)          # user 0: item 2 first (1.0); user 1: item 0 at rank 3 (0.0)
(2, 1.0)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from recsys.evaluate.metrics import ndcg_at_k
from recsys.evaluate.topk import topk
from recsys.evaluate.useritems import UserItems


def ndcg_sum(score: Callable[[torch.Tensor], torch.Tensor], seen: UserItems, held_out: UserItems, k: int,
             rank: int = 0, world_size: int = 1, memory_budget_bytes: int = 256 * 2**20) -> tuple[float, int]:
    """Sum of NDCG@k over this worker's share of the users with held-out items, and their number."""
    users = np.flatnonzero(held_out.counts() > 0)[rank::world_size]
    if users.size == 0:
        return 0.0, 0
    result = topk(score, users, k, seen=seen, memory_budget_bytes=memory_budget_bytes)
    hits = held_out.contains(users, result.items)
    values = ndcg_at_k(hits, held_out.counts()[users], k)
    return float(values.sum()), int(users.size)
