"""The peer protocol over StringTransport, and the dialer's backoff under task.Clock."""

from __future__ import annotations

import random

from twisted.internet import error
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransportWithDisconnection
from twisted.trial.unittest import TestCase

from p2pchat import events, wire
from p2pchat.mesh import HANDSHAKE_TIMEOUT, Dialer, PeerProtocol, PeerServerFactory
from p2pchat.node import FLAP_WINDOW, Node
from p2pchat.peers import Backoff, PeerInfo
from p2pchat.wire import Message


def line(**fields) -> bytes:
    base = {"id": "i1", "type": "chat", "sender_id": "zed_1", "username": "zed"}
    base.update(fields)
    return wire.encode_message(Message(**base))


class ProtocolTest(TestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.node = Node("mmm", self.reactor, peer_id="mmm_1")
        self.events: list = []
        self.node.subscribe(self.events.append)

    def connect(self, expected: PeerInfo | None = None) -> tuple[PeerProtocol, StringTransportWithDisconnection]:
        proto = PeerProtocol(self.node, self.reactor, expected=expected)
        transport = StringTransportWithDisconnection(
            peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        transport.protocol = proto
        proto.makeConnection(transport)
        return proto, transport

    def chats(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, events.ChatLine)]


class Listener(ProtocolTest):
    def test_join_then_chat(self) -> None:
        proto, transport = self.connect()
        proto.dataReceived(line(id="j1", type="join", content="zed joined the chat"))
        self.assertIs(self.node.links["zed_1"].wire, proto)
        self.assertEqual([e.nick for e in self.events if isinstance(e, events.PeerJoined)],
                         ["zed"])
        # to a base peer the listener sends one join after its first line, as a base dialer
        # does (a base peer shows no one joining otherwise)
        sent = [wire.parse_message(x) for x in transport.value().splitlines()]
        self.assertEqual([(m.type, m.sender_id, m.sequence) for m in sent],
                         [("join", "mmm_1", 0)])
        proto.dataReceived(line(id="c1", content="hello") + line(id="c2", content="again"))
        self.assertEqual(self.chats(), ["hello", "again"])

    def test_line_split_across_reads_and_crlf(self) -> None:
        proto, _ = self.connect()
        data = line(id="j1", type="join") + line(id="c1", content="split").replace(b"\n", b"\r\n")
        for i in range(len(data)):
            proto.dataReceived(data[i:i + 1])
        self.assertEqual(self.chats(), ["split"])

    def test_bad_lines_skipped_link_stays(self) -> None:
        proto, transport = self.connect()
        proto.dataReceived(line(id="j1", type="join"))
        proto.dataReceived(b"not json\n{\"id\":1}\n\xff\xfe\n\n")
        proto.dataReceived(line(id="c1", content="still here"))
        self.assertEqual(self.chats(), ["still here"])
        self.assertFalse(transport.disconnecting)
        self.assertTrue(transport.connected)
        self.flushLoggedErrors()

    def test_first_line_must_be_a_join(self) -> None:
        proto, transport = self.connect()
        proto.dataReceived(line(content="no hello first"))
        self.assertFalse(transport.connected)
        self.assertEqual(self.node.links, {})
        self.assertEqual(self.chats(), [])

    def test_garbage_first_line_closes(self) -> None:
        _, transport = self.connect()
        transport.protocol.dataReceived(b"GET / HTTP/1.0\n")
        self.assertFalse(transport.connected)

    def test_silent_connection_closed_after_timeout(self) -> None:
        proto, transport = self.connect()
        self.reactor.advance(HANDSHAKE_TIMEOUT - 0.1)
        self.assertTrue(transport.connected)
        self.reactor.advance(0.2)
        self.assertFalse(transport.connected)

    def test_endless_line_closes(self) -> None:
        proto, transport = self.connect()
        proto.dataReceived(line(id="j1", type="join"))
        chunk = b"x" * 65536
        for _ in range(3):
            if not transport.connected:
                break
            proto.dataReceived(chunk)
        self.assertFalse(transport.connected)
        self.assertEqual(self.node.links, {})

    def test_lost_link_reported(self) -> None:
        proto, transport = self.connect()
        proto.dataReceived(line(id="j1", type="join"))
        self.reactor.advance(FLAP_WINDOW)  # younger links that drop are shown only later
        transport.loseConnection()
        self.assertEqual(self.node.links, {})
        self.assertEqual([e.reason for e in self.events if isinstance(e, events.PeerLeft)],
                         ["connection lost"])
        self.assertTrue(proto.closed.called)


    def test_a_flood_is_read_at_the_flood_rate_and_nothing_is_dropped(self) -> None:
        from p2pchat.mesh import FLOOD_BURST, FLOOD_RATE

        proto, transport = self.connect()
        proto.dataReceived(line(id="j1", type="join"))
        burst = int(FLOOD_BURST)
        proto.dataReceived(b"".join(line(id=f"c{i}", content=f"{i}", sequence=i + 1)
                                    for i in range(burst + 500)))
        # the bucket (one token spent on the join) ran dry: the line that emptied it is
        # handled, then reading stops with lines left
        self.assertEqual(len(self.chats()), burst)
        self.assertEqual(transport.producerState, "paused")
        self.reactor.advance(0.005)  # not refilled enough yet
        self.assertEqual(len(self.chats()), burst)
        self.reactor.advance(0.2)  # refilled: the rest is read, every line once
        self.assertEqual(self.chats(), [f"{i}" for i in range(burst + 500)])
        self.assertEqual(transport.producerState, "producing")

class Dialing(ProtocolTest):
    def test_dialer_opens_with_a_join_from_itself(self) -> None:
        info = PeerInfo("zed_1", "zed", "127.0.0.1", 8081, 0.0, ("p2pchat-py/1",))
        proto, transport = self.connect(expected=info)
        first = wire.parse_message(transport.value().split(b"\n")[0])
        self.assertEqual((first.type, first.sender_id, first.username, first.sequence),
                         ("join", "mmm_1", "mmm", 0))
        self.assertIn(wire.CAP_OURS, first.caps)
        self.assertIs(self.node.links["zed_1"].wire, proto)
        proto.dataReceived(line(id="c1", content="hi back"))
        self.assertEqual(self.chats(), ["hi back"])


class DialerBackoff(TestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.node = Node("aaa", self.reactor, peer_id="aaa_1")
        self.dialer = Dialer(self.node, self.reactor, self.reactor,
                             backoff=lambda: Backoff(first=1.0, jitter=0.0,
                                                     rng=random.Random(1)))
        self.info = PeerInfo("zed_1", "zed", "127.0.0.1", 8081, 0.0)

    def fail_last(self) -> None:
        connector = self.reactor.connectors[-1]
        factory = self.reactor.tcpClients[-1][2]
        factory.clientConnectionFailed(connector, error.ConnectionRefusedError())

    def test_redials_with_growing_delays_until_dropped(self) -> None:
        self.dialer.want(self.info)
        self.assertEqual(self.reactor.tcpClients[-1][:2], ("127.0.0.1", 8081))
        self.dialer.want(self.info)  # already dialing: no second attempt
        self.assertEqual(len(self.reactor.tcpClients), 1)
        self.fail_last()
        self.reactor.advance(0.99)
        self.assertEqual(len(self.reactor.tcpClients), 1)
        self.reactor.advance(0.02)
        self.assertEqual(len(self.reactor.tcpClients), 2)
        self.fail_last()
        self.reactor.advance(1.5)
        self.assertEqual(len(self.reactor.tcpClients), 2)  # now waits 2 s
        self.reactor.advance(0.6)
        self.assertEqual(len(self.reactor.tcpClients), 3)
        self.fail_last()
        self.dialer.drop("zed_1")
        self.reactor.advance(100)
        self.assertEqual(len(self.reactor.tcpClients), 3)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_a_connection_closed_before_it_linked_is_retried_with_backoff(self) -> None:
        self.node.leaving = True  # so the node refuses the link (as --secure-only might)
        self.dialer.want(self.info)
        factory = self.reactor.tcpClients[-1][2]
        proto = factory.buildProtocol(None)
        transport = StringTransportWithDisconnection()
        transport.protocol = proto
        proto.makeConnection(transport)  # TCP is up: the dial "succeeded"...
        self.assertFalse(transport.connected)  # ...but it closed before it became a link
        self.dialer.want(self.info)  # the next beacon does not redial at once
        self.assertEqual(len(self.reactor.tcpClients), 1)
        self.reactor.advance(1.01)
        self.assertEqual(len(self.reactor.tcpClients), 2)

    def test_connected_stops_retries(self) -> None:
        self.dialer.want(self.info)
        self.fail_last()
        self.dialer.connected("zed_1")
        self.reactor.advance(100)
        self.assertEqual(len(self.reactor.tcpClients), 1)


class Server(TestCase):
    def test_bounded_inbound(self) -> None:
        reactor = MemoryReactorClock()
        factory = PeerServerFactory(Node("mmm", reactor), reactor)
        addr = IPv4Address("TCP", "127.0.0.1", 1)
        for _ in range(3):
            proto = factory.buildProtocol(addr)
            proto.makeConnection(StringTransportWithDisconnection())
        self.assertEqual(len(factory.open), 3)
        import p2pchat.mesh as mesh
        self.patch(mesh, "MAX_INBOUND", 3)
        self.assertIsNone(factory.buildProtocol(addr))
