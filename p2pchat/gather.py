"""Writes gathered per reactor turn, for a live TLS link (mesh.py).

Each TLS write is a record of its own: sealed apart, sent apart, and on the other side read
(and handed to the line parser) apart.  A burst said to ten links cost ten TLS writes a line;
gathered, a link gets one write per reactor turn, whatever was said in it.

Gathering pays only for small writes, so it stops at one full TLS record: a run of lines said
at once (a paste, a script's burst: 100 lines, some 40 KB) fills records by itself, and held
to the turn's end it went out with the next run, two runs a write, while the peer had nothing
to read (the side-by-side burst: the receivers asleep, a core idle, and twice the lines left
for them after the last run).
"""

from __future__ import annotations

from typing import Any, Callable

#: Once this many bytes are gathered they are written at once: a full TLS record (16 KiB, the
#: most one record seals), past which waiting saves no record and only delays the peer; and so
#: that the transport's back-pressure (which pauses a pump of the sent log) comes in time.
GATHER_BYTES = 16 * 1024


class Gather:
    """What is written in one reactor turn, handed to ``write`` at the turn's end (a
    ``callLater(0)`` of ``clock``), or as soon as GATHER_BYTES are waiting."""

    __slots__ = ("_clock", "_write", "_pending", "_size")

    def __init__(self, clock: Any, write: Callable[[bytes], None]) -> None:
        self._clock = clock
        self._write = write
        self._pending: list[bytes] = []
        self._size = 0

    def add(self, data: bytes) -> None:
        pending = self._pending
        pending.append(data)
        self._size += len(data)
        if len(pending) == 1:
            self._clock.callLater(0, self.flush)
        if self._size >= GATHER_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write what is waiting (before a close, or at the turn's end)."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        self._size = 0
        self._write(pending[0] if len(pending) == 1 else b"".join(pending))

    def drop(self) -> None:
        """Forget what is waiting (the connection is gone)."""
        self._pending = []
        self._size = 0
