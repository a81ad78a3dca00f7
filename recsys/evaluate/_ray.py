"""Ray Data edge of evaluation: user shards scored by an actor pool, rows combined in the driver.

The model and the :class:`~recsys.evaluate.context.EvalContext` go into the
object store once (``ray.put``); a dataset of user shards (cut with
:func:`~recsys.evaluate.rows.shard_users` on the batch boundaries of the
single-process run) is mapped by :class:`ShardEvaluator` actors, each calling the
pure :func:`~recsys.evaluate.context.evaluate_split`; the driver joins the
returned rows with :func:`~recsys.evaluate.rows.combine`. The result equals the
single-process result exactly (tests/evaluate/test_ray_parity.py) when both score
with the same number of torch threads (an actor uses as many as the CPUs it
reserves, at least one): a CPU matrix product may round a row differently when
another thread count splits the batch differently.

The pool is sized from ``ray.available_resources()``: actors reserve at most the
CPUs minus one, so Ray Data's read task always finds a CPU (see
recsys/embed/pool.py for what happens otherwise). Ray 2.x logs "Actor ... has
constructor arguments in the object store" for any actor pool of Ray Data
(ray-project/ray#57733); it is not about these arguments.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from recsys.console import ProgressLine
from recsys.evaluate.config import EvalConfig, check_eval_config
from recsys.evaluate.context import EvalContext, evaluate_split, split_users
from recsys.evaluate.history import query_model
from recsys.evaluate.rows import MetricRows, combine, evaluable_users, shard_users
from recsys.evaluate.topk import batch_size_for
from recsys.models.contract import checked_scorer

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
    """Ray Data callable: turns each shard of users of one task (model, split) into metric rows.

    ``shared``: ``{"models": {name: model or object reference}, "ctx": context or
    reference}``; each model's scorer is built once per actor, the first time one
    of its shards arrives (per split: test queries may read the validation interactions too,
    :mod:`recsys.evaluate.history`).
    """

    def __init__(self, shared: Mapping, cfg: EvalConfig, tasks: list[tuple[str, str]], threads: int = 1):
        import ray
        import torch

        torch.set_num_threads(max(1, threads))
        # object references travel inside a dict (Ray does not resolve nested ones): fetched here, once per actor
        self.models = dict(shared["models"])
        ctx = shared["ctx"]
        self.ctx = ray.get(ctx) if isinstance(ctx, ray.ObjectRef) else ctx
        self.cfg, self.tasks = cfg, list(tasks)
        self.scorers = {}

    def _scorer(self, name: str, split: str):
        if (name, split) not in self.scorers:
            import ray

            model = self.models[name]
            if isinstance(model, ray.ObjectRef):
                model = self.models[name] = ray.get(model)                      # fetched once per actor
            queried = query_model(model, self.ctx, split, self.cfg.query_history)
            self.scorers[name, split] = checked_scorer(queried)
        return self.scorers[name, split]

    def __call__(self, batch: dict) -> dict:
        (task,), (users,) = batch["task"], batch["users"]
        name, split = self.tasks[int(task)]
        users = np.asarray(users, dtype=np.int64)
        rows = evaluate_split(self._scorer(name, split), self.ctx, split, self.cfg, users=users)
        return {"task": np.full(rows.n_users, task, dtype=np.int64), **rows.to_batch()}


def evaluate_many_ray(models: Mapping, ctx: EvalContext, splits: list[str], cfg: EvalConfig, *,
                      n_shards: int | None = None, ctx_ref=None) -> dict[str, dict[str, MetricRows]]:
    """:func:`evaluate_split` of every (model, split) in one Ray Data job: ``{model: {split: MetricRows}}``.

    ``models`` maps name to a :class:`~recsys.models.base.Recommender` (anything with
    ``.scorer()``); each (model, split) covers every user with a held-out item.
    ``n_shards`` (per model and split) defaults to twice the actors the cluster's
    free CPUs allow; ``ctx_ref`` reuses a context already in the object store.
    """
    import ray
    import ray.data

    check_eval_config(cfg)
    batch = batch_size_for(ctx.n_items, cfg.memory_budget_bytes)
    tasks = [(name, split) for name in models for split in splits]
    scored, unscored = {}, {}
    for split in splits:
        relevant, seen = ctx.masks(split)
        scored[split] = evaluable_users(relevant, seen)
        unscored[split] = np.setdiff1d(split_users(relevant), scored[split], assume_unique=True)   # excluded users
    most_batches = max(-(-len(users) // batch) for users in scored.values())
    actors, cpus = plan_actors(ray.available_resources(), max(1, len(models) * most_batches))
    items = [{"task": t, "users": shard} for t, (_, split) in enumerate(tasks)
             for shard in (shard_users(scored[split], n_shards or 2 * actors, batch) if len(scored[split]) else [])]
    parts: dict[int, list[MetricRows]] = {t: [] for t in range(len(tasks))}
    if items:
        ctx_ref = ctx_ref if ctx_ref is not None else ray.put(ctx)
        refs = {name: ray.put(model) for name, model in models.items()}
        dataset = ray.data.from_items(items, override_num_blocks=len(items))
        mapped = dataset.map_batches(ShardEvaluator, batch_size=1, batch_format="numpy",
                                     compute=ray.data.ActorPoolStrategy(size=min(actors, len(items))),
                                     num_cpus=cpus,
                                     fn_constructor_args=({"models": refs, "ctx": ctx_ref}, cfg, tasks,
                                                          max(1, int(cpus))))
        progress = ProgressLine(sum(len(item["users"]) for item in items), "evaluate", unit="user rankings")
        for out in mapped.iter_batches(batch_size=None, batch_format="numpy"):
            task = np.asarray(out["task"])
            progress.update(len(task))
            for t in np.unique(task):
                keep = task == t
                columns = {name: np.asarray(value)[keep] for name, value in out.items() if name != "task"}
                parts[int(t)].append(MetricRows.from_batch(columns, ctx.n_items))
        progress.close()
    result: dict[str, dict[str, MetricRows]] = {name: {} for name in models}
    for t, (name, split) in enumerate(tasks):
        if len(unscored[split]) or not parts[t]:
            parts[t].append(evaluate_split(None, ctx, split, cfg, users=unscored[split]))
        result[name][split] = combine(parts[t])
    return result


def evaluate_split_ray(model, ctx: EvalContext, split: str, cfg: EvalConfig, *, n_shards: int | None = None,
                       ctx_ref=None) -> MetricRows:
    """:func:`evaluate_split` of every user with a held-out item, sharded over a Ray Data actor pool."""
    return evaluate_many_ray({"model": model}, ctx, [split], cfg, n_shards=n_shards, ctx_ref=ctx_ref)["model"][split]
