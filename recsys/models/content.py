"""Content-based: items are their (projected) text vectors, a user is the mean of their history.

No ID parameters, so every item, cold or warm, is scored from its text alone.
``projection`` picks the item map: ``none`` (zero training: cosine between an item's
text vector and the user's mean history vector), ``linear`` or ``mlp`` (trained).
With ``normalize`` both sides are unit vectors and scores are cosines divided by
``temperature``.

>>> from recsys.models.base import tiny_inputs
>>> model = ContentModel(ContentConfig(projection="none"), tiny_inputs(text_dim=3))
>>> model.trainable, model.score(torch.tensor([0, 1])).shape
(False, torch.Size([2, 4]))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from recsys.errors import ConfigError
from recsys.models.base import (PAD, Batch, ModelInputs, Output, Recommender, history_windows, masked_mean, mlp,
                                 require_text)

PROJECTIONS = ("none", "linear", "mlp")


@dataclass
class ContentConfig:
    projection: str = "linear"      # none | linear | mlp
    dim: int = 64                   # output dimension (linear, mlp)
    width: int = 256                # hidden width (mlp)
    depth: int = 1                  # hidden layers (mlp)
    dropout: float = 0.0
    max_history: int = 100          # most recent training items pooled into the user vector
    normalize: bool = True
    temperature: float = 0.1


class ContentModel(Recommender):
    reads_history = True          # a query reads the user's history (test: train then val, evaluate/history.py)

    def __init__(self, config: ContentConfig, inputs: ModelInputs) -> None:
        super().__init__(inputs)
        require_text(inputs, "content")
        if config.projection not in PROJECTIONS:
            raise ConfigError(f"unknown projection {config.projection!r}", setting="model.content.projection",
                              hint=f"use one of {', '.join(PROJECTIONS)}")
        self.config = config
        self.register_buffer("item_text", inputs.item_text.float().clone())
        text_dim = inputs.text_dim
        if config.projection == "linear":
            self.project = nn.Linear(text_dim, config.dim, bias=False)
        elif config.projection == "mlp":
            self.project = mlp(text_dim, config.width, config.dim, config.depth, config.dropout)
        else:
            self.project = None
        self.trainable = self.project is not None
        self.scale = 1.0 / config.temperature if self.trainable else 1.0

    def feature_tensors(self) -> dict[str, list[str]]:
        return {"text": ["item_text"], "history_length": ["history_indptr", "history_items"]}

    def item_vectors(self) -> torch.Tensor:
        vectors = self.item_text if self.project is None else self.project(self.item_text)   # (N, T) -> (N, D)
        return F.normalize(vectors, dim=1) if self.config.normalize else vectors

    def _pool(self, users: torch.Tensor, items: torch.Tensor, exclude: torch.Tensor | None) -> torch.Tensor:
        history = history_windows(self.history_indptr, self.history_items, users,
                                  self.config.max_history, exclude)                    # (B, L)
        pooled = masked_mean(F.embedding(history.clamp(min=0), items), history != PAD)   # (B, L, D) -> (B, D)
        if self.config.normalize:
            pooled = F.normalize(pooled, dim=1)
        return pooled * self.scale

    def user_vectors(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self._pool(users, items, None)

    def forward(self, batch: Batch) -> Output:
        items = self.item_vectors()
        targets = self.history_items[batch.positions]
        return Output(self._pool(batch.users, items, batch.positions), targets, items)
