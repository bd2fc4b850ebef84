"""settling.py: the heap a burst freed and the library pages touched once, given back once the
peer has settled (and only then; never a page the process wrote)."""

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
        self.drops = 0
        self.imported = 500

        def drop() -> int:
            self.drops += 1
            return 100
        self.settling = Settling(lambda: self.heaps[-1], self.trims.append, drop,
                                 lambda: self.imported)

    def at(self, in_use: int, free: int) -> bool:
        self.heaps.append(Heap(in_use, free))
        return self.settling.look()

    def test_given_back_once_the_heap_stops_moving(self) -> None:
        self.assertFalse(self.at(10 * MB, 0))
        self.assertFalse(self.at(14 * MB, 6 * MB))  # a burst: in use still growing
        self.assertFalse(self.at(11 * MB, 9 * MB))  # the burst over: in use fell
        self.assertTrue(self.at(11 * MB, 9 * MB))  # settled, 9 MB free
        self.assertEqual((self.trims, self.drops), ([0], 0))  # no imports: pages kept

    def test_not_again_while_nothing_grew(self) -> None:
        self.at(11 * MB, 9 * MB)
        self.assertTrue(self.at(11 * MB, 9 * MB))
        self.heaps.append(Heap(11 * MB, 2 * MB))  # what the trim left
        self.settling._after = self.settling._last = self.heaps[-1]
        for _ in range(5):
            self.assertFalse(self.at(11 * MB, 2 * MB + GROWN // 2))
        self.assertTrue(self.at(11 * MB, 2 * MB + GROWN))  # a new burst's freed heap
        self.assertEqual(len(self.trims), 2)
        self.assertEqual(self.drops, 0)  # no new imports: the pages are left mapped

    def test_new_modules_are_a_reason(self) -> None:
        self.at(10 * MB, 0)
        self.assertFalse(self.at(10 * MB, 0))
        self.imported += 80  # the TLS libraries, at the first link
        self.assertTrue(self.at(10 * MB, 0))
        self.assertEqual((self.trims, self.drops), ([0], 1))
        self.assertFalse(self.at(10 * MB, 0))

    def test_a_moving_heap_is_left_alone(self) -> None:
        self.imported += 80
        for i in range(6):
            self.assertFalse(self.at((10 + i) * STILL, 9 * MB))
        self.assertEqual(self.trims, [])

    def test_no_mallinfo_no_look(self) -> None:
        s = Settling(None, self.trims.append, lambda: 0, lambda: 1)
        self.assertFalse(s.look())

    def test_a_failure_is_logged_and_looking_stops(self) -> None:
        def trim(pad: int) -> int:
            raise OSError("no")
        s = Settling(lambda: Heap(MB, 9 * MB), trim, lambda: 0, lambda: 1)
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


SMAPS = """\
55d0c0000000-55d0c0001000 r--p 00000000 fe:00 1 /usr/bin/python3.11
Rss:                   4 kB
Anonymous:             0 kB
7f0000000000-7f0000100000 r-xp 00001000 fe:00 2 /usr/lib/libcrypto.so.3
Size:               1024 kB
Rss:                 800 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
7f0000100000-7f0000110000 r--p 00101000 fe:00 2 /usr/lib/libcrypto.so.3
Rss:                  64 kB
Anonymous:            64 kB
7f0000110000-7f0000112000 rw-p 00111000 fe:00 2 /usr/lib/libcrypto.so.3
Rss:                   8 kB
Anonymous:             8 kB
7f0000200000-7f0000300000 rw-p 00000000 00:00 0
Rss:                1024 kB
Anonymous:          1024 kB
7f0000300000-7f0000301000 r--s 00000000 fe:00 3 /tmp/shared
Rss:                   4 kB
Anonymous:             0 kB
7f0000400000-7f0000401000 r-xp 00000000 00:00 0 [vdso]
Rss:                   4 kB
Anonymous:             0 kB
7f0000500000-7f0000501000 r--p 00000000 fe:00 4 /tmp/gone.so (deleted)
Rss:                   4 kB
Anonymous:             0 kB
"""


class Pages(TestCase):
    def test_only_clean_read_only_file_pages(self) -> None:
        maps = settling.mappings(SMAPS)
        self.assertEqual(len(maps), 8)
        clean = settling.clean_library_pages(maps)
        self.assertEqual([(m.path, m.perms) for m in clean],
                         [("/usr/bin/python3.11", "r--p"), ("/usr/lib/libcrypto.so.3", "r-xp")])
        self.assertEqual(clean[1].end - clean[1].start, MB)

    def test_the_process_keeps_working_and_holds_less(self) -> None:
        if not sys.platform.startswith("linux") or settling._madvise() is None:
            self.skipTest("madvise and /proc are Linux's")
        import hashlib
        import sqlite3

        before = _status("RssFile")
        dropped = settling.drop_library_pages()
        self.assertGreater(dropped, 1000)  # kB: a Python process holds several MB of them
        self.assertLess(_status("RssFile"), before - 1000)
        # the code and constants come back from their files, unchanged
        self.assertEqual(hashlib.sha256(b"abc").hexdigest()[:8], "ba7816bf")
        db = sqlite3.connect(":memory:")
        self.assertEqual(db.execute("select upper('ok')").fetchone(), ("OK",))


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
        s = Settling(read, settling.giveback._malloc_trim(), lambda: 0, lambda: 1)
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
