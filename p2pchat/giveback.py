"""Heap that start-up used and freed, given back to the system once the peer is up.

Starting under twistd unpickles the plugin cache, parses the options, opens the history file
and imports some 500 modules.  Much of what that allocated is free again a moment later, but
glibc's malloc keeps freed pages below the top of its heap mapped, so they stay in the
process's resident memory for as long as it runs.  One ``malloc_trim(0)`` a few seconds after
start (the first beacons sent and heard, the history's first upkeep done) unmaps them: about
0.5-0.7 MB of an idle peer's 41-42 MB, measured on 2026-12-01 (README "Performance").  Where
the C library has no ``malloc_trim`` (musl, macOS) nothing is done.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.logger import Logger

log = Logger()

#: Seconds after start that start-up's freed heap is given back.
GIVE_BACK_AFTER = 5.0


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the process's C library has none."""
    try:
        import ctypes  # (Twisted has imported it already: twisted.python.win32)

        libc = ctypes.CDLL(None)
    except (ImportError, OSError):
        return None
    return getattr(libc, "malloc_trim", None)


def give_back(find: Callable[[], Callable[[int], int] | None] = _malloc_trim) -> bool:
    """Give the system back the free pages of the heap; whether the C library could."""
    trim = find()
    if trim is None:
        return False
    try:
        trim(0)
    except Exception as e:  # a foreign C library's oddity must not end the peer
        log.info("malloc_trim failed: {e}", e=e)
        return False
    return True


def give_back_later(clock: Any) -> Any:
    """``give_back`` GIVE_BACK_AFTER seconds from now, on ``clock``; its delayed call."""
    return clock.callLater(GIVE_BACK_AFTER, give_back)
