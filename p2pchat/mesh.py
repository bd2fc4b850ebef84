"""The mesh: one ``LineReceiver`` per peer connection and the server factory that accepts them
(the dialer that opens them is ``dial.py``).

Thin on purpose: bytes become ``wire.Message`` values and go to the node; the node decides.
The handshake's steps are decided in ``handshake.py`` (no socket there), how a peer is
reached in ``reach.py``; the dialer keeps one explicit ``DialState`` per peer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol as TypingProtocol, cast

from twisted.internet import defer
from twisted.internet.interfaces import IAddress, IHandshakeListener, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from p2pchat import busy, latetls, ratelog, tcpinfo
from p2pchat.reach import DIAL_TIMEOUT, peer_endpoint
from p2pchat.flow import Backpressure, TokenBucket
from p2pchat.framing import LinesPerRead
from p2pchat.gather import Gather
from p2pchat.identity import ContextFactory, certificate_fingerprint, certificate_public_key

from p2pchat.node import Node
from p2pchat.peers import PeerInfo
from p2pchat.slots import REFUSED
from p2pchat.wire import (
    CAP_OURS,
    CHAT,
    MAX_LINE_BYTES,
    Message,
    WireError,
    encode_message,
    new_message_id,
    parse_message,
)

if TYPE_CHECKING:
    from p2pchat import handshake
    from p2pchat.interfaces import Wire

log = Logger()

#: A connection that has not sent its first line (a join), or finished its TLS handshake,
#: after ``handshake.HANDSHAKE_TIMEOUT`` seconds is closed (read when a connection starts, so
#: a test may change it).  handshake.py is imported with the first connection: an idle peer
#: alone does without it (latetls.LATE_MODULES).
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

_LEVELS = {"info": LogLevel.info, "warn": LogLevel.warn}

# Twisted's zope interfaces (IReactorTime, ITransport, IDelayedCall, ...) are not understood by
# mypy without the mypy-zope plugin, so what this module calls on them is typed here as
# ``typing.Protocol``s (or Any for a transport, whose kind, TCP or TLS, decides its methods).
__all__ = ["DIAL_TIMEOUT", "STABLE_AFTER", "MAX_INBOUND", "STALL_TIMEOUT",
           "FLOOD_RATE", "FLOOD_BURST", "PeerProtocol", "PeerServerFactory", "peer_endpoint"]


class _Timer(TypingProtocol):
    def active(self) -> bool: ...

    def cancel(self) -> None: ...


def _log(clock: IReactorTime, kind: str, level: LogLevel, fmt: str, /, **kw: Any) -> None:
    """A log line once per connection or per line: rate-limited (ratelog.py)."""
    ratelog.limiter(clock).emit(log, kind, level, fmt, **kw)


def _describe(address: IAddress | None) -> str:
    host, port = getattr(address, "host", "?"), getattr(address, "port", "?")
    return f"{host}:{port}"


@implementer(IHandshakeListener)
class PeerProtocol(LinesPerRead):
    """One TCP connection to a peer.  The dialer's first line is a join from itself; the
    listener learns who called from it and sends no greeting (as the base protocol says).

    Between two peers with keys (CAP_TLS) the listener answers the join with a ``starttls``
    line and both switch to mutually authenticated TLS on the same connection; the link is
    ready only once each side's certificate matched the fingerprint the other announced.
    Nothing may follow the join or the starttls line in plaintext.  The steps are decided by
    ``handshake.Handshake`` (no socket in it); this class carries out what it answers.

    As the node sees it, a ``interfaces.Wire``."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE_BYTES
    noisy = False
    transport: Any

    def __init__(self, node: Node, clock: IReactorTime, expected: PeerInfo | None = None,
                 registry: set[PeerProtocol] | None = None, tls_first: bool = False,
                 admit: handshake.Admit | None = None, invite: str = "") -> None:
        from p2pchat import handshake  # the first connection's (not an idle peer's)

        self.node = node
        self.registry = registry if registry is not None else set()
        self.clock: Any = cast(Any, clock)  # see _Timer
        self.outgoing = expected is not None
        self.peer_id = expected.peer_id if expected else ""
        self.username = expected.username if expected else ""
        self.caps: tuple[str, ...] = expected.caps if expected else ()
        self.dialer_id = node.peer_id if self.outgoing else ""
        self.address = ""
        self.last_heard = self.clock.seconds()
        self.handshake = handshake.Handshake(
            self.outgoing, node.identity is not None, self.peer_id, self.caps,
            expected.fp if expected else "", timeout=handshake.HANDSHAKE_TIMEOUT * busy.load_factor(),
            tls_first=tls_first, learn=expected is not None and not expected.username,
            admit=admit)
        #: an onion dialer's invite secret, carried in its join (``handshake.INVITE_KEY``)
        self.invite = invite
        self._handshake_timer: _Timer | None = None
        self._timer_due = self.connected_at = self.clock.seconds()  # the timer's due time
        #: the key fingerprint the peer proved by TLS ("" while plain), and the TLS version
        self.fp = ""
        self.tls = ""
        self.pk = ""  # the peer's public key (base64), once TLS proved it
        # a peer on a saturated machine reads late: given longer there (busy.py)
        self._backpressure = Backpressure(clock, on_resume=self.writable,
                                          stall_after=STALL_TIMEOUT, on_stall=self._stalled,
                                          stretch=busy.load_factor)
        self._flood = TokenBucket(FLOOD_RATE, FLOOD_BURST, self.clock.seconds())
        self._flood_timer: _Timer | None = None
        self._flood_logged = False
        self._registered = False  # our backpressure producer is registered with the transport
        #: a live TLS link's writes, gathered per reactor turn (gather.py)
        self._gather: Gather | None = None
        #: fires when the connection is gone, for a shutdown that waits for goodbyes
        self.closed: defer.Deferred[None] = defer.Deferred()

    # --- Link, as the node sees it ------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """The handshake is done and the node took the link."""
        return self.handshake.ready

    @property
    def was_ready(self) -> bool:
        return self.handshake.was_ready

    @property
    def refused_by(self) -> str:
        """Why the other side refused this link, if it said so (a ``refused`` line)."""
        return self.handshake.refused_by

    @property
    def backed_up(self) -> bool:
        return self._backpressure.paused

    def send(self, msg: Message) -> None:
        self.send_bytes(encode_message(msg))

    def send_bytes(self, data: bytes) -> None:
        if self.transport is not None and self.connected:
            if self._gather is not None:
                self._gather.add(data)
            else:
                self.transport.write(data)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and self.connected:
            self.transport.write(data)

    def _flush(self) -> None:
        if self._gather is not None:
            self._gather.flush()

    def writable(self) -> None:
        if self.handshake.ready:
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
        self._flush()  # the leave line
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
            self._flush()  # what we said before closing (a refused line) goes first
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

    def unacked(self) -> int | None:
        """Segments we sent that its peer's machine has not acknowledged yet (tcpinfo.py)."""
        return tcpinfo.unacked(self.transport)

    def abort(self, why: str) -> None:
        _log(self.clock, "dropping link", LogLevel.info,
             "dropping link with {peer} ({address}): {why}", burst=50, peer=self.peer_id or "?", address=self.address, why=why)
        if self.transport is not None:
            self.transport.abortConnection()

    # --- carrying out what the handshake says -----------------------------------------------

    def _go_on(self, actions: list[handshake.Action]) -> None:
        """The TLS libraries are in (latetls.preload): the handshake goes on, if the link is
        (a TCP transport says ``disconnected`` once lost)."""
        if self.transport is not None and not getattr(self.transport, "disconnected", False):
            self._do(actions)

    def _no_tls(self, failure: Failure) -> None:
        log.failure("the TLS libraries could not be imported", failure)
        if self.transport is not None and not getattr(self.transport, "disconnected", False):
            self.transport.abortConnection()

    def _do(self, actions: list[handshake.Action]) -> None:
        from p2pchat import handshake  # (imported by __init__: a lookup)

        for at, action in enumerate(actions):
            if (isinstance(action, (handshake.SendStartTLS, handshake.StartTLS))
                    and not latetls.loaded()):
                # the first TLS link: the libraries come in a thread, this link's STARTTLS
                # (and what follows it) once they are in, not holding the reactor meanwhile
                latetls.preload().addCallbacks(lambda _: self._go_on(actions[at:]),
                                               lambda f: self._no_tls(f))
                return
            if isinstance(action, handshake.Note):
                _log(self.clock, action.kind, _LEVELS[action.level], action.text,
                     peer=self.peer_id or "?", address=self.address, **action.fields)
            elif isinstance(action, handshake.Drop):
                if action.abort:
                    self.clearLineBuffer()  # nothing more of it is read
                    self.transport.abortConnection()
                else:
                    self.transport.loseConnection()
            elif isinstance(action, handshake.SendJoin):
                self.send(handshake.with_invite(self.node.handshake(), self.invite))
            elif isinstance(action, handshake.SendStartTLS):
                self.send(self.node.starttls())
            elif isinstance(action, handshake.StartTLS):
                assert self.node.identity is not None  # TLS is wanted only with a key
                self.transport.startTLS(ContextFactory(self.node.identity, server=action.server))
            elif isinstance(action, handshake.ArmTimer):
                self._timer_due = self.clock.seconds() + action.after
                self._handshake_timer = self.clock.callLater(action.after, self._too_slow)
            elif isinstance(action, handshake.Learn):
                self.peer_id, self.username, self.caps = (action.peer_id, action.username,
                                                          action.caps)
                if not self.outgoing:
                    self.dialer_id = action.peer_id
            elif isinstance(action, handshake.Offer):
                self._do(self.handshake.offered(
                    self.node.link_offered(action.peer_id, action.username, action.fp)))
            elif isinstance(action, handshake.Refuse):
                self.refuse(action.why)
            elif isinstance(action, handshake.Proven):
                self.fp = action.fp
                self.pk = certificate_public_key(self.transport.getPeerCertificate())
                handle = self.transport.getHandle()
                self.tls = handle.get_protocol_version_name() if handle is not None else "TLS"
            elif isinstance(action, handshake.GoLive):
                self._stop_handshake_timer()
                if self.tls:  # TLS is up: writes are gathered per reactor turn
                    self._gather = Gather(self.clock, self._write)
                self._do(self.handshake.linked(self.node.link_ready(self)))
            elif isinstance(action, handshake.Deliver):
                self.node.message_received(self, action.msg)
            elif isinstance(action, handshake.Close):
                self.close(action.why)

    def _become_ready(self) -> None:
        """Take the connection as handshaken: for ``bench.hotpath``, which builds links with
        no socket and no TLS (the handshake proper never calls this)."""
        from p2pchat import handshake

        self.handshake.stage = handshake.Stage.GOING_LIVE
        self._do([handshake.GoLive()])

    def _stop_handshake_timer(self) -> None:
        if self._handshake_timer is not None and self._handshake_timer.active():
            self._handshake_timer.cancel()
        self._handshake_timer = None

    def _too_slow(self) -> None:
        """The verdict waits a turn: bytes that came meanwhile are read first (handshake.py)."""
        late = self.clock.seconds() - self._timer_due
        self._handshake_timer = self.clock.callLater(0, self._judge, late)

    def _judge(self, late: float) -> None:
        self._handshake_timer, now = None, self.clock.seconds()
        self._do(self.handshake.timeout(now - self.last_heard, now - self.connected_at, late))

    def _stalled(self) -> None:
        _log(self.clock, "stalled", LogLevel.warn,
             "{peer} ({address}) read nothing for {t:.0f} s: link dropped (it catches up "
             "when back)", burst=50, peer=self.peer_id or "?",
             address=self.address, t=STALL_TIMEOUT)
        self.transport.abortConnection()

    # --- Twisted --------------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.registry.add(self)
        self.address = _describe(self.transport.getPeer())
        self.last_heard = self.connected_at = self.clock.seconds()
        if hasattr(self.transport, "setTcpKeepAlive"):
            self.transport.setTcpKeepAlive(1)
            # Chat lines are small and should go at once, not wait to fill a segment.
            self.transport.setTcpNoDelay(1)
        if hasattr(self.transport, "registerProducer"):
            self.transport.registerProducer(self._backpressure, True)
            self._registered = True
        self._do(self.handshake.connected())

    def dataReceived(self, data: bytes) -> None:
        # Once per read, not per line: when we last heard from it, and the flood bucket's
        # refill since the last read.
        now = self.last_heard = self.clock.seconds()
        self._flood.refill(now)
        super().dataReceived(data)

    def lines_at_once(self) -> bool:
        return self.handshake.ready  # a read split once (framing.py) only on a live link

    def lines_received(self, lines: list[bytes]) -> int:
        """The lines of one read on a live link (framing.py), in order: the run of room lines
        of the peer itself handed to the node together (``Node.chat_lines``, reading.py), each
        other line as ``lineReceived`` takes it, the run before it first.  Returns how many
        were taken (fewer once the flood limit paused reading, or the link is closing: the
        rest wait, as in LineReceiver).  A read the flood bucket holds whole is counted at
        once (what is left untaken given back), and a line of the run is only appended: it
        runs nothing that could pause or close the link."""
        peer, node, transport, flood = self.peer_id, self.node, self.transport, self._flood
        run: list[tuple[Message, bytes]] = []
        count = len(lines)
        if flood.tokens >= count:  # the read within the flood limit: counted at once
            flood.tokens -= count
            for i, line in enumerate(lines):
                try:
                    said = parse_message(line)
                except WireError as e:
                    self._bad_line(line, e)
                else:
                    if said.type == CHAT and said.sender_id == peer:
                        run.append((said, line))
                        continue  # nothing ran: neither paused nor closing since the last look
                    if run:
                        node.chat_lines(self, run)
                        run = []
                    self._line(said, line)
                if self.paused or transport.disconnecting:
                    if run:
                        node.chat_lines(self, run)
                    flood.tokens += count - i - 1  # the lines left are counted when read
                    return i + 1
            if run:
                node.chat_lines(self, run)
            return count
        for i, line in enumerate(lines):
            # _parsed, in line (a call less a line)
            flood.tokens -= 1
            if flood.tokens < 0 and self._flood_timer is None:
                self._throttle()
            try:
                msg: Message | None = parse_message(line)
            except WireError as e:
                self._bad_line(line, e)
                msg = None
            if msg is not None and msg.type == CHAT and msg.sender_id == peer:
                run.append((msg, line))
            elif msg is not None:
                if run:
                    node.chat_lines(self, run)
                    run = []
                self._line(msg, line)
            if self.paused or transport.disconnecting:
                if run:
                    node.chat_lines(self, run)
                return i + 1
        if run:
            node.chat_lines(self, run)
        return len(lines)

    def lineReceived(self, line: bytes) -> None:
        msg = self._parsed(line)
        if msg is not None:
            self._line(msg, line)

    def _parsed(self, line: bytes) -> Message | None:
        """``line`` counted against the flood limit, and parsed (None: a bad line, logged)."""
        flood = self._flood
        flood.tokens -= 1
        if flood.tokens < 0 and self._flood_timer is None:
            self._throttle()
        try:
            return parse_message(line)
        except WireError as e:
            self._bad_line(line, e)
            return None

    def _bad_line(self, line: bytes, e: WireError) -> None:
        if not line.strip():
            return
        _log(self.clock, "bad line", LogLevel.warn,
             "bad line from {peer} ({address}) skipped: {why}", peer=self.peer_id or "?", address=self.address, why=str(e))
        if not self.handshake.ready:
            self._do(self.handshake.bad_line())

    def _line(self, msg: Message, line: bytes) -> None:
        if msg.type == REFUSED and self.peer_id and msg.sender_id == self.peer_id:
            self._do(self.handshake.refused_line(msg))
            return
        if self.handshake.ready:
            self.node.message_received(self, msg, line)
        else:
            # ``more``: bytes after this line (in plaintext, past a switch to TLS)
            self._do(self.handshake.receive(msg, more=bool(self._buffer)))

    def _throttle(self) -> None:
        """The token bucket over received lines is empty: stop reading until it refills (the
        lines already read are still handled; TCP then slows the sender)."""
        if not self._flood_logged:
            self._flood_logged = True
            _log(self.clock, "flood", LogLevel.info,
                 "{peer} ({address}) sends over {rate:.0f} lines/s: reading slowed",
                 peer=self.peer_id or "?", address=self.address, rate=FLOOD_RATE)
        self.pauseProducing()
        self._flood_timer = self.clock.callLater(self._flood.delay() + 0.01, self._unthrottle)

    def _unthrottle(self) -> None:
        self._flood_timer = None
        if self.connected:
            self.resumeProducing()

    def handshakeCompleted(self) -> None:
        """TLS is up: the peer's certificate must be the key it announced.  Its handshake's
        bytes (not seen by ``dataReceived``) count as heard: a handshake that took longer
        than IDLE_TIMEOUT on a saturated machine must not make a new link look dead."""
        self.last_heard = self.clock.seconds()
        self._do(self.handshake.tls_done(
            certificate_fingerprint(self.transport.getPeerCertificate()) or ""))

    def lineLengthExceeded(self, line: bytes) -> None:
        _log(self.clock, "line too long", LogLevel.warn,
             "{peer} ({address}) sent a line over {limit} bytes: closed",
             peer=self.peer_id or "?", address=self.address, limit=MAX_LINE_BYTES)
        self.clearLineBuffer()
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self._gather is not None:
            self._gather.drop()
        self._backpressure.cancel()
        self._stop_handshake_timer()
        if self._flood_timer is not None and self._flood_timer.active():
            self._flood_timer.cancel()
        self._flood_timer = None
        self.registry.discard(self)
        try:
            if self.handshake.lost():
                why = reason.getErrorMessage() if reason is not None else "closed"
                if self.refused_by:
                    why = f"it refused the link: {self.refused_by}"
                self.node.link_lost(self, why)
        finally:
            self.closed.callback(None)  # shutdown waits on this, whatever happened


if TYPE_CHECKING:
    def _a_wire(proto: PeerProtocol) -> Wire:
        return proto  # mypy checks that PeerProtocol is an interfaces.Wire


class PeerServerFactory(Factory):
    """Accepts peers' connections; keeps the open ones so shutdown can close them (stopping
    the listener does not)."""

    noisy = False

    def __init__(self, node: Node, clock: IReactorTime) -> None:
        self.node = node
        self.clock = clock
        self.open: set[PeerProtocol] = set()

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        if len(self.open) >= MAX_INBOUND:
            _log(self.clock, "inbound full", LogLevel.warn,
                 "{n} connections open: {address} refused", n=len(self.open), address=_describe(addr))
            return None
        return PeerProtocol(self.node, self.clock, registry=self.open)
