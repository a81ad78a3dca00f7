"""Hand-built models whose feature importance is known, and a clustered dataset they rank well."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from recsys.evaluate.useritems import UserItems
from recsys.models.base import PAD, Batch, ModelInputs, Output, Recommender, history_windows, masked_mean


class TextOnly(Recommender):
    """Scores from text alone: item = its text vector, user = mean text of the history.

    It owns an item ID table and a user ID table that never enter a score, so taking
    them away must change nothing.
    """

    def __init__(self, inputs: ModelInputs, dim: int = 4) -> None:
        super().__init__(inputs)
        self.register_buffer("item_text", inputs.item_text.float().clone())
        self.item_id = nn.Embedding(inputs.n_items, dim)
        self.user_id = nn.Embedding(inputs.n_users, dim)
        self.scale = nn.Parameter(torch.ones(()))
        self.config = type("Config", (), {"max_history": 50})()

    def feature_tensors(self) -> dict[str, list[str]]:
        return {"text": ["item_text"], "item_id": ["item_id.weight"], "user_id": ["user_id.weight"],
                "history_length": ["history_indptr", "history_items"]}

    def item_vectors(self) -> torch.Tensor:
        return self.item_text * self.scale + 0.0 * self.item_id.weight.sum()      # (N, T); ID adds exactly 0

    def _user(self, users, items, exclude=None) -> torch.Tensor:
        history = history_windows(self.history_indptr, self.history_items, users, 50, exclude)
        return masked_mean(items[history.clamp(min=0)], history != PAD) + 0.0 * self.user_id(users)

    def user_vectors(self, users, items) -> torch.Tensor:
        return self._user(users, items)

    def forward(self, batch: Batch) -> Output:
        items = self.item_vectors()
        return Output(self._user(batch.users, items, batch.positions), self.history_items[batch.positions], items)


def clustered(n_clusters: int = 4, per_cluster: int = 6, n_users: int = 40, history: int = 4, seed: int = 0,
              constant_text: bool = False):
    """Users who only like items of one cluster; text vectors are the cluster's one-hot plus noise.

    Returns ``(ModelInputs, held-out UserItems, seen UserItems)``; each user holds out one item of
    their cluster that is not in their history.
    """
    rng = np.random.default_rng(seed)
    n_items = n_clusters * per_cluster
    cluster = np.repeat(np.arange(n_clusters), per_cluster)
    text = np.eye(n_clusters)[cluster] + 0.05 * rng.standard_normal((n_items, n_clusters))
    if constant_text:
        text = np.ones((n_items, n_clusters))
    users, items, held_users, held_items = [], [], [], []
    for u in range(n_users):
        c = u % n_clusters
        own = rng.permutation(np.flatnonzero(cluster == c))
        users += [u] * history
        items += own[:history].tolist()
        held_users.append(u)
        held_items.append(int(own[history]))
    users, items = np.array(users), np.array(items)
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])
    counts = np.bincount(items, minlength=n_items).astype(np.float32)
    inputs = ModelInputs(n_users, n_items, n_items, torch.tensor(indptr), torch.tensor(items),
                         torch.tensor(counts), torch.tensor(text, dtype=torch.float32))
    held = UserItems.from_pairs(held_users, held_items, n_users=n_users, n_items=n_items)
    seen = UserItems.from_pairs(users, items, n_users=n_users, n_items=n_items)
    return inputs, held, seen


def snapshot(model: nn.Module) -> dict:
    """Every tensor of the model: object identity, a copy of its values, requires_grad and grad."""
    return {name: (id(t), t.detach().clone(), t.requires_grad, t.grad)
            for name, t in [*model.named_parameters(), *model.named_buffers()]}


def assert_unchanged(model: nn.Module, before: dict, training: bool) -> None:
    after = snapshot(model)
    assert after.keys() == before.keys()
    for name, (ident, values, requires_grad, grad) in before.items():
        a_ident, a_values, a_requires, a_grad = after[name]
        assert a_ident == ident, f"{name} was replaced"
        assert torch.equal(a_values, values), f"{name} changed"
        assert a_requires == requires_grad and a_grad is None and grad is None, name
    assert model.training == training
