"""A live TLS link gathers what is written to it in one reactor turn into one write
(gather.py, mesh.py): fewer TLS records, fewer reads on the other side, same bytes in order."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransportWithDisconnection
from twisted.trial.unittest import TestCase

from p2pchat.gather import GATHER_BYTES
from p2pchat.mesh import PeerProtocol
from p2pchat.node import Node


class Counting(StringTransportWithDisconnection):
    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        super().write(data)


class Gathering(TestCase):
    def link(self, tls: str) -> tuple[PeerProtocol, Counting]:
        self.reactor = MemoryReactorClock()
        node = Node("mmm", self.reactor, peer_id="mmm_1")
        proto = PeerProtocol(node, self.reactor)
        transport = Counting(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        transport.protocol = proto
        proto.makeConnection(transport)
        proto.peer_id, proto.username, proto.tls = "zed_1", "zed", tls
        proto._become_ready()
        self.assertTrue(proto.ready)
        self.reactor.advance(0)
        transport.clear()
        transport.writes = 0
        return proto, transport

    def test_the_writes_of_one_turn_are_one_write_at_its_end(self) -> None:
        proto, transport = self.link("TLSv1.3")
        for n in range(3):
            proto.send_bytes(b"line %d\n" % n)
        self.assertEqual((transport.value(), transport.writes), (b"", 0))
        self.reactor.advance(0)
        self.assertEqual(transport.value(), b"line 0\nline 1\nline 2\n")
        self.assertEqual(transport.writes, 1)
        proto.send_bytes(b"next\n")  # the next turn gathers anew
        self.reactor.advance(0)
        self.assertEqual((transport.value()[-5:], transport.writes), (b"next\n", 2))

    def test_a_plain_link_writes_at_once(self) -> None:
        proto, transport = self.link("")
        proto.send_bytes(b"a\n")
        proto.send_bytes(b"b\n")
        self.assertEqual((transport.value(), transport.writes), (b"a\nb\n", 2))

    def test_past_the_bound_what_was_gathered_goes_at_once(self) -> None:
        """So the transport's back-pressure still stops a pump of the sent log in time."""
        proto, transport = self.link("TLSv1.3")
        proto.send_bytes(b"a\n")
        proto.send_bytes(b"x" * (GATHER_BYTES - 2))
        self.assertEqual(len(transport.value()), GATHER_BYTES)
        self.assertEqual(transport.writes, 1)
        self.reactor.advance(0)  # nothing left for the end of the turn
        self.assertEqual(transport.writes, 1)

    def test_closing_writes_what_was_gathered_first(self) -> None:
        proto, transport = self.link("TLSv1.3")
        proto.send_bytes(b"last words\n")
        proto.close("done")
        self.assertEqual(transport.value(), b"last words\n")
        self.assertFalse(transport.connected)

    def test_hanging_up_writes_what_was_gathered_first(self) -> None:
        proto, transport = self.link("TLSv1.3")
        proto.send_bytes(b"leave\n")
        proto.hang_up()
        self.assertEqual(transport.value(), b"leave\n")

    def test_nothing_is_written_after_the_connection_is_gone(self) -> None:
        proto, transport = self.link("TLSv1.3")
        proto.send_bytes(b"late\n")
        transport.loseConnection()  # connectionLost, with a write still gathered
        self.reactor.advance(0)
        self.assertEqual(transport.value(), b"")
