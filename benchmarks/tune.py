"""Baseline vs diagnosis-driven search vs undirected search of the same budget, in one run.

Runs the pipeline through the ``tune`` stage with ``tune.mode=both``: the baseline
model is trained with its defaults, diagnosed, then searched twice with the same
trial budget, seed, scheduler (ASHA) and retraining: once in the space the
diagnosis edited (Optuna TPE), once at random over the unedited default space.
Prints test NDCG@10 and Recall@10 with 95% bootstrap intervals, and the paired
tests (adjusted p) from the run's ``comparisons`` table.

    .venv/bin/python -m benchmarks.tune                                   # synthetic default data
    .venv/bin/python -m benchmarks.tune --data movielens                  # ../shared/datasets/ml-latest-small
    .venv/bin/python -m benchmarks.tune --data movielens tune.rounds=2 tune.trials=6   # extra overrides

A planted fault on real data (mf at a learning rate 100x too high, searched in a range around it)::

    .venv/bin/python -m benchmarks.tune --data movielens "models=[pop,mf]" tune.model=mf train.lr=1.0
        tune.space.train.lr.low=0.1 tune.space.train.lr.high=1.0          # (one command line)
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ml-latest-small"
DATA = {"synthetic": [], "movielens": ["dataset=movielens", f"dataset.path={DATASET}"]}
BUDGET = ["tune.mode=both", "tune.rounds=2", "tune.trials=4", "tune.epochs=6"]


def _p(value) -> str:
    """A p-value, or "-" where the test has none (every paired difference is zero)."""
    return "-" if value is None else f"{value:.3g}"


def table(report: str, model: str) -> str:
    from recsys.report.reader import query

    names = [model, f"{model}:undirected", f"{model}:directed"]
    m = query("SELECT model, metric, value, ci_low, ci_high FROM metrics WHERE split = 'test' AND segment = 'all' "
              "AND k = 10 AND metric IN ('ndcg', 'recall')", report)
    c = query("SELECT baseline, candidate, metric, delta, p_value, p_adjusted FROM comparisons WHERE split = 'test' "
              "AND segment = 'all' AND k = 10 AND metric IN ('ndcg', 'recall')", report)
    cells = {(r["model"], r["metric"]): r for r in m.iter_rows(named=True)}
    lines = ["| model | NDCG@10 [95% CI] | Recall@10 [95% CI] |", "|---|---|---|"]
    for name in names:
        parts = []
        for metric in ("ndcg", "recall"):
            r = cells.get((name, metric))
            parts.append("-" if r is None else f"{r['value']:.4f} [{r['ci_low']:.4f}, {r['ci_high']:.4f}]")
        lines.append(f"| {name} | {parts[0]} | {parts[1]} |")
    lines += ["", "| candidate vs baseline | metric | delta | p | p adjusted |", "|---|---|---|---|---|"]
    for r in c.iter_rows(named=True):
        if r["baseline"] in names and r["candidate"] in names:
            lines.append(f"| {r['candidate']} vs {r['baseline']} | {r['metric']}@10 | {r['delta']:+.4f} | "
                         f"{_p(r['p_value'])} | {_p(r['p_adjusted'])} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=sorted(DATA), default="synthetic")
    parser.add_argument("--report-dir", default=None, help="where the run's tables go (default: reports/<run id>)")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    args = parser.parse_args()
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from rayjobs._common import compose
    from rayjobs.tune import stages_through_tune
    from recsys.pipeline import run_stages

    overrides = ["models=[pop,two_tower]", *DATA[args.data], *BUDGET, *args.overrides]
    if args.report_dir:
        overrides.append(f"report.dir={args.report_dir}")
    cfg = compose(overrides)
    started = time.perf_counter()
    report = run_stages(cfg, stages_through_tune())
    seconds = time.perf_counter() - started
    print(f"\n{args.data}: {' '.join(overrides)}  ({seconds:.0f} s)\n")
    print(table(str(report), cfg.tune.model or "two_tower"))


if __name__ == "__main__":
    main()
