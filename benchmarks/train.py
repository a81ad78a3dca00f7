"""Training throughput: Ray Train vs the plain loop, 2 workers vs 1, samples/s per model, instrumentation cost.

Every measurement trains on the same prepared synthetic dataset (default: 2,000
users, 1,000 items, ~64,000 training interactions) with random 384-d item text
vectors (speed does not depend on what the vectors say), in one invocation, so
the ratios are measured under the same machine load:

1. per model, the plain loop (this process) with instrumentation on and off:
   samples/s and epoch seconds (median over epochs), and the share of epoch time
   the probes measured themselves;
2. per-epoch time of the Ray Train path (1 worker) against the plain loop, on one
   model: the median time between consecutive epoch ends inside the training
   process (``time/epoch_end_s`` curve), i.e. a whole epoch cycle: training,
   validation and the previous epoch's checkpoint (written to local disk by the
   plain loop, reported to Ray Train and persisted by the Ray path). The fixed
   start-up cost (process group, actors, data transfer) is reported separately
   as ``wall - epochs x per-epoch``;
3. the same per-epoch time with 2 Ray Train workers (DDP, half the CPUs each).

The machine is shared, so each variant runs ``--repeats`` times, taking turns with the
variants it is compared with, and the fastest run of each is kept.

    .venv/bin/python -m benchmarks.train
    .venv/bin/python -m benchmarks.train --models mf two_tower --ray-model two_tower --epochs 6

Prints Markdown tables (paste them into benchmarks/RESULTS.md with the command) and
writes the raw numbers as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

MODELS = ["mf", "content", "two_tower", "sasrec"]


def prepared_synthetic(cache_dir: str, n_users: int, n_items: int, text_dim: int = 384):
    from recsys.data.config import DataConfig, DatasetConfig, SplitConfig, SyntheticConfig
    from recsys.data.prepare import prepare
    from recsys.train.data import TrainingData

    synthetic = SyntheticConfig(n_users=n_users, n_items=n_items, n_topics=8, chunk_users=n_users)
    ds = prepare(DatasetConfig(synthetic=synthetic), DataConfig(cache_dir=cache_dir, engine="local"), SplitConfig())
    data = TrainingData.from_prepared(ds)
    text = np.random.default_rng(0).standard_normal((data.n_items, text_dim)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    return data, text


def curve_values(trained, name: str) -> list[float]:
    return [row["value"] for row in trained.telemetry.curves if row["name"] == name]


def epoch_cycle_s(trained) -> float:
    """Median seconds between consecutive epoch ends (train + validate + previous checkpoint)."""
    ends = curve_values(trained, "time/epoch_end_s")
    return statistics.median(np.diff(ends)) if len(ends) > 1 else float("nan")


def timed_run(train, name: str, data, text, cfg, out: Path) -> dict:
    """Train with ``train`` (``train_local`` or ``train_with_ray``) and summarise its speed curves."""
    from recsys.models.registry import ModelSettings

    started = time.perf_counter()
    trained = train(name, ModelSettings().for_model(name), data, text, cfg, out)
    wall = time.perf_counter() - started
    share = curve_values(trained, "instrumentation/share")
    return {"wall_s": wall, "epoch_s": statistics.median(curve_values(trained, "epoch_seconds")),
            "cycle_s": epoch_cycle_s(trained),
            "samples_per_s": statistics.median(curve_values(trained, "train/epoch_samples_per_s")),
            "probe_share": statistics.median(share) if share else float("nan"),
            "steps": trained.state.step, "epochs": trained.state.epoch}


def plain_run(name: str, data, text, cfg, out: Path) -> dict:
    from recsys.train.stage import train_local

    return timed_run(train_local, name, data, text, cfg, out)


def ray_run(name: str, data, text, cfg, out: Path) -> dict:
    from recsys.train._ray import train_with_ray

    return timed_run(train_with_ray, name, data, text, cfg, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--models", nargs="*", default=MODELS, help="models of the instrumentation table (none: skip it)")
    parser.add_argument("--ray-model", default="two_tower")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds; the variants take turns in each round and the fastest run of each is kept")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import torch

    from recsys.runtime import RayConfig, init_ray
    from recsys.train.config import TrainConfig

    cpus = os.cpu_count() or 1
    torch.set_num_threads(cpus)
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    data, text = prepared_synthetic(str(work / "cache"), args.users, args.items)
    base = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=1e-3, engine="local", patience=0)
    print(f"synthetic data: {data.n_users:,} users, {data.n_items:,} items, {data.nnz:,} training interactions, "
          f"{cpus} CPUs")

    def fastest(runs: list[dict], key: str) -> dict:
        return min(runs, key=lambda r: r[key])

    results: dict = {"models": {}, "ray": {}}
    for name in args.models:
        on, off = [], []
        for round_ in range(args.repeats):
            on.append(plain_run(name, data, text, base, work / f"{name}-on-{round_}"))
            off.append(plain_run(name, data, text, replace(base, instrument=False), work / f"{name}-off-{round_}"))
        results["models"][name] = {"on": fastest(on, "epoch_s"), "off": fastest(off, "epoch_s")}
    if args.models:
        print(f"\nfastest of {args.repeats} alternating runs each:\n")
        print("| model | samples/s | epoch (s), instrumented | epoch (s), not instrumented | cost | probes' own share |")
        print("|---|---|---|---|---|---|")
    for name, r in results["models"].items():
        cost = r["on"]["epoch_s"] / r["off"]["epoch_s"] - 1
        print(f"| {name} | {r['on']['samples_per_s']:,.0f} | {r['on']['epoch_s']:.2f} | {r['off']['epoch_s']:.2f} "
              f"| {cost:+.1%} | {r['on']['probe_share']:.1%} |")

    init_ray(RayConfig(num_cpus=cpus, include_dashboard=False, log_to_driver=False))
    name = args.ray_model
    all_runs: dict[str, list[dict]] = {"plain": [], "ray-1": [], "ray-2": []}
    for round_ in range(args.repeats):
        all_runs["plain"].append(plain_run(name, data, text, base, work / f"plain-{round_}"))
        for workers in (1, 2):
            cfg = replace(base, engine="ray", num_workers=workers, cpus_per_worker=cpus / workers)
            all_runs[f"ray-{workers}"].append(ray_run(name, data, text, cfg, work / f"ray-{workers}-{round_}"))
    runs = {label: fastest(found, "cycle_s") for label, found in all_runs.items()}
    print(f"\n{name}, {args.epochs} epochs, fastest of {args.repeats} rounds; per epoch = median time between "
          f"epoch ends in the training process:\n")
    print("| path | wall (s) | start-up (s) | epoch cycle (s) | training part (s) | cycle vs plain |")
    print("|---|---|---|---|---|---|")
    for label, r in runs.items():
        startup = r["wall_s"] - r["epochs"] * r["cycle_s"]
        results["ray"][label] = {**r, "startup_s": startup}
        print(f"| {label} | {r['wall_s']:.1f} | {startup:.1f} | {r['cycle_s']:.2f} | {r['epoch_s']:.2f} "
              f"| {r['cycle_s'] / runs['plain']['cycle_s'] - 1:+.1%} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
