"""settling.py: the heap a burst freed, given back once the peer has settled (and only then)."""

from __future__ import annotations

import ctypes
import sys

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from p2pchat import settling
from p2pchat.settling import GROWN, STILL, Heap, Settling

MB = 1 << 20


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(field)


class Looks(TestCase):
    def setUp(self) -> None:
        self.heaps: list[Heap] = []
        self.trims: list[int] = []
        self.imported = 500
        self.settling = Settling(lambda: self.heaps[-1], self.trims.append,
                                 lambda: self.imported)

    def at(self, in_use: int, free: int) -> bool:
        self.heaps.append(Heap(in_use, free))
        return self.settling.look()

    def test_given_back_once_the_heap_stops_moving(self) -> None:
        self.assertFalse(self.at(10 * MB, 0))
        self.assertFalse(self.at(14 * MB, 6 * MB))  # a burst: in use still growing
        self.assertFalse(self.at(11 * MB, 9 * MB))  # the burst over: in use fell
        self.assertTrue(self.at(11 * MB, 9 * MB))  # settled, 9 MB free
        self.assertEqual(self.trims, [0])

    def test_not_again_while_nothing_grew(self) -> None:
        self.at(11 * MB, 9 * MB)
        self.assertTrue(self.at(11 * MB, 9 * MB))
        self.heaps.append(Heap(11 * MB, 2 * MB))  # what the trim left
        self.settling._after = self.settling._last = self.heaps[-1]
        for _ in range(5):
            self.assertFalse(self.at(11 * MB, 2 * MB + GROWN // 2))
        self.assertTrue(self.at(11 * MB, 2 * MB + GROWN))  # a new burst's freed heap
        self.assertEqual(len(self.trims), 2)

    def test_new_modules_are_a_reason(self) -> None:
        self.at(10 * MB, 0)
        self.assertFalse(self.at(10 * MB, 0))
        self.imported += 80  # the TLS libraries, at the first link
        self.assertTrue(self.at(10 * MB, 0))
        self.assertEqual(self.trims, [0])
        self.assertFalse(self.at(10 * MB, 0))

    def test_a_moving_heap_is_left_alone(self) -> None:
        self.imported += 80
        for i in range(6):
            self.assertFalse(self.at((10 + i) * STILL, 9 * MB))
        self.assertEqual(self.trims, [])

    def test_no_mallinfo_no_look(self) -> None:
        s = Settling(None, self.trims.append, lambda: 1)
        self.assertFalse(s.look())

    def test_a_failure_is_logged_and_looking_stops(self) -> None:
        def trim(pad: int) -> int:
            raise OSError("no")
        s = Settling(lambda: Heap(MB, 9 * MB), trim, lambda: 1)
        s.look()
        self.assertFalse(s.look())
        self.assertIsNone(s.heap)
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_started_on_the_clock(self) -> None:
        clock = Clock()
        loop = settling.start(clock)
        self.addCleanup(loop.stop)
        self.assertTrue(loop.running)
        self.assertEqual(loop.interval, settling.EVERY)


class Heaps(TestCase):
    def test_a_real_heap_is_read_and_trimmed(self) -> None:
        read = settling._mallinfo2()
        if read is None or not sys.platform.startswith("linux"):
            self.skipTest("mallinfo2 is glibc's")
        libc = ctypes.CDLL(None)
        libc.malloc.restype = ctypes.c_void_p
        libc.malloc.argtypes = [ctypes.c_size_t]
        libc.free.argtypes = [ctypes.c_void_p]
        # 40 MB in 64 KB chunks (below the mmap threshold: on the heap), each written, then
        # all freed but the last, which keeps the heap's top where it was
        blocks = [libc.malloc(64 * 1024) for _ in range(640)]
        for b in blocks:
            ctypes.memset(b, 1, 64 * 1024)
        for b in blocks[:-1]:
            libc.free(b)
        self.addCleanup(libc.free, blocks[-1])
        heap = read()
        self.assertGreater(heap.free, 30 * MB)
        before = _status("RssAnon")
        s = Settling(read, settling.giveback._malloc_trim(), lambda: 1)
        s.look()
        self.assertTrue(s.look())
        self.assertLess(_status("RssAnon"), before - 30 * 1024)


class Wired(TestCase):
    def test_the_service_looks_while_it_runs(self) -> None:
        from p2pchat.node import Node
        from p2pchat.service import NodeService
        from tests.test_giveback import _Reactor

        looks: list[int] = []
        self.patch(Settling, "look", lambda s: looks.append(1) or False)
        reactor = _Reactor()
        service = NodeService(Node("alice", reactor), reactor, 0, ("239.255.1.1", 30000),
                              "127.0.0.1")
        service.startService()
        for _ in range(7):
            reactor.advance(settling.EVERY / 2)
        self.assertEqual(len(looks), 3)
        service.stopService()
        for _ in range(6):
            reactor.advance(settling.EVERY / 2)
        self.assertEqual(len(looks), 3)
