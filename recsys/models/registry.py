"""The model registry: name -> (config dataclass, model class), and the typed ``model.*`` settings.

>>> sorted(MODELS)
['content', 'mf', 'pop', 'sasrec', 'two_tower']
>>> from recsys.models.base import tiny_inputs
>>> build_model("mf", ModelSettings().mf, tiny_inputs()).n_items
4
"""

from __future__ import annotations

from dataclasses import dataclass, field

from recsys.errors import ConfigError
from recsys.models.base import ModelInputs, Recommender
from recsys.models.content import ContentConfig, ContentModel
from recsys.models.mf import MatrixFactorization, MFConfig
from recsys.models.pop import PopConfig, Popularity
from recsys.models.sasrec import SASRec, SASRecConfig
from recsys.models.two_tower import TwoTower, TwoTowerConfig

MODELS: dict[str, tuple[type, type[Recommender]]] = {
    "pop": (PopConfig, Popularity),
    "mf": (MFConfig, MatrixFactorization),
    "content": (ContentConfig, ContentModel),
    "two_tower": (TwoTowerConfig, TwoTower),
    "sasrec": (SASRecConfig, SASRec),
}


@dataclass
class ModelSettings:
    """``model.<name>.<param>``: one typed section per registered model."""

    pop: PopConfig = field(default_factory=PopConfig)
    mf: MFConfig = field(default_factory=MFConfig)
    content: ContentConfig = field(default_factory=ContentConfig)
    two_tower: TwoTowerConfig = field(default_factory=TwoTowerConfig)
    sasrec: SASRecConfig = field(default_factory=SASRecConfig)

    def for_model(self, name: str):
        """The settings of model ``name`` (a :class:`ConfigError` for an unknown name).

        >>> ModelSettings().for_model("two_tower").pooling
        'mean'
        """
        check_model_names([name])
        return getattr(self, name)


def check_model_names(names: list[str]) -> None:
    """Raise a :class:`ConfigError` naming ``models`` when a name is not registered.

    >>> check_model_names(["mf", "bpr"])
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'models': unknown model(s) ['bpr']. What to do: models are pop, mf, content, two_tower, sasrec
    """
    unknown = [name for name in names if name not in MODELS]
    if unknown:
        raise ConfigError(f"unknown model(s) {unknown}", setting="models", hint=f"models are {', '.join(MODELS)}")


def build_model(name: str, config, inputs: ModelInputs) -> Recommender:
    """A fresh model ``name`` with ``config`` over ``inputs``."""
    check_model_names([name])
    config_type, model_type = MODELS[name]
    if not isinstance(config, config_type):
        raise ConfigError(f"model '{name}' got a {type(config).__name__}, expected {config_type.__name__}",
                          setting=f"model.{name}", hint=f"pass ModelSettings().{name} or a {config_type.__name__}")
    model = model_type(config, inputs)
    model.name = name
    return model
