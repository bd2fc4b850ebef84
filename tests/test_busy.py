"""Timeouts that judge a peer slow grow with the machine's load (busy.py), within bounds."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransportWithDisconnection
from twisted.trial.unittest import TestCase

from p2pchat import busy
from p2pchat.handshake import HANDSHAKE_TIMEOUT
from p2pchat.mesh import PeerProtocol
from p2pchat.node import Node
from p2pchat.reach import DIAL_TIMEOUT, peer_endpoint


class LoadFactor(TestCase):
    def setUp(self) -> None:
        self.addCleanup(setattr, busy, "source", busy.source)

    def test_bounded_both_ways(self) -> None:
        for load, factor in ((0.1, 1.0), (1.0, 1.0), (3.5, 3.5), (1000.0, busy.MAX_LOAD_FACTOR)):
            busy.source = lambda load=load: load
            self.assertEqual(busy.load_factor(), factor)
        self.assertLessEqual(busy.MAX_LOAD_FACTOR, 10)

    def test_the_real_source_reads_the_load_average(self) -> None:
        self.assertGreaterEqual(busy._load_per_core(), 0.0)

    def test_a_loaded_machine_gives_handshakes_and_dials_longer(self) -> None:
        busy.source = lambda: 3.0
        reactor = MemoryReactorClock()
        node = Node("mmm", reactor, peer_id="mmm_1")
        proto = PeerProtocol(node, reactor)
        transport = StringTransportWithDisconnection(
            peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        transport.protocol = proto
        proto.makeConnection(transport)
        reactor.advance(HANDSHAKE_TIMEOUT * 3 - 0.1)
        self.assertTrue(transport.connected)
        reactor.advance(0.2)
        self.assertFalse(transport.connected)
        endpoint: Any = peer_endpoint(reactor, "127.0.0.1", 1)
        self.assertEqual(endpoint.timeout, DIAL_TIMEOUT * 3.0)
