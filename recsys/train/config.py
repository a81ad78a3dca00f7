"""Settings shared by every trained model (``train.*``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class TrainConfig:
    """Optimisation settings; names are those users type (``train.lr=...``).

    >>> TrainConfig().loss
    'softmax'
    """

    lr: float = 1e-3
    epochs: int = 20
    batch_size: int = 256
    weight_decay: float = 0.0
    grad_clip: Optional[float] = None
    loss: str = "softmax"               # softmax | sampled_softmax | bpr
    num_workers: int = 1
    seed: int = 0
    patience: int = 3
