"""The mesh: one ``LineReceiver`` per peer connection, the server factory that accepts them, and
the dialer that opens (and reopens, with backoff) the ones the dial rule gives us.

Thin on purpose: bytes become ``wire.Message`` values and go to the node; the node decides.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet import defer
from twisted.internet.interfaces import IAddress, IReactorCore, IReactorTime
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.logger import Logger, LogLevel
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from twisted.internet.interfaces import IHandshakeListener, IPushProducer
from zope.interface import implementer

from p2pchat import ratelog
from p2pchat.identity import ContextFactory, certificate_fingerprint, certificate_public_key

from p2pchat.node import Node
from p2pchat.peers import Backoff, PeerInfo
from p2pchat.slots import REFUSED
from p2pchat.wire import (
    CAP_OURS,
    CAP_TLS,
    JOIN,
    MAX_LINE_BYTES,
    STARTTLS,
    Message,
    WireError,
    encode_message,
    new_message_id,
    parse_message,
    printable,
)

log = Logger()

#: A connection that has not sent its first line (a join), or finished its TLS handshake,
#: after this many seconds is closed.
HANDSHAKE_TIMEOUT = 10.0
#: A dial that has not connected after this many seconds has failed.
DIAL_TIMEOUT = 5.0
#: A link that lasted less than this (seconds) does not reset the redial backoff: a peer that
#: closes every link at once (a base peer that lost track of us) is redialed ever more slowly.
STABLE_AFTER = 10.0
#: Connections we accept at once, handshaken or not; past this, new ones are closed at once.
MAX_INBOUND = 512
#: A peer that reads nothing of what we write for this long (seconds) loses its link; our
#: lines for it wait in the sent log meanwhile (catch-up resends them when it is back).
STALL_TIMEOUT = 30.0
#: Lines per second one connection may send on average, and in one burst.  Past that we stop
#: reading it for a while (TCP then slows the sender), so one flood can't starve the others.
FLOOD_RATE = 10_000.0
FLOOD_BURST = 20_000.0


def _log(clock: IReactorTime, kind: str, level: LogLevel, fmt: str, /, **kw) -> None:
    """A log line once per connection or per line: rate-limited (ratelog.py)."""
    ratelog.limiter(clock).emit(log, kind, level, fmt, **kw)


def _describe(address: IAddress | None) -> str:
    host, port = getattr(address, "host", "?"), getattr(address, "port", "?")
    return f"{host}:{port}"


@implementer(IPushProducer)
class _Backpressure:
    """Registered with the transport, which pauses it once 64 KiB wait to be written to a
    peer that does not read, and resumes it once they are gone.  While paused the node writes
    nothing more to that link (our lines wait in the sent log); paused for STALL_TIMEOUT, the
    link is dropped."""

    def __init__(self, proto: PeerProtocol) -> None:
        self.proto = proto
        self.paused = False
        self._stall = None

    def pauseProducing(self) -> None:
        if not self.paused:
            self.paused = True
            self._stall = self.proto.clock.callLater(STALL_TIMEOUT, self._stalled)

    def resumeProducing(self) -> None:
        self.paused = False
        self.cancel()
        self.proto.writable()

    def stopProducing(self) -> None:
        self.cancel()

    def cancel(self) -> None:
        if self._stall is not None and self._stall.active():
            self._stall.cancel()
        self._stall = None

    def _stalled(self) -> None:
        self._stall = None
        _log(self.proto.clock, "stalled", LogLevel.warn,
             "{peer} ({address}) read nothing for {t:.0f} s: link dropped (it catches up "
             "when back)", burst=50, peer=self.proto.peer_id or "?",
             address=self.proto.address, t=STALL_TIMEOUT)
        self.proto.transport.abortConnection()


@implementer(IHandshakeListener)
class PeerProtocol(LineReceiver):
    """One TCP connection to a peer.  The dialer's first line is a join from itself; the
    listener learns who called from it and sends no greeting (as the base protocol says).

    Between two peers with keys (CAP_TLS) the listener answers the join with a ``starttls``
    line and both switch to mutually authenticated TLS on the same connection; the link is
    ready only once each side's certificate matched the fingerprint the other announced.
    Nothing may follow the join or the starttls line in plaintext."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE_BYTES
    noisy = False

    def __init__(self, node: Node, clock: IReactorTime, expected: PeerInfo | None = None,
                 registry: set[PeerProtocol] | None = None) -> None:
        self.node = node
        self.registry = registry if registry is not None else set()
        self.clock = clock
        self.outgoing = expected is not None
        self.peer_id = expected.peer_id if expected else ""
        self.username = expected.username if expected else ""
        self.caps: tuple[str, ...] = expected.caps if expected else ()
        self.dialer_id = node.peer_id if self.outgoing else ""
        self.address = ""
        self.last_heard = clock.seconds()
        self.ready = False
        self.was_ready = False
        self._handshake_timer = None
        #: the key fingerprint the peer proved by TLS ("" while plain), and the TLS version
        self.fp = ""
        self.tls = ""
        self.pk = ""  # the peer's public key (base64), once TLS proved it
        self._expect_fp = expected.fp if expected else ""
        self._awaiting_starttls = False
        self._tls_started = False
        self._first: Message | None = None
        self._backpressure = _Backpressure(self)
        self._tokens = FLOOD_BURST
        self._tokens_at = clock.seconds()
        self._flood_timer = None
        self._flood_logged = False
        #: why the other side refused this link, if it said so (a ``refused`` line)
        self.refused_by = ""
        self._registered = False  # our backpressure producer is registered with the transport
        #: fires when the connection is gone, for a shutdown that waits for goodbyes
        self.closed: defer.Deferred = defer.Deferred()

    # --- Link, as the node sees it ------------------------------------------------------------

    @property
    def backed_up(self) -> bool:
        return self._backpressure.paused

    def send(self, msg: Message) -> None:
        self.send_bytes(encode_message(msg))

    def send_bytes(self, data: bytes) -> None:
        if self.transport is not None and self.connected:
            self.transport.write(data)

    def writable(self) -> None:
        if self.ready:
            self.node.link_writable(self)

    def hang_up(self) -> None:
        """Close as soon as what we wrote (our leave line) is on its way, without waiting for
        the peer, so /quit is quick.

        A bare ``loseConnection`` on a TLS link sends nothing while a producer (the link's
        back-pressure) is registered, and then waits for the peer's close_notify.  Here the
        producer goes, the TLS layer writes what is pending and its close_notify, and the TCP
        connection under it is closed once its buffer is written (a FIN, not a reset: the
        kernel still delivers the leave line).  Not waiting for the peer's close_notify is
        allowed (RFC 8446 6.1); we read nothing more from a link we are leaving."""
        transport = self.transport
        if transport is None or not self.connected:
            return
        if self._registered:
            self._registered = False
            transport.unregisterProducer()
        transport.loseConnection()
        tls = getattr(transport, "protocol", None) if getattr(transport, "TLS", False) else None
        under = getattr(tls, "transport", None)
        if under is not None:
            under.loseConnection()  # the TCP connection under TLS: FIN once its buffer is out

    def close(self, why: str) -> None:
        _log(self.clock, "closing link", LogLevel.info,
             "closing link with {peer} ({address}): {why}", burst=50, peer=self.peer_id or "?", address=self.address, why=why)
        if self.transport is not None:
            # Over TLS, loseConnection waits for a registered producer to go: without this,
            # a refused or replaced TLS link stayed open (and looked alive on the other side).
            if self._registered:
                self._registered = False
                self.transport.unregisterProducer()
            self.transport.loseConnection()

    def refuse(self, why: str) -> None:
        """Refuse the link: a peer of ours is first told why (a ``refused`` line, which
        base peers never get), so it logs it and shows us not linked; then close."""
        if CAP_OURS in self.caps:
            self.send(Message(id=new_message_id(), type=REFUSED, sender_id=self.node.peer_id,
                              username=self.node.nick, content=why,
                              timestamp=self.clock.seconds()))
        self.close(why)

    def abort(self, why: str) -> None:
        _log(self.clock, "dropping link", LogLevel.info,
             "dropping link with {peer} ({address}): {why}", burst=50, peer=self.peer_id or "?", address=self.address, why=why)
        if self.transport is not None:
            self.transport.abortConnection()

    # --- Twisted --------------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.registry.add(self)
        self.address = _describe(self.transport.getPeer())
        self.last_heard = self.clock.seconds()
        if hasattr(self.transport, "setTcpKeepAlive"):
            self.transport.setTcpKeepAlive(1)
            # Chat lines are small and should go at once, not wait to fill a segment.
            self.transport.setTcpNoDelay(1)
        if hasattr(self.transport, "registerProducer"):
            self.transport.registerProducer(self._backpressure, True)
            self._registered = True
        if self.outgoing:
            self.send(self.node.handshake())
            if self._tls_wanted(self.caps):
                self._awaiting_starttls = True
                self._handshake_timer = self.clock.callLater(HANDSHAKE_TIMEOUT, self._too_slow)
            else:
                self._become_ready()
        else:
            self._handshake_timer = self.clock.callLater(HANDSHAKE_TIMEOUT, self._too_slow)

    def _tls_wanted(self, caps: tuple[str, ...]) -> bool:
        return self.node.identity is not None and CAP_TLS in caps

    def _too_slow(self) -> None:
        self._handshake_timer = None
        _log(self.clock, "handshake timeout", LogLevel.info,
             "{peer} ({address}) did not finish its handshake within {t:.0f} s: closed",
             peer=self.peer_id or "?", address=self.address, t=HANDSHAKE_TIMEOUT)
        self.transport.abortConnection()

    def _become_ready(self) -> None:
        if self._handshake_timer is not None and self._handshake_timer.active():
            self._handshake_timer.cancel()
        self._handshake_timer = None
        self.ready = self.node.link_ready(self)
        self.was_ready = self.was_ready or self.ready
        if self.ready and self._first is not None:
            self.node.message_received(self, self._first)
        self._first = None

    def dataReceived(self, data: bytes) -> None:
        # Once per read, not per line: when we last heard from it, and the flood bucket's
        # refill since the last read.
        now = self.last_heard = self.clock.seconds()
        self._tokens = min(FLOOD_BURST, self._tokens + (now - self._tokens_at) * FLOOD_RATE)
        self._tokens_at = now
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        self._tokens -= 1
        if self._tokens < 0 and self._flood_timer is None:
            self._throttle()
        try:
            msg = parse_message(line)
        except WireError as e:
            if not line.strip():
                return
            _log(self.clock, "bad line", LogLevel.warn,
                 "bad line from {peer} ({address}) skipped: {why}", peer=self.peer_id or "?", address=self.address, why=str(e))
            if not self.ready and not self.outgoing:
                self.transport.loseConnection()
            return
        if msg.type == REFUSED and self.peer_id and msg.sender_id == self.peer_id:
            self._was_refused(msg)
            return
        if self.ready:
            self.node.message_received(self, msg, line)
        elif self._awaiting_starttls:
            self._starttls_line(msg)
        elif not self.outgoing and not self._tls_started:
            self._first_line(msg)

    def _throttle(self) -> None:
        """The token bucket over received lines is empty: stop reading until it refills (the
        lines already read are still handled; TCP then slows the sender)."""
        if not self._flood_logged:
            self._flood_logged = True
            _log(self.clock, "flood", LogLevel.info,
                 "{peer} ({address}) sends over {rate:.0f} lines/s: reading slowed",
                 peer=self.peer_id or "?", address=self.address, rate=FLOOD_RATE)
        self.pauseProducing()
        self._flood_timer = self.clock.callLater(-self._tokens / FLOOD_RATE + 0.01,
                                                 self._unthrottle)

    def _unthrottle(self) -> None:
        self._flood_timer = None
        if self.connected:
            self.resumeProducing()

    def _was_refused(self, msg: Message) -> None:
        """The other side refused this link and said why: log it; it closes the link (we
        close too); the dialer redials with backoff."""
        self.refused_by = printable(msg.content)[:200] or "no reason given"
        _log(self.clock, "refused by peer", LogLevel.warn,
             "{peer} ({address}) refused the link: {why}", peer=self.peer_id,
             address=self.address, why=self.refused_by)
        self._awaiting_starttls = False
        self.close(f"it refused the link: {self.refused_by}")

    def _first_line(self, msg: Message) -> None:
        if msg.type != JOIN:
            _log(self.clock, "not a join", LogLevel.warn,
                 "{address} opened with a {kind} line, not a join: closed",
                 address=self.address, kind=msg.type)
            self.transport.loseConnection()
            return
        self.peer_id, self.username, self.caps = msg.sender_id, msg.username, msg.caps
        self.dialer_id = msg.sender_id
        # Refused now, before TLS, the dialer's link never comes up: both sides agree.
        why = self.node.link_offered(msg.sender_id, msg.username,
                                     msg.fp if self._tls_wanted(msg.caps) else "")
        if why is not None:
            self.refuse(why)
            return
        self._first = msg
        if self._tls_wanted(msg.caps) and msg.fp:
            self._expect_fp = msg.fp
            if self._plaintext_left():
                return
            self.send(self.node.starttls())
            self._start_tls(server=True)
        else:
            self._become_ready()

    def _starttls_line(self, msg: Message) -> None:
        """The dialer's side: the listener said ``starttls``; the TLS handshake follows."""
        self._awaiting_starttls = False
        if msg.type != STARTTLS or msg.sender_id != self.peer_id:
            _log(self.clock, "not starttls", LogLevel.warn,
                 "{peer} ({address}) answered with a {kind} line, not starttls: closed",
                 peer=self.peer_id, address=self.address, kind=msg.type)
            self.transport.abortConnection()
            return
        self._expect_fp = self._expect_fp or msg.fp
        if not self._plaintext_left():
            self._start_tls(server=False)

    def _plaintext_left(self) -> bool:
        """Refuse bytes that came after the switch point in plaintext (STARTTLS injection)."""
        if self.clearLineBuffer():
            _log(self.clock, "plaintext after starttls", LogLevel.warn,
                 "{address} sent plaintext after the switch to TLS: closed",
                 address=self.address)
            self.transport.abortConnection()
            return True
        return False

    def _start_tls(self, server: bool) -> None:
        self._tls_started = True
        self.transport.startTLS(ContextFactory(self.node.identity, server=server))

    def handshakeCompleted(self) -> None:
        """TLS is up: the peer's certificate must be the key it announced."""
        fp = certificate_fingerprint(self.transport.getPeerCertificate())
        if not fp or fp != self._expect_fp:
            _log(self.clock, "wrong certificate", LogLevel.warn,
                 "{peer} ({address}) showed a certificate that is not the key it announced: "
                 "closed", peer=self.peer_id, address=self.address)
            self.transport.abortConnection()
            return
        self.fp = fp
        self.pk = certificate_public_key(self.transport.getPeerCertificate())
        handle = self.transport.getHandle()
        self.tls = handle.get_protocol_version_name() if handle is not None else "TLS"
        self._become_ready()

    def lineLengthExceeded(self, line: bytes) -> None:
        _log(self.clock, "line too long", LogLevel.warn,
             "{peer} ({address}) sent a line over {limit} bytes: closed",
             peer=self.peer_id or "?", address=self.address, limit=MAX_LINE_BYTES)
        self.clearLineBuffer()
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure = None) -> None:
        self._backpressure.cancel()
        for timer in (self._handshake_timer, self._flood_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._handshake_timer = self._flood_timer = None
        self.registry.discard(self)
        try:
            if self.ready:
                self.ready = False
                why = reason.getErrorMessage() if reason is not None else "closed"
                if self.refused_by:
                    why = f"it refused the link: {self.refused_by}"
                self.node.link_lost(self, why)
        finally:
            self.closed.callback(None)  # shutdown waits on this, whatever happened


class PeerServerFactory(Factory):
    """Accepts peers' connections; keeps the open ones so shutdown can close them (stopping
    the listener does not)."""

    noisy = False

    def __init__(self, node: Node, clock: IReactorTime) -> None:
        self.node = node
        self.clock = clock
        self.open: set[PeerProtocol] = set()

    def buildProtocol(self, addr: IAddress) -> Protocol | None:
        if len(self.open) >= MAX_INBOUND:
            _log(self.clock, "inbound full", LogLevel.warn,
                 "{n} connections open: {address} refused", n=len(self.open), address=_describe(addr))
            return None
        return PeerProtocol(self.node, self.clock, registry=self.open)


class _DialFactory(ClientFactory):
    """One dial: ``deferred`` fires with the protocol once TCP is up, or fails; cancelling it
    stops the attempt.  (``reactor.connectTCP`` rather than an endpoint, whose wrapper
    protocol would sit under every read of the link for nothing.)"""

    noisy = False

    def __init__(self, make: Callable[[], PeerProtocol]) -> None:
        self._make = make
        self.connector = None
        self.deferred: defer.Deferred = defer.Deferred(self._cancel)

    def _cancel(self, d: defer.Deferred) -> None:
        if self.connector is not None:
            self.connector.stopConnecting()

    def buildProtocol(self, addr: IAddress) -> Protocol:
        proto = self._make()
        if not self.deferred.called:
            self.deferred.callback(proto)
        return proto

    def clientConnectionFailed(self, connector, reason: Failure) -> None:
        if not self.deferred.called:
            self.deferred.errback(reason)


class _Wanted:
    """One peer the dialer is trying to reach."""

    def __init__(self, info: PeerInfo, backoff: Backoff) -> None:
        self.info = info
        self.backoff = backoff
        self.retry = None  # the DelayedCall of the next attempt
        self.attempt: defer.Deferred | None = None


class Dialer:
    """Dials the peers the node wants, and redials failures with exponential backoff and
    jitter for as long as the node still wants them (the peer is still announced)."""

    def __init__(self, node: Node, reactor: IReactorCore, clock: IReactorTime,
                 bind_host: str | None = None,
                 backoff: Callable[[], Backoff] = Backoff) -> None:
        self.node = node
        self.reactor = reactor
        self.clock = clock
        self.bind_host = bind_host
        self._backoff = backoff
        self._wanted: dict[str, _Wanted] = {}
        #: per peer, kept across links: how fast to redial it
        self._backoffs: dict[str, Backoff] = {}
        #: peers whose last link was short-lived: wait this long before redialing
        self._hold: dict[str, float] = {}
        self.outgoing: set[PeerProtocol] = set()

    def want(self, peer: PeerInfo) -> None:
        entry = self._wanted.get(peer.peer_id)
        if entry is None:
            backoff = self._backoffs.setdefault(peer.peer_id, self._backoff())
            entry = self._wanted[peer.peer_id] = _Wanted(peer, backoff)
            hold = self._hold.pop(peer.peer_id, None)
            if hold is not None:
                entry.retry = self.clock.callLater(hold, self._dial, entry)
                return
        else:
            entry.info = peer
        if entry.attempt is None and entry.retry is None:
            self._dial(entry)

    def link_ended(self, peer_id: str, lived: float) -> None:
        """A link to the peer closed after ``lived`` seconds: a long one resets its backoff,
        a short one makes the next dial wait (no reconnect storm)."""
        backoff = self._backoffs.setdefault(peer_id, self._backoff())
        if lived >= STABLE_AFTER:
            backoff.reset()
            self._hold.pop(peer_id, None)
        else:
            self._hold[peer_id] = backoff.next_delay()

    def drop(self, peer_id: str) -> None:
        self._backoffs.pop(peer_id, None)
        self._hold.pop(peer_id, None)
        entry = self._wanted.pop(peer_id, None)
        if entry is None:
            return
        if entry.retry is not None and entry.retry.active():
            entry.retry.cancel()
        if entry.attempt is not None:
            entry.attempt.cancel()

    def connected(self, peer_id: str) -> None:
        """The peer is linked (whoever dialed): stop trying.  An attempt in flight is left to
        finish (it may be the very connection that just linked)."""
        entry = self._wanted.pop(peer_id, None)
        if entry is not None and entry.retry is not None and entry.retry.active():
            entry.retry.cancel()

    def stop(self) -> None:
        for peer_id in list(self._wanted):
            self.drop(peer_id)

    def _dial(self, entry: _Wanted) -> None:
        entry.retry = None
        info = entry.info

        def make() -> PeerProtocol:
            return PeerProtocol(self.node, self.clock, expected=entry.info,
                                registry=self.outgoing)

        log.debug("dialing {peer} at {host}:{port}", peer=info.peer_id, host=info.host,
                  port=info.port)
        factory = _DialFactory(make)
        d = entry.attempt = factory.deferred
        factory.connector = self.reactor.connectTCP(
            info.host, info.port, factory, timeout=DIAL_TIMEOUT,
            bindAddress=(self.bind_host, 0) if self.bind_host else None)
        d.addCallbacks(self._dialed, self._failed, callbackArgs=(entry,), errbackArgs=(entry,))

    def _dialed(self, proto: PeerProtocol, entry: _Wanted) -> None:
        entry.attempt = None
        proto.closed.addCallback(lambda _: self._closed_unready(proto, entry))

    def _closed_unready(self, proto: PeerProtocol, entry: _Wanted) -> None:
        """A connection that closed before it became a link (refused, a handshake that
        failed) is a failed dial: retry with backoff, not at the next beacon."""
        if proto.was_ready or self._wanted.get(entry.info.peer_id) is not entry:
            return
        if entry.attempt is None and (entry.retry is None or not entry.retry.active()):
            entry.retry = self.clock.callLater(entry.backoff.next_delay(), self._dial, entry)

    def _failed(self, failure: Failure, entry: _Wanted) -> None:
        entry.attempt = None
        if failure.check(defer.CancelledError) or self._wanted.get(entry.info.peer_id) is not entry:
            return
        delay = entry.backoff.next_delay()
        _log(self.clock, "dial failed", LogLevel.info,
             "dial to {peer} at {host}:{port} failed ({why}); again in {delay:.1f} s", burst=50,
             peer=entry.info.peer_id, host=entry.info.host, port=entry.info.port,
             why=failure.getErrorMessage(), delay=delay)
        entry.retry = self.clock.callLater(delay, self._dial, entry)
