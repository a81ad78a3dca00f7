"""Contract tests any model can run, built-in or the user's own (pytest mixins).

Subclass :class:`ModelContract` in your own test suite, name the model, and pytest
collects every check that recsys's stages rely on::

    # tests/test_my_model.py
    from recsys.testing import ModelContract

    class TestMyModel(ModelContract):
        model_name = "neumf"             # registered by entry point or models=[pkg.mod:Class]
        text_dim = 0                     # > 0 when the model reads item text vectors

The same classes check every built-in model (``tests/models/test_contract.py``).
See ``docs/models.md`` for the contract itself.

>>> inputs = contract_inputs(text_dim=3)
>>> inputs.n_users, inputs.n_items, inputs.n_warm_items, inputs.item_text.shape
(6, 10, 8, torch.Size([10, 3]))
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from typing import Any, Optional

import torch
import torch.nn as nn

from recsys.models.base import Batch, ModelInputs, Output
from recsys.models.contract import checked_scorer, check_feature_tensors, training_kind
from recsys.models.registry import build_model, get_spec

__all__ = ["ModelContract", "ScorerContract", "contract_inputs", "training_batch"]


def contract_inputs(text_dim: int = 0, seed: int = 0) -> ModelInputs:
    """Six users, ten items (the last two cold), histories of 2 to 5 items in time order.

    Deterministic and tiny: every contract test runs in milliseconds.
    """
    generator = torch.Generator().manual_seed(seed)
    histories = [[0, 1, 2], [2, 3, 4, 5], [0, 5], [6, 7, 1, 3, 4], [1, 6], [7, 0, 2, 4]]
    indptr = torch.tensor([0] + [sum(len(h) for h in histories[:u + 1]) for u in range(len(histories))])
    items = torch.tensor([i for h in histories for i in h])
    counts = torch.bincount(items, minlength=10).float()
    text = torch.nn.functional.normalize(torch.randn(10, text_dim, generator=generator), dim=1) if text_dim else None
    return ModelInputs(n_users=6, n_items=10, n_warm_items=8, history_indptr=indptr, history_items=items,
                       item_counts=counts, item_text=text)


def training_batch(model: nn.Module, size: int = 4) -> Batch:
    """A batch of the model's own first training examples (pairs or windows, as training cuts them)."""
    from recsys.train.batching import epoch_examples

    examples = epoch_examples(model.history_indptr.cpu().numpy(), model.example_kind, model.window_length)
    return Batch(torch.from_numpy(examples.users[:size]), torch.from_numpy(examples.positions[:size]))


class ScorerContract:
    """What evaluation needs: ``scorer()(users) -> (B, n_items)`` finite floats, repeatable, side-effect free."""

    model_name: str = ""
    text_dim: int = 0
    config: Optional[Any] = None

    def build(self, seed: int = 0) -> nn.Module:
        """A fresh model over :func:`contract_inputs`; override to build yours differently."""
        config = self.config if self.config is not None else get_spec(self.model_name).config_type()
        torch.manual_seed(seed)
        return build_model(self.model_name, config, contract_inputs(self.text_dim))

    def test_scorer_gives_one_finite_score_per_item(self):
        model = self.build()
        scores = checked_scorer(model)(torch.tensor([0, 3, 5]))               # raises on shape, dtype, NaN
        assert scores.shape == (3, model.n_items)

    def test_scores_do_not_depend_on_the_other_users_in_the_batch(self):
        model = self.build()
        score = model.scorer()
        together = score(torch.tensor([1, 4]))
        alone = torch.cat([score(torch.tensor([1])), score(torch.tensor([4]))])
        torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)

    def test_scoring_changes_no_parameter_or_buffer(self):
        model = self.build()
        before = copy.deepcopy(model.state_dict())
        model.scorer()(torch.tensor([0, 1, 2]))
        for name, value in model.state_dict().items():
            assert torch.equal(value, before[name]), f"scoring changed {name}"


class ModelContract(ScorerContract):
    """Everything the stages ask of a model: scoring, training, diagnosis, settings and checkpoints."""

    def test_settings_are_a_dataclass_with_defaults(self):
        config_type = get_spec(self.model_name).config_type
        assert dataclasses.is_dataclass(config_type)
        config_type()                                                        # every setting has a default

    def test_model_is_trained_by_forward_or_its_own_loss(self):
        model = self.build()
        kind = training_kind(model)
        if kind is None:
            assert not getattr(model, "trainable", True), "a trainable model needs forward(batch) or loss(batch, g)"
            return
        assert model.example_kind in ("pairs", "windows")
        model.train()
        batch = training_batch(model)
        if kind == "loss":
            losses = model.loss(batch, torch.Generator().manual_seed(0))
            assert losses.dim() == 1, f"loss(batch, generator) must return one value per target, got {losses.shape}"
        else:
            out = model(batch)
            assert isinstance(out, Output)
            assert out.queries.shape[0] == out.targets.shape[0]
            assert out.items.shape[0] == model.n_items and out.items.shape[1] == out.queries.shape[1]
            losses = torch.nn.functional.cross_entropy(out.queries @ out.items.T, out.targets, reduction="none")
        assert bool(torch.isfinite(losses).all())
        losses.sum().backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
        assert grads, "the loss reaches no trainable parameter"
        assert all(bool(torch.isfinite(g).all()) for g in grads)

    def test_one_epoch_of_training_runs_and_keeps_scores_finite(self):
        from recsys.train.config import TrainConfig
        from recsys.train.data import TrainingData
        from recsys.train.loop import fit

        model = self.build()
        inputs = contract_inputs(self.text_dim)
        indptr = inputs.history_indptr.numpy()
        users = [u for u in range(inputs.n_users) for _ in range(indptr[u + 1] - indptr[u])]
        data = TrainingData.from_arrays(users, inputs.history_items.tolist(), n_users=inputs.n_users,
                                        n_items=inputs.n_items, val_users=[0, 1], val_items=[8, 9])
        result = fit(model, data, TrainConfig(epochs=1, batch_size=8, engine="local", patience=0))
        assert result.state.status == "completed"
        checked_scorer(model)(torch.tensor([0, 1]))

    def test_feature_tensors_name_the_models_own_tensors(self):
        model = self.build()
        groups = check_feature_tensors(model)                                # raises on unknown groups or names
        for group, names in groups.items():
            if group in ("item_id", "user_id"):
                rows = model.n_items if group == "item_id" else model.n_users
                for name in names:
                    tensor = dict(model.named_parameters()).get(name)
                    assert tensor is not None and tensor.shape[0] >= min(rows, model.n_warm_items if
                                                                           group == "item_id" else rows), name

    def test_a_checkpoint_rebuilds_the_same_model(self):
        from recsys.train.checkpoint import load_model, save_model

        model = self.build(seed=1)
        with tempfile.TemporaryDirectory() as directory:
            path = save_model(directory, model)
            again = load_model(path)
        users = torch.tensor([0, 2, 5])
        torch.testing.assert_close(again.scorer()(users), model.scorer()(users))
