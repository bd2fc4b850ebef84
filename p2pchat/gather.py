"""Writes gathered per reactor turn, for a live TLS link (mesh.py).

Each TLS write is a record of its own: sealed apart, sent apart, and on the other side read
(and handed to the line parser) apart.  A burst said to ten links cost ten TLS writes a line;
gathered, a link gets one write per reactor turn, whatever was said in it.
"""

from __future__ import annotations

from typing import Any, Callable

#: Once this many bytes are gathered they are written at once, so that the transport's
#: back-pressure (which pauses a pump of the sent log) still comes in time.
GATHER_BYTES = 64 * 1024


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
