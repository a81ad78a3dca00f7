"""Bad plugins: each gives one clear ConfigError naming the plugin or model, never a traceback from deep inside."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from recsys.errors import ConfigError
from recsys.models import registry
from recsys.models.base import tiny_inputs
from recsys.models.contract import checked_scorer, check_feature_tensors
from recsys.models.registry import build_model, load_plugin, resolve_model_names

REPO = Path(__file__).resolve().parents[2]

PLUGINS = '''
from dataclasses import dataclass

import torch
import torch.nn as nn

from recsys.models.base import Batch, ModelInputs, Output, Recommender
from recsys.models.mf import MatrixFactorization, MFConfig


@dataclass
class SmallConfig:
    dim: int = 4


class NoConfig(Recommender):
    pass


class NotDataclassConfig(Recommender):
    class Config:
        dim = 4


class Exploding(Recommender):
    Config = SmallConfig

    def __init__(self, config, inputs):
        raise ValueError("boom in the constructor")


class NoTraining(Recommender):
    Config = SmallConfig

    def __init__(self, config, inputs):
        super().__init__(inputs)
        self.config = config


class NotAModule:
    Config = SmallConfig

    def __init__(self, config, inputs):
        pass


class Narrow(MatrixFactorization):
    """Scores one column too few."""
    Config = MFConfig

    def scorer(self):
        inner = super().scorer()
        return lambda users: inner(users)[:, :-1]


class NaNScores(MatrixFactorization):
    Config = MFConfig

    def scorer(self):
        inner = super().scorer()
        return lambda users: inner(users) * float("nan")


class WrongFeatures(MatrixFactorization):
    Config = MFConfig

    def feature_tensors(self):
        return {"item_id": ["no_such_table.weight"]}


class BadGroup(MatrixFactorization):
    Config = MFConfig

    def feature_tensors(self):
        return {"colour": ["item_embedding.weight"]}


class Pop(MatrixFactorization):
    name = "pop"
    Config = MFConfig


class NegativeRate(MatrixFactorization):
    Config = MFConfig
    lr = -0.1


class OwnRate(MatrixFactorization):
    Config = MFConfig
    lr = 0.02


not_a_model = 42
'''


@pytest.fixture(scope="module")
def plugins(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plugins")
    (folder / "bad_plugins.py").write_text(textwrap.dedent(PLUGINS))
    sys.path.insert(0, str(folder))
    yield "bad_plugins"
    sys.path.remove(str(folder))
    for name in [n for n, spec in registry.SPECS.items() if (spec.target or "").startswith("bad_plugins:")]:
        registry.SPECS.pop(name)
        registry.MODELS.pop(name)


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    assert err.value.__cause__ is None or isinstance(err.value.__cause__, ConfigError)
    return message


@pytest.mark.parametrize("target, expected", [
    ("no_such_package.models:Model", "cannot be imported (ModuleNotFoundError"),
    ("bad_plugins:Missing", "has no attribute 'Missing'"),
    ("bad_plugins:", "is not of the form package.module:Attr"),
    ("bad_plugins:not_a_model", "is a int, not a model class or ModelSpec"),
    ("bad_plugins:NoConfig", "has no Config dataclass"),
    ("bad_plugins:NotDataclassConfig", "are not a dataclass"),
    ("bad_plugins:Pop", "model name 'pop' is already taken by a built-in model"),
    ("bad_plugins:NegativeRate", "the learning rate of model 'negative_rate' is -0.1"),
])
def test_a_plugin_that_cannot_be_registered_is_one_error_naming_it(plugins, target, expected):
    with pytest.raises(ConfigError) as err:
        resolve_model_names([target])
    message = one_line(err)
    assert expected in message and "setting 'models'" in message
    assert target.split(":")[0] in message or "pop" in message


@pytest.mark.parametrize("target, expected", [
    ("bad_plugins:Exploding", "building model 'exploding' failed (ValueError: boom in the constructor)"),
    ("bad_plugins:NoTraining", "is trainable but has neither forward(batch) nor loss(batch, generator)"),
    ("bad_plugins:NotAModule", "built a NotAModule, not a torch.nn.Module"),
])
def test_a_plugin_that_does_not_build_a_model_is_one_error(plugins, target, expected):
    name = load_plugin(target)
    with pytest.raises(ConfigError) as err:
        build_model(name, registry.SPECS[name].config_type(), tiny_inputs())
    assert expected in one_line(err)


@pytest.mark.parametrize("target, expected", [
    ("bad_plugins:Narrow", "scorer returned shape (2, 3) for 2 users, expected (2, 4)"),
    ("bad_plugins:NaNScores", "scorer returned 8 NaN or +inf scores for 2 users"),
])
def test_wrong_scores_are_one_error_naming_the_model(plugins, target, expected):
    name = load_plugin(target)
    model = build_model(name, registry.SPECS[name].config_type(), tiny_inputs())
    with pytest.raises(ConfigError) as err:
        checked_scorer(model)(torch.tensor([0, 1]))
    message = one_line(err)
    assert expected in message and f"model '{name}'" in message


@pytest.mark.parametrize("target, expected", [
    ("bad_plugins:WrongFeatures", "names ['no_such_table.weight'], which are neither parameters nor buffers"),
    ("bad_plugins:BadGroup", "names unknown group 'colour'"),
])
def test_feature_tensors_that_do_not_exist_are_one_error(plugins, target, expected):
    name = load_plugin(target)
    model = build_model(name, registry.SPECS[name].config_type(), tiny_inputs())
    with pytest.raises(ConfigError) as err:
        check_feature_tensors(model)
    assert expected in one_line(err)


def test_an_unknown_model_name_suggests_the_ways_to_bring_one():
    with pytest.raises(ConfigError) as err:
        resolve_model_names(["neumff"])
    assert "a model of your own: models=[mypkg.module:MyModel]" in one_line(err)


def test_the_entry_point_names_a_plugin_it_cannot_import_in_one_line_and_exit_code_2(tmp_path):
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    out = subprocess.run([sys.executable, "-m", "rayjobs.pipeline", "models=[pop,no_such_pkg.recs:MyModel]",
                          f"report.dir={tmp_path}/run"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 2
    text = out.stdout + out.stderr
    assert "Traceback" not in text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "plugin no_such_pkg.recs:MyModel cannot be imported" in errors[0]
    assert not (tmp_path / "run").exists()                               # nothing started, nothing written


def test_a_plugin_trains_at_its_own_rate_unless_the_run_sets_train_lr(plugins):
    from recsys.train.config import TrainConfig, for_model

    name = load_plugin("bad_plugins:OwnRate")
    assert for_model(TrainConfig(), name).lr == 0.02
    assert for_model(TrainConfig(lr=0.5), name).lr == 0.5
    assert for_model(TrainConfig(), "exploding_unknown").lr == 1e-3       # a model that names none: the default
