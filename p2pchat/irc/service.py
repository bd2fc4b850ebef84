"""The IRC face as a service: listen for clients (loopback unless told otherwise, and never
beyond it without a password: ``options.check_irc_bind``), and at shutdown tell every client
we go, waiting for them to take that line at most CLOSE_TIMEOUT seconds
(``flow.close_within``)."""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet import defer, error
from twisted.logger import Logger

from p2pchat.errors import StartError
from p2pchat.flow import close_within
from p2pchat.interfaces import IChat
from p2pchat.irc.fanout import IrcFactory
from p2pchat.addresses import LOOPBACK, check_irc_bind

log = Logger()

DEFAULT_IRC_PORT = 6667
#: How long shutdown waits for clients to take their ERROR line before cutting them.
CLOSE_TIMEOUT = 2.0


class IrcService(Service):
    """Listens for IRC clients on ``host:port`` and makes each one a face of ``node``.
    Refuses to start on a non-loopback address without a password.  ``port`` 0 takes any
    free port (tests); ``self.port`` is the one bound."""

    name = "irc"  # type: ignore[assignment]  # Service declares it None

    def __init__(self, node: IChat, reactor: Any, host: str = LOOPBACK,
                 port: int = DEFAULT_IRC_PORT, password: str | None = None) -> None:
        self.node = node
        self.reactor = reactor
        self.host = host
        self.port = port
        self.password = password or None
        self.factory = IrcFactory(node, reactor, self.password)
        self.listener: Any = None

    def startService(self) -> None:
        try:
            warning = check_irc_bind(self.host, self.password)
        except ValueError as e:
            raise StartError(str(e)) from None
        if warning:
            log.warn("{text}", text=warning)
        try:
            self.listener = self.reactor.listenTCP(self.port, self.factory, interface=self.host)
        except error.CannotListenError as e:
            raise StartError(f"can't listen for IRC clients on {self.host}:{self.port}: "
                             f"{e.socketError}") from None
        self.port = self.listener.getHost().port
        self.factory.attach()
        log.info("IRC face listening on {host}:{port}", host=self.host, port=self.port)
        super().startService()

    def stopService(self) -> defer.Deferred[Any]:
        """Tell every client we go (an ERROR line, flushed), then stop listening."""
        super().stopService()
        self.factory.detach()
        clients = list(self.factory.clients)
        closing = [c.closed for c in clients]
        for client in clients:
            client.close("the peer is shutting down")

        def cut() -> None:
            for client in clients:
                client.abort()

        def stop_listening(_: object) -> defer.Deferred[Any]:
            listener, self.listener = self.listener, None
            return defer.maybeDeferred(listener.stopListening) if listener else defer.succeed(None)

        return close_within(self.reactor, CLOSE_TIMEOUT, closing, cut).addCallback(stop_listening)
