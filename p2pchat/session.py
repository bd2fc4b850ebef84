"""One linked peer as the node sees it: what it speaks, how it is named, how far it has our
lines.

The mesh's connection (a ``Wire``) only reports what its handshake learnt and carries bytes;
everything the node keeps about the peer lives here, so the node never writes onto the
connection object.  The features are decided once, from the peer's caps at link-up (a plain
link, while we have a key, gets none of our extensions): after that the node asks
``session.rooms`` and never looks in a caps tuple again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from p2pchat.gossip import CAP_GOSSIP
from p2pchat.relay import CAP_RELAY
from p2pchat.runsig import CAP_RUNSIG
from p2pchat.sealterms import CAP_SEALED
from p2pchat.wire import CAP_AWAY, CAP_CATCHUP, CAP_OURS, CAP_ROOMS, CAP_TLS, CAP_TYPING

if TYPE_CHECKING:
    from p2pchat.interfaces import Wire
    from p2pchat.relay import HandOn
    from p2pchat.hearing import SaveRate
    from p2pchat.wire import Message

#: The caps of ours a plain link (no proven key) is never believed to have, while we have a key.
KEYED_CAPS = (CAP_CATCHUP, CAP_ROOMS, CAP_RELAY, CAP_TLS, CAP_TYPING, CAP_AWAY, CAP_SEALED,
              CAP_GOSSIP, CAP_RUNSIG)


class PeerSession:
    """A linked peer.  ``wire`` is the connection it speaks on (send, close, abort,
    backed_up); the rest is the node's own state about it."""

    __slots__ = ("wire", "peer_id", "username", "fp", "ours", "catchup", "rooms", "relay",
                 "linked_at", "cursor", "synced", "sync_point", "said_leave", "hand_on",
                 "save_rate", "typing", "speaks_away", "sealed", "gossip", "has", "runsig")

    def __init__(self, wire: Wire, linked_at: float, keyed: bool) -> None:
        """``keyed``: we have a key, so a link that proved none is a base peer's (or claims
        to be one of ours without proving it) and gets none of our extensions."""
        caps = wire.caps
        if keyed and not wire.fp:
            caps = tuple(c for c in caps if c not in KEYED_CAPS)
        self.wire = wire
        self.peer_id = wire.peer_id
        #: its nick as it last told us (a join line renames it)
        self.username = wire.username
        self.fp = wire.fp
        #: the features it speaks, decided once from its caps
        self.ours = CAP_OURS in caps
        self.catchup = CAP_CATCHUP in caps
        self.rooms = CAP_ROOMS in caps
        self.relay = CAP_RELAY in caps
        #: takes lines signed once per run (runsig.py); a peer without it never gets one
        self.runsig = self.relay and CAP_RUNSIG in caps
        #: forwards lines live and sends member lines (gossip.py); it takes relay lines too
        self.gossip = self.relay and CAP_GOSSIP in caps
        #: takes ``typing`` and ``away`` lines (activity.py); a base peer never gets one
        self.typing = CAP_TYPING in caps
        self.speaks_away = CAP_AWAY in caps
        #: carries sealed items and takes its own (sealing.py); a base peer never gets one
        self.sealed = CAP_SEALED in caps
        self.linked_at = linked_at
        #: the last of our sequenced lines written to it (the rest wait in the sent log)
        self.cursor = 0
        #: False until a catch-up peer's sync came: until then new lines wait in the sent log
        self.synced = True
        #: our sequence when we sent it our sync (resends start after it at the least)
        self.sync_point = 0
        #: it said goodbye (its link may linger a moment): nothing more is written to it
        self.said_leave = False
        #: what is still to be handed on to it of absent authors, and its sync budget
        self.hand_on: HandOn | None = None
        #: how many bytes of its lines we save (store.SAVE_RATE)
        self.save_rate: SaveRate | None = None
        #: how far it has each author of others, as its sync said (a line it has already is
        #: not forwarded to it: gossip.forward_to's ``had_by``)
        self.has: dict[str, int] = {}

    # What the wire knows, read through (the mesh keeps these up to date).

    @property
    def address(self) -> str:
        return self.wire.address

    @property
    def dialer_id(self) -> str:
        return self.wire.dialer_id

    @property
    def tls(self) -> str:
        return self.wire.tls

    @property
    def pk(self) -> str:
        return self.wire.pk

    @property
    def backed_up(self) -> bool:
        return self.wire.backed_up

    @property
    def last_heard(self) -> float:
        return self.wire.last_heard

    def send(self, msg: Message) -> None:
        self.wire.send(msg)

    def send_bytes(self, data: bytes) -> None:
        self.wire.send_bytes(data)

    def close(self, why: str) -> None:
        self.wire.close(why)

    def abort(self, why: str) -> None:
        self.wire.abort(why)

    def unacked(self) -> int | None:
        return self.wire.unacked()

    def refuse(self, why: str) -> None:
        """Close the link as refused: a mesh link tells a peer of ours why first (a
        ``refused`` line, mesh.PeerProtocol.refuse); any other wire is just closed."""
        refuse = getattr(self.wire, "refuse", None)
        if refuse is not None:
            refuse(why)
        else:
            self.wire.close(why)

    def __repr__(self) -> str:
        return f"<PeerSession {self.peer_id} ({self.username})>"
