"""Where the node keeps what was said: one ``History`` interface, two implementations.

``store.Store`` keeps it in a SQLite file (across restarts); ``MemoryHistory`` keeps the last
lines in memory, for a run without a data dir.  The node always has one of them, so it never
asks whether history is kept: shown lines, lines to hand on to a peer that missed them
(relay.py), the rooms we are in and how far we have each sender all go through the same
calls, and handing on works without a file too (from what this run heard).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Callable, Protocol, Sequence

from twisted.internet.defer import Deferred, succeed

from p2pchat.interfaces import Row, SearchHit, StoredLine
from p2pchat.search import Query, search_lines

if TYPE_CHECKING:
    from p2pchat.seen import SeenSet
    from p2pchat.store import Store
    from p2pchat.wire import Message

#: Lines ``MemoryHistory`` keeps (all conversations together), and the most bytes of lines to
#: hand on among them: past either, the oldest go first.
MEMORY_LINES = 1_000
MEMORY_RELAY_BYTES = 8 * 1024 * 1024


class History(Protocol):
    """What the node keeps and reads back (``Store`` and ``MemoryHistory`` provide it)."""

    #: told ``why`` when saving fails, and None when it works again
    on_trouble: Callable[[str | None], None] | None

    def remember(self, line: StoredLine) -> None: ...

    def remember_lines(self, lines: list[StoredLine]) -> None: ...

    def remember_rows(self, rows: list[Row]) -> None: ...

    def recent(self, room: str, count: int, skip: Sequence[str] = ()) -> list[StoredLine]: ...

    def recent_ids(self, count: int) -> list[str]: ...

    def around(self, room: str, when: float, count: int,
               skip: Sequence[str] = ()) -> list[StoredLine]: ...

    def relayable_after(self, sender_id: str, after: int, rooms: list[str], limit: int,
                        since: float) -> list[tuple[int, bytes, str]]: ...

    def rows_step(self) -> bool:
        """Ready for a read in steps (True), or a step taken toward it (jotting.py)."""

    def save_sent(self, msg: Message, data: bytes | None = None) -> None: ...

    def save_said(self, said: list[tuple[Message, bytes]]) -> None: ...

    def load_sent(self, max_lines: int, max_age: float, now: float) -> list[Message]: ...

    def last_sequence(self) -> int: ...

    def set_high_water(self, sender_id: str, seq: int) -> None: ...

    def high_water(self) -> dict[str, int]: ...

    def set_rooms(self, rooms: list[str]) -> None: ...

    def rooms(self) -> list[str]: ...

    # the backing of the node's SeenSet (seen.py)
    def seen_text(self, author: str) -> str | None: ...

    def seen_changed(self, author: str, source: SeenSet | str) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...

    # /search (search.py): the newest ``limit`` lines matching, found off the reactor where
    # that takes long; and how far indexing an older file got (percent, None when done)
    def search(self, query: Query, limit: int) -> Deferred[list[SearchHit]]: ...

    def indexing(self) -> int | None: ...


class MemoryHistory:
    """History for this run only: the last MEMORY_LINES lines (of every conversation), with
    the bytes of those to hand on.  What lives across runs (our own lines to resend, how far
    we have each sender, our rooms) is not kept: a new run starts afresh, as it always did
    without a data dir."""

    def __init__(self, max_lines: int = MEMORY_LINES,
                 max_relay_bytes: int = MEMORY_RELAY_BYTES) -> None:
        self.on_trouble: Callable[[str | None], None] | None = None
        #: the lines, oldest first
        self.lines: deque[StoredLine] = deque()
        self.max_lines = max_lines
        self.max_relay_bytes = max_relay_bytes
        self._relay_bytes = 0

    def remember(self, line: StoredLine) -> None:
        self.lines.append(line)
        self._relay_bytes += len(line.raw or b"")
        while len(self.lines) > self.max_lines or self._relay_bytes > self.max_relay_bytes:
            self._relay_bytes -= len(self.lines.popleft().raw or b"")

    def remember_lines(self, lines: list[StoredLine]) -> None:
        for line in lines:
            self.remember(line)

    def remember_rows(self, rows: list[Row]) -> None:
        for row in rows:
            self.remember(StoredLine(*row))

    def recent(self, room: str, count: int, skip: Sequence[str] = ()) -> list[StoredLine]:
        """The last ``count`` lines of a conversation, oldest first; none by the authors in
        ``skip`` (the ignored: they don't use up the count)."""
        out: list[StoredLine] = []
        for line in reversed(self.lines):
            if len(out) >= count:
                break
            if line.room == room and line.sender_id not in skip:
                out.append(line)
        out.reverse()
        return out

    def around(self, room: str, when: float, count: int,
               skip: Sequence[str] = ()) -> list[StoredLine]:
        """/context: up to ``count`` lines of a conversation said before ``when`` and up to
        ``count + 1`` from ``when`` on (the line at ``when`` and those after), oldest first;
        none by the authors in ``skip``.  At most MEMORY_LINES lines to look through."""
        mine = [line for line in self.lines if line.room == room and line.sender_id not in skip]
        before = [line for line in mine if line.when < when]
        after = [line for line in mine if line.when >= when]
        return (before[-count:] if count > 0 else []) + after[:count + 1]

    def recent_ids(self, count: int) -> list[str]:
        return [line.id for line in list(self.lines)[-count:]] if count > 0 else []

    def rows_step(self) -> bool:
        return True  # (nothing waits to be written)

    def relayable_after(self, sender_id: str, after: int, rooms: list[str], limit: int,
                        since: float) -> list[tuple[int, bytes, str]]:
        """(sequence, raw line, author key) of ``sender_id``'s signed lines after ``after``
        in ``rooms``, said at ``since`` or later, oldest first (as ``Store`` gives them)."""
        wanted = set(rooms)
        rows = sorted((line.seq, line.raw, line.pk) for line in self.lines
                      if line.raw is not None and line.pk and line.sender_id == sender_id
                      and line.seq > after and line.when >= since and line.room in wanted)
        return [(seq, raw, pk) for seq, raw, pk in rows[:limit] if raw is not None]

    def save_sent(self, msg: Message, data: bytes | None = None) -> None:
        """Our sent log lives in memory already (catchup.SentLog): nothing more to keep."""

    def save_said(self, said: list[tuple[Message, bytes]]) -> None:
        """A run of our own room lines (saying.py): in the history, as ``remember`` keeps
        each (the sent log is in memory already)."""
        for msg, _ in said:
            self.remember(StoredLine(msg.id, msg.room_id, msg.sender_id, msg.username,
                                     msg.content, False, True, msg.timestamp or 0.0))

    def load_sent(self, max_lines: int, max_age: float, now: float) -> list[Message]:
        return []

    def last_sequence(self) -> int:
        return 0

    def set_high_water(self, sender_id: str, seq: int) -> None:
        """The room keeps how far we have each sender in memory already."""

    def high_water(self) -> dict[str, int]:
        return {}

    def set_rooms(self, rooms: list[str]) -> None:
        """The rooms we are in are known to the node already."""

    def rooms(self) -> list[str]:
        return []

    def seen_text(self, author: str) -> str | None:
        return None

    def seen_changed(self, author: str, source: SeenSet | str) -> None:
        """Nothing outlives the SeenSet's memory without a file."""

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def search(self, query: Query, limit: int) -> Deferred[list[SearchHit]]:
        """At most MEMORY_LINES lines: searched here and now (a few milliseconds)."""
        return succeed(search_lines(self.lines, query, limit))

    def indexing(self) -> int | None:
        return None


if TYPE_CHECKING:  # both really are Histories (checked by mypy)
    def _sqlite(store: Store) -> History:
        return store

    def _memory(memory: MemoryHistory) -> History:
        return memory
