"""Text-graph hybrid in the spirit of AlphaRec (Sheng et al., ICLR 2025): language-model vectors, propagated.

No ID table. Layer 0 of an item is ``MLP(text_i)``, its frozen language-model vector
mapped by a trained MLP; layer 0 of a user is the mean of the mapped vectors of the
distinct items in their training history. Both are propagated over the symmetrically
normalised user–item graph of the training split (as in :mod:`recsys.models.lightgcn`)
and averaged over layers; scores are cosines divided by ``tau``, so the shared
``softmax`` loss is InfoNCE with temperature ``tau``. In training, each step's graph
leaves out the batch's own (user, target) edges: otherwise the user's layer 0 would
contain the target's text, and the model would learn to rank already-seen items first
(the pooled models leave the target out of the history for the same reason). Under DDP
each worker leaves out the edges of its own share of the batch.

Everything an item needs is its text: an item that was never trained on (a cold item,
or a catalogue from a new dataset) has no edge, so its final vector is its mapped
text vector (scaled, which a cosine ignores) and it is ranked by text alone. Trained
only on items with edges, the model places such vectors away from the users' (every
warm item's vector is mixed with its users' by propagation); ``cold_items`` makes a
share of each step's targets edge-less so that it learns to rank them.

>>> from recsys.models.base import Batch, tiny_inputs
>>> model = TextGraph(TextGraphConfig(dim=8, width=16), tiny_inputs(text_dim=5))
>>> out = model(Batch(torch.tensor([0, 1]), torch.tensor([2, 4])))
>>> out.queries.shape, out.targets.tolist(), out.items.shape
(torch.Size([2, 8]), [2, 3], torch.Size([4, 8]))
>>> model.feature_tensors()
{'text': ['item_text']}
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from recsys.errors import ConfigError
from recsys.models.base import Batch, ModelInputs, Output, Recommender, mlp, require_text
from recsys.models.lightgcn import GraphCache, interaction_pairs, normalized_adjacency, propagate, table_scorer


@dataclass
class TextGraphConfig:
    dim: int = 64                   # size of the mapped vectors
    width: int = 256                # hidden width of the text MLP
    depth: int = 1                  # hidden layers of the text MLP (0: one linear map)
    norm: str = "none"              # layer | none, inside the MLP
    dropout: float = 0.0            # inside the MLP
    layers: int = 2                 # propagation steps
    tau: float = 0.15               # softmax temperature over cosines (InfoNCE)
    cold_items: float = 0.0         # training: share of a step's distinct targets made edge-less (see forward)


def check_textgraph(config: TextGraphConfig) -> None:
    if config.norm not in ("layer", "none"):
        raise ConfigError(f"unknown norm {config.norm!r}", setting="model.textgraph.norm", hint="use layer or none")
    if config.dim < 1 or config.width < 1 or config.depth < 0 or config.layers < 0 or config.tau <= 0 \
            or not 0 <= config.dropout < 1:
        raise ConfigError("dim and width must be >= 1, depth and layers >= 0, tau > 0, dropout in [0, 1)",
                          setting="model.textgraph", hint="e.g. dim=64 width=256 depth=1 layers=2 tau=0.15")
    if not 0 <= config.cold_items <= 1:
        raise ConfigError(f"cold_items {config.cold_items} is not a share", setting="model.textgraph.cold_items",
                          hint="use a value in [0, 1], e.g. 0.1 (0: off)")


def graph_from_pairs(users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int) -> tuple:
    """(normalised adjacency (U+N, U+N), user-mean matrix (U, N): row u averages u's items) of distinct edges."""
    ones = torch.ones_like(users, dtype=torch.float32)
    degree = torch.zeros(n_users, device=users.device).index_add_(0, users, ones)      # (U,)
    mean = torch.sparse_coo_tensor(torch.stack([users, items]), 1.0 / degree[users], (n_users, n_items),
                                   check_invariants=False).coalesce()
    return normalized_adjacency(users, items, n_users, n_items), mean


def history_graph(indptr: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int) -> tuple:
    """The distinct (user, item) edges of CSR histories and :func:`graph_from_pairs` of them."""
    users, item_ids = interaction_pairs(indptr, items)
    return (users, item_ids), graph_from_pairs(users, item_ids, n_users, n_items)


class TextGraph(Recommender):
    def __init__(self, config: TextGraphConfig, inputs: ModelInputs) -> None:
        super().__init__(inputs)
        check_textgraph(config)
        require_text(inputs, "textgraph")
        self.config = config
        self.register_buffer("item_text", inputs.item_text.float().clone())
        self.text_mlp = mlp(inputs.text_dim, config.width, config.dim, config.depth, config.dropout, config.norm)
        self._graph = GraphCache(history_graph)

    def feature_tensors(self) -> dict[str, list[str]]:
        """Feature group -> this model's tensors (see the model contract): text only, no ID table."""
        return {"text": ["item_text"]}

    def _propagated(self, held_out: tuple[torch.Tensor, torch.Tensor] | None = None,
                    edgeless: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Final unit user (U, D) and item (N, D) vectors; ``held_out`` (users, items) edges and every edge of the
        ``edgeless`` items left out of the graph."""
        (users, items), (adjacency, user_mean) = self._graph.get(self.history_indptr, self.history_items,
                                                                 self.n_users, self.n_items)
        if held_out is not None or edgeless is not None:
            width = self.n_items
            keep = torch.ones_like(users, dtype=torch.bool)                                  # (E,)
            if held_out is not None:
                keep &= ~torch.isin(users * width + items, held_out[0] * width + held_out[1])
            if edgeless is not None:
                keep &= ~torch.isin(items, edgeless)
            adjacency, user_mean = graph_from_pairs(users[keep], items[keep], self.n_users, self.n_items)
        items0 = self.text_mlp(self.item_text)                            # (N, T) -> (N, D)
        users0 = torch.sparse.mm(user_mean, items0)                       # (U, N) @ (N, D) -> (U, D)
        final = propagate(adjacency, torch.cat([users0, items0]), self.config.layers)   # (U + N, D)
        final = F.normalize(final, dim=1)
        return final[:self.n_users], final[self.n_users:]

    def item_vectors(self) -> torch.Tensor:
        return self._propagated()[1]

    def user_vectors(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self._propagated()[0][users] / self.config.tau

    @torch.no_grad()
    def scorer(self):
        self.eval()
        return table_scorer(*self._propagated(), scale=1.0 / self.config.tau)     # cosines / tau

    def forward(self, batch: Batch) -> Output:
        targets = self.history_items[batch.positions]                     # (B,)
        # The batch's own (user, target) edges are left out of the graph, or a user's layer 0 would hold
        # the text of the very item it must predict (and the model learn to rank seen items first).
        # With cold_items, a share of the distinct targets also loses every edge: those steps train the
        # model to rank items the graph knows nothing about, as it must rank cold items (DropoutNet,
        # Volkovs et al. 2017). The share is drawn from torch's global generator.
        edgeless = None
        if self.training and self.config.cold_items > 0:
            distinct = torch.unique(targets)                              # (T,)
            edgeless = distinct[torch.rand(distinct.numel(), device=distinct.device) < self.config.cold_items]
        users_final, items = self._propagated((batch.users, targets), edgeless)
        queries = F.embedding(batch.users, users_final) / self.config.tau  # (B, D), deterministic backward
        return Output(queries, targets, items)
