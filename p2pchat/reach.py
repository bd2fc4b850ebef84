"""How a peer is reached: the dialer dials through an ``IStreamClientEndpoint`` built from the
peer's address by one function, ``peer_endpoint``, so another way of reaching peers (static
peers, Tor) slots in here without touching the mesh.

The default is ``connectTCP`` behind an endpoint of our own that hands the caller's protocol
the real transport: Twisted's TCP endpoint wraps the protocol in one of its own, whose
``dataReceived`` then sits under every read of the link (commit 04d46d6 removed such a
wrapper for that cost).
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from twisted.internet import defer, error
from twisted.internet.interfaces import IAddress, IReactorTCP, IStreamClientEndpoint
from twisted.internet.protocol import ClientFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from p2pchat.busy import load_factor

#: A dial that has not connected after this many seconds has failed (times busy.load_factor():
#: a starved process finds the timeout due before it reads the connect's completion).
DIAL_TIMEOUT = 5.0


class Endpoint(Protocol):
    """What the dialer needs of an ``IStreamClientEndpoint`` (a typing.Protocol: mypy has no
    zope plugin here)."""

    def connect(self, protocolFactory: Any) -> defer.Deferred[Any]: ...


class _Connecting(ClientFactory):
    """The ``connectTCP`` factory of one ``TCPPeerEndpoint.connect``: it returns the caller's
    own protocol, unwrapped, so the protocol gets the real transport and nothing sits under
    its reads (an endpoint's usual wrapper protocol would, for every read of the link)."""

    noisy = False

    def __init__(self, factory: Any) -> None:
        self._factory = factory  # an IProtocolFactory
        self.connector: Any = None  # an IConnector
        self.deferred: defer.Deferred[Any] = defer.Deferred(self._cancel)

    def _cancel(self, d: defer.Deferred[Any]) -> None:
        if self.connector is not None:
            self.connector.stopConnecting()

    def buildProtocol(self, addr: IAddress | None) -> Any:
        proto = self._factory.buildProtocol(addr)
        if not self.deferred.called:
            if proto is None:
                self.deferred.errback(error.ConnectError(string="no protocol for the dial"))
            else:
                self.deferred.callback(proto)
        return proto

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        if not self.deferred.called:
            self.deferred.errback(reason)


@implementer(IStreamClientEndpoint)
class TCPPeerEndpoint:
    """``connectTCP`` as an ``IStreamClientEndpoint``: ``connect`` fires with the protocol
    once TCP is up (before its ``connectionMade``), fails if it can't connect within
    ``timeout`` seconds, and cancelling it stops the attempt."""

    def __init__(self, reactor: IReactorTCP, host: str, port: int, timeout: float,
                 bind_host: str | None = None) -> None:
        self.reactor: Any = cast(Any, reactor)  # zope: see Endpoint
        self.host, self.port = host, port
        self.timeout = timeout
        self.bind_host = bind_host

    def connect(self, protocolFactory: Any) -> defer.Deferred[Any]:
        dial = _Connecting(protocolFactory)
        dial.connector = self.reactor.connectTCP(
            self.host, self.port, dial, timeout=self.timeout,
            bindAddress=(self.bind_host, 0) if self.bind_host else None)
        return dial.deferred


def peer_endpoint(reactor: IReactorTCP, host: str, port: int,
                  bind_host: str | None = None) -> Endpoint:
    """How to reach a peer at ``host``:``port``: the one place that picks an endpoint for a
    peer's address (today always direct TCP; a Tor or static-peer endpoint goes here)."""
    return TCPPeerEndpoint(reactor, host, port, DIAL_TIMEOUT * load_factor(), bind_host)
