"""The Ray Data engine of :func:`recsys.embed.tokens.cache_item_tokens`: frozen layers in an actor pool.

The catalogue's texts are cut into blocks on the driver, each block runs the encoder's
frozen lower layers (and, for the pretrained reference, the rest) in an actor of a
pool planned from the cluster's free resources like the embed stage's
(:func:`recsys.embed._ray.plan_for_cluster`), and the states come back to the driver
in row order, which writes the cache files.
"""

from __future__ import annotations

import math

import numpy as np

from recsys.embed._ray import _line_progress_only, plan_for_cluster
from recsys.embed.config import EncoderConfig
from recsys.runtime import raise_user_errors


class FrozenLayers:
    """``map_batches`` callable: ``{row, text}`` → ``{row, states (B, T, H), mask (B, T), pretrained (B, H)}``."""

    def __init__(self, encoder_dir: str, layer_from: int, max_tokens: int, pooling: str, threads: int,
                 batch_size: int) -> None:
        import torch

        from recsys.embed.tokens import load_encoder

        torch.set_num_threads(max(1, int(threads)))
        self.tokenizer, self.model = load_encoder(encoder_dir)
        self.layer_from, self.max_tokens, self.pooling, self.batch_size = layer_from, max_tokens, pooling, batch_size

    def __call__(self, batch: dict) -> dict:
        from recsys.embed.tokens import frozen_states

        texts = [str(t) for t in batch["text"]]
        states, mask, pretrained = frozen_states(self.tokenizer, self.model, texts, self.layer_from,
                                                 self.max_tokens, self.pooling, self.batch_size)
        return {"row": np.asarray(batch["row"]), "states": states, "mask": mask, "pretrained": pretrained}


def frozen_states_with_ray(texts: list[str], encoder_dir: str, layer_from: int, max_tokens: int, pooling: str,
                           cfg: EncoderConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What :func:`recsys.embed.tokens.frozen_states` returns, computed by a Ray Data actor pool."""
    import ray.data

    plan = plan_for_cluster(cfg)
    rows_per_block = max(1, min(cfg.rows_per_block, math.ceil(len(texts) / (2 * plan.actors))))
    with raise_user_errors(), _line_progress_only():
        ds = ray.data.from_items([{"row": i, "text": t} for i, t in enumerate(texts)],
                                 override_num_blocks=math.ceil(len(texts) / rows_per_block))
        out = ds.map_batches(
            FrozenLayers,
            fn_constructor_kwargs={"encoder_dir": encoder_dir, "layer_from": layer_from, "max_tokens": max_tokens,
                                   "pooling": pooling, "threads": plan.threads, "batch_size": cfg.batch_size},
            compute=ray.data.ActorPoolStrategy(size=plan.actors), batch_size=rows_per_block, batch_format="numpy",
            num_cpus=plan.num_cpus, num_gpus=plan.num_gpus or None,
        )
        parts = list(out.iter_batches(batch_size=None, batch_format="numpy"))
    rows = np.concatenate([p["row"] for p in parts])
    order = np.argsort(rows, kind="stable")
    if not np.array_equal(rows[order], np.arange(len(texts))):
        raise RuntimeError(f"Ray Data returned {len(rows)} token-state rows for {len(texts)} texts")
    states = np.concatenate([p["states"] for p in parts])[order].astype(np.float32, copy=False)
    mask = np.concatenate([p["mask"] for p in parts])[order].astype(np.uint8, copy=False)
    pretrained = np.concatenate([p["pretrained"] for p in parts])[order].astype(np.float32, copy=False)
    return states, mask, pretrained
