"""One Ray cluster of three nodes on this machine (``ray.cluster_utils.Cluster``), driven through the stages.

Run as its own process (``python -m tests.cluster.multinode_driver OUT.json``) so it
owns its Ray connection; tests/cluster/test_multinode.py checks what it writes:

- ``evaluate``: the evaluation actors ran on more than one node; a worker node that
  hosts one of them is killed while the stage runs, and the rows still cover each
  evaluable user exactly once with the single-process values.
- ``train``: Ray Train with 2 workers, one per node, completes.
- ``embed_kill``: the default encoder in two one-CPU actors, whose tasks run on more
  than one node; a worker node hosting one is killed while it encodes (then a fresh
  node joins); every item still gets exactly one vector, equal to the single-process
  engine's.

Each node has one CPU, so two one-CPU actors can only run on two nodes.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

HEAD_RESOURCES = {"num_cpus": 1, "object_store_memory": 150_000_000, "include_dashboard": True,
                  "dashboard_host": "127.0.0.1"}   # on a free port (main): 8265 may be another Ray's
WORKER_RESOURCES = {"num_cpus": 1, "object_store_memory": 150_000_000}


def actor_nodes_of_tasks(fragment: str, since: float) -> dict[str, int]:
    """Finished actor tasks whose class name holds ``fragment`` (started after ``since``), counted per node."""
    from ray.util.state import list_tasks

    tasks = list_tasks(filters=[("type", "=", "ACTOR_TASK")], detail=True, limit=10_000, raise_on_missing_output=False)
    counts: dict[str, int] = {}
    for task in tasks:
        name = task.func_or_class_name or ""
        started = (task.start_time_ms or 0) / 1000
        if fragment in name and started >= since and task.node_id:
            counts[task.node_id] = counts.get(task.node_id, 0) + 1
    return counts


def poll_task_nodes(fragment: str, since: float, expect_at_least: int, deadline_s: float = 30) -> dict[str, int]:
    """Task events reach the GCS asynchronously: poll until ``expect_at_least`` tasks are recorded."""
    deadline = time.monotonic() + deadline_s
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        counts = actor_nodes_of_tasks(fragment, since)
        if sum(counts.values()) >= expect_at_least:
            break
        time.sleep(0.5)
    return counts


def alive_actors(class_fragment: str) -> list[dict]:
    from ray._private.state import actors

    return [a for a in actors().values() if class_fragment in a["ActorClassName"] and a["State"] == "ALIVE"]


def embed_with_a_node_killed(cluster, work: Path) -> dict:
    """The default encoder (MiniLM) in 2 one-CPU actors; a worker node hosting one is killed while it encodes."""
    import pyarrow.parquet as pq

    from recsys.data.config import DataConfig, SplitConfig
    from recsys.data.prepare import prepare
    from recsys.embed.cache import EmbeddingCache
    from recsys.embed.catalogue import embed_catalogue, load_item_vectors
    from recsys.embed.config import EncoderConfig
    from tests.embed.fixtures import tiny_synthetic

    prepared = prepare(tiny_synthetic(n_items=600, seed=1), DataConfig(cache_dir=str(work / "prepared-kill"),
                                                                       engine="local"), SplitConfig())
    cfg = EncoderConfig(actors=2, threads_per_actor=1, rows_per_block=16, progress_every_s=0)
    removed: dict = {}
    killer = threading.Thread(target=kill_a_worker_node_running, args=(cluster, "MapWorker", removed), daemon=True)
    started = time.time()
    killer.start()
    result = embed_catalogue(prepared, cfg, work / "cache-kill", engine="ray")
    finished = time.time()
    killer.join(timeout=5)
    task_nodes = poll_task_nodes("MapWorker", started, expect_at_least=2)
    local = embed_catalogue(prepared, cfg, work / "cache-kill-local", engine="local")
    item_map = prepared.item_map()
    ids = pq.read_table(result.path, columns=["item_id"]).column("item_id").to_pylist()
    cached = [h for part in EmbeddingCache(result.cache_dir).part_files()
              for h in pq.read_table(part, columns=["text_hash"]).column("text_hash").to_pylist()]
    return {
        "removed": removed, "started_at": started, "finished_at": finished, "task_nodes": task_nodes,
        "item_ids": ids, "expected_ids": sorted(item_map["item_id"].to_list()),
        "n_texts": result.counts["n_texts"], "n_cached_rows": len(cached), "n_cached_hashes": len(set(cached)),
        "max_abs_diff": float(np.abs(load_item_vectors(result.path, item_map)
                                     - load_item_vectors(local.path, item_map)).max()),
    }


def kill_a_worker_node_running(cluster, class_fragment: str, removed: dict, settle_s: float = 1.0) -> None:
    """Once an actor of ``class_fragment`` is alive on a worker node, kill that node (no graceful drain)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for actor in alive_actors(class_fragment):
            node_id = actor["Address"]["NodeID"]
            victim = next((n for n in cluster.worker_nodes if n.node_id == node_id), None)
            if victim is not None:
                time.sleep(settle_s)              # let it take work first
                removed.update(node_id=node_id, at=time.time())
                cluster.remove_node(victim, allow_graceful=False)
                return
        time.sleep(0.05)


def eval_world(seed=0, n_users=3000, n_items=40_000):
    """An untrained mf model and a random split world, big enough that scoring takes a while on one CPU."""
    from recsys.evaluate.context import EvalContext
    from recsys.models.mf import MFConfig
    from recsys.models.registry import build_model
    from recsys.train.data import TrainingData

    rng = np.random.default_rng(seed)
    train = (rng.integers(0, n_users, 30_000), rng.integers(0, n_items, 30_000))
    val = (rng.integers(0, n_users, 4000), rng.integers(0, n_items, 4000))
    test = (rng.integers(0, n_users, 4000), rng.integers(0, n_items, 4000))
    torch.manual_seed(seed)
    data = TrainingData.from_arrays(*train, n_users=n_users, n_items=n_items, val_users=val[0], val_items=val[1])
    model = build_model("mf", MFConfig(dim=32), data.model_inputs())
    ctx = EvalContext.from_arrays(train, val, test, n_users=n_users, n_items=n_items)
    return model, ctx


def evaluate_scenario(cluster) -> dict:
    from recsys.evaluate._ray import evaluate_many_ray
    from recsys.evaluate.config import EvalConfig
    from recsys.evaluate.context import evaluate_split

    torch.set_num_threads(1)
    model, ctx = eval_world()
    cfg = EvalConfig(k=[10], memory_budget_mb=4, engine="ray")
    removed: dict = {}
    since = time.time()
    killer = threading.Thread(target=kill_a_worker_node_running, args=(cluster, "MapWorker", removed), daemon=True)
    killer.start()
    sharded = evaluate_many_ray({"mf": model}, ctx, ["val", "test"], cfg, n_shards=24)
    finished = time.time()
    killer.join(timeout=5)
    out = {"removed": removed, "finished_at": finished, "started_at": since, "splits": {}}
    for split in ("val", "test"):
        local = evaluate_split(model.scorer(), ctx, split, cfg)
        rows = sharded["mf"][split]
        out["splits"][split] = {
            "users": rows.user_idx.tolist(), "expected_users": local.user_idx.tolist(),
            "same_topk": bool(np.array_equal(np.sort(rows.user_idx), local.user_idx) and np.array_equal(
                rows.topk_items[np.argsort(rows.user_idx)], local.topk_items)),
            "same_values": all(np.allclose(rows.values[m][np.argsort(rows.user_idx)], local.values[m], equal_nan=True)
                               for m in local.values),
        }
    out["task_nodes"] = poll_task_nodes("MapWorker", since, expect_at_least=1)
    return out


def train_scenario(work: Path) -> dict:
    from recsys.models.mf import MFConfig
    from recsys.train._ray import train_with_ray
    from recsys.train.config import TrainConfig
    from recsys.train.data import TrainingData

    rng = np.random.default_rng(0)
    data = TrainingData.from_arrays(rng.integers(0, 200, 3000), rng.integers(0, 100, 3000), n_users=200, n_items=100,
                                    val_users=rng.integers(0, 200, 100), val_items=rng.integers(0, 100, 100))
    since = time.time()
    cfg = TrainConfig(engine="ray", num_workers=2, cpus_per_worker=1, epochs=2, batch_size=256)
    trained = train_with_ray("mf", MFConfig(dim=8), data, None, cfg, work / "checkpoints" / "mf")
    return {"status": trained.state.status, "epochs": trained.state.epoch, "path_exists": trained.path.exists(),
            "task_nodes": poll_task_nodes("RayTrainWorker", since, expect_at_least=2)}


def main(out_file: str) -> None:
    import ray
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    work = Path(tempfile.mkdtemp(prefix="multinode-"))
    from tests.cluster.raycluster import free_port

    cluster = Cluster(initialize_head=True, head_node_args={**HEAD_RESOURCES, "dashboard_port": free_port()})
    results: dict = {}
    try:
        for _ in range(2):
            cluster.add_node(**WORKER_RESOURCES)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False
        results["nodes"] = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
        results["head"] = cluster.head_node.node_id
        t0 = time.monotonic()
        results["train"] = train_scenario(work)
        results["train"]["seconds"] = time.monotonic() - t0
        t0 = time.monotonic()
        results["evaluate"] = evaluate_scenario(cluster)
        results["evaluate"]["seconds"] = time.monotonic() - t0
        cluster.add_node(**WORKER_RESOURCES)          # back to three nodes
        cluster.wait_for_nodes()
        t0 = time.monotonic()
        results["embed_kill"] = embed_with_a_node_killed(cluster, work)
        results["embed_kill"]["seconds"] = time.monotonic() - t0
    finally:
        Path(out_file).write_text(json.dumps(results))
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
