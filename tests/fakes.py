"""Test doubles for the node's collaborators."""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock

from p2pchat.face import CommandFace
from p2pchat.interfaces import IChat, Done, Refused, Said
from p2pchat.peers import PeerInfo
from p2pchat import wire
from p2pchat.wire import Message


def said(result: object) -> Message:
    """The message a verb said (failing the test when it refused)."""
    assert isinstance(result, Said), result
    return result.msg


def said_id(result: object) -> str:
    return said(result).id


def waits_for(result: object) -> str:
    """Whom a said private line waits for ("" when it went out now)."""
    assert isinstance(result, Said), result
    return result.waits_for


def refusal(result: object) -> str:
    """Why a verb refused (failing the test when it did not)."""
    assert isinstance(result, Refused), result
    return result.why


def done(result: object) -> str:
    """What a verb that did it tells (failing the test when it refused)."""
    assert isinstance(result, Done), result
    return result.text


class FakeLink:
    """A handshaken link that records what is sent to it."""

    def __init__(self, peer_id: str, username: str, dialer_id: str = "",
                 caps: tuple[str, ...] = ("p2pchat-py/1",), now: float = 0.0) -> None:
        self.peer_id = peer_id
        self.username = username
        self.caps = caps
        self.dialer_id = dialer_id or peer_id
        self.address = "127.0.0.1:5555"
        self.last_heard = now
        self.backed_up = False
        self.fp = ""
        self.tls = ""
        self.pk = ""
        self.sent: list[Message] = []
        self.closed: str | None = None
        #: what ``unacked`` says (None: not known, as a transport without a socket)
        self.unacked_segments: int | None = None

    def send(self, msg: Message) -> None:
        self.sent.append(msg)

    def send_bytes(self, data: bytes) -> None:
        self.send(wire.parse_message(data.rstrip(b"\n")))

    def close(self, why: str) -> None:
        self.closed = why

    def abort(self, why: str) -> None:
        self.closed = why

    def unacked(self) -> int | None:
        return self.unacked_segments


class ReadOnlyLink(FakeLink):
    """A link the node may only read and write lines to: setting anything on it but its
    close reason fails (what the node keeps about a peer lives in its PeerSession)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._sealed = True

    def __setattr__(self, name: str, value: object) -> None:
        if getattr(self, "_sealed", False) and name != "closed":
            raise AssertionError(f"the node set {name} on a connection")
        super().__setattr__(name, value)


class FakeDialer:
    def __init__(self) -> None:
        self.wanted: dict[str, PeerInfo] = {}
        self.dropped: list[str] = []
        self.ended: list[tuple[str, float]] = []

    def want(self, peer: PeerInfo) -> None:
        self.wanted[peer.peer_id] = peer

    def drop(self, peer_id: str) -> None:
        self.wanted.pop(peer_id, None)
        self.dropped.append(peer_id)

    def connected(self, peer_id: str) -> None:
        self.wanted.pop(peer_id, None)

    def dialing(self) -> int:
        return 0  # (a dial is never under way here: neighbours' one at a time is off)

    def in_flight(self, peer_id: str) -> bool:
        return False

    def link_ended(self, peer_id: str, lived: float) -> None:
        self.ended.append((peer_id, lived))


class FakeAnnouncer:
    def __init__(self) -> None:
        self.announced = 0
        self.replies = 0

    def announce(self) -> None:
        self.announced += 1

    def reply_soon(self) -> None:
        self.replies += 1


class RecordingFace(CommandFace):
    """A face that keeps what it is told (info lines, errors), for tests of the commands."""

    def __init__(self, node: IChat) -> None:
        self.node = node
        self.info: list[str] = []
        self.errors: list[str] = []

    def show_info(self, lines: list[str]) -> None:
        self.info.extend(lines)

    def show_error(self, text: str) -> None:
        self.errors.append(text)

    def clear(self) -> None:
        pass

    def quit(self) -> None:
        pass


class TurnClock(MemoryReactorClock):
    """A clock that runs, per ``advance``, only the calls due when it began, as the reactor
    runs its timers between two reads of its sockets: a call scheduled by one of them (even
    for now) waits for the next turn."""

    def advance(self, amount: float) -> None:
        self.rightNow += amount
        due = [c for c in self.calls if c.getTime() <= self.rightNow]
        for call in sorted(due, key=lambda c: c.getTime()):
            if call in self.calls:
                self.calls.remove(call)
                call.called = 1
                call.func(*call.args, **call.kw)
