"""The Ray Data engine of :func:`recsys.embed.catalogue.embed_catalogue`: the same pure pieces, distributed.

read ``items.parquet`` (on the driver) → build texts and mark cached ones (tasks) →
keep the texts to encode, in blocks of ``rows_per_block`` → ``map_batches(TextEncoder)``
in a fixed actor pool planned from ``ray.available_resources()`` (one GPU per actor
when there are GPUs; actors on every node) → each encoded block written as one
atomic cache part (tasks; on the driver's node when the cache is a local
directory, anywhere when it is a URI every node reaches). The driver only counts the parts as they land (progress lines) and
keeps the small per-item index (id, text hash, flags).

A dead actor is restarted by Ray and its block encoded again; since parts are
written after encoding, by separate tasks, a block is either in the cache whole
or not at all, and vectors are looked up by text hash, so every item ends up
with exactly one vector.
"""

from __future__ import annotations

import math
import sys
import time
from contextlib import contextmanager
from typing import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from recsys.runtime import raise_user_errors
from recsys.storage import is_uri
from recsys.embed.cache import EmbeddingCache, write_cache_part
from recsys.embed.catalogue import INDEX_COLUMNS, mark_todo
from recsys.embed.config import EncoderConfig
from recsys.embed.encoder import TextEncoder
from recsys.embed.pool import PoolPlan, plan_pool
from recsys.embed.progress import Progress
from recsys.embed.templates import TextSpec, build_text_table
from recsys.errors import ConfigError

WRITE_TASK_CPUS = 0.25


def plan_for_cluster(cfg: EncoderConfig, settle_s: float = 3.0) -> PoolPlan:
    """The actor pool for the resources the running Ray cluster has free.

    Workers of a stage that just finished release their CPUs a moment later, so this
    waits up to ``settle_s`` for the free CPUs to reach the cluster's total before planning.
    """
    import ray

    if not ray.is_initialized():
        raise ConfigError("Ray is not running", setting="encoder.engine",
                          hint="start Ray first (recsys.runtime.init_ray) or set encoder.engine=local")
    total = ray.cluster_resources().get("CPU", 0.0)
    deadline = time.monotonic() + settle_s
    free = ray.available_resources()
    while free.get("CPU", 0.0) < total and time.monotonic() < deadline:
        time.sleep(0.1)
        free = ray.available_resources()
    return plan_pool(free, cfg)


@contextmanager
def _line_progress_only() -> Iterator[None]:
    """Without a terminal (``ray job logs``, CI), turn Ray Data's redrawn bars off: our lines say it all."""
    import ray.data

    context = ray.data.DataContext.get_current()
    previous = context.enable_progress_bars
    if not sys.stderr.isatty():
        context.enable_progress_bars = False
    try:
        yield
    finally:
        context.enable_progress_bars = previous


def _texts_block(batch: pa.Table, spec: TextSpec, where: str, known_ref) -> pa.Table:
    import ray

    known = ray.get(known_ref) if isinstance(known_ref, ray.ObjectRef) else known_ref
    return mark_todo(build_text_table(batch, spec, where), known)


def _write_block(batch: pa.Table, parts_dir: str) -> pa.Table:
    write_cache_part(parts_dir, batch)
    return pa.table({"n": pa.array([batch.num_rows], pa.int64())})


ITEM_BLOCK_ROWS = 10_000


def item_blocks(items_path: Path, extra: pa.Table | None, rows: int = ITEM_BLOCK_ROWS) -> list[pa.Table]:
    """The item table read here (the driver) and cut into blocks of ``rows``; ``extra`` items appended.

    Read on the driver, not by Ray Data read tasks, because a prepared dataset lives on
    the driver's disk, which the other nodes of a cluster do not have.

    >>> import tempfile
    >>> file = Path(tempfile.mkdtemp()) / "items.parquet"
    >>> import pyarrow.parquet as pq; pq.write_table(pa.table({"item_id": [str(i) for i in range(5)]}), file)
    >>> [b.num_rows for b in item_blocks(file, pa.table({"item_id": ["x"]}), rows=2)]
    [2, 2, 2]
    """
    import pyarrow.parquet as pq

    table = pq.read_table(items_path)
    if extra is not None:
        table = pa.concat_tables([table, extra.cast(table.schema)])
    return [table.slice(start, rows) for start in range(0, max(table.num_rows, 1), rows)]


def _on_this_node() -> dict:
    """Ray remote args that keep a task on the driver's node (writes to a local cache must land there).

    The task reserves no CPU: encoder actors may hold every CPU of this node (or the
    head may have none), and a write that waits for a CPU there would stall the stage.
    """
    import ray

    return {"num_cpus": 0, "label_selector": {"ray.io/node-id": ray.get_runtime_context().get_node_id()}}


def _todo_only(batch: pa.Table, repeated: list[str]) -> pa.Table:
    repeated_rows = pc.is_in(batch.column("item_id"), pa.array(repeated, pa.string()))
    keep = pc.and_(batch.column("is_todo"), pc.invert(repeated_rows))
    return batch.filter(keep).select(["text_hash", "text"])


def _first_across_blocks(index: pa.Table) -> tuple[pa.Table, list[str]]:
    """Blocks mark the first row of each new text; keep only the first across blocks (ids of the others)."""
    todo = index.filter(index.column("is_todo"))
    seen: set[str] = set()
    repeated = []
    for item, h in zip(todo.column("item_id").to_pylist(), todo.column("text_hash").to_pylist()):
        if h in seen:
            repeated.append(item)
        seen.add(h)
    if not repeated:
        return index, repeated
    is_todo = pc.and_(index.column("is_todo"),
                      pc.invert(pc.is_in(index.column("item_id"), pa.array(repeated, pa.string()))))
    return index.set_column(index.column_names.index("is_todo"), "is_todo", is_todo), repeated


def embed_with_ray(items_path: Path, extra: pa.Table | None, spec: TextSpec, cache: EmbeddingCache,
                   cfg: EncoderConfig, plan: PoolPlan, identity: dict) -> pa.Table:
    """Encode the catalogue's uncached texts into ``cache``; return the per-item index (``INDEX_COLUMNS``)."""
    import ray
    import ray.data

    with raise_user_errors(), _line_progress_only():
        known_ref = ray.put(pa.array(sorted(cache.known_hashes()), pa.string()))
        items = ray.data.from_arrow(item_blocks(items_path, extra))
        texts = items.map_batches(
            _texts_block, fn_kwargs={"spec": spec, "where": str(items_path), "known_ref": known_ref},
            batch_size=None, batch_format="pyarrow",
        ).materialize()
        index = pa.concat_tables(ray.get(texts.select_columns(INDEX_COLUMNS).to_arrow_refs()))
        index, repeated = _first_across_blocks(index)
        n_todo = int(sum(index.column("is_todo").to_pylist()))
        if n_todo == 0:
            return index
        rows_per_block = max(1, min(cfg.rows_per_block, math.ceil(n_todo / (2 * plan.actors))))
        # The texts to encode (a few hundred bytes each; vectors never come here) are cut into blocks
        # on the driver: a repartition would run whole-CPU tasks while the actor pool holds its CPUs,
        # and on a one-CPU cluster those tasks would never be scheduled.
        todo_texts = pa.concat_tables(ray.get(texts.map_batches(
            _todo_only, fn_kwargs={"repeated": repeated}, batch_size=None, batch_format="pyarrow",
            num_cpus=WRITE_TASK_CPUS).to_arrow_refs()))
        todo = ray.data.from_arrow([todo_texts.slice(start, rows_per_block)
                                    for start in range(0, todo_texts.num_rows, rows_per_block)])
        encoded = todo.map_batches(
            TextEncoder,
            fn_constructor_kwargs={"cfg": cfg, "device": plan.device, "threads": plan.threads,
                                   "expected_sha256": identity["sha256"]},
            compute=ray.data.ActorPoolStrategy(size=plan.actors),
            batch_size=rows_per_block, batch_format="pyarrow",
            num_cpus=plan.num_cpus, num_gpus=plan.num_gpus or None,
        )
        local_cache = not is_uri(cache.parts_dir)
        placement = _on_this_node() if local_cache else {"num_cpus": WRITE_TASK_CPUS}
        written = encoded.map_batches(_write_block, fn_kwargs={"parts_dir": str(cache.parts_dir)},
                                      batch_size=None, batch_format="pyarrow", **placement)
        progress = Progress(n_todo, f"embed {cfg.name} ({plan.actors} actor(s) x {plan.threads} thread(s), "
                                    f"{plan.device})", every_s=cfg.progress_every_s)
        for batch in written.iter_batches(batch_size=None, batch_format="pyarrow"):
            progress.update(sum(batch.column("n").to_pylist()))
        progress.finish()
    return index
