"""Test accuracy of every model on any MovieLens-format dataset, any split protocol: one command.

    .venv/bin/python -m benchmarks.quality --dataset ../shared/datasets/ml-latest-small              # random 8:1:1
    .venv/bin/python -m benchmarks.quality --dataset ../shared/datasets/ml-latest-small --protocol leave_last
    .venv/bin/python -m benchmarks.quality --dataset ../shared/datasets/ml-latest-small \\
        --implicit-threshold 4 --min-core 5                                                    # 5-core, rating >= 4
    .venv/bin/python -m benchmarks.quality --dataset DIR --seeds 0 --models mf lightgcn --epochs 20

Protocol: the chosen split (``--protocol``; ``random`` is RecBole's per-user 8:1:1, the
ratios of ``--ratios``); validation masks training items, test masks training and
validation items; full ranking over every catalogue item; the epoch kept is the best on
validation NDCG@10 (``--patience``). Users are scored from their training history only.
Every model runs with its defaults (``ModelSettings()``, the ``Config`` dataclasses beside
the models) and its own learning rate (``ModelSpec.lr``: what ``train.lr=null`` gives in a run); text models read
MiniLM vectors of ``"{title}. Genres: {genres}"`` (user tags left out: they would leak
held-out interactions). ``--set model.lightgcn.layers=2`` overrides a model setting.

Prints one JSON line per (seed, model) and a Markdown table: NDCG@10, Recall@10, HR@10
mean ± sd over the split seeds, validation NDCG@10, best epoch, and seconds per epoch
(training only, the median over the run's epochs). ``--models`` also takes variants,
``name:param=value,...`` (``lr=`` sets the variant's learning rate), e.g. the frozen encoder
against one and two trained layers: ``finetune:train_layers=0 finetune:train_layers=1``.
``--segments`` adds NDCG@10 on cold items and light users (``benchmarks/quality_segments.py``)
and paired t-tests of every model against ``--baseline`` per split seed, Holm-adjusted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

TEMPLATE = "{title}[. Genres: {genres}]"
K = 10
MODELS = ["pop", "mf", "content", "two_tower", "sasrec", "lightgcn", "textgraph"]


def model_settings(overrides: list[str]):
    """``ModelSettings()`` with ``model.<name>.<param>=value`` overrides applied."""
    from recsys.models.registry import ModelSettings

    settings = ModelSettings()
    for item in overrides:
        path, _, raw = item.partition("=")
        _, name, param = path.split(".")
        setattr(settings, name, with_setting(getattr(settings, name), param, raw))
    return settings


def with_setting(config, param: str, raw: str):
    """``config`` (a model's settings dataclass) with ``param`` set from its command-line text ``raw``."""
    kind = {f.name: f.type for f in fields(config)}[param]
    return replace(config, **{param: json.loads(raw) if kind not in ("str", str) else raw})


def prepared(args: argparse.Namespace, seed: int):
    from recsys.data.config import DataConfig, DatasetConfig, SplitConfig
    from recsys.data.prepare import prepare

    data = DataConfig(engine="local", cache_dir=args.cache_dir, implicit_threshold=args.implicit_threshold,
                      min_user_interactions=args.min_core, min_item_interactions=args.min_core)
    return prepare(DatasetConfig(name="movielens", path=str(args.dataset)), data,
                   SplitConfig(protocol=args.protocol, ratios=args.ratios, seed=seed))


def item_vectors(ds, cache_dir: str) -> np.ndarray:
    from recsys.embed.catalogue import embed_catalogue, load_item_vectors
    from recsys.embed.config import EncoderConfig

    result = embed_catalogue(ds, EncoderConfig(engine="local", template=TEMPLATE), Path(cache_dir) / "embeddings")
    return load_item_vectors(result.path, ds.item_map())


def split_items(ds, data, split: str):
    """The held-out items of ``split`` per user (users known to training), as ``UserItems``."""
    from recsys.evaluate.useritems import UserItems

    frame = ds.split(split).drop_nulls(["user_idx", "item_idx"])
    frame = frame.filter(frame["user_idx"] < data.n_users)
    return UserItems.from_pairs(frame["user_idx"].to_numpy(), frame["item_idx"].to_numpy(),
                                n_users=data.n_users, n_items=data.n_items)


@dataclass
class TestRanking:
    """Every test user's top-K list over all items, training and validation items masked."""

    __test__ = False                 # not a pytest class

    users: np.ndarray                # (U,) users with a test item
    items: np.ndarray                # (U, K) their top-K items
    relevant: object                 # UserItems: the test items


def test_ranking(model, ds, data, k: int = K) -> TestRanking:
    """Rank every item for each test user once (the metrics and the segments both read it); models that read
    histories read the training then validation interactions, as in a run (``eval.query_history``)."""
    from types import SimpleNamespace

    from recsys.evaluate.history import query_model
    from recsys.evaluate.topk import topk

    relevant = split_items(ds, data, "test")
    users = np.flatnonzero(relevant.counts() > 0)
    val = ds.split("val").drop_nulls(["user_idx", "item_idx"]).sort(["user_idx", "timestamp"], maintain_order=True)
    val = val.filter(val["user_idx"] < data.n_users)
    ctx = SimpleNamespace(val_order=(val["user_idx"].to_numpy().astype(np.int64),
                                     val["item_idx"].to_numpy().astype(np.int64)))
    scorer = query_model(model, ctx, "test").scorer()
    result = topk(scorer, users, k, seen=data.seen().union(split_items(ds, data, "val")))
    return TestRanking(users, result.items, relevant)


def test_metrics(ranking: TestRanking, k: int = K) -> dict[str, float]:
    """NDCG, Recall, Precision and HR @k of a :class:`TestRanking`, averaged over its users."""
    from recsys.evaluate.metrics import hit_rate_at_k, ndcg_at_k, precision_at_k, recall_at_k

    hits = ranking.relevant.contains(ranking.users, ranking.items)
    n_relevant = ranking.relevant.counts()[ranking.users]
    return {"ndcg": float(ndcg_at_k(hits, n_relevant, k).mean()),
            "recall": float(recall_at_k(hits, n_relevant, k).mean()),
            "precision": float(precision_at_k(hits, k).mean()),
            "hr": float(hit_rate_at_k(hits, k).mean()), "n_users": int(ranking.users.size)}


def variant(spec: str, settings) -> tuple[str, object, dict]:
    """``name`` or ``name:param=value,...`` as (model name, its settings, training settings it overrides).

    A parameter the model's settings lack but ``train.*`` has (``lr``, ``batch_size``,
    ``weight_decay``, ...) sets the variant's training setting.

    >>> from recsys.models.registry import ModelSettings
    >>> name, config, train = variant("lightgcn:layers=2,lr=0.005,batch_size=512,loss=bpr", ModelSettings())
    >>> name, config.layers, train
    ('lightgcn', 2, {'lr': 0.005, 'batch_size': 512, 'loss': 'bpr'})
    """
    from dataclasses import fields

    from recsys.train.config import TrainConfig

    defaults = TrainConfig()
    train_params = {f.name for f in fields(TrainConfig)}
    name, _, params = spec.partition(":")
    config, train = getattr(settings, name), {}
    model_params = {f.name for f in fields(config)}
    for item in filter(None, params.split(",")):
        param, _, raw = item.partition("=")
        if param not in model_params and param in train_params:
            default = getattr(defaults, param)
            train[param] = (raw if isinstance(default, str) else int(raw) if isinstance(default, int)
                            else float(raw))                          # lr, weight_decay, grad_clip: numbers
        else:
            config = with_setting(config, param, raw)
    return name, config, train


def with_tokens(config, ds, cache_dir: str):
    """A finetune model's settings with its catalogue token states cached (the train stage does this in a run)."""
    from recsys.embed.config import EncoderConfig
    from recsys.embed.tokens import catalogue_tokens
    from recsys.models.finetune import FineTuneConfig

    if not isinstance(config, FineTuneConfig) or config.token_cache:
        return config
    tokens = catalogue_tokens(ds, EncoderConfig(engine="local", template=TEMPLATE), Path(cache_dir) / "tokens",
                              train_layers=config.train_layers, max_tokens=config.max_tokens, pooling=config.pooling)
    return replace(config, token_cache=tokens.directory)


def run(args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    from benchmarks.quality_segments import paired_rows, segment_values
    from recsys.train.checkpoint import load_model
    from recsys.train.config import TrainConfig, for_model
    from recsys.train.data import TrainingData
    from recsys.train.stage import train_local

    settings = model_settings(args.set)
    base = TrainConfig(engine="local", batch_size=1024, epochs=args.epochs, patience=args.patience, log_every=50,
                       probe_every=500, loss=args.loss, negatives=args.negatives)
    rows, tests = [], []
    for seed in args.seeds:
        ds = prepared(args, seed)
        data = TrainingData.from_prepared(ds)
        text = item_vectors(ds, args.cache_dir)
        per_user = {}
        for spec in args.models:
            name, config, train = variant(spec, settings)
            cfg = for_model(replace(base, **train), name)          # no lr: the model's own rate (ModelSpec.lr)
            config = with_tokens(config, ds, args.cache_dir)
            started = time.perf_counter()
            trained = train_local(name, config, data, text, cfg, tempfile.mkdtemp(prefix=f"q-{name}-"))
            seconds = time.perf_counter() - started
            epoch_s = [r["value"] for r in trained.telemetry.curves if r["name"] == "epoch_seconds"]
            ranking = test_ranking(load_model(trained.path), ds, data)
            metrics = test_metrics(ranking)
            row = {"seed": seed, "model": spec, "lr": cfg.lr, "batch_size": cfg.batch_size, **metrics,
                   "best_epoch": trained.state.best_epoch, "epochs": trained.state.epoch,
                   "val_ndcg": trained.summary()["best_val"], "train_s": seconds,
                   "epoch_s": statistics.median(epoch_s) if epoch_s else None,
                   "peak_mb": max((r["value"] for r in trained.telemetry.curves if r["name"] == "peak_memory_mb"),
                                  default=None)}
            if args.segments:
                per_user[spec] = segment_values(ranking, ds, data)
                row["segments"] = {segment: {"ndcg": float(values.mean()), "n_users": int(users.size)}
                                   for segment, (users, values) in per_user[spec].items()}
            print(json.dumps(row), flush=True)
            rows.append(row)
        if args.segments:
            baseline = args.baseline or args.models[0]
            tests += [{"seed": seed, **test} for test in paired_rows(per_user, baseline)]
    return rows, tests


def mean_sd(values: list[float], digits: int = 4) -> str:
    """``mean ± sd`` over split seeds (``-`` for none, the mean alone for one).

    >>> mean_sd([0.2, 0.3]), mean_sd([0.25], 1), mean_sd([])
    ('0.2500 ± 0.0707', '0.2', '-')
    """
    if not values:
        return "-"
    spread = f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else ""
    return f"{statistics.fmean(values):.{digits}f}{spread}"


def table(rows: list[dict]) -> str:
    lines = [f"| model | NDCG@{K} | Recall@{K} | HR@{K} | val NDCG@{K} | best epoch | s / epoch | seeds |",
             "|---|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(row["model"] for row in rows):
        mine = [row for row in rows if row["model"] == name]

        def cell(key: str, digits: int = 4) -> str:
            return mean_sd([row[key] for row in mine if row[key] is not None], digits)

        lines.append(f"| {name} | {cell('ndcg')} | {cell('recall')} | {cell('hr')} | {cell('val_ndcg')} "
                     f"| {cell('best_epoch', 1)} | {cell('epoch_s', 1)} | {len(mine)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, required=True, help="a MovieLens-format directory")
    parser.add_argument("--protocol", default="random", help="random | temporal | leave_last | user_holdout")
    parser.add_argument("--ratios", nargs=3, type=float, default=[0.8, 0.1, 0.1])
    parser.add_argument("--implicit-threshold", type=float, default=None, help="keep ratings >= this")
    parser.add_argument("--min-core", type=int, default=0, help="iterative k-core on users and items")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=MODELS,
                        help="names, or variants name:param=value,...,lr=value (e.g. finetune:train_layers=2)")
    parser.add_argument("--segments", action="store_true",
                        help="also NDCG@10 on cold items and light users, and paired t-tests against --baseline")
    parser.add_argument("--baseline", default=None, help="the model (as named in --models) tests compare against; "
                                                          "default: the first")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--loss", default="softmax", help="softmax | sampled_softmax | bpr (train.loss)")
    parser.add_argument("--negatives", type=int, default=256, help="sampled_softmax negatives per batch")
    parser.add_argument("--set", nargs="*", default=[], help="model.<name>.<param>=value")
    parser.add_argument("--cache-dir", default="data_cache")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--verbose", action="store_true", help="log every epoch (loss, validation, seconds)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING)
    if args.verbose:
        logging.getLogger("recsys.train.loop").setLevel(logging.INFO)

    import torch

    torch.set_num_threads(args.threads)
    rows, tests = run(args)
    print()
    print(table(rows))
    if args.segments:
        from benchmarks.quality_segments import paired_table, segment_table

        print()
        print(segment_table(rows))
        print()
        print(paired_table(tests))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "paired": tests}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
