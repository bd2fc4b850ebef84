"""A room of 100 on a saturated machine (issue 21 item 3): the mechanisms that cut live links
or forgot linked peers there, each under task.Clock and StringTransport."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransportWithDisconnection
from twisted.trial.unittest import TestCase

from p2pchat import busy, wire
from p2pchat.identity import Identity
from p2pchat.linkwatch import IDLE_TIMEOUT
from p2pchat.mesh import PeerProtocol
from p2pchat.node import Node
from p2pchat.wire import Message


class _TLSTransport(StringTransportWithDisconnection):
    """A StringTransport whose TLS switch is recorded and whose peer shows ``cert``."""

    def __init__(self, cert: object, **kw: object) -> None:
        super().__init__(**kw)
        self.cert = cert
        self.aborted = False

    def startTLS(self, context_factory: object) -> None:
        pass

    def getPeerCertificate(self) -> object:
        return self.cert

    def getHandle(self) -> None:
        return None

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


class SlowHandshake(TestCase):
    """On a saturated machine a handshake may last minutes (its timer re-arms while we are
    starved, up to HANDSHAKE_MAX_FACTOR times a timeout that grows with the load; the first
    link's STARTTLS waits for the TLS libraries).  Measured in a room of 100: links dropped as
    "silent for 90 s" in the second they came up, because the TLS handshake's bytes were never
    counted as heard; each drop a redial, with backoff, on a machine already saturated."""

    def setUp(self) -> None:
        self.addCleanup(setattr, busy, "source", busy.source)
        busy.source = lambda: 100.0  # the load factor at its cap
        self.reactor = MemoryReactorClock()
        self.node = Node("mmm", self.reactor, identity=Identity.generate())
        self.key = Identity.generate()

    def test_a_link_that_took_longer_than_the_idle_timeout_to_come_up_is_kept(self) -> None:
        proto = PeerProtocol(self.node, self.reactor)
        transport = _TLSTransport(self.key.cert,
                                  peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        transport.protocol = proto
        proto.makeConnection(transport)
        join = Message(id="j1", type="join", sender_id=self.key.peer_id, username="zed",
                       fp=self.key.fingerprint, caps=(wire.CAP_OURS, wire.CAP_TLS))
        proto.dataReceived(wire.encode_message(join))
        # starved: the handshake timer rings late, and re-arms, until TLS is done
        self.reactor.advance(61.0)  # the 60 s timer rings 1 s late: re-armed
        self.reactor.advance(IDLE_TIMEOUT + 1 - 61.0)
        proto.handshakeCompleted()
        self.assertIn(self.key.peer_id, self.node.links)
        self.node.sweep()
        self.assertFalse(transport.aborted)
        self.assertIn(self.key.peer_id, self.node.links)


class LinkedPeerNotForgotten(TestCase):
    """A saturated machine loses and delays datagrams first: in a room of 100, peers linked to
    us were forgotten by the thousand for a silence of their beacons, each then
    "discovered" again by a beacon that made half the room answer with one of its own (a
    multicast to everyone: each a parse, many a signature check), which saturated the
    machine more.  A peer of ours whose link is up is alive by its link (heartbeats,
    IDLE_TIMEOUT): its beacons' silence forgets it no more."""

    def setUp(self) -> None:
        from tests.fakes import FakeAnnouncer, FakeDialer

        self.clock = MemoryReactorClock()
        self.node = Node("mmm", self.clock, peer_id="mmm_1")
        self.node.dialer = self.dialer = FakeDialer()
        self.node.announcer = self.announcer = FakeAnnouncer()

    def beacon(self, peer_id: str) -> wire.Beacon:
        return wire.Beacon(type="announce", peer_id=peer_id, username=peer_id.split("_")[0],
                           port=4000, timestamp=self.clock.seconds())

    def test_a_linked_peer_of_ours_outlives_its_beacons_silence(self) -> None:
        from p2pchat.peers import GONE_AFTER
        from tests.fakes import FakeLink

        self.node.beacon_heard(self.beacon("aaa_1"), "127.0.0.1")
        self.assertEqual(self.announcer.replies, 1)  # a newcomer: answered
        link = FakeLink("aaa_1", "aaa", dialer_id="aaa_1", now=self.clock.seconds())
        self.assertTrue(self.node.link_ready(link))
        for _ in range(int(GONE_AFTER) * 2):  # its beacons lost, its link heartbeating
            self.clock.advance(1.0)
            link.last_heard = self.clock.seconds()
            self.node.sweep()
        self.assertIn("aaa_1", self.node.peers)
        self.assertNotIn("aaa_1", self.dialer.dropped)
        self.node.beacon_heard(self.beacon("aaa_1"), "127.0.0.1")
        self.assertEqual(self.announcer.replies, 1)  # not a newcomer: no answer
        self.assertIsNone(link.closed)

    def test_a_base_peer_whose_beacons_stop_is_still_closed(self) -> None:
        from p2pchat.peers import GONE_AFTER
        from tests.fakes import FakeLink

        self.node.beacon_heard(self.beacon("aaa_1"), "127.0.0.1")
        link = FakeLink("aaa_1", "aaa", dialer_id="aaa_1", caps=(), now=self.clock.seconds())
        self.assertTrue(self.node.link_ready(link))
        self.clock.advance(GONE_AFTER + 1)
        self.node.sweep()
        self.assertNotIn("aaa_1", self.node.peers)
        self.assertEqual(link.closed, "its beacons stopped")


class ProbeOfASlowPeer(TestCase):
    """A probe after its peer's beacons came back from a silence: unanswered in time, the
    link was dropped, whatever the reason.  On a saturated machine (a room of 100: some
    1,800 live links cut so) the reason is a slow process, whose kernel took the probe; only
    a cut path, where the probe goes unacknowledged, drops the link now."""

    def setUp(self) -> None:
        from tests.fakes import FakeLink

        self.clock = MemoryReactorClock()
        self.node = Node("mmm", self.clock, peer_id="mmm_1")
        self.link = FakeLink("zed_1", "zed", dialer_id="mmm_1")
        self.node.beacon_heard(self.beacon(), "127.0.0.1")
        self.assertTrue(self.node.link_ready(self.link))

    def beacon(self) -> wire.Beacon:
        return wire.Beacon(type="announce", peer_id="zed_1", username="zed", port=4000,
                           timestamp=self.clock.seconds())

    def probe_unanswered(self, unacked: int | None) -> str | None:
        from p2pchat.linkwatch import PROBE_TIMEOUT

        self.link.unacked_segments = unacked
        self.clock.advance(12)  # its beacons silent past STALE_AFTER, then back
        self.node.beacon_heard(self.beacon(), "127.0.0.1")
        self.assertIn("probe", self.link.sent[-1].metadata or {})
        self.clock.advance(PROBE_TIMEOUT + 0.5)
        self.clock.advance(0)
        return self.link.closed

    def test_a_probe_its_machine_acknowledged_keeps_the_link(self) -> None:
        self.assertIsNone(self.probe_unanswered(0))
        self.assertIn("zed_1", self.node.links)
        self.assertEqual(self.node.watch.probes, {})  # over: the next silence probes again

    def test_a_probe_not_acknowledged_drops_the_link(self) -> None:
        self.assertIn("no answer", self.probe_unanswered(2) or "")

    def test_where_tcp_says_nothing_the_link_is_dropped_as_before(self) -> None:
        self.assertIn("no answer", self.probe_unanswered(None) or "")


class TCPInfo(TestCase):
    """``tcpinfo.unacked`` on a real loopback connection."""

    def test_what_the_peer_machine_took_is_acknowledged(self) -> None:
        import socket
        import sys
        import time

        from p2pchat import tcpinfo

        if not sys.platform.startswith("linux"):
            raise __import__("unittest").SkipTest("TCP_INFO is read on Linux only")
        server = socket.socket()
        self.addCleanup(server.close)
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        client = socket.create_connection(server.getsockname())
        self.addCleanup(client.close)
        peer, _ = server.accept()
        self.addCleanup(peer.close)

        class Transport:
            socket = client

        client.sendall(b"probe\n" * 100)  # not read by the peer: its kernel acks it anyway
        deadline = time.monotonic() + 5
        while tcpinfo.unacked(Transport) != 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(tcpinfo.unacked(Transport), 0)
        self.assertIsNone(tcpinfo.unacked(object()))  # no socket: not known


class IdleOnASaturatedMachine(TestCase):
    """A link of ours silent past IDLE_TIMEOUT is dead on an idle machine; on a saturated one
    (a room of 100: hundreds of links dropped as silent while their peers were only late)
    it is given as much longer as handshakes and probes are (busy.load_factor)."""

    def setUp(self) -> None:
        from tests.fakes import FakeLink

        self.addCleanup(setattr, busy, "source", busy.source)
        self.clock = MemoryReactorClock()
        self.node = Node("mmm", self.clock, peer_id="mmm_1")
        self.link = FakeLink("zed_1", "zed", dialer_id="mmm_1", now=self.clock.seconds())
        self.assertTrue(self.node.link_ready(self.link))

    def silent_for(self, seconds: float) -> str | None:
        self.clock.advance(seconds)
        self.node.sweep()
        return self.link.closed

    def test_idle_machine_drops_a_silent_link(self) -> None:
        busy.source = lambda: 0.5
        self.assertEqual(self.silent_for(IDLE_TIMEOUT + 1), "silent for 90 s")

    def test_saturated_machine_gives_it_longer(self) -> None:
        busy.source = lambda: 100.0
        self.assertIsNone(self.silent_for(IDLE_TIMEOUT + 1))
        self.assertIsNotNone(self.silent_for(IDLE_TIMEOUT * (busy.MAX_LOAD_FACTOR - 1)))


class MemberLinesOfAFormingFullMesh(TestCase):
    """Every member line lists every link and goes to every link: in a full mesh forming,
    changed links went out every LINKS_GAP (3 s) whatever the size of the room, N lines of N
    links to each of N peers (a room of 100 spent most of its CPU on them).  Now the gap
    grows with the links (gossip.links_gap): each peer gets about as many a second in a room
    of 100 as in one of 30."""

    def member_lines_while_forming(self, links: int, seconds: int) -> int:
        from p2pchat.gossip import CAP_GOSSIP
        from p2pchat.relay import CAP_RELAY, MEMBER
        from tests.fakes import FakeLink

        clock = MemoryReactorClock()
        clock.advance(1_000_000)
        node = Node("mmm", clock, identity=Identity.generate())
        caps = (wire.CAP_OURS, wire.CAP_TLS, CAP_RELAY, CAP_GOSSIP)

        def link_one() -> FakeLink:
            key = Identity.generate()
            link = FakeLink(key.peer_id, f"p{len(node.links)}", dialer_id=key.peer_id,
                            caps=caps, now=clock.seconds())
            link.fp = key.fingerprint
            self.assertTrue(node.link_ready(link))
            return link

        first = [link_one() for _ in range(links)]
        watched = first[0]
        before = len(watched.sent)
        for _ in range(seconds):  # one more link every second: our links keep changing
            clock.advance(1.0)
            link_one()
            node.sweep()
        return sum(1 for m in watched.sent[before:] if m.type == MEMBER)

    def test_a_small_mesh_tells_its_changed_links_every_links_gap(self) -> None:
        from p2pchat.gossip import LINKS_GAP

        n = self.member_lines_while_forming(10, 30)
        self.assertIn(n, (30 // int(LINKS_GAP) - 1, 30 // int(LINKS_GAP)))

    def test_a_room_of_100_tells_them_as_rarely_as_its_size_asks(self) -> None:
        from p2pchat.gossip import LARGE_LINKS_GAP

        self.assertLessEqual(self.member_lines_while_forming(99, 30),
                             30 // int(LARGE_LINKS_GAP))


class StallOnASaturatedMachine(TestCase):
    """A peer that reads nothing of what we write for STALL_TIMEOUT loses its link; in a room
    of 100 on 2 cores, 81 live links went so while their peers were only late.  The stall
    timeout stretches with the load, as the handshake's, the probe's and the idle link's."""

    def setUp(self) -> None:
        self.addCleanup(setattr, busy, "source", busy.source)
        self.reactor = MemoryReactorClock()
        self.node = Node("mmm", self.reactor, peer_id="mmm_1")

    def stalled_for(self, seconds: float) -> bool:
        proto = PeerProtocol(self.node, self.reactor)
        transport = _TLSTransport(None, peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        transport.protocol = proto
        proto.makeConnection(transport)
        proto._backpressure.pauseProducing()  # what the transport does when its peer lags
        self.reactor.advance(seconds)
        return transport.aborted

    def test_idle_machine_drops_a_peer_that_reads_nothing(self) -> None:
        from p2pchat.mesh import STALL_TIMEOUT

        busy.source = lambda: 0.5
        self.assertTrue(self.stalled_for(STALL_TIMEOUT + 1))

    def test_saturated_machine_gives_it_longer(self) -> None:
        from p2pchat.mesh import STALL_TIMEOUT

        busy.source = lambda: 100.0
        self.assertFalse(self.stalled_for(STALL_TIMEOUT + 1))
        self.assertTrue(self.stalled_for(STALL_TIMEOUT * busy.MAX_LOAD_FACTOR + 1))
