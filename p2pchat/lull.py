"""Work behind the burst waits for a lull in the lines, so the lines come first.

A burst of lines (5,000 pasted or said, a catch-up) costs a peer its lines' work (read,
check, show, jot down, ack, hand on) and then the history's: the jotted lines made SQLite rows
(about 8 us a row: three B-trees), the /search index, the history's upkeep (pruning, the byte
budget, the write-ahead log written back, packing).  Done as the lines come, the history's
work took a third of what the sender and the receivers of a burst spent, so the burst took
that much longer to arrive, though none of it is needed until history is read.  So each of
those jobs asks the store's ``Lull`` before a step: while lines were jotted within the last
LULL_SECONDS it puts the step off (it polls again at its next tick, as before), until the
lull or until it has waited MAX_PUTOFF (then it runs one step and may wait again), so a
room that never goes quiet still gets its history written and kept.

What stays bounded: what is jotted down but not yet rows is at most jotting.BEHIND_MAX_ROWS
(past it the oldest are made rows on the path, as before); the faces' reads of history read
the lines still waiting where they wait (readback.py), the reads in steps (/search, a catch-up
handed on) have them made rows a step a turn first (``Jotted.rows_step``); and the lines are
as safe (jotted before they are shown or acked).
"""

from __future__ import annotations

from typing import Callable

#: Seconds without a line jotted that make a lull.
LULL_SECONDS = 0.25
#: Seconds a job behind the burst waits for a lull at most before it takes a step anyway.
MAX_PUTOFF = 2.0


class Lull:
    """When the store last jotted lines down (``stir``), on ``timer``'s clock (the reactor's
    ``seconds``, or a test's ``task.Clock``)."""

    def __init__(self, timer: Callable[[], float]) -> None:
        self.timer = timer
        self.last = float("-inf")

    def stir(self) -> None:
        """Lines were just jotted down."""
        self.last = self.timer()

    def quiet(self) -> bool:
        """Nothing jotted for LULL_SECONDS."""
        return self.timer() - self.last >= LULL_SECONDS


class PutOff:
    """One job's waiting for a lull (each job its own, so one that ran does not make the
    others wait again)."""

    def __init__(self) -> None:
        #: when this job first put off the step it is waiting to take, or None
        self.since: float | None = None

    def waits(self, lull: Lull | None) -> bool:
        """Whether to put the step off now: lines are flowing and the job has waited less
        than MAX_PUTOFF (False without a lull: every step at once, as in tests)."""
        if lull is None or lull.quiet():
            self.since = None
            return False
        now = lull.timer()
        if self.since is None:
            self.since = now
        if now - self.since < MAX_PUTOFF:
            return True
        self.since = None  # waited long enough: this step runs, the next may wait again
        return False
