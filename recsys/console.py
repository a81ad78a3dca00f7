"""What a person sees while a run works, and where everything else goes.

The console gets one line when a stage starts and one when it is done (its time and
key numbers), progress on long steps, warnings, the findings and the report path.
Everything else, Ray's and Ray Data's own logs and every line Ray's workers print,
goes to the run's log file (``<report dir>/run.log``); ``log.level=debug`` shows it
on the console too.

- :func:`setup_logging` (entry points) routes Python logging: console lines from the
  loggers in :data:`CONSOLE_LOGGERS` and warnings of ``recsys``; the rest to the file
  that :func:`attach_run_log` opens once the run's directory is known (records before
  that are kept and written then). Python's ``warnings`` (a library's deprecation or
  user warnings) become records of the ``py.warnings`` logger: the file's, not the console's.
- :mod:`recsys.ray_output` takes over what Ray prints on the driver (its loggers, its
  workers' lines, its native core's stderr) and hands it to this logging.
- :func:`stage_started` / :func:`stage_done` print a stage's lines
  (:mod:`recsys.stage_summary` has the numbers).
- :class:`ProgressLine` shows the progress of a long step: a bar on a terminal
  (tqdm), a line at most every ``every_s`` seconds otherwise.

>>> format_seconds(3.21), format_seconds(75), format_count(1668)
('3.2s', '1m15s', '1,668')
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, TextIO

from recsys.errors import ConfigError
from recsys.ray_output import quiet_ray_loggers

LOG_LEVELS = ("info", "debug")
CONSOLE = "recsys.console"                       # stage lines and progress
# recsys loggers whose INFO lines are the console's: stage lines, embedding progress, training epochs
CONSOLE_LOGGERS = frozenset({CONSOLE, "recsys.embed", "recsys.train.loop"})
THROTTLED_LOGGERS = frozenset({"recsys.train.loop"})   # a line per epoch: at most one per log.epoch_every_s
TRAIN_WORKER = "RayTrainWorker"                  # the actor name of a Ray Train worker
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
PY_WARNINGS = "py.warnings"                      # the logger of Python's warnings (logging.captureWarnings)

log = logging.getLogger(CONSOLE)


@dataclass
class LogConfig:
    """``log.*``: what the console shows and where the run's log file goes.

    ``level`` ``info`` shows stage lines, progress, warnings and results; ``debug``
    also shows Ray's own logs and every line Ray's workers print. ``file`` is the log
    file's name inside the report directory (everything, whatever the level).

    >>> LogConfig().level, LogConfig().file
    ('info', 'run.log')
    """

    level: str = "info"
    file: str = "run.log"
    progress_every_s: float = 10.0               # without a terminal: a progress line at most this often
    epoch_every_s: float = 30.0                  # a model's epoch lines: the first, the last, one at most this often


def check_log_config(cfg: LogConfig) -> None:
    """A :class:`ConfigError` naming the ``log.*`` setting that is out of range.

    >>> check_log_config(LogConfig(level="verbose"))
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'log.level': unknown log level 'verbose'. What to do: use log.level=info or log.level=debug
    """
    if cfg.level not in LOG_LEVELS:
        raise ConfigError(f"unknown log level {cfg.level!r}", setting="log.level",
                          hint="use " + " or ".join(f"log.level={level}" for level in LOG_LEVELS))
    if not cfg.file or "/" in cfg.file:
        raise ConfigError(f"log file name {cfg.file!r} is not a plain file name", setting="log.file",
                          hint="give a file name such as run.log (it goes inside the report directory)")
    if cfg.progress_every_s <= 0:
        raise ConfigError(f"progress interval {cfg.progress_every_s} is not positive",
                          setting="log.progress_every_s", hint="use a number of seconds > 0, e.g. 10")
    if cfg.epoch_every_s < 0:
        raise ConfigError(f"epoch line interval {cfg.epoch_every_s} is negative", setting="log.epoch_every_s",
                          hint="use a number of seconds >= 0, e.g. 30 (0: every epoch)")


def format_seconds(seconds: float) -> str:
    """``3.2s``, ``1m15s``, ``2h01m``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(round(seconds))
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def format_count(n: int) -> str:
    return f"{int(n):,}"


class ConsoleFilter(logging.Filter):
    """Which records reach the console: see the module's docstring.

    >>> rec = lambda name, level=logging.INFO: logging.LogRecord(name, level, "", 0, "m", None, None)
    >>> f = ConsoleFilter(debug=False)
    >>> [f.filter(rec(n)) for n in ("recsys.console", "recsys.train.stage", "ray.data")]
    [True, False, False]
    >>> f.filter(rec("recsys.train.stage", logging.WARNING)), f.filter(rec("ray.data", logging.ERROR))
    (True, False)
    >>> ConsoleFilter(debug=True).filter(rec("ray.data")), f.filter(rec("py.warnings", logging.WARNING))
    (True, False)

    A model's epoch lines (``recsys.train.loop``) come at most every ``every_s`` seconds:
    the first, then periodic ones, and always the last (its status is not ``running``).

    >>> epoch = lambda text, at: logging.makeLogRecord({"name": "recsys.train.loop", "levelno": logging.INFO,
    ...                                                  "msg": text, "created": at})
    >>> f = ConsoleFilter(debug=False, every_s=10)
    >>> [f.filter(epoch(f"mf epoch {i}: loss 1.0 (running)", t)) for i, t in enumerate([0, 4, 11, 12])]
    [True, False, True, False]
    >>> f.filter(epoch("mf epoch 4: loss 0.9 (completed)", 13))
    True
    """

    def __init__(self, debug: bool, every_s: float = 10.0) -> None:
        super().__init__()
        self.debug, self.every_s = debug, every_s
        self.last_shown: dict[tuple[str, str], float] = {}

    def _due(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        key = (record.name, getattr(record, "ray_actor", "") + text.split(" ", 1)[0])
        if not text.endswith("(running)"):
            self.last_shown.pop(key, None)         # a model's last epoch: always shown
            return True
        last = self.last_shown.get(key)
        if last is not None and record.created - last < self.every_s:
            return False
        self.last_shown[key] = record.created
        return True

    def filter(self, record: logging.LogRecord) -> bool:
        if self.debug:
            return True
        name = record.name
        if name == "ray" or name.startswith("ray.") or name == PY_WARNINGS:
            return False                          # Ray's own logs and libraries' warnings: the run's log file
        if record.levelno >= logging.WARNING:
            return True
        worker = getattr(record, "ray_actor", None)
        if worker is not None and TRAIN_WORKER not in worker:
            return False                          # a tuning trial's epochs: the trials line says it
        if name in THROTTLED_LOGGERS:
            return self._due(record)
        return name in CONSOLE_LOGGERS


class ConsoleFormatter(logging.Formatter):
    """``HH:MM:SS message``; warnings and errors say so, a worker's lines are indented."""

    def format(self, record: logging.LogRecord) -> str:
        clock = time.strftime("%H:%M:%S", time.localtime(record.created))
        text = record.getMessage()
        if record.exc_info and record.levelno >= logging.ERROR:
            text += "\n" + self.formatException(record.exc_info)
        if record.levelno >= logging.WARNING:
            return f"{clock} {record.levelname.lower()}: {text}"
        if record.name.startswith("ray"):
            return f"{clock} [{record.name}] {text}"
        indent = "" if record.name == CONSOLE else "  "
        return f"{clock} {indent}{text}"


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is when a record comes (a test's capture, a notebook's cell)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


class _Pending(logging.Handler):
    """Keeps records until the run's log file is open (at most ``limit``)."""

    def __init__(self, limit: int = 10_000) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.limit = limit

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.records) < self.limit:
            self.records.append(record)


class _State:
    console: Optional[logging.Handler] = None
    pending: Optional[_Pending] = None
    file: Optional[logging.FileHandler] = None
    cfg: LogConfig = LogConfig()


def setup_logging(cfg: LogConfig, stream: TextIO | None = None) -> None:
    """Route Python logging for a run: the console (``stream``, default stdout) and, later, the run's log file.

    Replaces the root logger's handlers (Hydra's included); safe to call again.
    """
    check_log_config(cfg)
    close_run_log()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.DEBUG if cfg.level == "debug" else logging.INFO)
    console = logging.StreamHandler(stream) if stream is not None else _StdoutHandler()
    console.setLevel(logging.INFO)
    console.addFilter(ConsoleFilter(debug=cfg.level == "debug", every_s=cfg.epoch_every_s))
    console.setFormatter(ConsoleFormatter())
    pending = _Pending()
    root.addHandler(console)
    root.addHandler(pending)
    logging.getLogger("recsys").setLevel(logging.INFO)
    logging.captureWarnings(True)                # warnings.warn(...) -> the py.warnings logger -> the file
    _State.console, _State.pending, _State.cfg = console, pending, cfg
    quiet_ray_loggers()


def attach_run_log(directory: Path | str) -> Path:
    """Open ``<directory>/<log.file>`` (appending) for every record; write the ones kept until now. Returns its path."""
    path = Path(directory) / _State.cfg.file
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    if _State.file is not None and Path(_State.file.baseFilename) == path.resolve():
        return path
    close_run_log()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter(FILE_FORMAT))
    if _State.pending is not None:
        for record in _State.pending.records:
            handler.handle(record)
        root.removeHandler(_State.pending)
        _State.pending = None
    root.addHandler(handler)
    _State.file = handler
    return path


def run_log_path() -> Path | None:
    """The open run log file, if any."""
    return Path(_State.file.baseFilename) if _State.file is not None else None


def close_run_log() -> None:
    """Flush and close the run's log file (the console stays)."""
    if _State.file is not None:
        logging.getLogger().removeHandler(_State.file)
        _State.file.close()
        _State.file = None


# --- stage lines -----------------------------------------------------------------------------------------


def stage_started(stage: str) -> float:
    """Print ``<stage>: started`` and return the start time (for :func:`stage_done`)."""
    quiet_ray_loggers()
    log.info("%s: started", stage)
    return time.monotonic()


def stage_done(stage: str, started: float, summary: str = "") -> None:
    """Print ``<stage>: done in <time>[: <summary>]``."""
    took = format_seconds(time.monotonic() - started)
    log.info("%s: done in %s%s", stage, took, f": {summary}" if summary else "")


# --- progress ----------------------------------------------------------------------------------------------


def _tqdm_for(stream: TextIO):
    if not getattr(stream, "isatty", lambda: False)():
        return None
    try:
        from tqdm import tqdm
    except ImportError:                            # plain lines instead
        return None
    return tqdm


class ProgressLine:
    """Progress of one long step: a tqdm bar on a terminal, else a line at most every ``every_s`` seconds.

    >>> lines, now = [], iter([0.0, 4.0, 12.0, 15.0]).__next__
    >>> p = ProgressLine(8, "evaluate", unit="shards", every_s=10, emit=lines.append, clock=now)
    >>> p.update(2); p.update(3); p.close()
    >>> lines
    ['evaluate: 5/8 shards (62%), 12s']
    """

    def __init__(self, total: int, label: str, *, unit: str = "", every_s: float | None = None,
                 emit: Callable[[str], None] | None = None, clock: Callable[[], float] = time.monotonic,
                 stream: TextIO | None = None) -> None:
        self.total, self.label, self.unit = int(total), label, unit
        self.every_s = _State.cfg.progress_every_s if every_s is None else every_s
        self.clock, self.done = clock, 0
        self.started = self.last = clock()
        self.emit = emit or log.info
        tqdm = None if emit is not None else _tqdm_for(stream or sys.stdout)
        self.bar = tqdm(total=self.total, desc=label, unit=f" {unit}" if unit else "it", leave=False,
                        file=stream or sys.stdout) if tqdm is not None else None

    def update(self, n: int = 1) -> None:
        self.done += int(n)
        if self.bar is not None:
            self.bar.update(int(n))
            return
        now = self.clock()
        if now - self.last >= self.every_s and self.done < self.total:
            self.last = now
            share = 100 * self.done / self.total if self.total else 100
            self.emit(f"{self.label}: {format_count(self.done)}/{format_count(self.total)} {self.unit} "
                      f"({share:.0f}%), {now - self.started:.0f}s".replace("  ", " "))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
