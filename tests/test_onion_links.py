"""Onion links without Tor: txtorcon's own client endpoint through a small SOCKS5 server of the
test's on 127.0.0.1 (what a Tor's SocksPort does for an onion), to our onion listener.

First, the question issue 18 asked: does STARTTLS work over txtorcon's client endpoint?  No:
txtorcon hands our protocol the TCP transport but stays that transport's protocol, so after
``startTLS`` the TLS layer tells txtorcon's protocol, not ours, that its handshake finished
(the TLS itself completes: the server sees the right certificate).  So onion links start TLS
from the first byte, with the same certificates and checks; this test fails if a txtorcon
ever fixes that, saying STARTTLS could be used there.

Then the real thing, node to node: an invite links them (verified against its key), a wrong
key is refused with a clear notice and not redialed, and a wrong secret is refused by the
listener, which tells the dialer why.
"""

from __future__ import annotations

import pytest_twisted
import txtorcon
from twisted.internet import defer, protocol, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.interfaces import IHandshakeListener
from zope.interface import implementer

from p2pchat import events
from p2pchat.contacts import Book
from p2pchat.identity import ContextFactory, Identity, certificate_fingerprint, peer_id_for
from p2pchat.invite import parse_invite
from p2pchat.keeper import LinkKeeper, OnionServerFactory
from p2pchat.node import Node
from p2pchat.onion import Onion
from tests.test_reach import onion_address

ONION = onion_address(b"alice") + ".onion"  # only the fake SOCKS server sees it


class _Socks(protocol.Protocol):
    """SOCKS5 without authentication; every CONNECT goes to ``factory.target``."""

    def connectionMade(self) -> None:
        self.buf, self.stage, self.out = b"", 0, None

    def dataReceived(self, data: bytes) -> None:
        if self.stage == 2:
            self.out.transport.write(data)
            return
        self.buf += data
        if self.stage == 0 and len(self.buf) >= 3:
            self.buf, self.stage = self.buf[3:], 1
            self.transport.write(b"\x05\x00")
        if self.stage == 1 and len(self.buf) >= 5 and len(self.buf) >= 7 + self.buf[4]:
            self.buf, self.stage = b"", 2
            self.transport.pauseProducing()
            protocol.ClientCreator(reactor, _Out, self).connectTCP(
                "127.0.0.1", self.factory.target)

    def connectionLost(self, reason: object = None) -> None:
        if self.out is not None and self.out.transport is not None:
            self.out.transport.loseConnection()


class _Out(protocol.Protocol):
    def __init__(self, inside: _Socks) -> None:
        self.inside = inside

    def connectionMade(self) -> None:
        self.inside.out = self
        self.inside.transport.write(b"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x01")
        self.inside.transport.resumeProducing()

    def dataReceived(self, data: bytes) -> None:
        self.inside.transport.write(data)

    def connectionLost(self, reason: object = None) -> None:
        self.inside.transport.loseConnection()


def socks_to(target: int) -> tuple[object, int]:
    factory = protocol.Factory.forProtocol(_Socks)
    factory.target = target
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    return port, port.getHost().port


async def until(check, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await task.deferLater(reactor, 0.05, lambda: None)
    raise AssertionError("not in time")


@pytest_twisted.ensureDeferred
async def test_starttls_over_txtorcon_never_reaches_our_protocol(tmp_path) -> None:
    server_id = Identity.load_or_create(str(tmp_path / "s"))
    client_id = Identity.load_or_create(str(tmp_path / "c"))
    seen: dict[str, object] = {}

    @implementer(IHandshakeListener)
    class Server(protocol.Protocol):
        def connectionMade(self) -> None:
            self.transport.startTLS(ContextFactory(server_id, server=True))

        def handshakeCompleted(self) -> None:
            seen["server"] = certificate_fingerprint(self.transport.getPeerCertificate())

    @implementer(IHandshakeListener)
    class Client(protocol.Protocol):
        def connectionMade(self) -> None:
            seen["ours"] = self.transport.protocol is self
            self.transport.startTLS(ContextFactory(client_id, server=False))

        def handshakeCompleted(self) -> None:
            seen["client"] = True

    listener = reactor.listenTCP(0, protocol.Factory.forProtocol(Server), interface="127.0.0.1")
    socks, socks_port = socks_to(listener.getHost().port)
    try:
        ep = txtorcon.TorClientEndpoint(ONION, 80, socks_endpoint=TCP4ClientEndpoint(
            reactor, "127.0.0.1", socks_port))
        proto = await ep.connect(protocol.Factory.forProtocol(Client))
        await until(lambda: "server" in seen)
        await task.deferLater(reactor, 0.5, lambda: None)
        assert seen["server"] == client_id.fingerprint  # the TLS itself works...
        assert seen["ours"] is False  # ...but the transport's protocol is txtorcon's
        assert "client" not in seen, "STARTTLS works over txtorcon now: onion links could use it"
        proto.transport.loseConnection()
    finally:
        await defer.maybeDeferred(socks.stopListening)
        await defer.maybeDeferred(listener.stopListening)


class FakeTor:
    """Tor as the Onion sees it: ``stream_via`` through the test's SOCKS server."""

    def __init__(self, socks_port: int) -> None:
        self.socks_port = socks_port
        self.protocol = self

    def stream_via(self, host: str, port: int, tls: object = False) -> object:
        return txtorcon.TorClientEndpoint(host, port, tls=tls, socks_endpoint=TCP4ClientEndpoint(
            reactor, "127.0.0.1", self.socks_port))

    def signal(self, name: str) -> None:
        pass


class Side:
    def __init__(self, nick: str, path) -> None:
        self.identity = Identity.load_or_create(str(path / nick))
        self.node = Node(nick, reactor, identity=self.identity)
        self.notices: list[str] = []
        self.node.subscribe(lambda e: self.notices.append(e.text)
                            if isinstance(e, events.Notice) else None)
        self.server = OnionServerFactory(self.node, reactor, lambda j, fp: self.keeper.admit(j, fp))
        self.onion = Onion(reactor, str(path / nick), self.identity, self.server,
                           lambda text, error: None)
        self.keeper = LinkKeeper(self.node, reactor, Book(None), None, self.onion)
        self.node.reach = self.keeper
        self.keeper.start()

    def close(self) -> list[defer.Deferred]:
        self.keeper.stop()
        waits = []
        for proto in set(self.keeper.dialer.outgoing) | set(self.server.open):
            waits.append(proto.closed)
            proto.transport.abortConnection()
        if self.onion.listener is not None:
            waits.append(defer.maybeDeferred(self.onion.listener.stopListening))
        return waits


@pytest_twisted.ensureDeferred
async def test_invites_link_nodes_and_refuse_a_wrong_key_or_secret(tmp_path) -> None:
    alice, bob = Side("alice", tmp_path), Side("bob", tmp_path)
    socks = None
    try:
        local = alice.onion.listen()
        alice.onion.host = ONION
        socks, socks_port = socks_to(local)
        bob.onion.tor = FakeTor(socks_port)
        token = alice.keeper.invite().text.rpartition(" ")[2]
        invite = parse_invite(token)

        # another key than the invite's: refused before bob says anything, told clearly
        bob.keeper.connect(token.replace(invite.fp, "ab" * 32))
        await until(lambda: any("showed the key" in n for n in bob.notices))
        assert "not dialed again" in next(n for n in bob.notices if "showed the key" in n)
        assert not alice.node.links and not bob.node.links
        await task.deferLater(reactor, 0.3, lambda: None)  # a reconcile or two later
        assert bob.keeper.dialer.state(f"onion:{ONION}:7467") is None
        assert "refused: it showed another key" in "\n".join(bob.keeper.contacts())

        # the right key, a wrong secret: alice's listener refuses it and tells bob why
        bob.keeper.connect(token.replace(invite.secret, "a" * 32))
        await until(lambda: any("no invite of ours" in n for n in bob.notices))
        assert not alice.node.links

        # the invite itself: linked, both ways, by their keys
        bob.keeper.connect(token)
        await until(lambda: peer_id_for(alice.identity.fingerprint) in bob.node.links)
        await until(lambda: bob.node.peer_id in alice.node.links)
        link = bob.node.links[alice.node.peer_id]
        assert (link.fp, link.username) == (alice.identity.fingerprint, "alice")
        assert alice.node.links[bob.node.peer_id].fp == bob.identity.fingerprint
        assert any("bob came with your invite" in n for n in alice.notices)
        listed = "\n".join(bob.keeper.contacts())
        assert f"onion {ONION}:7467 alice: linked (TLS" in listed, listed
    finally:
        waits = alice.close() + bob.close()
        if socks is not None:
            waits.append(defer.maybeDeferred(socks.stopListening))
        await defer.DeferredList(waits, consumeErrors=True)
