"""Vectors cached on disk by fingerprint, written in parts so an interrupted run resumes.

Layout::

    <cache_root>/<encoder name>-<key>/identity.json      what the key was computed from
    <cache_root>/<encoder name>-<key>/parts/part-*.parquet   text_hash, embedding (list<float32>[d])

``key`` fingerprints everything that decides a vector except the text itself:
the encoder's content hash and architecture, pooling, normalisation,
``max_length``, precision, the template, fallback text and character cap. Inside,
a vector is found by the hash of its item's text, so a rerun with the same items
encodes nothing, added items encode only their own texts, and a run that stopped
half way left complete parts that the next run reuses. Parts appear atomically
(written under a hidden name, then renamed); a part written twice (a retried
task) holds the same vectors, and readers keep one per hash.

``cache_root`` may be a URI that pyarrow filesystems understand (``s3://...``):
then every node of a cluster reads and writes the same cache, and parts appear
through the filesystem the same way (hidden name, then moved into place). A
local ``cache_root`` lives on the driver's node; the Ray engine writes its parts
there.

>>> import tempfile
>>> cache = EmbeddingCache.open(tempfile.mkdtemp(), "tiny", {"sha256": "ab", "pooling": "mean"})
>>> _ = cache.write_part(pa.table({"text_hash": ["h1"], "embedding": embedding_array(np.ones((1, 2)))}))
>>> sorted(cache.known_hashes()), cache.vectors_for(["h1"]).tolist()
(['h1'], [[1.0, 1.0]])
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recsys import storage
from recsys.data.prepared import fingerprint
from recsys.errors import DataError

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
IDENTITY = "identity.json"
PARTS = "parts"


def embedding_array(vectors: np.ndarray) -> pa.FixedSizeListArray:
    """An (n, d) array as Arrow ``fixed_size_list<float32>[d]``.

    >>> embedding_array(np.zeros((2, 3))).type
    FixedSizeListType(fixed_size_list<item: float>[3])
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), vectors.shape[1])


def embedding_matrix(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The inverse of :func:`embedding_array`: a fixed-size-list column → float32 (n, d).

    >>> embedding_matrix(embedding_array(np.eye(2))).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    dim = column.type.list_size
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return flat.astype(np.float32, copy=False).reshape(len(column), dim)


def write_atomic(table: pa.Table, path: Path) -> Path:
    """Write ``table`` to ``path`` under a hidden temporary name, then rename it into place
    (:func:`recsys.storage.publish_atomic`)."""
    return storage.publish_atomic(path, lambda handle: pq.write_table(table, handle))


def write_table(table: pa.Table, location: str | Path) -> Path | str:
    """:func:`write_atomic` for a local path; for a URI, the Parquet bytes written through its filesystem.

    >>> import tempfile
    >>> write_table(pa.table({"a": [1]}), "file://" + tempfile.mkdtemp() + "/t.parquet").endswith("t.parquet")
    True
    """
    if not storage.is_uri(location):
        return write_atomic(table, Path(location))
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer)
    return storage.write_bytes(location, buffer.getvalue().to_pybytes())


def read_table(location: str | Path, columns: list[str] | None = None) -> pa.Table:
    """A Parquet file at a local path or a URI."""
    if not storage.is_uri(location):
        return pq.read_table(location, columns=columns)
    fs, path = storage.resolve(location)
    return pq.read_table(path, columns=columns, filesystem=fs)


def write_cache_part(parts_dir: str | Path, table: pa.Table) -> Path | str | None:
    """Add one part (``text_hash, embedding``) to a cache; a plain function so Ray tasks can call it."""
    if table.num_rows == 0:
        return None
    name = f"part-{time.time_ns()}-{os.getpid()}-{secrets.token_hex(4)}.parquet"
    return write_table(table.select(["text_hash", "embedding"]), storage.join(parts_dir, name))


@dataclass
class EmbeddingCache:
    """One fingerprinted cache directory of vectors keyed by text hash (a local Path, or a URI string)."""

    directory: Path | str

    def __post_init__(self) -> None:
        if not storage.is_uri(self.directory):
            self.directory = Path(self.directory)

    @classmethod
    def open(cls, cache_root: str | Path, name: str, payload: dict) -> "EmbeddingCache":
        """The cache for ``payload`` (created when new); ``payload`` is recorded in ``identity.json``."""
        payload = dict(payload, cache_format=CACHE_FORMAT)
        cache = cls(storage.join(cache_root, f"{name}-{fingerprint(payload)}"))
        identity = storage.join(cache.directory, IDENTITY)
        if isinstance(cache.directory, Path):
            cache.parts_dir.mkdir(parents=True, exist_ok=True)
        if not storage.exists(identity):
            storage.write_bytes(identity, json.dumps(payload, indent=2, sort_keys=True, default=str).encode())
        return cache

    @property
    def key(self) -> str:
        return storage.basename(self.directory).rsplit("-", 1)[-1]      # a URI's query string is not part of it

    @property
    def parts_dir(self) -> Path | str:
        if isinstance(self.directory, Path):
            return self.directory / PARTS
        return storage.join(self.directory, PARTS)

    def location(self, *parts: str) -> Path | str:
        """A place inside the cache directory (a Path for a local cache, a URI otherwise)."""
        joined = storage.join(self.directory, *parts)
        return Path(joined) if isinstance(self.directory, Path) else joined

    def part_files(self) -> list[Path] | list[str]:
        if isinstance(self.directory, Path):
            return sorted(p for p in self.parts_dir.glob("part-*.parquet"))
        return [storage.join(self.parts_dir, n) for n in storage.list_names(self.parts_dir, "part-", ".parquet")]

    def write_part(self, table: pa.Table) -> Path | None:
        return write_cache_part(self.parts_dir, table)

    def _read(self, columns: list[str]) -> pa.Table | None:
        """The parts' ``columns`` concatenated (duplicates kept), or None when the cache is empty."""
        for _ in range(3):   # a part removed by a concurrent compaction: list the parts again
            try:
                tables = [_read_part(part, columns) for part in self.part_files()]
            except FileNotFoundError:
                continue
            tables = [t for t in tables if t is not None and t.num_rows]
            return pa.concat_tables(tables) if tables else None
        raise DataError("cache parts keep disappearing while being read", file=str(self.parts_dir),
                        hint="run one embedding job per cache directory at a time, or set encoder.cache_dir")

    def known_hashes(self) -> set[str]:
        """Hashes of every text with a cached vector."""
        table = self._read(["text_hash"])
        return set() if table is None else set(table.column("text_hash").to_pylist())

    def read(self) -> pa.Table | None:
        """Every cached vector once (``text_hash, embedding``), or None when the cache is empty."""
        table = self._read(["text_hash", "embedding"])
        if table is None:
            return None
        keep = _first_occurrences(table.column("text_hash").to_pylist())
        return table if len(keep) == table.num_rows else table.take(pa.array(keep, pa.int64()))

    def vectors_for(self, hashes: list[str]) -> np.ndarray:
        """The vectors of ``hashes`` in that order; a hash without a vector is a DataError."""
        table = self.read()
        known = [] if table is None else table.column("text_hash").to_pylist()
        position = {h: i for i, h in enumerate(known)}
        missing = [h for h in hashes if h not in position]
        if missing:
            raise DataError(f"{len(missing)} text(s) have no cached vector (e.g. {missing[:3]})",
                            file=str(self.parts_dir), hint="run the embed stage again; it encodes what is missing")
        if not hashes:
            return np.zeros((0, 0), dtype=np.float32)
        matrix = embedding_matrix(table.column("embedding"))
        return matrix[np.array([position[h] for h in hashes], dtype=np.int64)]

    def compact(self, max_parts: int = 64) -> int:
        """Merge the parts into one when there are more than ``max_parts``; return how many were merged."""
        parts = self.part_files()
        if len(parts) <= max_parts:
            return 0
        merged = pa.concat_tables([read_table(p) for p in parts], promote_options="permissive")
        keep = _first_occurrences(merged.column("text_hash").to_pylist())
        write_cache_part(self.parts_dir, merged.take(pa.array(keep, pa.int64())))
        for part in parts:
            storage.delete(part)
        return len(parts)


def _read_part(part: Path | str, columns: list[str]) -> pa.Table | None:
    try:
        return read_table(part, columns=columns)
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError) as exc:
        log.warning("skipping unreadable cache part %s (%s); its texts will be encoded again", part, exc)
        return None


def _first_occurrences(values: list) -> list[int]:
    seen: set = set()
    keep = []
    for i, value in enumerate(values):
        if value not in seen:
            seen.add(value)
            keep.append(i)
    return keep
