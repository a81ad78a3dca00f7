"""A block-structured dataset where the right ranking is known.

Users and items fall into ``n_groups`` groups; a user only ever interacts with
items of their own group. A model that learned the structure ranks the unseen
items of the user's group first, so validation NDCG@k is at least that of a
random order within the group (``GROUP_LEVEL_NDCG`` below for the defaults),
while anything that ignores groups scores far less. Item text vectors say the
group (one-hot plus noise), so text-only models can learn it too.
"""

from __future__ import annotations

import numpy as np

from recsys.train.data import TrainingData


def block_data(n_groups: int = 4, users_per_group: int = 8, items_per_group: int = 8, train_per_user: int = 5,
               text_dim: int = 8, cold_per_group: int = 0, seed: int = 0) -> tuple[TrainingData, np.ndarray]:
    """Training data (one validation item per user) and item text vectors (n_items, text_dim).

    ``cold_per_group`` extra items per group appear only in validation: they get
    indices after all warm items, as the id maps give them.
    """
    rng = np.random.default_rng(seed)
    n_warm = n_groups * items_per_group
    n_items = n_warm + n_groups * cold_per_group
    users, items, stamps, val_users, val_items = [], [], [], [], []
    for g in range(n_groups):
        group_items = np.arange(g * items_per_group, (g + 1) * items_per_group)
        cold = n_warm + np.arange(g * cold_per_group, (g + 1) * cold_per_group)
        for j in range(users_per_group):
            u = g * users_per_group + j
            chosen = rng.choice(group_items, size=train_per_user + 1, replace=False)
            users += [u] * train_per_user
            items += chosen[:train_per_user].tolist()
            stamps += list(range(train_per_user))
            val_users.append(u)
            val_items.append(int(rng.choice(cold)) if cold_per_group and j % 2 else int(chosen[-1]))
    group_of_item = np.concatenate([np.repeat(np.arange(n_groups), items_per_group),
                                    np.repeat(np.arange(n_groups), cold_per_group)])
    text = np.zeros((n_items, text_dim), dtype=np.float32)
    text[np.arange(n_items), group_of_item] = 1.0
    text += 0.1 * rng.standard_normal(text.shape).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    data = TrainingData.from_arrays(users, items, stamps, n_users=n_groups * users_per_group, n_items=n_items,
                                    n_warm_items=n_warm, val_users=val_users, val_items=val_items)
    return data, text
