"""NeuMF: a generalised matrix factorisation (GMF) branch and an MLP branch over user and item
embeddings, fused by one output layer (He et al., "Neural Collaborative Filtering", WWW 2017).

``score(u, i) = w · [p_u ⊙ q_i ; MLP([p'_u ; q'_i])]``. The score is not a dot product of a
user vector and an item vector, so the shared dot-product losses cannot train it: the model
brings its own ``loss(batch, generator)``, binary cross-entropy of each training pair against
``negatives`` items drawn uniformly (the paper's pointwise log loss). Everything else, the
training history buffers, ``example_kind`` and the checkpoint sizes, comes from recsys's base
class. The model satisfies recsys's contract (``recsys.models.contract``):

- ``scorer()``: ``score(users) -> (B, n_items)``, computed in item chunks;
- ``loss(batch, generator) -> (B,)``: one loss per training target;
- ``feature_tensors()``: which tables are item IDs and user IDs (for feature importance and
  embedding health).

>>> import torch
>>> from recsys.models.base import Batch, tiny_inputs
>>> model = NeuMF(NeuMFConfig(dim=4, mlp_width=8), tiny_inputs())
>>> model.loss(Batch(torch.tensor([0, 1]), torch.tensor([1, 4])), torch.Generator().manual_seed(0)).shape
torch.Size([2])
>>> model.scorer()(torch.tensor([0, 1])).shape
torch.Size([2, 4])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from recsys.models.base import Batch, ModelInputs, Recommender


@dataclass
class NeuMFConfig:
    """``model.neumf.<param>``: sizes of both branches and the negatives per training pair."""

    dim: int = 32                 # GMF and MLP embedding width
    mlp_width: int = 64           # hidden width of the MLP branch
    mlp_layers: int = 2           # hidden layers of the MLP branch
    dropout: float = 0.0
    negatives: int = 4            # uniform negatives per training pair (the paper uses 4)
    init_std: float = 0.05
    score_chunk_items: int = 4096  # items scored at once by scorer()


class NeuMF(Recommender):
    """GMF ⊙ branch + MLP branch, fused; trained by its own pointwise loss."""

    Config = NeuMFConfig          # what recsys builds `model.neumf.*` settings from
    search_space = {              # what the tune stage may search (tune.space.model.neumf overrides it)
        "dim": {"type": "choice", "values": [16, 32, 64]},
        "mlp_width": {"type": "choice", "values": [32, 64, 128]},
        "negatives": {"type": "int", "low": 2, "high": 8},
        "dropout": {"type": "uniform", "low": 0.0, "high": 0.3},
    }

    def __init__(self, config: NeuMFConfig, inputs: ModelInputs) -> None:
        super().__init__(inputs)
        self.config = config
        d = config.dim
        self.user_gmf = nn.Embedding(inputs.n_users, d)
        self.item_gmf = nn.Embedding(inputs.n_items, d)
        self.user_mlp = nn.Embedding(inputs.n_users, d)
        self.item_mlp = nn.Embedding(inputs.n_items, d)
        for table in (self.user_gmf, self.item_gmf, self.user_mlp, self.item_mlp):
            nn.init.normal_(table.weight, std=config.init_std)
        layers: list[nn.Module] = []
        width = 2 * d
        for _ in range(config.mlp_layers):
            layers += [nn.Linear(width, config.mlp_width), nn.ReLU(), nn.Dropout(config.dropout)]
            width = config.mlp_width
        self.mlp = nn.Sequential(*layers)
        self.output = nn.Linear(d + width, 1)

    def feature_tensors(self) -> dict[str, list[str]]:
        return {"item_id": ["item_gmf.weight", "item_mlp.weight"], "user_id": ["user_gmf.weight", "user_mlp.weight"]}

    def pair_scores(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of (user, item) pairs of any matching shape ``(...)``."""
        gmf = self.user_gmf(users) * self.item_gmf(items)                              # (..., D)
        mlp = self.mlp(torch.cat([self.user_mlp(users), self.item_mlp(items)], dim=-1))  # (..., W)
        return self.output(torch.cat([gmf, mlp], dim=-1)).squeeze(-1)                 # (...)

    def loss(self, batch: Batch, generator: torch.Generator) -> torch.Tensor:
        """Binary cross-entropy of each target (label 1) and ``negatives`` uniform items (label 0): ``(B,)``."""
        users = batch.users                                                            # (B,)
        targets = self.history_items[batch.positions]                                  # (B,)
        drawn = torch.randint(0, self.n_items, (len(users), self.config.negatives), generator=generator)
        negatives = drawn.to(users.device)                                             # (B, S)
        positive = self.pair_scores(users, targets)                                    # (B,)
        negative = self.pair_scores(users[:, None].expand_as(negatives), negatives)    # (B, S)
        return F.softplus(-positive) + F.softplus(negative).sum(dim=1)                 # -log σ(s+) - Σ log σ(-s-)

    @torch.no_grad()
    def scorer(self) -> Callable[[torch.Tensor], torch.Tensor]:
        self.eval()
        items = torch.arange(self.n_items, device=self.item_gmf.weight.device)         # (N,)
        chunk = max(1, self.config.score_chunk_items)

        def score(users: torch.Tensor) -> torch.Tensor:
            users = users.to(items.device).long()                                      # (B,)
            parts = []
            for start in range(0, self.n_items, chunk):
                block = items[start:start + chunk]                                     # (C,)
                parts.append(self.pair_scores(users[:, None].expand(-1, len(block)), block[None, :].expand(len(users), -1)))
            return torch.cat(parts, dim=1)                                             # (B, N)

        return score
