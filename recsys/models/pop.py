"""Popularity: every user gets the items with the most training interactions first.

No parameters and no training. As a dot-product model: the item vector is the
item's training count, the user vector is 1, so ``score(u, i) = count(i)``; ties
are broken by evaluation (lowest item index first), and seen items are masked there.

>>> from recsys.models.base import tiny_inputs
>>> model = Popularity(PopConfig(), tiny_inputs())
>>> model.score(torch.tensor([0])).tolist()
[[1.0, 2.0, 1.0, 1.0]]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recsys.models.base import ModelInputs, Recommender


@dataclass
class PopConfig:
    """Popularity has no settings (a dataclass so ``model.pop`` exists like every other model)."""


class Popularity(Recommender):
    trainable = False

    def __init__(self, config: PopConfig, inputs: ModelInputs) -> None:
        super().__init__(inputs)
        self.config = config

    def item_vectors(self) -> torch.Tensor:
        return self.item_counts[:, None]                                  # (N, 1)

    def user_vectors(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return torch.ones(len(users), 1, device=items.device)             # (B, 1)

    def forward(self, batch):
        raise TypeError("popularity has no training step")

    def feature_tensors(self) -> dict[str, list[str]]:
        return {}                                                         # counts only: nothing to take away
