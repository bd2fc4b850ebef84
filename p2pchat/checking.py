"""Checking the lines a peer hands on (relay.py) in steps, so a day of catch-up (100,000
lines, each an Ed25519 signature to check: 60-250 us here) never holds the reactor long.

The lines of a relay line are queued per link and checked in steps, the links in turn: the
first at once, then one per reactor turn, each within what is left of the turn's budget, which
every stepped job shares (turn.py: rows, the index, upkeep...).  One read brings many relay
lines (a TLS read of 64 KiB holds about 200 lines): the steps done at once in one turn share
that budget too, so a read of many small hand-ons is not checked whole.  Past
RELAY_CHECK_HIGH lines waiting from one link its reading is paused (the lines of the read
under way stop there too: the line receiver holds the rest, and TCP then slows the peer
handing on, whose hand-on waits while its link is backed up); under RELAY_CHECK_LOW it reads
again.  So memory is bounded by the high mark and a read, and no step is longer than one.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

from p2pchat.clocks import Clock
from p2pchat.turn import Turn, shared

#: Lines waiting from one link past which its reading pauses, and under which it goes on.
RELAY_CHECK_HIGH = 2000
RELAY_CHECK_LOW = 500


class RelayChecks:
    """The relayed lines waiting to be checked, per link; ``check(link, *item)`` checks (and
    shows) one: an item is (raw line, author key, what the relay line said of it: its hops,
    whether it is catch-up)."""

    def __init__(self, clock: Clock, check: Callable[..., None],
                 turn: Turn | None = None) -> None:
        self.clock = clock
        self._check = check
        #: the reactor turn's budget, shared with every stepped job of the process
        self.turn = shared(clock) if turn is None else turn
        self._waiting: dict[Any, deque[tuple[Any, ...]]] = {}
        self._paused: set[Any] = set()
        self._scheduled = False
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
            self._step()  # a short hand-on is done there and then

    def waiting(self) -> int:
        return sum(map(len, self._waiting.values()))

    def _step(self) -> None:
        """As many lines as the turn has time for (one at least, when it is fresh), then the
        rest at the next turn."""
        self._scheduled = False
        turn = self.turn
        if not turn.fits(0.0):  # the turn is spent: the next one, before others ask
            self._scheduled = True
            turn.next(self._step)
            return
        deadline, timer = turn.deadline(), turn.timer
        self.steps += 1
        for link in list(self._waiting):
            waiting = self._waiting[link]
            while waiting:  # one line at least, then as many as the turn has time for
                self._check(link, *waiting.popleft())
                if timer() >= deadline:
                    break
            if not waiting:
                del self._waiting[link]
            if link in self._paused and len(waiting) <= RELAY_CHECK_LOW:
                self._pause(link, False)
            if timer() >= deadline:
                break
        if self._waiting and not self._scheduled:
            self._scheduled = True
            turn.next(self._step)

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
