"""What every model shares: its inputs, a training batch, and the one scoring interface.

Every model scores a user and an item with a dot product of two vectors:
``score(u, i) = user_vector(u) · item_vector(i)``. Training and evaluation use
the same two functions:

- ``forward(batch)`` returns :class:`Output`: one query vector per training
  target, the target items, and the table of every item's vector. Losses
  (``recsys.train.losses``) turn it into logits ``queries @ items.T``.
- ``scorer()`` computes the item table once and returns ``score(users) -> (B, n_items)``,
  the interface evaluation calls for every model.

A model keeps the training interactions it needs (each user's items in time order,
as CSR buffers) inside itself, so a checkpoint is self-contained and a batch is
only two index tensors. A batch names training examples by *position*: an index
into the flat, time-ordered item array. For pair models the example at position
``p`` is "predict ``items[p]`` from the rest of that user's history"; for sequence
models it is "the window of history that ends just before ``p``".

>>> inputs = tiny_inputs()
>>> inputs.n_users, inputs.n_items, inputs.history_items.tolist()
(2, 4, [0, 1, 2, 1, 3])
>>> gather_windows(inputs.history_indptr, inputs.history_items, torch.tensor([0, 1]),
...                torch.tensor([3, 5]), 2).tolist()
[[1, 2], [1, 3]]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn

from recsys.errors import ConfigError

PAD = -1          # item index of an empty history slot


@dataclass
class ModelInputs:
    """The data a model is built from (all tensors on CPU; the model copies them into buffers).

    Items ``0 .. n_warm_items - 1`` were seen in training; items from ``n_warm_items`` on
    are cold (catalogue-only or first seen in val/test) and have no trained ID embedding.
    """

    n_users: int
    n_items: int                       # every catalogue item with an index (warm + cold)
    n_warm_items: int
    history_indptr: torch.Tensor       # (n_users + 1,) int64: user u's items are history_items[indptr[u]:indptr[u+1]]
    history_items: torch.Tensor        # (nnz,) int64, each user's training items in time order
    item_counts: torch.Tensor          # (n_items,) float32 training interactions per item
    item_text: Optional[torch.Tensor] = None   # (n_items, d) float32 text vectors, or None

    @property
    def text_dim(self) -> int:
        return 0 if self.item_text is None else int(self.item_text.shape[1])

    def spec(self) -> dict:
        """Sizes that rebuild an empty model of the same shape (stored in checkpoints)."""
        return {"n_users": self.n_users, "n_items": self.n_items, "n_warm_items": self.n_warm_items,
                "nnz": int(self.history_items.numel()), "text_dim": self.text_dim}

    @classmethod
    def placeholder(cls, spec: dict) -> "ModelInputs":
        """Zero-filled inputs of the sizes in ``spec``; a checkpoint's state then fills them.

        >>> ModelInputs.placeholder(tiny_inputs().spec()).history_items.shape
        torch.Size([5])
        """
        text = torch.zeros(spec["n_items"], spec["text_dim"]) if spec["text_dim"] else None
        return cls(spec["n_users"], spec["n_items"], spec["n_warm_items"],
                   torch.zeros(spec["n_users"] + 1, dtype=torch.long),
                   torch.zeros(spec["nnz"], dtype=torch.long), torch.zeros(spec["n_items"]), text)


@dataclass
class Batch:
    """Training examples: ``users`` (B,) and ``positions`` (B,) into the flat history (see module doc)."""

    users: torch.Tensor
    positions: torch.Tensor

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(self.users.to(device), self.positions.to(device))


@dataclass
class Output:
    """What ``forward`` returns; a loss scores ``queries`` against ``items`` (``(M, D) @ (D, N)``)."""

    queries: torch.Tensor   # (M, D) one vector per training target
    targets: torch.Tensor   # (M,) the target item of each query
    items: torch.Tensor     # (N, D) every item's vector
    regularizer: Optional[torch.Tensor] = None   # (M,) a penalty per target the loss adds (e.g. lightgcn's L2)


def gather_windows(indptr: torch.Tensor, flat: torch.Tensor, users: torch.Tensor, ends: torch.Tensor,
                   length: int) -> torch.Tensor:
    """The last ``length`` items of each user's history before absolute position ``ends[b]``.

    Rows are left-aligned (oldest first) and padded on the right with ``PAD``.

    >>> indptr, flat = torch.tensor([0, 3]), torch.tensor([7, 8, 9])
    >>> gather_windows(indptr, flat, torch.tensor([0, 0]), torch.tensor([3, 1]), 2).tolist()
    [[8, 9], [7, -1]]
    """
    start = torch.maximum(indptr[users], ends - length)                   # (B,)
    offsets = torch.arange(length, device=flat.device)                    # (L,)
    pos = start[:, None] + offsets[None, :]                               # (B, L)
    valid = pos < ends[:, None]
    if flat.numel() == 0:
        return torch.full(pos.shape, PAD, dtype=torch.long, device=flat.device)
    items = flat[pos.clamp(max=flat.numel() - 1)]
    return torch.where(valid, items, torch.full_like(items, PAD))


def history_windows(indptr: torch.Tensor, flat: torch.Tensor, users: torch.Tensor, length: int,
                    exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Each user's most recent ``length`` training items, optionally without absolute position ``exclude``.

    Used by pooled models: the target of a training pair is removed from its own history.

    >>> indptr, flat = torch.tensor([0, 3]), torch.tensor([7, 8, 9])
    >>> history_windows(indptr, flat, torch.tensor([0]), 3, exclude=torch.tensor([1])).tolist()
    [[7, -1, 9]]
    """
    ends = indptr[users + 1]
    window = gather_windows(indptr, flat, users, ends, length)             # (B, L)
    if exclude is not None:
        start = torch.maximum(indptr[users], ends - length)
        pos = start[:, None] + torch.arange(length, device=flat.device)[None, :]
        window = torch.where(pos == exclude[:, None], torch.full_like(window, PAD), window)
    return window


def masked_mean(vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the rows where ``mask`` holds; zeros for an empty row.

    >>> masked_mean(torch.tensor([[[1.], [3.]], [[5.], [7.]]]), torch.tensor([[True, True], [False, False]])).tolist()
    [[2.0], [0.0]]
    """
    weights = mask.to(vectors.dtype)                                      # (B, L)
    total = (vectors * weights[..., None]).sum(dim=1)                     # (B, L, D) -> (B, D)
    return total / weights.sum(dim=1, keepdim=True).clamp(min=1.0)


def item_id_index(items: torch.Tensor, n_rows: int) -> torch.Tensor:
    """Row of an ID table with ``n_rows`` item rows: items below ``n_rows`` their own, others and PAD row ``n_rows``.

    That last row is the table's padding row (see :func:`id_embedding`): always zero, never trained.
    With ``n_rows = n_warm_items`` cold items land there.

    >>> item_id_index(torch.tensor([0, 2, 3, -1]), 3).tolist()
    [0, 2, 3, 3]
    """
    return torch.where((items >= 0) & (items < n_rows), items, torch.full_like(items, n_rows))


def id_embedding(n_rows: int, dim: int, init_std: float) -> nn.Embedding:
    """An ID table of ``n_rows`` rows plus a zero padding row (index ``n_rows``), normal init.

    >>> id_embedding(3, 2, 0.1).weight[3].tolist()
    [0.0, 0.0]
    """
    table = nn.Embedding(n_rows + 1, dim, padding_idx=n_rows)
    nn.init.normal_(table.weight, std=init_std)
    with torch.no_grad():
        table.weight[n_rows].zero_()
    return table


class Recommender(nn.Module):
    """Base class: buffers for the training history and the scoring interface.

    Subclasses set ``example_kind`` (``"pairs"`` or ``"windows"``), ``trainable``,
    and implement ``item_vectors()``, ``user_vectors(users, items)``, ``forward(batch)`` (or their
    own ``loss(batch, generator)``, then ``scorer()`` too) and ``feature_tensors()``; see
    :mod:`recsys.models.contract` for what each stage asks.
    """

    example_kind = "pairs"
    trainable = True
    window_length = 0          # sequence models: items per training window
    reads_history = False      # True: user_vectors read history_indptr/history_items, so a test query may be
                               # given the validation interactions after the training ones (evaluate/history.py)

    def __init__(self, inputs: ModelInputs) -> None:
        super().__init__()
        self.n_users, self.n_items, self.n_warm_items = inputs.n_users, inputs.n_items, inputs.n_warm_items
        self.spec = inputs.spec()
        self.register_buffer("history_indptr", inputs.history_indptr.long().clone())
        self.register_buffer("history_items", inputs.history_items.long().clone())
        self.register_buffer("item_counts", inputs.item_counts.float().clone())

    def item_vectors(self) -> torch.Tensor:
        """(n_items, D) vector of every item."""
        raise NotImplementedError

    def user_vectors(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B, D) vector of each user from their whole training history; ``items`` is ``item_vectors()``."""
        raise NotImplementedError

    @torch.no_grad()
    def scorer(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """Put the model in eval mode, compute the item table once, return ``score(users) -> (B, n_items)``."""
        self.eval()
        items = self.item_vectors()                                       # (N, D)
        items_t = items.T.contiguous()                                    # (D, N)
        device = items.device

        def score(users: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return self.user_vectors(users.to(device).long(), items) @ items_t   # (B, D) @ (D, N) -> (B, N)

        return score

    def score(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of every item for ``users``: ``(B, n_items)`` (recomputes the item table)."""
        return self.scorer()(users)

    def feature_tensors(self) -> dict[str, list[str]]:
        """Feature group -> names of the parameters/buffers carrying it (:mod:`recsys.models.contract`).

        The base class declares none; every model says which of its own tensors are its features.
        """
        return {}


def tiny_inputs(text_dim: int = 0, seed: int = 0) -> ModelInputs:
    """Two users, four items (item 3 seen once, all warm): the smallest input for examples.

    >>> tiny_inputs(text_dim=3).item_text.shape
    torch.Size([4, 3])
    """
    generator = torch.Generator().manual_seed(seed)
    text = torch.nn.functional.normalize(torch.randn(4, text_dim, generator=generator), dim=1) if text_dim else None
    return ModelInputs(n_users=2, n_items=4, n_warm_items=4,
                       history_indptr=torch.tensor([0, 3, 5]), history_items=torch.tensor([0, 1, 2, 1, 3]),
                       item_counts=torch.tensor([1.0, 2.0, 1.0, 1.0]), item_text=text)


def mlp(in_dim: int, width: int, out_dim: int, depth: int, dropout: float = 0.0, norm: str = "layer") -> nn.Module:
    """``depth`` hidden blocks (Linear → norm → GELU → Dropout) then a Linear to ``out_dim``.

    ``depth=0`` is one Linear layer. ``norm`` is ``"layer"`` or ``"none"``.

    >>> mlp(8, 16, 4, depth=2)(torch.zeros(3, 8)).shape
    torch.Size([3, 4])
    """
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(depth):
        layers += [nn.Linear(dim, width), nn.LayerNorm(width) if norm == "layer" else nn.Identity(),
                   nn.GELU(), nn.Dropout(dropout)]
        dim = width
    layers.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*layers)


def require_text(inputs: ModelInputs, model: str) -> None:
    """Raise a :class:`ConfigError` when a model that reads item text gets none."""
    if inputs.item_text is None:
        raise ConfigError(f"model '{model}' needs item text vectors but none were given",
                          setting="models",
                          hint="run the embed stage before train, or leave this model out of models=[...]")
    if inputs.item_text.shape[0] != inputs.n_items:
        raise ConfigError(f"item text vectors have {inputs.item_text.shape[0]} rows for {inputs.n_items} items",
                          setting="models", hint="build the vectors from this dataset's item map")
