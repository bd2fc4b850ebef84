"""Lines out of a read, split once per read (mesh.py's links, once they are live).

Twisted's ``LineReceiver`` takes one line off the front of its buffer at a time, copying the
rest each time: a read of n lines costs n splits and n copies of what is left, more the
bigger the read (a gathered TLS record holds a whole turn of lines: gather.py).  Here a read
is split once and its lines handed on in order, with what LineReceiver guarantees kept: the
line length limit, a partial last line kept for the next read, and nothing more handed on
once the protocol is paused (the flood limit) or its transport is closing; lines not handed
on yet wait in the buffer, in order, as they would there.
"""

from __future__ import annotations

from typing import Any

from twisted.protocols.basic import LineReceiver


class LinesPerRead(LineReceiver):
    """A ``LineReceiver`` that splits each read once while ``lines_at_once()`` says so (and
    works as LineReceiver does otherwise: during a handshake, whose checks look at what
    follows a line in the buffer)."""

    transport: Any

    def lines_at_once(self) -> bool:
        return True

    def dataReceived(self, data: bytes) -> None:
        if self._busyReceiving or self.paused or not self.line_mode or not self.lines_at_once():
            super().dataReceived(data)
            return
        self._busyReceiving = True
        try:
            self._buffer += data
            while b"\n" in self._buffer and not self.paused:
                lines = self._buffer.split(self.delimiter)
                self._buffer = lines.pop()  # the partial last line, if any
                long = len(lines)  # the first line too long, if any (the lines before it go)
                if max(map(len, lines)) > self.MAX_LENGTH:
                    long = next(i for i, line in enumerate(lines) if len(line) > self.MAX_LENGTH)
                taken = self.lines_received(lines if long == len(lines) else lines[:long])
                if taken < long:  # read later (paused) or never (closing), in order
                    rest = lines[taken:]
                    rest.append(self._buffer)
                    self._buffer = self.delimiter.join(rest)
                    return
                if long < len(lines):
                    self._buffer = b""
                    self.lineLengthExceeded(lines[long])
                    return
            if len(self._buffer) >= self.MAX_LENGTH + len(self.delimiter):
                line, self._buffer = self._buffer, b""
                self.lineLengthExceeded(line)
        finally:
            self._busyReceiving = False

    def lines_received(self, lines: list[bytes]) -> int:
        """Hand on the lines of one read (none too long), in order; returns how many were
        taken: fewer once the protocol is paused or its transport closing (the rest wait in
        the buffer).  One by one to ``lineReceived`` here; a subclass may take them together
        (mesh.py)."""
        for i, line in enumerate(lines):
            self.lineReceived(line)
            if self.paused or (self.transport and self.transport.disconnecting):
                return i + 1
        return len(lines)
