"""Taking in what the others say, for the node: a private line from a link (is it for us?;
a room line comes by reading.py), how a line is shown and kept (history.py, each link only so fast:
store.SAVE_RATE), the rooms a peer says it is in, its renames and goodbyes, and a line that
speaks for another peer (the link is closed).  An ignored peer's lines are kept in
memory only, to drop duplicates: not saved, not shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.logger import Logger, LogLevel

from p2pchat import events
from p2pchat.clocks import log_limited
from p2pchat.interfaces import Row, StoredLine
from p2pchat.rooms import private_key, rooms_of
from p2pchat.flow import TokenBucket
from p2pchat.store import SAVE_BURST, SAVE_RATE
from p2pchat.wire import JOIN, LEAVE, Message, WireError, printable

if TYPE_CHECKING:
    from p2pchat.node import Node
    from p2pchat.session import PeerSession

log = Logger()


class Hearing:
    """The receiving side of one node (``node``)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def remember(self, line: events.ChatLine, seq: int = 0,
                  relay: tuple[bytes, str] | None = None, via: PeerSession | None = None) -> None:
        node = self.node
        raw, pk = relay or (None, "")
        if via is not None and not self._may_save(via, len(line.text) + len(raw or b"")):
            return
        node.store.remember(StoredLine(line.message_id, line.room, line.sender_id, line.nick,
                                       line.text, line.action, line.own, line.when,
                                       seq if relay else 0, raw, pk))

    def may_save(self, link: PeerSession, rows: list[Row]) -> list[Row]:
        """The rows of a run from ``link`` (reading.py) that are saved: all of them by one
        take of the budget when it holds the lot, else each as ``remember`` takes one."""
        sizes = [len(row[4]) + len(row[9] or b"") for row in rows]
        rate = link.save_rate
        now = self.node.clock.seconds()
        if rate is not None and rate.bucket.take(now, sum(sizes)):
            return rows
        return [row for row, size in zip(rows, sizes) if self._may_save(link, size)]

    def _may_save(self, link: PeerSession, size: int) -> bool:
        """Whether a line of ``size`` bytes from ``link`` is saved: each link only so fast."""
        node = self.node
        now = node.clock.seconds()
        rate = link.save_rate
        if rate is None:
            rate = link.save_rate = SaveRate(now)
        if rate.allow(size, now):
            return True
        if rate.should_log(now):
            log.warn("{peer} sends more than {kb:.0f} KiB/s of lines: {n} shown but not saved",
                     peer=link.peer_id, kb=SAVE_RATE / 1024, n=rate.refused)
            rate.refused = 0
        return False

    def private_line(self, link: PeerSession, msg: Message, now: float) -> None:
        """A private line from ``link``, accepted (room lines: reading.py)."""
        node = self.node
        if (msg.metadata or {}).get("to") != node.peer_id or not link.rooms:
            log_limited(node.clock, log, "private not for us", LogLevel.warn,
                        "{peer} sent a private line not for us: dropped", peer=link.peer_id)
            return
        room, private = private_key(link.peer_id), node.nick_of(link)
        nick = node.trust.display(link.username or msg.username or link.peer_id, link.fp)
        # A catch-up peer resends what we missed before any new line: a line said before
        # this link was up is one of those (replayed), not news.
        replayed = (link.catchup and msg.timestamp is not None
                    and 0 < msg.timestamp < link.linked_at)
        self.show_line(msg, nick, room, private, now, via=link, replayed=replayed)

    def show_line(self, msg: Message, nick: str, room: str, private: str, now: float,
                   relay: tuple[bytes, str] | None = None, via: PeerSession | None = None,
                   replayed: bool = False) -> None:
        """A line from someone else, accepted: keep it, save it, show it (at the time it was
        said, unless that time is nonsense).  ``relay``: its bytes and author's key, kept
        with it to hand on; ``via``: the link it came by (which may have only so much saved).
        An ignored peer's line is only kept in memory (to drop duplicates): not saved, not
        shown, not notified."""
        node = self.node
        if msg.sender_id in node.ignores:
            return
        when = msg.timestamp if msg.timestamp and 0 < msg.timestamp <= now else now
        action = _action_text(msg)
        line = events.ChatLine(when, nick, printable(action or msg.content), msg.sender_id,
                               msg.id, action=action is not None, room=room, private=private,
                               replayed=replayed)
        self.remember(line, msg.sequence, relay, via)
        node.emit(line)

    def not_its_own(self, link: PeerSession, msg: Message) -> None:
        """A line from ``link`` whose sender is another peer: the link is closed."""
        node = self.node
        if link.dialer_id == node.peer_id and not link.fp:
            # We dialed an address where another peer now listens (the one we wanted
            # is gone): forget it rather than redial it.
            log_limited(node.clock, log, "reached another", LogLevel.info,
                        "dialed {peer} but reached {other}: link closed, {peer} forgotten",
                        peer=link.peer_id, other=msg.sender_id)
            node.peers.left(link.peer_id)
            if node.dialer is not None:
                node.dialer.drop(link.peer_id)
            link.said_leave = True  # nothing to show: it was never that peer
            link.close("it is another peer")
            return
        log_limited(node.clock, log, "spoke for another", LogLevel.warn,
                    "{peer} sent a line as {other}: refused, link closed",
                    peer=link.peer_id, other=msg.sender_id)
        link.close("it spoke for another peer")

    def peer_line(self, link: PeerSession, msg: Message) -> None:
        """A join (a peer renaming itself), a leave (its goodbye), or a kind of line not
        known here (ignored, as the reference does)."""
        node = self.node
        if not node.room.accept(msg):
            return  # a duplicate
        now = node.clock.seconds()
        if msg.type == JOIN:
            if msg.username and msg.username != link.username:
                old = node.nick_of(link)
                link.username = msg.username
                if not link.ours and len(node.line_names) < node.max_links:
                    node.line_names[link.peer_id] = msg.username
                node.emit(events.NickChanged(now, old, node.nick_of(link), link.peer_id))
                node.keys.check(link)
                node.emit(events.PeersChanged(now))
        elif msg.type == LEAVE:
            if not link.said_leave:
                link.said_leave = True
                node.emit(events.PeerLeft(now, node.nick_of(link), link.peer_id))
                node.left_room(link.peer_id)  # after: faces may ask which rooms it was in
                node.emit(events.PeersChanged(now))
                link.close("it left")  # so its shutdown need not wait for us
        else:
            log_limited(node.clock, log, "unknown line", LogLevel.debug,
                        "{peer} sent a {kind} line: not known here, ignored",
                        peer=link.peer_id, kind=msg.type)

    def peer_rooms(self, link: PeerSession, msg: Message) -> None:
        node = self.node
        if not link.rooms:
            return
        try:
            rooms = rooms_of(msg)
        except WireError as e:
            log_limited(node.clock, log, "bad rooms line", LogLevel.warn,
                        "bad rooms line from {peer} skipped: {why}", peer=link.peer_id,
                        why=str(e))
            return
        joined, left = node.rooms.set_peer(link.peer_id, rooms)
        now = node.clock.seconds()
        for name, did_join in [(r, True) for r in sorted(joined)] + [(r, False) for r in
                                                                     sorted(left)]:
            if name in node.rooms.joined:
                node.emit(events.RoomChanged(now, name, node.nick_of(link), link.peer_id,
                                              joined=did_join))
        node.emit(events.PeersChanged(now))


class SaveRate:
    """How much of what one link sends us we save: SAVE_RATE bytes a second after a burst of
    SAVE_BURST; and how many lines were not saved since the last log line about it."""

    __slots__ = ("bucket", "refused", "_logged_at")

    def __init__(self, now: float) -> None:
        self.bucket = TokenBucket(SAVE_RATE, SAVE_BURST, now)
        self.refused = 0
        self._logged_at: float | None = None

    def allow(self, size: int, now: float) -> bool:
        if self.bucket.take(now, size):
            return True
        self.refused += 1
        return False

    def should_log(self, now: float) -> bool:
        """At most once a minute per link."""
        if self._logged_at is None or now - self._logged_at >= 60.0:
            self._logged_at = now
            return True
        return False


def _action_text(msg: Message) -> str | None:
    action = (msg.metadata or {}).get("action")
    return action if isinstance(action, str) and action else None
