"""Run directories and their files on any filesystem: a local ``Path``, or a :class:`RemotePath` for a URI.

The report reader walks run directories with a handful of operations (is it a
directory, list it, does a file exist, read a Parquet file or its schema). Local
paths keep using ``pathlib`` (and polars' own lazy Parquet scan); a URI that
pyarrow's filesystems understand (``s3://``, ``gs://``, ``file://``, see
:mod:`recsys.storage`) becomes a :class:`RemotePath` whose operations go through
that filesystem. ``gs://`` takes exactly the same code path as ``s3://``.

A query string on the URI (``s3://bucket/reports?endpoint_override=http://127.0.0.1:9000``)
configures the filesystem and is kept on every path below it: joining, resolving, listing, reading
and writing are :mod:`recsys.storage`'s; this module adds Location objects, globbing and Parquet reading.

>>> p = as_location("s3://bucket/reports?region=eu-west-1") / "run-1" / "metrics"
>>> str(p), p.name, p.fs_path
('s3://bucket/reports/run-1/metrics?region=eu-west-1', 'metrics', 'bucket/reports/run-1/metrics')
>>> as_location("reports/run-1").name
'run-1'
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from recsys import storage
from recsys.storage import is_uri, split_query

GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class RemotePath:
    """A file or directory named by a URI, read through the pyarrow filesystem :mod:`recsys.storage` opens for it."""

    uri: str          # scheme://bucket/key, no query
    query: str = ""   # "" or "?key=value&..."

    @classmethod
    def parse(cls, text: str) -> RemotePath:
        base, query = split_query(text)
        kind, mark, rest = base.partition("://")
        return cls(kind + mark + (rest.rstrip("/") or rest), query if query != "?" else "")

    def __truediv__(self, name: str) -> RemotePath:
        return RemotePath.parse(storage.join(str(self), name))

    def __str__(self) -> str:
        return self.uri + self.query

    @property
    def scheme(self) -> str:
        return storage.scheme(self.uri)

    @property
    def name(self) -> str:
        return storage.basename(self.uri)

    @property
    def parent(self) -> RemotePath:
        head = storage.parent(self.uri)
        return RemotePath(head if "://" in head and head.split("://", 1)[1] else self.uri, self.query)

    @property
    def fs(self):
        return storage.resolve(str(self), setting="--runs")[0]

    @property
    def fs_path(self) -> str:
        return storage.resolve(str(self), setting="--runs")[1]


Location = Path | RemotePath


def as_location(text: str | Path) -> Location:
    """A ``Path`` for a local path (``~`` expanded), a :class:`RemotePath` for a URI."""
    if isinstance(text, (Path, RemotePath)):
        return text
    return RemotePath.parse(text) if is_uri(text) else Path(text).expanduser()


def is_dir(path: Location) -> bool:
    """True when ``path`` is a directory (on S3: a prefix holding objects)."""
    if isinstance(path, Path):
        return path.is_dir()
    return storage.is_dir(str(path))


def exists(path: Location) -> bool:
    """True when ``path`` is a file or a directory."""
    if isinstance(path, Path):
        return path.exists()
    return storage.exists(str(path))


def children(path: Location) -> list[Location]:
    """Entries directly inside directory ``path``, sorted by name; [] when it is not a directory."""
    if isinstance(path, Path):
        return sorted(path.iterdir()) if path.is_dir() else []
    try:
        entries = storage.list_files(str(path), allow_not_found=True)
    except (OSError, pa.ArrowException):
        return []
    return sorted((path / entry.name.rstrip("/") for entry in entries), key=lambda p: p.name)


def glob(pattern: str) -> list[Location]:
    """Paths matching a glob (``*``, ``?``, ``[...]``) in any component, local or URI, sorted.

    >>> glob("no-such-dir-anywhere/*")
    []
    """
    if not is_uri(pattern):
        import glob as globlib

        return [Path(p) for p in sorted(globlib.glob(str(Path(pattern).expanduser())))]
    root = RemotePath.parse(pattern)
    scheme_part, rest = root.uri.split("://", 1)
    parts = rest.split("/")
    fixed = next(i for i, part in enumerate(parts) if GLOB_CHARS & set(part))
    current = [RemotePath(f"{scheme_part}://{'/'.join(parts[:fixed])}", root.query)]
    for part in parts[fixed:]:
        if GLOB_CHARS & set(part):
            current = [c for d in current for c in children(d) if fnmatch.fnmatchcase(c.name, part)]
        else:
            current = [d / part for d in current if exists(d / part)]
    return sorted(current, key=str)


def unique_key(path: Location) -> Location:
    """A key that is equal for two spellings of the same run (absolute local paths)."""
    return path.resolve() if isinstance(path, Path) else path


def read_table(path: Location, columns: list[str] | None = None) -> pa.Table:
    """One Parquet file as an Arrow table."""
    if isinstance(path, Path):
        return pq.read_table(path, columns=columns)
    return pq.read_table(path.fs_path, columns=columns, filesystem=path.fs)


def read_schema(path: Location) -> pa.Schema:
    """The Arrow schema of one Parquet file (its footer only)."""
    if isinstance(path, Path):
        return pq.read_schema(path)
    return pq.read_schema(path.fs_path, filesystem=path.fs)


def row_count(path: Location) -> int:
    """Rows in one Parquet file, from its footer."""
    if isinstance(path, Path):
        return pq.read_metadata(path).num_rows
    return pq.read_metadata(path.fs_path, filesystem=path.fs).num_rows


def read_text(path: Location) -> str:
    """A small text file, decoded as UTF-8."""
    if isinstance(path, Path):
        return path.read_text(encoding="utf-8")
    return storage.read_text(str(path))


def write_text_atomic(path: Location, text: str) -> None:
    """Write a text file so that readers see the old content or the new one, never a part
    (:func:`recsys.storage.write_text`: temporary name, fsync and rename locally; on object
    stores a single PUT is already all-or-nothing)."""
    storage.write_text(str(path), text)
