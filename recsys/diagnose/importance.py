"""Feature importance of a trained model: what the metric loses when a feature group is taken away.

Feature groups, found from the model's own tensors (a model without a group gets no row):

- ``text``: the item text vectors (for the built-ins the ``item_text`` buffer of BERT vectors);
- ``item_id``: every per-item trained table (the zero padding row of an ID table is left alone);
- ``user_id``: per-user tables;
- ``history_length``: the training history a model pools or attends over.

Which tensors belong to which group the model says itself, through ``feature_tensors()``
(:mod:`recsys.models.contract`); a model that declares none gets no feature-importance rows.

Methods (``method`` column):

- ``ablation``: replace the group by a neutral value and re-evaluate: the *mean* text
  vector for every item (``text``), *zero* vectors (``item_id``, ``user_id``: what a cold
  item gets), or each user's history cut to its ``history_keep`` most recent items;
- ``permutation``: shuffle the group's rows across items (users), seeded, averaged over
  ``permutation_repeats`` shuffles (no permutation of ``history_length``);
- ``grad_x_input``: ``||dL/dx * x||`` (Frobenius norm of gradient times input, L the mean
  full-softmax loss of a batch of training examples) per group, averaged over batches;
  rows have ``split = train``, ``metric = grad_x_input``, and the attribution in ``drop``.

The drop of ``ablation``/``permutation`` is ``baseline - value`` of ``metric@k`` per user,
averaged over users, with a paired bootstrap interval over users
(:func:`recsys.evaluate.significance.paired_test`). Everything works on swapped-in
copies: the model's own tensors are never written, and its mode is restored.

>>> import torch
>>> from recsys.evaluate.useritems import UserItems
>>> from recsys.models.base import tiny_inputs
>>> from recsys.models.registry import ModelSettings, build_model
>>> model = build_model("mf", ModelSettings().mf, tiny_inputs())
>>> sorted(feature_tensors(model))
['item_id', 'user_id']
>>> data = EvalData(UserItems.from_pairs([0, 1], [3, 0], n_users=2, n_items=4), None, "ndcg", 2)
>>> rows = importance_rows(model, data, methods=["ablation"], groups=["item_id"], n_samples=50)
>>> [(r["feature"], r["method"], r["n_users"]) for r in rows]
[('item_id', 'ablation', 2)]
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn as nn

from recsys.errors import ConfigError
from recsys.evaluate.metrics import ACCURACY_METRICS
from recsys.evaluate.rows import evaluable_users, evaluate_users
from recsys.evaluate.significance import paired_test
from recsys.evaluate.useritems import UserItems
from recsys.models.base import Recommender
from recsys.models.contract import checked_scorer, check_feature_tensors

log = logging.getLogger(__name__)

PERMUTABLE = ("text", "item_id", "user_id")
TEXT_FIELD_GROUP = "text_field"


@dataclass
class EvalData:
    """Who is evaluated and on what: held-out items, items to mask, the metric and cut-off.

    ``users`` defaults to every user with a held-out item that is not masked.
    """

    relevant: UserItems
    seen: Optional[UserItems]
    metric: str = "ndcg"
    k: int = 10
    users: Optional[np.ndarray] = None
    split: str = "val"
    memory_budget_bytes: int = 64 * 2**20

    def __post_init__(self) -> None:
        if self.metric not in ACCURACY_METRICS:
            raise ConfigError(f"feature importance needs an accuracy metric, got {self.metric!r}",
                              setting="diagnose.metric", hint=f"use one of {', '.join(ACCURACY_METRICS)}")
        if self.users is None:
            self.users = evaluable_users(self.relevant, self.seen)
        self.users = np.sort(np.asarray(self.users, dtype=np.int64))

    def sample(self, max_users: int, seed: int) -> "EvalData":
        """The same data on at most ``max_users`` users (a seeded sample).

        >>> data = EvalData(UserItems.from_pairs([0, 1, 2], [0, 0, 0], n_users=3, n_items=1), None)
        >>> len(data.sample(2, seed=0).users)
        2
        """
        if len(self.users) <= max_users:
            return self
        picked = np.random.default_rng(seed).choice(self.users, size=max_users, replace=False)
        return EvalData(self.relevant, self.seen, self.metric, self.k, np.sort(picked), self.split,
                        self.memory_budget_bytes)

    def per_user(self, model: Recommender) -> np.ndarray:
        """``metric@k`` of each of ``users`` (sorted), scored by ``model`` over the whole catalogue.

        The model is scored in eval mode; its own mode is restored afterwards.
        """
        training = model.training
        try:
            rows = evaluate_users(checked_scorer(model), self.users, self.relevant, [self.k], seen=self.seen, auc=False,
                                  memory_budget_bytes=self.memory_budget_bytes)
        finally:
            model.train(training)
        return rows.values[f"{self.metric}@{self.k}"]


# ---------------------------------------------------------------- the model's feature tensors


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    prefix, _, attr = name.rpartition(".")
    return (model.get_submodule(prefix) if prefix else model), attr


def feature_tensors(model: Recommender) -> dict[str, list[str]]:
    """Group -> names of the model's tensors that carry it, as the model declares them.

    Asked of the model (:meth:`feature_tensors`, checked by
    :func:`recsys.models.contract.check_feature_tensors`), never guessed from attribute names.

    >>> from recsys.models.base import tiny_inputs
    >>> from recsys.models.registry import ModelSettings, build_model
    >>> feature_tensors(build_model("two_tower", ModelSettings().two_tower, tiny_inputs(text_dim=3)))
    {'text': ['item_text'], 'item_id': ['item_id.weight'], 'history_length': ['history_indptr', 'history_items']}
    """
    return check_feature_tensors(model)


def tensor(model: nn.Module, name: str) -> torch.Tensor:
    owner, attr = _owner(model, name)
    return getattr(owner, attr)


def table_rows(model: nn.Module, name: str) -> int:
    """Rows of a tensor that belong to items or users (an ID table's padding row excluded)."""
    owner, _ = _owner(model, name)
    rows = tensor(model, name).shape[0]
    padding = getattr(owner, "padding_idx", None)
    return int(padding) if isinstance(owner, nn.Embedding) and padding is not None and padding == rows - 1 else rows


@contextmanager
def swapped(model: nn.Module, replacements: Mapping[str, torch.Tensor]) -> Iterator[nn.Module]:
    """Put ``replacements`` in place of the model's parameters/buffers; the originals come back on exit.

    The original tensor objects are set aside, never written, so the model is unchanged afterwards
    (values, identity, ``requires_grad``, training mode).

    >>> lin = nn.Linear(1, 1)
    >>> with swapped(lin, {"weight": torch.zeros(1, 1)}):
    ...     float(lin.weight)
    0.0
    >>> lin.weight.requires_grad
    True
    """
    saved = []
    training = model.training
    try:
        for name, new in replacements.items():
            owner, attr = _owner(model, name)
            if attr in owner._parameters:
                store = owner._parameters
                value = nn.Parameter(new, requires_grad=new.requires_grad)
            elif attr in owner._buffers:
                store, value = owner._buffers, new
            else:
                raise KeyError(f"{name} is neither a parameter nor a buffer of {type(model).__name__}")
            saved.append((store, attr, store[attr]))
            store[attr] = value
        yield model
    finally:
        for store, attr, old in reversed(saved):
            store[attr] = old
        model.train(training)


# ---------------------------------------------------------------- replacements


def ablated(model: Recommender, group: str, history_keep: int = 3) -> dict[str, torch.Tensor]:
    """Neutral replacements of ``group``: mean text vector, zero ID rows, or truncated histories.

    >>> from recsys.models.base import tiny_inputs
    >>> from recsys.models.registry import ModelSettings, build_model
    >>> model = build_model("content", ModelSettings().content, tiny_inputs(text_dim=2))
    >>> new = ablated(model, "history_length", history_keep=1)
    >>> new["history_indptr"].tolist(), new["history_items"].tolist()
    ([0, 1, 2], [2, 3])
    """
    names = feature_tensors(model)[group]
    if group == "text":
        return {name: tensor(model, name).mean(dim=0, keepdim=True).expand_as(tensor(model, name)).clone()
                for name in names}
    if group == "history_length":
        return truncated_history(model.history_indptr, model.history_items, history_keep)
    return {name: torch.zeros_like(tensor(model, name)).detach() for name in names}


def truncated_history(indptr: torch.Tensor, items: torch.Tensor, keep: int) -> dict[str, torch.Tensor]:
    """CSR history buffers with each user's ``keep`` most recent items (the order of each user kept)."""
    lengths = indptr[1:] - indptr[:-1]                                    # (U,)
    kept = lengths.clamp(max=keep)
    position = torch.arange(items.numel(), device=items.device)
    owner = torch.repeat_interleave(torch.arange(len(lengths), device=items.device), lengths)
    keep_mask = position >= (indptr[1:] - kept)[owner]
    new_indptr = torch.zeros_like(indptr)
    new_indptr[1:] = torch.cumsum(kept, dim=0)
    return {"history_indptr": new_indptr, "history_items": items[keep_mask].clone()}


def permuted(model: Recommender, group: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The group's rows shuffled across items (users); tables of one size share one permutation."""
    perms: dict[int, torch.Tensor] = {}
    out = {}
    for name in feature_tensors(model)[group]:
        original = tensor(model, name).detach()
        rows = table_rows(model, name)
        if rows not in perms:
            perms[rows] = torch.randperm(rows, generator=generator).to(original.device)
        new = original.clone()
        new[:rows] = original[perms[rows]]
        out[name] = new
    return out


# ---------------------------------------------------------------- measuring


def drop_row(base: np.ndarray, values: np.ndarray, *, feature: str, method: str, data: EvalData,
             feature_group: Optional[str] = None, n_repeats: int = 1, n_samples: int = 1000,
             confidence: float = 0.95, seed: int = 0) -> dict:
    """One ``feature_importance`` row: mean per-user drop ``base - values`` with a paired bootstrap interval.

    >>> data = EvalData(UserItems.from_pairs([0, 1], [0, 0], n_users=2, n_items=1), None)
    >>> row = drop_row(np.array([1.0, 0.5]), np.array([0.5, 0.5]), feature="text", method="ablation", data=data)
    >>> row["drop"], row["baseline_value"], row["value"], row["n_users"]
    (0.25, 0.75, 0.5, 2)
    """
    test = paired_test(values, base, "bootstrap", n_samples=n_samples, confidence=confidence, seed=seed)
    return {"split": data.split, "feature": feature, "feature_group": feature_group, "method": method,
            "metric": data.metric, "k": data.k, "baseline_value": _finite(test.candidate_mean),
            "value": _finite(test.baseline_mean), "drop": _finite(test.delta), "ci_low": _finite(test.ci_low),
            "ci_high": _finite(test.ci_high), "n_repeats": n_repeats, "n_users": test.n}


def _finite(x: float) -> Optional[float]:
    return float(x) if x is not None and np.isfinite(x) else None


def importance_rows(model: Recommender, data: EvalData, *, methods: Sequence[str] = ("ablation", "permutation"),
                    groups: Optional[Sequence[str]] = None, repeats: int = 3, history_keep: int = 3,
                    n_samples: int = 1000, confidence: float = 0.95, seed: int = 0,
                    base: Optional[np.ndarray] = None) -> list[dict]:
    """Ablation and permutation rows for each group the model has (of ``groups``; all when None)."""
    present = feature_tensors(model)
    wanted = [g for g in (groups if groups is not None else present) if g in present]
    if base is None:
        base = data.per_user(model)
    stats = {"n_samples": n_samples, "confidence": confidence, "seed": seed}
    rows = []
    for group in wanted:
        if "ablation" in methods:
            with swapped(model, ablated(model, group, history_keep)):
                values = data.per_user(model)
            rows.append(drop_row(base, values, feature=group, method="ablation", data=data, **stats))
        if "permutation" in methods and group in PERMUTABLE:
            generator = torch.Generator().manual_seed(seed)
            runs = []
            for _ in range(repeats):
                with swapped(model, permuted(model, group, generator)):
                    runs.append(data.per_user(model))
            rows.append(drop_row(base, np.mean(runs, axis=0), feature=group, method="permutation", data=data,
                                 n_repeats=repeats, **stats))
    return rows


def text_field_rows(model: Recommender, data: EvalData, field_vectors: Mapping[str, np.ndarray], *,
                    n_samples: int = 1000, confidence: float = 0.95, seed: int = 0,
                    base: Optional[np.ndarray] = None) -> list[dict]:
    """One ablation row per text field: the model scored with item text embedded without that field."""
    if "text" not in feature_tensors(model) or not field_vectors:
        return []
    if base is None:
        base = data.per_user(model)
    text_name = feature_tensors(model)["text"][0]        # the (n_items, d) text vectors the model reads
    text = tensor(model, text_name)
    if text.dim() != 2:
        # e.g. finetune reads token states (n_items, tokens, hidden): vectors of the text without a field
        # say nothing about it; its encoder is diagnosed by its own rules (recsys.diagnose.encoder)
        log.info("text-field importance skipped for %s: its text %s is %s, not (items, d) vectors",
                 getattr(model, "name", type(model).__name__), text_name, tuple(text.shape))
        return []
    rows = []
    for name, vectors in field_vectors.items():
        new = torch.as_tensor(np.asarray(vectors), dtype=text.dtype, device=text.device)
        if new.shape != text.shape:
            raise ConfigError(f"vectors without field {name!r} have shape {tuple(new.shape)}, the model's text "
                              f"{tuple(text.shape)}", setting="encoder",
                              hint="embed with the encoder and item map the model was trained with")
        with swapped(model, {text_name: new}):
            values = data.per_user(model)
        rows.append(drop_row(base, values, feature=name, feature_group=TEXT_FIELD_GROUP, method="ablation",
                             data=data, n_samples=n_samples, confidence=confidence, seed=seed))
    return rows
