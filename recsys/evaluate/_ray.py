"""Ray Data edge of evaluation: user shards scored by an actor pool, rows combined in the driver.

The model and the :class:`~recsys.evaluate.context.EvalContext` go into the
object store once (``ray.put``); a dataset of user shards (cut with
:func:`~recsys.evaluate.rows.shard_users` on the batch boundaries of the
single-process run) is mapped by :class:`ShardEvaluator` actors, each calling the
pure :func:`~recsys.evaluate.context.evaluate_split`; the driver joins the
returned rows with :func:`~recsys.evaluate.rows.combine`. The result equals the
single-process result exactly (tests/evaluate/test_ray_parity.py).

The pool is sized from ``ray.available_resources()``: actors reserve at most the
CPUs minus one, so Ray Data's read task always finds a CPU (see
recsys/embed/pool.py for what happens otherwise).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from recsys.evaluate.config import EvalConfig, check_eval_config
from recsys.evaluate.context import EvalContext, evaluate_split, split_users
from recsys.evaluate.rows import MetricRows, combine, evaluable_users, shard_users
from recsys.evaluate.topk import batch_size_for

MIN_ACTOR_CPUS = 0.01


def plan_actors(resources: Mapping[str, float], n_shards: int) -> tuple[int, float]:
    """``(actors, num_cpus per actor)`` leaving one CPU to Ray Data's tasks; a token share on one CPU.

    >>> plan_actors({"CPU": 2.0}, 8), plan_actors({"CPU": 9.0}, 4), plan_actors({"CPU": 1.0}, 3)
    ((1, 1.0), (4, 1.0), (1, 0.01))
    """
    usable = max(float(resources.get("CPU", 0.0)) - 1.0, MIN_ACTOR_CPUS)
    actors = max(1, min(int(n_shards), int(usable)))
    return actors, math.floor(min(1.0, usable / actors) * 10_000) / 10_000


class ShardEvaluator:
    """Ray Data callable: builds the scorer once, then turns each shard of users into metric rows."""

    def __init__(self, model, ctx: EvalContext, split: str, cfg: EvalConfig, threads: int = 1):
        import ray
        import torch

        torch.set_num_threads(max(1, threads))
        self.model = ray.get(model) if isinstance(model, ray.ObjectRef) else model
        self.ctx = ray.get(ctx) if isinstance(ctx, ray.ObjectRef) else ctx
        self.scorer = self.model.scorer()
        self.split, self.cfg = split, cfg

    def __call__(self, batch: dict) -> dict:
        parts = [evaluate_split(self.scorer, self.ctx, self.split, self.cfg, users=np.asarray(users, dtype=np.int64))
                 for users in batch["users"]]
        return combine(parts).to_batch()


def evaluate_split_ray(model, ctx: EvalContext, split: str, cfg: EvalConfig, *, n_shards: int | None = None,
                       ctx_ref=None) -> MetricRows:
    """:func:`evaluate_split` of every user with a held-out item, sharded over a Ray Data actor pool.

    ``model`` is a :class:`~recsys.models.base.Recommender` (anything with ``.scorer()``);
    ``n_shards`` defaults to twice the actors the cluster's free CPUs allow;
    ``ctx_ref`` reuses a context already in the object store.
    """
    import ray
    import ray.data

    check_eval_config(cfg)
    relevant, seen = ctx.masks(split)
    users = split_users(relevant)
    scored = evaluable_users(relevant, seen)
    unscored = np.setdiff1d(users, scored, assume_unique=True)           # held-out items all seen: excluded
    batch = batch_size_for(ctx.n_items, cfg.memory_budget_bytes)
    actors, cpus = plan_actors(ray.available_resources(), n_shards or max(1, -(-len(scored) // batch)))
    shards = shard_users(scored, n_shards or 2 * actors, batch) if len(scored) else []
    parts = []
    if shards:
        ctx_ref = ctx_ref if ctx_ref is not None else ray.put(ctx)
        model_ref = ray.put(model)
        dataset = ray.data.from_items([{"users": shard} for shard in shards], override_num_blocks=len(shards))
        mapped = dataset.map_batches(ShardEvaluator, batch_size=1, batch_format="numpy",
                                     concurrency=min(actors, len(shards)), num_cpus=cpus,
                                     fn_constructor_args=(model_ref, ctx_ref, split, cfg, max(1, int(cpus))))
        for out in mapped.iter_batches(batch_size=None, batch_format="numpy"):
            parts.append(MetricRows.from_batch(out, ctx.n_items))
    if len(unscored) or not parts:
        parts.append(evaluate_split(None, ctx, split, cfg, users=unscored))
    return combine(parts)
