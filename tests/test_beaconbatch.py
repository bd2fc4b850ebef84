"""Beacons read together in a large room (beaconbatch.py): one wake-up a second, not one a
datagram, and back to one a datagram in a burst."""

from __future__ import annotations

from typing import Any

from twisted.internet import task
from twisted.trial import unittest

from p2pchat.beaconbatch import DRAIN_BURST, DRAIN_EVERY, SETTLED_AFTER, BeaconBatch
from p2pchat.neighbours import FULL_MESH_UP_TO


class FakePort:
    """A udp.Port's reading switches; ``doRead`` delivers what waits."""

    def __init__(self) -> None:
        self.reading = True
        self.waiting = 0
        self.reads = 0
        self.batch: Any = None

    def stopReading(self) -> None:
        self.reading = False

    def startReading(self) -> None:
        self.reading = True

    def doRead(self) -> None:
        self.reads += 1
        for _ in range(self.waiting):
            self.batch.heard += 1
        self.waiting = 0


class BeaconBatchTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.port = FakePort()
        self.room = FULL_MESH_UP_TO + 1
        self.batch = BeaconBatch(self.port, lambda: self.room, self.clock)
        self.port.batch = self.batch
        self.batch.start()
        self.addCleanup(self.batch.stop)

    def settle(self) -> None:
        self.clock.pump([DRAIN_EVERY] * int(SETTLED_AFTER / DRAIN_EVERY + 2))
        self.assertFalse(self.port.reading)
        self.port.reads = 0

    def test_large_room_is_read_once_a_second(self) -> None:
        self.settle()
        self.port.waiting = 20
        self.clock.advance(DRAIN_EVERY)
        self.assertEqual((self.port.reads, self.port.waiting, self.port.reading), (1, 0, False))

    def test_forming_room_reads_each_datagram(self) -> None:
        """While peers keep joining, each beacon is read as it comes."""
        for _ in range(int(3 * SETTLED_AFTER)):
            self.room += 1
            self.clock.advance(DRAIN_EVERY)
            self.assertTrue(self.port.reading)
        self.settle()

    def test_small_room_reads_each_datagram(self) -> None:
        self.room = FULL_MESH_UP_TO
        for _ in range(int(3 * SETTLED_AFTER)):
            self.clock.advance(DRAIN_EVERY)
            self.assertTrue(self.port.reading)
        self.assertEqual(self.port.reads, 0)

    def test_burst_goes_back_to_each_datagram(self) -> None:
        self.settle()
        self.port.waiting = DRAIN_BURST
        self.clock.advance(DRAIN_EVERY)
        self.assertTrue(self.port.reading)
        self.batch.heard = DRAIN_BURST - 1  # a quieter second: read together again
        self.clock.advance(DRAIN_EVERY)
        self.assertFalse(self.port.reading)

    def test_room_shrinking_goes_back_to_each_datagram(self) -> None:
        self.settle()
        self.room = 3
        self.clock.advance(DRAIN_EVERY)
        self.assertTrue(self.port.reading)
        self.assertEqual(self.port.reads, 1)  # what waited was read first


class DiscoveryWiringTests(unittest.TestCase):
    def test_discovery_counts_and_drains(self) -> None:
        """BeaconProtocol, once joined on a real port (one with doRead), reads beacons
        together in a large room and counts what it hears."""
        from unittest import mock

        from p2pchat.discovery import BeaconProtocol

        clock = task.Clock()
        node = mock.Mock()
        node.peers = list(range(FULL_MESH_UP_TO + 1))
        proto = BeaconProtocol(node, "239.255.1.2", 4567, None, clock)
        port = FakePort()
        proto.transport = port  # type: ignore[assignment]
        proto.announce = lambda: None  # type: ignore[method-assign]
        proto._joined(None)
        self.addCleanup(proto.stopProtocol)
        clock.pump([DRAIN_EVERY] * int(SETTLED_AFTER / DRAIN_EVERY + 2))
        assert proto.batch is not None
        port.batch = proto.batch
        self.assertFalse(port.reading)
        proto.datagramReceived(b"{}", ("127.0.0.1", 4567))
        self.assertEqual(proto.batch.heard, 1)
