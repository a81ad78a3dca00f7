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

import os
import re
from pathlib import Path

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
    filesystem build) raises a :class:`ConfigError` naming ``setting``.
    """
    import pyarrow.fs as pafs

    if not is_uri(location):
        return pafs.LocalFileSystem(), str(Path(location).expanduser().resolve())
    try:
        fs, path = pafs.FileSystem.from_uri(str(location))
    except (ValueError, OSError, ImportError, TypeError) as exc:
        raise ConfigError(f"cannot open {location!r} as a filesystem ({exc})", setting=setting,
                          hint="use a local path, or an s3://, gs:// or file:// URI with credentials set "
                               "(AWS_* / GOOGLE_* environment variables)") from None
    return fs, path


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

    >>> join("gs://b/x/", "/y/", "z.parquet")
    'gs://b/x/y/z.parquet'
    """
    if is_uri(location):
        base, query = split_query(location)
        return "/".join([base.rstrip("/"), *(str(p).strip("/") for p in parts)]) + query
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


def exists(location: str | Path) -> bool:
    """True when a file or directory is at ``location``.

    >>> exists("file:///"), exists("/no/such/place/here")
    (True, False)
    """
    import pyarrow.fs as pafs

    fs, path = resolve(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def list_names(location: str | Path, prefix: str = "", suffix: str = "") -> list[str]:
    """Sorted names of the files directly inside the directory ``location`` (none when it is missing).

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> _ = write_bytes(join(folder, "part-1.parquet"), b"x")
    >>> list_names(folder, prefix="part-"), list_names(join(folder, "missing"))
    (['part-1.parquet'], [])
    """
    import pyarrow.fs as pafs

    fs, path = resolve(location)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    names = (info.base_name for info in infos if info.type == pafs.FileType.File)
    return sorted(n for n in names if n.startswith(prefix) and n.endswith(suffix))


_WHOLE_OBJECT_STORES = ("s3", "gcs")     # pyarrow FileSystem.type_name of stores whose uploads appear whole


def write_bytes(location: str | Path, data: bytes) -> str:
    """Write ``data`` to ``location`` so that it appears whole or not at all; return the location.

    On object stores (S3, GCS) an object appears only once its upload completes, so
    it is written in place; elsewhere the bytes go to a hidden temporary name beside
    it, then move into place (a rename). Parent directories are created where the
    filesystem has directories.

    >>> import tempfile
    >>> target = join(tempfile.mkdtemp(), "a", "b.txt")
    >>> read_bytes(write_bytes(target, b"hello"))
    b'hello'
    """
    import secrets

    fs, path = resolve(location)
    if fs.type_name in _WHOLE_OBJECT_STORES:
        with fs.open_output_stream(path) as out:
            out.write(data)
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


def read_bytes(location: str | Path) -> bytes:
    """The whole content of the file at ``location``."""
    fs, path = resolve(location)
    with fs.open_input_stream(path) as handle:
        return handle.read()


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
    """Copy the file at ``location`` to a local file; return the local path."""
    local_file = Path(local_file)
    local_file.parent.mkdir(parents=True, exist_ok=True)
    local_file.write_bytes(read_bytes(location))
    return local_file

