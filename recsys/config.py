"""The whole configuration as one dataclass tree, registered with Hydra's ConfigStore.

No logic lives here: each section's dataclass sits beside the code it configures and
is only assembled and registered here. Hydra validates every YAML file and override
against these schemas, so a misspelt key or a wrong type fails before any work starts.

>>> cfg = RecsysConfig()
>>> cfg.dataset.name, cfg.split.protocol, cfg.models
('synthetic', 'random', ['pop', 'mf', 'content', 'two_tower', 'sasrec'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from recsys.console import LogConfig
from recsys.data.config import DataConfig, DatasetConfig, SplitConfig
from recsys.diagnose.config import DiagnoseConfig
from recsys.embed.config import EncoderConfig
from recsys.evaluate.config import EvalConfig
from recsys.evaluate.crossdata import CompareConfig
from recsys.models.registry import ModelSettings
from recsys.runtime import RayConfig
from recsys.train.config import TrainConfig
from recsys.tune.config import TuneConfig


@dataclass
class ReportConfig:
    """Where a run's tables go: ``dir`` if set, else ``<root>/<run_id>``."""

    dir: Optional[str] = None
    root: str = "reports"


@dataclass
class RecsysConfig:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    datasets: list[DatasetConfig] = field(default_factory=list)   # several in one run; empty: just `dataset`
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    models: list[str] = field(default_factory=lambda: ["pop", "mf", "content", "two_tower", "sasrec"])
    model: ModelSettings = field(default_factory=ModelSettings)   # model.<name>.<param>, one section per model
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    diagnose: DiagnoseConfig = field(default_factory=DiagnoseConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    log: LogConfig = field(default_factory=LogConfig)             # console and the run's log file


GROUP_SCHEMAS = {
    "dataset": DatasetConfig,
    "encoder": EncoderConfig,
    "model": ModelSettings,
    "train": TrainConfig,
    "eval": EvalConfig,
    "compare": CompareConfig,
    "diagnose": DiagnoseConfig,
    "tune": TuneConfig,
    "report": ReportConfig,
    "ray": RayConfig,
    "log": LogConfig,
}


def register_configs() -> None:
    """Register the root schema (``base_config``) and one ``base_<group>`` schema per group.

    YAML files in ``configs/<group>/`` start with ``defaults: [base_<group>, _self_]``
    so Hydra checks them against the dataclass.
    """
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="base_config", node=RecsysConfig)
    for group, schema in GROUP_SCHEMAS.items():
        store.store(group=group, name=f"base_{group}", node=schema)
