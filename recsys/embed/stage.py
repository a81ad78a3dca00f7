"""The pipeline's ``embed`` stage: item text → vectors for the prepared dataset, plus their health row.

After it runs, ``run.embedding`` (:class:`~recsys.run_state.Embedding`) holds the
Parquet file of vectors (``item_id, embedding, is_fallback``) and the full
:class:`~recsys.embed.catalogue.EmbedResult`; later stages load the vectors
aligned with ``item_idx`` through :func:`load_item_vectors`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from recsys.config import RecsysConfig
from recsys.embed.catalogue import EmbedResult, embed_catalogue, load_item_vectors
from recsys.embed.health import embedding_health
from recsys.run_state import Embedding, RunState
from recsys.storage import is_uri

log = logging.getLogger(__name__)

__all__ = ["stage_embed", "load_item_vectors", "health_row", "cache_root"]

MODEL = "text_encoder"
EMBEDDING = "item_text"


def cache_root(cfg: RecsysConfig) -> Path | str:
    """``encoder.cache_dir``, or ``<data.cache_dir>/embeddings``; a URI (shared by every node) stays a string.

    >>> str(cache_root(RecsysConfig()))
    'data_cache/embeddings'
    >>> from dataclasses import replace
    >>> cache_root(replace(RecsysConfig(), encoder=replace(RecsysConfig().encoder, cache_dir="s3://b/emb")))
    's3://b/emb'
    """
    if cfg.encoder.cache_dir:
        return cfg.encoder.cache_dir if is_uri(cfg.encoder.cache_dir) else Path(cfg.encoder.cache_dir)
    return Path(cfg.data.cache_dir) / "embeddings"


def health_row(result: EmbedResult, dataset: str, item_map) -> dict:
    """The ``embedding_health`` row of the text vectors: statistics plus counts and encoder identity."""
    vectors = load_item_vectors(result.path, item_map)
    row = embedding_health(vectors)
    row.update(dataset=dataset, model=MODEL, embedding=EMBEDDING)
    row["details"] = {**row["details"], **result.details()}
    return row


def stage_embed(run: RunState) -> None:
    """Embed ``run.prepared``'s items (Ray Data by default, cache reused) and write their health row."""
    run.require("prepared", "embed")
    cfg = run.cfg.encoder
    result = embed_catalogue(run.prepared, cfg, cache_root(run.cfg))
    run.embedding = Embedding(vectors_path=result.path, result=result)
    run.writer.write("embedding_health", [health_row(result, run.prepared.name, run.prepared.item_map())])
    if "finetune" in run.cfg.models:        # its frozen layers' token states, cached for the train stage
        from recsys.embed.tokens import with_token_cache

        with_token_cache(run.cfg.model.finetune, run.prepared, run.cfg, engine=cfg.engine)
    log.info("item vectors of %s (%s, %s items) at %s", run.prepared.name, cfg.name,
             f"{result.counts['n_items']:,}", result.path)
