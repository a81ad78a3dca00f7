"""Item-text embedding: the Ray Data stage vs a plain single-process loop, same model, texts, batches and threads.

Both run in one invocation, one after the other, so their ratio is measured under
the same machine load:

- plain: load ``TextEncoder`` in this process with as many torch threads as the
  Ray pool has in total, then ``encode`` the texts in the same chunks
  (``rows_per_block``) and forward batches (``batch_size``) the stage uses;
- ray: ``embed_catalogue(engine="ray")`` into an empty cache: read the item table,
  build texts, plan the actor pool from the cluster, start the actors (each loads
  the model), encode, write cache parts, assemble the item-vector file;
- cached: the same stage again on the filled cache (nothing to encode).

Ray is started (and its worker processes warmed by one tiny dataset) before the
clock starts: in the pipeline Ray is already running when this stage begins.
Model loading is inside both timings. Texts are MovieLens movies; ``--copies K``
repeats the catalogue K times with distinct suffixes (distinct texts) for longer runs.

    .venv/bin/python -m benchmarks.embed                       # CPU, ml-latest-small
    .venv/bin/python -m benchmarks.embed --device cuda --copies 20 --half   # what benchmarks/embed_gpu.py runs

Prints a Markdown table and a JSON line; paste the table into benchmarks/RESULTS.md with the command.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "ml-latest-small"


def catalogue(data: Path, copies: int, limit: int | None, workdir: Path):
    """A prepared MovieLens catalogue (``copies`` times, distinct texts) as a PreparedDataset."""
    import polars as pl
    import pyarrow.parquet as pq

    from recsys.data.config import DataConfig, DatasetConfig, SplitConfig
    from recsys.data.prepare import prepare
    from recsys.data.prepared import PreparedDataset

    full = prepare(DatasetConfig(name="movielens", path=str(data)),
                   DataConfig(cache_dir=str(workdir / "prepared"), engine="local"), SplitConfig())
    items = pl.read_parquet(full.path / "items.parquet")
    if limit:
        items = items.head(limit)
    if copies > 1:
        items = pl.concat([
            items.with_columns(pl.col("item_id") + f"-{k}", pl.col("title") + f" (edition {k})")
            for k in range(copies)])
    directory = workdir / f"movielens-x{copies}"
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(items.to_arrow(), directory / "items.parquet")
    pl.DataFrame({"item_id": items["item_id"], "item_idx": pl.int_range(items.height, dtype=pl.Int32, eager=True),
                  "is_cold": False, "n_train": 1, "has_metadata": True}).write_parquet(directory / "item_map.parquet")
    (directory / "manifest.json").write_text(json.dumps({"dataset": "movielens"}))
    return PreparedDataset.open(directory)


def plain_loop(cfg, texts: list[str], device: str, threads: int) -> tuple[float, float, np.ndarray]:
    """Seconds to load the encoder and embed ``texts`` in ``rows_per_block`` chunks in this process, and the
    encoding rate after the first chunk (items/s)."""
    from recsys.embed.encoder import TextEncoder

    started = time.perf_counter()
    encoder = TextEncoder(cfg, device=device, threads=threads)
    chunks, first_done = [], None
    for i in range(0, len(texts), cfg.rows_per_block):
        chunks.append(encoder.encode(texts[i:i + cfg.rows_per_block]))
        first_done = first_done or time.perf_counter()
    ended = time.perf_counter()
    steady = (len(texts) - len(chunks[0])) / (ended - first_done) if ended > first_done else float("nan")
    return ended - started, steady, np.concatenate(chunks)


class TreeCpu:
    """CPU seconds (user + system) used by this process and all its descendants (Ray's GCS, raylet, workers,
    actors) between ``start()`` and ``stop()``; a sampler thread keeps the last reading of processes that exit."""

    def __init__(self, every_s: float = 0.25) -> None:
        import threading

        self.every_s, self.stop_flag = every_s, threading.Event()
        self.base: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> dict[int, float]:
        import psutil

        out = {}
        me = psutil.Process()
        for proc in [me, *me.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                out[proc.pid] = times.user + times.system
            except psutil.Error:
                continue
        return out

    def _run(self) -> None:
        while not self.stop_flag.wait(self.every_s):
            self.last.update(self._read())

    def start(self) -> "TreeCpu":
        self.base = self._read()
        self.last = dict(self.base)
        self.thread.start()
        return self

    def stop(self) -> float:
        self.stop_flag.set()
        self.thread.join()
        self.last.update(self._read())
        return sum(v - self.base.get(pid, 0.0) for pid, v in self.last.items())


def steady_rate(parts: list[Path]) -> float:
    """Items/s of the Ray stage between its first and last cache part (part files' modification times)."""
    import pyarrow.parquet as pq

    stamped = sorted((p.stat().st_mtime, pq.read_metadata(p).num_rows) for p in parts)
    if len(stamped) < 2:
        return float("nan")
    return sum(n for _, n in stamped[1:]) / (stamped[-1][0] - stamped[0][0])


def run(args: argparse.Namespace) -> dict:
    import pyarrow.parquet as pq
    import ray
    import ray.data
    import torch

    from recsys.embed._ray import plan_for_cluster
    from recsys.embed.catalogue import embed_catalogue, text_spec
    from recsys.embed.config import EncoderConfig
    from recsys.embed.templates import build_text_table
    from recsys.runtime import RayConfig, init_ray

    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="bench-embed-"))
    prepared = catalogue(Path(args.data), args.copies, args.limit, workdir)
    cfg = EncoderConfig(engine="ray", batch_size=args.batch_size, rows_per_block=args.rows_per_block,
                        half_precision=args.half, device=args.device, progress_every_s=30.0,
                        actors=args.actors, threads_per_actor=args.threads_per_actor)
    texts_table = build_text_table(pq.read_table(prepared.path / "items.parquet"), text_spec(cfg, prepared.name))
    texts = texts_table.column("text").to_pylist()

    init_ray(RayConfig(num_cpus=os.cpu_count(), num_gpus=torch.cuda.device_count() if args.device == "cuda" else 0,
                       log_to_driver=True))
    ray.data.DataContext.get_current().enable_progress_bars = False
    ray.data.range(8, override_num_blocks=2).map_batches(lambda b: b).materialize()   # start worker processes
    plan = plan_for_cluster(cfg)
    device = "cuda" if plan.device == "cuda" else "cpu"
    threads = plan.total_threads if device == "cpu" else plan.threads

    rows = []
    for repeat in range(args.repeats):
        cpu = TreeCpu().start()
        plain_s, plain_steady, plain_vectors = plain_loop(cfg, texts, device, threads)
        plain_cpu = cpu.stop()
        cpu = TreeCpu().start()
        started = time.perf_counter()
        result = embed_catalogue(prepared, cfg, workdir / f"cache-{repeat}")
        ray_s = time.perf_counter() - started
        ray_cpu = cpu.stop()
        started = time.perf_counter()
        cached = embed_catalogue(prepared, cfg, workdir / f"cache-{repeat}")
        cached_s = time.perf_counter() - started
        table = pq.read_table(result.path)
        position = {item: i for i, item in enumerate(table.column("item_id").to_pylist())}
        ray_vectors = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
        ray_vectors = ray_vectors[[position[i] for i in texts_table.column("item_id").to_pylist()]]
        cosine = (ray_vectors * plain_vectors).sum(1) / (
            np.linalg.norm(ray_vectors, axis=1) * np.linalg.norm(plain_vectors, axis=1))
        assert cached.counts["n_encoded"] == 0 and result.counts["n_encoded"] == len(set(texts))
        rows.append({"repeat": repeat, "plain_s": plain_s, "ray_s": ray_s, "cached_s": cached_s,
                     "plain_items_per_s": len(texts) / plain_s, "ray_items_per_s": len(texts) / ray_s,
                     "ratio": plain_s / ray_s, "min_cosine": float(cosine.min()),
                     "plain_steady_items_per_s": plain_steady, "plain_cpu_s": plain_cpu, "ray_cpu_s": ray_cpu,
                     "ray_steady_items_per_s": steady_rate(sorted((result.cache_dir / "parts").glob("part-*")))})
    return {
        "n_texts": len(texts), "device": device, "actors": plan.actors, "threads_per_actor": plan.threads,
        "actor_num_cpus": plan.num_cpus, "plain_threads": threads, "batch_size": cfg.batch_size,
        "rows_per_block": cfg.rows_per_block, "half": bool(args.half and device == "cuda"),
        "cpus": os.cpu_count(), "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
        "machine": platform.machine(),
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None, "runs": rows,
    }


def markdown(report: dict) -> str:
    lines = [
        f"{report['n_texts']:,} texts, all-MiniLM-L6-v2, device {report['device']}"
        f"{' (fp16)' if report['half'] else ''}, batch_size {report['batch_size']}, "
        f"rows_per_block {report['rows_per_block']}; Ray pool: {report['actors']} actor(s) x "
        f"{report['threads_per_actor']} torch thread(s) ({report['actor_num_cpus']} logical CPU each); "
        f"plain loop: {report['plain_threads']} torch thread(s); load average (1, 5, 15 min) before: "
        f"{', '.join(f'{x:.2f}' for x in report['load_avg_before'])}, after: "
        f"{', '.join(f'{x:.2f}' for x in report['load_avg_after'])}",
        "",
        "| run | plain loop (s) | plain items/s | Ray Data stage (s) | Ray items/s | **Ray / plain** "
        "| cached rerun (s) | steady items/s plain / Ray | CPU s plain / Ray tree | min cosine Ray vs plain |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["runs"]:
        lines.append(f"| {row['repeat'] + 1} | {row['plain_s']:.1f} | {row['plain_items_per_s']:.1f} | "
                     f"{row['ray_s']:.1f} | {row['ray_items_per_s']:.1f} | **{row['ratio']:.3f}** | "
                     f"{row['cached_s']:.2f} | {row['plain_steady_items_per_s']:.1f} / "
                     f"{row['ray_steady_items_per_s']:.1f} | {row['plain_cpu_s']:.0f} / {row['ray_cpu_s']:.0f} | "
                     f"{row['min_cosine']:.6f} |")
    return "\n".join(lines)


def parser(defaults: dict | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DEFAULT_DATA), help="MovieLens directory (ml-latest-small layout)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--copies", type=int, default=1, help="repeat the catalogue with distinct texts")
    p.add_argument("--limit", type=int, default=None, help="use only the first N movies")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--rows-per-block", type=int, default=512)
    p.add_argument("--half", action="store_true", help="fp16 on GPU (both paths)")
    p.add_argument("--actors", type=int, default=None, help="encoder actors (default: planned from the cluster)")
    p.add_argument("--threads-per-actor", type=int, default=None, help="torch threads per actor (default: planned)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the report as JSON here")
    p.set_defaults(**(defaults or {}))
    return p


def main(argv: list[str] | None = None, defaults: dict | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parser(defaults).parse_args(argv)
    report = run(args)
    print(markdown(report))
    print("RESULT " + json.dumps(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
