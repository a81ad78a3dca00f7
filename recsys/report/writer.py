"""Write a run's report tables as Parquet parts, atomically.

Layout of one run directory (``report.dir``)::

    <run_dir>/<table>/part-<time_ns>-<pid>-<random>.parquet   one part per write
    <run_dir>/runs/part-run.parquet                            the runs row, rewritten in place
    <run_dir>/_staging/<txn>/<table>/part-....parquet         parts of an open transaction

Every file appears under its final name only when complete: it is written to a
hidden temporary name in the same directory, flushed to disk, then renamed.
A transaction stages its parts and publishes them on clean exit; a
``_COMMITTED`` marker written before publishing lets readers and later writers
finish a publish that a crash interrupted, so a transaction is seen whole or
not at all.

``report.dir`` may also be a URI that pyarrow filesystems understand
(``s3://bucket/reports/run-1``, ``gs://...``): the run is then written exactly as
above into a local working copy, and every file published there (a part, a
committed transaction's parts, the runs row, a text file) is uploaded to the
same relative place under the URI, each object appearing whole (written under a
hidden name, then moved). Parts of one transaction are uploaded one after the
other, so a reader of the URI may see some of them a moment before the rest;
the runs row is uploaded last, when the stage is marked done.

>>> import tempfile, pathlib
>>> run_dir = pathlib.Path(tempfile.mkdtemp()) / "run"
>>> with RunWriter(run_dir, run_id="r1", config={"seed": 0}) as run:
...     with run.transaction():
...         _ = run.write("curves", [{"model": "mf", "step": 0, "name": "train/loss", "value": 0.7}])
...     run.mark_stage_done("train")
>>> sorted(p.parent.name for p in run_dir.glob("*/part-*.parquet"))
['curves', 'runs']
"""

from __future__ import annotations

import atexit
import io
import json
import os
import platform
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

import recsys
from recsys import storage
from recsys.errors import ConfigError, DataError
from recsys.report.rows import Rows, conform_rows
from recsys.report.schema import RUN_STATUSES

PART_PREFIX = "part-"
PART_SUFFIX = ".parquet"
RUNS_PART = "part-run.parquet"
STAGING_DIR = "_staging"
COMMIT_MARKER = "_COMMITTED"
FILES_DIR = "_files"        # inside a transaction: plain files published at the top of the run directory

_LIBRARIES = ("ray", "torch", "transformers", "polars", "pyarrow", "numpy", "hydra-core", "omegaconf")


def new_run_id(now: datetime | None = None) -> str:
    """A fresh run id: UTC start time (sortable) plus six random hex digits.

    >>> new_run_id(datetime(2026, 11, 29, 19, 30, tzinfo=timezone.utc))[:16]
    '20261129-193000-'
    >>> len(new_run_id())
    22
    """
    now = now or datetime.now(timezone.utc)
    return f"{now.astimezone(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_run_id(run_id: str, setting: str = "run_id") -> str:
    """``run_id`` if it is a safe single path component (letters, digits, ``.``, ``_``, ``-``), else a ConfigError.

    Run ids name directories under ``report.root`` and Ray Train runs, so one that
    holds a separator or ``..`` could write outside the report directory.

    >>> check_run_id("20261129-193000-ab12cd")
    '20261129-193000-ab12cd'
    >>> check_run_id("../../etc")
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'run_id': run id '../../etc' is not a plain name. What to do: use letters, digits, '.', '_' and '-' only (at most 128, not starting with '.' or '-')
    """
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id) or ".." in run_id:
        raise ConfigError(f"run id {run_id!r} is not a plain name", setting=setting,
                          hint="use letters, digits, '.', '_' and '-' only (at most 128, not starting with '.' or '-')")
    return run_id


def collect_versions() -> dict[str, str]:
    """Versions of Python, recsys and the installed libraries (read from metadata, not imported).

    >>> collect_versions()["recsys"] == recsys.__version__
    True
    """
    versions = {
        "python": platform.python_version(),
        "recsys": recsys.__version__,
        "platform": platform.platform(),
    }
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


# ---------------------------------------------------------------- files


def _write_atomic(data: pa.Table, path: Path) -> None:
    storage.publish_atomic(path, lambda handle: pq.write_table(data, handle))


def new_part_name() -> str:
    """A part file name unique across processes and hosts, sorting by creation time.

    >>> name = new_part_name()
    >>> name.startswith(PART_PREFIX) and name.endswith(PART_SUFFIX)
    True
    """
    return f"{PART_PREFIX}{time.time_ns()}-{os.getpid()}-{secrets.token_hex(4)}{PART_SUFFIX}"


def is_part_file(path: Path) -> bool:
    """True for a finished part; temporary files (hidden, ``.tmp``) never match.

    >>> is_part_file(Path("metrics/part-1.parquet")), is_part_file(Path("metrics/.part-1.parquet.ab.tmp"))
    (True, False)
    """
    return path.name.startswith(PART_PREFIX) and path.name.endswith(PART_SUFFIX)


def _complete_commit(txn_dir: Path, run_dir: Path) -> list[Path]:
    """Move the parts of a committed transaction to their tables, then drop its staging dir; return them."""
    published = []
    files = txn_dir / FILES_DIR
    if files.is_dir():
        for path in sorted(files.iterdir()):
            if not path.name.startswith("."):
                os.replace(path, run_dir / path.name)
                published.append(run_dir / path.name)
        storage.fsync_dir(run_dir)
    for table_dir in sorted(p for p in txn_dir.iterdir() if p.is_dir() and p.name != FILES_DIR):
        target = run_dir / table_dir.name
        target.mkdir(parents=True, exist_ok=True)
        for part in sorted(table_dir.iterdir()):
            if is_part_file(part):
                os.replace(part, target / part.name)
                published.append(target / part.name)
        storage.fsync_dir(target)
    shutil.rmtree(txn_dir, ignore_errors=True)
    return published


def _drop_empty_staging(run_dir: Path) -> None:
    try:
        (run_dir / STAGING_DIR).rmdir()
    except OSError:
        pass


def discard_uncommitted_transactions(run_dir: str | Path) -> int:
    """Remove the staged parts of transactions that never committed (a stopped run's); return how many.

    >>> import tempfile
    >>> run = Path(tempfile.mkdtemp())
    >>> (run / STAGING_DIR / "txn-1" / "metrics").mkdir(parents=True)
    >>> discard_uncommitted_transactions(run), (run / STAGING_DIR).exists()
    (1, False)
    """
    staging = Path(run_dir) / STAGING_DIR
    if not staging.is_dir():
        return 0
    dropped = [txn for txn in sorted(staging.iterdir()) if not (txn / COMMIT_MARKER).exists()]
    for txn_dir in dropped:
        shutil.rmtree(txn_dir, ignore_errors=True)
    _drop_empty_staging(Path(run_dir))
    return len(dropped)


def complete_committed_transactions(run_dir: str | Path) -> int:
    """Finish publishing transactions that committed but were interrupted; return how many.

    >>> import tempfile
    >>> complete_committed_transactions(tempfile.mkdtemp())
    0
    """
    return len(_complete_committed(Path(run_dir)))


def _complete_committed(run_dir: Path) -> list[list[Path]]:
    staging = run_dir / STAGING_DIR
    if not staging.is_dir():
        return []
    done = []
    for txn_dir in sorted(staging.iterdir()):
        if (txn_dir / COMMIT_MARKER).exists():
            done.append(_complete_commit(txn_dir, run_dir))
    _drop_empty_staging(run_dir)
    return done


def write_part(run_dir: str | Path, table: str, rows: Rows, run_id: str) -> Path | str | None:
    """Validate ``rows`` and write them as one new part of ``table``; return its path.

    Needs no :class:`RunWriter`, so a worker process can add parts to a run it did
    not start. Returns None (and writes nothing) when there are no rows. ``run_dir``
    may be a URI (the part is written through its filesystem; the location is returned).

    >>> import tempfile
    >>> write_part(tempfile.mkdtemp(), "curves",
    ...     [{"model": "mf", "step": 0, "name": "lr", "value": 0.1}], "r1").parent.name
    'curves'
    """
    data = conform_rows(table, rows, run_id)
    if data.num_rows == 0:
        return None
    if storage.is_uri(run_dir):
        buffer = io.BytesIO()
        pq.write_table(data, buffer)
        return storage.write_bytes(storage.join(run_dir, table, new_part_name()), buffer.getvalue())
    path = Path(run_dir) / table / new_part_name()
    _write_atomic(data, path)
    return path


# ---------------------------------------------------------------- the run


def _describe_error(error: BaseException | str | None) -> str | None:
    if error is None or isinstance(error, str):
        return error
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


class RunWriter:
    """Writes one run's tables under ``report_dir`` and keeps its ``runs`` row current.

    ``start()`` writes the runs row (status ``running``); ``finish()`` rewrites it with
    ``ended_at`` and ``succeeded``/``failed``. Used as a context manager it starts the
    run, and finishes it as failed (error recorded) when any exception, including
    KeyboardInterrupt, leaves the block. ``resume=True`` reopens a run directory that
    already holds a run (keeping its id, start time and completed stages).

    ``report_dir`` is a local path or a URI (see the module doc): ``location`` is it
    as given, ``run_dir`` the local directory the run is written in (the same place
    for a local path, a working copy uploaded to ``location`` for a URI).

    >>> import tempfile
    >>> run = RunWriter(tempfile.mkdtemp(), run_id="r2").start()
    >>> run.finish("failed", error=ValueError("bad input"))
    >>> run.status, run.error
    ('failed', 'ValueError: bad input')
    """

    def __init__(
        self,
        report_dir: str | Path,
        run_id: str | None = None,
        config: Mapping[str, Any] | Any | None = None,
        *,
        cluster: Mapping[str, Any] | None = None,
        resume: bool = False,
    ) -> None:
        self.location = str(report_dir)
        self.remote = storage.is_uri(report_dir)
        if self.remote:
            storage.resolve(report_dir, setting="report.dir")      # a URI pyarrow cannot open fails here
            self.run_dir = Path(tempfile.mkdtemp(prefix="recsys-report-"))
        else:
            self.run_dir = Path(report_dir)
        self._given_run_id = run_id if run_id is None else check_run_id(run_id)
        self.run_id = run_id or new_run_id()
        self.config = asdict(config) if is_dataclass(config) else dict(config or {})
        self.cluster = dict(cluster or {})
        self.resume = resume
        self.status: str | None = None
        self.error: str | None = None
        self.started_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.stages: list[str] = []
        self._lock = threading.RLock()
        self._local = threading.local()

    # -- lifecycle

    def start(self) -> RunWriter:
        """Write the runs row with status ``running`` and return self."""
        with self._lock:
            existing = self._read_runs_row()
            if existing is None:
                self.started_at = datetime.now(timezone.utc)
            elif not (self.started_at is not None and existing["run_id"] == self.run_id):
                self._adopt(existing)        # another writer's run; this one restarting its own needs nothing
            self.status, self.error, self.ended_at = "running", None, None
            self._complete_and_upload()
            self._write_runs_row()
            atexit.register(self._finish_at_exit)
        return self

    def _adopt(self, row: dict[str, Any]) -> None:
        where = storage.join(self.location, "runs", RUNS_PART)
        if not self.resume:
            raise ConfigError(
                f"the report directory already holds run '{row['run_id']}'",
                file=where, setting="report.dir",
                hint="choose a new report.dir, or resume that run explicitly",
            )
        if self._given_run_id not in (None, row["run_id"]):
            raise ConfigError(
                f"cannot resume run '{row['run_id']}' as run '{self.run_id}'",
                file=where, hint="leave run_id unset when resuming",
            )
        self.run_id = row["run_id"]
        self.started_at = row["started_at"]
        self.stages = json.loads(row["stages"])
        if not self.config:
            self.config = json.loads(row["config"])

    def mark_stage_done(self, name: str) -> None:
        """Record that stage ``name`` completed (kept once, in completion order)."""
        with self._lock:
            self._require_started("mark_stage_done")
            if name not in self.stages:
                self.stages.append(name)
            self._write_runs_row()

    def set_cluster(self, cluster: dict[str, Any]) -> None:
        """Record where the run executes (Ray address, resources) once Ray is up."""
        with self._lock:
            self._require_started("set_cluster")
            self.cluster = dict(cluster)
            self._write_runs_row()

    def finish(self, status: str = "succeeded", error: BaseException | str | None = None) -> None:
        """Rewrite the runs row with ``ended_at``, ``status`` and the error (type: message)."""
        if status not in RUN_STATUSES[1:]:
            raise ConfigError(f"run status must be 'succeeded' or 'failed', got {status!r}",
                              hint="pass status='succeeded' or status='failed'")
        with self._lock:
            self._require_started("finish")
            self.status = status
            self.error = _describe_error(error)
            self.ended_at = datetime.now(timezone.utc)
            self._complete_and_upload()
            self._write_runs_row()
            atexit.unregister(self._finish_at_exit)
            if self.remote:                  # everything is under the URI now; drop the working copy
                shutil.rmtree(self.run_dir, ignore_errors=True)

    def _finish_at_exit(self) -> None:
        if self.status == "running":
            try:
                self.finish("failed", error="the process exited before the run finished")
            except Exception:  # noqa: BLE001 - never raise from an exit handler
                pass

    def _require_started(self, what: str) -> None:
        if self.started_at is None:
            raise ConfigError(f"{what}() called before start() for run '{self.run_id}'",
                              hint="call start() first, or use the writer as a context manager")

    def __enter__(self) -> RunWriter:
        if self.status != "running":
            self.start()
        return self

    def __exit__(self, exc_type, exc, traceback) -> bool:
        if exc is not None:
            self.finish("failed", error=exc)
        elif self.status == "running":
            self.finish("succeeded")
        return False

    # -- tables

    def write(self, table: str, rows: Rows) -> Path | None:
        """Validate ``rows`` and write them as one part of ``table`` (staged inside a transaction)."""
        staging = getattr(self._local, "txn_dir", None)
        path = write_part(staging or self.run_dir, table, rows, self.run_id)
        if path is not None and staging is None:
            self._upload([path])
        return path

    def write_text(self, name: str, text: str) -> Path:
        """Write a text file at the top of the run directory (e.g. ``diagnosis.txt``), atomically.

        Inside a transaction it is staged and appears with the transaction's tables, or not at all.
        """
        if not name or "/" in name or "\\" in name or name.startswith((".", "_")) or name.startswith(PART_PREFIX):
            raise ConfigError(f"bad report file name {name!r}", hint="use a plain name such as diagnosis.txt")
        staging = getattr(self._local, "txn_dir", None)
        path = (staging / FILES_DIR if staging else self.run_dir) / name
        storage.publish_atomic(path, lambda handle: handle.write(text.encode("utf-8")))
        if staging is None:
            self._upload([path])
        return self.run_dir / name

    @contextmanager
    def transaction(self) -> Iterator[RunWriter]:
        """Stage the parts this thread writes inside; publish them together on clean exit, drop them on error.

        A nested transaction joins the outer one.
        """
        if getattr(self._local, "txn_dir", None) is not None:
            yield self
            return
        txn_dir = self.run_dir / STAGING_DIR / f"txn-{time.time_ns()}-{os.getpid()}-{secrets.token_hex(4)}"
        txn_dir.mkdir(parents=True)
        self._local.txn_dir = txn_dir
        try:
            yield self
        except BaseException:
            self._local.txn_dir = None
            shutil.rmtree(txn_dir, ignore_errors=True)
            _drop_empty_staging(self.run_dir)
            raise
        self._local.txn_dir = None
        marker = txn_dir / COMMIT_MARKER
        with open(marker, "wb") as handle:
            os.fsync(handle.fileno())
        storage.fsync_dir(txn_dir)
        published = _complete_commit(txn_dir, self.run_dir)
        _drop_empty_staging(self.run_dir)
        self._upload(published)

    # -- a URI report.dir

    def _upload(self, paths: list[Path]) -> None:
        """Copy files just published in the working copy to the same places under ``location``."""
        if not self.remote:
            return
        for path in paths:
            relative = Path(path).relative_to(self.run_dir).as_posix()
            storage.upload(path, storage.join(self.location, relative))

    def _complete_and_upload(self) -> None:
        for published in _complete_committed(self.run_dir):
            self._upload(published)

    # -- the runs row

    def _read_runs_row(self) -> dict[str, Any] | None:
        path = self.run_dir / "runs" / RUNS_PART
        if self.remote and not path.exists():
            remote = storage.join(self.location, "runs", RUNS_PART)
            if storage.exists(remote):
                storage.download(remote, path)
        if not path.exists():
            return None
        try:
            return pq.read_table(path).to_pylist()[0]
        except (pa.ArrowException, OSError, IndexError) as exc:
            raise DataError(f"cannot read the runs row ({exc})", file=str(path),
                            hint="the file is damaged; move it away or use a new report.dir") from None

    def _write_runs_row(self) -> None:
        row = {
            "status": self.status,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "config": json.dumps(self.config, sort_keys=True, default=str),
            "versions": json.dumps(collect_versions(), sort_keys=True),
            "host": socket.gethostname(),
            "cluster": json.dumps(self.cluster, sort_keys=True, default=str),
            "stages": json.dumps(self.stages),
            "error": self.error,
        }
        path = self.run_dir / "runs" / RUNS_PART
        _write_atomic(conform_rows("runs", [row], self.run_id), path)
        self._upload([path])
