"""Where a run executes: a local Ray started with explicit resources, or an existing cluster."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional


@dataclass
class RayConfig:
    """``ray.*`` settings.

    ``address`` None starts a local single-node Ray with ``num_cpus`` (default: all
    cores of this machine); ``auto`` joins the cluster this machine belongs to; any
    other value (``ray://host:10001``, ``host:6379``) is passed to ``ray.init``.

    >>> RayConfig().address is None
    True
    """

    address: Optional[str] = None
    num_cpus: Optional[int] = None
    num_gpus: Optional[int] = None
    object_store_memory: Optional[int] = None   # bytes, local Ray only
    include_dashboard: bool = False
    log_to_driver: bool = True
    runtime_env: dict[str, str] = field(default_factory=dict)  # env vars for workers


def init_ray(cfg: RayConfig) -> dict:
    """Start or join Ray as configured and return the cluster's resources.

    Reuses an already initialised Ray (tests share one session).
    """
    import ray

    if not ray.is_initialized():
        env = {"env_vars": dict(cfg.runtime_env)} if cfg.runtime_env else None
        if cfg.address is None:
            ray.init(
                num_cpus=cfg.num_cpus or os.cpu_count(),
                num_gpus=cfg.num_gpus,
                object_store_memory=cfg.object_store_memory,
                include_dashboard=cfg.include_dashboard,
                log_to_driver=cfg.log_to_driver,
                runtime_env=env,
            )
        else:
            ray.init(address=cfg.address, log_to_driver=cfg.log_to_driver, runtime_env=env)
    return dict(ray.cluster_resources())
