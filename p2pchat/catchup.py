"""Catch-up (PROTOCOL.md Part 2): what makes "no line lost" true between peers of ours.

Each peer numbers the lines it says (per-sender sequence numbers) and keeps them in a bounded
``SentLog``.  When two peers (re)connect, each sends a ``sync`` saying how far it has the
other's lines; each then resends, in order, what the other lacks, before any new line.  The
receiver acknowledges (``ack``), which is how a sender learns a line was delivered and clears
its "not delivered" mark (``Delivery``).  Pure code: plain values and a clock value.

Only an author resends its own lines: a line is never handed on for someone else until lines
carry their author's signature (the security issue), so no peer can put words in another's mouth.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from p2pchat.wire import MAX_SEQUENCE, Message, WireError

#: Default bounds of the sent log: lines older than this (seconds) or beyond this count are not
#: resent (the user is told how many were too old).  ``--catchup-lines`` / ``--catchup-age``.
LOG_LINES = 10_000
LOG_AGE = 24 * 3600.0
#: An ack is sent this long (seconds) after the first unacknowledged line, covering all since.
ACK_DELAY = 0.05


class SentLog:
    """Our own sequenced lines, oldest first, bounded by count and age."""

    def __init__(self, max_lines: int = LOG_LINES, max_age: float = LOG_AGE) -> None:
        self.max_lines = max_lines
        self.max_age = max_age
        self._lines: deque[Message] = deque()

    def append(self, msg: Message, now: float) -> list[Message]:
        """Keep ``msg``; returns the lines that fell out of the log."""
        self._lines.append(msg)
        return self.trim(now)

    def trim(self, now: float) -> list[Message]:
        dropped = []
        while self._lines and (len(self._lines) > self.max_lines or
                               now - _when(self._lines[0], now) > self.max_age):
            dropped.append(self._lines.popleft())
        return dropped

    def since(self, have: int) -> tuple[list[Message], int]:
        """The lines after sequence ``have``, and how many after it are no longer here."""
        if not self._lines:
            return [], 0
        first = self._lines[0].sequence
        missing = max(0, first - have - 1)
        start = max(0, have + 1 - first)
        return [self._lines[i] for i in range(start, len(self._lines))], missing

    def __len__(self) -> int:
        return len(self._lines)


def _when(msg: Message, default: float) -> float:
    return msg.timestamp if msg.timestamp is not None else default


@dataclass(frozen=True)
class Sync:
    """What a ``sync`` says: our next sequence point, and how far we have the receiver's lines
    (None: we never heard the receiver, so it owes us nothing from before)."""

    sent: int
    have: int | None


def sync_metadata(sent: int, have: int | None) -> dict[str, Any]:
    return {"sent": sent, "have": have}


def _seq(value: Any, what: str, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEQUENCE:
        raise WireError(f"{what} is not a sequence number")
    return value


def parse_sync(msg: Message) -> Sync:
    meta = msg.metadata or {}
    return Sync(_seq(meta.get("sent"), "sync 'sent'"),
                _seq(meta.get("have"), "sync 'have'", optional=True))


def parse_ack(msg: Message) -> int:
    return _seq((msg.metadata or {}).get("have"), "ack 'have'")


class Delivery:
    """Which of our lines still wait for which peers' acks."""

    def __init__(self) -> None:
        self._waiting: OrderedDict[int, tuple[str, set[str]]] = OrderedDict()

    def expect(self, seq: int, message_id: str, peers: set[str]) -> None:
        if peers:
            self._waiting[seq] = (message_id, set(peers))

    def acked(self, peer_id: str, have: int) -> list[str]:
        """``peer_id`` has our lines up to ``have``; returns the ids now delivered to all."""
        done = []
        for seq, (message_id, peers) in list(self._waiting.items()):
            if seq > have:
                break
            peers.discard(peer_id)
            if not peers:
                del self._waiting[seq]
                done.append(message_id)
        return done

    def forget_peer(self, peer_id: str) -> None:
        """A peer left the room: it is no longer waited for.  Lines only it was waited for stay
        undelivered (they are dropped here, not reported as delivered)."""
        for seq, (_, peers) in list(self._waiting.items()):
            peers.discard(peer_id)
            if not peers:
                del self._waiting[seq]

    def forget_through(self, seq: int) -> None:
        """Lines up to ``seq`` left the sent log: they can't be delivered any more."""
        for waiting in list(self._waiting):
            if waiting > seq:
                break
            del self._waiting[waiting]

    def __len__(self) -> int:
        return len(self._waiting)
