"""Progress of a long encoding run as whole log lines (done / total, rate, eta), never a redrawn bar.

One line at the start, then at most one every ``every_s`` seconds, then one at the
end, so ``ray job logs`` and CI logs read like a diary rather than a wall of
carriage returns. The first and the closing line go to the run's log file only (logger
``recsys.embed.progress``): on the console the stage's own ``embed: started`` and
``embed: done`` lines say it, and the periodic lines show a long encoding's progress.

>>> lines, now = [], iter([0.0, 5.0, 20.0, 30.0]).__next__
>>> p = Progress(1000, "embed minilm", every_s=10, emit=lines.append, clock=now)
>>> p.update(100); p.update(300); _ = p.finish()
>>> print("\\n".join(lines))
embed minilm: 0/1,000 texts to encode
embed minilm: 400/1,000 texts (40.0%), 20.0 texts/s, eta 30s
embed minilm: done, 400 texts in 30s (13.3 texts/s)
"""

from __future__ import annotations

import logging
import time
from typing import Callable

log = logging.getLogger("recsys.embed")
quiet_log = logging.getLogger("recsys.embed.progress")    # not a console logger (recsys.console): the file


def _duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h01m``.

    >>> _duration(42.4), _duration(185), _duration(7260)
    ('42s', '3m05s', '2h01m')
    """
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Counts items done against a total and emits a line when ``every_s`` has passed."""

    def __init__(
        self,
        total: int,
        label: str,
        *,
        every_s: float = 10.0,
        emit: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.label, self.every_s = int(total), label, every_s
        self.emit = emit or log.info
        self.emit_quiet = emit or quiet_log.info
        self.clock = clock
        self.done = 0
        self.started = self.last = clock()
        self.emit_quiet(f"{label}: 0/{self.total:,} texts to encode")

    def update(self, n: int) -> None:
        self.done += int(n)
        now = self.clock()
        if now - self.last >= self.every_s and self.done < self.total:
            self.last = now
            self.emit(self.line(now))

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        eta = _duration((self.total - self.done) / rate) if rate > 0 else "unknown"
        share = 100.0 * self.done / self.total if self.total else 100.0
        return f"{self.label}: {self.done:,}/{self.total:,} texts ({share:.1f}%), {rate:.1f} texts/s, eta {eta}"

    def finish(self) -> float:
        """Emit the closing line and return the elapsed seconds."""
        elapsed = self.clock() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        self.emit_quiet(f"{self.label}: done, {self.done:,} texts in {_duration(elapsed)} ({rate:.1f} texts/s)")
        return elapsed
