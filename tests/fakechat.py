"""A chat for the faces' unit tests: ``FakeChat`` is an ``interfaces.IChat`` with no network,
no node and no store behind it.  A test sets up what the chat knows (peers, rooms, history),
feeds the face events as the node would emit them, and reads back what the face called.

mypy checks it against the Protocol (``_check`` below), so a face tested on it uses nothing
the real chat does not offer.
"""

from __future__ import annotations

from dataclasses import replace

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from p2pchat import events
from p2pchat.interfaces import (
    Done,
    IChat,
    Observer,
    Outcome,
    PeerView,
    Refused,
    Said,
    SearchHit,
    StoredLine,
    TransferView,
    no_linked_peer,
    no_peer_called,
    private_key,
)
from p2pchat.search import parse_query, search_lines
from p2pchat.wire import CHAT, DEFAULT_ROOM, PRIVATE, Message, nick_problem

NOW = 1_700_000_000.0


class FakeReach:
    """The faces' IReach: answers what a test sets, records the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.answer: Outcome = Done("done")
        self.listed = ["no static peers nor contacts"]

    def connect(self, text: str) -> Outcome:
        self.calls.append(("connect", text))
        return self.answer

    def disconnect(self, text: str) -> Outcome:
        self.calls.append(("disconnect", text))
        return self.answer

    def contacts(self) -> list[str]:
        self.calls.append(("contacts", ""))
        return self.listed

    def invite(self) -> Outcome:
        self.calls.append(("invite", ""))
        return self.answer

    def keeps(self, peer_id: str) -> bool:
        return False


class FakeChat:
    """What a face sees of the chat, kept in plain fields a test may set.

    ``calls``: every verb called, as ``(verb, args...)``; ``said``: every line said, as
    ``(conversation, text, action)``.  Linked peers are ``PeerView`` rows with state
    "connected"; ``away`` holds the ids of peers that are not linked but may be written to
    (their lines are kept)."""

    def __init__(self, nick: str = "alice", peer_id: str = "alice_0000",
                 clock: Clock | None = None, port: int = 8123) -> None:
        self.clock = clock or Clock()
        if clock is None:
            self.clock.advance(NOW)
        self._nick = nick
        self._peer_id = peer_id
        self._port = port
        self.observers: list[Observer] = []
        #: /connect, /disconnect, /contacts, /invite
        self.reach = FakeReach()
        self.rooms: list[str] = [DEFAULT_ROOM]
        self.peers: list[PeerView] = []
        self.away: dict[str, str] = {}  # peer id -> nick
        self.lines: list[StoredLine] = []
        #: what search_indexing answers (percent done, None when done)
        self.indexing: int | None = None
        self.ignores: dict[str, str] = {}  # peer id -> nick
        self.calls: list[tuple] = []
        self.said: list[tuple[str, str, bool]] = []
        self._count = 0
        self.away_text = ""  # ours (/away)
        #: file transfers (IFiles): rows a test sets, verbs recorded in ``calls``
        self.files = FakeFiles(self.calls)

    # --- for the test -----------------------------------------------------------------------

    def emit(self, event: events.Event) -> None:
        for observer in list(self.observers):
            observer(event)

    def link(self, nick: str, rooms: tuple[str, ...] = (), ours: bool = True,
             encrypted: bool = True) -> PeerView:
        """A peer linked now (in ``rooms`` besides #general), told to the face."""
        peer = PeerView(nick, f"{nick}_0001", "connected", "127.0.0.1:5555", ours,
                        encrypted=encrypted, rooms=(DEFAULT_ROOM, *rooms))
        self.peers = [p for p in self.peers if p.peer_id != peer.peer_id] + [peer]
        self.away.pop(peer.peer_id, None)
        self.emit(events.PeerJoined(self.now(), nick, peer.peer_id, "127.0.0.1"))  # its host
        return peer

    def unlink(self, peer: PeerView, reason: str | None = "connection lost") -> None:
        """The peer's link went (it is away: its private lines are kept)."""
        self.peers = [p for p in self.peers if p.peer_id != peer.peer_id]
        self.away[peer.peer_id] = peer.nick
        self.emit(events.PeerLeft(self.now(), peer.nick, peer.peer_id, reason))

    def hear(self, peer: PeerView, text: str, room: str = DEFAULT_ROOM,
             action: bool = False) -> events.ChatLine:
        """A line from ``peer`` (``room`` "@..." for a private one), kept and told."""
        private = room.startswith("@")
        where = private_key(peer.peer_id) if private else room
        line = events.ChatLine(self.now(), peer.nick, text, peer.peer_id, self._id(),
                               action=action, room=where, private=peer.nick if private else "")
        self.lines.append(StoredLine(line.message_id, where, peer.peer_id, peer.nick, text,
                                     action, False, line.when))
        self.emit(line)
        return line

    def _id(self) -> str:
        self._count += 1
        return f"m{self._count}"

    def _linked(self, shown: str) -> PeerView | None:
        for peer in self.peers:
            if shown in (peer.nick, peer.peer_id):
                return peer
        return None

    # --- IChat: who we are ------------------------------------------------------------------

    @property
    def nick(self) -> str:
        return self._nick

    @property
    def peer_id(self) -> str:
        return self._peer_id

    @property
    def port(self) -> int:
        return self._port

    def now(self) -> float:
        return self.clock.seconds()

    def subscribe(self, observer: Observer) -> None:
        self.observers.append(observer)

    def unsubscribe(self, observer: Observer) -> None:
        if observer in self.observers:
            self.observers.remove(observer)

    # --- IChat: verbs -----------------------------------------------------------------------

    def say(self, text: str, room: str = DEFAULT_ROOM) -> Said | Refused:
        self.calls.append(("say", text, room))
        return self._say(text, room, action=False)

    def say_lines(self, texts: list[str], room: str = DEFAULT_ROOM) -> list[Refused]:
        said = [self.say(text, room) for text in texts]
        return [answer for answer in said if isinstance(answer, Refused)]

    def act(self, action: str, room: str = DEFAULT_ROOM) -> Said | Refused:
        self.calls.append(("act", action, room))
        return self._say(action, room, action=True)

    def say_private(self, target: str, text: str, action: bool = False) -> Said | Refused:
        self.calls.append(("say_private", target, text, action))
        found = self.addressee(target)
        if isinstance(found, Refused):
            return found
        return self._say(text, private_key(found[0]), action)

    def _say(self, text: str, room: str, action: bool) -> Said | Refused:
        waits_for = ""
        nick = ""
        if room.startswith("@"):
            peer_id = room[1:]
            nick = self.shown_nick(peer_id)
            waits_for = self.away.get(peer_id, "")
            if not waits_for and self._linked(peer_id) is None:
                return no_peer_called(peer_id)
        elif room not in self.rooms:
            return Refused(f"you are not in #{room}")
        msg = Message(id=self._id(), type=PRIVATE if nick else CHAT, sender_id=self.peer_id,
                      username=self.nick, content=text, timestamp=self.now(),
                      room_id=DEFAULT_ROOM if nick else room)
        linked = [p for p in self.peers if not nick or p.peer_id == room[1:]]
        self.said.append((room, text, action))
        self.lines.append(StoredLine(msg.id, room, self.peer_id, self.nick, text, action, True,
                                     self.now()))
        self.emit(events.ChatLine(self.now(), self.nick, text, self.peer_id, msg.id, own=True,
                                  action=action, sent_to=len(linked),
                                  pending=bool(linked) or bool(waits_for), room=room,
                                  private=nick, kept=bool(waits_for)))
        return Said(msg, waits_for)

    def join_room(self, text: str) -> Outcome:
        self.calls.append(("join_room", text))
        name = text.strip().lstrip("#").lower()
        if not name or not name.replace("-", "").isalnum():
            return Refused("a room name is a-z, 0-9 and -")
        if name in self.rooms:
            return Done(f"you are already in #{name}")
        self.rooms.append(name)
        self.emit(events.RoomChanged(self.now(), name, self.nick, self.peer_id, joined=True,
                                     own=True))
        return Done()

    def part_room(self, text: str) -> Outcome:
        self.calls.append(("part_room", text))
        name = text.strip().lstrip("#").lower()
        if name == DEFAULT_ROOM:
            return Refused("#general is everyone's room: it can't be left")
        if name not in self.rooms:
            return Refused(f"you are not in #{name}")
        self.rooms.remove(name)
        self.emit(events.RoomChanged(self.now(), name, self.nick, self.peer_id, joined=False,
                                     own=True))
        return Done()

    def set_nick(self, nick: str) -> Outcome:
        self.calls.append(("set_nick", nick))
        if nick == self._nick:
            return Refused(f"you are already {nick}")
        problem = nick_problem(nick)
        if problem:
            return Refused(problem)
        old, self._nick = self._nick, nick
        self.emit(events.NickChanged(self.now(), old, nick, self.peer_id, own=True))
        return Done()

    def trust_peer(self, shown: str) -> Outcome:
        self.calls.append(("trust_peer", shown))
        peer = self._linked(shown)
        if peer is None:
            return no_linked_peer(shown)
        self.peers = [replace(p, flagged=False) if p is peer else p for p in self.peers]
        return Done(f"pinned the key of {peer.nick}")

    def forget_pin(self, nick: str) -> Outcome:
        self.calls.append(("forget_pin", nick))
        return Done(f"forgot the key pinned for {nick}")

    def ignore(self, shown: str) -> Outcome:
        self.calls.append(("ignore", shown))
        peer = self._linked(shown)
        if peer is None:
            return no_linked_peer(shown)
        self.ignores[peer.peer_id] = peer.nick
        return Done(f"ignoring {peer.nick}")

    def unignore(self, text: str) -> Outcome:
        self.calls.append(("unignore", text))
        for peer_id, nick in list(self.ignores.items()):
            if text in (nick, peer_id):
                del self.ignores[peer_id]
                return Done(f"no longer ignoring {nick}")
        return Refused(f"{text} is not ignored; /ignore lists who is")

    def typing(self, room: str) -> None:
        self.calls.append(("typing", room))

    def set_away(self, text: str) -> Outcome:
        self.calls.append(("set_away", text))
        self.away_text = text
        return Done(f"you are away: {text}" if text else "you are back")

    def setting(self, text: str) -> Outcome | list[str]:
        self.calls.append(("setting", text))
        return ["typing: on"] if not text else Done(f"set {text}")

    # --- IChat: queries ---------------------------------------------------------------------

    def addressee(self, shown: str) -> tuple[str, str] | Refused:
        peer = self._linked(shown)
        if peer is not None:
            if not peer.ours:
                return Refused(f"{peer.nick} is a base peer: it can't receive private "
                               f"messages")
            return peer.peer_id, peer.nick
        for peer_id, nick in self.away.items():
            if shown in (nick, peer_id):
                return peer_id, nick
        return no_peer_called(shown)

    def my_rooms(self) -> list[str]:
        return list(self.rooms)

    def members(self, room: str) -> frozenset[str]:
        return frozenset(p.peer_id for p in self.peers if room in p.rooms)

    def rooms_of(self, peer_id: str) -> frozenset[str]:
        for peer in self.peers:
            if peer.peer_id == peer_id:
                return frozenset(peer.rooms)
        return frozenset({DEFAULT_ROOM})

    def room_list(self) -> list[tuple[str, list[str]]]:
        names = self.rooms + sorted({r for p in self.peers for r in p.rooms} - set(self.rooms))
        return [(name, ([self.nick] if name in self.rooms else [])
                 + sorted(p.nick for p in self.peers if name in p.rooms)) for name in names]

    def users(self) -> list[PeerView]:
        return list(self.peers)

    def away_of(self, peer_id: str) -> str:
        if peer_id == self._peer_id:
            return self.away_text
        for peer in self.peers:
            if peer.peer_id == peer_id:
                return peer.away
        return ""

    def shown_nick(self, peer_id: str) -> str:
        peer = self._linked(peer_id)
        if peer is not None:
            return peer.nick
        return self.away.get(peer_id, peer_id)

    def whois(self, shown: str) -> list[str] | Refused:
        self.calls.append(("whois", shown))
        peer = self._linked(shown)
        if peer is None:
            return no_linked_peer(shown)
        return [f"{peer.nick} (peer id {peer.peer_id}) at {peer.address}"]

    def ignored(self) -> list[str]:
        if not self.ignores:
            return ["nobody is ignored"]
        return [f"ignored: {len(self.ignores)}"] + [f"  {n}" for n in self.ignores.values()]

    def history(self, room: str, count: int = 50) -> list[StoredLine]:
        return [line for line in self.lines if line.room == room][-count:]

    def around(self, room: str, when: float, count: int) -> list[StoredLine]:
        """Over ``lines``, as the in-memory history reads them."""
        self.calls.append(("around", room, when, count))
        mine = [line for line in self.lines if line.room == room]
        return ([line for line in mine if line.when < when][-count:] if count > 0 else []) + [
            line for line in mine if line.when >= when][:count + 1]

    def search(self, text: str) -> Deferred[list[SearchHit] | Refused]:
        """Over ``lines``, as the in-memory history searches (``indexing``: what
        search_indexing answers)."""
        self.calls.append(("search", text))
        parsed = parse_query(text)
        if isinstance(parsed, str):
            return succeed(Refused(parsed))
        query = replace(parsed, rooms=(parsed.room.lstrip("#"),) if parsed.room else ())
        return succeed(list(search_lines(self.lines, query)))

    def search_indexing(self) -> int | None:
        return self.indexing


class FakeFiles:
    """IFiles for the faces' tests: ``rows`` is what /files lists; each verb is recorded in
    ``calls`` (shared with the FakeChat) and answers ``answer`` (Done by default)."""

    def __init__(self, calls: list[tuple]) -> None:
        self.calls = calls
        self.rows: list[TransferView] = []
        self.answer: Outcome = Done("ok")

    def send(self, target: str, path: str) -> Deferred[Outcome]:
        self.calls.append(("send", target, path))
        return succeed(self.answer)

    def transfers(self) -> list[TransferView]:
        return list(self.rows)

    def accept(self, number: int | None) -> Outcome:
        self.calls.append(("accept", number))
        return self.answer

    def reject(self, number: int | None) -> Outcome:
        self.calls.append(("reject", number))
        return self.answer

    def cancel(self, number: int) -> Outcome:
        self.calls.append(("cancel", number))
        return self.answer


#: mypy: FakeChat is an IChat (tests/test_types.py runs mypy over p2pchat/; ``python -m mypy
#: tests/fakechat.py`` checks this file).
_check: IChat = FakeChat()
