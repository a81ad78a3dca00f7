"""two_tower's MLP init scale (``model.two_tower.mlp_init_std``): where it applies, and what it does to gradients."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn as nn

from rayjobs._common import compose
from recsys.errors import ConfigError
from recsys.models.base import Batch, tiny_inputs
from recsys.models.registry import build_model
from recsys.models.two_tower import TwoTowerConfig
from recsys.train.losses import softmax_loss

DEEP = TwoTowerConfig(dim=8, width=16, depth=6, norm="none", dropout=0.0, history_dropout=0.0, use_item_id=False)


def tower_linears(model) -> list[nn.Linear]:
    return [m for name in ("item_tower", "history_tower", "user_tower") if hasattr(model, name)
            for m in getattr(model, name).modules() if isinstance(m, nn.Linear)]


def build(config: TwoTowerConfig, seed: int = 0):
    torch.manual_seed(seed)
    return build_model("two_tower", config, tiny_inputs(text_dim=5))


def test_the_init_std_sets_every_tower_layer_and_null_keeps_pytorch_default():
    config = replace(DEEP, history_vectors="separate", mlp_init_std=0.01)
    model = build(config)
    layers = tower_linears(model)
    assert len(layers) == 3 * (DEEP.depth + 1)                            # item, history and user towers
    weights = torch.cat([layer.weight.detach().flatten() for layer in layers])
    assert float(weights.std()) == pytest.approx(0.01, rel=0.1)
    assert all(float(layer.bias.detach().abs().max()) == 0.0 for layer in layers)
    default = build(replace(config, mlp_init_std=None))                   # PyTorch's U(-1/sqrt(fan_in), ...)
    first = tower_linears(default)[0].weight.detach()
    bound = 1 / first.shape[1] ** 0.5
    assert float(first.abs().max()) <= bound
    assert float(first.std()) == pytest.approx(bound / 3 ** 0.5, rel=0.3)


def test_a_tiny_init_starves_the_first_layer_of_gradient():
    def depth_ratios(std):
        """First over last Linear layer of the item tower: gradient norms of the weights and of the biases."""
        model = build(replace(DEEP, mlp_init_std=std)).train()
        softmax_loss(model(Batch(torch.tensor([0, 1]), torch.tensor([0, 3])))).mean().backward()
        item = [m for m in model.item_tower.modules() if isinstance(m, nn.Linear)]
        return tuple(float(getattr(item[0], p).grad.norm() / getattr(item[-1], p).grad.norm())
                     for p in ("weight", "bias"))

    default, tiny = depth_ratios(None), depth_ratios(0.01)
    assert default[1] > 1e-2 and tiny[1] < 1e-6        # the bias of the first layer: 7 layers at 0.01 scale it down
    # the weights' ratio is scale-free (the input is not shrunk, the last layer's input is): both stay near 1
    assert 0.1 < default[0] < 10 and 0.1 < tiny[0] < 10


def test_the_setting_composes_and_bad_values_are_named():
    assert compose(["model.two_tower.mlp_init_std=0.001"]).model.two_tower.mlp_init_std == 0.001
    assert compose([]).model.two_tower.mlp_init_std is None
    with pytest.raises(ConfigError, match=r"model\.two_tower\.mlp_init_std"):
        build(replace(DEEP, mlp_init_std=0.0))
