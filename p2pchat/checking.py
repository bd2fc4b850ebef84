"""Checking the lines a peer hands on (relay.py) in steps, so a day of catch-up (100,000
lines, each an Ed25519 signature to check: 60-250 us here) never holds the reactor long.

The lines of a relay line are queued per link and checked RELAY_CHECK_STEP seconds' worth at
a time: the first step at once, then one per reactor turn, the links in turn.  One read brings
many relay lines (a TLS read of 64 KiB holds about 200 lines): the steps done at once in one
turn share one RELAY_CHECK_STEP, so a read of many small hand-ons is not checked whole.  Past
RELAY_CHECK_HIGH lines waiting from one link its reading is paused (the lines of the read
under way stop there too: the line receiver holds the rest, and TCP then slows the peer
handing on, whose hand-on waits while its link is backed up); under RELAY_CHECK_LOW it reads
again.  So memory is bounded by the high mark and a read, and no step is longer than one.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable

from p2pchat.clocks import Clock

#: Seconds of checking per reactor turn (a line's check is a fraction of a millisecond).
RELAY_CHECK_STEP = 0.01
#: Lines waiting from one link past which its reading pauses, and under which it goes on.
RELAY_CHECK_HIGH = 2000
RELAY_CHECK_LOW = 500


class RelayChecks:
    """The relayed lines waiting to be checked, per link; ``check(link, *item)`` checks (and
    shows) one: an item is (raw line, author key, what the relay line said of it: its hops,
    whether it is catch-up)."""

    def __init__(self, clock: Clock, check: Callable[..., None]) -> None:
        self.clock = clock
        self._check = check
        self._waiting: dict[Any, deque[tuple[Any, ...]]] = {}
        self._paused: set[Any] = set()
        self._scheduled = False
        #: the end of the budget the steps done at once in this reactor turn share (None: no
        #: step was done at once in this turn)
        self._turn_deadline: float | None = None
        #: steps run so far (a figure for the tests)
        self.steps = 0

    def add(self, link: Any, pairs: list[tuple[Any, ...]]) -> None:
        """Queue ``link``'s relayed items (raw line, author key, ...); its reading pauses past
        RELAY_CHECK_HIGH waiting."""
        waiting = self._waiting.get(link)
        if waiting is None:
            waiting = self._waiting[link] = deque()
        waiting.extend(pairs)
        if len(waiting) >= RELAY_CHECK_HIGH and link not in self._paused:
            self._pause(link, True)
        if not self._scheduled:
            self._step(at_once=True)  # a short hand-on is done there and then

    def waiting(self) -> int:
        return sum(map(len, self._waiting.values()))

    def _turn_over(self) -> None:
        self._turn_deadline = None

    def _step(self, at_once: bool = False) -> None:
        self._scheduled = False
        now = time.perf_counter()
        if not at_once:
            deadline = now + RELAY_CHECK_STEP
        elif self._turn_deadline is None:  # the first step at once of this turn
            deadline = self._turn_deadline = now + RELAY_CHECK_STEP
            self.clock.callLater(0, self._turn_over)
        else:  # another relay line of the same read: what is left of the turn's budget
            deadline = self._turn_deadline
            if now >= deadline:
                self._scheduled = True
                self.clock.callLater(0, self._step)
                return
        self.steps += 1
        for link in list(self._waiting):
            waiting = self._waiting[link]
            while waiting:  # one line at least, then as many as the step has time for
                self._check(link, *waiting.popleft())
                if time.perf_counter() >= deadline:
                    break
            if not waiting:
                del self._waiting[link]
            if link in self._paused and len(waiting) <= RELAY_CHECK_LOW:
                self._pause(link, False)
            if time.perf_counter() >= deadline:
                break
        if self._waiting and not self._scheduled:
            self._scheduled = True
            self.clock.callLater(0, self._step)

    def _pause(self, link: Any, pause: bool) -> None:
        """Pause (or resume) reading ``link``: its wire's producer methods, where it has them
        (the mesh's PeerProtocol, a LineReceiver; a test's fake link may not)."""
        wire = getattr(link, "wire", link)
        method = getattr(wire, "pauseProducing" if pause else "resumeProducing", None)
        if pause:
            self._paused.add(link)
        else:
            self._paused.discard(link)
        if method is not None and getattr(wire, "connected", True):
            method()
