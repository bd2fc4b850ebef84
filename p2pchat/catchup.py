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

import bisect
from dataclasses import dataclass, field
from typing import Any

from p2pchat.wire import MAX_ID_CHARS, MAX_SEQUENCE, Message, WireError, encode_message

#: Default bounds of the sent log: lines older than this (seconds) or beyond this count are not
#: resent (the user is told how many were too old).  ``--catchup-lines`` / ``--catchup-age``.
#: A day of catch-up: a peer away while three authors said 100,000 lines gets them all back
#: (from the authors, or handed on: a peer hands on as many of an absent author's lines as
#: it would resend of its own).
LOG_LINES = 50_000
LOG_AGE = 24 * 3600.0
#: An ack is sent this long (seconds) after the first unacknowledged line, covering all since.
ACK_DELAY = 0.05


class SentLog:
    """Our own sequenced lines, oldest first, bounded by count and age; each kept with its
    encoded bytes, so a line written to many links is encoded once.  Sequence numbers rise
    but need not be contiguous (a new run starts higher), so lookups bisect."""

    def __init__(self, max_lines: int = LOG_LINES, max_age: float = LOG_AGE) -> None:
        self.max_lines = max_lines
        self.max_age = max_age
        # Side by side, not as pairs: a pair per line would be one more object the garbage
        # collector walks through, for as long as the line is kept.
        self._seqs: list[int] = []
        self._msgs: list[Message] = []
        self._datas: list[bytes] = []
        self._head = 0  # entries before this index were trimmed (compacted now and then)
        #: the highest sequence that fell out of the log (0: none did)
        self.dropped_upto = 0

    def append(self, msg: Message, now: float) -> list[Message]:
        """Keep ``msg``; returns the lines that fell out of the log."""
        self.keep(msg)
        return self.trim(now)

    def keep(self, msg: Message, data: bytes | None = None) -> bytes:
        """Keep ``msg`` without trimming (a run of lines is trimmed once: saying.py); its
        encoded bytes (``data``: already made, runlines.py)."""
        if data is None:
            data = encode_message(msg)
        self._seqs.append(msg.sequence)
        self._msgs.append(msg)
        self._datas.append(data)
        return data

    def trim(self, now: float) -> list[Message]:
        dropped = []
        msgs = self._msgs
        while self._head < len(msgs):
            msg = msgs[self._head]
            if len(self) > self.max_lines or now - _when(msg, now) > self.max_age:
                dropped.append(msg)
                self.dropped_upto = max(self.dropped_upto, msg.sequence)
                self._head += 1
            else:
                break
        if self._head > 1024 and self._head * 2 > len(msgs):
            del self._seqs[:self._head], self._msgs[:self._head], self._datas[:self._head]
            self._head = 0
        return dropped

    def since(self, have: int) -> tuple[list[tuple[Message, bytes]], bool]:
        """The lines after sequence ``have`` (with their bytes), and whether some lines after
        ``have`` fell out of the log already."""
        start = bisect.bisect_right(self._seqs, have, lo=self._head)
        return list(zip(self._msgs[start:], self._datas[start:])), have < self.dropped_upto

    def bytes_since(self, have: int) -> tuple[bytes, int | None]:
        """The bytes of the lines after sequence ``have``, in one piece, and the newest one's
        sequence (None: there is none after it)."""
        start = bisect.bisect_right(self._seqs, have, lo=self._head)
        if start >= len(self._seqs):
            return b"", None
        return b"".join(self._datas[start:]), self._seqs[-1]

    def last_sequence(self) -> int | None:
        """The sequence of the newest line (None when the log is empty)."""
        return self._seqs[-1] if len(self) else None

    def last_bytes(self) -> bytes | None:
        """The encoded bytes of the newest line (to save it without encoding it again)."""
        return self._datas[-1] if len(self) else None

    def __len__(self) -> int:
        return len(self._msgs) - self._head


def _when(msg: Message, default: float) -> float:
    return msg.timestamp if msg.timestamp is not None else default


@dataclass(frozen=True)
class Sync:
    """What a ``sync`` says: our next sequence point, and how far we have the receiver's lines
    (None: we never heard the receiver, so it owes us nothing from before)."""

    sent: int
    have: int | None
    #: how far the sender has other authors' lines (for relayed catch-up)
    others: dict[str, int] = field(default_factory=dict)
    #: the member lines the sender holds (author: newest sequence), or None where it does
    #: not say (an older peer of ours: it gets every member line we hold)
    members: dict[str, int] | None = None


#: At most this many other authors in one sync.
MAX_OTHERS = 256


def sync_metadata(sent: int, have: int | None, others: dict[str, int] | None = None,
                  members: dict[str, int] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"sent": sent, "have": have}
    if others:
        meta["others"] = dict(list(others.items())[:MAX_OTHERS])
    if members is not None:
        meta["members"] = dict(list(members.items())[:MAX_OTHERS])
    return meta


def _opt_seq(value: Any, what: str) -> int | None:
    return None if value is None else _seq(value, what)


def _seq(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEQUENCE:
        raise WireError(f"{what} is not a sequence number")
    return value


def _authors(value: Any, what: str) -> dict[str, int]:
    """A sync's ``{author: sequence}`` object, checked: at most MAX_OTHERS peer ids."""
    if not isinstance(value, dict) or len(value) > MAX_OTHERS:
        raise WireError(f"sync '{what}' is not a small object")
    checked = {}
    for author, have in value.items():
        if not isinstance(author, str) or len(author) > MAX_ID_CHARS:
            raise WireError(f"sync '{what}' names something that is not a peer id")
        checked[author] = _seq(have, f"sync '{what}'")
    return checked


def parse_sync(msg: Message) -> Sync:
    meta = msg.metadata or {}
    members = meta.get("members")
    return Sync(_seq(meta.get("sent"), "sync 'sent'"),
                _opt_seq(meta.get("have"), "sync 'have'"),
                _authors(meta.get("others") or {}, "others"),
                None if members is None else _authors(members, "members"))


def parse_ack(msg: Message) -> int:
    return _seq((msg.metadata or {}).get("have"), "ack 'have'")


class Delivery:
    """Which of our lines still wait for which peers' acks.  Acks only move forward, so each
    ack visits just the lines between a peer's previous ack and this one.

    A line keeps waiting for a peer that left (it gets the line by catch-up when it is back,
    and its ack then clears the mark); it stops waiting only when acked or when it left the
    sent log (``forget_through``), so this is bounded by the log."""

    def __init__(self) -> None:
        #: the peers each line waits for, and its message id, by sequence (apart, not as
        #: pairs: one object less per line for the garbage collector to walk through).  The
        #: sets are never changed in place but replaced, so the lines of a run said at once
        #: share one (one set a run, not one a line; an ack makes one less set for them all)
        self._waiting: dict[int, frozenset[str]] = {}
        self._ids: dict[int, str] = {}
        self._seqs: list[int] = []  # ascending; may hold sequences already done
        self._acked: dict[str, int] = {}
        #: private lines waiting, by sequence: their addressee; and how many per addressee
        self._private: dict[int, str] = {}
        self._private_counts: dict[str, int] = {}

    def expect(self, seq: int, message_id: str, peers: set[str], private: bool = False) -> None:
        """``message_id`` (our line ``seq``) waits for ``peers`` (added to any it waited for).
        ``private``: a private line (to the one peer in ``peers``), counted per addressee."""
        if not peers:
            return
        if seq in self._waiting:
            self._waiting[seq] = self._waiting[seq] | peers
            return
        self._waiting[seq] = frozenset(peers)
        self._ids[seq] = message_id
        bisect.insort(self._seqs, seq)
        if private and len(peers) == 1:
            (to,) = peers
            self._private[seq] = to
            self._private_counts[to] = self._private_counts.get(to, 0) + 1
        for peer in peers:  # an ack it already sent may not cover a line it gets now
            if self._acked.get(peer, -1) >= seq:
                self._acked[peer] = seq - 1

    def expect_run(self, lines: list[tuple[int, str]], peers: set[str]) -> None:
        """Each of ``lines`` (sequence, message id: a run of new lines, said at once, above
        any expected before) waits for ``peers``, as ``expect`` makes each wait."""
        if not peers or not lines:
            return
        waiting, seqs, ids = self._waiting, self._seqs, self._ids
        shared = frozenset(peers)
        for seq, message_id in lines:
            if seq in waiting or (seqs and seq <= seqs[-1]):
                self.expect(seq, message_id, peers)
            else:
                waiting[seq] = shared
                ids[seq] = message_id
                seqs.append(seq)
        first = lines[0][0]
        for peer in peers:  # an ack it already sent may not cover the lines it gets now
            if self._acked.get(peer, -1) >= first:
                self._acked[peer] = first - 1

    def acked(self, peer_id: str, have: int) -> list[str]:
        """``peer_id`` has our lines up to ``have``; returns the ids now delivered to all."""
        before = self._acked.get(peer_id, -1)
        if have <= before:
            return []
        self._acked[peer_id] = have
        lo = bisect.bisect_right(self._seqs, before)
        hi = bisect.bisect_right(self._seqs, have)
        done = []
        waiting = self._waiting
        before_set: frozenset[str] | None = None
        less: frozenset[str] = frozenset()
        for seq in self._seqs[lo:hi]:
            peers = waiting.get(seq)
            if peers is None or peer_id not in peers:
                continue
            if peers is not before_set:  # (the lines of a run share one set: made once)
                before_set, less = peers, peers - {peer_id}
            if less:
                waiting[seq] = less
            else:
                done.append(self._ids[seq])
                self._done(seq)
        self._compact()
        return done

    def received(self, seq: int, peer_id: str) -> str | None:
        """``peer_id`` has our line ``seq``, said by another way than its acks (a receipt for
        a sealed line, sealed.py); the line's id if it is now delivered to all, else None."""
        peers = self._waiting.get(seq)
        if peers is None or peer_id not in peers:
            return None
        peers = self._waiting[seq] = peers - {peer_id}
        if peers:
            return None
        message_id = self._ids[seq]
        self._done(seq)
        self._compact()
        return message_id

    def private_waiting(self, peer_id: str) -> int:
        """How many of our private lines to ``peer_id`` it has not acknowledged yet."""
        return self._private_counts.get(peer_id, 0)

    def forget_peer(self, peer_id: str) -> None:
        """A peer left the room.  The lines it had not acked still wait for it: if it comes
        back with its data dir it gets them by catch-up, and its ack clears their marks (so
        its next ack is counted from the start)."""
        self._acked.pop(peer_id, None)

    def forget_through(self, seq: int) -> None:
        """Lines up to ``seq`` left the sent log: they can't be delivered any more."""
        hi = bisect.bisect_right(self._seqs, seq)
        for old in self._seqs[:hi]:
            if old in self._waiting:
                self._done(old)
        del self._seqs[:hi]

    def _done(self, seq: int) -> None:
        del self._waiting[seq]
        del self._ids[seq]
        to = self._private.pop(seq, None)
        if to is not None:
            left = self._private_counts[to] - 1
            if left:
                self._private_counts[to] = left
            else:
                del self._private_counts[to]

    def _compact(self) -> None:
        """Drop done sequences from the front of the index."""
        done = 0
        while done < len(self._seqs) and self._seqs[done] not in self._waiting:
            done += 1
        if done:
            del self._seqs[:done]

    def __len__(self) -> int:
        return len(self._waiting)
