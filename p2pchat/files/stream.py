"""The transfer connection: the receiver dials the offerer's file port (the ``port`` of the
offer) and both sides go straight to mutual TLS with the identities of the chat; each side
checks the other's certificate against the fingerprint of the chat link the offer went over
(the pinned key), as the chat links do.  Then the receiver asks, one line at a time:

    {"offer": ID, "entry": I, "what": "chunks"}            -> {"length": N} + N bytes of hashes
    {"offer": ID, "entry": I, "what": "bytes", "from": K}  -> {"length": N} + the file from K
    (or {"error": WHY}: refused)

Each transfer connection runs in a thread of its own (``Channel``: a blocking socket, TLS by
pyOpenSSL with the very contexts and checks of the chat links), not on the reactor: the
encryption, the hashing and the file's reads and writes let go of the GIL on their megabyte
buffers, so the reactor thread only serves the chat, and a chat line never waits behind a
transfer.  The reactor only accepts connections (``Acceptor``), answers what the threads ask
of the transfers' state (``on_reactor``), and takes their progress, a few times a second.
Memory stays flat: one block per connection and the socket buffers, whatever the size.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import struct
import threading
import time
from typing import IO, TYPE_CHECKING, Any, Callable, Protocol as TypingProtocol

from twisted.internet.interfaces import IReadDescriptor
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from p2pchat import ratelog
from p2pchat.identity import Identity, certificate_fingerprint

if TYPE_CHECKING:
    from OpenSSL import SSL

log = Logger()

#: A transfer connection that has not finished TLS, or sent nothing (or taken nothing) for this
#: many seconds while the other side is waited for, is closed.
STREAM_TIMEOUT = 30.0
#: Transfer connections we take at once (past this a new one is closed at once).
MAX_STREAMS = 16
#: Bytes read from the file and given to TLS at once (one buffer per connection).
BLOCK_BYTES = 1 << 20
#: A request or answer line is at most this long.
HEADER_BYTES = 4096
#: Bytes a transfer connection's socket buffers hold, and what one TLS read asks for where
#: it goes through pyOpenSSL's ``recv_into`` (``filler``): a TLS record's most (one
#: read gives one record; pyOpenSSL allocates what is asked each time).
SOCKET_BUFFER = 4 << 20
READ_BYTES = 16 * 1024
#: Progress is handed to the reactor at most this often (seconds) per connection.
REPORT_EVERY = 0.25
#: A thread waits this long (seconds) for the reactor to answer it (the reactor gone: stop).
REACTOR_WAIT = 10.0
#: How much lower a transfer thread's priority is than the chat's (nice; 5: about a third of
#: a core's share where both want it, all of an idle one).
TRANSFER_NICE = 5


class StreamError(Exception):
    """The transfer connection can't go on: ``why`` (said to the user), ``bad``: the other
    side went wrong (garbage, more than offered, a wrong key), not merely gone."""

    def __init__(self, why: str, bad: bool = False) -> None:
        super().__init__(why)
        self.why = why
        self.bad = bad


def _log(reactor: Any, kind: str, level: LogLevel, fmt: str, /, **kw: Any) -> None:
    """Per connection, which anyone on the LAN can open at will: rate-limited (ratelog.py);
    on the reactor (the loggers are the reactor's)."""
    reactor.callFromThread(ratelog.limiter(reactor).emit, log, kind, level, fmt, **kw)


def on_reactor(reactor: Any, fn: Callable[..., Any], *args: Any) -> Any:
    """From a transfer thread: ``fn(*args)`` run on the reactor (the transfers' state is
    the reactor's), its result here; the reactor gone (shutting down): StreamError."""
    answers: queue.Queue[tuple[bool, Any]] = queue.Queue(1)

    def call() -> None:
        try:
            answers.put((True, fn(*args)))
        except Exception as e:  # said to the thread, which fails the transfer and logs it
            answers.put((False, e))

    reactor.callFromThread(call)
    try:
        ok, value = answers.get(timeout=REACTOR_WAIT)
    except queue.Empty:
        raise StreamError("shutting down") from None
    if not ok:
        raise value
    return value


def behind_the_chat() -> None:
    """Called by a transfer thread as it starts: it yields the CPU to the reactor thread
    (the chat) when both want one (a nice value TRANSFER_NICE higher, for this thread only:
    Linux's threads each have theirs); elsewhere nothing."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid,
                       min(19, os.getpriority(os.PRIO_PROCESS, tid) + TRANSFER_NICE))
    except (AttributeError, OSError):
        pass


def log_crash(reactor: Any, what: str, error: BaseException) -> None:
    """A bug in a transfer thread: one log line with its traceback (never on screen), on the
    reactor; the transfer fails."""
    failure = Failure(error)
    reactor.callFromThread(lambda: log.failure("{what} failed", failure, what=what))


def _tls() -> Any:
    """pyOpenSSL's SSL module, imported at the first transfer connection, not at start (an
    idle peer holds no TLS library: latetls.py)."""
    from OpenSSL import SSL

    return SSL


class Channel:
    """One transfer connection, used from its own thread only (but ``cut``): blocking
    reads and writes with STREAM_TIMEOUT on each, TLS by pyOpenSSL."""

    def __init__(self, sock: socket.socket, identity: Identity, server: bool) -> None:
        self.sock = sock
        self.identity = identity
        self.server = server
        self.fp = ""
        self.conn: SSL.Connection | None = None
        self._fill: Callable[[memoryview], None] | None = None  # TLS reads fill a view
        self._in = bytearray()  # read, not yet taken (after a line, the answer's first bytes)
        self._why = ""  # set by cut
        self._lock = threading.Lock()
        self._closed = False

    def handshake(self, expected: Callable[[str], bool]) -> str:
        """Mutual TLS, then the peer's certificate checked (``expected(fp)``); its fp."""
        sock = self.sock
        sock.setblocking(True)
        seconds = int(STREAM_TIMEOUT)
        timeval = struct.pack("ll", seconds, int((STREAM_TIMEOUT - seconds) * 1e6))
        for option, value in ((socket.SO_RCVTIMEO, timeval), (socket.SO_SNDTIMEO, timeval),
                              (socket.SO_SNDBUF, SOCKET_BUFFER),
                              (socket.SO_RCVBUF, SOCKET_BUFFER)):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option,
                                value if isinstance(value, bytes) else int(value))
            except OSError:
                pass
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        SSL = _tls()
        conn = SSL.Connection(self.identity.tls_context(self.server), sock)
        if self.server:
            conn.set_accept_state()
        else:
            conn.set_connect_state()
        self.conn = conn
        self._fill = filler(conn)
        self._io(conn.do_handshake)
        fp = certificate_fingerprint(conn.get_peer_certificate()) or ""
        if not fp or not expected(fp):
            raise StreamError(f"a certificate we don't expect ({fp[:16] or 'none'})", bad=True)
        self.fp = fp
        return fp

    def _io(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._why:
            raise StreamError(self._why)
        SSL = _tls()
        try:
            return fn(*args)
        except (SSL.WantReadError, SSL.WantWriteError):
            raise StreamError(self._why or f"silent for {STREAM_TIMEOUT:.0f} s") from None
        except SSL.ZeroReturnError:
            raise StreamError(self._why or "closed") from None
        except SSL.SysCallError as e:
            raise StreamError(self._why or _said(e)) from None
        except (SSL.Error, OSError) as e:
            raise StreamError(self._why or f"TLS: {_said(e)}") from None

    def send_line(self, obj: dict[str, Any]) -> None:
        self.sendall(json.dumps(obj).encode("utf-8") + b"\n")

    def sendall(self, data: bytes | memoryview) -> None:
        assert self.conn is not None
        self._io(self.conn.sendall, data)

    def read_line(self) -> dict[str, Any]:
        """The next line, a JSON object (else StreamError, bad)."""
        assert self.conn is not None
        while b"\n" not in self._in:
            if len(self._in) > HEADER_BYTES:
                raise StreamError(f"a line over {HEADER_BYTES} bytes", bad=True)
            self._in += self._io(self.conn.recv, HEADER_BYTES)
        end = self._in.index(b"\n")
        line, self._in = bytes(self._in[:end]), self._in[end + 1:]
        if len(line) > HEADER_BYTES:
            raise StreamError(f"a line over {HEADER_BYTES} bytes", bad=True)
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            raise StreamError("something that is not a JSON line", bad=True)
        return obj

    def read_exactly(self, view: memoryview) -> None:
        """``view`` filled with the answer's next bytes (else StreamError): what a line read
        left over first, then TLS reads straight into it, a MiB in one call here (not one a
        record: 64 of them)."""
        got = 0
        if self._in:
            got = min(len(view), len(self._in))
            view[:got] = self._in[:got]
            del self._in[:got]
        if got < len(view):
            assert self._fill is not None
            self._io(self._fill, view[got:])

    def extra(self) -> bool:
        """Bytes came past an answer's end that nobody asked for."""
        return bool(self._in) or (self.conn is not None and self.conn.pending() > 0)

    def cut(self, why: str) -> None:
        """Close it (from any thread): the thread's read or write under way ends, and it
        says ``why``."""
        self._why = self._why or why
        with self._lock:
            if not self._closed:
                try:
                    self.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        """By its own thread, at its end."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self.sock.close()


def filler(conn: SSL.Connection) -> Callable[[memoryview], None]:
    """What fills a buffer from the TLS connection ``conn`` (or raises as pyOpenSSL does):
    ``SSL_read`` straight into the buffer, through pyOpenSSL's own binding, its errors
    raised by pyOpenSSL as ``recv_into`` raises them.  ``recv_into`` reads each record (16
    KiB) into a buffer it allocates, then copies it into ours with the GIL held: 64 times a
    MiB, with a Python call each, a tenth of a receiver's CPU.  Where that binding is not
    there (another pyOpenSSL): ``recv_into``."""
    SSL = _tls()
    try:
        from OpenSSL.SSL import _ffi, _lib

        ssl, raise_error = conn._ssl, conn._raise_ssl_error
        read, from_buffer = _lib.SSL_read, _ffi.from_buffer
    except (ImportError, AttributeError):
        return recv_filler(conn)

    def fill(view: memoryview) -> None:
        got, want = 0, len(view)
        with from_buffer(view, require_writable=True) as pointer:
            while got < want:
                n = read(ssl, pointer + got, want - got)
                if n <= 0:
                    raise_error(ssl, n)  # closed, timed out, TLS: raised as recv_into would
                    raise SSL.ZeroReturnError()
                got += n

    return fill


def recv_filler(conn: SSL.Connection) -> Callable[[memoryview], None]:
    """``filler`` by pyOpenSSL's ``recv_into``, a record at a time."""
    SSL = _tls()

    def fill_slowly(view: memoryview) -> None:
        got, want = 0, len(view)
        while got < want:
            n = conn.recv_into(view[got:], min(want - got, READ_BYTES))
            if n <= 0:
                raise SSL.ZeroReturnError()
            got += n

    return fill_slowly


def _said(e: BaseException) -> str:
    args = getattr(e, "args", ())
    if args and isinstance(args[-1], str):
        return args[-1]
    return str(e) or type(e).__name__


def address_of(sock: socket.socket) -> str:
    try:
        host, port = sock.getpeername()[:2]
    except OSError:
        return "?"
    return f"{host}:{port}"


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


class Served:
    """The offerer's side of one transfer connection, in its own thread."""

    def __init__(self, files: Serving, reactor: Any, channel: Channel, address: str,
                 registry: set[Served]) -> None:
        self.files = files
        self.reactor = reactor
        self.channel = channel
        self.address = address
        self.registry = registry
        self.fp = ""
        self.offer_id = ""  # what it sends now
        self.sending = False
        self._stop = threading.Event()

    def start(self) -> None:
        self.registry.add(self)
        threading.Thread(target=self.run, name="p2pchat file out", daemon=True).start()

    def cut(self, why: str) -> None:
        self._stop.set()
        self.channel.cut(why)

    def run(self) -> None:
        """The thread: handshake, then each request answered, until the receiver closes."""
        behind_the_chat()
        why, bad = "closed", False
        try:
            self.fp = self.channel.handshake(
                lambda fp: bool(on_reactor(self.reactor, self.files.fp_known, fp)))
            while True:
                self._answer(self.channel.read_line())
        except StreamError as e:
            why, bad = e.why, e.bad
        except Exception as e:
            why, bad = "an error (logged)", True
            log_crash(self.reactor, "sending a file", e)
        finally:
            self.channel.close()
            self.reactor.callFromThread(self._ended, why, bad)

    def _answer(self, request: dict[str, Any]) -> None:
        answer = on_reactor(self.reactor, self.files.serve, self.fp, request)
        if isinstance(answer, str):
            self.channel.send_line({"error": answer})
            return
        what, span = answer
        if span is None:
            assert isinstance(what, bytes)
            self.channel.send_line({"length": len(what)})
            self.channel.sendall(what)
            return
        assert not isinstance(what, bytes)
        self.offer_id, entry = str(request.get("offer")), int(request.get("entry", 0))
        self.sending = True
        with what:
            self._send(what, entry, *span)
        self.sending = False

    def _send(self, file: IO[bytes], entry: int, offset: int, length: int) -> None:
        """The file from ``offset``, a block at a time, at --file-rate at most."""
        self.channel.send_line({"length": length})
        buf = memoryview(bytearray(BLOCK_BYTES))
        fd, pos, end = file.fileno(), offset, offset + length
        rate, began, told = self.files.rate, time.monotonic(), time.monotonic()
        while pos < end:
            n = os.preadv(fd, [buf[:min(BLOCK_BYTES, end - pos)]], pos)
            if n <= 0:  # the file shrank: the receiver's count comes up short
                raise StreamError("the file shrank while it was sent")
            self.channel.sendall(buf[:n])
            pos += n
            now = time.monotonic()
            if now - told >= REPORT_EVERY or pos >= end:
                told = now
                self.reactor.callFromThread(self.files.sent, self.fp, self.offer_id, entry, pos)
            if rate:  # the next block waits until these went at the rate
                wait = began + (pos - offset) / rate - now
                if wait > 0 and self._stop.wait(wait):
                    raise StreamError("cancelled")

    def _ended(self, why: str, bad: bool) -> None:
        """On the reactor, once the thread is done."""
        self.registry.discard(self)
        if not self.fp:
            _log(self.reactor, "transfer key", LogLevel.warn if bad else LogLevel.info,
                 "transfer connection from {address}: {why}: closed", address=self.address,
                 why=why)
        elif bad:
            _log(self.reactor, "transfer request", LogLevel.warn,
                 "transfer connection {address}: {why}: closed", address=self.address, why=why)
        if self.sending:
            self.sending = False
            self.files.unserved(self.fp, self.offer_id)


@implementer(IReadDescriptor)
class Acceptor:
    """The file port's listening socket, read by the reactor: each connection taken goes to
    a thread of its own (``Served``), MAX_STREAMS at most."""

    def __init__(self, files: Serving, reactor: Any, interface: str,
                 registry: set[Served]) -> None:
        self.files = files
        self.reactor = reactor
        self.open = registry  # the connections running
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((interface, 0))
        self.sock.listen(MAX_STREAMS)
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]

    def start(self) -> None:
        self.reactor.addReader(self)

    def stop(self) -> None:
        """The port closed and every transfer connection cut."""
        self.reactor.removeReader(self)
        self.sock.close()
        for served in list(self.open):
            served.cut("shutting down")

    def fileno(self) -> int:
        return self.sock.fileno()

    def doRead(self) -> None:
        for _ in range(MAX_STREAMS):
            try:
                sock, addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # out of descriptors, say: the next turn tries again
                _log(self.reactor, "file port", LogLevel.warn, "file port: {why}", why=str(e))
                return
            address = f"{addr[0]}:{addr[1]}"
            identity = self.files.identity
            if len(self.open) >= MAX_STREAMS or identity is None:
                _log(self.reactor, "transfers full", LogLevel.warn,
                     "{n} transfer connections open: {address} refused", n=len(self.open),
                     address=addr[0])
                sock.close()
                continue
            Served(self.files, self.reactor, Channel(sock, identity, server=True), address,
                   self.open).start()

    def connectionLost(self, reason: Failure) -> None:
        self.sock.close()

    def logPrefix(self) -> str:
        return "file port"
