"""Embed a prepared dataset's catalogue: texts → cache lookup → encode what is missing → item vectors.

Two engines run the same pure pieces (templates, ``TextEncoder``, cache parts):

- ``local``: in this process, one cache part per ``rows_per_block`` texts;
- ``ray``: Ray Data reads the item table, builds texts in tasks and encodes in an
  actor pool sized from the cluster (``recsys.embed._ray``).

Every item of the dataset gets a vector: catalogue items (``items.parquet``) and
items seen only in interactions (``item_map.has_metadata = false``), which have no
text fields and so get the fallback text. The result is one Parquet file,
``item_id, embedding (fixed_size_list<float32>[d]), is_fallback``, one row per item,
inside the cache directory; :func:`load_item_vectors` aligns it with ``item_idx``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from recsys.data.prepared import PreparedDataset
from recsys import storage
from recsys.embed.cache import EmbeddingCache, embedding_array, embedding_matrix, read_table, write_table
from recsys.embed.config import EncoderConfig, template_for
from recsys.embed.encoder import TextEncoder, check_encoder_config, check_loadable, pick_device
from recsys.embed.progress import Progress
from recsys.embed.source import ModelSource, model_identity, resolve_model
from recsys.embed.templates import TextSpec, build_text_table
from recsys.errors import ConfigError, DataError

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")
INDEX_COLUMNS = ["item_id", "text_hash", "is_fallback", "is_truncated", "is_repaired", "is_todo"]


@dataclass
class EmbedResult:
    """Where the item vectors are and what it took to produce them."""

    path: Path | str                # a URI when the cache is on shared storage
    cache_dir: Path | str
    identity: dict
    counts: dict = field(default_factory=dict)   # n_items, n_texts, n_cached, n_encoded, n_fallback, ...
    seconds: float = 0.0

    def details(self) -> dict:
        """JSON-ready summary for the report's ``embedding_health.details``."""
        return {**self.counts, "encoder": self.identity, "cache_dir": str(self.cache_dir),
                "seconds": round(self.seconds, 3)}


def text_spec(cfg: EncoderConfig, dataset: str) -> TextSpec:
    setting = "encoder.template" if cfg.template else f"encoder.templates.{dataset}"
    return TextSpec(template_for(cfg, dataset), cfg.fallback_text, cfg.max_chars, setting=setting)


def cache_payload(identity: dict, cfg: EncoderConfig, spec: TextSpec, precision: str) -> dict:
    """Everything that decides a vector except the text: the cache's fingerprint input."""
    return {
        "encoder": {k: identity[k] for k in ("sha256", "model_type", "dim")},
        "pooling": cfg.pooling, "normalize": cfg.normalize, "max_length": cfg.max_length,
        "precision": precision, "template": spec.template, "fallback_text": spec.fallback,
        "max_chars": spec.max_chars,
    }


def catalogue_items(prepared: PreparedDataset) -> tuple[Path, pa.Schema, pa.Table | None]:
    """The item table's path and schema, plus a table of the items it lacks (all text fields null)."""
    items_path = prepared.path / "items.parquet"
    if not items_path.exists():
        raise DataError("the prepared dataset has no items.parquet", file=str(prepared.path),
                        hint="prepare the dataset again with `python -m rayjobs.prepare`")
    schema = pq.read_schema(items_path)
    if "item_id" not in schema.names:
        raise DataError(f"the item table has no 'item_id' column (columns: {schema.names})", file=str(items_path),
                        column="item_id", hint="prepare the dataset again with `python -m rayjobs.prepare`")
    item_map = prepared.item_map()
    listed = set(pq.read_table(items_path, columns=["item_id"]).column("item_id").to_pylist())
    extra_ids = [i for i in item_map["item_id"].to_list() if i not in listed]
    if not extra_ids:
        return items_path, schema, None
    n = len(extra_ids)
    extra = pa.table({f.name: pa.array(extra_ids, f.type) if f.name == "item_id" else pa.nulls(n, f.type)
                      for f in schema})
    return items_path, schema, extra


def embed_catalogue(
    prepared: PreparedDataset, cfg: EncoderConfig, cache_root: str | Path, *, engine: str | None = None,
) -> EmbedResult:
    """Vectors for every item of ``prepared``, reusing the cache; returns where they were written."""
    engine = engine or cfg.engine
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine '{engine}'", setting="encoder.engine",
                          hint=f"use one of {', '.join(ENGINES)}")
    check_encoder_config(cfg)
    started = time.perf_counter()
    spec = text_spec(cfg, prepared.source)          # templates follow the source, not the label
    items_path, schema, extra = catalogue_items(prepared)
    spec.check_columns(schema.names, str(items_path))
    n_items = pq.read_metadata(items_path).num_rows + (extra.num_rows if extra is not None else 0)
    if n_items == 0:
        raise DataError("the catalogue is empty: no items to embed", file=str(items_path),
                        hint="check the dataset's item files and the filters (data.min_item_interactions)")
    source = resolve_model(cfg)
    identity = model_identity(source)
    if engine == "ray":
        from recsys.embed._ray import embed_with_ray, plan_for_cluster

        check_loadable(source)
        plan = plan_for_cluster(cfg)
        precision = "float16" if cfg.half_precision and plan.device == "cuda" else "float32"
        cache = EmbeddingCache.open(cache_root, cfg.name, cache_payload(identity, cfg, spec, precision))
        index = embed_with_ray(items_path, extra, spec, cache, cfg, plan, identity)
    else:
        device = pick_device(cfg.device)
        precision = "float16" if cfg.half_precision and device == "cuda" else "float32"
        cache = EmbeddingCache.open(cache_root, cfg.name, cache_payload(identity, cfg, spec, precision))
        index = _embed_local(items_path, extra, spec, cache, cfg, source, device)
    return _finish(prepared, cache, index, identity, time.perf_counter() - started)


def mark_todo(texts: pa.Table, known: pa.Array | set) -> pa.Table:
    """Add ``is_todo``: the first row of each text hash not already in ``known``.

    >>> t = pa.table({"text_hash": ["a", "b", "b", "c"]})
    >>> mark_todo(t, {"a"}).column("is_todo").to_pylist()
    [False, True, False, True]
    """
    known = known if isinstance(known, pa.Array) else pa.array(sorted(known), pa.string())
    hashes = texts.column("text_hash")
    cached = pc.is_in(hashes, value_set=known).to_pylist()
    seen: set[str] = set()
    todo = []
    for h, is_cached in zip(hashes.to_pylist(), cached):
        todo.append(not is_cached and h not in seen)
        seen.add(h)
    return texts.append_column("is_todo", pa.array(todo, pa.bool_()))


def _embed_local(items_path: Path, extra: pa.Table | None, spec: TextSpec, cache: EmbeddingCache,
                 cfg: EncoderConfig, source: ModelSource, device: str) -> pa.Table:
    items = pq.read_table(items_path)
    if extra is not None:
        items = pa.concat_tables([items, extra.cast(items.schema)])
    texts = mark_todo(build_text_table(items, spec, str(items_path)), cache.known_hashes())
    todo = texts.filter(texts.column("is_todo")).select(["text_hash", "text"])
    if todo.num_rows:
        encoder = TextEncoder(cfg, device=device, source=source)
        progress = Progress(todo.num_rows, f"embed {cfg.name}", every_s=cfg.progress_every_s)
        for start in range(0, todo.num_rows, cfg.rows_per_block):
            block = encoder(todo.slice(start, cfg.rows_per_block))
            cache.write_part(block)
            progress.update(block.num_rows)
        progress.finish()
    return texts.select(INDEX_COLUMNS)


def _in_item_order(index: pa.Table, item_map: pl.DataFrame) -> pa.Table:
    """Rows in ``item_idx`` order (whatever order the engine produced them in)."""
    order = (pl.from_arrow(index.select(["item_id"])).with_row_index("row")
             .join(item_map.select("item_id", "item_idx"), on="item_id", how="left")
             .sort("item_idx", "row", nulls_last=True)["row"].to_numpy())
    return index.take(pa.array(order, pa.int64()))


def _finish(prepared: PreparedDataset, cache: EmbeddingCache, index: pa.Table, identity: dict,
            seconds: float) -> EmbedResult:
    index = _in_item_order(index, prepared.item_map())
    hashes = index.column("text_hash").to_pylist()
    vectors = cache.vectors_for(hashes)
    out = pa.table({
        "item_id": index.column("item_id"),
        "embedding": embedding_array(vectors),
        "is_fallback": index.column("is_fallback"),
    })
    path = write_table(out, cache.location("datasets", f"{prepared.path.name}.parquet"))
    counts = {
        "n_items": index.num_rows,
        "n_texts": len(set(hashes)),
        "n_encoded": int(pc.sum(index.column("is_todo")).as_py() or 0),
        "n_fallback": int(pc.sum(index.column("is_fallback")).as_py() or 0),
        "n_truncated": int(pc.sum(index.column("is_truncated")).as_py() or 0),
        "n_repaired": int(pc.sum(index.column("is_repaired")).as_py() or 0),
    }
    counts["n_cached"] = counts["n_texts"] - counts["n_encoded"]
    log.info("embedded %s items of %s: %s", f"{index.num_rows:,}", prepared.name, json.dumps(counts))
    return EmbedResult(path=path, cache_dir=cache.directory, identity=identity, counts=counts, seconds=seconds)


def load_item_vectors(path: str | Path, item_map: pl.DataFrame) -> np.ndarray:
    """Item vectors as float32 (n_items, d), row ``i`` = the item with ``item_idx == i``.

    >>> import tempfile
    >>> file = Path(tempfile.mkdtemp()) / "v.parquet"
    >>> pq.write_table(pa.table({"item_id": ["b", "a"], "embedding": embedding_array(np.eye(2))}), file)
    >>> load_item_vectors(file, pl.DataFrame({"item_id": ["a", "b"], "item_idx": [0, 1]})).tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    """
    if not storage.exists(path):
        raise DataError("item vectors not found", file=str(path), hint="run the embed stage (python -m rayjobs.embed)")
    table = read_table(path, columns=["item_id", "embedding"])
    position = {item: i for i, item in enumerate(table.column("item_id").to_pylist())}
    ids, idx = item_map["item_id"].to_list(), item_map["item_idx"].to_numpy()
    if sorted(idx.tolist()) != list(range(len(idx))):
        raise DataError("item_idx is not 0..n-1", column="item_idx", hint="prepare the dataset again")
    missing = [i for i in ids if i not in position]
    if missing:
        raise DataError(f"{len(missing)} item(s) of the item map have no vector (e.g. {missing[:3]})", file=str(path),
                        hint="run the embed stage again for this prepared dataset")
    matrix = embedding_matrix(table.column("embedding"))
    out = np.empty((len(ids), matrix.shape[1]), dtype=np.float32)
    out[idx] = matrix[np.array([position[i] for i in ids], dtype=np.int64)]
    return out
