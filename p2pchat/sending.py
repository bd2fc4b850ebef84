"""Writing our lines to the links, for the node: making a message from us (numbered when it is
a chat line, signed when we have a key), and putting our sequenced lines out through the
outbox (outbox.py): a link whose cursor had everything gets the new line's bytes at once, one
that is behind is pumped from the sent log in order, as far as its peer reads.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from twisted.logger import Logger, LogLevel

from p2pchat.clocks import log_limited
from p2pchat.relay import sign_line
from p2pchat.runsig import is_run
from p2pchat.wire import (CHAT, DEFAULT_ROOM, JOIN, PRIVATE, STARTTLS, Message, encode_message,
                          new_message_id)

if TYPE_CHECKING:
    from p2pchat.node import Node
    from p2pchat.session import PeerSession

log = Logger()


class Sender:
    """The sending side of one node (``node``)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def message(self, kind: str, content: str, sequenced: bool = False,
                 metadata: dict | None = None, room: str = DEFAULT_ROOM) -> Message:
        """A message from us.  Only chat lines (``sequenced``) take a sequence number: they
        are what the sent log keeps and catch-up resends; the rest carry 0."""
        node = self.node
        seq = node.outbox.number() if sequenced else 0
        if kind in (CHAT, PRIVATE) and node.identity is not None:
            metadata = dict(metadata or {})  # gets the signature below
        msg = Message(
            id=new_message_id(),
            type=kind,
            sender_id=node.peer_id,
            username=node.nick,
            content=content,
            timestamp=node.clock.seconds(),
            sequence=seq,
            room_id=room,
            metadata=metadata,
            caps=node.caps if kind == JOIN else (),
            fp=node.identity.fingerprint if node.identity and kind == JOIN else "",
        )
        if kind in (CHAT, PRIVATE) and node.identity is not None and msg.metadata is not None:
            # Signed, so a peer can hand it on for us to one that missed it (relay.py).
            msg.metadata["sig"] = sign_line(node.identity, msg)
        return msg

    def handshake(self) -> Message:
        """The first line a dialer writes: a join from us (sequence 0, as the reference)."""
        node = self.node
        return self.message(JOIN, f"{node.nick} joined the chat")

    def starttls(self) -> Message:
        """The listener's answer to a join offering TLS (our fingerprint in ``fp``; our caps,
        for a static peer's dialer, which had no beacon to learn them from)."""
        node = self.node
        return Message(id=new_message_id(), type=STARTTLS, sender_id=node.peer_id,
                       username=node.nick, timestamp=node.clock.seconds(),
                       fp=node.identity.fingerprint if node.identity else "", caps=node.caps)

    def broadcast(self, msg: Message) -> int:
        """Send an unsequenced line (a heartbeat) on every link."""
        node = self.node
        for link in list(node.links.values()):
            link.send(msg)
        return len(node.links)

    def publish(self, msg: Message, wanted: set[str]) -> int:
        """Send one of our sequenced lines: into the sent log, then to every synced link.

        Each link has a cursor into the sent log, so a link that is still syncing, or whose
        peer is slow to read, simply falls behind and is written to when it can: no queue per
        link, and memory bounded by the sent log.  ``wanted``: the linked peers the line is
        for (``_is_for``).  Returns how many of them are synced.

        A link that had everything before this line (the usual case) just gets its bytes;
        one that is behind is pumped from the log, in order."""
        node = self.node
        previous = node.outbox.append(msg, node.clock.seconds())
        data = node.outbox.last_bytes()
        count = 0
        for link in list(node.links.values()):
            if not link.synced:
                continue
            wire = link.wire  # straight to it: this runs for every link on every line
            if link.cursor == previous and not wire.backed_up:
                if link.peer_id in wanted:
                    count += 1
                    wire.send_bytes(data)
                link.cursor = msg.sequence
            else:
                count += link.peer_id in wanted
                self.pump(link)
        return count

    def pump(self, link: PeerSession) -> None:
        """Write to ``link`` what it lacks of the sent log, until its peer stops reading."""
        node = self.node
        if (link.backed_up or not link.synced or link.cursor >= node.outbox.sequence
                or link.said_leave):  # it said goodbye: it can't show lines any more
            return
        lines, missing = node.outbox.due(link.cursor)
        if missing:
            log_limited(node.clock, log, "too old to send", LogLevel.warn,
                        "lines for {peer} are too old to send", peer=link.peer_id)
            node.notice(f"{node.nick_of(link)} missed older lines that are no longer kept",
                         error=True)
        wire = link.wire
        for line, data in lines:
            if wire.backed_up or node.links.get(link.peer_id) is not link:
                return
            if self.is_for(line, link.peer_id, link.rooms):
                if not link.runsig and is_run(line.metadata):
                    data = self.signed_alone(line)  # it takes no run signature (runsig.py)
                wire.send_bytes(data)
            link.cursor = line.sequence

    def signed_alone(self, msg: Message) -> bytes:
        """One of our run-signed lines as it would have been said alone (its own signature),
        for a link that takes no run signature: the same line, byte for byte, but ``sig``."""
        node = self.node
        assert node.identity is not None
        meta = {k: v for k, v in (msg.metadata or {}).items() if k not in ("sig", "run", "path")}
        meta["sig"] = sign_line(node.identity, msg)
        return encode_message(replace(msg, metadata=meta))

    def is_for(self, msg: Message, peer_id: str, speaks_rooms: bool) -> bool:
        """Whether one of our lines goes to this peer: general to all; a room's to its members
        (peers that speak rooms); a private line to its addressee only."""
        node = self.node
        if msg.type == PRIVATE:
            # Only to the addressee, over a link whose peer takes private lines (a plain link
            # claiming its id, while we have a key, is not believed to speak rooms: session.py).
            return (msg.metadata or {}).get("to") == peer_id and speaks_rooms
        if msg.room_id == DEFAULT_ROOM:
            return True
        return speaks_rooms and node.rooms.peer_in(peer_id, msg.room_id)

    def waiting_for(self, msg: Message, wanted: set[str]) -> set[str]:
        """The catch-up peers in the room now (linked or away): who must ack ``msg``.
        ``wanted``: the linked peers it goes to."""
        node = self.node
        waiting = {pid for pid in wanted if node.links[pid].catchup}
        # One away but reached through others gets it that way (it acks only by a link).
        return waiting | {pid for pid in node.away
                          if self.is_for(msg, pid, True) and not node.forwarder.was_shown(pid)}
