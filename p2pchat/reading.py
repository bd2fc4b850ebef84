"""The room lines of one read heard together, for the node: a live link's read holds many
lines of its peer (a burst, a catch-up), and each went one by one through the node, the
room, hearing, the store and the faces, some twenty calls a line (``bench.hotpath``).

Here a run of them (``mesh.PeerProtocol.lines_received`` gathers the room lines a read holds
of the link's own peer, in order; ``Node.message_received`` hands on one alone the same way)
is taken in one loop: what is the same for every line of the run is looked up once (the
link's features and key, the nick shown, whether it is ignored, leaving, the rooms we are
in, the author's seen sequences), and what the issue asks once per read is done once per run:
one history write (``History.remember_lines``), one seen-set and high-water update, one ack
timer, one save-budget take, the events to each observer in turn.  Every check stays per line,
in the order it was: the id seen, the author's sequence seen (seen.py), the room ours, the
line's time, its text made printable, the save budget; a line that fails one is dropped alone
and the others go on.  Private lines and everything else still go the long way (hearing.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.logger import Logger, LogLevel

from p2pchat import events
from p2pchat.clocks import log_limited
from p2pchat.interfaces import Row
from p2pchat.wire import Message, printable

if TYPE_CHECKING:
    from p2pchat.node import Node
    from p2pchat.session import PeerSession

log = Logger()

#: makes an event without its __init__ (its fields are then all set by the caller)
new_event = object.__new__


class Reading:
    """Room lines of a run from one link (``chat_lines``), for ``node``."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def chat_lines(self, link: PeerSession, run: list[tuple[Message, bytes]]) -> None:
        """``run``: (line, its bytes as received) of one read, in order, each a ``chat`` line.
        A line whose sender is not the link's peer closes the link (hearing.not_its_own) and
        the lines after it are not taken, as when they came one by one."""
        node = self.node
        if node.leaving:
            # Our face is gone: a line taken now would be kept and acked but never shown.
            # Not taking it, its author resends it when we are back (catch-up).
            return
        room = node.room
        seen, seqs, limit = room._seen, room.seqs, room.seen_limit
        author = link.peer_id
        starts, ends = seqs.run(author)
        high = room.high_water.get(author, 0)
        top = high
        pk = link.pk
        keep_raw = bool(link.relay and pk)
        joined = node.rooms.joined
        now = node.clock.seconds()
        shown_nick = None if not link.username else node.trust.display(link.username, link.fp)
        ignored = author in node.ignores
        replaying, linked_at = link.catchup, link.linked_at
        gossip = link.gossip
        chat_line = events.ChatLine
        sequenced = changed = False
        lines: list[events.ChatLine] = []
        rows: list[Row] = []
        relayed: list[tuple[bytes, Message]] = []
        stranger: Message | None = None
        for msg, raw in run:
            if msg.sender_id != author:
                stranger = msg
                break
            message_id = msg.id
            if message_id in seen:
                continue  # a duplicate
            seq = msg.sequence
            meta = msg.metadata
            signed = bool(meta and meta.get("sig"))
            if seq and signed:  # known by its author and sequence, for good (room.accept)
                if starts and seq == ends[-1] + 1:
                    ends[-1] = seq  # the usual case: the next of a run (seen.py's add, in place)
                    changed = True
                elif seqs.add(author, seq):
                    changed = True
                else:
                    continue  # a duplicate under another id
            seen[message_id] = None
            if seq > top:
                top = seq
            if seq:
                sequenced = True
            relay = keep_raw and signed and bool(raw)
            room_id = msg.room_id
            if room_id not in joined:
                log_limited(node.clock, log, "room not ours", LogLevel.debug,
                            "{peer} sent a line for #{room}, which we are not in: dropped",
                            peer=author, room=room_id)
            elif not ignored:  # an ignored peer's line: only kept in memory, to drop dupes
                stamp = msg.timestamp
                when = stamp if stamp and 0 < stamp <= now else now
                action = meta.get("action") if meta else None
                if not (action and isinstance(action, str)):
                    action = None
                nick = shown_nick if shown_nick is not None else node.trust.display(
                    msg.username or author, link.fp)
                text = action or msg.content
                if not text.isprintable():  # (printable's own first look, a call less a line)
                    text = printable(text)
                # A catch-up peer resends what we missed before any new line: a line said
                # before this link was up is one of those (replayed), not news.
                acted = action is not None
                # ChatLine(...) with its fields set here, a third less than its __init__
                # (tests/test_read_of_lines.py: the same event as that call makes)
                line = new_event(chat_line)
                line.when = when
                line.nick = nick
                line.text = text
                line.sender_id = author
                line.message_id = message_id
                line.own = False
                line.action = acted
                line.sent_to = 0
                line.pending = False
                line.room = room_id
                line.private = ""
                line.kept = False
                # (link.catchup, a bool: so is this)
                line.replayed = replaying and stamp is not None and 0 < stamp < linked_at
                lines.append(line)
                if relay:  # kept with its bytes and its author's key, to hand on
                    rows.append((message_id, room_id, author, nick, text, acted,
                                 False, when, seq, raw, pk))
                else:
                    rows.append((message_id, room_id, author, nick, text, acted,
                                 False, when, 0, None, ""))
            if relay and gossip:
                relayed.append((raw, msg))
        if changed:
            seqs.changed(author)
        while len(seen) > limit:
            seen.popitem(last=False)
        if top > high:
            room.high_water[author] = top
        if sequenced and link.catchup:
            node.catchup.schedule_ack(link)
            node.store.set_high_water(author, room.high_water[author])
        if rows:
            node.store.remember_rows(node.hearing.may_save(link, rows))
        if lines:
            emit_each(node, lines)
        if relayed and node.forwarder.may_spread(author, link):
            for raw, msg in relayed:
                node.forwarder.spread(raw, pk, msg, link, 0)
        if stranger is not None:
            node.hearing.not_its_own(link, stranger)


def emit_each(node: Node, lines: list[events.ChatLine]) -> None:
    """``lines`` to each of the node's observers in turn, in order (as ``Node.emit`` does one
    event: an observer that fails on one is logged, and the others still get it).  An
    observer with a ``chat_lines`` method (catching_up.CatchingUp, which stands before the
    line face and the console) takes the run at once: the line face writes it in one write,
    not one a line."""
    for observer in list(node._observers):
        many = getattr(observer, "chat_lines", None)
        if many is not None:
            try:
                many(lines)
            except Exception:
                log.failure("observer {observer!r} failed on {n} lines",
                            observer=observer, n=len(lines))
            continue
        for line in lines:
            try:
                observer(line)
            except Exception:
                log.failure("observer {observer!r} failed on {event!r}",
                            observer=observer, event=line)
