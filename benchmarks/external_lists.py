"""Lists from outside: time to read a list file (per format) and to turn it into metric rows, by list size.

Synthetic world: ``--items`` items; every user has 20 training items and 5 test items
(random); the list gives every user ``--per-user`` random items with random scores
(so some are seen and dropped, as in a real file). Timed in this process, one run each:

  write   the list written once per format (not timed)
  read    ``read_list`` (parse + checks) per format
  rows    ``list_rows`` on the test split: join to the id maps, masking, order, every
          accuracy and beyond-accuracy metric of the top-k lists

    .venv/bin/python -m benchmarks.external_lists --users 10000 100000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

N_TRAIN, N_TEST, KS = 20, 5, [5, 10, 20]


def world(n_users: int, n_items: int, per_user: int, seed: int = 0):
    from recsys.evaluate.context import EvalContext

    rng = np.random.default_rng(seed)
    pairs = [(np.repeat(np.arange(n_users), n), rng.integers(0, n_items, n_users * n)) for n in (N_TRAIN, N_TEST)]
    ctx = EvalContext.from_arrays(pairs[0], ([], []), pairs[1], n_users=n_users, n_items=n_items,
                                  user_ids=[f"u{u}" for u in range(n_users)],
                                  item_ids=[f"i{i}" for i in range(n_items)])
    users = np.repeat(np.arange(n_users), per_user)
    frame = pl.DataFrame({"user_id": pl.Series([f"u{u}" for u in users]),
                          "item_id": pl.Series([f"i{i}" for i in rng.integers(0, n_items, users.size)]),
                          "score": rng.random(users.size)})
    return ctx, frame


def write(frame: pl.DataFrame, folder: Path) -> dict[str, Path]:
    paths = {fmt: folder / f"list.{fmt}" for fmt in ("parquet", "csv", "trec")}
    frame.write_parquet(paths["parquet"])
    frame.write_csv(paths["csv"])
    trec = frame.with_columns(pl.int_range(pl.len()).over("user_id").alias("rank") + 1)
    paths["trec"].write_text("\n".join(f"{u} Q0 {i} {r} {s!r} b" for u, i, s, r in trec.iter_rows()) + "\n")
    return paths


def measure(n_users: int, n_items: int, per_user: int) -> dict:
    from recsys.evaluate.external import list_rows
    from recsys.evaluate.external_files import read_list

    ctx, frame = world(n_users, n_items, per_user)
    out = {"users": n_users, "rows": frame.height}
    with tempfile.TemporaryDirectory() as folder:
        for fmt, path in write(frame, Path(folder)).items():
            start = time.perf_counter()
            read = read_list(str(path))
            out[f"read_{fmt}_s"] = time.perf_counter() - start
            out[f"{fmt}_mb"] = path.stat().st_size / 2**20
    start = time.perf_counter()
    rows, counts = list_rows(read, ctx, "test", KS)
    out["rows_s"] = time.perf_counter() - start
    out["seen_dropped"] = counts.n_seen_dropped
    out["ndcg@10"] = float(np.nanmean(rows.values["ndcg@10"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--per-user", type=int, default=50)
    args = parser.parse_args()
    print("| users | list rows | parquet MiB | read parquet s | csv MiB | read csv s | trec MiB | read trec s "
          "| list_rows s | seen dropped |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n_users in args.users:
        r = measure(n_users, args.items, args.per_user)
        print(f"| {r['users']:,} | {r['rows']:,} | {r['parquet_mb']:.1f} | {r['read_parquet_s']:.2f} | "
              f"{r['csv_mb']:.1f} | {r['read_csv_s']:.2f} | {r['trec_mb']:.1f} | {r['read_trec_s']:.2f} | "
              f"{r['rows_s']:.2f} | {r['seen_dropped']:,} |", flush=True)


if __name__ == "__main__":
    main()
