"""``finetune``: a two-tower recommender whose item tower runs the language model's top layers itself.

Item tower: ``e_i = normalize(W · pool(top_k(S_i)) + id(i))``, where ``S_i`` are
item ``i``'s token states entering layer ``L - k``, cached once per catalogue by
:mod:`recsys.embed.tokens`, ``top_k`` the encoder's top ``k`` transformer layers
(trained), ``pool`` mean or [CLS]. ``train_layers = 0`` is the frozen encoder
(only ``W`` and the ID vectors train); a value at or above the encoder's layer count
(e.g. 99) trains every transformer layer (the word embeddings stay frozen: their
output is what is cached).

User tower, as ``two_tower`` with ``history_vectors=separate``: the mean over the
user's last ``max_history`` training items of ``V · pretrained_i + hid(i)``, then
``u + MLP(u)``, normalised and divided by ``temperature``. The history uses the
*pretrained* text vectors, so a training step runs the encoder only on the batch's
target items and ``negatives`` shared sampled items, never on whole histories.

Training (``forward``): the loss is a softmax over the batch's distinct items
(targets plus the sampled negatives, drawn from torch's RNG, which the loop seeds
per epoch): ``Output.items`` holds only those items and ``Output.targets`` indexes
into them, so train with ``train.loss=softmax`` (the default). Validation and
evaluation (``item_vectors``) re-encode the whole catalogue with the current layers,
``encode_batch`` items at a time.

Buffers: the token states are *not* saved in checkpoints (they are large:
N x max_tokens x hidden floats); ``token_cache`` names their cache directory, the
train stage fills it, and :func:`~recsys.train.checkpoint.load_model` reads them
back from there. Settings that need other states (``train_layers``, ``max_tokens``,
``pooling`` changed by a search) derive them from the texts kept in that cache, once.
Checkpoints hold the trained layers, the projections and IDs.

Learning rates: :meth:`FineTune.optimizer_groups` puts each trained block in its
own group at ``encoder_lr * layer_decay**depth`` (depth 0 = top block) with a
linear warm-up over ``warmup_steps``; everything else trains at ``train.lr``.

>>> # model = FineTune(FineTuneConfig(token_cache=tokens.directory), inputs)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from recsys.embed.encoder import pool
from recsys.embed.tokens import (ItemTokens, derive_item_tokens, load_encoder, load_item_tokens, resolve_layers,
                                 run_layers)
from recsys.errors import ConfigError
from recsys.models.base import (PAD, Batch, ModelInputs, Output, Recommender, history_windows, id_embedding,
                                 item_id_index, masked_mean, mlp)

POOLINGS = ("mean", "cls")
PROBE_ITEMS = 256          # items whose per-layer representations are compared with the pretrained ones


@dataclass
class FineTuneConfig:
    train_layers: int = 1           # k: top transformer layers trained; 0 = frozen encoder, >= layer count: all
    pooling: str = "mean"           # mean | cls over the top layer's tokens
    max_tokens: int = 32            # tokens per item text (cached states are (items, max_tokens, hidden))
    dim: int = 64                   # output vector size of both towers
    width: int = 128                # hidden width of the user tower's MLP
    use_item_id: bool = True        # item tower adds a trained ID vector (warm items)
    max_history: int = 50           # most recent training items pooled into the user vector
    temperature: float = 0.1
    negatives: int = 128            # sampled items shared by a training step, besides the batch's targets
    encoder_lr: float = 5e-5        # learning rate of the trained encoder layers (train.lr: the rest)
    layer_decay: float = 1.0        # block at depth d from the top trains at encoder_lr * layer_decay**d
    warmup_steps: int = 0           # encoder learning rate ramps linearly from 0 over these steps
    encode_batch: int = 256         # items per forward pass when the whole catalogue is re-encoded
    init_std: float = 0.02          # ID embeddings
    token_cache: Optional[str] = None   # the cached token states' directory; the train stage sets it


def check_finetune(config: FineTuneConfig) -> None:
    """Reject impossible settings, naming them."""
    if config.pooling not in POOLINGS:
        raise ConfigError(f"unknown pooling {config.pooling!r}", setting="model.finetune.pooling",
                          hint=f"use one of {', '.join(POOLINGS)}")
    checks = [("dim", config.dim >= 1), ("width", config.width >= 1), ("max_history", config.max_history >= 1),
              ("temperature", config.temperature > 0), ("negatives", config.negatives >= 0),
              ("encoder_lr", config.encoder_lr > 0), ("layer_decay", 0 < config.layer_decay <= 1),
              ("warmup_steps", config.warmup_steps >= 0), ("encode_batch", config.encode_batch >= 1),
              ("train_layers", config.train_layers >= 0)]
    for name, ok in checks:
        if not ok:
            raise ConfigError(f"value {getattr(config, name)!r} is out of range", setting=f"model.finetune.{name}",
                              hint="see FineTuneConfig in recsys/models/finetune.py for the allowed values")


class FineTune(Recommender):
    """The two-tower model with the encoder's top layers inside the item tower (see the module doc)."""

    reads_history = True          # a query reads the user's history (test: train then val, evaluate/history.py)

    def __init__(self, config: FineTuneConfig, inputs: ModelInputs, tokens: ItemTokens | None = None) -> None:
        super().__init__(inputs)
        check_finetune(config)
        self.config = config
        if tokens is None:
            if not config.token_cache:
                raise ConfigError("the finetune model needs the cached token states of the catalogue",
                                  setting="model.finetune.token_cache",
                                  hint="train it through the train stage (it computes them), or pass the "
                                       "directory that recsys.embed.tokens.cache_item_tokens returned")
            tokens = load_item_tokens(config.token_cache)
        if tokens.n_items != inputs.n_items:
            raise ConfigError(f"the token cache holds {tokens.n_items} items, the dataset {inputs.n_items}",
                              setting="model.finetune.token_cache", hint="leave it null: the train stage fills it")
        k = resolve_layers(config.train_layers, tokens.n_layers)
        # another layer split, token length or pooling: the same catalogue's states for them (cached once)
        tokens = derive_item_tokens(tokens, config.train_layers, config.max_tokens, config.pooling)
        self.spec = dict(self.spec, token_cache=tokens.directory)
        _, encoder = load_encoder(tokens.encoder_dir)
        # the trained blocks keep their numbers: parameters are named encoder.layer.<N>.*
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleDict({str(i): encoder.encoder.layer[i]
                                            for i in range(tokens.layer_from, tokens.n_layers)})
        for p in self.encoder.parameters():
            p.requires_grad_(k > 0)
        hidden = int(tokens.states.shape[2])
        self.register_buffer("token_states", tokens.states.float(), persistent=False)    # (N, T, H)
        self.register_buffer("token_mask", tokens.mask.long(), persistent=False)         # (N, T)
        self.register_buffer("pretrained_text", tokens.pretrained.float(), persistent=False)   # (N, H)
        d = config.dim
        self.item_proj = nn.Linear(hidden, d)
        self.history_proj = nn.Linear(hidden, d)
        if config.use_item_id:
            self.item_id = id_embedding(inputs.n_warm_items, d, config.init_std)
            self.history_id = id_embedding(inputs.n_warm_items, d, config.init_std)
        self.user_tower = mlp(d, config.width, d, 1)
        generator = torch.Generator().manual_seed(0)
        probe = torch.randperm(inputs.n_items, generator=generator)[:PROBE_ITEMS]
        self.register_buffer("probe_items", probe, persistent=False)
        with torch.no_grad():
            self.register_buffer("probe_reference", self._layer_outputs(probe), persistent=False)  # (k, S, H)

    # ----- item tower -------------------------------------------------------------------------------------

    def _blocks(self) -> list[nn.Module]:
        return list(self.encoder.layer.values())

    def _layer_outputs(self, items: torch.Tensor) -> torch.Tensor:
        """(k, S, H) pooled output after each trained block for ``items`` (S,)."""
        states, mask = self._states(items)
        outputs = []
        for block in self._blocks():
            states = run_layers([block], states, mask)
            outputs.append(pool(states, mask, self.config.pooling))
        if not outputs:
            return torch.zeros(0, len(items), states.shape[-1], device=states.device)
        return torch.stack(outputs)

    def _states(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cached states of ``items`` cut to their longest text: (B, T', H), (B, T')."""
        mask = self.token_mask[items]                                     # (B, T)
        length = max(int(mask.sum(dim=1).max()) if len(items) else 1, 1)
        return self.token_states[items, :length], mask[:, :length]

    def encode_text(self, items: torch.Tensor) -> torch.Tensor:
        """(B,) items → (B, H) pooled output of the trained top layers over their cached states."""
        states, mask = self._states(items)
        return pool(run_layers(self._blocks(), states, mask), mask, self.config.pooling)   # (B, H)

    def _item_vectors(self, items: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        vectors = self.item_proj(text)                                    # (B, H) -> (B, D)
        if self.config.use_item_id:
            vectors = vectors + self.item_id(item_id_index(items, self.n_warm_items))
        return F.normalize(vectors, dim=1)

    def catalogue_text(self) -> torch.Tensor:
        """(N, H) text vectors of every item from the current layers, ``encode_batch`` items per pass."""
        all_items = torch.arange(self.n_items, device=self.token_states.device)
        return torch.cat([self.encode_text(chunk) for chunk in all_items.split(self.config.encode_batch)])

    def item_vectors(self) -> torch.Tensor:
        all_items = torch.arange(self.n_items, device=self.token_states.device)
        return self._item_vectors(all_items, self.catalogue_text())      # (N, D)

    # ----- user tower -------------------------------------------------------------------------------------

    def _history_table(self) -> torch.Tensor:
        vectors = self.history_proj(self.pretrained_text)                 # (N, H) -> (N, D)
        if self.config.use_item_id:
            all_items = torch.arange(self.n_items, device=vectors.device)
            vectors = vectors + self.history_id(item_id_index(all_items, self.n_warm_items))
        return vectors

    def _user(self, users: torch.Tensor, exclude: torch.Tensor | None) -> torch.Tensor:
        history = history_windows(self.history_indptr, self.history_items, users, self.config.max_history, exclude)
        pooled = masked_mean(F.embedding(history.clamp(min=0), self._history_table()), history != PAD)  # (B, D)
        vectors = F.normalize(pooled + self.user_tower(pooled), dim=1)
        return vectors / self.config.temperature

    def user_vectors(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self._user(users, None)

    # ----- training ---------------------------------------------------------------------------------------

    def _output(self, batch: Batch, negatives: torch.Tensor) -> Output:
        targets = self.history_items[batch.positions]                    # (M,)
        items, index = torch.unique(torch.cat([targets, negatives]), return_inverse=True)   # (N',), (M + S,)
        vectors = self._item_vectors(items, self.encode_text(items))     # (N', D)
        return Output(self._user(batch.users, batch.positions), index[:len(targets)], vectors)

    def forward(self, batch: Batch) -> Output:
        """In-batch softmax: ``items`` are the batch's targets and ``negatives`` shared sampled items only."""
        negatives = torch.randint(self.n_items, (self.config.negatives,), device=self.history_items.device)
        return self._output(batch, negatives)

    def loss(self, batch: Batch, generator: torch.Generator) -> torch.Tensor:
        """(M,) cross-entropy of each target over the batch's distinct items (negatives from ``generator``)."""
        negatives = torch.randint(self.n_items, (self.config.negatives,), generator=generator)
        out = self._output(batch, negatives.to(self.history_items.device))
        logits = out.queries @ out.items.T                                # (M, D) @ (D, N') -> (M, N')
        return F.cross_entropy(logits, out.targets, reduction="none")

    def optimizer_groups(self, lr: float) -> list[dict]:
        """Parameter groups: the rest at ``lr``; each trained block at its own encoder learning rate.

        Groups carry ``name`` and ``warmup_steps``; the training loop scales each group's
        learning rate by the schedule and ramps the warm-up.
        """
        encoder_ids = {id(p) for p in self.encoder.parameters()}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in encoder_ids]
        groups = [{"params": rest, "lr": lr, "name": "recommender", "warmup_steps": 0}]
        for depth, (number, block) in enumerate(reversed(list(self.encoder.layer.items()))):
            params = [p for p in block.parameters() if p.requires_grad]
            if params:
                groups.append({"params": params, "lr": self.config.encoder_lr * self.config.layer_decay ** depth,
                               "name": f"encoder.layer.{number}", "warmup_steps": self.config.warmup_steps})
        return groups

    # ----- diagnosis --------------------------------------------------------------------------------------

    def feature_tensors(self) -> dict[str, list[str]]:
        """Feature group → this model's parameter/buffer names (the encoder layers are ``text``)."""
        text = ["token_states", "pretrained_text", "item_proj.weight", "history_proj.weight"]
        text += [f"encoder.{name}" for name, _ in self.encoder.named_parameters()]
        groups = {"text": text, "history": []}
        if self.config.use_item_id:
            groups["item_id"] = ["item_id.weight", "history_id.weight"]
        return groups

    @torch.no_grad()
    def epoch_curves(self) -> dict[str, float]:
        """Drift from the pretrained encoder, per-block CKA, anisotropy and the text share of scores.

        ``text/drift_cosine``: mean cosine between each probe item's current and pretrained text
        vector; ``text/cka/encoder.layer.N``: linear CKA of block N's pooled output, now vs
        pretrained; ``text/anisotropy`` (``_pretrained``): mean cosine between probe items' text
        vectors (before training);
        ``text/score_share``: share of |score| that comes from the text part (vs the ID part).
        """
        from recsys.diagnose.representation import anisotropy, linear_cka, mean_cosine

        was_training = self.training
        self.eval()
        probe = self.probe_items
        current = self._layer_outputs(probe)                              # (k, S, H)
        text = current[-1] if len(current) else self.encode_text(probe)   # (S, H)
        curves = {"text/drift_cosine": mean_cosine(text, self.pretrained_text[probe]),
                  "text/anisotropy": anisotropy(text),
                  "text/anisotropy_pretrained": anisotropy(self.pretrained_text[probe])}
        for number, now, before in zip(self.encoder.layer.keys(), current, self.probe_reference):
            curves[f"text/cka/encoder.layer.{number}"] = linear_cka(now, before)
        users = torch.arange(min(self.n_users, PROBE_ITEMS), device=probe.device)
        if self.config.use_item_id and len(users):
            query = self._user(users, None)                               # (U, D)
            text_part = self.item_proj(text)                              # (S, D)
            id_part = self.item_id(item_id_index(probe, self.n_warm_items))
            text_score = (query @ text_part.T).abs().sum()                # (U, D) @ (D, S)
            id_score = (query @ id_part.T).abs().sum()
            curves["text/score_share"] = float(text_score / (text_score + id_score).clamp(min=1e-12))
        self.train(was_training)
        return curves
