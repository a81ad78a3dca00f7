"""Where files live: local paths, or URIs that pyarrow filesystems understand (``s3://``, ``gs://``, ``file://``).

One place turns a location into a ``(filesystem, path)`` pair, so the report
reader, the report writer, the embedding cache and checkpoints accept the same
locations. A plain path (no scheme) stays a local path; a URI is handed to
:func:`pyarrow.fs.FileSystem.from_uri`, which reads credentials and endpoints the
usual way (``AWS_*`` environment variables, ``?endpoint_override=`` in the URI, ...).

>>> is_uri("s3://bucket/reports"), is_uri("reports/run-1"), is_uri("C:/data")
(True, False, False)
>>> fs, path = resolve("file:///tmp/reports")
>>> type(fs).__name__, path
('LocalFileSystem', '/tmp/reports')
>>> join("s3://bucket/reports", "run-1", "metrics")
's3://bucket/reports/run-1/metrics'

A query string configures the filesystem (``?endpoint_override=...&scheme=http``), so
every location derived from a URI keeps it at the end:

>>> join("s3://bucket/reports?endpoint_override=127.0.0.1:9000", "run-1", "metrics")
's3://bucket/reports/run-1/metrics?endpoint_override=127.0.0.1:9000'
"""

from __future__ import annotations

import functools
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote

from recsys.errors import ConfigError

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+)://")


def is_uri(location: str | Path) -> bool:
    """True for ``scheme://...`` locations (a one-letter scheme is a Windows drive, not a URI)."""
    return isinstance(location, str) and bool(_SCHEME.match(location))


def scheme(location: str | Path) -> str:
    """The URI scheme, or ``"file"`` for a plain path.

    >>> scheme("gs://b/x"), scheme("/tmp/x")
    ('gs', 'file')
    """
    match = _SCHEME.match(location) if isinstance(location, str) else None
    return match.group(1).lower() if match else "file"


def resolve(location: str | Path, setting: str | None = None):
    """``(pyarrow filesystem, path inside it)`` for a local path or a URI.

    A URI that pyarrow cannot open (unknown scheme, no credentials, a missing
    filesystem build) raises a :class:`ConfigError` naming ``setting``. Object-store
    filesystems are made once per bucket and query string (S3 clients are costly to create).

    >>> resolve("s3://bucket/a%20b/c/?region=eu-west-1")[1]
    'bucket/a b/c'
    """
    import pyarrow.fs as pafs

    if not is_uri(location):
        return pafs.LocalFileSystem(), str(Path(location).expanduser().resolve())
    base, query = split_query(location)
    kind = scheme(base)
    if kind in _BUCKET_STORES:
        rest = base.split("://", 1)[1]
        bucket = rest.split("/", 1)[0]
        fs = _open(f"{kind}://{bucket}{query}", setting)
        return fs, unquote(rest).rstrip("/") or bucket
    return _from_uri(str(location), setting)


_BUCKET_STORES = ("s3", "gs", "gcs")     # schemes whose path inside the filesystem is "bucket/key"


@functools.lru_cache(maxsize=32)
def _cached_filesystem(root: str, environment: tuple):
    import pyarrow.fs as pafs

    return pafs.FileSystem.from_uri(root)[0]


def _credentials_environment() -> tuple:
    """The environment variables an object store's filesystem reads when it opens (endpoint, region,
    keys): part of the cache key, so a changed endpoint or key opens a new filesystem."""
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(("AWS_", "GOOGLE_", "GCS_"))))


def _open(root: str, setting: str | None):
    try:
        return _cached_filesystem(root, _credentials_environment())
    except (ValueError, OSError, ImportError, TypeError) as exc:
        raise _cannot_open(root, exc, setting) from None


def _from_uri(location: str, setting: str | None):
    import pyarrow.fs as pafs

    try:
        return pafs.FileSystem.from_uri(location)
    except (ValueError, OSError, ImportError, TypeError) as exc:
        raise _cannot_open(location, exc, setting) from None


def _cannot_open(location: str, exc: Exception, setting: str | None) -> ConfigError:
    return ConfigError(f"cannot open {location!r} as a filesystem ({exc})", setting=setting,
                       hint="use a local path, or an s3://, gs:// or file:// URI with credentials set "
                            "(AWS_* / GOOGLE_* environment variables)")


def split_query(location: str | Path) -> tuple[str, str]:
    """A URI's ``(location without the query, "?query" or "")``; a local path has no query.

    >>> split_query("s3://b/dir?region=eu-west-1"), split_query("/tmp/a?b")
    (('s3://b/dir', '?region=eu-west-1'), ('/tmp/a?b', ''))
    """
    if not is_uri(location):
        return str(location), ""
    base, mark, query = str(location).partition("?")
    return base, mark + query


def join(location: str | Path, *parts: str) -> str:
    """``location`` with ``parts`` appended, keeping a URI a URI (``/`` separators, query string last).

    >>> join("gs://b/x/", "/y/", "z.parquet"), join("file:///", "tmp")
    ('gs://b/x/y/z.parquet', 'file:///tmp')
    """
    if is_uri(location):
        base, query = split_query(location)
        head = base.rstrip("/")
        head = head + "//" if head.endswith(":") else head          # the root of file:/// keeps its slashes
        return "/".join([head, *(str(p).strip("/") for p in parts)]) + query
    return str(Path(location, *parts))


def basename(location: str | Path) -> str:
    """The last name in a location (a URI's query string is not part of it).

    >>> basename("s3://bucket/dir/meta_Books.json.gz?region=x"), basename("/data/ml/ratings.csv")
    ('meta_Books.json.gz', 'ratings.csv')
    """
    base, _ = split_query(location)
    return base.rstrip("/").rsplit("/", 1)[-1].rsplit(os.sep, 1)[-1]


# ---------------------------------------------------------------- files on any filesystem


def parent(location: str | Path) -> str:
    """The directory holding ``location`` (a URI stays a URI).

    >>> parent("s3://bucket/reports/run-1/metrics/part-1.parquet?region=x")
    's3://bucket/reports/run-1/metrics?region=x'
    >>> parent("/tmp/a/b")
    '/tmp/a'
    """
    if is_uri(location):
        base, query = split_query(location)
        return base.rstrip("/").rsplit("/", 1)[0] + query
    return str(Path(location).parent)


@dataclass(frozen=True)
class FileEntry:
    """A file (or, in a flat listing, a directory: name ending in ``/``) found under a directory:
    its location, path relative to the directory, and size."""

    location: str
    name: str
    size: int


def file_info(location: str | Path):
    """pyarrow's ``FileInfo`` for ``location`` (``.type`` is ``File``, ``Directory`` or ``NotFound``)."""
    fs, path = resolve(location)
    return fs.get_file_info(path)


def file_type(location: str | Path):
    """``pyarrow.fs.FileType.File``, ``Directory`` or ``NotFound`` for a location."""
    return file_info(location).type


def exists(location: str | Path) -> bool:
    """True when a file or directory is at ``location``.

    >>> exists("file:///"), exists("/no/such/place/here")
    (True, False)
    """
    import pyarrow.fs as pafs

    return file_type(location) != pafs.FileType.NotFound


def is_dir(location: str | Path) -> bool:
    """True when ``location`` is a directory (on an object store: a prefix holding objects).

    >>> is_dir("file:///"), is_dir("/no/such/place/here")
    (True, False)
    """
    import pyarrow.fs as pafs

    return file_type(location) == pafs.FileType.Directory


def file_size(location: str | Path) -> int:
    """Size in bytes of the file at ``location``; :class:`FileNotFoundError` when there is no file."""
    import pyarrow.fs as pafs

    info = file_info(location)
    if info.type != pafs.FileType.File:
        raise FileNotFoundError(f"no file at {location}")
    return int(info.size or 0)


def list_files(location: str | Path, *, recursive: bool = False, allow_not_found: bool = False) -> list[FileEntry]:
    """Files directly under the directory ``location`` (or below it, with ``recursive``), sorted by name.

    Subdirectories are listed as entries whose name ends with ``/`` when not recursive,
    so callers can look one level down. A missing directory is an ``OSError``
    (:class:`FileNotFoundError`), or no entries with ``allow_not_found``. Each entry's
    location is :func:`join` of ``location`` and its name (a URI keeps its query string last).

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> _ = write_bytes(join(folder, "sub", "b.txt"), b"x")
    >>> [e.name for e in list_files(folder)], [e.name for e in list_files(folder, recursive=True)]
    (['sub/'], ['sub/b.txt'])
    """
    import pyarrow.fs as pafs

    fs, root = resolve(location)
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=recursive, allow_not_found=allow_not_found))
    prefix = root.rstrip("/") + "/"
    entries = []
    for info in infos:
        name = info.path[len(prefix):] if info.path.startswith(prefix) else info.base_name
        name = name.replace(os.sep, "/")
        if info.type == pafs.FileType.Directory:
            if not recursive:
                entries.append(FileEntry(join(location, name), name + "/", 0))
        elif info.type == pafs.FileType.File:
            entries.append(FileEntry(join(location, name), name, info.size or 0))
    return sorted(entries, key=lambda entry: entry.name)


def list_names(location: str | Path, prefix: str = "", suffix: str = "") -> list[str]:
    """Sorted names of the files directly inside the directory ``location`` (none when it is missing).

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> _ = write_bytes(join(folder, "part-1.parquet"), b"x")
    >>> list_names(folder, prefix="part-"), list_names(join(folder, "missing"))
    (['part-1.parquet'], [])
    """
    names = (e.name for e in list_files(location, allow_not_found=True) if not e.name.endswith("/"))
    return [n for n in names if n.startswith(prefix) and n.endswith(suffix)]


# ---------------------------------------------------------------- writing whole or not at all


_WHOLE_OBJECT_STORES = ("s3", "gcs")     # pyarrow FileSystem.type_name of stores whose uploads appear whole


def fsync_dir(directory: str | Path) -> None:
    """Flush a local directory's entries (a rename into it) to disk, where the OS allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def publish_atomic(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Write the local file ``path`` through ``write(handle)`` into a hidden temporary name beside it,
    sync it, then rename it into place; a failure leaves no partial file. Returns the path.

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "a" / "b.txt"
    >>> publish_atomic(target, lambda handle: handle.write(b"hi")).read_bytes()
    b'hi'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def write_bytes(location: str | Path, data: bytes) -> str:
    """Write ``data`` to ``location`` so that it appears whole or not at all; return the location.

    On object stores (S3, GCS) an object appears only once its upload completes, so
    it is written in place; a local path goes through :func:`publish_atomic`; on other
    filesystems the bytes go to a hidden temporary name beside it, then move into place
    (a rename). Parent directories are created where the filesystem has directories.

    >>> import tempfile
    >>> target = join(tempfile.mkdtemp(), "a", "b.txt")
    >>> read_bytes(write_bytes(target, b"hello"))
    b'hello'
    """
    fs, path = resolve(location)
    if fs.type_name in _WHOLE_OBJECT_STORES:
        with fs.open_output_stream(path) as out:
            out.write(data)
        return str(location)
    if fs.type_name == "local":
        publish_atomic(path, lambda handle: handle.write(data))
        return str(location)
    folder, _, name = path.rpartition("/")
    fs.create_dir(folder, recursive=True)
    tmp = f"{folder}/.{name}.{secrets.token_hex(4)}.tmp"
    try:
        with fs.open_output_stream(tmp) as out:
            out.write(data)
        fs.move(tmp, path)
    except BaseException:
        try:
            fs.delete_file(tmp)
        except OSError:
            pass
        raise
    return str(location)


def write_text(location: str | Path, text: str) -> str:
    """:func:`write_bytes` of ``text`` encoded as UTF-8."""
    return write_bytes(location, text.encode("utf-8"))


# ---------------------------------------------------------------- reading, copying, deleting


def read_bytes(location: str | Path) -> bytes:
    """The whole content of the file at ``location``, exactly as stored (no decompression)."""
    fs, path = resolve(location)
    with fs.open_input_stream(path, compression=None) as handle:
        return handle.read()


def read_text(location: str | Path) -> str:
    """A small text file, decoded as UTF-8."""
    return read_bytes(location).decode("utf-8")


def delete(location: str | Path) -> bool:
    """Remove the file at ``location``; False when there was none.

    >>> import tempfile
    >>> target = write_bytes(join(tempfile.mkdtemp(), "x"), b"x")
    >>> delete(target), delete(target), exists(target)
    (True, False, False)
    """
    fs, path = resolve(location)
    try:
        fs.delete_file(path)
    except FileNotFoundError:
        return False
    return True


def upload(local_file: str | Path, location: str | Path) -> str:
    """Copy a local file to ``location`` (any filesystem), whole or not at all; return the location.

    >>> import tempfile
    >>> source = Path(tempfile.mkdtemp()) / "f.bin"
    >>> _ = source.write_bytes(b"abc")
    >>> read_bytes(upload(source, "file://" + str(source.parent / "g.bin")))
    b'abc'
    """
    return write_bytes(location, Path(local_file).read_bytes())


def download(location: str | Path, local_file: str | Path) -> Path:
    """Copy the file at ``location`` to a local file (whole or not at all); return the local path."""
    data = read_bytes(location)
    return publish_atomic(local_file, lambda handle: handle.write(data))
