"""Two-tower hybrid: item tower over text + ID, user tower over the pooled history (+ user ID).

Item tower: ``e_i = MLP(text_i) + id(i)`` (either part can be switched off; cold
items have no ID row and are scored from their text). User tower: pool the
vectors of the user's history items (``mean`` or ``attention`` with a learned
query), then ``u = pooled + MLP(pooled)`` (+ a user ID vector). With
``normalize`` both are unit vectors and ``score = u · e / temperature``: a
softmax over items of cosine similarities, the seed's model. The towers' Linear
layers start from PyTorch's default init, or from N(0, ``mlp_init_std``) with zero
biases when that is set (a small value, with depth and ``norm="none"``, starves the
early layers of gradient: the diagnosis matrix's vanishing-gradient fault).

>>> from recsys.models.base import Batch, tiny_inputs
>>> model = TwoTower(TwoTowerConfig(dim=8, width=16), tiny_inputs(text_dim=5))
>>> out = model(Batch(torch.tensor([0, 1]), torch.tensor([0, 3])))
>>> out.queries.shape, out.targets.tolist(), out.items.shape
(torch.Size([2, 8]), [0, 1], torch.Size([4, 8]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from recsys.errors import ConfigError
from recsys.models.base import (PAD, Batch, ModelInputs, Output, Recommender, history_windows, id_embedding,
                                 item_id_index, masked_mean, mlp, require_text)

POOLINGS = ("mean", "attention")
HISTORY_VECTORS = ("shared", "separate")
NORMS = ("layer", "none")


@dataclass
class TwoTowerConfig:
    dim: int = 64                   # output vector size of both towers
    depth: int = 0                  # hidden layers of each tower's MLP (0: one linear layer)
    width: int = 256                # hidden width of the MLPs
    dropout: float = 0.1
    norm: str = "layer"             # layer | none, inside the MLPs
    normalize: bool = True          # unit-length outputs: scores are cosines / temperature
    temperature: float = 0.15
    use_text: bool = True           # item tower reads the text vector
    use_item_id: bool = True        # item tower adds a trained ID vector (warm items only)
    use_user_id: bool = False       # user tower adds a trained user ID vector
    item_bias: bool = False         # add a learned per-item score offset (ID part for warm items + text part)
    history_vectors: str = "shared"  # shared: history items use the item tower | separate: their own tower (as FISM)
    pooling: str = "mean"           # mean | attention over the history's item vectors
    max_history: int = 100          # most recent training items pooled
    history_dropout: float = 0.5    # training only: drop each history item with this probability
    id_dropout: float = 0.0         # training only: drop each item's ID vector (text only) with this probability
    init_std: float = 0.02          # ID embeddings
    mlp_init_std: Optional[float] = None   # weights of the towers' Linear layers ~ N(0, std), biases 0;
                                           # None: PyTorch's default (uniform, scaled by fan-in)


def check_two_tower(config: TwoTowerConfig) -> None:
    """Reject impossible settings, naming them."""
    if config.pooling not in POOLINGS:
        raise ConfigError(f"unknown pooling {config.pooling!r}", setting="model.two_tower.pooling",
                          hint=f"use one of {', '.join(POOLINGS)}")
    if config.history_vectors not in HISTORY_VECTORS:
        raise ConfigError(f"unknown history_vectors {config.history_vectors!r}",
                          setting="model.two_tower.history_vectors", hint=f"use one of {', '.join(HISTORY_VECTORS)}")
    if config.norm not in NORMS:
        raise ConfigError(f"unknown norm {config.norm!r}", setting="model.two_tower.norm",
                          hint=f"use one of {', '.join(NORMS)}")
    if not (config.use_text or config.use_item_id):
        raise ConfigError("the item tower has no input", setting="model.two_tower.use_text",
                          hint="set use_text=true or use_item_id=true")
    if config.mlp_init_std is not None and not config.mlp_init_std > 0:
        raise ConfigError(f"mlp_init_std must be > 0 or null, got {config.mlp_init_std!r}",
                          setting="model.two_tower.mlp_init_std", hint="e.g. 0.02, or null for PyTorch's default")
    if config.depth < 0 or config.dim < 1 or config.temperature <= 0 or not 0 <= config.history_dropout < 1 \
            or not 0 <= config.id_dropout < 1:
        raise ConfigError("depth must be >= 0, dim >= 1, temperature > 0, history_dropout and id_dropout in [0, 1)",
                          setting="model.two_tower", hint="e.g. depth=1 dim=64 temperature=0.1")


def init_linear_layers(module: nn.Module, std: float) -> None:
    """Every Linear layer of ``module``: weights drawn from N(0, std), biases zero.

    >>> tower = mlp(64, 256, 4, depth=2)
    >>> init_linear_layers(tower, 1e-3)
    >>> weight = tower[0].weight.detach()           # (256, 64): 16,384 draws
    >>> bool(0.9e-3 < float(weight.std()) < 1.1e-3), float(tower[0].bias.detach().abs().max())
    (True, 0.0)
    """
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, std=std)
            nn.init.zeros_(layer.bias)


class TwoTower(Recommender):
    reads_history = True          # a query reads the user's history (test: train then val, evaluate/history.py)

    def __init__(self, config: TwoTowerConfig, inputs: ModelInputs) -> None:
        super().__init__(inputs)
        check_two_tower(config)
        self.config = config
        d = config.dim
        # With text, cold items share the ID tables' zero padding row and are scored from text alone;
        # without, every item has a row (cold rows are only ever negatives, like MF's).
        self.id_rows = inputs.n_warm_items if config.use_text else inputs.n_items
        if config.use_text:
            require_text(inputs, "two_tower")
            self.register_buffer("item_text", inputs.item_text.float().clone())
            self.item_tower = mlp(inputs.text_dim, config.width, d, config.depth, config.dropout, config.norm)
        if config.use_item_id:
            self.item_id = id_embedding(self.id_rows, d, config.init_std)
        if config.history_vectors == "separate":
            if config.use_text:
                self.history_tower = mlp(inputs.text_dim, config.width, d, config.depth, config.dropout, config.norm)
            if config.use_item_id:
                self.history_id = id_embedding(self.id_rows, d, config.init_std)
        if config.item_bias:
            self.bias_rows = inputs.n_warm_items if config.use_text else inputs.n_items   # as the ID rows
            self.bias_id = id_embedding(self.bias_rows, 1, 0.0)
            if config.use_text:
                self.bias_text = nn.Linear(inputs.text_dim, 1)
        if config.use_user_id:
            self.user_id = nn.Embedding(inputs.n_users, d)
            nn.init.normal_(self.user_id.weight, std=config.init_std)
        if config.pooling == "attention":
            self.attention_key = nn.Linear(d, d)
            self.attention_query = nn.Parameter(torch.zeros(d))
        self.user_tower = mlp(d, config.width, d, config.depth, config.dropout, config.norm)
        if config.mlp_init_std is not None:
            for name in ("item_tower", "history_tower", "user_tower"):
                if hasattr(self, name):
                    init_linear_layers(getattr(self, name), config.mlp_init_std)

    def _encode_items(self, tower: nn.Module | None, ids: nn.Embedding | None) -> torch.Tensor:
        vectors = 0.0
        if tower is not None:
            vectors = tower(self.item_text)                                # (N, T) -> (N, D)
        if ids is not None:
            all_items = torch.arange(self.n_items, device=self.item_counts.device)
            id_vectors = ids(item_id_index(all_items, self.id_rows))          # (N, D)
            if self.training and self.config.id_dropout > 0:
                keep = torch.rand(self.n_items, 1, device=id_vectors.device) >= self.config.id_dropout
                id_vectors = id_vectors * keep / (1.0 - self.config.id_dropout)
            vectors = vectors + id_vectors
        return F.normalize(vectors, dim=1) if self.config.normalize else vectors

    def _history_table(self, items: torch.Tensor) -> torch.Tensor:
        """(N, D) vectors pooled for the history: the item vectors, or the separate history tower's."""
        if self.config.history_vectors == "shared":
            return items[:, :self.config.dim]
        return self._encode_items(getattr(self, "history_tower", None), getattr(self, "history_id", None))

    def feature_tensors(self) -> dict[str, list[str]]:
        c = self.config
        items = [name for name, on in (("item_id.weight", c.use_item_id),
                                       ("history_id.weight", c.use_item_id and c.history_vectors == "separate"),
                                       ("bias_id.weight", c.item_bias)) if on]
        groups = {"text": ["item_text"]} if c.use_text else {}
        if items:
            groups["item_id"] = items
        if c.use_user_id:
            groups["user_id"] = ["user_id.weight"]
        groups["history_length"] = ["history_indptr", "history_items"]
        return groups

    def item_vectors(self) -> torch.Tensor:
        vectors = self._encode_items(getattr(self, "item_tower", None), getattr(self, "item_id", None))
        if not self.config.item_bias:
            return vectors
        all_items = torch.arange(self.n_items, device=self.item_counts.device)
        bias = self.bias_id(item_id_index(all_items, self.bias_rows))                      # (N, 1)
        if self.config.use_text:
            bias = bias + self.bias_text(self.item_text)
        return torch.cat([vectors, bias], dim=1)                                          # (N, D + 1)

    def _pool(self, history: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        mask = history != PAD                                             # (B, L)
        if self.training and self.config.history_dropout > 0:
            mask = mask & (torch.rand(mask.shape, device=mask.device) >= self.config.history_dropout)
        vectors = F.embedding(history.clamp(min=0), items)                # (B, L, D); deterministic backward
        if self.config.pooling == "mean":
            return masked_mean(vectors, mask)
        logits = self.attention_key(vectors) @ self.attention_query / math.sqrt(vectors.shape[-1])   # (B, L)
        logits = logits.masked_fill(~mask, -1e9)                          # finite: an empty history stays NaN-free
        weights = torch.softmax(logits, dim=1) * mask                     # empty history: all zero
        return (weights[..., None] * vectors).sum(dim=1)                  # (B, L, 1) * (B, L, D) -> (B, D)

    def _user(self, users: torch.Tensor, items: torch.Tensor, exclude: torch.Tensor | None) -> torch.Tensor:
        history = history_windows(self.history_indptr, self.history_items, users, self.config.max_history, exclude)
        pooled = self._pool(history, self._history_table(items))          # (B, D)
        vectors = pooled + self.user_tower(pooled)
        if self.config.use_user_id:
            vectors = vectors + self.user_id(users)
        if self.config.normalize:
            vectors = F.normalize(vectors, dim=1)
        vectors = vectors / self.config.temperature
        if self.config.item_bias:
            vectors = torch.cat([vectors, torch.ones_like(vectors[:, :1])], dim=1)        # (B, D + 1): · [e, b]
        return vectors

    def user_vectors(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self._user(users, items, None)

    def forward(self, batch: Batch) -> Output:
        items = self.item_vectors()
        targets = self.history_items[batch.positions]
        return Output(self._user(batch.users, items, batch.positions), targets, items)
