"""Keeping the history file to its limits: lines, age and bytes, at start in full and while
running in bounded steps (a few milliseconds each), with free pages given back to the file
system.  Keys cost nothing, so the byte budget is what all peers together can make us keep.

A part of ``store.Store`` (its base class), apart so each stays small: it works on the
Store's connection and limits; and packs the lines to hand on (packing.py) in steps, which is
what keeps a year of lines within the byte budget.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Any, Iterator

from twisted.logger import Logger

from p2pchat.lull import Lull, PutOff
from p2pchat.packing import is_packed, pack

if TYPE_CHECKING:
    from p2pchat.index import SearchIndex

log = Logger()

#: Lines kept on disk: at most this many, none older than this (seconds), and the file at most
#: this many bytes of pages in use (``--history-lines``, ``--history-days``, ``--history-mb``):
#: keys cost nothing, so this budget is what all peers together can make us keep.  Pruned in
#: full at start, and while running in steps (``upkeep``).
#: A year of history: a million lines (at most 400 bytes a line of 100 characters, indexes
#: included: packing.py) fit the byte budget.
HISTORY_MAX_LINES = 1_000_000
HISTORY_MAX_AGE = 365 * 24 * 3600.0
HISTORY_MAX_BYTES = 512 * 1024 * 1024
#: While running: ``upkeep`` runs every UPKEEP_INTERVAL seconds (the byte budget is also kept
#: after every UPKEEP_AFTER_BYTES written); one step deletes at most PRUNE_STEP lines and
#: PRUNE_STEP_BYTES of them, and gives back at most VACUUM_STEP_PAGES free pages to the file
#: system (auto_vacuum=incremental), so one step holds the reactor a few milliseconds.
UPKEEP_INTERVAL = 1.0
UPKEEP_AFTER_BYTES = 1024 * 1024
PRUNE_STEP = 2000
PRUNE_STEP_BYTES = 1024 * 1024
VACUUM_STEP_PAGES = 256
#: Lines packed (packing.py) per ``upkeep`` (every UPKEEP_INTERVAL): at most PACK_STEP, and
#: no more than PACK_STEP_SECONDS of packing.
PACK_STEP = 200
PACK_STEP_SECONDS = 0.01
#: An ``upkeep`` that found nothing to do (no line deleted or packed, no free page left, the
#: write-ahead log written back) is not done again until something is written to the file
#: (the connection's ``total_changes`` moves) or QUIET_UPKEEP_INTERVAL seconds pass (lines
#: still age past ``--history-days`` with nothing written: they go at most this much later).
#: An idle peer did its deletes, counts and pragmas every second for nothing.
QUIET_UPKEEP_INTERVAL = 60.0
#: What ``next`` gives for an upkeep whose stages are all done (``Retention._upkeep_step``).
_DONE = object()
#: Sequence numbers are stored shifted by -2**63: the wire's whole uint64 range fits SQLite's
#: signed 64-bit INTEGER and keeps its order (``seq > ?`` and ``max`` still hold).
SEQ_SHIFT = 2**63
#: What the limits above may delete: any row but one of our own lines still in the sent log
#: (saidrows.py: said after the parameter, ``--catchup-age`` ago), which is resent after a
#: restart whatever the history's limits say (the sent log has limits of its own).
SENT_LOG_SPARED = "(own = 0 or raw is null or ts < ?)"
#: Authors whose seen sequences (seen.py) are kept on disk: the ones heard least lately go
#: first past this count, and any not heard for the history's age.
MAX_SEEN_AUTHORS = 20_000


class Retention:
    """Pruning and the byte budget of the history file (``store.Store`` is one)."""

    _db: sqlite3.Connection
    max_lines: int
    max_age: float
    max_bytes: int
    needs_vacuum: bool
    #: lines in the file (counted once at open, then kept up to date by every write)
    line_count: int
    #: lines said before this are no longer handed on (``sent_age`` ago, at the last prune)
    hand_on_after: float
    #: lines up to this rowid were looked at for packing; the keys of authors of lines kept
    packed_upto: int
    _keys: dict[str, str]
    closed: bool
    sent_age: float
    _written: int
    _upkeep_error: str
    _pending: dict[str, list[tuple[Any, ...]]]
    _high: dict[str, int]
    _settings: dict[str, str]
    _seen: dict[str, Any]
    #: the connection's ``total_changes`` after an upkeep that left nothing to do (-1: none
    #: did), and when upkeep is due anyway (QUIET_UPKEEP_INTERVAL after that one)
    _quiet_changes: int = -1
    _quiet_until: float = 0.0
    #: the longest stage of the last upkeep (seconds: what a stage asks the turn room for),
    #: the longest of the one under way, and the stages left of it (None: none under way)
    _upkeep_took: float = 0.0
    _upkeep_longest: float = 0.0
    _upkeep_stages: Iterator[None] | None = None
    #: when lines were last jotted (lull.py): upkeep waits for a lull, and so does the byte
    #: budget kept after each UPKEEP_AFTER_BYTES written (each job its own PutOff)
    lull: Lull | None
    _upkeep_put_off: PutOff
    _budget_put_off: PutOff

    index: SearchIndex

    def flush(self) -> None:
        raise NotImplementedError  # the Store's

    def rows_step(self, down_to: int) -> bool:
        raise NotImplementedError  # the Store's (jotting.py)

    def _forget_sent(self, before: float, limit: int | None = None) -> None:
        raise NotImplementedError  # the Store's (saidrows.py)

    def pack_step(self) -> int:
        """Pack (packing.py) the next PACK_STEP lines saved since the last step; returns how
        many were packed.  Off the path a line comes by: a burst is saved as it came and
        packed a second or more later, PACK_STEP a second."""
        rows = self._db.execute(
            "select rowid, raw, room, sender_id, nick, ts, seq, text from lines where rowid > ? "
            "order by rowid limit ?", (self.packed_upto, PACK_STEP)).fetchall()
        if not rows:
            return 0
        packed = []
        deadline = time.perf_counter() + PACK_STEP_SECONDS
        upto = self.packed_upto
        for rowid, raw, room, sender_id, nick, when, seq, text in rows:
            if time.perf_counter() > deadline:
                break
            upto = rowid
            if (raw is None or is_packed(raw) or seq is None or sender_id not in self._keys):
                continue
            done = pack(bytes(raw), room, sender_id, nick, when, seq + SEQ_SHIFT)
            # the text the /search index has for the row must stay what it is (a shown text
            # made printable, or an action, is not the text said: such a line stays whole)
            if done is not None and text in ("", done[0]):
                packed.append((done[0], done[1], rowid))
        with self._db:
            self._db.execute("begin")
            self._db.executemany("update lines set text = ?, raw = ?, pk = '' where rowid = ?",
                                 packed)
            self.packed_upto = upto
            self._db.execute("insert or replace into settings values ('packed_upto', ?)",
                             (str(self.packed_upto),))
        return len(packed)


    def prune(self, now: float, max_lines: int | None = None, max_age: float | None = None,
              sent_age: float = HISTORY_MAX_AGE) -> None:
        """Drop lines past the age, count and byte limits, and sent lines too old to resend;
        lines older than ``sent_age`` are no longer handed on.  In full, at start (before the
        reactor runs), yet without reading every line: the age through ``lines_by_room``
        (each conversation's old end), the count from ``line_count``, so a file of a million
        lines opens about as fast as an empty one.  A file of an older layout is then
        compacted once (VACUUM, bounded by the byte budget since it comes after the prune)."""
        self.flush()
        max_lines = self.max_lines if max_lines is None else max_lines
        max_age = self.max_age if max_age is None else max_age
        sent = now - sent_age
        with self._db:
            self._db.execute("begin")
            self._forget_sent(sent)
            for room in self.conversations():
                self.line_count -= self._db.execute(
                    f"delete from lines where room = ? and ts < ? and {SENT_LOG_SPARED}",
                    (room, now - max_age, sent)).rowcount
            extra = self.line_count - max_lines
            if extra > 0:
                self.line_count -= self._db.execute(
                    "delete from lines where rowid in (select rowid from lines where "
                    f"{SENT_LOG_SPARED} order by rowid limit ?)", (sent, extra)).rowcount
            self._db.execute("delete from seen where ts < ?", (now - max_age,))
        self.sent_age = sent_age
        self.hand_on_after = sent
        while self._over_budget() > 0 and self._drop_oldest(PRUNE_STEP * 32,
                                                            PRUNE_STEP_BYTES * 64):
            pass  # before the reactor runs: big steps
        if self.needs_vacuum:
            started = time.perf_counter()
            self._db.execute("vacuum")
            self.needs_vacuum = False
            self.index.reset()  # rowids may have changed
            log.info("history file compacted once for its new layout in {ms:.0f} ms",
                     ms=(time.perf_counter() - started) * 1000)
        else:
            self._db.executescript("pragma incremental_vacuum;")

    def conversations(self) -> list[str]:
        """Every room (and private conversation) with lines kept: a skip through the
        ``lines_by_room`` index, one step per conversation, not a read of every line."""
        return [row[0] for row in self._db.execute(
            "with recursive r(room) as (select min(room) from lines union all "
            "select (select min(room) from lines where room > r.room) from r "
            "where r.room is not null) select room from r where room is not null")]

    def upkeep(self, now: float) -> None:
        """``_upkeep`` in reactor turns with room for it (turn.py), once lines stop coming
        (lull.py: at most MAX_PUTOFF later; the next second's call asks again).  Its stages
        (the rows behind, the deletes, the byte budget, the packing) are each bounded, but
        together they held the reactor 58 ms in a day of catch-up (26 + 19 + 13): each stage
        waits for a turn with room for the longest stage of the upkeep before, or for a fresh
        turn (where one longer than the budget runs alone)."""
        if self._upkeep_stages is not None:
            return  # one under way: its next stage waits for a turn
        if self._upkeep_put_off.waits(self.lull):
            return
        self._upkeep_stages = self._upkeep(now)
        self._upkeep_longest = 0.0
        self._upkeep_step()

    def _upkeep_step(self) -> None:
        """The upkeep's next stages, while this turn has room for them."""
        stages = self._upkeep_stages
        if stages is None:
            return
        turn = getattr(self, "turn", None)
        timer = time.perf_counter if turn is None else turn.timer
        while True:
            if self.closed:
                self._upkeep_stages = None
                return
            if turn is not None and not turn.fits(max(self._upkeep_took, self._upkeep_longest)):
                turn.next(self._upkeep_step)
                return
            started = timer()
            try:
                done = next(stages, _DONE) is _DONE
            except BaseException:
                self._upkeep_stages = None  # the next second's upkeep starts afresh
                raise
            self._upkeep_longest = max(self._upkeep_longest, timer() - started)
            if done:
                self._upkeep_stages = None
                self._upkeep_took = self._upkeep_longest  # what the next upkeep asks room for
                return

    def _upkeep(self, now: float) -> Iterator[None]:
        """One bounded step of pruning while running (per conversation, at most PRUNE_STEP
        lines too old, found through ``lines_by_room``; the oldest past the count, PRUNE_STEP
        at most), then the byte budget kept, VACUUM_STEP_PAGES free pages given back to the
        file system and the next lines packed (``pack_step``), each stage yielded after (a
        turn between them).  With nothing to do it reads a few index pages, whatever the size
        of the file."""
        if self.closed:
            return
        self._written = 0
        self.rows_step(down_to=0)  # a step of the rows behind (not all at once), and a retry
        sent_age = getattr(self, "sent_age", HISTORY_MAX_AGE)
        self.hand_on_after = now - sent_age
        changes = getattr(self._db, "total_changes", None)
        if changes is not None and changes == self._quiet_changes and now < self._quiet_until:
            return  # nothing written since an upkeep that had nothing to do
        self._quiet_changes = -1
        yield
        try:
            cutoff = now - self.max_age
            with self._db:
                self._db.execute("begin")
                sent = self.hand_on_after
                for room in self.conversations():
                    self.line_count -= self._db.execute(
                        "delete from lines where rowid in (select rowid from lines where "
                        f"room = ? and ts < ? and {SENT_LOG_SPARED} limit ?)",
                        (room, cutoff, sent, PRUNE_STEP)).rowcount
                extra = min(self.line_count - self.max_lines, PRUNE_STEP)
                if extra > 0:
                    self.line_count -= self._db.execute(
                        "delete from lines where rowid in (select rowid from lines where "
                        f"{SENT_LOG_SPARED} order by rowid limit ?)", (sent, extra)).rowcount
                self._forget_sent(sent, PRUNE_STEP)
                self._db.execute("delete from seen where rowid in (select rowid from seen "
                                 "order by rowid limit ?) and ts < ?", (PRUNE_STEP, cutoff))
                extra = self._db.execute("select count(*) from seen").fetchone()[0] - \
                    MAX_SEEN_AUTHORS
                if extra > 0:  # rowid order is write order: the least lately heard first
                    self._db.execute("delete from seen where rowid in (select rowid from seen "
                                     "order by rowid limit ?)", (min(extra, PRUNE_STEP),))
        except sqlite3.Error as e:
            self._upkeep_failed(e)
            return
        yield
        settled = self._keep_to_budget()
        yield
        try:
            packed = self.pack_step()
        except sqlite3.Error as e:
            self._upkeep_failed(e)
            return
        after = getattr(self._db, "total_changes", None)
        if settled and not packed and after is not None and after == changes:
            self._quiet_changes, self._quiet_until = after, now + QUIET_UPKEEP_INTERVAL

    def _upkeep_failed(self, e: Exception) -> None:
        """Logged once per kind of failure (it is retried every second); the face hears of
        failing writes from ``flush``, which are what loses lines."""
        if str(e) != self._upkeep_error:
            self._upkeep_error = str(e)
            log.error("history upkeep failed (retried every {t:.0f} s): {why}",
                      t=UPKEEP_INTERVAL, why=str(e))

    def _keep_to_budget(self) -> bool:
        """One step back under the byte budget, and free pages given back: bounded work, done
        after each UPKEEP_AFTER_BYTES written and at each upkeep.  True if nothing is left to
        do: no free page left, the write-ahead log all written back."""
        try:
            if self._over_budget() > 0:
                self._drop_oldest(PRUNE_STEP)
            # (executescript: it runs the pragma to its end; execute frees one page only)
            self._db.executescript(f"pragma incremental_vacuum({VACUUM_STEP_PAGES});")
            # the file shrinks when the log is written back: do it now if it is quick
            done = self._db.execute("pragma wal_checkpoint(passive)").fetchall()
            free = self._db.execute("pragma freelist_count").fetchone()[0]
        except sqlite3.Error as e:
            self._upkeep_failed(e)
            return False
        return bool(free == 0 and done and done[0][0] == 0 and done[0][1] == done[0][2])

    def used_bytes(self) -> int:
        """Bytes of the file's pages in use (its free pages not counted): what the budget
        bounds."""
        pages = self._db.execute("pragma page_count").fetchone()[0]
        free = self._db.execute("pragma freelist_count").fetchone()[0]
        size = self._db.execute("pragma page_size").fetchone()[0]
        return (pages - free) * size

    def _over_budget(self) -> int:
        return self.used_bytes() - self.max_bytes

    def _oldest(self, count: int, enough: int = PRUNE_STEP_BYTES) -> tuple[int, int] | None:
        """The last rowid and the number of the lines that came first: ``count`` of them at
        most, and no more than come to ``enough`` bytes (so a step deletes a bounded amount,
        whatever the size of the lines)."""
        last, freed, n = None, 0, 0
        for rowid, size in self._db.execute(
                "select rowid, length(text) + coalesce(length(raw), 0) + length(id) + 60 "
                f"from lines where {SENT_LOG_SPARED} order by rowid limit ?",
                (self.hand_on_after, count)):
            last, freed, n = rowid, freed + size, n + 1
            if freed >= enough:
                break
        return None if last is None else (last, n)

    def _drop_oldest(self, count: int, step: int = PRUNE_STEP_BYTES) -> int:
        """Delete the lines that came first: enough of them (``count`` and ``step`` bytes at
        most) to free what is over the budget and a twentieth of it more (so not every step
        has to).  Returns how many went."""
        over = self._over_budget() + self.max_bytes // 20
        if over <= 0:
            return 0
        window = self._oldest(count, min(over, step))
        if window is None:
            return 0
        last = window[0]
        with self._db:
            self._db.execute("begin")
            gone = self._db.execute(f"delete from lines where rowid <= ? and {SENT_LOG_SPARED}",
                                    (last, self.hand_on_after)).rowcount
        self.line_count -= gone
        if gone:
            log.info("history over its {mb:.0f} MB budget: {n} oldest lines dropped",
                     mb=self.max_bytes / 2**20, n=gone)
        return gone
