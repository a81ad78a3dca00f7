"""Gradient-times-input attribution per feature group: how strongly the training loss leans on each input.

For a batch of about ``batch_size`` training targets (pairs, or the windows of a sequence
model that hold that many, as training counts them) drawn (seeded) from the model's own history, ``L``
is the mean full-softmax cross-entropy (:func:`recsys.train.losses.softmax_loss`; a model with
its own objective: the mean of its ``loss``),
and a group's attribution is the Frobenius norm of ``dL/dx * x`` over the group's
tensors ``x`` (text vectors, ID tables; see :mod:`recsys.diagnose.importance`). The
reported value is the mean over ``batches`` batches, with a percentile-bootstrap
interval over batches. The model runs in eval mode (no dropout); gradients are taken
with ``torch.autograd.grad``, so no ``.grad`` is left on the model and nothing in it changes.

>>> from recsys.models.base import tiny_inputs
>>> from recsys.models.registry import ModelSettings, build_model
>>> model = build_model("two_tower", ModelSettings().two_tower, tiny_inputs(text_dim=3))
>>> rows = grad_x_input_rows(model, batches=2, batch_size=4)
>>> [(r["feature"], r["method"], r["drop"] > 0) for r in rows]
[('text', 'grad_x_input', True), ('item_id', 'grad_x_input', True)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import numpy as np
import torch

from recsys.diagnose.importance import feature_tensors, swapped, tensor
from recsys.evaluate.aggregate import bootstrap_means, percentile_interval
from recsys.models.base import Batch, Recommender
from recsys.models.contract import training_kind
from recsys.train.batching import epoch_examples, examples_per_batch
from recsys.train.losses import softmax_loss

METHOD = "grad_x_input"
TENSOR_GROUPS = ("text", "item_id", "user_id")


def grad_x_input(model: Recommender, *, batches: int = 8, batch_size: int = 64, seed: int = 0,
                 groups: Optional[Sequence[str]] = None) -> dict[str, np.ndarray]:
    """Group -> ``(batches,)`` norms of gradient times input; empty when the model has no training examples."""
    present = {g: names for g, names in feature_tensors(model).items() if g in TENSOR_GROUPS
               and (groups is None or g in groups)}
    if not present:
        return {}
    indptr = model.history_indptr.cpu().numpy()
    examples = epoch_examples(indptr, model.example_kind, model.window_length)
    if len(examples.users) == 0:
        return {}
    per_batch = examples_per_batch(model.example_kind, batch_size, model.window_length)   # windows: ~batch_size targets
    rng = np.random.default_rng(seed)
    # buffers (text vectors) carry no gradient: differentiable copies take their place
    leaves = {name: tensor(model, name).detach().clone().requires_grad_(True)
              for name in present.get("text", []) if not tensor(model, name).requires_grad}
    out: dict[str, list[float]] = {g: [] for g in present}
    device = model.history_items.device
    own_loss = training_kind(model) == "loss"
    generator = torch.Generator().manual_seed(seed)
    with swapped(model, leaves):
        model.eval()
        inputs = {g: [tensor(model, n) for n in names] for g, names in present.items()}
        flat = [x for xs in inputs.values() for x in xs]
        for _ in range(batches):
            chosen = rng.choice(len(examples.users), size=min(per_batch, len(examples.users)), replace=False)
            batch = Batch(torch.from_numpy(examples.users[chosen]), torch.from_numpy(examples.positions[chosen]))
            batch = batch.to(device)
            loss = (model.loss(batch, generator) if own_loss else softmax_loss(model(batch))).mean()
            grads = torch.autograd.grad(loss, flat, allow_unused=True)
            by_tensor = {id(x): g for x, g in zip(flat, grads)}
            for group, xs in inputs.items():
                total = sum(float(((by_tensor[id(x)] * x).detach() ** 2).sum()) for x in xs
                            if by_tensor[id(x)] is not None)
                out[group].append(total ** 0.5)
    return {g: np.asarray(v) for g, v in out.items()}


def grad_x_input_rows(model: Recommender, *, batches: int = 8, batch_size: int = 64, seed: int = 0,
                      groups: Optional[Sequence[str]] = None, n_samples: int = 1000,
                      confidence: float = 0.95) -> list[dict]:
    """``feature_importance`` rows (``split = train``, ``metric = grad_x_input``, attribution in ``drop``)."""
    rows = []
    for group, values in grad_x_input(model, batches=batches, batch_size=batch_size, seed=seed,
                                      groups=groups).items():
        low, high = percentile_interval(bootstrap_means(values, n_samples, seed), confidence)
        mean = float(values.mean())
        rows.append({"split": "train", "feature": group, "feature_group": None, "method": METHOD,
                     "metric": METHOD, "k": None, "baseline_value": None, "value": mean, "drop": mean,
                     "ci_low": float(low[0]), "ci_high": float(high[0]), "n_repeats": len(values), "n_users": None})
    return rows
