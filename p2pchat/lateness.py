"""How long the reactor is held: a probe for the bench (``python -m bench --only stall``).

No callback may hold the reactor more than ~50 ms (keys, lines and beacons wait meanwhile).
To show that it holds under load, a peer started with ``P2PCHAT_STALL_PROBE`` in its
environment (only the bench sets it) runs a 10 ms ``LoopingCall`` and measures how late each
call comes: a callback that held the reactor 200 ms makes the next call about 190 ms late.
Every ``REPORT_EVERY`` seconds it logs the worst lateness of that stretch::

    stall probe: worst 12.3 ms late in the last 1.0 s (worst since start 40.1 ms)

The log (the data dir's ``p2pchat.log``) is the channel: every face has it, none shows it.
Off by default: nothing is scheduled.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

log = Logger()

#: The environment variable that turns the probe on (any non-empty value).
PROBE_ENV = "P2PCHAT_STALL_PROBE"
#: How often the probe's call is due, and how often it reports (seconds).
PROBE_EVERY = 0.010
REPORT_EVERY = 1.0


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the bench asked for the probe."""
    return bool(environ.get(PROBE_ENV))


class StallProbe:
    """Measures how late a ``PROBE_EVERY`` timer runs on ``clock`` and logs the worst of each
    ``REPORT_EVERY`` seconds."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.worst = 0.0  # the worst lateness of the current stretch (seconds)
        self.worst_ever = 0.0
        self._last = 0.0
        self._stretch_began = 0.0
        self._loop = LoopingCall(self._tick)
        self._loop.clock = clock

    def start(self) -> None:
        self._last = self._stretch_began = self.clock.seconds()
        self._loop.start(PROBE_EVERY, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def _tick(self) -> None:
        now = self.clock.seconds()
        late = max(0.0, now - self._last - PROBE_EVERY)
        self._last = now
        if late > self.worst:
            self.worst = late
        if now - self._stretch_began >= REPORT_EVERY:
            self.worst_ever = max(self.worst_ever, self.worst)
            log.info("stall probe: worst {ms:.1f} ms late in the last {t:.1f} s (worst since "
                     "start {ever:.1f} ms)", ms=self.worst * 1000, t=now - self._stretch_began,
                     ever=self.worst_ever * 1000)
            self.worst, self._stretch_began = 0.0, now
