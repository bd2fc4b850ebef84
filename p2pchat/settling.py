"""What a peer gives back once it has settled after a burst: the heap the burst freed, and the
library pages it touched once.

A room of 100 forming is a burst: some hundred TLS handshakes (many cut and redone), beacons
from 99 peers, member lists and keys.  Afterwards a peer uses about 11 MB of its C heap but
holds 19-23 MB of it (glibc keeps freed chunks below the top of its heap mapped, and no
automatic trim gives back the middle), and RSS also counts every page of code and constant
data it touched once: 8-9 MB of them in ``cryptography``'s Rust library (with its own copy of
OpenSSL), loaded at the first link, and 5 MB in ``libpython``, mostly start-up's.  Measured on
2026-12-02 (h-mem): RSS of an idle peer in a room of 100 was 71 MB (median), 66 after one
``malloc_trim(0)``.

So every ``EVERY`` seconds ``Settling.look`` reads the heap's figures (``mallinfo2``, a few
microseconds); once the heap in use has stopped moving (within ``STILL`` of the last look) and
either the free heap has grown by ``GROWN`` since the last give-back or modules were imported
since (the TLS libraries at the first link), it gives back:

* the heap's free pages (``malloc_trim(0)``: giveback.py's, which also does it once after
  start);
* after new imports only, the library pages: every private, read-only mapping of a file that holds no page of its own
  (``Anonymous: 0`` in ``/proc/self/smaps``: code and constants, never the relocated or
  written parts) is unmapped with ``madvise(MADV_DONTNEED)``.  The pages stay in the page
  cache, where every peer on the machine shares one copy of them; a page used again is mapped
  back at its next use (a minor fault, no read).  What the peer keeps running is back within
  seconds (1-2 MB); what ran once is not.  Nothing is changed for the process: the same bytes
  are mapped back, from the file they came from (a library replaced on disk since it was
loaded is a new file, its mapping marked ``(deleted)``: left alone).

A look that finds nothing to do costs one ``mallinfo2`` call (0.2 ms at most, on a heap of
thousands of free chunks); a trim 0.3 ms; unmapping the pages 10-17 ms (the smaps read and
the unmapping), a few times in a peer's life.  Off Linux/glibc nothing is done.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Iterable, NamedTuple

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
#: madvise's advice that unmaps a range's pages (Linux).
MADV_DONTNEED = 4


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


class Mapping(NamedTuple):
    start: int
    end: int
    perms: str
    path: str
    rss_kb: int
    anonymous_kb: int


def mappings(smaps: str) -> list[Mapping]:
    """The mappings of a ``/proc/PID/smaps`` text."""
    out: list[Mapping] = []
    head: list[str] | None = None
    rss = anon = 0

    def close() -> None:
        if head is not None:
            start, end = (int(x, 16) for x in head[0].split("-"))
            out.append(Mapping(start, end, head[1], " ".join(head[5:]),
                               rss, anon))
    for line in smaps.splitlines():
        parts = line.split()
        if not parts:
            continue
        if not parts[0].endswith(":") and "-" in parts[0] and len(parts) >= 5:
            close()
            head, rss, anon = parts, 0, 0
        elif parts[0] == "Rss:":
            rss = int(parts[1])
        elif parts[0] == "Anonymous:":
            anon = int(parts[1])
    close()
    return out


def clean_library_pages(maps: Iterable[Mapping]) -> list[Mapping]:
    """The mappings whose pages can be unmapped and mapped back unchanged: a file's, private,
    never writable, and without one page of the process's own (a read-only mapping with
    anonymous pages is relocated data made read-only after: unmapped, it would come back as
    the file has it, not as relocated)."""
    return [m for m in maps
            if m.path.startswith("/") and not m.path.endswith("(deleted)")
            and m.perms.startswith("r") and "w" not in m.perms and m.perms.endswith("p")
            and m.anonymous_kb == 0 and m.rss_kb > 0]


def _madvise() -> Callable[[int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        call = ctypes.CDLL(None, use_errno=True).madvise
    except (ImportError, OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    call.restype = ctypes.c_int
    return call  # type: ignore[no-any-return]


def drop_library_pages(smaps_path: str = "/proc/self/smaps") -> int:
    """Unmap this process's clean library pages (``clean_library_pages``); kB unmapped."""
    advise = _madvise()
    if advise is None:
        return 0
    try:
        with open(smaps_path) as f:
            text = f.read()
    except OSError:
        return 0
    dropped = 0
    for m in clean_library_pages(mappings(text)):
        if advise(m.start, m.end - m.start, MADV_DONTNEED) == 0:
            dropped += m.rss_kb
    return dropped


class Settling:
    """Looks at the heap every EVERY seconds and gives back once the peer has settled."""

    def __init__(self, heap: Callable[[], Heap] | None = None,
                 trim: Callable[[int], int] | None = None,
                 drop: Callable[[], int] = drop_library_pages,
                 modules: Callable[[], int] = lambda: len(sys.modules)) -> None:
        self.heap = heap
        self.trim = trim
        self.drop = drop
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
        return self.give_back(pages=imported)

    def give_back(self, pages: bool) -> bool:
        """Trim the heap, and unmap the clean library pages if ``pages`` (only after new
        imports: what a settled peer keeps running would only be mapped back)."""
        try:
            if self.trim is not None:
                self.trim(0)
            dropped = self.drop() if pages else 0
        except Exception as e:  # a foreign C library's oddity must not end the peer
            log.info("giving memory back failed: {e}", e=e)
            self.heap = None
            return False
        self._imported = self.modules()
        self._after = self._last = self.heap() if self.heap is not None else None
        self.given_back += 1
        log.debug("settled: heap trimmed, {kb} kB of library pages unmapped", kb=dropped)
        return True


def start(clock: Any) -> LoopingCall:
    """A running LoopingCall of ``Settling.look`` on ``clock`` (stopped with the service)."""
    settling = Settling(_mallinfo2(), giveback._malloc_trim())
    loop = LoopingCall(settling.look)
    loop.clock = clock
    loop.start(EVERY, now=False)
    return loop
