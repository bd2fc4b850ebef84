"""The transfer connection: the receiver dials the offerer's file port (the ``port`` of the
offer) and both sides go straight to mutual TLS with the identities of the chat; each side
checks the other's certificate against the fingerprint of the chat link the offer went over
(the pinned key), as the chat links do.  Then the receiver asks, one line at a time:

    {"offer": ID, "entry": I, "what": "chunks"}            -> {"length": N} + N bytes of hashes
    {"offer": ID, "entry": I, "what": "bytes", "from": K}  -> {"length": N} + the file from K
    (or {"error": WHY}: refused)

The bytes come from ``FileProducer``, a push producer over the open file (flat memory:
at most a few blocks in flight, paused whenever TLS's buffer is full); the receiving side
counts them and cuts a sender that sends more than it said.
"""

from __future__ import annotations

import json
import socket
from typing import IO, TYPE_CHECKING, Any, Callable, Protocol as TypingProtocol

from twisted.internet.interfaces import IHandshakeListener, IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger, LogLevel
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from p2pchat import ratelog
from p2pchat.identity import ContextFactory, Identity, certificate_fingerprint

if TYPE_CHECKING:
    from twisted.internet.interfaces import IAddress

log = Logger()


def _log(clock: Any, kind: str, level: LogLevel, fmt: str, /, **kw: Any) -> None:
    """Per connection, which anyone on the LAN can open at will: rate-limited (ratelog.py)."""
    ratelog.limiter(clock).emit(log, kind, level, fmt, **kw)

#: A transfer connection that has not finished TLS, or sent nothing while a request is
#: waiting, for this many seconds is closed.
STREAM_TIMEOUT = 30.0
#: Transfer connections we take at once (past this a new one is closed at once).
MAX_STREAMS = 16
#: Bytes read from the file per write, and writes per reactor turn (then the reactor serves
#: the chat before the next ones).
BLOCK_BYTES = 128 * 1024
BLOCKS_PER_TURN = 4
#: A request or answer line is at most this long.
HEADER_BYTES = 4096
#: Bytes a transfer connection's socket buffers hold, and what one read takes (and the write
#: buffer holds before the producer is paused): a larger read would hold the reactor longer
#: (the chat waits behind it).
SOCKET_BUFFER = 4 << 20
READ_BYTES = 256 * 1024


class _Timer(TypingProtocol):
    def active(self) -> bool: ...

    def cancel(self) -> None: ...

    def reset(self, seconds: float) -> None: ...


@implementer(IPushProducer)
class FileProducer:
    """Writes ``length`` bytes of ``file`` from ``offset`` to ``consumer`` (a transport), a
    few blocks per reactor turn, paused while the consumer's buffer is full.  ``sent(n)``: n
    more bytes written; ``done()``: all written (not called if stopped)."""

    def __init__(self, file: IO[bytes], offset: int, length: int, consumer: Any, clock: Any,
                 sent: Callable[[int], None], done: Callable[[], None],
                 rate: float = 0.0) -> None:
        self.file = file
        self.rate = rate  # bytes per second at most (0: as fast as the consumer takes them)
        self.left = length
        self.consumer = consumer
        self.clock = clock
        self._sent = sent
        self._done = done
        self.paused = False
        self.stopped = False
        self._call: Any = None
        self._next_at = 0.0  # with a rate: not before then
        file.seek(offset)

    def start(self) -> None:
        self.consumer.registerProducer(self, True)
        self._schedule()

    def _schedule(self) -> None:
        if self._call is None and not self.paused and not self.stopped:
            delay = max(0.0, self._next_at - self.clock.seconds())
            self._call = self.clock.callLater(delay, self._pump)

    def _pump(self) -> None:
        self._call = None
        before = self.left
        for _ in range(BLOCKS_PER_TURN):
            if self.paused or self.stopped or self.left <= 0:
                break
            block = self.file.read(min(BLOCK_BYTES, self.left))
            if not block:  # the file shrank: the receiver's count comes up short
                self.stopProducing()
                self.consumer.loseConnection()
                return
            self.left -= len(block)
            self.consumer.write(block)
            self._sent(len(block))
        if self.stopped:
            return
        if self.left <= 0:
            self._finish()
            return
        if self.rate:  # the next blocks wait until these went at the rate
            self._next_at = self.clock.seconds() + (before - self.left) / self.rate
        self._schedule()

    def _finish(self) -> None:
        self.stopped = True
        self.file.close()
        self.consumer.unregisterProducer()
        self._done()

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self._schedule()

    def stopProducing(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.file.close()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None


class Serving(TypingProtocol):
    """What the sending side asks of the transfers (transfers.Transfers)."""

    @property
    def identity(self) -> Identity | None: ...

    @property
    def rate(self) -> float:
        """Bytes per second a transfer of ours sends at most (0: no limit; --file-rate)."""
        ...

    def fp_known(self, fp: str) -> bool: ...

    def serve(self, fp: str, request: dict[str, Any]
              ) -> tuple[bytes, None] | tuple[IO[bytes], tuple[int, int]] | str: ...

    def sent(self, fp: str, offer_id: str, entry: int, upto: int) -> None: ...

    def unserved(self, fp: str, offer_id: str) -> None:
        """A connection that was sending ``offer_id`` closed before the end."""
        ...


def _json_object(line: bytes) -> dict[str, Any] | None:
    """A request or answer line: a JSON object, or None."""
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _bigger_buffers(transport: Any) -> None:
    """More bytes per wake-up on a transfer connection: a larger write buffer before the
    producer is paused, larger socket buffers (fewer turns of each reactor per megabyte)."""
    transport.bufferSize = READ_BYTES  # also what one read takes (tcp.Connection.doRead)
    handle: Any = getattr(transport, "getHandle", lambda: None)()
    for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        try:
            handle.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
        except (AttributeError, OSError):
            pass


class _TLSLink(LineReceiver):
    """TLS from the first byte, the peer's certificate checked against ``expected(fp)``, and
    a timeout while waiting."""

    delimiter = b"\n"
    MAX_LENGTH = HEADER_BYTES
    transport: Any
    server = False

    def __init__(self, identity: Identity, clock: Any) -> None:
        self.identity = identity
        self.clock = clock
        self.fp = ""
        self.proven = False
        self._timer: _Timer | None = None
        self.heard = 0.0  # when the last bytes of an answer came

    def expected(self, fp: str) -> bool:
        raise NotImplementedError

    def proven_now(self) -> None:
        raise NotImplementedError

    def connectionMade(self) -> None:
        if hasattr(self.transport, "setTcpNoDelay"):
            self.transport.setTcpNoDelay(1)
        _bigger_buffers(self.transport)
        self.transport.startTLS(ContextFactory(self.identity, server=self.server))
        self._timer = self.clock.callLater(STREAM_TIMEOUT, self._too_slow)

    def handshakeCompleted(self) -> None:
        fp = certificate_fingerprint(self.transport.getPeerCertificate()) or ""
        if not fp or not self.expected(fp):
            _log(self.clock, "transfer key", LogLevel.warn,
                 "transfer connection from {address}: a certificate we don't expect "
                 "({fp:.16}): closed", address=self.address(), fp=fp or "none")
            self.transport.abortConnection()
            return
        self.fp, self.proven = fp, True
        self.proven_now()

    def address(self) -> str:
        peer = self.transport.getPeer() if self.transport is not None else None
        return f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}"

    def waiting(self, on: bool) -> None:
        """The timeout runs while we wait for the other side (``on``), not while we send."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = self.clock.callLater(STREAM_TIMEOUT, self._too_slow) if on else None

    def _too_slow(self) -> None:
        self._timer = None
        quiet = self.clock.seconds() - self.heard
        if quiet < STREAM_TIMEOUT:  # bytes came meanwhile
            self._timer = self.clock.callLater(STREAM_TIMEOUT - quiet, self._too_slow)
            return
        _log(self.clock, "transfer silent", LogLevel.info,
             "transfer connection {address} silent for {t:.0f} s: closed",
             address=self.address(), t=STREAM_TIMEOUT)
        self.transport.abortConnection()

    def lineLengthExceeded(self, line: bytes) -> None:
        _log(self.clock, "transfer line", LogLevel.warn,
             "transfer connection {address}: a line over {n} bytes: closed",
             address=self.address(), n=HEADER_BYTES)
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


@implementer(IHandshakeListener)
class ServeProtocol(_TLSLink):
    """The offerer's side of one transfer connection."""

    server = True

    def __init__(self, files: Serving, clock: Any, registry: set[ServeProtocol]) -> None:
        assert files.identity is not None
        super().__init__(files.identity, clock)
        self.files = files
        self.registry = registry
        self.producer: FileProducer | None = None
        self.offer_id = ""  # what it sends now

    def expected(self, fp: str) -> bool:
        return self.files.fp_known(fp)

    def proven_now(self) -> None:
        self.waiting(True)

    def connectionMade(self) -> None:
        self.registry.add(self)
        super().connectionMade()

    def lineReceived(self, line: bytes) -> None:
        if not self.proven or self.producer is not None:
            self.transport.abortConnection()  # nothing is asked before TLS, nor while sending
            return
        request = _json_object(line)
        if request is None:
            _log(self.clock, "transfer request", LogLevel.warn,
                 "transfer connection {address}: a request that is not JSON: closed",
                 address=self.address())
            self.transport.abortConnection()
            return
        answer = self.files.serve(self.fp, request)
        if isinstance(answer, str):
            self._header({"error": answer})
            return
        what, span = answer
        if span is None:
            assert isinstance(what, bytes)
            self._header({"length": len(what)})
            self.transport.write(what)
            return
        assert not isinstance(what, bytes)
        offset, length = span
        self._header({"length": length})
        self.waiting(False)
        offer_id, entry = str(request.get("offer")), int(request.get("entry", 0))
        self.offer_id = offer_id
        position = [offset]

        def sent(n: int) -> None:
            position[0] += n
            self.files.sent(self.fp, offer_id, entry, position[0])

        self.producer = FileProducer(what, offset, length, self.transport, self.clock, sent,
                                     self._sent_all, self.files.rate)
        self.producer.start()

    def _header(self, obj: dict[str, Any]) -> None:
        self.transport.write(json.dumps(obj).encode("utf-8") + b"\n")

    def _sent_all(self) -> None:
        self.producer = None
        self.waiting(True)

    def connectionLost(self, reason: Failure | None = None) -> None:
        super().connectionLost(reason)
        self.registry.discard(self)
        if self.producer is not None:
            self.producer.stopProducing()
            self.producer = None
            self.files.unserved(self.fp, self.offer_id)


class ServeFactory(Factory):
    noisy = False

    def __init__(self, files: Serving, clock: Any) -> None:
        self.files = files
        self.clock = clock
        self.open: set[ServeProtocol] = set()

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        if len(self.open) >= MAX_STREAMS or self.files.identity is None:
            _log(self.clock, "transfers full", LogLevel.warn,
                 "{n} transfer connections open: {address} refused", n=len(self.open),
                 address=f"{getattr(addr, 'host', '?')}")
            return None
        return ServeProtocol(self.files, self.clock, self.open)


class Fetching(TypingProtocol):
    """The receiving side's job over one connection (receive.Receive)."""

    def proven(self, link: FetchProtocol) -> None: ...

    def lost(self, link: FetchProtocol, why: str) -> None: ...


@implementer(IHandshakeListener)
class FetchProtocol(_TLSLink):
    """The receiver's side: asks, then reads exactly the length announced, handing the bytes
    to ``sink``; more than that is a sender gone wrong and is cut off."""

    def __init__(self, identity: Identity, clock: Any, expect_fp: str, job: Fetching) -> None:
        super().__init__(identity, clock)
        self.expect_fp = expect_fp
        self.job = job
        self.left = -1  # bytes still to come of the answer (-1: waiting for its header)
        self.expect = 0
        self._sink: Callable[[bytes], None] | None = None
        self._end: Callable[[], None] | None = None
        self._refused: Callable[[str], None] | None = None
        self.why = ""

    def expected(self, fp: str) -> bool:
        return fp == self.expect_fp

    def proven_now(self) -> None:
        self.waiting(False)
        self.job.proven(self)

    def ask(self, request: dict[str, Any], expect: int, sink: Callable[[bytes], None],
            end: Callable[[], None], refused: Callable[[str], None]) -> None:
        """Send one request; ``expect``: the length the answer must have."""
        self.expect, self.left = expect, -1
        self._sink, self._end, self._refused = sink, end, refused
        self.transport.write(json.dumps(request).encode("utf-8") + b"\n")
        self.waiting(True)

    def cut(self, why: str) -> None:
        """Close at once (the sender went wrong): ``why`` is what the job is told."""
        self.why = why
        self.transport.abortConnection()

    def lineReceived(self, line: bytes) -> None:
        if self.left != -1 or self._sink is None:
            self.cut("it sent something not asked for")
            return
        header = _json_object(line)
        if header is None:
            self.cut("it answered with something that is not JSON")
            return
        if "error" in header:
            refused, self._sink = self._refused, None
            self.waiting(False)
            assert refused is not None
            refused(str(header["error"])[:200])
            return
        if header.get("length") != self.expect:
            self.cut(f"it offered {header.get('length')!r} bytes, not the {self.expect} asked")
            return
        self.left = self.expect
        if self.left == 0:
            self._answered()
            return
        self.setRawMode()

    def dataReceived(self, data: bytes) -> None:
        if not self.line_mode and not self._buffer and not self._busyReceiving:
            self.rawDataReceived(data)  # the bytes of an answer: straight to the job
        else:
            super().dataReceived(data)

    def rawDataReceived(self, data: bytes) -> None:
        if self.left <= 0 or len(data) > self.left:
            self.cut("it sent more than it offered")
            return
        self.left -= len(data)
        self.heard = self.clock.seconds()  # the timer, when it rings, counts from here
        assert self._sink is not None
        self._sink(data)
        if self.left == 0 and not self.why:
            self.setLineMode()
            self._answered()

    def _answered(self) -> None:
        end, self._sink, self.left = self._end, None, -1
        self.waiting(False)
        if end is not None:
            end()

    def connectionLost(self, reason: Failure | None = None) -> None:
        super().connectionLost(reason)
        why = self.why or (reason.getErrorMessage() if reason is not None else "closed")
        self.job.lost(self, why)


class FetchFactory(Factory):
    noisy = False

    def __init__(self, make: Callable[[], FetchProtocol]) -> None:
        self._make = make

    def buildProtocol(self, addr: IAddress | None) -> Protocol:
        return self._make()
