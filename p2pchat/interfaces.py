"""What each side of the node may call: the contract between the node and its neighbours.

The faces (console, line face, IRC face) talk to the chat only through ``IChat`` and get plain
values back (``PeerView``, ``StoredLine``, the verb results below), never a live connection.
The edges (the mesh's connections, discovery) call the node through ``IMeshSink`` and
``IBeaconSink``; a connection is seen by the node only as a ``Wire``.  These are
``typing.Protocol`` classes, so mypy checks that the node and the test fakes really provide
them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol, Union

from p2pchat.wire import printable

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from p2pchat import events
    from p2pchat.wire import Beacon, Message


# --- what a verb answers ------------------------------------------------------------------


@dataclass(frozen=True)
class Done:
    """The verb did what was asked; ``text`` tells the user so ("" when nothing need be
    said)."""

    text: str = ""


@dataclass(frozen=True)
class Refused:
    """The verb did nothing; ``why`` says why, in words for the user."""

    why: str


@dataclass(frozen=True)
class Said:
    """A line was said (``msg``).  ``waits_for``: the nick of the absent peer it is kept for
    (it is sent when that peer is back, and ``events.Delivered`` follows its ack); "" when it
    went out now."""

    msg: Message
    waits_for: str = ""

    @property
    def notice(self) -> str:
        """What a face tells the user about a line kept for an absent peer."""
        nick = self.waits_for
        return f"{nick} is away: the line is kept and sent when {nick} is back" if nick else ""


Outcome = Union[Done, Refused]


def no_linked_peer(shown: str) -> Refused:
    """The answer of a verb about a linked peer (/whois, /trust, /ignore) when no linked peer
    is shown as ``shown``: one text, whichever verb and face."""
    return Refused(f"no linked peer is shown as {printable(shown)}; /users lists them")


def no_peer_called(shown: str) -> Refused:
    """The answer of a private line (/msg, /query) to a peer neither linked nor away."""
    return Refused(f"no peer called {printable(shown)}; /users lists who is here")


def private_key(peer_id: str) -> str:
    """The key a private conversation is kept under (history, faces): ``@peer_id``."""
    return f"@{peer_id}"


@dataclass(frozen=True)
class PeerView:
    """One row of /users and of the console's peer list: a snapshot, not a live link."""

    nick: str
    peer_id: str
    state: str  # "connected", "connecting", "stale"
    address: str
    ours: bool  # speaks our extensions (else: a base peer)
    encrypted: bool = False  # a TLS link whose key was checked
    flagged: bool = False  # its key is not the one pinned for its nick (shown as "nick?")
    rooms: tuple[str, ...] = ()  # the rooms it is in (general first)
    away: str = ""  # its away text (/away), "" when it is here


@dataclass(slots=True)
class StoredLine:
    """A chat line as kept: ``room`` is a room name, or ``@peer_id`` for a private talk."""

    id: str
    room: str
    sender_id: str
    nick: str
    text: str
    action: bool
    own: bool
    when: float
    #: another author's signed room line, to hand on (relay.py): its sequence, its bytes as
    #: received and its author's public key; else 0, None, ""
    seq: int = 0
    raw: bytes | None = None
    pk: str = ""


#: A StoredLine as a plain tuple, in its fields' order: what a read's run of lines is kept as
#: (reading.py; ``History.remember_rows``), a microsecond a line cheaper than the object.
Row = tuple[str, str, str, str, str, bool, bool, float, int, "bytes | None", str]


@dataclass(frozen=True)
class SearchHit:
    """One line /search found: its conversation (a room name, or ``@peer_id``), who said it
    (the nick shown then), what, and when."""

    id: str
    room: str
    nick: str
    text: str
    action: bool
    when: float


@dataclass(frozen=True)
class TransferView:
    """One row of /files: an offer to us (``incoming``) or of ours, as it stands.  ``state``:
    offered, accepted, receiving, sending, paused, done, failed, rejected, cancelled."""

    number: int
    incoming: bool
    peer: str  # who offers (incoming), or to whom (a nick, or "#room")
    name: str
    size: int
    done: int  # bytes had (incoming) or sent (the most of any receiver)
    sha256: str
    state: str
    files: int = 1  # a folder: how many files
    rate: float = 0.0  # bytes per second now (0 when not moving)
    why: str = ""  # why it failed, was rejected or cancelled
    path: str = ""  # where it landed (or lands), for an incoming one


class IFiles(Protocol):
    """File transfers as a face sees them (``IChat.files``): the verbs of /send, /accept,
    /reject, /cancel and the rows of /files; what happens after comes as
    ``events.TransferChanged``."""

    def send(self, target: str, path: str) -> Deferred[Outcome]:
        """/send NICK PATH or /send #room PATH: the file or folder is hashed (off the
        reactor), then offered."""
        ...

    def transfers(self) -> list[TransferView]: ...

    def accept(self, number: int | None) -> Outcome:
        """/accept [N]: the newest offer waiting without N."""
        ...

    def reject(self, number: int | None) -> Outcome: ...

    def cancel(self, number: int) -> Outcome: ...


Observer = Callable[["events.Event"], None]


# --- what the faces may call --------------------------------------------------------------


class IReach(Protocol):
    """Static peers and Tor contacts, as the faces see them (keeper.LinkKeeper)."""

    def connect(self, text: str) -> Outcome:
        """/connect HOST:PORT (a static peer) or /connect INVITE (a friend over Tor)."""
        ...

    def disconnect(self, text: str) -> Outcome:
        """/disconnect NAME|ADDRESS: forget a static peer or contact (and its link)."""
        ...

    def contacts(self) -> list[str]:
        """/contacts: the static peers, contacts and invites given, with their state."""
        ...

    def invite(self) -> Outcome:
        """/invite: a new invite token for one friend (Done's text holds it)."""
        ...

    def keeps(self, peer_id: str) -> bool:
        """Whether this peer is one we redial (so its link going is not its leaving)."""
        ...


class NoReach:
    """The IReach of a chat with no static peers nor Tor (tests, the bench)."""

    def connect(self, text: str) -> Outcome:
        return Refused("static peers and contacts are not available here")

    def disconnect(self, text: str) -> Outcome:
        return Refused(f"no static peer or contact {printable(text)}")

    def contacts(self) -> list[str]:
        return ["no static peers nor contacts"]

    def invite(self) -> Outcome:
        return Refused("/invite needs Tor: start p2pchat with --tor or --tor-control")

    def keeps(self, peer_id: str) -> bool:
        return False


class IChat(Protocol):
    """The chat as a face sees it: who we are, verbs, and queries returning plain values."""

    @property
    def nick(self) -> str: ...

    @property
    def peer_id(self) -> str: ...

    @property
    def port(self) -> int: ...

    def now(self) -> float: ...

    @property
    def reach(self) -> IReach:
        """/connect, /disconnect, /contacts, /invite."""
        ...

    def subscribe(self, observer: Observer) -> None: ...

    def unsubscribe(self, observer: Observer) -> None: ...

    # verbs
    def say(self, text: str, room: str = ...) -> Said | Refused: ...

    def say_lines(self, texts: list[str], room: str = ...) -> list[Refused]:
        """Say several lines at once (a paste), in order, each as ``say`` would; the
        refusals, in order (none when all were said).  The links get them in one write
        each."""

    def act(self, action: str, room: str = ...) -> Said | Refused: ...

    def say_private(self, target: str, text: str, action: bool = False) -> Said | Refused: ...

    def join_room(self, text: str) -> Outcome: ...

    def part_room(self, text: str) -> Outcome: ...

    def set_nick(self, nick: str) -> Outcome: ...

    def trust_peer(self, shown: str) -> Outcome: ...

    def forget_pin(self, nick: str) -> Outcome: ...

    def ignore(self, shown: str) -> Outcome: ...

    def unignore(self, text: str) -> Outcome: ...

    def typing(self, room: str) -> None:
        """The user is typing in ``room`` (a room name or ``@peer_id``): the node tells the
        peers there, rate-limited, unless ``/set typing off``."""
        ...

    def set_away(self, text: str) -> Outcome:
        """/away TEXT, or /back with ``""``."""
        ...

    def setting(self, text: str) -> Outcome | list[str]:
        """/set NAME on|off; with no name, the settings as lines."""
        ...

    # queries
    def away_of(self, peer_id: str) -> str:
        """A linked peer's away text (ours for our own id); "" when it is here."""
        ...

    def addressee(self, shown: str) -> tuple[str, str] | Refused: ...

    def my_rooms(self) -> list[str]: ...

    def members(self, room: str) -> frozenset[str]: ...

    def rooms_of(self, peer_id: str) -> frozenset[str]: ...

    def room_list(self) -> list[tuple[str, list[str]]]: ...

    def users(self) -> list[PeerView]: ...

    def shown_nick(self, peer_id: str) -> str: ...

    def whois(self, shown: str) -> list[str] | Refused: ...

    def ignored(self) -> list[str]: ...

    def history(self, room: str, count: int = ...) -> list[StoredLine]: ...

    def around(self, room: str, when: float, count: int) -> list[StoredLine]:
        """/context: up to ``count`` lines of a conversation before ``when`` and ``count``
        after the line at ``when``, oldest first (``count`` is bounded by the chat)."""
        ...

    def search(self, text: str) -> Deferred[list[SearchHit] | Refused]:
        """/search: the newest lines matching ``text`` (words and filters), found off the
        reactor; never fails (a problem is a Refused)."""
        ...

    def search_indexing(self) -> int | None:
        """Percent done of indexing an older history for /search; None when searches see
        it all."""
        ...

    @property
    def files(self) -> IFiles:
        """File transfers (files/transfers.py)."""
        ...


# --- what the edges call ------------------------------------------------------------------


class Wire(Protocol):
    """One connection as the node sees it: what the handshake learnt, and how to write."""

    peer_id: str
    username: str
    caps: tuple[str, ...]
    fp: str
    pk: str
    address: str
    dialer_id: str
    tls: str
    #: when its last bytes came (the mesh sets it once per read; the idle rule reads it)
    last_heard: float

    @property
    def backed_up(self) -> bool: ...

    def send(self, msg: Message) -> None: ...

    def send_bytes(self, data: bytes) -> None: ...

    def close(self, why: str) -> None: ...

    def abort(self, why: str) -> None: ...

    def unacked(self) -> int | None:
        """Segments its peer's machine has not acknowledged yet, or None if not known
        (tcpinfo.py)."""
        ...


class IMeshSink(Protocol):
    """What a peer connection calls on the node."""

    def link_offered(self, peer_id: str, nick: str, fp: str) -> str | None:
        """A dialer's join came, before TLS: why the link would be refused, or None."""
        ...

    def link_ready(self, wire: Wire) -> bool: ...

    def message_received(self, wire: Wire, msg: Message, raw: bytes = b"") -> None: ...

    def link_writable(self, wire: Wire) -> None: ...

    def link_lost(self, wire: Wire, why: str) -> None: ...


class IBeaconSink(Protocol):
    """What discovery calls on the node."""

    def beacon_heard(self, beacon: Beacon, host: str, together: bool = False) -> None: ...

    def beacon(self, kind: str) -> Beacon: ...
