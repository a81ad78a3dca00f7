"""Evaluation and embedding stages on 1, 2 and 3 simulated Ray nodes on this machine, plus a written estimate.

Each node count runs in a fresh process that builds a ``ray.cluster_utils.Cluster``
(a head and ``n - 1`` worker nodes, ``--cpus-per-node`` logical CPUs each) and times
the stages' Ray engines exactly as the pipeline calls them:

- evaluation: ``evaluate_many_ray`` of an (untrained) mf model over ``--users`` users
  and ``--items`` items, full ranking, k = 20 (actors planned from the cluster);
- embedding: ``embed_catalogue(engine="ray")`` of ``--texts`` synthetic item texts
  with all-MiniLM-L6-v2 into an empty cache, one torch thread per actor.

The same process also measures the single-process cost on one torch thread
(``evaluate_split`` per user, ``TextEncoder`` per text), which the estimate
scales to 100M interactions / 10M users / 1M items.

All simulated nodes share this machine's cores, so more nodes cannot be faster
here: the ratio to one node shows the cost of spreading work over nodes (actor
start-up on each node, object transfers between node object stores, scheduling),
not a speed-up.

    .venv/bin/python -m benchmarks.scale                          # 1, 2, 3 nodes; prints Markdown + JSON
    .venv/bin/python -m benchmarks.scale --nodes 1 2 3 --users 20000 --items 20000 --texts 1500
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def eval_world(n_users: int, n_items: int, seed: int = 0):
    import torch

    from recsys.evaluate.context import EvalContext
    from recsys.models.mf import MFConfig
    from recsys.models.registry import build_model
    from recsys.train.data import TrainingData

    rng = np.random.default_rng(seed)
    n_train, n_test = 20 * n_users, 5 * n_users
    train = (rng.integers(0, n_users, n_train), rng.integers(0, n_items, n_train))
    val = (rng.integers(0, n_users, n_users), rng.integers(0, n_items, n_users))
    test = (rng.integers(0, n_users, n_test), rng.integers(0, n_items, n_test))
    torch.manual_seed(seed)
    data = TrainingData.from_arrays(*train, n_users=n_users, n_items=n_items, val_users=val[0], val_items=val[1])
    model = build_model("mf", MFConfig(dim=64), data.model_inputs())
    return model, EvalContext.from_arrays(train, val, test, n_users=n_users, n_items=n_items)


def texts_dataset(n_texts: int, workdir: Path):
    from recsys.data.config import DataConfig, DatasetConfig, SplitConfig, SyntheticConfig
    from recsys.data.prepare import prepare

    synthetic = SyntheticConfig(n_users=max(200, n_texts // 2), n_items=n_texts, n_topics=8,
                                mean_interactions_per_user=20, seed=0)
    return prepare(DatasetConfig(synthetic=synthetic), DataConfig(cache_dir=str(workdir / "prepared"),
                                                                  engine="local"), SplitConfig())


def child(n_nodes: int, args) -> dict:
    import ray
    import torch
    from ray.cluster_utils import Cluster

    from recsys.embed.catalogue import embed_catalogue
    from recsys.embed.config import EncoderConfig
    from recsys.evaluate._ray import evaluate_many_ray, plan_actors
    from recsys.evaluate.config import EvalConfig
    from recsys.evaluate.context import evaluate_split

    workdir = Path(tempfile.mkdtemp(prefix="scale-"))
    node = {"num_cpus": args.cpus_per_node, "object_store_memory": 300_000_000}
    cluster = Cluster(initialize_head=True, head_node_args=dict(node, include_dashboard=False))
    out: dict = {"nodes": n_nodes, "cpus_per_node": args.cpus_per_node}
    try:
        for _ in range(n_nodes - 1):
            cluster.add_node(**node)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False
        model, ctx = eval_world(args.users, args.items)
        cfg = EvalConfig(k=[20], memory_budget_mb=16, engine="ray", save_topk=False)
        out["eval_actors"] = plan_actors(ray.available_resources(), 1_000)[0]
        start = time.perf_counter()
        rows = evaluate_many_ray({"mf": model}, ctx, ["test"], cfg)["mf"]["test"]
        out["eval_s"] = time.perf_counter() - start
        out["eval_users"] = int(rows.n_users)

        prepared = texts_dataset(args.texts, workdir)
        enc = EncoderConfig(threads_per_actor=1, rows_per_block=64, progress_every_s=0)
        start = time.perf_counter()
        result = embed_catalogue(prepared, enc, workdir / "cache", engine="ray")
        out["embed_s"] = time.perf_counter() - start
        out["embed_texts"] = int(result.counts["n_encoded"])
        out["embed_actors"] = n_nodes * args.cpus_per_node      # one thread each: one actor per CPU
        if n_nodes == 1:                                        # single-process costs, one thread
            torch.set_num_threads(1)
            subset = rows.user_idx[: min(len(rows.user_idx), 4000)]
            start = time.perf_counter()
            evaluate_split(model.scorer(), ctx, "test", cfg, users=np.asarray(subset))
            out["eval_s_per_user_1thread"] = (time.perf_counter() - start) / len(subset)
            from recsys.embed.encoder import TextEncoder
            import pyarrow as pa
            import pyarrow.parquet as pq

            from recsys.embed.catalogue import text_spec
            from recsys.embed.templates import build_text_table

            items = pq.read_table(prepared.path / "items.parquet").slice(0, 512)
            texts = build_text_table(items, text_spec(enc, prepared.source), "items").select(["text_hash", "text"])
            encoder = TextEncoder(enc, device="cpu", threads=1)
            encoder(texts.slice(0, 32))                         # warm
            start = time.perf_counter()
            encoder(texts)
            out["embed_s_per_text_1thread"] = (time.perf_counter() - start) / texts.num_rows
    finally:
        ray.shutdown()
        cluster.shutdown()
    return out


def run_all(args) -> list[dict]:
    results = []
    for n in args.nodes:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
            target = handle.name
        env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_DATA_DISABLE_PROGRESS_BARS="1", HF_HUB_OFFLINE="1")
        command = [sys.executable, "-m", "benchmarks.scale", "--child", str(n), "--out", target,
                   "--users", str(args.users), "--items", str(args.items), "--texts", str(args.texts),
                   "--cpus-per-node", str(args.cpus_per_node)]
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{n} node(s) failed:\n{done.stderr[-4000:]}")
        results.append(json.loads(Path(target).read_text()))
        print(f"{n} node(s): {results[-1]}", file=sys.stderr)
    return results


def table(results: list[dict]) -> str:
    base = results[0]
    lines = ["| nodes | logical CPUs | eval actors | evaluation (s) | users/s | × 1 node | embed actors | "
             "embedding (s) | texts/s | × 1 node |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r['nodes']} | {r['nodes'] * r['cpus_per_node']} | {r['eval_actors']} | {r['eval_s']:.1f} | "
            f"{r['eval_users'] / r['eval_s']:,.0f} | {r['eval_s'] / base['eval_s']:.2f} | {r['embed_actors']} | "
            f"{r['embed_s']:.1f} | {r['embed_texts'] / r['embed_s']:,.0f} | {r['embed_s'] / base['embed_s']:.2f} |")
    return "\n".join(lines)


def nodes(count: float) -> str:
    """A node count rounded up, with its noun.

    >>> nodes(0.3), nodes(2.1)
    ('1 node', '3 nodes')
    """
    n = max(1, int(np.ceil(count)))
    return f"{n} node" if n == 1 else f"{n} nodes"


def estimate(results: list[dict], items: int) -> str:
    """Wall time and nodes at 100M interactions / 10M users / 1M items, from the one-thread costs measured here."""
    one = results[0]
    per_user = one["eval_s_per_user_1thread"] * (1_000_000 / items)      # scoring + top-k are linear in items
    per_text = one["embed_s_per_text_1thread"]
    eval_cpu_h = per_user * 10_000_000 / 3600
    embed_cpu_h = per_text * 1_000_000 / 3600
    cores = 16
    lines = [
        f"- one-thread costs measured here: evaluation {one['eval_s_per_user_1thread'] * 1e3:.3f} ms per user "
        f"at {items:,} items (full ranking, k = 20, every metric), embedding {per_text * 1e3:.1f} ms per text "
        "(MiniLM-L6, CPU, ~40-token texts);",
        f"- evaluation, 10M users x 1M items: {per_user * 1e3:.1f} ms per user ({1_000_000 / items:g} x the items) "
        f"→ {eval_cpu_h:,.0f} CPU-hours; on {cores}-core CPU nodes that is {eval_cpu_h / cores:,.1f} node-hours, "
        f"e.g. **{nodes(eval_cpu_h / cores / 1.0)} for about 1 hour** "
        f"({nodes(eval_cpu_h / cores / 0.25)} for 15 minutes), assuming the per-user cost scales "
        "linearly with nodes (each shard is independent; the driver only concatenates per-user rows, "
        "~10M rows x the metric columns);",
        f"- embedding, 1M item texts on CPU: {embed_cpu_h:,.1f} CPU-hours → {embed_cpu_h / cores:,.2f} node-hours "
        f"on {cores}-core nodes (**{nodes(embed_cpu_h / cores / 0.25)} for 15 minutes**); on GPU "
        "workers it is far less (not measured here: no GPU on this machine);",
        "- preparation, 100M interactions: the Ray engine measured 36.3 s for 10M on 2 CPUs (Data preparation, "
        "above), about 73 CPU-seconds per 10M → ~12 CPU-minutes for 100M plus a 10x larger shuffle; minutes on a "
        "few nodes, with ~45 GB of object store across the cluster (4.5 GB peak per 10M here);",
        "- training is not extrapolated from these measurements: at 1M items a full softmax costs 1M dot products "
        "per training target (use `train.loss=sampled_softmax`) and DDP gains were not measurable on 2 cores "
        "(Training, above);",
        f"- total for the measured stages at that scale: {eval_cpu_h + embed_cpu_h:,.0f} CPU-hours, dominated by "
        "evaluation (full ranking over 1M items for every user); `eval.protocol=uni100|pop100` divides it by ~10,000.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--texts", type=int, default=1_500)
    parser.add_argument("--cpus-per-node", type=int, default=1)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        Path(args.out).write_text(json.dumps(child(args.child, args)))
        return
    results = run_all(args)
    print(table(results))
    print()
    print(estimate(results, args.items))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
