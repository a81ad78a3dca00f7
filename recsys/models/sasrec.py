"""SASRec: causal self-attention over the user's recent items predicts the next one.

Item vectors ``e_i = id(i) + W text_i`` serve both as the input tokens and as the
output table (shared, as in SASRec). A training example is a window of ``max_len + 1``
consecutive history items: position ``t`` reads items ``0..t`` and predicts item
``t + 1``. A user's vector for scoring is the output at the last item of their
training history. Windows are left-aligned and padded on the right, so causal
attention never lets a real position see padding.

>>> from recsys.models.base import Batch, tiny_inputs
>>> model = SASRec(SASRecConfig(dim=8, heads=2, max_len=3), tiny_inputs(text_dim=5))
>>> out = model(Batch(torch.tensor([0, 1]), torch.tensor([3, 5])))   # windows ending at each user's end
>>> out.queries.shape, out.targets.tolist()
(torch.Size([3, 8]), [1, 2, 3])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from recsys.errors import ConfigError
from recsys.models.base import (PAD, Batch, ModelInputs, Output, Recommender, gather_windows, id_embedding,
                                 item_id_index, require_text)


@dataclass
class SASRecConfig:
    dim: int = 64
    layers: int = 2
    heads: int = 2
    dropout: float = 0.5
    max_len: int = 200              # items a window reads (the training window holds max_len + 1)
    use_text: bool = True           # item vectors add a projection of the text vector
    use_item_id: bool = True        # item vectors add a trained ID vector (warm items when use_text)
    init_std: float = 0.02


def check_sasrec(config: SASRecConfig) -> None:
    if config.dim % config.heads:
        raise ConfigError(f"dim {config.dim} is not divisible by heads {config.heads}", setting="model.sasrec.heads",
                          hint="pick heads that divide dim")
    if not (config.use_text or config.use_item_id):
        raise ConfigError("items have no input vector", setting="model.sasrec.use_text",
                          hint="set use_text=true or use_item_id=true")
    if config.max_len < 1 or config.layers < 1:
        raise ConfigError("max_len and layers must be >= 1", setting="model.sasrec", hint="e.g. max_len=50 layers=2")


def trim_padding(windows: torch.Tensor, least: int) -> torch.Tensor:
    """Left-aligned windows without the padding columns that no row reaches (at least ``least`` columns).

    Causal attention lets a real position see only earlier ones, so the padding on the right
    changes no real position's output: cutting it saves the work on histories shorter than
    ``max_len`` and gives the same outputs.

    >>> trim_padding(torch.tensor([[4, 5, PAD, PAD], [6, PAD, PAD, PAD]]), 1).tolist()
    [[4, 5], [6, -1]]
    """
    width = int((windows != PAD).sum(dim=1).max()) if windows.numel() else 0
    return windows[:, :max(width, least)]


class SASRec(Recommender):
    example_kind = "windows"
    reads_history = True          # a query reads the user's history (test: train then val, evaluate/history.py)

    def __init__(self, config: SASRecConfig, inputs: ModelInputs) -> None:
        super().__init__(inputs)
        check_sasrec(config)
        self.config = config
        self.window_length = config.max_len + 1
        d = config.dim
        if config.use_text:
            require_text(inputs, "sasrec")
            self.register_buffer("item_text", inputs.item_text.float().clone())
            self.text_projection = nn.Linear(inputs.text_dim, d, bias=False)
        if config.use_item_id:
            self.id_rows = inputs.n_warm_items if config.use_text else inputs.n_items
            self.item_id = id_embedding(self.id_rows, d, config.init_std)
        self.position = nn.Embedding(config.max_len, d)
        nn.init.normal_(self.position.weight, std=config.init_std)
        layer = nn.TransformerEncoderLayer(d, config.heads, dim_feedforward=d, dropout=config.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.input_dropout = nn.Dropout(config.dropout)
        self.final_norm = nn.LayerNorm(d)

    def _embed(self, items: torch.Tensor) -> torch.Tensor:
        """Vectors of ``items`` (any shape, PAD allowed -> zero vector): (..., D)."""
        vectors = 0.0
        valid = items != PAD
        if self.config.use_text:
            text = self.item_text[items.clamp(min=0)] * valid[..., None]             # (..., T)
            vectors = self.text_projection(text)                                     # (..., D)
        if self.config.use_item_id:
            vectors = vectors + self.item_id(item_id_index(items, self.id_rows))
        return vectors

    def feature_tensors(self) -> dict[str, list[str]]:
        groups = {"text": ["item_text"]} if self.config.use_text else {}
        if self.config.use_item_id:
            groups["item_id"] = ["item_id.weight"]
        groups["history_length"] = ["history_indptr", "history_items"]
        return groups

    def item_vectors(self) -> torch.Tensor:
        return self._embed(torch.arange(self.n_items, device=self.item_counts.device))   # (N, D)

    def _encode(self, sequence: torch.Tensor) -> torch.Tensor:
        """(B, L) item indices, left-aligned -> (B, L, D) causal outputs."""
        length = sequence.shape[1]
        x = self._embed(sequence) * math.sqrt(self.config.dim)                        # (B, L, D)
        x = self.input_dropout(x + self.position.weight[:length])
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=x.device)
        return self.final_norm(self.encoder(x, mask=causal, is_causal=True))

    def user_vectors(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        ends = self.history_indptr[users + 1]
        sequence = trim_padding(gather_windows(self.history_indptr, self.history_items, users, ends,
                                               self.config.max_len), 1)             # (B, L' <= L)
        hidden = self._encode(sequence)                                               # (B, L, D)
        last = ((sequence != PAD).sum(dim=1) - 1).clamp(min=0)                        # (B,)
        return hidden[torch.arange(len(users), device=hidden.device), last]           # (B, D)

    def forward(self, batch: Batch) -> Output:
        window = trim_padding(gather_windows(self.history_indptr, self.history_items, batch.users,
                                             batch.positions, self.window_length), 2)  # (B, L' + 1 <= L + 1)
        inputs, targets = window[:, :-1], window[:, 1:]
        hidden = self._encode(inputs)                                                 # (B, L, D)
        valid = targets != PAD
        return Output(hidden[valid], targets[valid], self.item_vectors())
