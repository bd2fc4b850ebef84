"""What a peer gives back once it has settled after a burst: the heap the burst freed.

A room of 100 forming is a burst: some hundred TLS handshakes (many cut and redone), beacons
from 99 peers, member lists and keys.  Afterwards a peer uses about 11 MB of its C heap but
holds 19-23 MB of it (glibc keeps freed chunks below the top of its heap mapped, and no
automatic trim gives back the middle).  Measured on 2026-12-02 (h-mem): RSS of an idle peer in
a room of 100 was 71 MB (median), 66 after one ``malloc_trim(0)``.

So every ``EVERY`` seconds ``Settling.look`` reads the heap's figures (``mallinfo2``, a few
microseconds); once the heap in use has stopped moving (within ``STILL`` of the last look) and
either the free heap has grown by ``GROWN`` since the last give-back or modules were imported
since (the TLS libraries at the first link), it gives the heap's free pages back
(``malloc_trim(0)``: giveback.py's, which also does it once after start).

Library pages are left mapped on purpose: unmapping the clean ones (``madvise``) would lower
RSS by some 15 MB but give the machine nothing (they stay in the page cache, shared by every
peer) and cost faults when they are used again; the bench prints PSS and USS beside RSS for
what a peer really costs.

A look that finds nothing to do costs one ``mallinfo2`` call (0.2 ms at most, on a heap of
thousands of free chunks); a trim 0.3 ms.  Off Linux/glibc nothing is done.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, NamedTuple

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from p2pchat import giveback

log = Logger()

#: Seconds between two looks at the heap.
EVERY = 10.0
#: The heap in use moved by less than this (bytes) since the last look: the peer has settled.
STILL = 256 * 1024
#: The free heap grew by at least this (bytes) since the last give-back: worth giving back.
GROWN = 1 << 20


class Heap(NamedTuple):
    """The C heap's two figures that matter here, in bytes."""

    in_use: int
    free: int


def _mallinfo2() -> Callable[[], Heap] | None:
    """glibc's ``mallinfo2`` as a function giving a Heap, or None where there is none."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        info = libc.mallinfo2
    except (ImportError, OSError, AttributeError):
        return None

    class _Info(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]

    info.restype = _Info
    info.argtypes = []

    def read() -> Heap:
        got = info()
        return Heap(got.uordblks, got.fordblks)
    return read


class Settling:
    """Looks at the heap every EVERY seconds and gives back once the peer has settled."""

    def __init__(self, heap: Callable[[], Heap] | None = None,
                 trim: Callable[[int], int] | None = None,
                 modules: Callable[[], int] = lambda: len(sys.modules)) -> None:
        self.heap = heap
        self.trim = trim
        self.modules = modules
        self._last: Heap | None = None
        self._after: Heap | None = None  # the heap after the last give-back
        self._imported = modules()
        self.given_back = 0  # give-backs done (for the tests and the log)

    def look(self) -> bool:
        """One look; True if it gave back."""
        if self.heap is None:
            return False
        now = self.heap()
        last, self._last = self._last, now
        if last is None or abs(now.in_use - last.in_use) >= STILL:
            return False
        grown = now.free - (self._after.free if self._after is not None else 0) >= GROWN
        imported = self.modules() != self._imported
        if not (grown or imported):
            return False
        return self.give_back()

    def give_back(self) -> bool:
        """Trim the heap."""
        try:
            if self.trim is not None:
                self.trim(0)
        except Exception as e:  # a foreign C library's oddity must not end the peer
            log.info("giving memory back failed: {e}", e=e)
            self.heap = None
            return False
        self._imported = self.modules()
        self._after = self._last = self.heap() if self.heap is not None else None
        self.given_back += 1
        log.debug("settled: heap trimmed")
        return True


def start(clock: Any) -> LoopingCall:
    """A running LoopingCall of ``Settling.look`` on ``clock`` (stopped with the service)."""
    settling = Settling(_mallinfo2(), giveback._malloc_trim())
    loop = LoopingCall(settling.look)
    loop.clock = clock
    loop.start(EVERY, now=False)
    return loop
