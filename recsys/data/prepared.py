"""A prepared dataset on disk: ``manifest.json`` plus Parquet for items, id maps and each split.

Layout (identical for the local and the Ray Data path)::

    <dir>/manifest.json        source, format, counts per step, filters, split, seed, hashes
    <dir>/items.parquet        item_id + text fields (the whole catalogue)
    <dir>/users.parquet        user_id + attributes (when the source has them)
    <dir>/user_map.parquet     user_id, user_idx, is_cold, n_train
    <dir>/item_map.parquet     item_id, item_idx, is_cold, n_train, has_metadata
    <dir>/train/part-*.parquet user_id, item_id, timestamp, rating, user_idx, item_idx
    <dir>/val/…, <dir>/test/…

A directory is published by renaming a fully written temporary directory, so a
reader never sees a half-prepared dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from recsys.data.schema import SPLITS
from recsys.errors import DataError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def fingerprint(payload: dict) -> str:
    """Stable short hash of a JSON-serialisable payload (config + input hashes).

    >>> fingerprint({"a": 1, "b": [2, 3]}) == fingerprint({"b": [2, 3], "a": 1})
    True
    """
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class PreparedDataset:
    """Read access to a prepared dataset directory.

    >>> # ds = PreparedDataset.open("data_cache/synthetic-0123abcd"); ds.split("train")
    """

    path: Path
    manifest: dict
    label: str | None = None            # the dataset's name in reports (dataset.label); None: the source's name

    @classmethod
    def open(cls, path: str | Path) -> "PreparedDataset":
        path = Path(path)
        manifest_file = path / MANIFEST
        if not manifest_file.exists():
            raise DataError(
                "not a prepared dataset (no manifest.json)",
                file=str(path),
                hint="run `python -m rayjobs.prepare` first, or point at the directory it printed",
            )
        return cls(path=path, manifest=json.loads(manifest_file.read_text()))

    @property
    def name(self) -> str:
        """The dataset's name in report rows: its label when it has one, else :attr:`source`."""
        return self.label or self.source

    @property
    def source(self) -> str:
        """The loader that produced it (synthetic, movielens, amazon, table)."""
        return self.manifest["dataset"]

    def labelled(self, label: str | None) -> "PreparedDataset":
        """The same directory under another name in reports (``None`` keeps the source's name).

        >>> ds = PreparedDataset(Path("p"), {"dataset": "synthetic"})
        >>> ds.labelled("small").name, ds.labelled("small").source, ds.labelled(None).name
        ('small', 'synthetic', 'synthetic')
        """
        return replace(self, label=label)

    def scan(self, split: str) -> pl.LazyFrame:
        if split not in SPLITS:
            raise DataError(f"unknown split '{split}'", hint=f"use one of {', '.join(SPLITS)}")
        return pl.scan_parquet(self.path / split / "*.parquet")

    def split(self, split: str) -> pl.DataFrame:
        return self.scan(split).collect()

    def items(self) -> pl.DataFrame:
        return pl.read_parquet(self.path / "items.parquet")

    def users(self) -> pl.DataFrame | None:
        file = self.path / "users.parquet"
        return pl.read_parquet(file) if file.exists() else None

    def user_map(self) -> pl.DataFrame:
        return pl.read_parquet(self.path / "user_map.parquet")

    def item_map(self) -> pl.DataFrame:
        return pl.read_parquet(self.path / "item_map.parquet")

    def audit_rows(self) -> list[dict]:
        """Rows for the report's ``datasets`` table (loaded, filtered, train, val, test)."""
        return [dict(row) for row in self.manifest["stages"]]


class PreparedWriter:
    """Writes a prepared dataset into a temporary directory and publishes it atomically."""

    def __init__(self, final_dir: Path):
        self.final_dir = Path(final_dir)
        self.tmp_dir = self.final_dir.parent / f".{self.final_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
        self.tmp_dir.mkdir(parents=True)

    def write_frame(self, relative: str, frame: pl.DataFrame) -> None:
        target = self.tmp_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(target)

    def output_hashes(self) -> dict[str, str]:
        return {
            str(p.relative_to(self.tmp_dir)): file_sha256(p)
            for p in sorted(self.tmp_dir.rglob("*.parquet"))
        }

    def publish(self, manifest: dict) -> PreparedDataset:
        manifest = dict(manifest, format_version=FORMAT_VERSION, outputs=self.output_hashes())
        (self.tmp_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        if self.final_dir.exists():
            shutil.rmtree(self.final_dir)
        os.replace(self.tmp_dir, self.final_dir)
        return PreparedDataset(self.final_dir, manifest)

    def abort(self) -> None:
        shutil.rmtree(self.tmp_dir, ignore_errors=True)


def find_cached(cache_dir: Path, name: str, key: str) -> PreparedDataset | None:
    """The already prepared dataset with this fingerprint, if a complete one exists."""
    candidate = Path(cache_dir) / f"{name}-{key}"
    if (candidate / MANIFEST).exists():
        return PreparedDataset.open(candidate)
    return None
