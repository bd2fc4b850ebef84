"""History jotted down at once and made into SQLite rows behind the burst.

Saving a received line as a row of ``lines`` costs some 8 us of SQLite (three B-trees: the
id key, ``lines_by_room``, ``lines_to_hand_on``), most of what receiving a line may cost
(``bench.hotpath``).  So the store's queued writes of one read (its lines, the author's seen
sequences and high water; our own lines, each with its sent log: saidrows.py) are first
*jotted*: one record appended to a file beside the history file (``history.sqlite3-jot``)
by one ``write``, which
survives the process being killed as a commit does (both sit in the system's page cache),
before the lines are shown or acked.  The rows are made from them a moment later
(``store.Store._step``, every FLUSH_DELAY, at most WRITE_UP_ROWS rows a step), and the file is
emptied once all are rows.  Whatever reads history first has the rest made into rows
(``Store.flush``: at most BEHIND_MAX_ROWS, a bounded hold).  A run that was killed leaves
records in the file: the next one makes them rows at start, before anything reads, and a torn
last record (killed in the middle of writing it) is dropped with a log line.

Replaying a record twice is harmless: every statement is ``insert or ignore`` (lines, by id)
or ``insert or replace`` of the same values, high water only goes up, and the records are
replayed in the order they were written, so the last value of each setting wins.

A record: its length and CRC-32 (8 bytes, little-endian) and then the writes in MessagePack:
``[{statement code: rows}, {sender: high water}, {setting: value}]``.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from collections import deque
from typing import Any, Callable

from twisted.logger import Logger

from p2pchat.lull import Lull, PutOff
from p2pchat.turn import Turn

log = Logger()

#: Rows jotted but not yet made into SQLite rows: at most this many and this many bytes of
#: records; past either, the oldest are made rows at once (on the path a line takes), so the
#: memory they take stays bounded.  Enough for a burst of 5,000 lines (a paste, a catch-up:
#: its rows and the authors' seen sequences) to come through before any of it is made rows,
#: behind it (lull.py).
BEHIND_MAX_ROWS = 6_000
BEHIND_MAX_BYTES = 8 * 1024 * 1024
#: A read that has every jotted row made first (``Store.flush``) holds the reactor about
#: 8-10 us a row here; so a read in steps (a catch-up handed on, /search) first has rows
#: made a step a turn (``rows_step``) until at most this many are behind (20-25 ms), and
#: the console's reads (``recent``, ``around``) read the waiting lines where they are.
READ_BEHIND_ROWS = 2_500
#: The jot file is emptied whenever every record in it is rows; one that grows past this
#: (rows made all the time, as in a long catch-up, never all of them) has its rows made a
#: step at each read and each step of rows, lull or not, until it is emptied, so what a
#: killed run leaves to replay at start is bounded too (this and a few steps' worth).
JOT_FILE_BYTES = 16 * 1024 * 1024
#: Rows made per step (one SQLite transaction), behind the burst: 1,000 a step held the
#: reactor 26-40 ms in a day of catch-up (the 16th session's machine), two steps in one turn
#: past BEHIND_MAX_ROWS 57-67 ms; 500 keep a step near 13-20 ms.
WRITE_UP_ROWS = 500
#: The jot file's name: the history file's and this.
JOT_SUFFIX = "-jot"

_HEAD = struct.Struct("<II")  # the record's length and CRC-32

#: One record's writes: rows by statement, high water by sender, settings.
Writes = tuple[dict[str, list[Any]], dict[str, int], dict[str, str]]



class _NotYet(Exception):
    """Stands for msgspec's DecodeError until the codec is loaded (never raised)."""


def _load_codec() -> None:
    """msgspec's MessagePack codec, bound at the first record written or read: an idle peer
    alone does without msgspec (latetls.LATE_MODULES; wire.py's codec is loaded alike)."""
    global _encode, _decode, _DecodeError
    import msgspec

    _encode = msgspec.msgpack.Encoder().encode
    _decode = msgspec.msgpack.Decoder(
        tuple[dict[int, list[list[Any]]], dict[str, int], dict[str, str]]).decode
    _DecodeError = msgspec.DecodeError


def _first_encode(obj: Any) -> bytes:
    _load_codec()
    return _encode(obj)


def _first_decode(data: bytes) -> Any:
    _load_codec()
    return _decode(data)


_encode: Callable[[Any], bytes] = _first_encode
_decode: Callable[[bytes], Any] = _first_decode
_DecodeError: type[Exception] = _NotYet


class Jotter:
    """The jot file of one history file (``path``; None: kept in memory only) and the records
    in it not yet made rows (``behind``).  ``statements``: the SQL a record may hold, each
    written as its place in this tuple (a record names no SQL of its own)."""

    def __init__(self, path: str | None, statements: tuple[str, ...]) -> None:
        self.path = path
        self._statements = statements
        self._codes = {sql: n for n, sql in enumerate(statements)}
        #: (writes, rows, bytes) of each record not yet made rows, oldest first
        self.behind: deque[tuple[Writes, int, int]] = deque()
        self.rows = 0
        self.bytes = 0
        #: bytes in the file
        self.size = 0
        self._fd: int | None = None

    def open(self) -> list[Writes]:
        """Open the file (made if missing) and return the writes a killed run left in it,
        in order: a torn or damaged record and what follows it are dropped, logged."""
        if self.path is None:
            return []
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self._fd = fd
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read()
        left: list[Writes] = []
        at = 0
        while at < len(data):
            record = self._record(data, at)
            if record is None:
                log.warn("history: the last {n} bytes of {path} were torn or damaged (a run "
                         "killed while writing them?): dropped",
                         n=len(data) - at, path=self.path)
                break
            left.append(record[0])
            at = record[1]
        self.size = len(data)
        return left

    def _record(self, data: bytes, at: int) -> tuple[Writes, int] | None:
        if at + _HEAD.size > len(data):
            return None
        length, crc = _HEAD.unpack_from(data, at)
        start, end = at + _HEAD.size, at + _HEAD.size + length
        if end > len(data) or zlib.crc32(data[start:end]) != crc:
            return None
        try:
            coded, high, settings = _decode(data[start:end])
            rows = {self._statements[code]: [tuple(row) for row in values]
                    for code, values in coded.items()}
        except (_DecodeError, IndexError):
            return None
        return (rows, high, settings), end

    def jot(self, writes: Writes) -> bool:
        """Keep ``writes`` until they are rows: appended to the file by one write (False if
        that failed: the caller makes them rows at once, as before the jot file)."""
        pending, high, settings = writes
        rows = sum(map(len, pending.values()))
        codes = self._codes
        try:
            body = _encode(({codes[sql]: values for sql, values in pending.items()}, high,
                            settings))
        except (TypeError, ValueError, OverflowError, KeyError):
            return False  # a value no record can hold: the row fails alone, at once
        if self._fd is not None:
            try:
                os.write(self._fd, _HEAD.pack(len(body), zlib.crc32(body)) + body)
            except OSError as e:
                log.error("history: jotting lines down failed, saving them at once: {why}",
                          why=str(e))
                return False
            self.size += _HEAD.size + len(body)
        self.behind.append((writes, rows, len(body)))
        self.rows += rows
        self.bytes += len(body)
        return True

    def over(self) -> bool:
        """Too much is behind (BEHIND_MAX_ROWS, BEHIND_MAX_BYTES)."""
        return self.rows > BEHIND_MAX_ROWS or self.bytes > BEHIND_MAX_BYTES

    def draining(self) -> bool:
        """The file grew past JOT_FILE_BYTES with rows still behind: they are made a step
        at a time, whatever the lull, until it can be emptied."""
        return self.size > JOT_FILE_BYTES and bool(self.behind)

    def take(self, rows: int = WRITE_UP_ROWS) -> list[Writes]:
        """The oldest records, about ``rows`` rows of them (one at least), to make rows of."""
        out: list[Writes] = []
        taken = 0
        while self.behind and (not out or taken + self.behind[0][1] <= rows):
            writes, count, size = self.behind.popleft()
            out.append(writes)
            taken += count
            self.rows -= count
            self.bytes -= size
        return out

    def emptied(self) -> None:
        """Every record is rows: the file starts again empty."""
        if self.behind or not self.size or self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        except OSError as e:
            log.error("history: emptying {path} failed: {why}", path=self.path, why=str(e))
            return
        self.size = 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Jotted:
    """The jotting down and the steps behind the burst, a part of ``store.Store`` (its base
    class, as ``retention.Retention`` is), apart so each stays small: it works on the Store's
    queue (``_pending``, ``_high``, ``_settings``, ``_seen``) and its commit (``_write_up``)."""

    jotter: Jotter
    closed: bool
    trouble: str | None
    _flush_scheduled: bool
    _db: Any
    _keys: dict[str, str]
    _pending: dict[str, list[Any]]
    _high: dict[str, int]
    _settings: dict[str, str]
    _seen: dict[str, Any]
    _seen_sql: str
    _next_turn: Callable[[Callable[[], None]], Any] | None
    _jot_scheduled: bool
    #: the reactor turn's budget every stepped job shares (turn.py; the service gives it):
    #: a step of rows waits for a turn that has room for it (None: steps run when due)
    turn: Turn | None = None
    #: how long the last step of rows took (seconds): what the next is expected to take
    _rows_took: float = 0.0
    #: when lines were last jotted (lull.py; the service gives it): steps of rows, upkeep and
    #: indexing wait for a lull in them (None: every step when due, as in tests)
    lull: Lull | None = None
    _rows_put_off: PutOff

    def _write_up(self, batch: list[Writes]) -> None:
        raise NotImplementedError  # the Store's

    def _soon(self) -> None:
        raise NotImplementedError  # the Store's

    def _replayable(self, left: list[Writes]) -> list[Writes]:
        """A killed run's records as this version writes them (the Store's: saidrows.py)."""
        return left

    def _jot_next_turn(self) -> None:
        """The queue jotted down at the reactor's next turn (once, whatever was queued)."""
        if not self._jot_scheduled and self._next_turn is not None:
            self._jot_scheduled = True
            self._next_turn(self._jot_turn)

    def _jot_turn(self) -> None:
        self._jot_scheduled = False
        if not self.closed:
            self._jot()

    def _open_jot(self, path: str, statements: tuple[str, ...], seen_sql: str) -> None:
        """The jot file beside ``path`` (none for ``:memory:``); what a killed run jotted
        made rows now, before anything reads."""
        self._seen_sql = seen_sql
        self._jot_scheduled = False
        self._rows_put_off = PutOff()
        self.jotter = Jotter(None if path == ":memory:" else path + JOT_SUFFIX, statements)
        left = self._replayable(self.jotter.open())
        if left:
            self._write_up(left)
            self._keys.update(self._db.execute("select sender_id, pk from keys"))
            log.info("history: {n} writes a killed run had jotted down made rows",
                     n=sum(len(rows) for writes in left for rows in writes[0].values()))
        self.jotter.emptied()

    def _jot(self, retry: bool = False) -> None:
        """Every queued write kept at once by one append to the jot file (jotting.py), made
        rows later; the oldest made rows now if too much is behind (BEHIND_MAX_ROWS)."""
        if self.trouble is not None and not retry:
            return  # saving fails (a full disk): the queue waits in memory for the next step
        writes = self._take_queue()
        if writes is None:
            return
        if self.lull is not None:
            self.lull.stir()
        jotter = self.jotter
        if self.trouble is not None or not jotter.jot(writes):
            self._write_up([writes])  # a retry, or no jot file (it failed): saved at once
            return
        if jotter.over():
            while jotter.over() and jotter.behind:
                self._write_up(jotter.take(WRITE_UP_ROWS))
        elif jotter.draining():  # a step a read (not all at once: 6000 rows held 50-60 ms)
            self._write_up(jotter.take(WRITE_UP_ROWS))
        if not jotter.behind:
            jotter.emptied()

    def _step(self) -> None:
        """Every FLUSH_DELAY while writes wait: the queue jotted, then the next
        WRITE_UP_ROWS rows made of what is jotted (one transaction), once lines stop coming
        (lull.py: at most MAX_PUTOFF later)."""
        self._flush_scheduled = False
        if self.closed:
            return
        self._jot(retry=True)
        if (self.jotter.behind and not self.jotter.draining()
                and self._rows_put_off.waits(self.lull)):
            self._soon()  # lines are flowing: the rows wait behind the burst (lull.py)
            return
        if self.jotter.behind:
            turn = self.turn
            if turn is not None and not turn.fits(self._rows_took):
                self._flush_scheduled = True  # (no other step is scheduled meanwhile)
                turn.next(self._step)
                return
            timer = time.perf_counter if turn is None else turn.timer
            started = timer()
            self._write_up(self.jotter.take(WRITE_UP_ROWS))
            self._rows_took = timer() - started
        if self.jotter.behind:
            self._soon()
        else:
            self.jotter.emptied()

    def rows_step(self, down_to: int = READ_BEHIND_ROWS) -> bool:
        """For a read in steps: True if at most ``down_to`` rows are behind (the read may
        ``flush``); else one step of rows made (WRITE_UP_ROWS, a transaction) and False (the
        reader asks again at its next step)."""
        self._jot(retry=True)
        if self.jotter.rows <= down_to:
            return True
        self._write_up(self.jotter.take(WRITE_UP_ROWS))
        return False

    def flush(self) -> None:
        """Commit every queued and jotted write (before history is read, at leaving and
        close; at most BEHIND_MAX_ROWS rows are behind, so the hold is bounded; readers in
        steps first take ``rows_step`` down to READ_BEHIND_ROWS)."""
        self._flush_scheduled = False
        self._jot(retry=True)
        while self.jotter.behind:
            self._write_up(self.jotter.take(WRITE_UP_ROWS))
        if self.trouble is None:
            self.jotter.emptied()

    def _take_queue(self) -> Writes | None:
        """The queued writes (emptied), the seen sequences as text."""
        if not (self._pending or self._high or self._settings or self._seen):
            return None
        pending, self._pending = self._pending, {}
        high, self._high = self._high, {}
        settings, self._settings = self._settings, {}
        seen, self._seen = self._seen, {}
        now = time.time()
        for author, source in seen.items():
            text = source if isinstance(source, str) else source.dump(author)
            if text is not None:
                pending.setdefault(self._seen_sql, []).append((author, text, now))
        return pending, high, settings


def merged(batch: list[Writes]) -> Writes:
    """Records as one (in one transaction): rows in order, the highest high water, the last
    value of each setting."""
    if len(batch) == 1:
        return batch[0]
    pending: dict[str, list[Any]] = {}
    high: dict[str, int] = {}
    settings: dict[str, str] = {}
    for rows, marks, values in batch:
        for sql, those in rows.items():
            pending.setdefault(sql, []).extend(those)
        for sender, seq in marks.items():
            if seq > high.get(sender, -1):
                high[sender] = seq
        settings.update(values)
    return pending, high, settings
