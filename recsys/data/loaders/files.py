"""Open a publisher's files wherever they live: local paths or any ``pyarrow.fs`` URI.

A *location* is a string: a local path (``data/ml-1m/ratings.dat``) or a URI that
:meth:`pyarrow.fs.FileSystem.from_uri` understands (``file:///data/x``,
``s3://bucket/x``, ``gs://bucket/x``). Locations stay strings so they can be sent
to other processes; every function here resolves them again. Joining, naming,
resolving, listing and reading locations is :mod:`recsys.storage`'s (one place for the
whole project); this module adds what reading a publisher's files needs: errors that
name the input file, gzip, UTF-8 decoding and fingerprints.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "u.data").write_bytes(b"1\\t2\\t3\\t4\\n")
>>> [entry.name for entry in list_files(root.as_uri())]
['u.data']
>>> read_bytes(join(root.as_uri(), "u.data"))
b'1\\t2\\t3\\t4\\n'
"""

from __future__ import annotations

import gzip
import hashlib
import zlib

import pyarrow.fs as pafs

from recsys import storage
from recsys.errors import ConfigError, DataError
from recsys.storage import FileEntry, basename, is_uri, join  # noqa: F401 - the loaders' location helpers live in storage

_CHUNK = 8 * 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"


def resolve(location: str) -> tuple[pafs.FileSystem, str]:
    """:func:`recsys.storage.resolve`, with a location that cannot be opened a :class:`DataError`
    naming it (it is an input file).

    >>> fs, path = resolve("file:///tmp")
    >>> type(fs).__name__, path
    ('LocalFileSystem', '/tmp')
    """
    location = str(location)
    try:
        return storage.resolve(location)
    except ConfigError as err:
        raise _unopenable(location, err) from None


def _unopenable(location: str, err: ConfigError) -> DataError:
    return DataError(
        f"cannot open this location ({err.problem})",
        file=str(location),
        hint="use a local path or a URI pyarrow.fs understands (file://, s3://, gs://, hdfs://) "
        "and check credentials and network access",
    )


def file_type(location: str) -> pafs.FileType:
    """``FileType.File``, ``Directory`` or ``NotFound`` for a location."""
    try:
        return storage.file_type(location)
    except ConfigError as err:
        raise _unopenable(location, err) from None
    except OSError as err:
        raise DataError(f"cannot read this location ({err})", file=location,
                        hint="check the path, permissions and credentials") from None


def list_files(location: str, *, recursive: bool = False) -> list[FileEntry]:
    """:func:`recsys.storage.list_files` of an input directory; a missing or unreadable one is a :class:`DataError`."""
    try:
        return storage.list_files(location, recursive=recursive)
    except ConfigError as err:
        raise _unopenable(location, err) from None
    except OSError as err:
        raise DataError(f"cannot list this directory ({err})", file=location,
                        hint="check that the path exists and is readable") from None


def file_size(location: str) -> int:
    """Size of a file in bytes."""
    try:
        return storage.file_size(location)
    except ConfigError as err:
        raise _unopenable(location, err) from None
    except FileNotFoundError:
        raise DataError("file not found", file=location, hint="check the path") from None


def read_raw(location: str) -> bytes:
    """The bytes of a file exactly as stored (no decompression)."""
    try:
        return storage.read_bytes(location)
    except ConfigError as err:
        raise _unopenable(location, err) from None
    except FileNotFoundError:
        raise DataError("file not found", file=location,
                        hint="check the path; the file may have moved since the directory was listed") from None
    except OSError as err:
        raise DataError(f"cannot read the file ({err})", file=location,
                        hint="check permissions, credentials and network access") from None


def read_bytes(location: str) -> bytes:
    """The content of a file, gunzipped when it is gzip (by ``.gz`` name or by its magic bytes)."""
    data = read_raw(location)
    if not (basename(location).endswith(".gz") or data[:2] == _GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except EOFError:
        raise DataError(
            "the gzip stream is truncated (it ended before the end-of-stream marker)",
            file=location,
            hint="download the file again; an interrupted download leaves a truncated .gz",
        ) from None
    except (gzip.BadGzipFile, zlib.error, OSError) as err:
        raise DataError(f"the gzip data is corrupt ({err})", file=location,
                        hint="download the file again, or remove the .gz suffix if it is not compressed") from None


def decode(data: bytes, encoding: str, file: str) -> str:
    """Text of ``data``: ``utf-8`` (strict, errors name the line), ``latin-1``, or ``utf-8-robust``.

    ``utf-8-robust`` decodes each line as UTF-8 and falls back to Latin-1 for lines
    that are not valid UTF-8 (files re-encoded by hand often mix both).

    >>> decode("Café".encode("latin-1") + b"\\nCaf\\xc3\\xa9", "utf-8-robust", "movies.dat")
    'Café\\nCafé'
    """
    if data.isascii():
        return data.decode("ascii")
    if encoding == "latin-1":
        return data.decode("latin-1")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        if encoding == "utf-8-robust":
            return "\n".join(_decode_line(line) for line in data.split(b"\n"))
        raise undecodable(data, err, file) from None


def _decode_line(line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return line.decode("latin-1")


def undecodable(data: bytes, err: UnicodeDecodeError, file: str) -> DataError:
    """The error for bytes that are not valid in ``err.encoding``, naming the line and bytes."""
    line = data.count(b"\n", 0, err.start) + 1
    bad = data[err.start:max(err.end, err.start + 1)]
    return DataError(
        f"bytes {bad!r} at line {line} are not valid {err.encoding} (tried encoding {err.encoding})",
        file=file,
        hint="re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8), "
        "or check that it is the publisher's original file",
    )


def check_utf8(data: bytes, file: str) -> None:
    """Raise a :class:`DataError` naming the line if ``data`` is not valid UTF-8.

    >>> check_utf8(b"ok\\nCaf\\xe9\\n", "movies.csv")
    Traceback (most recent call last):
    ...
    recsys.errors.DataError: movies.csv: bytes b'\\xe9' at line 2 are not valid utf-8 (tried encoding utf-8). What to do: re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8), or check that it is the publisher's original file
    """
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise undecodable(data, err, file) from None


def file_fingerprint(location: str) -> str:
    """SHA-256 of a file's stored bytes, read in chunks (used as a cache key).

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
    >>> _ = path.write_bytes(b"abc")
    >>> file_fingerprint(str(path))[:16]
    'ba7816bf8f01cfea'
    """
    fs, path = resolve(location)
    digest = hashlib.sha256()
    try:
        with fs.open_input_stream(path, compression=None) as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        raise DataError("file not found", file=location, hint="check the path") from None
    except OSError as err:
        raise DataError(f"cannot read the file ({err})", file=location,
                        hint="check permissions, credentials and network access") from None
    return digest.hexdigest()
