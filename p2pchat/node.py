"""The node: the one object that owns who we are, the peer table, the links and the room.

Faces call its verbs (``say``, ``act``, ``set_nick``, ``users``) and observe its events; the
Twisted edges (discovery, mesh) feed it beacons, links and messages.  It knows nothing of sockets
or screens, and takes its time from an injected clock, so tests drive it with ``task.Clock``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from p2pchat import events
from p2pchat.peers import Heard, Liveness, PeerInfo, PeerTable, should_dial
from p2pchat.room import Room
from p2pchat.wire import (
    CAP_OURS,
    CHAT,
    DEFAULT_ROOM,
    HEARTBEAT,
    JOIN,
    LEAVE,
    Beacon,
    Message,
    is_fresh,
    new_message_id,
    new_peer_id,
    nick_problem,
    printable,
)

log = Logger()

#: How often (seconds) we send a heartbeat on every link.
HEARTBEAT_INTERVAL = 30.0
#: A link to one of our peers (which heartbeat) silent this long is dropped as dead.  Base
#: peers send no heartbeats: theirs are watched by TCP keepalive and their beacons instead.
IDLE_TIMEOUT = 90.0
#: Most links at once (handshaken), whatever the peer table says.
MAX_LINKS = 256

CAPS: tuple[str, ...] = (CAP_OURS,)


class Link(Protocol):
    """A handshaken connection to one peer, as the node sees it (mesh.PeerProtocol)."""

    peer_id: str
    username: str
    caps: tuple[str, ...]
    dialer_id: str  # the peer id of the side that dialed
    address: str
    last_heard: float
    said_leave: bool

    def send(self, msg: Message) -> None: ...

    def close(self, why: str) -> None: ...


class Dialer(Protocol):
    """Something that dials peers and redials with backoff (mesh.Dialer)."""

    def want(self, peer: PeerInfo) -> None: ...

    def drop(self, peer_id: str) -> None: ...

    def connected(self, peer_id: str) -> None: ...


class Announcer(Protocol):
    """Something that sends beacons (discovery.BeaconProtocol)."""

    def announce(self) -> None: ...

    def reply_soon(self) -> None: ...


@dataclass(frozen=True)
class PeerView:
    """One row of /users and of the console's peer list."""

    nick: str
    peer_id: str
    state: str  # "connected", "connecting", "stale"
    address: str
    ours: bool  # speaks our extensions (else: a base peer)


Observer = Callable[[events.Event], None]


class Node:
    """The hub between the edges and the faces."""

    def __init__(self, nick: str, clock: IReactorTime, peer_id: str | None = None) -> None:
        problem = nick_problem(nick)
        if problem:
            raise ValueError(problem)
        self.nick = nick
        self.peer_id = peer_id or new_peer_id(nick)
        self.clock = clock
        self.peers = PeerTable()
        self.room = Room(DEFAULT_ROOM)
        self.links: dict[str, Link] = {}
        self.port = 0  # our TCP port, set by the service once it listens
        self.dialer: Dialer | None = None
        self.announcer: Announcer | None = None
        self._sequence = 0
        self._observers: list[Observer] = []
        self._full_warned = False
        #: set once we say goodbye: from then on nothing is dialed
        self.leaving = False

    # --- observers ------------------------------------------------------------------------

    def subscribe(self, observer: Observer) -> None:
        self._observers.append(observer)

    def unsubscribe(self, observer: Observer) -> None:
        if observer in self._observers:
            self._observers.remove(observer)

    def _emit(self, event: events.Event) -> None:
        for observer in list(self._observers):
            try:
                observer(event)
            except Exception:
                log.failure("observer {observer!r} failed on {event!r}",
                            observer=observer, event=event)

    def _notice(self, text: str, error: bool = False) -> None:
        self._emit(events.Notice(self.clock.seconds(), text, error))

    # --- what we send -----------------------------------------------------------------------

    def _message(self, kind: str, content: str, sequenced: bool = True,
                 metadata: dict | None = None) -> Message:
        if sequenced:
            self._sequence += 1
        return Message(
            id=new_message_id(),
            type=kind,
            sender_id=self.peer_id,
            username=self.nick,
            content=content,
            timestamp=self.clock.seconds(),
            sequence=self._sequence if sequenced else 0,
            room_id=DEFAULT_ROOM,
            metadata=metadata,
            caps=CAPS if kind == JOIN else (),
        )

    def handshake(self) -> Message:
        """The first line a dialer writes: a join from us (sequence 0, as the reference)."""
        return self._message(JOIN, f"{self.nick} joined the chat", sequenced=False)

    def beacon(self, kind: str) -> Beacon:
        return Beacon(
            type=kind,
            peer_id=self.peer_id,
            username=self.nick,
            port=self.port,
            timestamp=self.clock.seconds(),
            address=f"0.0.0.0:{self.port}",
            caps=CAPS,
        )

    def _broadcast(self, msg: Message) -> int:
        for link in list(self.links.values()):
            link.send(msg)
        return len(self.links)

    # --- verbs for the faces ----------------------------------------------------------------

    def say(self, text: str) -> Message:
        """Say a line to the room."""
        return self._say(text, action=False)

    def act(self, action: str) -> Message:
        """Say an action (/me).  The content reads "* nick waves" so a base peer, which shows
        content as it is, shows something sensible; ours read ``metadata.action``."""
        return self._say(action, action=True)

    def _say(self, text: str, action: bool) -> Message:
        if action:
            msg = self._message(CHAT, f"* {self.nick} {text}", metadata={"action": text})
        else:
            msg = self._message(CHAT, text)
        self.room.accept(msg)
        self.room.record(msg)
        count = self._broadcast(msg)
        self._emit(events.ChatLine(msg.timestamp or 0.0, self.nick, text, self.peer_id, msg.id,
                                   own=True, action=action, sent_to=count))
        if count == 0:
            self._notice("no peer is connected: nobody heard that", error=True)
        return msg

    def set_nick(self, nick: str) -> str | None:
        """Change our nick; returns why not, or None when done."""
        problem = nick_problem(nick)
        if problem:
            return problem
        if nick == self.nick:
            return f"you are already {nick}"
        old, self.nick = self.nick, nick
        # The reference announces a new name as a join whose username is the new name.
        self._broadcast(self._message(JOIN, f"{old} changed their name to {nick}"))
        if self.announcer is not None:
            self.announcer.announce()
        self._emit(events.NickChanged(self.clock.seconds(), old, nick, self.peer_id, own=True))
        return None

    def users(self) -> list[PeerView]:
        """Everyone we know of: linked peers first, then those we only heard announce."""
        now = self.clock.seconds()
        rows = []
        for pid, link in self.links.items():
            info = self.peers.get(pid)
            # Show where it listens (from its beacons), not the port it happened to dial from.
            address = f"{info.host}:{info.port}" if info is not None else link.address
            rows.append(PeerView(printable(link.username or pid), pid, "connected", address,
                                 CAP_OURS in link.caps))
        for info in self.peers:
            if info.peer_id in self.links:
                continue
            state = "stale" if info.liveness(now) is not Liveness.ALIVE else "connecting"
            rows.append(PeerView(printable(info.username or info.peer_id), info.peer_id, state,
                                 f"{info.host}:{info.port}", CAP_OURS in info.caps))
        return sorted(rows, key=lambda r: (r.state != "connected", r.nick.lower()))

    def say_goodbye(self) -> list[Link]:
        """Tell every linked peer we leave; returns the links, for the caller to close."""
        self.leaving = True
        msg = self._message(LEAVE, f"{self.nick} left the chat")
        links = list(self.links.values())
        for link in links:
            link.send(msg)
        return links

    # --- from discovery ---------------------------------------------------------------------

    def beacon_heard(self, beacon: Beacon, host: str) -> None:
        if beacon.peer_id == self.peer_id:
            return
        now = self.clock.seconds()
        if not is_fresh(beacon, now):
            log.debug("old beacon from {host} ({peer}) ignored", host=host, peer=beacon.peer_id)
            return
        if beacon.type == LEAVE:
            self._beacon_leave(beacon, host)
            return
        heard = self.peers.heard(beacon, host, now)
        if heard is Heard.FULL:
            if not self._full_warned:
                log.warn("peer table full ({n} peers): new peers ignored", n=len(self.peers))
                self._full_warned = True
            return
        if heard is Heard.IGNORED:
            return
        if heard is Heard.NEW:
            log.info("discovered {peer} at {host}:{port}", peer=beacon.peer_id, host=host,
                     port=beacon.port)
            if self.announcer is not None:
                self.announcer.reply_soon()  # so the newcomer learns of us at once
            self._emit(events.PeersChanged(now))
        info = self.peers.get(beacon.peer_id)
        if info is not None and beacon.peer_id not in self.links:
            self._maybe_dial(info)

    def _beacon_leave(self, beacon: Beacon, host: str) -> None:
        link = self.links.get(beacon.peer_id)
        if link is not None and not link.said_leave:
            # A datagram anyone could forge against a live connection: trust the connection.
            log.info("leave datagram for {peer} from {host} ignored: its link is up",
                     peer=beacon.peer_id, host=host)
            return
        if self.peers.left(beacon.peer_id) is not None:
            if self.dialer is not None:
                self.dialer.drop(beacon.peer_id)
            self._emit(events.PeersChanged(self.clock.seconds()))

    def _maybe_dial(self, info: PeerInfo) -> None:
        if (self.dialer is not None and not self.leaving
                and should_dial(self.peer_id, info.peer_id)):
            self.dialer.want(info)

    def sweep(self) -> None:
        """Forget peers silent too long; drop links that died quietly.  Called every second."""
        now = self.clock.seconds()
        gone = self.peers.sweep(now)
        for info in gone:
            log.info("{peer} not heard for a while: forgotten", peer=info.peer_id)
            if self.dialer is not None:
                self.dialer.drop(info.peer_id)
            link = self.links.get(info.peer_id)
            if link is not None and CAP_OURS not in link.caps:
                link.close("its beacons stopped")
        for link in list(self.links.values()):
            if CAP_OURS in link.caps and now - link.last_heard > IDLE_TIMEOUT:
                link.close(f"silent for {IDLE_TIMEOUT:.0f} s")
        if gone:
            self._emit(events.PeersChanged(now))

    def heartbeat(self) -> None:
        """Keep links alive (the reference drops a link silent for 2 minutes)."""
        if self.links:
            self._broadcast(self._message(HEARTBEAT, "", sequenced=False))

    # --- from the mesh ----------------------------------------------------------------------

    def link_ready(self, link: Link) -> bool:
        """A connection finished its handshake.  Returns False if it was refused (and closed)."""
        if link.peer_id == self.peer_id:
            link.close("it claims to be us")
            return False
        existing = self.links.get(link.peer_id)
        if existing is not None:
            keep_new = self._prefer(link, existing)
            loser = existing if keep_new else link
            if not keep_new:
                loser.close("a link to that peer is already up")
                return False
            del self.links[existing.peer_id]
            existing.close("replaced by a newer link")
        elif len(self.links) >= MAX_LINKS:
            link.close(f"already {MAX_LINKS} links")
            return False
        self.links[link.peer_id] = link
        if self.dialer is not None:
            self.dialer.connected(link.peer_id)
        if existing is None:
            log.info("linked with {peer} at {address}", peer=link.peer_id, address=link.address)
            self._emit(events.PeerJoined(self.clock.seconds(), printable(link.username),
                                         link.peer_id, link.address))
        self._emit(events.PeersChanged(self.clock.seconds()))
        return True

    def _prefer(self, new: Link, old: Link) -> bool:
        """Two links to one peer: both sides must keep the same one.  Links dialed by the same
        side: the newer wins (the dialer saw the old one die).  Else the rule-abiding one
        (dialed by the smaller id) wins."""
        if new.dialer_id == old.dialer_id:
            return True
        rightful = min(self.peer_id, new.peer_id, key=lambda s: s.encode("utf-8"))
        return new.dialer_id == rightful

    def link_lost(self, link: Link, why: str) -> None:
        if self.links.get(link.peer_id) is not link:
            return  # a refused or replaced link
        del self.links[link.peer_id]
        now = self.clock.seconds()
        if link.said_leave:
            # It said goodbye: don't redial it, nor list it until it announces again.
            self.peers.left(link.peer_id)
            if self.dialer is not None:
                self.dialer.drop(link.peer_id)
        else:
            log.info("link with {peer} lost: {why}", peer=link.peer_id, why=why)
            self._emit(events.PeerLeft(now, printable(link.username), link.peer_id,
                                       "connection lost"))
            info = self.peers.get(link.peer_id)
            if info is not None:
                self._maybe_dial(info)
        self._emit(events.PeersChanged(now))

    def message_received(self, link: Link, msg: Message) -> None:
        """A parsed line from a handshaken link."""
        if msg.sender_id != link.peer_id:
            log.warn("{peer} sent a line as {other}: refused, link closed",
                     peer=link.peer_id, other=msg.sender_id)
            link.close("it spoke for another peer")
            return
        if msg.type == HEARTBEAT:
            return
        if not self.room.accept(msg):
            return  # a duplicate
        if msg.room_id != DEFAULT_ROOM:
            log.debug("line for room {room} ignored", room=msg.room_id)
            return
        now = self.clock.seconds()
        if msg.type == JOIN:
            if msg.username and msg.username != link.username:
                old, link.username = link.username, msg.username
                self._emit(events.NickChanged(now, printable(old), printable(msg.username),
                                              link.peer_id))
                self._emit(events.PeersChanged(now))
        elif msg.type == LEAVE:
            if not link.said_leave:
                link.said_leave = True
                self._emit(events.PeerLeft(now, printable(link.username), link.peer_id))
                self._emit(events.PeersChanged(now))
        elif msg.type == CHAT:
            self.room.record(msg)
            when = min(msg.timestamp, now) if msg.timestamp else now
            action = _action_text(msg)
            nick = printable(msg.username or link.username)
            self._emit(events.ChatLine(when, nick, printable(action or msg.content),
                                       msg.sender_id, msg.id, action=action is not None))
        else:
            log.debug("{peer} sent a {kind} line: not known here, ignored",
                      peer=link.peer_id, kind=msg.type)


def _action_text(msg: Message) -> str | None:
    action = (msg.metadata or {}).get("action")
    return action if isinstance(action, str) and action else None
