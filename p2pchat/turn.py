"""One budget per reactor turn, shared by every stepped job, so their sum is bounded, not each.

A peer does much of its heavy work in steps: relayed lines' signatures checked (checking.py),
jotted lines made history rows (jotting.py), new lines indexed for /search (index.py), the
history's upkeep (retention.py), a catch-up handed on (syncing.py).  Each step was bounded on
its own (10 ms, 500 rows, 2,000 lines...), but several could fall in the same reactor turn:
in the worst turn of a day's catch-up a check step, a step of rows, the index's step and a
read's lines held the reactor 46-55 ms together, though none passed 15 ms alone.

So they share one budget, TURN_SECONDS of the reactor thread per turn: each asks its clock's
``Turn`` (``shared(clock)``) how much it may do now (``left``, ``fits``) and does no more; one
that finds the turn spent waits for the next (``next``).  A turn starts at the first ask after
the last one ended, and ends at the reactor's next turn (a ``callLater(0)``, which the reactor
runs in its next iteration, after it has read its sockets); the jobs waiting for it then run
first, in the order they came, each with what is left, so none of them starves another (their
call is due when the budget ran out: timers due before it, the stall probe's among them, come
first in that turn).  A job asks again for its next step in the same turn while it fits.

The budget counts the time from the first ask, whatever ran between (a read's lines too), so
a job asking late in a busy turn is given little.  A job always does one unit of work when the
turn is fresh (a line, a step of rows), so it goes on however small the budget.
"""

from __future__ import annotations

import time
import weakref
from collections import deque
from typing import Any, Callable

from p2pchat.clocks import Clock, Delayed

#: Seconds of stepped work per reactor turn, all jobs together (a turn is the time between
#: two looks of the reactor at its sockets: keys, lines and beacons wait meanwhile; the
#: reactor may be held ~50 ms at most, and a turn's own reads come on top).
TURN_SECONDS = 0.015


class Turn:
    """The budget of the reactor turn under way on ``clock``; ``timer`` says how much of it
    went (the reactor thread's time: ``time.perf_counter``, or a test's)."""

    def __init__(self, clock: Clock, seconds: float = TURN_SECONDS,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.seconds = seconds
        self.timer = timer
        #: when this turn's budget runs out (``timer``'s time), or None: no turn under way
        self._deadline: float | None = None
        self._over_call: Delayed | None = None
        self._run_call: Delayed | None = None
        #: jobs waiting for the next turn, in the order they came
        self._waiting: deque[Callable[[], Any]] = deque()
        #: turns started so far (a figure for the tests)
        self.turns = 0

    def deadline(self) -> float:
        """When this turn's budget runs out (``timer``'s time); the first ask starts it."""
        if self._deadline is None:
            self._deadline = self.timer() + self.seconds
            self.turns += 1
            if self._over_call is None:
                self._over_call = self.clock.callLater(0, self._over)
        return self._deadline

    def left(self) -> float:
        """Seconds of this turn's budget left (0 when it is spent)."""
        return max(0.0, self.deadline() - self.timer())

    def fits(self, expected: float) -> bool:
        """Whether a step expected to take ``expected`` seconds may run now: it fits in what
        is left (something is), or the turn is fresh (a step longer than the budget runs
        alone)."""
        if self._deadline is None:
            self.deadline()
            return True
        left = self.left()
        return left > 0 and left >= expected

    def next(self, job: Callable[[], Any]) -> None:
        """Run ``job`` at the next turn, before the others that ask there (in order)."""
        self._waiting.append(job)
        self._call_run()

    def _call_run(self) -> None:
        """The waiting jobs' call, due when this turn's budget ends (at once if it has): in
        the next reactor turn it comes after the timers due before then, such as the bench's
        stall probe, so what lies between two of the probe's calls is one turn's work, not
        the ends of two."""
        if self._run_call is None:
            wait = 0.0 if self._deadline is None else max(0.0, self._deadline - self.timer())
            self._run_call = self.clock.callLater(wait, self._run)

    def _over(self) -> None:
        """The reactor's next turn: the budget starts again."""
        self._over_call = None
        self._deadline = None

    def _run(self) -> None:
        """The jobs that waited, in order, while the turn has room."""
        self._run_call = None
        waiting = self._waiting
        for _ in range(len(waiting)):  # those that come back while these run wait one more
            if self._deadline is not None and self.timer() >= self._deadline:
                break
            waiting.popleft()()
        if waiting:
            self._call_run()


_turns: weakref.WeakKeyDictionary[Any, Turn] = weakref.WeakKeyDictionary()


def shared(clock: Clock) -> Turn:
    """The one Turn of ``clock`` (a reactor, a test's ``task.Clock``): every stepped job of a
    process runs on one reactor, so they all share it."""
    turn = _turns.get(clock)
    if turn is None:
        turn = _turns[clock] = Turn(clock)
    return turn
