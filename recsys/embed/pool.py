"""How many encoder actors, with which resources: planned from the cluster's resources, never a constant.

- GPUs present (and ``encoder.device`` not ``cpu``): one actor per GPU, ``num_gpus=1``
  each, a CPU share for tokenising, vectors computed on the GPU.
- CPU only: ``threads_per_actor`` torch threads per actor (default 2, fewer on a
  smaller machine) and as many actors as the CPUs hold. The actors' logical CPU
  reservations leave one whole CPU free, because Ray Data's read and write tasks
  each ask for one: a pool that reserves more starves the tasks that feed it and
  the pipeline hangs. On a one-CPU machine the actor reserves only a token share
  (its torch threads still run; the reservation is logical).

>>> plan_pool({"CPU": 2.0}, EncoderConfig())
PoolPlan(actors=1, num_cpus=1.0, num_gpus=0.0, threads=2, device='cpu')
>>> plan_pool({"CPU": 16.0, "GPU": 2.0}, EncoderConfig())
PoolPlan(actors=2, num_cpus=1.0, num_gpus=1.0, threads=2, device='cuda')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from recsys.embed.config import EncoderConfig
from recsys.errors import ConfigError

DEFAULT_THREADS = 2


@dataclass(frozen=True)
class PoolPlan:
    """Size and per-actor resources of the encoder actor pool."""

    actors: int
    num_cpus: float
    num_gpus: float
    threads: int
    device: str

    @property
    def total_threads(self) -> int:
        return self.actors * self.threads


def _share(cpus: float) -> float:
    """A CPU amount rounded down to Ray's resolution (1e-4), so the sum never exceeds what was planned."""
    return math.floor(cpus * 10_000) / 10_000


MIN_ACTOR_CPUS = 0.01  # the token reservation when no whole CPU can be spared


def _reserve_for_tasks(cpus: float) -> float:
    return 1.0


def plan_pool(resources: Mapping[str, float], cfg: EncoderConfig) -> PoolPlan:
    """Plan the pool from ``resources`` (``ray.available_resources()``) and the encoder settings.

    >>> plan_pool({"CPU": 16.0}, EncoderConfig())
    PoolPlan(actors=8, num_cpus=1.875, num_gpus=0.0, threads=2, device='cpu')
    >>> plan_pool({"CPU": 1.0}, EncoderConfig()).num_cpus
    0.01
    """
    cpus = max(float(resources.get("CPU", 0.0)), 1.0)
    gpus = int(resources.get("GPU", 0.0))
    if cfg.actors is not None and cfg.actors < 1:
        raise ConfigError(f"actors must be at least 1, got {cfg.actors}", setting="encoder.actors",
                          hint="leave encoder.actors unset to size the pool from the cluster")
    if cfg.threads_per_actor is not None and cfg.threads_per_actor < 1:
        raise ConfigError(f"threads_per_actor must be at least 1, got {cfg.threads_per_actor}",
                          setting="encoder.threads_per_actor", hint="use a positive number, or leave it unset")
    if cfg.device == "cuda" and gpus < 1:
        raise ConfigError("encoder.device is cuda but the cluster has no free GPU", setting="encoder.device",
                          hint="use encoder.device=auto or cpu, or add GPU nodes to the cluster")
    usable = max(cpus - _reserve_for_tasks(cpus), MIN_ACTOR_CPUS)
    if gpus >= 1 and cfg.device != "cpu":
        actors = min(cfg.actors or gpus, gpus)
        threads = cfg.threads_per_actor or DEFAULT_THREADS
        return PoolPlan(actors, _share(min(1.0, usable / actors)), 1.0, threads, "cuda")
    threads = cfg.threads_per_actor or max(1, min(DEFAULT_THREADS, int(cpus)))
    actors = cfg.actors or max(1, math.floor(cpus / threads))
    return PoolPlan(actors, _share(min(float(threads), usable / actors)), 0.0, threads, "cpu")
