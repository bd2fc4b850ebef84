"""The node: who we are, and the hub between the edges and the faces.

It owns the state (the peer table, the linked peers as ``PeerSession``s, the room, the rooms,
the history) and routes: the Twisted edges (discovery, mesh) call it through ``IBeaconSink``
and ``IMeshSink`` (a connection is only a ``Wire`` to it), the faces through ``IChat``, and it
emits events to its observers.  The work is done by its parts, each in its own module:

- chat.py: the faces' verbs and queries;
- sending.py (with outbox.py, pure): our messages and how they go out to the links;
- hearing.py: the others' lines, shown and kept (history.py: on disk or in memory);
- syncing.py: catching a peer up at link-up, acks, handing on absent authors' lines;
- presence.py (with linkwatch.py and slots.py, pure): beacons, dialing, link slots,
  sweeping, probes, flapping links;
- keys.py: the key checks at link-up and rename.

Log lines that the network can repeat at will (one per packet or line) are rate-limited
(clocks.log_limited, ratelog.py).

It knows nothing of sockets or screens, and takes its time from an injected clock, so tests
drive it with ``task.Clock``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol

from twisted.logger import Logger, LogLevel

from p2pchat import events
from p2pchat.absent import RecentPeers
from p2pchat.activity import Activity
from p2pchat.catchup import LOG_AGE, LOG_LINES
from p2pchat.chat import HISTORY_SHOWN, Chat  # noqa: F401 (HISTORY_SHOWN: its old home)
from p2pchat.files.terms import CAP_FILES, CAP_FILES_BLAKE3, FILE
from p2pchat.files.later import FilesLater
from p2pchat.forwarding import Forwarder
from p2pchat.front import ChatFront
from p2pchat.gossip import CAP_GOSSIP
from p2pchat.clocks import Clock, log_limited
from p2pchat.hearing import Hearing
from p2pchat.history import History, MemoryHistory
from p2pchat.identity import Identity
from p2pchat.ignore import Ignores
from p2pchat.keys import KeyCheck
from p2pchat.interfaces import (
    IBeaconSink,
    IChat,
    IMeshSink,
    IReach,
    NoReach,
    PeerView,  # noqa: F401 (tests take it from here)
    Wire,
)
from p2pchat.neighbours import Neighbours
from p2pchat.linkwatch import (  # noqa: F401 (the limits are re-exported: tests use them)
    FLAP_WINDOW,
    FLAPS_TOLD,
    IDLE_TIMEOUT,
    PROBE_TIMEOUT,
    LinkWatch,
    keep_newer,
)
from p2pchat.outbox import LONELY_GRACE, Outbox  # noqa: F401 (re-exported)
from p2pchat.peers import PeerInfo, PeerTable
from p2pchat.presence import Presence
from p2pchat.reading import Reading
from p2pchat.relay import CAP_RELAY, MEMBER, RELAY
from p2pchat.runsig import CAP_RUNSIG
from p2pchat.room import Room
from p2pchat.rooms import Rooms
from p2pchat.sealterms import CAP_SEALED, SEALED
from p2pchat.firstuse import CatchUpLater, SealingLater
from p2pchat.seen import SeenSet
from p2pchat.sending import Sender
from p2pchat.session import PeerSession
from p2pchat.slots import Standing, VerifyBudget
from p2pchat.store import Store, StoredLine
from p2pchat.trust import Trust
from p2pchat.wire import (
    ACK,
    Beacon,
    AWAY,
    CAP_AWAY,
    CAP_CATCHUP,
    CAP_OURS,
    CAP_ROOMS,
    CAP_TLS,
    CAP_TYPING,
    CHAT,
    DEFAULT_ROOM,
    HEARTBEAT,
    JOIN,
    LEAVE,
    Message,
    PRIVATE,
    ROOMS,
    SYNC,
    TYPING,
    new_peer_id,
    nick_problem,
    printable,
)

if TYPE_CHECKING:
    from p2pchat.syncing import CatchUp

log = Logger()

#: How often (seconds) we send a heartbeat on every link.
HEARTBEAT_INTERVAL = 30.0
#: Most links at once (handshaken), whatever the peer table says.
MAX_LINKS = 256

#: What every peer of ours announces; with an identity, CAP_TLS too.
CAPS: tuple[str, ...] = (CAP_OURS, CAP_CATCHUP, CAP_ROOMS, CAP_TYPING, CAP_AWAY)


class Dialer(Protocol):
    """Something that dials peers and redials with backoff (dial.Dialer)."""

    def want(self, peer: PeerInfo) -> None: ...

    def drop(self, peer_id: str) -> None: ...

    def connected(self, peer_id: str) -> None: ...

    def link_ended(self, peer_id: str, lived: float) -> None: ...

    def dialing(self) -> int: ...

    def in_flight(self, peer_id: str) -> bool: ...


class Announcer(Protocol):
    """Something that sends beacons (discovery.BeaconProtocol)."""

    def announce(self) -> None: ...

    def reply_soon(self) -> None: ...


Observer = Callable[[events.Event], None]


class Node(ChatFront):
    """The hub between the edges and the faces."""

    def __init__(self, nick: str, clock: Clock, peer_id: str | None = None,
                 log_lines: int = LOG_LINES, log_age: float = LOG_AGE,
                 identity: Identity | None = None, trust: Trust | None = None,
                 store: Store | None = None) -> None:
        problem = nick_problem(nick)
        if problem:
            raise ValueError(problem)
        self.nick = nick
        self.identity = identity
        self.trust = trust or Trust()
        self.trust.be(nick, identity.fingerprint if identity else "")
        #: peers whose lines are not shown (/ignore); the service gives it its file
        self.ignores = Ignores(None)
        self.peer_id = peer_id or (identity.peer_id if identity else new_peer_id(nick))
        self.caps = CAPS + ((CAP_TLS, CAP_RELAY, CAP_SEALED, CAP_FILES, CAP_GOSSIP,
                             CAP_FILES_BLAKE3, CAP_RUNSIG) if identity else ())
        self.clock = clock
        self.peers = PeerTable()
        #: how well each peer is known: who gets table places and link slots (slots.py)
        self.standing = Standing(self.trust.pins.get, lambda pid: pid in self.links)
        self.peers.rank = self.standing.of
        #: how many beacon signatures each host may have us check (slots.py)
        self.verify_budget = VerifyBudget()
        self.room = Room()
        #: the linked peers, by peer id
        self.links: dict[str, PeerSession] = {}
        #: every connection that came up, to its session, until it is lost (a replaced one
        #: too: what it still says is taken, as before it was replaced)
        self._sessions: dict[Wire, PeerSession] = {}
        self.port = 0  # our TCP port, set by the service once it listens
        self.dialer: Dialer | None = None
        self.announcer: Announcer | None = None
        # Sequence numbers start at the time in microseconds: a peer id is stable across
        # restarts, and this keeps a new run's numbers above the last run's.
        self.run_start = int(clock.seconds() * 1_000_000)
        self._observers: list[Observer] = []
        #: our sequenced lines: numbers, the sent log, delivery marks (outbox.py)
        self.outbox = Outbox(self.run_start, log_lines, log_age)
        self.delivery = self.outbox.delivery
        #: what was said: on disk with a data dir (store.Store), else in memory
        self.store: History = store if store is not None else MemoryHistory()
        self.rooms = Rooms(self.store.rooms())
        self._load(self.store)
        #: catch-up peers whose link dropped without a goodbye (still in the room), and nicks
        self.away: dict[str, str] = {}
        #: set once we say goodbye: from then on nothing is dialed
        self.leaving = False
        #: flapping links, short links, probes, liveness (linkwatch.py)
        self.watch = LinkWatch()
        #: the last nick a base peer gave in a line (its beacons keep its first nick)
        self.line_names: dict[str, str] = {}
        #: peers of ours linked in this run: private lines to them are kept while they are
        #: away (absent.py)
        self.recent = RecentPeers()
        #: the verbs and queries of the faces (chat.py)
        self.chat = Chat(self)
        #: catching peers up, handing on absent authors' lines (syncing.py, made at the first
        #: link: firstuse.py)
        self.catchup: CatchUp | CatchUpLater = CatchUpLater(self)
        #: the keys we believe (keys.py)
        self.keys = KeyCheck(self)
        #: taking in, showing and keeping what the others say (hearing.py)
        self.hearing = Hearing(self)
        #: the room lines of a read, taken together (reading.py)
        self.reading = Reading(self)
        #: making our messages and writing them to the links (sending.py)
        self.sender = Sender(self)
        #: beacons, the peer table, dialing, sweeping and probes (presence.py)
        self.presence = Presence(self)
        #: typing and away, ours and the peers' (activity.py)
        self.activity = Activity(self)
        #: private lines sealed for absent peers, and those we carry (sealing.py, made at the
        #: first link: firstuse.py)
        self.sealing = SealingLater(self)
        #: static peers and Tor contacts (keeper.py; the service gives the real one)
        self.reach: IReach = NoReach()
        #: file offers and transfers (files/transfers.py, made at first use: files/later.py);
        #: the service configures it
        self.files = FilesLater(self)
        #: lines forwarded through a partial mesh, peers reached through others (forwarding.py)
        self.forwarder = Forwarder(self)
        #: whom we keep links to in a large room (--links; neighbours.py)
        self.neighbours = Neighbours(self)

    # --- observers ------------------------------------------------------------------------

    def subscribe(self, observer: Observer) -> None:
        self._observers.append(observer)

    def unsubscribe(self, observer: Observer) -> None:
        if observer in self._observers:
            self._observers.remove(observer)

    def emit(self, event: events.Event) -> None:
        for observer in list(self._observers):
            try:
                observer(event)
            except Exception:
                log.failure("observer {observer!r} failed on {event!r}",
                            observer=observer, event=event)

    _emit = emit  # its old name (face tests emit through it)

    def notice(self, text: str, error: bool = False) -> None:
        """A notice for every face (also from outside the node: the service's start-up
        warnings)."""
        self.emit(events.Notice(self.clock.seconds(), text, error))

    # --- what we send -----------------------------------------------------------------------

    def _load(self, store: History) -> None:
        """After a restart: how far we have each sender (so peers resend what we missed), the
        ids already shown (so nothing is shown twice), our own lines to resend."""
        now = self.clock.seconds()
        store.on_trouble = self._store_trouble
        self.room.seqs = SeenSet(backing=store)
        self.room.high_water.update(store.high_water())
        for message_id in store.recent_ids(self.room.seen_limit):
            self.room.mark_seen(message_id)
        sent = self.outbox.log
        self.outbox.reload(store.last_sequence(),
                           store.load_sent(sent.max_lines, sent.max_age, now), now)
        self.run_start = self.outbox.sequence

    def _store_trouble(self, why: str | None) -> None:
        """Saving history failed (a full disk), or works again: told once each."""
        if why is None:
            self.notice("history: saving lines again")
        else:
            self.notice(f"history: not saving lines: {why} (see the log)", error=True)

    def link_writable(self, wire: Wire) -> None:
        """The peer reads again: write what piled up for it."""
        link = self._sessions.get(wire)
        if link is not None and self.links.get(link.peer_id) is link:
            self.sender.pump(link)
            self.catchup.pump_relay(link)
            self.sealing.pump(link)
            self.forwarder.pump(link)

    # --- our own lines and rooms ------------------------------------------------------------

    def rooms_changed(self) -> None:
        self.store.set_rooms(self.rooms.joined)
        self.forwarder.changed()
        msg = self.rooms_message()
        for link in list(self.links.values()):
            if link.rooms:
                link.send(msg)
        self.emit(events.PeersChanged(self.clock.seconds()))

    def rooms_message(self) -> Message:
        return self.sender.message(ROOMS, "", metadata={"rooms": self.rooms.joined[1:]})

    def say_goodbye(self) -> list[Wire]:
        """Tell every linked peer we leave; returns their connections, for the caller to
        close."""
        self.leaving = True
        self.presence.stop()
        self.catchup.stop()
        self.forwarder.goodbye()
        self.sender.broadcast(self.sender.message(LEAVE, f"{self.nick} left the chat"))
        self.store.flush()
        return [link.wire for link in self.links.values()]

    # --- from discovery (presence.py does it) -----------------------------------------------

    def beacon(self, kind: str) -> Beacon:
        return self.presence.beacon(kind)

    def beacon_heard(self, beacon: Beacon, host: str, together: bool = False) -> None:
        """``together``: read from the socket with the others of this turn (presence.py)."""
        self.presence.heard(beacon, host, together)

    def sweep(self) -> None:
        """Forget peers silent too long; drop links that died quietly.  Called every second."""
        self.presence.sweep()
        self.forwarder.tick()
        self.neighbours.tick()
        self.forwarder.flush_soon()

    def heartbeat(self) -> None:
        """Keep links alive (the reference drops a link silent for 2 minutes)."""
        if self.links:
            self.sender.broadcast(self.sender.message(HEARTBEAT, "", sequenced=False))

    # --- from the mesh ----------------------------------------------------------------------

    def handshake(self) -> Message:
        """The first line a dialer writes: a join from us (sequence 0, as the reference)."""
        return self.sender.handshake()

    def starttls(self) -> Message:
        """The listener's answer to a join offering TLS (our fingerprint in ``fp``)."""
        return self.sender.starttls()

    def link_ready(self, wire: Wire) -> bool:
        """A connection finished its handshake.  Returns False if it was refused (and closed)."""
        if wire.peer_id == self.peer_id:
            wire.close("it claims to be us")
            return False
        if self.leaving:
            wire.close("we are leaving")
            return False
        # Every peer of ours has a key: a plain link is a base peer (or claims to be one of
        # ours without proving it), so it gets none of our extensions (session.py).
        link = PeerSession(wire, self.clock.seconds(), keyed=self.identity is not None)
        refusal = self.keys.refusal(link)
        if refusal:
            self.presence.refuse(link, refusal)
            self.notice(f"refused {printable(link.username or link.peer_id)} "
                         f"({link.address}): {refusal}", error=True)
            if link.dialer_id == self.peer_id and self.dialer is not None:
                self.dialer.drop(link.peer_id)  # we'd refuse it again: don't redial it
            return False
        existing = self.links.get(link.peer_id)
        known = self.standing.known(link.peer_id, link.username, link.fp)
        full = False
        if existing is not None:
            if not keep_newer(self.peer_id, link.peer_id, link.dialer_id, existing.dialer_id):
                link.close("a link to that peer is already up")
                return False
            del self.links[existing.peer_id]
            self.standing.known_links.discard(existing.peer_id)
            existing.close("replaced by a newer link")
        else:
            refusal = self.presence.slot_refusal(link.peer_id, link.username, link.fp)
            if refusal:
                self.presence.refuse(link, refusal)
                return False
            full = len(self.links) >= MAX_LINKS
        if known:
            self.standing.known_links.add(link.peer_id)
        self.links[link.peer_id] = link
        self._sessions[wire] = link
        if full:
            self.presence.make_slot(link)  # after: the stranger that goes finds no free slot
        self.chat.linked(link.peer_id)
        if link.rooms and link.catchup:
            self.recent.seen(link.peer_id, self.nick_of(link))
        if self.dialer is not None:
            self.dialer.connected(link.peer_id)
        if not link.ours:
            link.username = self.line_names.get(link.peer_id, link.username)
        shown = self.forwarder.was_shown(link.peer_id)  # reached through others until now
        self.forwarder.linked(link)
        self.catchup.start(link)
        self.activity.linked(link)
        self.sealing.linked(link)
        self.files.linked(link)
        if existing is None:
            log_limited(self.clock, log, "linked", LogLevel.info,
                        "linked with {peer} at {address} ({how})",
                        burst=50, peer=link.peer_id, address=link.address,
                        how=link.tls or "plain")
            if not link.ours:
                # A base peer takes a dialer's first line as identification only, and shows
                # nobody joining until a join comes after it (as its own dialer sends).
                link.send(self.sender.message(JOIN, f"{self.nick} joined the chat"))
            if not self.watch.linked(link.peer_id) and not shown:
                self.emit(events.PeerJoined(self.clock.seconds(), self.nick_of(link),
                                             link.peer_id, link.address))
            pinned = self.trust.pins.get(link.username) if link.fp else None
            self.keys.check(link)
            if pinned is None and link.fp and self.trust.pins.get(link.username) == link.fp:
                self.standing.pinned_now(link.fp)  # on first use: not known until it lasts
        info = self.peers.get(link.peer_id)
        if info is not None and info.fp:
            # its beacons moved while we dialed where a replay said it was
            self.presence.moved_while_linked(link.peer_id, info.host)
        self.emit(events.PeersChanged(self.clock.seconds()))
        return True

    def link_offered(self, peer_id: str, nick: str, fp: str) -> str | None:
        """A dialer's join came (before TLS): why we would refuse it, or None (presence.py)."""
        return self.presence.link_offered(peer_id, nick, fp)

    @property
    def max_links(self) -> int:
        """``MAX_LINKS``, read when asked (tests lower it)."""
        return MAX_LINKS

    def nick_of(self, link: PeerSession) -> str:
        """How a peer is shown: its nick, or ``nick?`` when its key is not the pinned one."""
        return self.trust.display(link.username or link.peer_id, link.fp)

    def link_lost(self, wire: Wire, why: str) -> None:
        link = self._sessions.pop(wire, None)
        if link is None or self.links.get(link.peer_id) is not link:
            return  # a refused or replaced link
        del self.links[link.peer_id]
        self.activity.lost(link.peer_id)
        self.forwarder.lost(link)
        if link.rooms and link.catchup:
            self.recent.seen(link.peer_id, self.nick_of(link))  # as last shown
        self.standing.known_links.discard(link.peer_id)
        now = self.clock.seconds()
        lived = now - link.linked_at
        self.standing.link_lasted(link.peer_id, link.fp, lived)
        if self.dialer is not None:
            self.dialer.link_ended(link.peer_id, lived)
        if link.said_leave:
            # It said goodbye: don't redial it, nor list it until it announces again.
            self.peers.left(link.peer_id)
            if self.dialer is not None:
                self.dialer.drop(link.peer_id)
            self.left_room(link.peer_id)
        elif self.neighbours.pruned(link, why) and self.forwarder.relayed_now(link.peer_id):
            pass  # a link no end wants any more: its peer is reached through others
        elif not self.leaving:
            if link.catchup:
                self.away[link.peer_id] = self.nick_of(link)
            log_limited(self.clock, log, "link lost", LogLevel.info,
                        "link with {peer} lost after {t:.1f} s: {why}", burst=50,
                        peer=link.peer_id, t=lived, why=why)
            lost = self.watch.lost(link.peer_id, self.nick_of(link), lived, now,
                                   base=not link.ours)
            if lost.show_leave:
                self.emit(events.PeerLeft(now, self.nick_of(link), link.peer_id,
                                           "connection lost"))
            if lost.tell_flaps:
                self.notice(f"{self.nick_of(link)} closes every connection right after it "
                             "opens (a base peer that lost track of us does so until it "
                             "restarts); redialing it ever more slowly", error=True)
            info = self.peers.get(link.peer_id)
            if info is not None:
                self.presence.maybe_dial(info)
            elif not self.reach.keeps(link.peer_id):
                # Not announced (any more) nor kept (keeper.py): nothing will bring it
                # back, so nothing waits.
                self.left_room(link.peer_id)
                if self.dialer is not None:
                    self.dialer.drop(link.peer_id)
        self.emit(events.PeersChanged(now))

    def chat_lines(self, wire: Wire, run: list[tuple[Message, bytes]]) -> None:
        """The room lines of one read from a handshaken link, each with its bytes, in order
        (mesh.py): taken together (reading.py)."""
        link = self._sessions.get(wire)
        if link is not None:
            self.reading.chat_lines(link, run)

    def message_received(self, wire: Wire, msg: Message, raw: bytes = b"") -> None:
        """A parsed line from a handshaken link (``raw``: the line as received)."""
        link = self._sessions.get(wire)
        if link is None:
            return  # not linked (refused), or lost already
        if msg.sender_id != link.peer_id:
            self.hearing.not_its_own(link, msg)
            return
        kind = msg.type
        if kind == CHAT:  # most lines: checked first, as one of a run (reading.py)
            self.reading.chat_lines(link, [(msg, raw)])
            return
        if kind == PRIVATE:
            if self.leaving:
                # Our face is gone: a line taken now would be kept and acked but never shown.
                # Not taking it, its author resends it when we are back (catch-up).
                return
            if not self.room.accept(msg):
                return  # a duplicate
            if msg.sequence and link.catchup:
                self.catchup.schedule_ack(link)
                self.store.set_high_water(link.peer_id, self.room.high_water[link.peer_id])
            self.hearing.private_line(link, msg, self.clock.seconds())
            return
        if kind == HEARTBEAT:
            self.presence.heartbeat_line(link, msg)
            return
        if kind in (SYNC, ACK):
            self.catchup.line(link, msg)
            return
        if kind == ROOMS:
            self.hearing.peer_rooms(link, msg)
            return
        if kind == RELAY:
            self.catchup.relayed(link, msg)
            return
        if kind == MEMBER:
            if link.gossip and not self.leaving:
                self.forwarder.member(msg, link.fp, link, raw, link.pk, 0)
            return
        if kind == TYPING:
            self.activity.heard_typing(link, msg)
            return
        if kind == SEALED:
            self.sealing.line(link, msg)
            return
        if kind == AWAY:
            self.activity.heard_away(link, msg)
            return
        if kind == FILE:
            self.files.line(link, msg)
            return
        self.hearing.peer_line(link, msg)  # join (a rename), leave, or one not known here

    # --- catch-up (catchup.py) ------------------------------------------------------------

    def left_room(self, peer_id: str) -> None:
        """A peer said goodbye or was forgotten: lines no longer wait for it."""
        self.away.pop(peer_id, None)
        self.line_names.pop(peer_id, None)
        self.watch.forget(peer_id)
        self.delivery.forget_peer(peer_id)
        self.rooms.forget_peer(peer_id)


if TYPE_CHECKING:  # the node is what each side is told it is (checked by mypy)

    def _contract(node: Node) -> tuple[IChat, IMeshSink, IBeaconSink]:
        return node, node, node
