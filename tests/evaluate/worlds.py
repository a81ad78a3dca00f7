"""Small random evaluation worlds shared by the evaluation tests."""

from __future__ import annotations

import numpy as np
import torch

from recsys.evaluate.topk import factor_scorer
from recsys.evaluate.useritems import UserItems


def random_world(rng: np.random.Generator, n_users: int, n_items: int, *, dim: int, n_seen: int):
    """``(score, seen)``: a random factor model and ``n_seen`` random (user, item) pairs to mask.

    Draws happen in a fixed order (user factors, item factors, seen pairs), so a test that
    draws its held-out items from ``rng`` afterwards sees the same numbers as before.
    """
    score = factor_scorer(torch.tensor(rng.normal(size=(n_users, dim)), dtype=torch.float32),
                          torch.tensor(rng.normal(size=(n_items, dim)), dtype=torch.float32))
    seen = UserItems.from_pairs(rng.integers(0, n_users, n_seen), rng.integers(0, n_items, n_seen),
                                n_users=n_users, n_items=n_items)
    return score, seen


def random_pairs(rng: np.random.Generator, n_users: int, n_items: int, n: int) -> UserItems:
    """``n`` random (user, item) pairs as :class:`UserItems`."""
    return UserItems.from_pairs(rng.integers(0, n_users, n), rng.integers(0, n_items, n),
                                n_users=n_users, n_items=n_items)
