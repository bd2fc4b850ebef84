"""How long the reactor is held: a probe for the bench (``python -m bench --only stall``).

No callback may hold the reactor more than ~50 ms (keys, lines and beacons wait meanwhile).
To show that it holds under load, a peer started with ``P2PCHAT_STALL_PROBE`` in its
environment (only the bench sets it) runs a 10 ms ``LoopingCall`` and measures how late each
call comes: a callback that held the reactor 200 ms makes the next call about 190 ms late.
On a loaded machine lateness also counts the time the process waited for a core, so the probe
also notes the CPU time the process used between two of its calls: what a callback holding
the reactor costs, whatever the load.  Every ``REPORT_EVERY`` seconds it logs the worst of
that stretch::

    stall probe: worst 12.3 ms late, 10.2 ms of CPU between ticks, in the last 1.0 s
    (worst since start 40.1 ms late)

The log (the data dir's ``p2pchat.log``) is the channel: every face has it, none shows it.
Off by default: nothing is scheduled.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Mapping

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

    def __init__(self, clock: Any, cpu: Callable[[], float] = time.process_time) -> None:
        self.clock = clock
        self.cpu = cpu
        self.worst = 0.0  # the worst lateness of the current stretch (seconds)
        self.worst_cpu = 0.0  # the most CPU used between two ticks in it (seconds)
        self.worst_ever = 0.0
        self._last = self._last_cpu = 0.0
        self._stretch_began = 0.0
        self._loop = LoopingCall(self._tick)
        self._loop.clock = clock

    def start(self) -> None:
        self._last = self._stretch_began = self.clock.seconds()
        self._last_cpu = self.cpu()
        self._loop.start(PROBE_EVERY, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def _tick(self) -> None:
        now, cpu = self.clock.seconds(), self.cpu()
        late = max(0.0, now - self._last - PROBE_EVERY)
        self.worst = max(self.worst, late)
        self.worst_cpu = max(self.worst_cpu, cpu - self._last_cpu)
        self._last, self._last_cpu = now, cpu
        if now - self._stretch_began >= REPORT_EVERY:
            self.worst_ever = max(self.worst_ever, self.worst)
            log.info("stall probe: worst {ms:.1f} ms late, {cpu_ms:.1f} ms of CPU between "
                     "ticks, in the last {t:.1f} s (worst since start {ever:.1f} ms late)",
                     ms=self.worst * 1000, cpu_ms=self.worst_cpu * 1000,
                     t=now - self._stretch_began, ever=self.worst_ever * 1000)
            self.worst = self.worst_cpu = 0.0
            self._stretch_began = now
