"""Tor, through txtorcon: a Tor of our own (``--tor``: ``txtorcon.launch`` of the system's
``tor``, with ``--torrc`` lines) or a running one (``--tor-control ENDPOINT``); our v3 onion
service, whose key is kept in the data dir (the same address across restarts); and the
client endpoints that dial onion contacts.

Onion links are TLS from their first byte (``handshake``'s ``tls_first``), not STARTTLS:
txtorcon's SOCKS client hands our protocol the TCP transport but keeps being that
transport's protocol, so after a ``startTLS`` the TLS layer reports its finished handshake
to txtorcon's protocol, never to ours (tests/test_onion.py shows it).  The certificates and
their checks are the LAN's.  The onion service forwards to a listener of its own on
127.0.0.1 (TLS from the first byte, and an invite secret asked of every join), apart from
the LAN's listener: a base peer never reaches it, and the LAN never learns of it.

Tor starts in the background: the chat runs on the LAN meanwhile; ``state`` says how far it
is, and a failure is one notice, not an exit.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Callable

from twisted.internet import defer, error
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from p2pchat.addresses import parse_port
from p2pchat.errors import StartError
from p2pchat.identity import ContextFactory, Identity, _write_private
from p2pchat.reach import Endpoint

log = Logger()

#: The port our onion service offers (its virtual port; the invite carries it).
ONION_PORT = 7467
#: Where our onion service's key is kept in the data dir.
ONION_KEY_NAME = "onion.key"
#: Where the Tor that --tor starts keeps its state, in the data dir.
TOR_DIR_NAME = "tor"
#: How long (seconds) a Tor we start may take to bootstrap before we give up on it.
TOR_START_TIMEOUT = 180.0
#: An onion dial that has not connected after this many seconds has failed (Tor's own
#: circuit timeouts can take minutes).
ONION_DIAL_TIMEOUT = 60.0
#: After a failed onion dial, Tor is told to forget its circuits and onion descriptors
#: (NEWNYM: a stale descriptor of a contact that came back is not tried again), at most
#: this often (seconds; Tor itself rate-limits it to once per 10 s).
NEWNYM_EVERY = 10.0
#: Where ``tor`` is looked for when it is not on the PATH (a user's PATH may lack /usr/sbin).
TOR_PLACES = ("/usr/bin/tor", "/usr/sbin/tor")
#: Tries (0.2 s apart) to connect to the control socket of a Tor we launched.
CONTROL_ATTEMPTS = 50
#: Lines of a --torrc file, at most.
MAX_TORRC_LINES = 500


def read_torrc(path: str) -> list[tuple[str, str]]:
    """The ``Key value`` lines of a --torrc file (comments and blank lines skipped);
    ValueError says what is wrong."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(1_000_000)
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"--torrc {path}: can't read it: {e}") from None
    lines: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        if not key.replace("_", "").isalnum():
            raise ValueError(f"--torrc {path} line {number}: {key[:40]!r} is not an option")
        lines.append((key, value.strip()))
    if len(lines) > MAX_TORRC_LINES:
        raise ValueError(f"--torrc {path}: over {MAX_TORRC_LINES} lines")
    return lines


def parse_tor_control(text: str) -> str:
    """--tor-control: ``tcp:HOST:PORT`` or ``unix:PATH`` (Twisted's endpoint syntax);
    ValueError says what is wrong."""
    kind, _, rest = text.partition(":")
    if kind == "unix" and rest.strip():
        return text
    if kind == "tcp":
        host, sep, port = rest.rpartition(":")
        if sep and host and port.isascii() and port.isdigit():
            parse_port(port, "--tor-control port")
            return text
    raise ValueError(f"--tor-control must be tcp:HOST:PORT or unix:PATH (e.g. "
                     f"tcp:127.0.0.1:9051), not {text[:80]!r}")


def tor_binary() -> str:
    """The system's ``tor``, or a StartError saying how to get it."""
    path = shutil.which("tor") or next((p for p in TOR_PLACES if os.path.exists(p)), "")
    if not path:
        raise StartError("--tor needs the tor program, not found (Debian: apt-get install "
                         "tor); or use a running Tor with --tor-control")
    return path


def _tls_listener(context: ContextFactory, server: Factory) -> Any:
    """TLS around the onion listener's factory, which may refuse a connection (None): then
    no TLS protocol is made around nothing.  (Twisted's TLS layer imported here, with --tor
    only: latetls.py.)"""
    from twisted.protocols.tls import TLSMemoryBIOFactory

    class TLSListener(TLSMemoryBIOFactory):
        def buildProtocol(self, addr: Any) -> Any:
            inner = self.wrappedFactory.buildProtocol(addr)
            return None if inner is None else self.protocol(self, inner)

    return TLSListener(context, False, server)


class _NoTor:
    """The endpoint of a dial while Tor is not up: it fails at once (the dialer backs off)."""

    def __init__(self, why: str) -> None:
        self.why = why

    def connect(self, protocolFactory: Any) -> defer.Deferred[Any]:
        return defer.fail(error.ConnectError(string=self.why))


class _OnionDial:
    """A dial through Tor, bounded by ONION_DIAL_TIMEOUT; a failure tells ``onion``."""

    def __init__(self, onion: Onion, endpoint: Any) -> None:
        self.onion = onion
        self.endpoint = endpoint

    def connect(self, protocolFactory: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = self.endpoint.connect(protocolFactory)
        d.addTimeout(ONION_DIAL_TIMEOUT, self.onion.reactor)
        d.addErrback(self.onion.dial_failed)
        return d


class Onion:
    """Our Tor and our onion service.  ``server`` builds the protocol of one connection that
    came through the onion (the onion listener's factory, unwrapped: TLS goes around it)."""

    def __init__(self, reactor: Any, data_dir: str, identity: Identity, server: Factory,
                 notice: Callable[[str, bool], None], control: str | None = None,
                 torrc: list[tuple[str, str]] | None = None) -> None:
        self.reactor = reactor
        self.data_dir = data_dir
        self.identity = identity
        self.server = server
        self.notice = notice
        self.control = control  # None: launch our own
        self.torrc = torrc or []
        self.tor: Any = None  # a txtorcon.Tor once connected
        self.listener: Any = None
        self.service: Any = None
        #: our onion's host name (``xxx.onion``) once it is published
        self.host = ""
        self.state = "starting"
        self._stopping = False
        self._newnym_at = -NEWNYM_EVERY

    @property
    def port(self) -> int:
        return ONION_PORT

    def start(self) -> defer.Deferred[None]:
        """Bring Tor and the onion service up, in the background; never fails (a failure
        is told once, and ``state`` keeps it)."""
        d = defer.ensureDeferred(self._start())
        d.addErrback(self._failed)
        return d

    async def _start(self) -> None:
        import txtorcon

        if self.control is not None:
            from twisted.internet.endpoints import clientFromString

            self.state = f"connecting to Tor at {self.control}"
            self.tor = await txtorcon.connect(self.reactor,
                                              clientFromString(self.reactor, self.control))
        else:
            self.state = "starting Tor"
            config = txtorcon.TorConfig()
            for name, value in self.torrc:
                old = config.unsaved.get(name)
                setattr(config, name, value if old is None else
                        ([*old, value] if isinstance(old, list) else [old, value]))
            tor_dir = os.path.realpath(os.path.join(self.data_dir, TOR_DIR_NAME))
            os.makedirs(tor_dir, mode=0o700, exist_ok=True)
            control = os.path.join(tor_dir, "control.socket")
            self.tor = await txtorcon.launch(
                self.reactor, data_directory=tor_dir, tor_binary=tor_binary(),
                control_port=f"unix:{control}",
                connection_creator=lambda: defer.ensureDeferred(self._control(control)),
                timeout=TOR_START_TIMEOUT, kill_on_stderr=False, _tor_config=config,
                progress_updates=lambda pct, tag, text: log.info(
                    "Tor: {pct}% {text}", pct=pct, text=text))
        if self._stopping:
            return
        self.tor.protocol.on_disconnect.addBoth(self._gone)
        local = self.listen()
        self.state = "publishing our onion service"
        key_path = os.path.join(self.data_dir, ONION_KEY_NAME)
        key: str | None = None
        if os.path.exists(key_path):
            with open(key_path, encoding="ascii") as f:
                key = f.read().strip() or None
        self.service = await self.tor.create_onion_service(
            [f"{ONION_PORT} 127.0.0.1:{local}"], private_key=key, version=3,
            progress=lambda pct, tag, text: log.info("onion service: {pct}% {text}",
                                                      pct=pct, text=text))
        if key is None and self.service.private_key:
            _write_private(key_path, self.service.private_key.encode("ascii"))
        self.host = str(self.service.hostname)
        self.state = "ready"
        log.info("our onion service is up: {host}:{port}", host=self.host, port=ONION_PORT)
        self.notice(f"Tor: our onion service is up ({self.host}); /invite makes an invite "
                    "for a friend", False)

    def _gone(self, _: object) -> None:
        """Our control connection to Tor closed (Tor stopped or restarted): our onion is
        gone with it, and dials through Tor fail at once until p2pchat restarts."""
        if self._stopping:
            return
        self.tor = None
        self.state = "lost: Tor went away (restart p2pchat to use it again)"
        log.warn("the control connection to Tor closed: no onion links")
        self.notice("Tor went away: no onion service nor onion links until p2pchat restarts",
                    True)

    async def _control(self, path: str) -> Any:
        """Connect to the control socket of the Tor we launched.  txtorcon tries once, when
        Tor says it opens the socket, which may be just before it exists (and then never
        again): here it is retried for a few seconds."""
        from twisted.internet.endpoints import UNIXClientEndpoint
        from twisted.internet.task import deferLater
        from txtorcon.torcontrolprotocol import TorProtocolFactory

        for attempt in range(CONTROL_ATTEMPTS):
            try:
                return await UNIXClientEndpoint(self.reactor, path).connect(
                    TorProtocolFactory())
            except error.ConnectError:
                if attempt == CONTROL_ATTEMPTS - 1:
                    raise
                await deferLater(self.reactor, 0.2, lambda: None)

    def listen(self) -> int:
        """The onion listener, on a free port of 127.0.0.1 (returned): TLS from the first
        byte around ``server``."""
        tls = _tls_listener(ContextFactory(self.identity, server=True), self.server)
        self.listener = self.reactor.listenTCP(0, tls, interface="127.0.0.1")
        return int(self.listener.getHost().port)

    def _failed(self, failure: Any) -> None:
        why = failure.getErrorMessage() if failure.check(Exception) else str(failure)
        if isinstance(failure.value, StartError):
            why = str(failure.value)
        self.state = f"failed: {why}"
        log.error("Tor failed: {why}", why=why)
        if not self._stopping:
            self.notice(f"Tor failed, so no onion links: {why}", True)

    def endpoint(self, host: str, port: int) -> Endpoint:
        """How to dial an onion contact: through our Tor, TLS from the first byte."""
        if self.tor is None:
            return _NoTor(f"Tor is not up ({self.state})")
        ctx = ContextFactory(self.identity, server=False)
        return _OnionDial(self, self.tor.stream_via(host, port, tls=ctx))

    def dial_failed(self, failure: Any) -> Any:
        """An onion dial failed: Tor forgets what it had of onions (NEWNYM), so the next
        dial fetches the contact's descriptor afresh (it may have come back since)."""
        now = self.reactor.seconds()
        if self.tor is not None and now - self._newnym_at >= NEWNYM_EVERY:
            self._newnym_at = now
            d = defer.maybeDeferred(self.tor.protocol.signal, "NEWNYM")
            d.addErrback(lambda f: log.info("Tor NEWNYM failed: {why}",
                                            why=f.getErrorMessage()))
        return failure

    def stop(self) -> defer.Deferred[Any]:
        """Our onion goes with our control connection; a Tor we launched is stopped."""
        self._stopping = True
        stops: list[defer.Deferred[Any]] = []
        if self.listener is not None:
            stops.append(defer.maybeDeferred(self.listener.stopListening))
            self.listener = None
        if self.tor is not None:
            stops.append(defer.maybeDeferred(self.tor.quit))
            self.tor = None
        return defer.DeferredList(stops, consumeErrors=True)
