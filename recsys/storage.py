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
"""

from __future__ import annotations

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


def join(location: str | Path, *parts: str) -> str:
    """``location`` with ``parts`` appended, keeping a URI a URI (``/`` separators)."""
    if is_uri(location):
        return "/".join([str(location).rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(location, *parts))
