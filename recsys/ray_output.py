"""What Ray prints on the driver, routed: its loggers, its workers' lines, its native core's stderr.

- :func:`quiet_ray_loggers`: Ray's Python loggers lose their console handlers and pass
  their records on to the root logger (:mod:`recsys.console` sends them to the run's log file).
- :func:`capture_ray_output` (after ``ray.init``): the lines Ray's workers print
  (``log_to_driver``) go to the log file; a worker's ``recsys`` records, marked by
  :func:`setup_worker_logging` (Ray's ``worker_process_setup_hook``), are handled here
  as if logged here, so a training epoch's line shows as it happens. The messages the
  cluster sends the driver (``(raylet) A worker died ...``, the memory monitor's kills)
  go to the log file too: the error they cause reaches the user as an exception.
- :class:`NativeStderrFilter`: lines Ray's C++ core writes to fd 2 go to the log file.

Nothing here imports Ray at module level: every Ray worker imports this module at start.

>>> parse_marked(mark("recsys.train.loop", "INFO", "two\\nlines"))
('recsys.train.loop', 20, 'two\\nlines')
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading

RAY_LOGGERS = ("ray", "ray.data", "ray.train", "ray.tune", "ray.air", "ray.serve")
WORKER_OUTPUT = "ray.worker_output"              # a line a Ray worker printed (file only)
# a worker's recsys record crosses to the driver as one line: MARK name SEP level SEP message
MARK, SEP, NEWLINE = "\x1erecsys\x1f", "\x1f", "\x1d"


def quiet_ray_loggers() -> None:
    """Ray's Python loggers lose their console handlers and pass their records to ours (the file; the console in debug).

    Ray Data and Ray configure their loggers when imported; this is called after that
    (and again at each stage, for a library imported late). File handlers Ray keeps in
    its session directory stay.
    """
    for name in RAY_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                logger.removeHandler(handler)
        logger.propagate = True


def capture_ray_output() -> bool:
    """Take over the lines Ray's workers print on the driver (``log_to_driver``); False when Ray offers no hook.

    Replaces Ray's printer of worker output (its ``ray_print_logs`` handler) with
    :func:`handle_worker_lines`, and quiets Ray's Python loggers.
    """
    quiet_ray_loggers()
    route_cluster_messages()
    try:
        from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher
    except ImportError:                            # another Ray: its own printer stays
        return False
    names = [name for name, _ in getattr(dispatcher, "handlers", [])]
    if "ray_print_logs" not in names:
        return False                              # log_to_driver=False, or already ours
    dispatcher.remove_handler("ray_print_logs")
    dispatcher.add_handler("ray_print_logs", handle_worker_lines)
    return True


def route_cluster_messages() -> bool:
    """The driver's error messages from the cluster (``(raylet) ...``) to the log file; False when Ray offers no hook.

    Ray's driver prints them from a thread of its own (``listen_error_messages``, even with
    ``log_to_driver`` off) through ``print_to_stdstream``, which this replaces by
    :func:`handle_cluster_messages`.
    """
    try:
        from ray._private import worker as ray_worker
    except ImportError:
        return False
    if not callable(getattr(ray_worker, "print_to_stdstream", None)):
        return False
    ray_worker.print_to_stdstream = handle_cluster_messages
    return True


def handle_cluster_messages(data: dict, ignore_prefix: bool = False) -> None:
    """``print_to_stdstream`` of Ray's driver, to the log file (:func:`handle_worker_lines`)."""
    handle_worker_lines(data)


def handle_worker_lines(data: dict) -> None:
    """One batch of lines a Ray worker printed: its recsys records as records here, the rest to the log file.

    >>> handle_worker_lines({"pid": 7, "actor_name": "RayTrainWorker", "lines": [MARK + "recsys.x" + SEP
    ...     + "INFO" + SEP + "hello" + NEWLINE + "there", "plain"]})
    """
    actor = data.get("actor_name") or data.get("task_name") or ""
    where = f"{actor} pid={data.get('pid')}".strip()
    output = logging.getLogger(WORKER_OUTPUT)
    for line in data.get("lines", []):
        marked = parse_marked(line)
        if marked is None:
            output.info("(%s) %s", where, line)
            continue
        name, level, message = marked
        logger = logging.getLogger(name)
        record = logger.makeRecord(name, level, "(worker)", 0, message, None, None,
                                   extra={"ray_actor": actor})
        logger.handle(record)


def mark(name: str, levelname: str, message: str) -> str:
    """One worker record as one marked line (:func:`parse_marked` reads it back).

    >>> parse_marked(mark("recsys.train.loop", "INFO", "two\\nlines"))
    ('recsys.train.loop', 20, 'two\\nlines')
    >>> parse_marked("plain") is None
    True
    """
    return MARK + name + SEP + levelname + SEP + message.replace("\n", NEWLINE)


def parse_marked(line: str) -> tuple[str, int, str] | None:
    if not line.startswith(MARK):
        return None
    parts = line[len(MARK):].split(SEP, 2)
    if len(parts) != 3:
        return None
    name, levelname, message = parts
    level = logging.getLevelName(levelname)
    return name, level if isinstance(level, int) else logging.INFO, message.replace(NEWLINE, "\n")


class _MarkedFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return mark(record.name, record.levelname, text)


def setup_worker_logging() -> None:
    """Ray's ``worker_process_setup_hook``: a worker's ``recsys`` records go out as marked lines on stderr.

    Ray forwards the line to the driver, where :func:`handle_worker_lines` turns it
    back into a record; loggers Ray configures later (Ray Train's root logger) leave
    the ``recsys`` logger alone.
    """
    logger = logging.getLogger("recsys")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_MarkedFormatter())
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


WORKER_SETUP_HOOK = f"{__name__}.setup_worker_logging"


class NativeStderrFilter:
    """Inside, lines Ray's C++ core writes straight to this process's stderr go to the run's log file.

    Ray's core worker in the driver logs its errors (``[... E pid tid] core_worker.cc:...``)
    to file descriptor 2, past Python's logging. Inside this context, fd 2 is a pipe read
    by a thread: such lines become records of ``ray.core`` (the log file; the console in
    debug), every other byte goes to the real stderr. Leaving restores fd 2 and drains the pipe.

    >>> bool(NativeStderrFilter.NATIVE.match("[2026-12-07 19:17:49,803 E 5843 5843] core_worker.cc:2465: x"))
    True
    """

    NATIVE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [DIWEF] \d+ \d+\] \S+\.(cc|h):\d+")

    def __init__(self) -> None:
        self.saved: int | None = None
        self.thread: threading.Thread | None = None

    def __enter__(self) -> "NativeStderrFilter":
        try:
            sys.stderr.flush()
            target = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):   # no real stderr (a notebook, a captured stream)
            return self
        if target != 2:
            return self
        self.saved = os.dup(2)
        reader, writer = os.pipe()
        os.dup2(writer, 2)
        os.close(writer)
        self.thread = threading.Thread(target=self._pump, args=(reader, self.saved), daemon=True,
                                       name="recsys-native-stderr")
        self.thread.start()
        return self

    def _pump(self, reader: int, out: int) -> None:
        native = logging.getLogger("ray.core")
        with os.fdopen(reader, "rb", buffering=0) as pipe:
            pending = b""
            while chunk := pipe.read(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    text = raw.decode("utf-8", errors="replace")
                    if self.NATIVE.match(text):
                        native.info("%s", text)
                    else:
                        os.write(out, raw + b"\n")
            if pending:
                os.write(out, pending)

    def __exit__(self, *exc) -> None:
        if self.saved is None:
            return
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self.saved, 2)                   # the pipe's last writer here closes: the thread reads to its end
        if self.thread is not None:
            self.thread.join(timeout=5)
        os.close(self.saved)
        self.saved = None
