"""The model registry: one :class:`ModelSpec` (config dataclass + builder) per model name.

Three ways in, all explicit:

- the built-ins (``BUILTINS`` below);
- a ``recsys.models`` entry point in an installed package (entry name = model name,
  value ``package.module:Target``), discovered when this module is imported;
- ``models=[package.module:Target]`` in a run's settings (:func:`resolve_model_names`).

``Target`` is a :class:`ModelSpec`, or a model class with a ``Config`` dataclass
attribute and a constructor ``Target(config, inputs)`` (its name: a ``name`` class
attribute, else the class name in snake case; its tuning ranges: an optional
``search_space`` class attribute, in ``configs/tune`` leaf form). ``ModelSettings`` (the typed
``model.<name>.*`` section) is derived from the registered specs, so a plugin's
settings are checked like a built-in's. A plugin that cannot be imported or breaks the
contract gives a :class:`~recsys.errors.ConfigError` naming the plugin.

>>> [spec.name for spec in BUILTINS][:5]
['pop', 'mf', 'content', 'two_tower', 'sasrec']
>>> from recsys.models.base import tiny_inputs
>>> build_model("mf", ModelSettings().mf, tiny_inputs()).n_items
4
>>> spec_from_target("recsys.models.mf:MFConfig")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
recsys.errors.ConfigError: setting 'models': plugin recsys.models.mf:MFConfig: class MFConfig has no Config dataclass...
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import torch.nn as nn

from recsys.errors import ConfigError
from recsys.models.base import ModelInputs
from recsys.models.contract import check_model
from recsys.models.content import ContentConfig, ContentModel
from recsys.models.finetune import FineTune, FineTuneConfig
from recsys.models.lightgcn import LightGCN, LightGCNConfig
from recsys.models.mf import MatrixFactorization, MFConfig
from recsys.models.pop import PopConfig, Popularity
from recsys.models.sasrec import SASRec, SASRecConfig
from recsys.models.textgraph import TextGraph, TextGraphConfig
from recsys.models.two_tower import TwoTower, TwoTowerConfig

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "recsys.models"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its ``name`` (``models=[...]``, ``model.<name>.*``), settings and builder.

    ``builder(config, inputs)`` returns a fresh model; ``target`` (``"pkg.module:Attr"``) is
    where a plugin was found, recorded in checkpoints so another process can import it again.
    """

    name: str
    config_type: type
    builder: Callable[[Any, ModelInputs], nn.Module]
    target: Optional[str] = None
    search_space: Optional[dict] = None       # {setting: {type: ..., ...}}: ranges the tune stage may search
    lr: Optional[float] = None                # train.lr when the run leaves it null (None: recsys.train.config.DEFAULT_LR)

    def __post_init__(self) -> None:
        where = self.target or self.name
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError(f"plugin {where}: model name {self.name!r} is not a lower-case identifier",
                              setting="models", hint="name models like my_model (letters, digits, _)")
        if not (isinstance(self.config_type, type) and dataclasses.is_dataclass(self.config_type)):
            raise ConfigError(f"plugin {where}: the settings of model '{self.name}' are not a dataclass",
                              setting="models", hint="give the model a @dataclass Config with defaults")
        if self.lr is not None and not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ConfigError(f"plugin {where}: the learning rate of model '{self.name}' is {self.lr!r}",
                              setting="models", hint="give a positive lr, or None for train.lr's default")
        if not callable(self.builder):
            raise ConfigError(f"plugin {where}: the builder of model '{self.name}' is not callable",
                              setting="models", hint="the builder is called as builder(config, inputs)")


BUILTINS = [
    ModelSpec("pop", PopConfig, Popularity),
    ModelSpec("mf", MFConfig, MatrixFactorization, lr=3e-3),
    ModelSpec("content", ContentConfig, ContentModel, lr=1e-3),
    ModelSpec("two_tower", TwoTowerConfig, TwoTower, lr=1e-3),
    ModelSpec("sasrec", SASRecConfig, SASRec, lr=1e-3),
    ModelSpec("lightgcn", LightGCNConfig, LightGCN, lr=1e-2),
    ModelSpec("textgraph", TextGraphConfig, TextGraph, lr=1e-3),
    ModelSpec("finetune", FineTuneConfig, FineTune, lr=1e-3),
]

SPECS: dict[str, ModelSpec] = {}
MODELS: dict[str, tuple[type, Callable]] = {}      # name -> (config dataclass, builder): every registered model
BROKEN: dict[str, str] = {}                        # entry-point name -> why it could not be loaded


def register(spec: ModelSpec) -> ModelSpec:
    """Add ``spec``; registering the same target again is a no-op, another model under a taken name an error."""
    known = SPECS.get(spec.name)
    if known is not None:
        if known.target == spec.target and known.builder is spec.builder:
            return known
        raise ConfigError(f"model name '{spec.name}' is already taken by {known.target or 'a built-in model'}",
                          setting="models", hint=f"give plugin {spec.target} another name")
    SPECS[spec.name] = spec
    MODELS[spec.name] = (spec.config_type, spec.builder)
    return spec


def snake_case(name: str) -> str:
    """``NeuMFScorer`` -> ``neu_mf_scorer``.

    >>> snake_case("MatrixFactorization"), snake_case("NeuMF")
    ('matrix_factorization', 'neu_mf')
    """
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def spec_from_target(target: str, name: Optional[str] = None) -> ModelSpec:
    """Import ``"pkg.module:Attr"`` and turn it into a :class:`ModelSpec` (a clear error naming it otherwise)."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"plugin {target!r} is not of the form package.module:Attr", setting="models",
                          hint="name a plugin model like mypkg.recs:MyModel")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure of a user's module is reported as such
        raise ConfigError(f"plugin {target} cannot be imported ({type(exc).__name__}: {exc})", setting="models",
                          hint="install the package that holds it, or put its folder on PYTHONPATH") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"plugin {target}: module {module_name} has no attribute {attr!r}", setting="models",
                              hint="check the name after the colon") from None
        obj = getattr(obj, part)
    if isinstance(obj, ModelSpec):
        spec = obj
    elif isinstance(obj, type):
        config_type = getattr(obj, "Config", None)
        if config_type is None:
            raise ConfigError(f"plugin {target}: class {obj.__name__} has no Config dataclass", setting="models",
                              hint="add `Config = MyConfig` (a @dataclass with defaults) to the class, "
                                   "or register a ModelSpec")
        own_name = obj.__dict__.get("name")
        spec = ModelSpec(own_name if isinstance(own_name, str) else snake_case(obj.__name__), config_type, obj,
                         target=target, search_space=getattr(obj, "search_space", None),
                         lr=getattr(obj, "lr", None))
    else:
        raise ConfigError(f"plugin {target} is a {type(obj).__name__}, not a model class or ModelSpec",
                          setting="models", hint="point at the model class or a recsys.models.registry.ModelSpec")
    if name is not None and spec.name != name:
        spec = dataclasses.replace(spec, name=name)
    return dataclasses.replace(spec, target=target)


def load_plugin(target: str, name: Optional[str] = None) -> str:
    """Import and register the plugin model at ``target``; returns its registered name."""
    spec = spec_from_target(target, name)
    known = SPECS.get(spec.name)
    if known is not None and known.target == target:
        return known.name
    return register(spec).name


def ensure_registered(name: str, target: Optional[str]) -> None:
    """Make model ``name`` known in this process (a Ray worker): import its plugin ``target`` if needed."""
    if name not in SPECS and target:
        load_plugin(target, name)


def discover_entry_points() -> None:
    """Register every ``recsys.models`` entry point; a broken one is remembered (and logged), not fatal here."""
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name in SPECS:
            continue
        try:
            load_plugin(point.value, point.name)
        except ConfigError as err:
            BROKEN[point.name] = f"entry point '{point.name}' ({point.value}) of group {ENTRY_POINT_GROUP}: {err.problem}"
            log.warning("model plugin not loaded: %s", BROKEN[point.name])


def resolve_model_names(entries: list[str]) -> list[str]:
    """The registered names of ``models=[...]`` entries, importing ``package.module:Attr`` ones.

    >>> resolve_model_names(["mf", "two_tower"])
    ['mf', 'two_tower']
    """
    names = [load_plugin(entry) if ":" in entry else entry for entry in entries]
    check_model_names(names)
    return names


def get_spec(name: str) -> ModelSpec:
    check_model_names([name])
    return SPECS[name]


def check_model_names(names: list[str]) -> None:
    """Raise a :class:`ConfigError` naming ``models`` when a name is not registered.

    >>> check_model_names(["mf", "bpr"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'models': unknown model(s) ['bpr']. What to do: models are pop, mf, ...
    """
    broken = [name for name in names if name not in SPECS and name in BROKEN]
    if broken:
        raise ConfigError(f"model plugin {BROKEN[broken[0]]}", setting="models",
                          hint="fix or reinstall the plugin package, or leave the model out of models=[...]")
    unknown = [name for name in names if name not in SPECS]
    if unknown:
        raise ConfigError(f"unknown model(s) {unknown}", setting="models",
                          hint=f"models are {', '.join(SPECS)}; a model of your own: models=[mypkg.module:MyModel]"
                               " or a recsys.models entry point")


def _for_model(self, name: str):
    """The settings of model ``name`` (a :class:`ConfigError` for an unknown name).

    A plugin registered after these settings were made gets its defaults.

    >>> ModelSettings().for_model("two_tower").pooling
    'mean'
    """
    check_model_names([name])
    value = getattr(self, name, None)
    return value if value is not None else SPECS[name].config_type()


def settings_type() -> type:
    """A ``ModelSettings`` dataclass with one typed section per registered model (Hydra's ``model`` schema)."""
    return dataclasses.make_dataclass(
        "ModelSettings",
        [(spec.name, spec.config_type, field(default_factory=spec.config_type)) for spec in SPECS.values()],
        namespace={"for_model": _for_model, "__module__": __name__,
                   "__doc__": "``model.<name>.<param>``: one typed section per registered model."})


def refresh_settings() -> type:
    """Rebuild ``ModelSettings`` after plugins were registered (before any config object is made)."""
    global ModelSettings
    ModelSettings = settings_type()
    return ModelSettings


def build_model(name: str, config, inputs: ModelInputs) -> nn.Module:
    """A fresh model ``name`` with ``config`` over ``inputs``."""
    spec = get_spec(name)
    if not isinstance(config, spec.config_type):
        raise ConfigError(f"model '{name}' got a {type(config).__name__}, expected {spec.config_type.__name__}",
                          setting=f"model.{name}", hint=f"pass ModelSettings().{name} or a {spec.config_type.__name__}")
    try:
        model = spec.builder(config, inputs)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - a plugin's constructor failing is reported as the plugin's fault
        if spec.target is None:
            raise
        raise ConfigError(f"plugin {spec.target}: building model '{name}' failed ({type(exc).__name__}: {exc})",
                          setting=f"model.{name}", hint="run recsys.testing's contract tests on the model") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"plugin {spec.target}: model '{name}' built a {type(model).__name__}, not a torch.nn.Module",
                          setting="models", hint="a model is a torch.nn.Module (subclass recsys.models.base.Recommender)")
    model.name = name
    check_model(model)
    return model


for _spec in BUILTINS:
    register(_spec)
discover_entry_points()
ModelSettings = settings_type()
