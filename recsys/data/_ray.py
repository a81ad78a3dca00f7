"""The Ray Data engine of :func:`recsys.data.prepare.prepare`: the same pure steps, distributed.

Parts (files or synthetic chunks) are read in parallel; interactions are then
hash-partitioned by ``user_id`` so every block holds whole users, which makes
deduplication, the per-user split and the audit block-local. Global quantities
(validation statistics, k-core counts, temporal cutoffs, id maps, distinct items)
are reduced from small per-block tables. The driver never holds the interactions.
"""

from __future__ import annotations

import math
import pickle
from functools import reduce
from typing import Callable

import numpy as np
import polars as pl
import pyarrow as pa

from recsys.data.audit import audit_pieces, finish_audit, merge_audit_pieces
from recsys.data.config import DataConfig, SplitConfig
from recsys.data.filters import COUNT, deduplicate, interaction_counts, kcore_is_stable, kcore_step, sum_counts, to_implicit
from recsys.data.idmap import N_TRAIN, IdMaps, apply_id_maps, id_maps_from_counts
from recsys.data.given import GIVEN, merge_overlaps, overlap_pieces
from recsys.data.prepare import (catalogue_size, check_given_labels, check_given_overlaps, manifest_body,
                                 read_checked_part, write_tables)
from recsys.data.prepared import PreparedWriter
from recsys.data.schema import ITEM_ID, SPLITS, TIMESTAMP, USER_ID
from recsys.data.sources import Source
from recsys.data.split import SPLIT, split_frame, temporal_cutoffs
from recsys.data.validate import block_stats, check_stats, conform_block, items_without_metadata, merge_stats
from recsys.errors import ConfigError
from recsys.runtime import raise_user_errors

ROWS_PER_BLOCK = 500_000


def _frame(batch: pa.Table) -> pl.DataFrame:
    return pl.from_arrow(batch)


def _pickled(obj) -> pa.Table:
    return pa.table({"payload": [pickle.dumps(obj)]})


def _gather(ds, fn: Callable[[pl.DataFrame], object]) -> list:
    """Apply ``fn`` to every block and bring the (small) results to the driver."""
    out = ds.map_batches(lambda b: _pickled(fn(_frame(b))), batch_size=None, batch_format="pyarrow")
    return [pickle.loads(row["payload"]) for row in out.take_all()]


def _map(ds, fn: Callable[[pl.DataFrame], pl.DataFrame]):
    return ds.map_batches(lambda b: fn(_frame(b)).to_arrow(), batch_size=None, batch_format="pyarrow")


def _read_parts(source: Source, invalid_rows: str):
    import ray.data

    def read(batch: pa.Table) -> pa.Table:
        frames = [read_checked_part(source, part, invalid_rows) for part in batch.column("part").to_pylist()]
        return pl.concat(frames, how="diagonal_relaxed").to_arrow()

    parts = ray.data.from_items([{"part": p} for p in source.parts], override_num_blocks=len(source.parts))
    return parts.map_batches(read, batch_size=1, batch_format="pyarrow")


def _count_le_many(ds) -> Callable[[np.ndarray], np.ndarray]:
    def count(thresholds: np.ndarray) -> np.ndarray:
        def per_block(frame: pl.DataFrame) -> np.ndarray:
            ts = np.sort(frame[TIMESTAMP].to_numpy())
            return np.searchsorted(ts, thresholds, side="right").astype(np.int64)

        return np.sum(_gather(ds, per_block), axis=0)

    return count


def _kcore(ds, data: DataConfig) -> tuple[object, list[dict]]:
    history: list[dict] = []
    if data.min_user_interactions <= 1 and data.min_item_interactions <= 1:
        return ds, history
    for iteration in range(data.kcore_max_iterations + 1):
        tables = _gather(ds, lambda f: (interaction_counts(f, USER_ID), interaction_counts(f, ITEM_ID)))
        users = sum_counts([t[0] for t in tables], USER_ID)
        items = sum_counts([t[1] for t in tables], ITEM_ID)
        if iteration > 0:
            history[-1].update(n_users=users.height, n_items=items.height)
        if kcore_is_stable(users, items, data.min_user_interactions, data.min_item_interactions):
            return ds, history
        if iteration == data.kcore_max_iterations:
            raise ConfigError(
                f"the k-core filter is still removing rows after {iteration} iterations",
                setting="data.kcore_max_iterations",
                hint="raise data.kcore_max_iterations, or lower data.min_user_interactions / data.min_item_interactions")
        n_before = int(users[COUNT].sum())
        mu, mi = data.min_user_interactions, data.min_item_interactions
        ds = _map(ds, lambda f, u=users, i=items: kcore_step(f, u, i, mu, mi)[0]).materialize()
        n_after = ds.count()
        if n_after == 0:
            raise ConfigError(
                f"the k-core filter (users >= {mu}, items >= {mi}) removes every interaction",
                setting="data.min_user_interactions / data.min_item_interactions",
                hint="lower data.min_user_interactions and/or data.min_item_interactions")
        history.append({"iteration": iteration + 1, "n_rows": n_after, "n_removed": n_before - n_after})
    return ds, history


def _stage_row(stage: str, n_rows: int, users: pl.DataFrame, items: pl.DataFrame, stats: dict, n_catalogue: int,
               n_ratings: int) -> dict:
    return {
        "stage": stage, "n_rows": n_rows, "n_users": users.height, "n_items": items.height,
        "n_catalog_items": n_catalogue, "n_cold_users": None, "n_cold_items": None, "n_cold_rows": None,
        "n_leakage_rows": None, "n_leakage_users": None, "n_timestamp_ties": None,
        "details": {"timestamp_min": stats["min"], "timestamp_max": stats["max"], "n_rating_values": n_ratings},
    }


def _stage_counts(ds, stage: str, n_catalogue: int) -> tuple[dict, pl.DataFrame]:
    """A pre-split ``datasets`` row from per-block tables; also returns the item count table."""
    pieces = _gather(ds, lambda f: (
        interaction_counts(f, USER_ID), interaction_counts(f, ITEM_ID),
        {"min": f[TIMESTAMP].min(), "max": f[TIMESTAMP].max(), "n": f.height,
         "ratings": int(f["rating"].is_not_null().sum())},
    ))
    pieces = [p for p in pieces if p[2]["n"]]
    users = sum_counts([p[0] for p in pieces], USER_ID)
    items = sum_counts([p[1] for p in pieces], ITEM_ID)
    stats = {"min": min(p[2]["min"] for p in pieces), "max": max(p[2]["max"] for p in pieces)}
    n_rows = sum(p[2]["n"] for p in pieces)
    n_ratings = sum(p[2]["ratings"] for p in pieces)
    return _stage_row(stage, n_rows, users, items, stats, n_catalogue, n_ratings), items


def prepare_with_ray(source: Source, data: DataConfig, split: SplitConfig, writer: PreparedWriter) -> dict:
    """All steps as Ray Data operations; returns the manifest body like ``prepare_local``."""
    import ray

    if not ray.is_initialized():
        raise ConfigError("Ray is not running", setting="data.engine",
                          hint="start Ray first (recsys.runtime.init_ray) or set data.engine=local")
    dataset = source.dataset
    label = source.label
    with raise_user_errors():
        items, users_table = source.items(), source.users()
        policy = data.invalid_rows
        selected = _read_parts(source, policy).materialize()
        stats = reduce(merge_stats, _gather(selected, lambda f: block_stats(f, rating_scale=dataset.rating_scale)))
        validation = check_stats(stats, label, dataset, invalid_rows=policy)
        check_given_labels(validation, source, split)
        unit, drop = validation["timestamp_unit"], policy == "drop"
        n_rows = int(stats["n_rows"]) if "n_rows" in stats else selected.count()
        n_blocks = max(2 * int(ray.cluster_resources().get("CPU", 1)), math.ceil(n_rows / ROWS_PER_BLOCK))
        by_user = _map(selected, lambda f: conform_block(f, unit, drop_invalid=drop)).repartition(
            n_blocks, keys=[USER_ID]).materialize()
        del selected
        if split.protocol == GIVEN:
            check_given_overlaps(reduce(merge_overlaps, _gather(by_user, overlap_pieces)), source)

        loaded_items = _gather(by_user, lambda f: f[ITEM_ID].unique().to_frame())
        n_catalogue = catalogue_size(pl.concat(loaded_items)[ITEM_ID], items)
        loaded, loaded_item_counts = _stage_counts(by_user, "loaded", n_catalogue)
        n_missing, missing_examples = items_without_metadata(loaded_item_counts, items)

        policy, threshold = data.duplicates, data.implicit_threshold
        removed = _gather(by_user, lambda f: deduplicate(f, policy, source=label)[1])
        by_user = _map(by_user, lambda f: to_implicit(deduplicate(f, policy, source=label)[0], threshold)[0])
        by_user = by_user.materialize()
        n_duplicates = int(sum(removed))
        n_not_positive = loaded["n_rows"] - n_duplicates - by_user.count()
        by_user, kcore_history = _kcore(by_user, data)
        filtered, _ = _stage_counts(by_user, "filtered", n_catalogue)

        cutoffs = split.cutoffs
        if split.protocol == "temporal" and cutoffs is None:
            ts_min, ts_max = filtered["details"]["timestamp_min"], filtered["details"]["timestamp_max"]
            cutoffs = temporal_cutoffs(_count_le_many(by_user), ts_min, ts_max, filtered["n_rows"], split.ratios)
        by_user = _map(by_user, lambda f: split_frame(f, split, cutoffs=cutoffs)).materialize()

        maps = _id_maps(by_user, items)
        train_items = maps.item_map.filter(~pl.col("is_cold"))[ITEM_ID]
        pieces = _gather(by_user, lambda f: audit_pieces(f, train_items=train_items))
        audit = finish_audit(reduce(merge_audit_pieces, pieces), n_catalogue)
        _write_splits(by_user, maps, writer)
        write_tables(writer, items, users_table, maps)
    return manifest_body(
        validation, n_missing, missing_examples, n_duplicates, n_not_positive, kcore_history,
        split, cutoffs, [loaded, filtered, *audit], data,
    )


def _id_maps(by_user, items: pl.DataFrame | None) -> IdMaps:
    def per_block(f: pl.DataFrame):
        train = f.filter(pl.col(SPLIT) == "train")
        other = f.filter(pl.col(SPLIT) != "train")
        return (
            interaction_counts(train, USER_ID), interaction_counts(train, ITEM_ID),
            other[USER_ID].unique(), other[ITEM_ID].unique(),
        )

    pieces = _gather(by_user, per_block)
    user_counts = sum_counts([p[0] for p in pieces], USER_ID).rename({COUNT: N_TRAIN})
    item_counts = sum_counts([p[1] for p in pieces], ITEM_ID).rename({COUNT: N_TRAIN})
    if user_counts.height == 0:
        from recsys.errors import DataError

        raise DataError("the training split is empty, so no ids can be indexed",
                        hint="check split.ratios / split.cutoffs (or the train rows of a given split) and the filters "
                        "(data.min_*_interactions, data.implicit_threshold)")
    other_users = pl.concat([p[2] for p in pieces]).unique()
    other_items = pl.concat([p[3] for p in pieces]).unique()
    return id_maps_from_counts(user_counts, item_counts, other_users, other_items, items)


def _write_splits(by_user, maps: IdMaps, writer: PreparedWriter) -> None:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    maps_ref = ray.put(maps)
    for name in SPLITS:
        def select(batch: pa.Table, name=name) -> pa.Table:
            frame = _frame(batch)
            part = frame.filter(pl.col(SPLIT) == name).drop(SPLIT)
            return apply_id_maps(part, ray.get(maps_ref)).to_arrow()

        target = writer.tmp_dir / name
        target.mkdir(parents=True, exist_ok=True)
        # the prepared dataset is a directory on the driver's node: its write tasks run there, reserving
        # no CPU (a head may have none to give)
        on_driver = {"num_cpus": 0, "scheduling_strategy": NodeAffinitySchedulingStrategy(
            ray.get_runtime_context().get_node_id(), soft=False)}
        by_user.map_batches(select, batch_size=None, batch_format="pyarrow").write_parquet(
            str(target), ray_remote_args=on_driver)
        if not any(target.glob("*.parquet")):
            writer.write_frame(f"{name}/part-00000.parquet", apply_id_maps(
                pl.DataFrame(schema={c: t for c, t in _split_schema().items()}), maps))


def _split_schema() -> dict:
    from recsys.data.schema import INTERACTION_SCHEMA

    return dict(INTERACTION_SCHEMA)
