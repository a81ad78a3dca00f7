"""LightGCN (He et al., SIGIR 2020): ID embeddings propagated over the user–item graph.

Layer 0 holds one trained vector per user and per warm item (cold items, index
``>= n_warm_items``, get a zero row: they have no edge and no trained vector).
Layer ``k + 1`` is ``Â · E_k`` with ``Â = D^-1/2 A D^-1/2`` the symmetrically
normalised adjacency of the bipartite graph of the training interactions
(one edge per distinct user–item pair); the final vectors are the mean of layers
``0 .. layers``. ``score(u, i) = e_u · e_i``, trained by the shared losses
(``train.loss``). ``l2`` adds ``l2 * (|e_u^0|^2 + |e_i^0|^2) / 2`` per training
target (the layer-0 rows of the batch's users and target items).

The graph is built from the model's training-history buffers on first use (and
again whenever those buffers change, e.g. after ``load_state_dict``), so a
checkpoint is self-contained.

>>> from recsys.models.base import Batch, tiny_inputs
>>> model = LightGCN(LightGCNConfig(dim=8, layers=2), tiny_inputs())
>>> out = model(Batch(torch.tensor([0, 1]), torch.tensor([2, 4])))
>>> out.queries.shape, out.targets.tolist(), out.items.shape, out.regularizer.shape
(torch.Size([2, 8]), [2, 3], torch.Size([4, 8]), torch.Size([2]))
>>> a = normalized_adjacency(torch.tensor([0, 1]), torch.tensor([0, 0]), n_users=2, n_items=1)
>>> (a.to_dense() ** 2).round(decimals=4).tolist()   # two users of degree 1, one item of degree 2
[[0.0, 0.0, 0.5], [0.0, 0.0, 0.5], [0.5, 0.5, 0.0]]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from recsys.errors import ConfigError
from recsys.models.base import Batch, ModelInputs, Output, Recommender, id_embedding, item_id_index


@dataclass
class LightGCNConfig:
    dim: int = 64
    layers: int = 3                 # propagation steps (0: plain MF without a bias)
    l2: float = 1e-4                # weight of the L2 penalty on the batch's layer-0 rows
    init_std: float = 0.1


def check_lightgcn(config: LightGCNConfig, name: str = "lightgcn") -> None:
    if config.dim < 1 or config.layers < 0 or config.l2 < 0 or config.init_std <= 0:
        raise ConfigError("dim must be >= 1, layers >= 0, l2 >= 0 and init_std > 0", setting=f"model.{name}",
                          hint="e.g. dim=64 layers=3 l2=1e-4")


def interaction_pairs(indptr: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct (user, item) pairs of CSR training histories, as two (E,) tensors.

    >>> interaction_pairs(torch.tensor([0, 3, 4]), torch.tensor([2, 0, 2, 1]))
    (tensor([0, 0, 1]), tensor([0, 2, 1]))
    """
    items = items[:int(indptr[-1])]                                       # (a placeholder's indptr is all zero)
    users = torch.repeat_interleave(torch.arange(len(indptr) - 1, device=indptr.device), indptr.diff())
    width = int(items.max()) + 1 if items.numel() else 1
    keys = torch.unique(users * width + items)                            # sorted, distinct
    return keys // width, keys % width


def normalized_adjacency(users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int) -> torch.Tensor:
    """``D^-1/2 A D^-1/2`` of the bipartite graph, (U + I, U + I) sparse; nodes: users, then items.

    ``users``/``items`` are the (E,) endpoints of distinct edges; a node without an edge has a zero row.
    """
    n = n_users + n_items
    rows = torch.cat([users, items + n_users])                            # (2E,) both directions
    cols = torch.cat([items + n_users, users])
    degree = torch.zeros(n, device=users.device).index_add_(0, rows, torch.ones_like(rows, dtype=torch.float32))
    inv_sqrt = torch.where(degree > 0, degree.clamp(min=1).rsqrt(), torch.zeros_like(degree))
    values = inv_sqrt[rows] * inv_sqrt[cols]                              # (2E,)
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n, n), check_invariants=False).coalesce()


def propagate(adjacency: torch.Tensor, layer0: torch.Tensor, layers: int) -> torch.Tensor:
    """Mean of ``layer0, Â layer0, ..., Â^layers layer0``: (U + I, D) -> (U + I, D).

    >>> a = normalized_adjacency(torch.tensor([0]), torch.tensor([0]), 1, 1)
    >>> propagate(a, torch.tensor([[1.0], [3.0]]), 1).tolist()      # ([1, 3] + [3, 1]) / 2
    [[2.0], [2.0]]
    """
    total, current = layer0, layer0
    for _ in range(layers):
        current = torch.sparse.mm(adjacency, current)                     # (U+I, U+I) @ (U+I, D)
        total = total + current
    return total / (layers + 1)


def graph_of(indptr: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int) -> torch.Tensor:
    """The normalised adjacency of CSR training histories (see :func:`normalized_adjacency`)."""
    users, item_ids = interaction_pairs(indptr, items)
    return normalized_adjacency(users, item_ids, n_users, n_items)


class GraphCache:
    """What ``build(indptr, items, n_users, n_items)`` makes of a model's history buffers, rebuilt when they change.

    The key is the buffers' storage and version counters, so ``load_state_dict`` (an in-place
    copy) or a swapped-in buffer (diagnosis) rebuilds it.
    """

    def __init__(self, build: Callable = graph_of) -> None:
        self.build = build
        self.key: tuple | None = None
        self.value = None

    def get(self, indptr: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int):
        key = (indptr.data_ptr(), indptr._version, items.data_ptr(), items._version, items.numel(),
               str(items.device))
        if key != self.key:
            self.value = self.build(indptr, items, n_users, n_items)
            self.key = key
        return self.value


class LightGCN(Recommender):
    def __init__(self, config: LightGCNConfig, inputs: ModelInputs) -> None:
        super().__init__(inputs)
        check_lightgcn(config)
        self.config = config
        self.user_embedding = nn.Embedding(inputs.n_users, config.dim)
        nn.init.normal_(self.user_embedding.weight, std=config.init_std)
        self.item_embedding = id_embedding(inputs.n_warm_items, config.dim, config.init_std)   # + zero cold row
        self._graph = GraphCache()

    def feature_tensors(self) -> dict[str, list[str]]:
        """Feature group -> this model's tensors (see the model contract)."""
        return {"user_id": ["user_embedding.weight"], "item_id": ["item_embedding.weight"]}

    def _layer0_items(self) -> torch.Tensor:
        all_items = torch.arange(self.n_items, device=self.item_counts.device)
        return self.item_embedding(item_id_index(all_items, self.n_warm_items))   # (N, D), cold rows zero

    def _propagated(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final user (U, D) and item (N, D) vectors."""
        adjacency = self._graph.get(self.history_indptr, self.history_items, self.n_users, self.n_items)
        layer0 = torch.cat([self.user_embedding.weight, self._layer0_items()])    # (U + N, D)
        final = propagate(adjacency, layer0, self.config.layers)
        return final[:self.n_users], final[self.n_users:]

    def item_vectors(self) -> torch.Tensor:
        return self._propagated()[1]

    @torch.no_grad()
    def scorer(self):
        self.eval()
        return table_scorer(*self._propagated())

    def user_vectors(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self._propagated()[0][users]

    def forward(self, batch: Batch) -> Output:
        users_final, items = self._propagated()
        targets = self.history_items[batch.positions]                     # (B,)
        queries = nn.functional.embedding(batch.users, users_final)      # (B, D), deterministic backward
        penalty = None
        if self.config.l2 > 0:
            u0 = self.user_embedding(batch.users)                          # (B, D)
            i0 = self.item_embedding(item_id_index(targets, self.n_warm_items))
            penalty = self.config.l2 * 0.5 * (u0.pow(2).sum(dim=1) + i0.pow(2).sum(dim=1))   # (B,)
        return Output(queries, targets, items, regularizer=penalty)


def table_scorer(users_final: torch.Tensor, items: torch.Tensor, scale: float = 1.0):
    """``score(users) -> (B, N)`` from propagated tables computed once: ``scale * users_final[users] @ items.T``.

    >>> table_scorer(torch.eye(2), torch.tensor([[1.0, 0.0], [0.0, 2.0]]), scale=0.5)(torch.tensor([1])).tolist()
    [[0.0, 1.0]]
    """
    items_t = items.T.contiguous()                                        # (D, N)

    def score(users: torch.Tensor) -> torch.Tensor:
        return users_final[users.to(items.device).long()] @ items_t * scale   # (B, D) @ (D, N) -> (B, N)

    return score
