"""The model contract: what each stage asks of a model, as ``typing.Protocol`` s.

A model is any ``torch.nn.Module`` that satisfies these protocols; the built-ins
satisfy them through :class:`recsys.models.base.Recommender`, a user's model may
subclass that base class or implement the methods itself.

- :class:`Scoring` (evaluation, diagnosis): ``scorer()`` returns
  ``score(users) -> (B, n_items)``, higher is better, one column per item index.
- :class:`DotProductTraining` (training by the shared losses): ``forward(batch)``
  returns an :class:`~recsys.models.base.Output` (queries, targets, item table).
- :class:`OwnLossTraining` (training by the model's own objective: cross-encoders,
  pairwise scorers, generative heads): ``loss(batch, generator)`` returns one loss
  value per training target, ``(M,)``; the loop sums them and divides by the global
  number of targets, exactly as it does with the shared losses.
- :class:`TrainingExamples`: what the loop needs to cut training examples: sizes,
  ``example_kind`` (``"pairs"`` or ``"windows"``), ``window_length``, ``trainable``
  and the training-history buffers (``history_indptr``, ``history_items``,
  ``item_counts``).
- :class:`DiagnosableFeatures` (diagnosis): ``feature_tensors()`` maps a feature
  group to the names of the parameters/buffers that carry it, so feature importance
  and embedding health never guess attribute names.

>>> from recsys.models.base import tiny_inputs
>>> from recsys.models.registry import ModelSettings, build_model
>>> model = build_model("mf", ModelSettings().mf, tiny_inputs())
>>> isinstance(model, Scoring), training_kind(model)
(True, 'forward')
>>> check_feature_tensors(model)
{'item_id': ['item_embedding.weight', 'item_bias.weight'], 'user_id': ['user_embedding.weight']}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

import torch
import torch.nn as nn

from recsys.errors import ConfigError

# Feature groups diagnosis knows. ``history_length`` carries no tensor of its own: a model that
# pools or attends over the user's training history lists the history buffers under it.
FEATURE_GROUPS = ("text", "item_id", "user_id", "history_length")
HISTORY_BUFFERS = ["history_indptr", "history_items"]


@runtime_checkable
class Scoring(Protocol):
    """Evaluation's need: ``scorer()(users) -> (B, n_items)`` scores (eval mode, no gradients)."""

    n_users: int
    n_items: int

    def scorer(self) -> Callable[[torch.Tensor], torch.Tensor]: ...


@runtime_checkable
class DotProductTraining(Protocol):
    """Training by the shared losses: ``forward(batch) -> Output`` (``queries @ items.T`` are the logits)."""

    def forward(self, batch): ...


@runtime_checkable
class OwnLossTraining(Protocol):
    """Training by the model's own objective: ``loss(batch, generator) -> (M,)`` per-target losses."""

    def loss(self, batch, generator: torch.Generator) -> torch.Tensor: ...


@runtime_checkable
class TrainingExamples(Protocol):
    """What the training loop reads to cut examples from the training history."""

    example_kind: str
    window_length: int
    trainable: bool
    history_indptr: torch.Tensor
    history_items: torch.Tensor
    item_counts: torch.Tensor


@runtime_checkable
class DiagnosableFeatures(Protocol):
    """Diagnosis's question: which of your tensors carry which feature group."""

    def feature_tensors(self) -> dict[str, list[str]]: ...


def training_kind(model: nn.Module) -> Literal["forward", "loss"] | None:
    """``"loss"`` when the model brings its own loss, ``"forward"`` for dot-product models, None if untrainable.

    A model's own ``loss`` wins over an inherited ``forward``.
    """
    if not getattr(model, "trainable", True):
        return None
    if callable(getattr(model, "loss", None)):
        return "loss"
    if type(model).forward is not nn.Module.forward:
        return "forward"
    return None


def check_feature_tensors(model: nn.Module) -> dict[str, list[str]]:
    """The model's ``feature_tensors()``, checked: known groups, names that are its parameters or buffers.

    A model without the method has no feature groups (no feature importance, ID health from none).
    ``history`` is accepted for ``history_length``.

    >>> check_feature_tensors(nn.Linear(2, 2))
    {}
    """
    method = getattr(model, "feature_tensors", None)
    if not callable(method):
        return {}
    groups = method()
    name = getattr(model, "name", None) or type(model).__name__
    if not isinstance(groups, dict):
        raise ConfigError(f"model '{name}': feature_tensors() returned {type(groups).__name__}, expected a dict",
                          setting="models", hint="return {group: [parameter or buffer names]}")
    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    out: dict[str, list[str]] = {}
    for group, names in groups.items():
        group = "history_length" if group == "history" else group
        if group not in FEATURE_GROUPS:
            raise ConfigError(f"model '{name}': feature_tensors() names unknown group {group!r}", setting="models",
                              hint=f"groups are {', '.join(FEATURE_GROUPS)}")
        missing = [n for n in names if n not in tensors]
        if missing:
            raise ConfigError(f"model '{name}': feature_tensors() group {group!r} names {missing}, which are "
                              "neither parameters nor buffers of the model", setting="models",
                              hint="use names as model.named_parameters() / named_buffers() give them")
        if names or group == "history_length":
            out[group] = list(names) if names or group != "history_length" else list(HISTORY_BUFFERS)
    return out


def checked_scorer(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model.scorer()`` whose every answer is checked: a ``(B, n_items)`` float tensor without NaN or +inf.

    ``-inf`` is allowed (a model may rule items out). A wrong answer is a :class:`ConfigError`
    naming the model, so a plugin's mistake reads as one line, not as an error deep in top-k.

    >>> class Short(nn.Module):
    ...     n_items = 3
    ...     def scorer(self):
    ...         return lambda users: torch.zeros(len(users), 2)
    >>> checked_scorer(Short())(torch.tensor([0]))
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'models': model 'Short': scorer returned shape (1, 2) for 1 users, expected (1, 3) (one column per item). What to do: check the model's scorer() with recsys.testing's ScorerContract
    """
    name = getattr(model, "name", None) or type(model).__name__
    n_items = int(model.n_items)
    hint = "check the model's scorer() with recsys.testing's ScorerContract"
    score = model.scorer()

    def checked(users: torch.Tensor) -> torch.Tensor:
        scores = score(users)
        if not isinstance(scores, torch.Tensor) or not scores.is_floating_point():
            raise ConfigError(f"model '{name}': scorer returned {type(scores).__name__}"
                              f"{'' if not isinstance(scores, torch.Tensor) else f' of {scores.dtype}'}, "
                              "expected a float tensor", setting="models", hint=hint)
        if tuple(scores.shape) != (len(users), n_items):
            raise ConfigError(f"model '{name}': scorer returned shape {tuple(scores.shape)} for {len(users)} users, "
                              f"expected {(len(users), n_items)} (one column per item)", setting="models", hint=hint)
        bad = torch.isnan(scores) | (scores == float("inf"))
        if bool(bad.any()):
            raise ConfigError(f"model '{name}': scorer returned {int(bad.sum())} NaN or +inf scores for "
                              f"{len(users)} users", setting="models", hint=hint)
        return scores

    return checked


def check_model(model: nn.Module) -> None:
    """A freshly built model honours the contract's shape: it can score, and train if it says it trains.

    >>> check_model(nn.Linear(2, 2))
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'models': model 'Linear' has no scorer(). What to do: give it scorer() -> score(users) -> (B, n_items); see docs/models.md
    """
    name = getattr(model, "name", None) or type(model).__name__
    if not callable(getattr(model, "scorer", None)):
        raise ConfigError(f"model '{name}' has no scorer()", setting="models",
                          hint="give it scorer() -> score(users) -> (B, n_items); see docs/models.md")
    for attribute in ("n_users", "n_items"):
        if not isinstance(getattr(model, attribute, None), int):
            raise ConfigError(f"model '{name}' has no integer {attribute}", setting="models",
                              hint="subclass recsys.models.base.Recommender, which sets it")
    if getattr(model, "trainable", True) and training_kind(model) is None:
        raise ConfigError(f"model '{name}' is trainable but has neither forward(batch) nor loss(batch, generator)",
                          setting="models", hint="add one (docs/models.md), or set trainable = False")
