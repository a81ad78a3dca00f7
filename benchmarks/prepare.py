"""Prepare and split N synthetic interactions with the Ray Data engine and the single-process engine.

Each engine runs in a fresh process (its cache disabled); the parent records wall
time and the peak summed RSS of that process's whole tree (driver, and for Ray the
GCS, raylet and every worker). Both runs happen in one invocation so the ratio is
measured under the same machine load.

    .venv/bin/python -m benchmarks.prepare --interactions 10000000

Prints a Markdown table; paste it into benchmarks/RESULTS.md with the command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._measure import run_measured

MEAN_PER_USER = 40.0


def run_one(engine: str, n_interactions: int, cache_dir: str, protocol: str) -> dict:
    """Inside the child process: prepare once with ``engine`` and return the manifest's counts."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    from recsys.data.config import DataConfig, DatasetConfig, SplitConfig, SyntheticConfig
    from recsys.data.prepare import prepare
    from recsys.runtime import RayConfig, init_ray

    n_users = int(n_interactions / MEAN_PER_USER)
    synthetic = SyntheticConfig(n_users=n_users, n_items=20_000, n_topics=16, chunk_users=20_000)
    if engine == "ray":
        init_ray(RayConfig(num_cpus=os.cpu_count(), log_to_driver=False))
    started = time.perf_counter()
    ds = prepare(DatasetConfig(synthetic=synthetic),
                 DataConfig(cache_dir=cache_dir, engine=engine, reuse_cache=False),
                 SplitConfig(protocol=protocol))
    seconds = time.perf_counter() - started
    stages = {row["stage"]: row["n_rows"] for row in ds.audit_rows()}
    return {"engine": engine, "prepare_s": seconds, **stages}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactions", type=int, default=10_000_000)
    parser.add_argument("--protocol", default="random")
    parser.add_argument("--engines", default="local,ray")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        result = run_one(args.child, args.interactions, os.environ["BENCH_CACHE"], args.protocol)
        print("RESULT " + json.dumps(result))
        return 0

    rows = []
    for engine in args.engines.split(","):
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, BENCH_CACHE=cache, RAY_DATA_DISABLE_PROGRESS_BARS="1")
            cmd = [sys.executable, "-m", "benchmarks.prepare", "--child", engine,
                   "--interactions", str(args.interactions), "--protocol", args.protocol]
            measured = run_measured(cmd, env=env)
            if measured["returncode"] != 0:
                print(measured["output_tail"], file=sys.stderr)
                return 1
            line = next(l for l in measured["output_tail"].splitlines() if l.startswith("RESULT "))
            rows.append({**json.loads(line[len("RESULT "):]), **measured})

    print(f"\n{args.interactions:,} synthetic interactions, split.protocol={args.protocol}, "
          f"{os.cpu_count()} CPUs\n")
    print("| engine | rows loaded | train / val / test | prepare (s) | process wall (s) | peak RSS, whole tree (MiB) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['engine']} | {r['loaded']:,} | {r['train']:,} / {r['val']:,} / {r['test']:,} | "
              f"{r['prepare_s']:.1f} | {r['wall_s']:.1f} | {r['peak_rss_mib']:,.0f} |")
    if len(rows) == 2:
        a, b = rows
        print(f"\n{b['engine']} / {a['engine']}: prepare time × {b['prepare_s'] / a['prepare_s']:.2f}, "
              f"peak memory × {b['peak_rss_mib'] / a['peak_rss_mib']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
