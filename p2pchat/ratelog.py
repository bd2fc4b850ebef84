"""Rate-limited logging for lines logged once per packet or per received line.

A flood of bad datagrams or lines (77,000 a second) must not flood the log and rotate away the
records that matter ("linked with ..."): of each kind of line, the first ``LOGGED_PER_INTERVAL``
of every ``SUMMARY_INTERVAL`` seconds are logged, the rest only counted, and one summary line
says how many were left out.  Summaries are written at the next line of that kind after the
interval, or by ``flush`` (the node's sweep calls it every second), so no timer is left behind.

One limiter per clock (``limiter(clock)``): the node, discovery and the mesh of one peer share
it, and tests with their own ``task.Clock`` get their own.
"""

from __future__ import annotations

import weakref
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel

#: Seconds of one counting interval.
SUMMARY_INTERVAL = 10.0
#: Lines of one kind logged per interval; past that they are counted and summed up.
LOGGED_PER_INTERVAL = 5


class _Kind:
    __slots__ = ("start", "count", "logger", "burst")

    def __init__(self, start: float, logger: Logger, burst: int) -> None:
        self.start = start
        self.count = 0
        self.logger = logger
        self.burst = burst


class RateLog:
    """Counts lines per kind; logs the first few of each interval and a summary of the rest."""

    def __init__(self, clock: IReactorTime, interval: float = SUMMARY_INTERVAL,
                 burst: int = LOGGED_PER_INTERVAL) -> None:
        self.clock = clock
        self.interval = interval
        self.burst = burst
        self._kinds: dict[str, _Kind] = {}

    def emit(self, logger: Logger, kind: str, level: LogLevel, fmt: str, /,
             burst: int | None = None, **kw: Any) -> bool:
        """Log ``fmt`` unless ``kind`` was logged ``burst`` times this interval (then count
        it).  ``kind`` is a constant of the code (never from the network), so kinds are few.
        Returns True if the line was logged."""
        now = self.clock.seconds()
        entry = self._kinds.get(kind)
        if entry is None:
            entry = self._kinds[kind] = _Kind(now, logger, self.burst if burst is None else burst)
        elif now - entry.start >= self.interval:
            self._summary(kind, entry, now)
            entry.start, entry.count = now, 0
        entry.count += 1
        if entry.count <= entry.burst:
            logger.emit(level, fmt, **kw)
            return True
        return False

    def flush(self) -> None:
        """Write the summaries of intervals that are over (cheap: one pass over few kinds)."""
        now = self.clock.seconds()
        for kind, entry in list(self._kinds.items()):
            if now - entry.start >= self.interval:
                self._summary(kind, entry, now)
                del self._kinds[kind]

    def _summary(self, kind: str, entry: _Kind, now: float) -> None:
        left_out = entry.count - entry.burst
        if left_out > 0:
            entry.logger.info("{n} more lines like '{kind}' in {t:.0f} s, not logged",
                              n=left_out, kind=kind, t=now - entry.start)


_limiters: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def limiter(clock: IReactorTime) -> RateLog:
    """The limiter shared by everything that runs on ``clock``."""
    found = _limiters.get(clock)
    if found is None:
        found = _limiters[clock] = RateLog(clock)
    return found
