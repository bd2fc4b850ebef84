"""Beacons under task.Clock with a fake multicast transport: the announce schedule, quick answers
to newcomers (rate-limited), leave, and garbage ignored."""

from __future__ import annotations

import random
import zlib

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from p2pchat import wire
from p2pchat.discovery import ANNOUNCE_INTERVAL, REPLY_GAP, REPLY_SPREAD, BeaconProtocol
from p2pchat.node import Node
from p2pchat.wire import Beacon

from tests.fakes import FakeDialer


class FakeMulticast:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.options: dict[str, object] = {}
        self.joined: list[tuple[str, str]] = []

    def setTTL(self, ttl: int) -> None:
        self.options["ttl"] = ttl

    def setLoopbackMode(self, mode: int) -> None:
        self.options["loop"] = mode

    def setOutgoingInterface(self, addr: str) -> defer.Deferred:
        self.options["iface"] = addr
        return defer.succeed(1)

    def joinGroup(self, addr: str, interface: str = "") -> defer.Deferred:
        self.joined.append((addr, interface))
        return defer.succeed(1)

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))


class BeaconTest(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(5000)
        self.node = Node("mmm", self.clock, peer_id="mmm_1")
        self.node.port = 8085
        self.node.dialer = FakeDialer()
        self.proto = BeaconProtocol(self.node, "239.255.1.2", 4567, "127.0.0.1", self.clock,
                                    rng=random.Random(3))
        self.node.announcer = self.proto
        self.transport = FakeMulticast()
        self.proto.makeConnection(self.transport)

    def tearDown(self) -> None:
        self.proto.doStop()

    def sent(self) -> list[Beacon]:
        return [wire.parse_beacon(data) for data, _ in self.transport.sent]

    def hear(self, peer_id: str, kind: str = "announce", data: bytes | None = None) -> None:
        if data is None:
            data = wire.encode_beacon(Beacon(type=kind, peer_id=peer_id, username="x",
                                             port=1000 + zlib.crc32(peer_id.encode()) % 60000,
                                             timestamp=self.clock.seconds()))
        self.proto.datagramReceived(data, ("127.0.0.1", 4567))

    def test_socket_setup(self) -> None:
        self.assertEqual(self.transport.options, {"ttl": 1, "loop": 1, "iface": "127.0.0.1"})
        self.assertEqual(self.transport.joined, [("239.255.1.2", "127.0.0.1")])

    def test_announces_at_start_and_every_interval(self) -> None:
        self.assertEqual(len(self.transport.sent), 1)
        beacon = self.sent()[0]
        self.assertEqual((beacon.type, beacon.peer_id, beacon.port), ("announce", "mmm_1", 8085))
        self.assertEqual(self.transport.sent[0][1], ("239.255.1.2", 4567))
        for _ in range(3):
            self.clock.advance(ANNOUNCE_INTERVAL)
        self.assertEqual(len(self.transport.sent), 4)

    def test_newcomer_answered_within_a_moment_rate_limited(self) -> None:
        self.clock.advance(1.0)  # our own start announce is REPLY_GAP old
        self.hear("zed_1")  # a newcomer we dial: it learns of us from our join, no answer
        self.clock.advance(REPLY_SPREAD)
        self.assertEqual(len(self.transport.sent), 1)
        self.hear("abc_1")  # one that dials us (a smaller id) is answered at once
        self.clock.advance(REPLY_SPREAD)
        self.assertEqual(len(self.transport.sent), 2)
        # ten newcomers at once get one answer within REPLY_GAP, not ten
        for i in range(10):
            self.hear(f"crowd_{i}")
        self.clock.advance(REPLY_GAP + REPLY_SPREAD)
        self.assertEqual(len(self.transport.sent), 3)
        self.assertEqual(len(self.node.peers), 12)

    def test_garbage_and_own_beacons_ignored(self) -> None:
        for data in (b"garbage", b"\xff" * 2000, b"{}", b'{"type":"announce"}'):
            self.hear("", data=data)
        self.hear("mmm_1")
        self.assertEqual(len(self.node.peers), 0)

    def test_leave(self) -> None:
        self.proto.say_leave()
        self.assertEqual(self.sent()[-1].type, "leave")


class OnEveryInterface(TestCase):
    """A peer on two LANs (issue 17.4): one membership and one beacon per interface."""

    def start(self, **kwargs) -> tuple[BeaconProtocol, FakeMulticast, list[str]]:
        clock = Clock()
        clock.advance(5000)
        node = Node("mmm", clock, peer_id="mmm_1")
        node.port = 8085
        node.dialer = FakeDialer()
        proto = BeaconProtocol(node, "239.255.1.2", 4567, None, clock, rng=random.Random(3),
                               **kwargs)
        transport = FakeMulticast()
        via: list[str] = []
        write = transport.write
        transport.write = lambda data, addr: (via.append(str(transport.options.get("iface"))),
                                              write(data, addr))  # type: ignore[method-assign]
        proto.makeConnection(transport)
        self.addCleanup(proto.doStop)
        clock.advance(ANNOUNCE_INTERVAL)
        return proto, transport, via

    def test_joins_and_announces_on_each(self) -> None:
        _, transport, via = self.start(interfaces=["10.0.1.2", "10.0.2.2"])
        self.assertEqual(transport.joined, [("239.255.1.2", "10.0.1.2"),
                                            ("239.255.1.2", "10.0.2.2")])
        self.assertEqual(via, ["10.0.1.2", "10.0.2.2"] * 2)  # the start and one interval
        beacons = [wire.parse_beacon(d) for d, _ in transport.sent]
        self.assertEqual(beacons[0], beacons[1])  # the same beacon (a second copy: a replay)

    def test_without_interface_every_multicast_one(self) -> None:
        import p2pchat.discovery as discovery
        self.patch(discovery, "multicast_interfaces", lambda: ["192.0.2.7", "198.51.100.7"])
        _, transport, via = self.start()
        self.assertEqual([i for _, i in transport.joined], ["192.0.2.7", "198.51.100.7"])
        self.assertEqual(len(via), 4)

    def test_none_found_the_system_choice(self) -> None:
        import p2pchat.discovery as discovery
        self.patch(discovery, "multicast_interfaces", lambda: [])
        _, transport, via = self.start()
        self.assertEqual(transport.joined, [("239.255.1.2", "")])
        self.assertEqual(len(transport.sent), 2)

    def test_interface_still_narrows(self) -> None:
        _, transport, via = self.start(interfaces=["127.0.0.1"])
        self.assertEqual(transport.joined, [("239.255.1.2", "127.0.0.1")])
        self.assertEqual(len(transport.sent), 2)

    def test_the_host_enumeration_leaves_loopback_out(self) -> None:
        from p2pchat.discovery import multicast_interfaces
        found = multicast_interfaces()
        self.assertFalse(any(a.startswith("127.") for a in found), found)
