"""The peer protocol over StringTransport, and the dialer's backoff under task.Clock."""

from __future__ import annotations

import random

from twisted.internet import error
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransportWithDisconnection
from twisted.trial.unittest import TestCase

from twisted.internet import defer

from p2pchat import events, wire
from p2pchat.identity import Identity
from p2pchat.dial import MAX_DIALING, DialState, Dialer
from p2pchat.handshake import HANDSHAKE_MAX_FACTOR, HANDSHAKE_TIMEOUT
from p2pchat.mesh import STABLE_AFTER, PeerProtocol, PeerServerFactory
from p2pchat.node import FLAP_WINDOW, Node
from p2pchat.peers import Backoff, PeerInfo
from p2pchat.wire import Message
from tests.fakes import TurnClock


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

    def test_handshake_that_moves_is_not_cut(self) -> None:
        """The timeout counts from the last bytes heard (a crowd starting at once makes every
        handshake slow), within HANDSHAKE_MAX_FACTOR timeouts in all."""
        proto, transport = self.connect()
        step = HANDSHAKE_TIMEOUT * 0.8
        for _ in range(4):  # a partial first line, a little more at each step
            self.reactor.advance(step)
            self.assertTrue(transport.connected)
            proto.dataReceived(b'{"id":')
        self.reactor.advance(HANDSHAKE_TIMEOUT - 0.1)
        self.assertTrue(transport.connected)
        self.reactor.advance(0.2)  # silent a whole timeout since the last bytes
        self.assertFalse(transport.connected)

    def test_trickling_handshake_closed_at_the_hard_limit(self) -> None:
        proto, transport = self.connect()
        for _ in range(int(HANDSHAKE_MAX_FACTOR * 2) + 2):
            if not transport.connected:
                break
            self.reactor.advance(HANDSHAKE_TIMEOUT / 2)
            proto.dataReceived(b" ")
        self.assertFalse(transport.connected)
        self.assertLessEqual(self.reactor.seconds(), HANDSHAKE_TIMEOUT * HANDSHAKE_MAX_FACTOR + 1)

    def test_bytes_waiting_when_the_timer_rings_are_read_first(self) -> None:
        """A starved process finds its timer due before it reads its sockets: the verdict
        waits a reactor turn, and what came meanwhile counts."""
        self.reactor = TurnClock()
        self.node = Node("mmm", self.reactor, peer_id="mmm_1")
        proto, transport = self.connect()
        self.reactor.advance(HANDSHAKE_TIMEOUT)  # rings; the verdict is the next turn
        self.assertTrue(transport.connected)
        proto.dataReceived(line(id="j1", type="join"))  # read in that turn
        self.reactor.advance(0)
        self.assertTrue(transport.connected)
        self.assertIn("zed_1", self.node.links)

    def test_timer_that_rang_late_rearms(self) -> None:
        proto, transport = self.connect()
        self.reactor.advance(HANDSHAKE_TIMEOUT + 5.0)  # one jump: it rang 5 s late
        self.assertTrue(transport.connected)
        self.reactor.advance(HANDSHAKE_TIMEOUT)
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


class TLSTransport(StringTransportWithDisconnection):
    """A StringTransport that records a switch to TLS (and says whether it was aborted)."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.tls_started: list[bool] = []
        self.aborted = False

    def startTLS(self, context_factory) -> None:
        self.tls_started.append(context_factory.server)

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


class StartTLS(TestCase):
    """The switch to TLS on the same connection, and the STARTTLS injection guards: bytes
    after the switch line sent in plaintext would be read as if TLS had protected them."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.node = Node("mmm", self.reactor, identity=Identity.generate())
        self.events: list = []
        self.node.subscribe(self.events.append)
        self.key = Identity.generate()
        self.zed = self.key.peer_id

    def connect(self, expected: PeerInfo | None = None) -> tuple[PeerProtocol, TLSTransport]:
        proto = PeerProtocol(self.node, self.reactor, expected=expected)
        transport = TLSTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        transport.protocol = proto
        proto.makeConnection(transport)
        return proto, transport

    def dial(self) -> tuple[PeerProtocol, TLSTransport]:
        info = PeerInfo(self.zed, "zed", "127.0.0.1", 8081, 0.0,
                        (wire.CAP_OURS, wire.CAP_TLS), fp=self.key.fingerprint)
        proto, transport = self.connect(expected=info)
        self.assertEqual(wire.parse_message(transport.value().split(b"\n")[0]).type, "join")
        return proto, transport

    def starttls(self) -> bytes:
        return line(id="s1", type="starttls", sender_id=self.zed, fp=self.key.fingerprint)

    def join(self) -> bytes:
        return line(id="j1", type="join", sender_id=self.zed, fp=self.key.fingerprint,
                    caps=[wire.CAP_OURS, wire.CAP_TLS])

    def test_dialer_starts_tls_as_client_on_starttls(self) -> None:
        proto, transport = self.dial()
        proto.dataReceived(self.starttls())
        self.assertEqual(transport.tls_started, [False])
        self.assertTrue(transport.connected)

    def test_dialer_drops_plaintext_after_starttls(self) -> None:
        proto, transport = self.dial()
        proto.dataReceived(self.starttls() + line(id="c1", type="chat", sender_id=self.zed,
                                                  content="injected"))
        self.assertEqual(transport.tls_started, [])
        self.assertTrue(transport.aborted)
        self.assertEqual(self.node.links, {})
        self.assertFalse(proto.was_ready)

    def test_listener_answers_a_join_with_a_key_with_starttls(self) -> None:
        proto, transport = self.connect()
        proto.dataReceived(self.join())
        sent = [wire.parse_message(x) for x in transport.value().splitlines()]
        self.assertEqual([m.type for m in sent], ["starttls"])
        self.assertEqual(transport.tls_started, [True])
        self.assertEqual(self.node.links, {})  # not before the certificate is checked

    def test_listener_drops_plaintext_after_the_join(self) -> None:
        proto, transport = self.connect()
        proto.dataReceived(self.join() + line(id="c1", type="chat", sender_id=self.zed,
                                              content="injected"))
        self.assertEqual(transport.tls_started, [])
        self.assertNotIn(b"starttls", transport.value())
        self.assertTrue(transport.aborted)
        self.assertEqual(self.node.links, {})
        self.assertEqual(self.events, [])  # neither the join nor the chat line was taken


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

    def test_at_most_max_dialing_dials_in_flight(self) -> None:
        """A crowd heard at once is dialed MAX_DIALING at a time, first heard first; each
        dial that ends (failed, linked, dropped) lets the next one go."""
        crowd = [PeerInfo(f"p{i:03d}_1", "p", "127.0.0.1", 9000 + i, 0.0)
                 for i in range(MAX_DIALING + 3)]
        for info in crowd:
            self.dialer.want(info)
        self.assertEqual(len(self.reactor.tcpClients), MAX_DIALING)
        self.assertEqual(self.dialer.dialing(), MAX_DIALING)
        self.assertIs(self.dialer.state(crowd[-1].peer_id), DialState.QUEUED)
        self.dialer.want(crowd[-1])  # its next beacon: still waits its turn
        self.assertEqual(len(self.reactor.tcpClients), MAX_DIALING)
        self.fail_last()  # one failed: waits its backoff, and the first queued goes
        self.assertEqual(self.reactor.tcpClients[-1][1], 9000 + MAX_DIALING)
        self.dialer.connected(crowd[0].peer_id)  # linked (whoever dialed)
        self.assertEqual(self.reactor.tcpClients[-1][1], 9000 + MAX_DIALING + 1)
        self.dialer.drop(crowd[1].peer_id)
        self.assertEqual(self.reactor.tcpClients[-1][1], 9000 + MAX_DIALING + 2)
        self.assertEqual(self.dialer.dialing(), MAX_DIALING)
        self.dialer.stop()  # nothing queued is dialed on the way out
        self.assertEqual(len(self.reactor.tcpClients), MAX_DIALING + 3)

    def test_connected_stops_retries(self) -> None:
        self.dialer.want(self.info)
        self.fail_last()
        self.dialer.connected("zed_1")
        self.reactor.advance(100)
        self.assertEqual(len(self.reactor.tcpClients), 1)

    def link(self) -> PeerProtocol:
        """The last dial connects and links (and the node tells the dialer)."""
        self.node.dialer = self.dialer
        proto = self.reactor.tcpClients[-1][2].buildProtocol(None)
        transport = StringTransportWithDisconnection()
        transport.protocol = proto
        proto.makeConnection(transport)
        self.assertTrue(proto.ready)
        return proto

    def test_states_idle_dialing_waiting_held(self) -> None:
        self.assertIsNone(self.dialer.state("zed_1"))
        self.dialer.want(self.info)
        self.assertIs(self.dialer.state("zed_1"), DialState.DIALING)
        self.fail_last()
        self.assertIs(self.dialer.state("zed_1"), DialState.WAITING)
        self.reactor.advance(1.01)
        self.assertIs(self.dialer.state("zed_1"), DialState.DIALING)
        self.link()  # the node says connected
        self.assertIs(self.dialer.state("zed_1"), DialState.IDLE)
        self.dialer.link_ended("zed_1", 1.0)
        self.assertIs(self.dialer.state("zed_1"), DialState.HELD)
        self.dialer.drop("zed_1")
        self.assertIsNone(self.dialer.state("zed_1"))

    def test_a_beacon_during_the_handshake_does_not_dial_again(self) -> None:
        self.dialer.want(self.info)
        proto = self.reactor.tcpClients[-1][2].buildProtocol(None)  # TCP up, not linked yet
        self.assertFalse(proto.ready)
        self.dialer.want(self.info)
        self.assertEqual(len(self.reactor.tcpClients), 1)

    def test_a_short_link_holds_the_next_dial(self) -> None:
        self.dialer.want(self.info)
        self.link()
        self.dialer.link_ended("zed_1", STABLE_AFTER / 2)
        self.dialer.want(self.info)
        self.assertEqual(len(self.reactor.tcpClients), 1)  # held: not at once
        self.reactor.advance(1.01)
        self.assertEqual(len(self.reactor.tcpClients), 2)

    def test_linked_by_the_other_side_during_a_hold_stops_the_held_dial(self) -> None:
        self.dialer.want(self.info)
        self.link()
        self.dialer.link_ended("zed_1", 1.0)
        self.dialer.want(self.info)  # held: the dial waits
        self.dialer.connected("zed_1")  # zed dialed us meanwhile
        self.assertIs(self.dialer.state("zed_1"), DialState.IDLE)
        self.reactor.advance(100)
        self.assertEqual(len(self.reactor.tcpClients), 1)

    def test_a_stable_link_resets_the_backoff(self) -> None:
        self.dialer.want(self.info)
        for _ in range(4):  # waits of 1, 2, 4, 8 s: the next would be 16 s
            self.fail_last()
            self.reactor.advance(20)
        self.assertEqual(len(self.reactor.tcpClients), 5)
        self.link()
        self.dialer.link_ended("zed_1", STABLE_AFTER)
        self.dialer.want(self.info)  # no hold after a stable link: at once
        self.assertEqual(len(self.reactor.tcpClients), 6)
        self.fail_last()
        self.reactor.advance(1.01)  # the first wait again, not the 16 s it had reached
        self.assertEqual(len(self.reactor.tcpClients), 7)

    def test_dials_go_through_the_endpoint_seam(self) -> None:
        asked: list[PeerInfo] = []
        factories: list = []

        class Endpoint:
            def __init__(self, info: PeerInfo) -> None:
                asked.append(info)

            def connect(self, factory) -> defer.Deferred:
                factories.append(factory)
                return defer.Deferred()

        dialer = Dialer(self.node, self.reactor, self.reactor, endpoint=Endpoint)
        dialer.want(self.info)
        self.assertEqual(asked, [self.info])
        self.assertEqual(self.reactor.tcpClients, [])  # connectTCP is only the default
        self.assertIsInstance(factories[0].buildProtocol(None), PeerProtocol)

    def test_the_default_endpoint_gives_the_protocol_the_real_transport(self) -> None:
        """No wrapper protocol sits under a dialed link's reads (commit 04d46d6)."""
        from p2pchat.mesh import DIAL_TIMEOUT

        dialer = Dialer(self.node, self.reactor, self.reactor, bind_host="127.0.0.2")
        dialer.want(self.info)
        host, port, factory, timeout, bind = self.reactor.tcpClients[-1]
        self.assertEqual((host, port, timeout, bind),
                         ("127.0.0.1", 8081, DIAL_TIMEOUT, ("127.0.0.2", 0)))
        proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 8081))
        self.assertIs(type(proto), PeerProtocol)

    def test_an_endpoint_dial_whose_factory_builds_nothing_fails(self) -> None:
        from twisted.internet.protocol import Factory

        from p2pchat.reach import TCPPeerEndpoint

        class Nothing(Factory):
            def buildProtocol(self, addr):
                return None

        d = TCPPeerEndpoint(self.reactor, "127.0.0.1", 8081, 5.0).connect(Nothing())
        self.assertIsNone(self.reactor.tcpClients[-1][2].buildProtocol(None))
        self.failureResultOf(d, error.ConnectError)

    def test_dropping_cancels_a_dial_in_flight(self) -> None:
        self.dialer.want(self.info)
        connector = self.reactor.connectors[-1]
        self.dialer.drop("zed_1")
        self.assertEqual(connector.stoppedConnecting, True)
        self.reactor.advance(100)
        self.assertEqual(len(self.reactor.tcpClients), 1)
        self.assertEqual(self.reactor.getDelayedCalls(), [])


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
