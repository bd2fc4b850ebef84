"""A probe of how long the reactor is held, for the bench only: with the environment variable
``P2PCHAT_PROBE`` naming a file, a LoopingCall every PROBE_INTERVAL seconds measures how late
it runs, and once a second appends ``UNIX-TIME WORST-MS WORST-CPU-MS`` to the file: the
worst lateness in that second, and the most CPU time the process spent between two ticks
(the reactor held by work: on a loaded machine lateness also counts the time the process
waited for a core, which no code of ours can shorten).  Without the variable nothing runs: a
peer never pays for it unasked.
"""

from __future__ import annotations

import os
import time
from typing import Any

from twisted.internet.task import LoopingCall

PROBE_ENV = "P2PCHAT_PROBE"
PROBE_INTERVAL = 0.01


class Probe:
    """The lateness probe writing to ``path`` (see the module's docstring)."""

    def __init__(self, path: str, reactor: Any) -> None:
        self.path = path
        self.worst = 0.0
        self.worst_cpu = 0.0
        self._cpu = 0.0
        self._expected = 0.0
        self._since = 0.0
        self._loop = LoopingCall(self._tick)
        self._loop.clock = reactor

    def start(self) -> None:
        self._since = time.monotonic()
        self._expected = self._since
        self._cpu = time.process_time()
        self._loop.start(PROBE_INTERVAL, now=True)

    def _tick(self) -> None:
        now, cpu = time.monotonic(), time.process_time()
        self.worst = max(self.worst, now - self._expected)
        self.worst_cpu = max(self.worst_cpu, cpu - self._cpu)
        self._expected, self._cpu = now + PROBE_INTERVAL, cpu
        if now - self._since >= 1.0:
            with open(self.path, "a") as f:
                f.write(f"{time.time():.3f} {self.worst * 1000:.1f} "
                        f"{self.worst_cpu * 1000:.1f}\n")
            self.worst, self.worst_cpu, self._since = 0.0, 0.0, now

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()


def start_if_asked(reactor: Any) -> Probe | None:
    """The probe, running, if ``P2PCHAT_PROBE`` asks for one."""
    path = os.environ.get(PROBE_ENV)
    if not path:
        return None
    probe = Probe(path, reactor)
    reactor.callWhenRunning(probe.start)
    return probe
