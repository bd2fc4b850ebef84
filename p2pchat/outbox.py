"""Our own sequenced lines on their way out: the sent log, who must still ack each line, how
far a link is to start when its sync comes, and the lines said while no one was linked.

Pure code: it keeps the bookkeeping and says what to write (``due``, ``sync_start``); the node
writes it to its links.  Each link has a cursor into the sent log (session.py), so a link that
is still syncing, or whose peer is slow to read, simply falls behind and is written to when it
can: no queue per link, and memory bounded by the sent log.
"""

from __future__ import annotations

from p2pchat.catchup import LOG_AGE, LOG_LINES, Delivery, SentLog
from p2pchat.wire import Message

#: Lines said while no peer at all is linked go to peers that link within this many seconds
#: (you start p2pchat and say hello before discovery is done: they still hear it).
LONELY_GRACE = 120.0
#: Most such lines remembered (the oldest go first).
LONELY_LINES = 100


class Outbox:
    """Our line numbers, the sent log and the delivery marks."""

    def __init__(self, sequence: int, log_lines: int = LOG_LINES,
                 log_age: float = LOG_AGE) -> None:
        """``sequence``: the number to continue above (the run's start, in microseconds)."""
        self.sequence = sequence
        #: lines older than this sequence are not in the sent log (an earlier run's, unless
        #: the log was loaded from the store)
        self.floor = sequence
        self.log = SentLog(log_lines, log_age)
        self.delivery = Delivery()
        #: (sequence, message id, time) of room lines said while no peer was linked
        self.lonely: list[tuple[int, str, float]] = []

    def reload(self, last_sequence: int, lines: list[Message], now: float) -> None:
        """After a restart: continue above the last run's numbers (even if the clock went
        back since), with its lines still young enough to resend."""
        self.sequence = max(self.sequence, last_sequence)
        for msg in lines:
            self.log.append(msg, now)
        if len(self.log):
            self.floor = 0

    def number(self) -> int:
        """The sequence of a new line of ours."""
        self.sequence += 1
        return self.sequence

    def append(self, msg: Message, now: float) -> int | None:
        """Put one of our lines in the sent log; returns the sequence that was the newest
        before it, None if it was empty (a link whose cursor is there gets just this line's
        bytes)."""
        previous = self.log.last_sequence()
        self._forget(self.log.append(msg, now))
        return previous

    def keep(self, msg: Message, data: bytes | None = None) -> bytes:
        """Put one line of a run said at once in the sent log, untrimmed (``trimmed`` once
        the run is in); its encoded bytes (``data``, when the caller made them: they are
        what the links get and the history keeps, encoded once)."""
        return self.log.keep(msg, data)

    def trimmed(self, now: float) -> None:
        """Trim the sent log by its bounds (after a run of ``keep``)."""
        self._forget(self.log.trim(now))

    def last_bytes(self) -> bytes:
        """The encoded bytes of the line just appended."""
        data = self.log.last_bytes()
        assert data is not None
        return data

    def due(self, cursor: int) -> tuple[list[tuple[Message, bytes]], bool]:
        """What a link whose cursor is at ``cursor`` lacks of the log, oldest first, and
        whether lines it lacks are gone from the log (too old to send)."""
        lines, missing = self.log.since(cursor)
        return lines, bool(missing) and cursor >= self.floor

    def said_alone(self, msg: Message, now: float) -> None:
        """A room line said while no peer was linked (a newcomer soon gets it)."""
        keep = self.lonely[-(LONELY_LINES - 1):]
        self.lonely = [x for x in keep if now - x[2] <= LONELY_GRACE]
        self.lonely.append((msg.sequence, msg.id, now))

    def sync_start(self, peer_id: str, have: int | None, sync_point: int, now: float) -> int:
        """Where a link is to start in the log once its sync came: after what it says it
        has, else after our sync point less the lines said lately while no one was linked
        (which it is then to ack).  Never below what the log still holds."""
        start = have if have is not None else sync_point
        if have is None:
            lonely = [(seq, mid) for seq, mid, when in self.lonely
                      if now - when <= LONELY_GRACE]
            for seq, mid in lonely:
                self.delivery.expect(seq, mid, {peer_id})
            if lonely:
                start = min(start, lonely[0][0] - 1)
        # Lines of an earlier run of ours are not in the log unless it came from the store.
        start = max(min(start, self.sequence), self.floor)
        self._forget(self.log.trim(now))  # too old to resend now
        return start

    def _forget(self, dropped: list[Message]) -> None:
        """Lines that left the log can't be delivered any more: their marks go too (this is
        what bounds the delivery marks by the log)."""
        if dropped:
            self.delivery.forget_through(dropped[-1].sequence)
