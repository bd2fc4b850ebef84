"""The dialer: it opens (and reopens, with backoff) the links the dial rule gives us, through
the endpoint ``reach.py`` builds for a peer, at most MAX_DIALING at once; one explicit
``DialState`` per peer.  Apart from ``mesh.py`` (the links themselves) so each stays small.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Callable, cast

from twisted.internet import defer
from twisted.internet.interfaces import IAddress, IReactorTCP, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import LogLevel
from twisted.python.failure import Failure

from p2pchat.mesh import STABLE_AFTER, PeerProtocol, _log, _Timer, log  # (mesh's log namespace)
from p2pchat.peers import Backoff, PeerInfo
from p2pchat.reach import Endpoint, peer_endpoint

if TYPE_CHECKING:
    from p2pchat.node import Node

#: Dials in flight at once (connecting or handshaking); the others wait their turn, so a
#: peer that hears a crowd at once (a table of 256) does not start every handshake together.
MAX_DIALING = 64


class _OneDial(Factory):
    """Builds the protocol of one dial."""

    noisy = False

    def __init__(self, make: Callable[[], PeerProtocol]) -> None:
        self._make = make

    def buildProtocol(self, addr: IAddress | None) -> Protocol:
        return self._make()


# --- the dialer ---------------------------------------------------------------------------


class DialState(enum.Enum):
    IDLE = "idle"  # not wanted now (linked, or not announced); its backoff is kept
    DIALING = "dialing"  # an attempt in flight: connecting, or connected and handshaking
    WAITING = "waiting"  # an attempt failed: the next waits out the backoff
    HELD = "held"  # its last link was short: the next dial waits ``hold`` seconds
    QUEUED = "queued"  # wanted now, waiting for one of the MAX_DIALING dials in flight


class _Peer:
    """One peer the dialer knows: its state, and what that state needs."""

    __slots__ = ("info", "backoff", "state", "timer", "hold", "attempt", "conn")

    def __init__(self, info: PeerInfo | None, backoff: Backoff) -> None:
        self.info = info
        self.backoff = backoff  # kept across links: how fast to redial it
        self.state = DialState.IDLE
        self.timer: _Timer | None = None  # WAITING, HELD: the next dial
        self.hold = 0.0  # HELD: how long the next dial waits (from when it is wanted)
        self.attempt: defer.Deferred[Any] | None = None  # connecting
        self.conn: PeerProtocol | None = None  # connected, handshaking

    def stop_timer(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None


class Dialer:
    """Dials the peers the node wants, and redials failures with exponential backoff and
    jitter for as long as the node still wants them (the peer is still announced).

    Each peer is in one ``DialState``; ``endpoint`` (default ``peer_endpoint``) says how a
    peer is reached."""

    def __init__(self, node: Node, reactor: IReactorTCP, clock: IReactorTime,
                 bind_host: str | None = None,
                 backoff: Callable[[], Backoff] = Backoff,
                 endpoint: Callable[[PeerInfo], Endpoint] | None = None,
                 make: Callable[[PeerInfo], PeerProtocol] | None = None) -> None:
        self.node = node
        self.reactor = reactor
        self.clock: Any = cast(Any, clock)  # see _Timer
        self.bind_host = bind_host
        self._backoff = backoff
        self._endpoint = endpoint or (
            lambda info: peer_endpoint(self.reactor, info.host, info.port, self.bind_host))
        self._peers: dict[str, _Peer] = {}
        self.outgoing: set[PeerProtocol] = set()
        #: builds the protocol of a dial (static peers and contacts give their own)
        self._make = make or (lambda info: PeerProtocol(self.node, self.clock, expected=info,
                                                        registry=self.outgoing))
        self._queue: list[_Peer] = []  # QUEUED, first wanted first

    def state(self, peer_id: str) -> DialState | None:
        """Where the dialer is with this peer (None: it knows nothing of it)."""
        peer = self._peers.get(peer_id)
        return peer.state if peer is not None else None

    def _peer(self, peer_id: str) -> _Peer:
        peer = self._peers.get(peer_id)
        if peer is None:
            peer = self._peers[peer_id] = _Peer(None, self._backoff())
        return peer

    def dialing(self) -> int:
        return sum(1 for peer in self._peers.values() if peer.state is DialState.DIALING)

    def in_flight(self, peer_id: str) -> bool:
        """Whether a dial of this peer is under way (connecting or handshaking)."""
        return self.state(peer_id) is DialState.DIALING

    def want(self, info: PeerInfo) -> None:
        peer = self._peer(info.peer_id)
        peer.info = info
        if peer.state is DialState.IDLE:
            self._dial(peer)
        elif peer.state is DialState.HELD and peer.timer is None:
            peer.timer = self.clock.callLater(peer.hold, self._dial, peer)

    def link_ended(self, peer_id: str, lived: float) -> None:
        """A link to the peer closed after ``lived`` seconds: a long one resets its backoff,
        a short one makes the next dial wait (no reconnect storm)."""
        peer = self._peer(peer_id)
        if lived >= STABLE_AFTER:
            peer.backoff.reset()
            if peer.state is DialState.HELD and peer.timer is None:
                peer.state = DialState.IDLE
        elif peer.state is DialState.IDLE:
            peer.state, peer.hold = DialState.HELD, peer.backoff.next_delay()
        elif peer.state is DialState.HELD and peer.timer is None:
            peer.hold = peer.backoff.next_delay()

    def drop(self, peer_id: str) -> None:
        """Forget the peer (its backoff too) and stop what is under way for it."""
        peer = self._peers.pop(peer_id, None)
        if peer is None:
            return
        peer.stop_timer()
        attempt, peer.attempt, peer.conn = peer.attempt, None, None
        if attempt is not None:
            attempt.cancel()
        self._next()

    def connected(self, peer_id: str) -> None:
        """The peer is linked (whoever dialed): stop trying.  An attempt in flight is left to
        finish (it may be the very connection that just linked)."""
        peer = self._peers.get(peer_id)
        if peer is None or (peer.state is DialState.HELD and peer.timer is None):
            return  # a hold not yet waited out still counts at the next want
        peer.stop_timer()
        peer.state = DialState.IDLE
        self._next()

    def stop(self) -> None:
        self._queue.clear()
        for peer_id in list(self._peers):
            self.drop(peer_id)

    def _next(self) -> None:
        """A dial slot may be free: dial the peers that wait for one, first wanted first."""
        while self._queue and self.dialing() < MAX_DIALING:
            peer = self._queue.pop(0)
            if peer.state is DialState.QUEUED and self._current(peer):
                self._dial(peer)

    def _dial(self, peer: _Peer) -> None:
        info = peer.info
        assert info is not None
        peer.timer = None
        if self.dialing() >= MAX_DIALING:
            peer.state, peer.conn = DialState.QUEUED, None
            self._queue.append(peer)
            return
        peer.state, peer.conn = DialState.DIALING, None

        def make() -> PeerProtocol:
            return self._make(info)

        log.debug("dialing {peer} at {host}:{port}", peer=info.peer_id, host=info.host,
                  port=info.port)
        d = peer.attempt = self._endpoint(info).connect(_OneDial(make))
        d.addCallbacks(self._dialed, self._failed, callbackArgs=(peer, d),
                       errbackArgs=(peer, d))

    def _current(self, peer: _Peer) -> bool:
        return self._peers.get(peer.info.peer_id if peer.info else "") is peer

    def _dialed(self, proto: Any, peer: _Peer, d: defer.Deferred[Any]) -> None:
        if peer.attempt is not d:
            return  # dropped meanwhile, or an older attempt
        assert isinstance(proto, PeerProtocol)
        peer.attempt, peer.conn = None, proto
        proto.closed.addCallback(lambda _: self._closed_unready(proto, peer))

    def _closed_unready(self, proto: PeerProtocol, peer: _Peer) -> None:
        """A connection that closed before it became a link (refused, a handshake that
        failed) is a failed dial: retry with backoff, not at the next beacon."""
        if peer.conn is not proto or not self._current(peer):
            return
        peer.conn = None
        if peer.state is not DialState.DIALING:
            return
        if proto.was_ready:  # a link (the node said connected, or should have): gone now
            peer.state = DialState.IDLE
            self._next()
        else:
            self._wait(peer, peer.backoff.next_delay())

    def _failed(self, failure: Failure, peer: _Peer, d: defer.Deferred[Any]) -> None:
        if peer.attempt is not d:
            return
        peer.attempt = None
        if (failure.check(defer.CancelledError) or not self._current(peer)
                or peer.state is not DialState.DIALING):
            return
        delay = peer.backoff.next_delay()
        info = peer.info
        assert info is not None
        _log(self.clock, "dial failed", LogLevel.info,
             "dial to {peer} at {host}:{port} failed ({why}); again in {delay:.1f} s", burst=50,
             peer=info.peer_id, host=info.host, port=info.port,
             why=failure.getErrorMessage(), delay=delay)
        self._wait(peer, delay)

    def _wait(self, peer: _Peer, delay: float) -> None:
        peer.state = DialState.WAITING
        peer.timer = self.clock.callLater(delay, self._dial, peer)
        self._next()
