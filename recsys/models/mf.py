"""Matrix factorisation: one learned vector per user and per item, pure collaborative filtering.

``score(u, i) = p_u · q_i + b_i``. The item bias is folded into the dot product
(item vector ``[q_i, b_i]``, user vector ``[p_u, 1]``), so MF uses the same
interface as every other model. Items first seen after training have rows that
only ever appear as negatives, so they rank low, as an unseen item should.

>>> from recsys.models.base import Batch, tiny_inputs
>>> model = MatrixFactorization(MFConfig(dim=8), tiny_inputs())
>>> out = model(Batch(torch.tensor([0, 1]), torch.tensor([2, 4])))
>>> out.queries.shape, out.targets.tolist(), out.items.shape
(torch.Size([2, 9]), [2, 3], torch.Size([4, 9]))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from recsys.models.base import Batch, ModelInputs, Output, Recommender


@dataclass
class MFConfig:
    dim: int = 64
    init_std: float = 0.1
    item_bias: bool = True


class MatrixFactorization(Recommender):
    def __init__(self, config: MFConfig, inputs: ModelInputs) -> None:
        super().__init__(inputs)
        self.config = config
        self.user_embedding = nn.Embedding(inputs.n_users, config.dim)
        self.item_embedding = nn.Embedding(inputs.n_items, config.dim)
        nn.init.normal_(self.user_embedding.weight, std=config.init_std)
        nn.init.normal_(self.item_embedding.weight, std=config.init_std)
        self.item_bias = nn.Embedding(inputs.n_items, 1) if config.item_bias else None
        if self.item_bias is not None:
            nn.init.zeros_(self.item_bias.weight)

    def feature_tensors(self) -> dict[str, list[str]]:
        items = ["item_embedding.weight"] + (["item_bias.weight"] if self.item_bias is not None else [])
        return {"item_id": items, "user_id": ["user_embedding.weight"]}

    def item_vectors(self) -> torch.Tensor:
        items = self.item_embedding.weight                                # (N, D)
        if self.item_bias is None:
            return items
        return torch.cat([items, self.item_bias.weight], dim=1)           # (N, D + 1)

    def user_vectors(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        vectors = self.user_embedding(users)                              # (B, D)
        if self.item_bias is None:
            return vectors
        return torch.cat([vectors, torch.ones_like(vectors[:, :1])], dim=1)   # (B, D + 1)

    def forward(self, batch: Batch) -> Output:
        items = self.item_vectors()
        targets = self.history_items[batch.positions]                     # (B,)
        return Output(self.user_vectors(batch.users, items), targets, items)
