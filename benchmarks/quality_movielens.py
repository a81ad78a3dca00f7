"""Test accuracy of every model on MovieLens latest-small under RecBole's default protocol.

Protocol (RecBole 1.2.1 defaults, which the peer numbers in benchmarks/RESULTS.md use):
every rating is a positive, no filtering, a per-user random 8:1:1 split; validation
masks training items, test masks training and validation items; full ranking; the
epoch kept is the one with the best validation NDCG@10 (early stopping). Users are
scored from their training history only (as RecBole's models are).

Our full ranking is over every item of the catalogue: the 9,724 rated movies *and*
the 18 movies of ``movies.csv`` that nobody rated (9,742 candidates). RecBole ranks
over the 9,724 rated ones. Extra candidates can only push relevant items down, so
our setting is at least as hard.

Item text: MiniLM (all-MiniLM-L6-v2) vectors of ``"{title}. Genres: {genres}"``,
mean-pooled and L2-normalised, computed by the embed stage's code and cached.
User tags are left out of the text: they are written by the same users whose
ratings are split, so they would leak held-out interactions into the item text.

    .venv/bin/python -m benchmarks.quality_movielens                       # 3 seeds, every model
    .venv/bin/python -m benchmarks.quality_movielens --seeds 0 --models mf two_tower

Prints a Markdown table (mean ± standard deviation over the split seeds) and, with
``--json``, the per-seed numbers.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path


from benchmarks.quality import item_vectors, mean_sd, test_metrics, test_ranking

DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ml-latest-small"
K = 10


def settings() -> dict[str, tuple]:
    """Per-model (model config, train config) used for the reported numbers.

    The model settings are the models' defaults (spelled out here so the table does not
    drift if a default changes); learning rates differ per model.
    """
    from recsys.models.content import ContentConfig
    from recsys.models.mf import MFConfig
    from recsys.models.pop import PopConfig
    from recsys.models.sasrec import SASRecConfig
    from recsys.models.two_tower import TwoTowerConfig
    from recsys.train.config import TrainConfig

    base = TrainConfig(engine="local", batch_size=1024, epochs=40, patience=3, log_every=20, probe_every=100)
    return {
        "pop": (PopConfig(), base),
        "mf": (MFConfig(dim=64), replace(base, lr=3e-3)),
        "content": (ContentConfig(projection="linear", dim=64, max_history=100), replace(base, lr=1e-3)),
        "two_tower": (TwoTowerConfig(depth=0, history_dropout=0.5, max_history=100, temperature=0.15),
                      replace(base, lr=1e-3)),
        "sasrec": (SASRecConfig(dim=64, max_len=200, dropout=0.5), replace(base, lr=5e-4)),
    }


def prepared(seed: int, cache_dir: str):
    from recsys.data.config import DataConfig, DatasetConfig, SplitConfig
    from recsys.data.prepare import prepare

    return prepare(DatasetConfig(name="movielens", path=str(DATASET)), DataConfig(engine="local", cache_dir=cache_dir),
                   SplitConfig(protocol="random", ratios=[0.8, 0.1, 0.1], seed=seed))


def run(seeds: list[int], models: list[str], cache_dir: str) -> list[dict]:
    from recsys.train.checkpoint import load_model
    from recsys.train.data import TrainingData
    from recsys.train.stage import train_local

    chosen = settings()
    rows = []
    for seed in seeds:
        ds = prepared(seed, cache_dir)
        data = TrainingData.from_prepared(ds)
        text = item_vectors(ds, cache_dir)
        for name in models:
            model_cfg, train_cfg = chosen[name]
            started = time.perf_counter()
            trained = train_local(name, model_cfg, data, text, train_cfg, tempfile.mkdtemp(prefix=f"q-{name}-"))
            seconds = time.perf_counter() - started
            metrics = test_metrics(test_ranking(load_model(trained.path), ds, data))
            row = {"seed": seed, "model": name, **metrics, "best_epoch": trained.state.best_epoch,
                   "epochs": trained.state.epoch, "val_ndcg": trained.summary()["best_val"], "train_s": seconds}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    lines = [f"| model | NDCG@{K} | Recall@{K} | Precision@{K} | val NDCG@{K} | best epoch | train (s) | seeds |",
             "|---|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(row["model"] for row in rows):
        mine = [row for row in rows if row["model"] == name]

        def cell(key: str, digits: int = 4) -> str:
            return mean_sd([row[key] for row in mine if row[key] is not None], digits)

        lines.append(f"| {name} | {cell('ndcg')} | {cell('recall')} | {cell('precision')} | {cell('val_ndcg')} "
                     f"| {cell('best_epoch', 1)} | {cell('train_s', 0)} | {len(mine)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=["pop", "mf", "content", "two_tower", "sasrec"])
    parser.add_argument("--cache-dir", default="data_cache")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING)

    import torch

    torch.set_num_threads(args.threads)
    rows = run(args.seeds, args.models, args.cache_dir)
    print()
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
