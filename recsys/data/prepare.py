"""Prepare a dataset: load → validate → deduplicate → implicit → k-core → split → id maps → audit.

Two engines run the same steps over the same pure functions and give the same
result (a parity test holds them to it):

- ``local``: every step on one polars frame in this process;
- ``ray``: Ray Data over the source's parts, users hash-partitioned so every block
  holds whole users (``recsys.data._ray``); nothing large is collected on the driver.

The result is cached under ``data.cache_dir`` by a fingerprint of the inputs and
settings, so a rerun with the same inputs reuses it.

>>> from recsys.data.config import DataConfig, DatasetConfig, SplitConfig, SyntheticConfig
>>> import tempfile
>>> tiny = DatasetConfig(synthetic=SyntheticConfig(n_users=40, n_items=30, n_topics=3,
...                                                mean_interactions_per_user=8, chunk_users=20))
>>> ds = prepare(tiny, DataConfig(cache_dir=tempfile.mkdtemp(), engine="local"), SplitConfig())
>>> [row["stage"] for row in ds.audit_rows()]
['loaded', 'filtered', 'train', 'val', 'test']
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from datetime import datetime, timezone
from functools import reduce
from pathlib import Path

import polars as pl

from recsys.data.audit import split_audit, stage_counts
from recsys.data.config import DataConfig, DatasetConfig, SplitConfig
from recsys.data.filters import deduplicate, kcore, to_implicit
from recsys.data.idmap import apply_id_maps, build_id_maps
from recsys.data.prepared import FORMAT_VERSION, PreparedDataset, PreparedWriter, find_cached, fingerprint
from recsys.data.given import GIVEN, check_label_counts, check_overlaps, describe_given, overlap_pieces
from recsys.data.schema import ITEM_ID, SPLIT, SPLITS
from recsys.data.sources import Source, open_source
from recsys.data.split import check_split_config, frame_cutoffs, split_parts, split_frame
from recsys.data.validate import (
    block_stats,
    check_stats,
    conform_block,
    items_without_metadata,
    INVALID_ROW_POLICIES,
    merge_stats,
    select_columns,
)
from recsys.errors import ConfigError

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")
DUPLICATE_POLICIES = ("keep", "first", "last", "error")


def check_data_config(data: DataConfig) -> None:
    """Reject impossible ``data.*`` settings before any work starts."""
    if data.engine not in ENGINES:
        raise ConfigError(f"unknown engine '{data.engine}'", setting="data.engine",
                          hint=f"use one of {', '.join(ENGINES)}")
    if data.duplicates not in DUPLICATE_POLICIES:
        raise ConfigError(f"unknown duplicate policy '{data.duplicates}'", setting="data.duplicates",
                          hint=f"use one of {', '.join(DUPLICATE_POLICIES)}")
    if data.invalid_rows not in INVALID_ROW_POLICIES:
        raise ConfigError(f"unknown policy '{data.invalid_rows}' for invalid rows", setting="data.invalid_rows",
                          hint="use error (stop at the first bad row, the default) or drop (drop them, counted)")


def cache_key(source: Source, dataset: DatasetConfig, data: DataConfig, split: SplitConfig) -> str:
    """Fingerprint of everything the prepared result depends on (not where or how it is computed)."""
    settings = {k: v for k, v in asdict(data).items() if k not in ("cache_dir", "engine", "reuse_cache")}
    source_settings = {k: v for k, v in asdict(dataset).items() if k not in ("path", "synthetic", "label")}
    return fingerprint({
        "format_version": FORMAT_VERSION,
        "source": source_settings,
        "inputs": source.inputs(),
        "data": settings,
        "split": asdict(split),
    })


def prepare(
    dataset: DatasetConfig, data: DataConfig, split: SplitConfig, *, engine: str | None = None
) -> PreparedDataset:
    """Prepare ``dataset`` (or reuse the cached result) and return the prepared directory."""
    data = DataConfig(**{**asdict(data), "engine": engine or data.engine})
    check_data_config(data)
    check_split_config(split)
    source = open_source(dataset, split)
    key = cache_key(source, dataset, data, split)
    if data.reuse_cache:
        cached = find_cached(Path(data.cache_dir), dataset.name, key)
        if cached is not None:
            log.info("reusing prepared dataset %s (fingerprint %s)", cached.path, key)
            return cached
    started = time.perf_counter()
    writer = PreparedWriter(Path(data.cache_dir) / f"{dataset.name}-{key}")
    try:
        if data.engine == "local":
            body = prepare_local(source, data, split, writer)
        else:
            from recsys.data._ray import prepare_with_ray

            body = prepare_with_ray(source, data, split, writer)
        manifest = {
            "dataset": dataset.name,
            "source": source.describe(),
            "inputs": source.inputs(),
            "fingerprint": key,
            "engine": data.engine,
            "settings": {"dataset": asdict(dataset), "data": asdict(data), "split": asdict(split)},
            "created_at": datetime.now(timezone.utc).isoformat(),
            "seconds": round(time.perf_counter() - started, 3),
            **body,
        }
        if split.protocol == GIVEN:
            manifest["split"]["given"] = describe_given(dataset, split, source.split_files, manifest["inputs"]["files"],
                                                        body["validation"]["n_split_labels"])
        prepared = writer.publish(manifest)
    except BaseException:
        writer.abort()
        raise
    log.info("prepared %s in %.1fs: %s", dataset.name, manifest["seconds"], prepared.path)
    return prepared


def catalogue_size(interaction_items: pl.Series, items: pl.DataFrame | None) -> int:
    """Distinct items in the interactions and the item metadata together."""
    ids = [interaction_items.cast(pl.Utf8)]
    if items is not None:
        ids.append(items[ITEM_ID].cast(pl.Utf8))
    return pl.concat(ids).n_unique()


def prepare_local(source: Source, data: DataConfig, split: SplitConfig, writer: PreparedWriter) -> dict:
    """All steps in this process; returns the manifest body (steps, split, stages)."""
    dataset = source.dataset
    items, users = source.items(), source.users()
    policy = data.invalid_rows
    blocks = [read_checked_part(source, part, policy) for part in source.parts]
    stats = reduce(merge_stats, [block_stats(b, rating_scale=dataset.rating_scale) for b in blocks])
    validation = check_stats(stats, source.label, dataset, invalid_rows=policy)
    check_given_labels(validation, source, split)
    frame = pl.concat([conform_block(b, validation["timestamp_unit"], drop_invalid=policy == "drop")
                       for b in blocks])
    del blocks
    if split.protocol == GIVEN:
        check_given_overlaps(overlap_pieces(frame), source)
    n_catalogue = catalogue_size(frame[ITEM_ID], items)
    loaded = stage_counts(frame, "loaded", n_catalogue)
    n_missing, missing_examples = items_without_metadata(frame, items)

    frame, n_duplicates = deduplicate(frame, data.duplicates, source=source.label)
    frame, n_not_positive = to_implicit(frame, data.implicit_threshold)
    frame, kcore_history = kcore(frame, data.min_user_interactions, data.min_item_interactions,
                                 data.kcore_max_iterations)
    filtered = stage_counts(frame, "filtered", n_catalogue)

    cutoffs = split.cutoffs
    if split.protocol == "temporal" and cutoffs is None:
        cutoffs = frame_cutoffs(frame, split.ratios)
    frame = split_frame(frame, split, cutoffs=cutoffs)
    train, val, test = split_parts(frame)
    maps = build_id_maps(train, val, test, items)
    audit = split_audit(frame, maps.item_map, n_catalogue)
    for name, part in zip(SPLITS, (train, val, test)):
        writer.write_frame(f"{name}/part-00000.parquet", apply_id_maps(part.drop(SPLIT, strict=False), maps))
    write_tables(writer, items, users, maps)
    return manifest_body(
        validation, n_missing, missing_examples, n_duplicates, n_not_positive, kcore_history,
        split, cutoffs, [loaded, filtered, *audit], data,
    )


def read_checked_part(source: Source, part, invalid_rows: str = "error") -> pl.DataFrame:
    """One part's interactions with their columns selected and every row-level check done.

    Checking each part on its own lets an error name the file that holds the bad rows;
    the decisions that need every part (timestamp unit) are made on the merged statistics.
    """
    label = source.part_label(part)
    frame = select_columns(source.read_part(part), source=label, cfg=source.dataset)
    check_stats(block_stats(frame, rating_scale=source.dataset.rating_scale), label, source.dataset,
                invalid_rows=invalid_rows)
    return frame


def check_given_labels(validation: dict, source: Source, split: SplitConfig) -> None:
    """A given split has train and test rows (a no-op for the other protocols)."""
    if split.protocol == GIVEN:
        check_label_counts(validation, source.label, _label_column(source))


def check_given_overlaps(pieces: dict, source: Source) -> None:
    """No event of a given split is in two splits (``pieces`` from ``overlap_pieces``, merged)."""
    check_overlaps(pieces, source.label, _label_column(source), source.split_files)


def _label_column(source: Source) -> str | None:
    return None if source.split_files else source.dataset.columns.get(SPLIT)


def write_tables(writer: PreparedWriter, items: pl.DataFrame | None, users: pl.DataFrame | None, maps) -> None:
    """The small tables every engine writes the same way: items, users, id maps."""
    if items is None:
        items = pl.DataFrame({ITEM_ID: maps.item_map[ITEM_ID]})
    writer.write_frame("items.parquet", items)
    if users is not None:
        writer.write_frame("users.parquet", users)
    writer.write_frame("user_map.parquet", maps.user_map)
    writer.write_frame("item_map.parquet", maps.item_map)


def manifest_body(
    validation: dict, n_missing: int, missing_examples: list[str], n_duplicates: int, n_not_positive: int,
    kcore_history: list[dict], split: SplitConfig, cutoffs: list[int] | None, stages: list[dict],
    data: DataConfig,
) -> dict:
    """The manifest's record of every step: counts, filters, split and per-stage audit rows.

    Rows dropped as invalid (``data.invalid_rows=drop``) are counted in the loaded
    stage's details and in a logged warning; the loaded stage counts the rows kept.
    """
    stages[0]["details"]["n_items_without_metadata"] = n_missing
    invalid = validation["invalid_rows"]
    if invalid["policy"] == "drop":
        stages[0]["details"]["n_invalid_rows_dropped"] = invalid["n_dropped"]
        stages[0]["details"]["invalid_rows"] = invalid["by_problem"]
        if invalid["n_dropped"]:
            reasons = ", ".join(f"{name} {n}" for name, n in invalid["by_problem"].items())
            log.warning("dropped %d invalid interaction rows of %d (data.invalid_rows=drop): %s",
                        invalid["n_dropped"], validation["n_rows"], reasons)
    return {
        "validation": validation,
        "items_without_metadata": {"count": n_missing, "examples": missing_examples},
        "steps": [
            {"step": "loaded", "n_rows": stages[0]["n_rows"]},
            {"step": "deduplicate", "policy": data.duplicates, "n_removed": n_duplicates},
            {"step": "implicit", "threshold": data.implicit_threshold, "n_removed": n_not_positive},
            {"step": "kcore", "min_user": data.min_user_interactions, "min_item": data.min_item_interactions,
             "iterations": kcore_history,
             "n_removed": sum(h["n_removed"] for h in kcore_history)},
            {"step": "filtered", "n_rows": stages[1]["n_rows"]},
        ],
        "split": {**asdict(split), "resolved_cutoffs": cutoffs},
        "stages": stages,
    }
