"""Settings shared by every trained model (``train.*``).

>>> check_train_config(TrainConfig())
>>> check_train_config(TrainConfig(loss="hinge"))
Traceback (most recent call last):
...
recsys.errors.ConfigError: setting 'train.loss': unknown value 'hinge'. What to do: use one of softmax, sampled_softmax, bpr
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from recsys.errors import ConfigError

LOSSES = ("softmax", "sampled_softmax", "bpr")
OPTIMIZERS = ("adamw", "adam")
SAMPLINGS = ("uniform", "popularity")
ENGINES = ("ray", "local")
SCHEDULES = ("constant", "cosine")


@dataclass
class TrainConfig:
    """Optimisation, validation, instrumentation and distribution settings (``train.lr=...``).

    ``batch_size`` counts training targets per optimizer step: pair models take that many
    (user, item) pairs, sequence models ``batch_size // max_len`` windows (each up to
    ``max_len`` targets). With ``num_workers`` > 1 each step's batch is split across workers.

    >>> TrainConfig().loss
    'softmax'
    """

    lr: Optional[float] = None          # None: each model's own rate (ModelSpec.lr; DEFAULT_LR when it names none)
    epochs: int = 20
    batch_size: int = 1024
    weight_decay: float = 0.0
    grad_clip: Optional[float] = None   # max global gradient L2 norm; None: no clipping
    loss: str = "softmax"               # softmax | sampled_softmax | bpr
    num_workers: int = 1
    seed: int = 0
    patience: int = 3                   # epochs without a better val metric before stopping; 0: never stop early
    optimizer: str = "adamw"            # adamw (decoupled weight decay) | adam (L2 added to the gradient)
    lr_schedule: str = "constant"       # constant | cosine (per step, from lr down to 0 at the end of `epochs`)
    negatives: int = 256                # sampled_softmax: negatives shared by a batch (bpr: one per target)
    negative_sampling: str = "uniform"  # uniform | popularity (by training count), for sampled_softmax and bpr
    val_k: int = 10                     # validation metric: NDCG@val_k over every item, training items masked
    val_memory_budget_mb: int = 256     # validation scores held at once (users x items x 4 bytes)
    log_every: int = 10                 # steps between train/loss, lr and samples/s points
    probe_every: int = 50               # steps between per-layer gradient/weight/update statistics
    instrument: bool = True             # False: only epoch curves and the NaN/Inf guard (to measure the cost)
    engine: str = "ray"                 # ray: Ray Train TorchTrainer (DDP) | local: this process
    use_gpu: Optional[bool] = None      # None: use GPUs when the cluster has them
    cpus_per_worker: Optional[float] = None   # None: leave one CPU free for the trainer, split the rest
    max_failures: int = 2               # worker failures Ray Train recovers from (from the last checkpoint)
    checkpoint_dir: Optional[str] = None     # None: <report dir>/checkpoints/<model>


DEFAULT_LR = 1e-3


def for_model(cfg: TrainConfig, name: str) -> TrainConfig:
    """``cfg`` with ``lr`` filled for model ``name`` when the run leaves ``train.lr`` null: the model's own
    recommended rate (``ModelSpec.lr``), else :data:`DEFAULT_LR`. A set ``train.lr`` is kept for every model.

    >>> for_model(TrainConfig(), "lightgcn").lr, for_model(TrainConfig(), "two_tower").lr
    (0.01, 0.001)
    >>> for_model(TrainConfig(lr=0.05), "lightgcn").lr
    0.05
    """
    if cfg.lr is not None:
        return cfg
    from dataclasses import replace

    from recsys.models.registry import SPECS

    spec = SPECS.get(name)
    return replace(cfg, lr=spec.lr if spec is not None and spec.lr is not None else DEFAULT_LR)


def _one_of(value, choices: tuple[str, ...], setting: str) -> None:
    if value not in choices:
        raise ConfigError(f"unknown value {value!r}", setting=setting, hint=f"use one of {', '.join(choices)}")


def check_train_config(cfg: TrainConfig) -> None:
    """Raise a :class:`ConfigError` naming the setting when ``cfg`` asks for something impossible."""
    _one_of(cfg.loss, LOSSES, "train.loss")
    _one_of(cfg.optimizer, OPTIMIZERS, "train.optimizer")
    _one_of(cfg.negative_sampling, SAMPLINGS, "train.negative_sampling")
    _one_of(cfg.engine, ENGINES, "train.engine")
    _one_of(cfg.lr_schedule, SCHEDULES, "train.lr_schedule")
    checks = [
        ("lr", cfg.lr is None or cfg.lr > 0, "use e.g. train.lr=0.001, or null for each model's own rate"),
        ("epochs", cfg.epochs >= 1, "a trained model needs at least one epoch: use e.g. train.epochs=20"),
        ("batch_size", cfg.batch_size >= 1, "use e.g. train.batch_size=256"),
        ("weight_decay", cfg.weight_decay >= 0, "use e.g. train.weight_decay=0.0"),
        ("grad_clip", cfg.grad_clip is None or cfg.grad_clip > 0, "use a positive norm, or null for none"),
        ("num_workers", cfg.num_workers >= 1, "use e.g. train.num_workers=1"),
        ("patience", cfg.patience >= 0, "use e.g. train.patience=3 (0: never stop early)"),
        ("negatives", cfg.negatives >= 1, "use e.g. train.negatives=256"),
        ("val_k", cfg.val_k >= 1, "use e.g. train.val_k=10"),
        ("val_memory_budget_mb", cfg.val_memory_budget_mb >= 1, "use e.g. 256"),
        ("log_every", cfg.log_every >= 1, "use e.g. train.log_every=10"),
        ("probe_every", cfg.probe_every >= 1, "use e.g. train.probe_every=50"),
        ("cpus_per_worker", cfg.cpus_per_worker is None or cfg.cpus_per_worker > 0, "use e.g. 1, or null"),
        ("max_failures", cfg.max_failures >= -1, "use e.g. 2 (-1: unlimited)"),
    ]
    for name, ok, hint in checks:
        if not ok:
            raise ConfigError(f"value {getattr(cfg, name)!r} is out of range", setting=f"train.{name}", hint=hint)
