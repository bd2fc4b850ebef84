"""What the node tells its observers (the faces).  Plain values; a face renders them its way."""

from __future__ import annotations

from dataclasses import dataclass

from typing import TYPE_CHECKING

from p2pchat.wire import DEFAULT_ROOM

if TYPE_CHECKING:
    from p2pchat.interfaces import TransferView


@dataclass(slots=True)
class ChatLine:
    """A line said in the room, by a peer or by us (``own``).  Treated as immutable, like
    every event (not ``frozen``, which costs a microsecond per line)."""

    when: float
    nick: str
    text: str
    sender_id: str
    message_id: str
    own: bool = False
    action: bool = False  # /me: shown as "* nick text"
    #: for our own lines: how many connected peers it was written to (0 = nobody heard it)
    sent_to: int = 0
    #: for our own lines: not yet acknowledged by every peer in the room (see Delivered)
    pending: bool = False
    #: the conversation: a room name ("general", "ops"), or "@peer_id" for a private talk
    room: str = DEFAULT_ROOM
    #: for a private line: the nick of the other party (else "")
    private: str = ""
    #: for our own private line: its peer is away, so it was kept (in the sent log) and is
    #: sent when the peer is back; pending until then (a pending mark, not "not delivered")
    kept: bool = False
    #: said before we heard it live: resent by catch-up, or handed on for an absent author
    #: (a face shows it but does not notify for it)
    replayed: bool = False


@dataclass(slots=True)
class Delivered:
    """Every peer that was in the room when we said ``message_id`` has it now (for a private
    line: its addressee, also one that was away when it was said, once it is back).  One for
    each line we say in a room of catch-up peers, so treated as immutable like ChatLine but
    not ``frozen`` (half of the cost of making one)."""

    when: float
    message_id: str


@dataclass(frozen=True)
class RoomChanged:
    """Someone joined or left a room we are in (``own``: we did; then ``nick`` is ours)."""

    when: float
    room: str
    nick: str
    peer_id: str
    joined: bool
    own: bool = False


@dataclass(frozen=True)
class PeerJoined:
    when: float
    nick: str
    peer_id: str
    address: str


@dataclass(frozen=True)
class PeerLeft:
    when: float
    nick: str
    peer_id: str
    #: None when the peer said goodbye; otherwise why we think it is gone
    reason: str | None = None


@dataclass(frozen=True)
class NickChanged:
    when: float
    old: str
    new: str
    peer_id: str
    own: bool = False


#: Notice.topic of "another peer uses our nick"
OWN_NICK = "own-nick"


@dataclass(frozen=True)
class Notice:
    """Something for the user that is not a chat line: a warning or an error."""

    when: float
    text: str
    error: bool = False
    #: what it is about, for a face that says it in its own words ("own-nick": another peer
    #: uses our nick; the IRC face names it as IRC shows it): "" for anything else
    topic: str = ""


@dataclass(frozen=True)
class PeersChanged:
    """The peer list changed (state, address or nick): lists and status bars redraw."""

    when: float


@dataclass(frozen=True)
class Typing:
    """A peer is typing in a conversation (``room``: a room name, or ``@peer_id`` for its
    private talk with us); shown until ``until`` unless a newer one or its line comes."""

    when: float
    nick: str
    peer_id: str
    room: str
    until: float


@dataclass(frozen=True)
class AwayChanged:
    """A peer (or we: ``own``) went away (``text`` says why) or came back (``text`` "")."""

    when: float
    nick: str
    peer_id: str
    text: str
    own: bool = False


@dataclass(frozen=True)
class TransferChanged:
    """A file transfer changed (``what``): offered (to us, or by us), started, progress (at
    most once a second; ``view.done`` grows), done, failed, rejected, cancelled, paused."""

    when: float
    view: TransferView
    what: str


Event = (ChatLine | Delivered | RoomChanged | PeerJoined | PeerLeft | NickChanged | Notice
         | PeersChanged | Typing | AwayChanged
         | TransferChanged)
