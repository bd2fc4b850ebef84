"""giveback.py: start-up's freed heap given back once, a moment after the node starts."""

from __future__ import annotations

import sys

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import TestCase

from p2pchat import giveback
from p2pchat.node import Node
from p2pchat.service import NodeService


class _Port:
    def stopListening(self) -> None:
        pass


class _Reactor(MemoryReactorClock):
    """A memory reactor that takes the beacons' multicast port too."""

    def listenMulticast(self, port, protocol, interface="", maxPacketSize=8192,
                        listenMultiple=False):  # type: ignore[no-untyped-def]
        return _Port()


class GiveBack(TestCase):
    def test_glibc_gives_back(self) -> None:
        if not sys.platform.startswith("linux"):
            self.skipTest("malloc_trim is glibc's")
        self.assertTrue(giveback.give_back())

    def test_a_c_library_without_malloc_trim_is_left_alone(self) -> None:
        self.assertFalse(giveback.give_back(lambda: None))

    def test_a_failing_trim_is_logged_not_raised(self) -> None:
        def trim(pad: int) -> int:
            raise OSError("no")
        self.assertFalse(giveback.give_back(lambda: trim))


class Scheduled(TestCase):
    def setUp(self) -> None:
        self.calls: list[int] = []
        self.patch(giveback, "give_back", lambda: self.calls.append(1) or True)
        self.reactor = _Reactor()
        self.service = NodeService(Node("alice", self.reactor), self.reactor, 0,
                                   ("239.255.1.1", 30000), "127.0.0.1")

    def test_given_back_once_a_moment_after_start(self) -> None:
        self.service.startService()
        self.reactor.advance(giveback.GIVE_BACK_AFTER * 0.9)
        self.assertEqual(self.calls, [])
        self.reactor.advance(giveback.GIVE_BACK_AFTER * 0.2)
        self.assertEqual(self.calls, [1])
        self.reactor.advance(giveback.GIVE_BACK_AFTER * 10)
        self.assertEqual(self.calls, [1])
        self.service.stopService()

    def test_not_after_a_stop(self) -> None:
        self.service.startService()
        self.service.stopService()
        self.reactor.advance(giveback.GIVE_BACK_AFTER * 2)
        self.assertEqual(self.calls, [])
