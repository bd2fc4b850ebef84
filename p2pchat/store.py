"""History on disk: every chat line shown, our own lines to resend, how far we have each
sender, and the rooms we are in, in one SQLite file in the data dir.

Writes are queued; a read's lines (and our own said at once) are jotted down at once, by one
append to a file beside this one (jotting.py), and every FLUSH_DELAY the queue and what is
jotted are committed together (one transaction, WRITE_UP_ROWS rows at most), so a burst of
lines costs one commit, behind it, and the reactor is never held for long.  Queued writes of
one kind go in one ``executemany``; how far we have each sender is written once per commit,
whatever the number of its lines in it.  The file is in WAL mode
with ``synchronous=NORMAL``: a committed line survives the process being killed at any moment,
and the file is never left corrupt (a power cut may lose the last commits, not the file).
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any, Callable

from twisted.logger import Logger

from twisted.internet.defer import Deferred

from p2pchat.index import SearchIndex
from p2pchat.jotting import Jotted, Writes, merged
from p2pchat.lull import Lull, PutOff
from p2pchat.readback import ADD_LINE, ReadBack
from p2pchat.packing import shown
from p2pchat.runpaths import hand_on
from p2pchat.saidrows import ADD_SAID, OLD_SENT, OWN_KEY, SaidRows
from p2pchat.search import Query
from p2pchat.interfaces import Row, SearchHit, StoredLine  # noqa: F401 (the value type lives there)
from p2pchat.retention import (  # noqa: F401 (the limits live there; options read them here)
    HISTORY_MAX_AGE,
    HISTORY_MAX_BYTES,
    HISTORY_MAX_LINES,
    MAX_SEEN_AUTHORS,
    PRUNE_STEP,
    SEQ_SHIFT,
    UPKEEP_AFTER_BYTES,
    UPKEEP_INTERVAL,
    Retention,
)

log = Logger()

STORE_NAME = "history.sqlite3"
#: Writes are committed together at most this long (seconds) after the first of them.
FLUSH_DELAY = 0.05
#: how a line is added (one executemany per commit; its changes are counted: ``line_count``;
#: the search index takes them after it)
_ADD_LINE = ADD_LINE
_ADD_KEY = "insert or replace into keys values (?, ?)"
_ADD_SEEN = "insert or replace into seen values (?, ?, ?)"
#: The write-ahead log is truncated back to this size after a checkpoint.
WAL_LIMIT_BYTES = 8 * 1024 * 1024
#: Bytes of lines one link may have us save per second, after a burst of SAVE_BURST: past
#: it its lines are still shown, but not saved (so one flooding peer churns the byte budget
#: slowly: 512 MB takes it half an hour at least).  The burst covers a day of catch-up coming
#: at once by one link (100,000 lines of about 500 bytes, text and signed bytes).
SAVE_RATE = 256 * 1024
SAVE_BURST = 64 * 1024 * 1024
#: Writes kept in memory to retry while saving fails (a full disk), at most this many and this
#: many bytes; past it the oldest are lost.
RETRY_MAX_WRITES = 20_000
RETRY_MAX_BYTES = 16 * 1024 * 1024
#: ``pragma user_version`` of the current layout: 1 = shifted sequences, incremental vacuum;
#: 2 = authors' keys in a table of their own (``keys``), lines packed (packing.py);
#: 3 = our sent log in our lines' rows (saidrows.py), no ``sent`` table.
LAYOUT = 3


#: What one row can make a statement fail with (its values), unlike a full disk.
_BAD_ROW = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError,
            OverflowError, ValueError, TypeError)


def to_db(seq: int) -> int:
    """A sequence (0 .. 2**64-1) as stored (SEQ_SHIFT)."""
    return seq - SEQ_SHIFT


def from_db(value: int) -> int:
    """A stored sequence back as on the wire."""
    return value + SEQ_SHIFT


_SCHEMA = """
create table if not exists lines (
    id text primary key,
    room text not null,
    sender_id text not null,
    nick text not null,
    text text not null,
    action integer not null,
    own integer not null,
    ts real not null,
    seq integer,
    raw blob,
    pk text
);
create table if not exists high_water (sender_id text primary key, seq integer not null);
create table if not exists settings (key text primary key, value text not null);
create table if not exists seen (sender_id text primary key, ranges text not null,
                                 ts real not null);
create table if not exists keys (sender_id text primary key, pk text not null);
"""


#: After the columns exist (files of older versions get them in ``_migrate``).
_INDEXES = """
create index if not exists lines_by_room on lines (room, ts);
create index if not exists lines_to_hand_on on lines (sender_id, seq) where raw is not null;
"""


class Store(SaidRows, Jotted, Retention, ReadBack):
    #: how a line is added (saidrows.py adds our own by it)
    _add_line = _ADD_LINE

    def __init__(self, path: str, call_soon: Callable[[Callable[[], None]], Any] | None = None,
                 max_lines: int = HISTORY_MAX_LINES, max_age: float = HISTORY_MAX_AGE,
                 max_bytes: int = HISTORY_MAX_BYTES, fts: bool | None = None,
                 next_turn: Callable[[Callable[[], None]], Any] | None = None) -> None:
        """``fts``: False searches without FTS5 (as where the build lacks it; index.py).
        ``call_soon(f)`` runs f a little later on the reactor
        (``reactor.callLater(FLUSH_DELAY, f)``); without it every write commits at once.
        ``next_turn(f)``: f at the reactor's next turn (``callLater(0, f)``), where lines
        kept one by one (``remember``) are jotted down together; without it, each at once.
        ``max_*``: what ``prune`` and ``upkeep`` keep."""
        self.path = path
        self.max_lines = max_lines
        self.max_age = max_age
        self.max_bytes = max_bytes
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        existed = self._db.execute("select 1 from sqlite_master where type = 'table' "
                                   "and name = 'lines'").fetchone() is not None
        if not existed:  # before the first table: a new file gives space back as it goes
            self._db.execute("pragma auto_vacuum=incremental")
        self._db.execute("pragma journal_mode=wal")
        self._db.execute("pragma synchronous=normal")
        self._db.execute(f"pragma journal_size_limit={WAL_LIMIT_BYTES}")
        self._db.executescript(_SCHEMA)
        layout = self._db.execute("pragma user_version").fetchone()[0]
        #: a file of an older layout is compacted once, after the first prune (``prune``)
        self.needs_vacuum = False
        self._migrate()
        if not existed:
            self._db.execute(f"pragma user_version={LAYOUT}")
        elif layout < 1:
            self._shift_sequences()  # after _migrate: sequences it moved are shifted too
        if existed and layout < 2:
            with self._db:  # once: the keys of the authors of lines kept to hand on
                self._db.execute("begin")
                self._db.execute("insert or ignore into keys select sender_id, pk from lines "
                                 "where raw is not null and pk is not null and pk != ''")
                self._db.execute(f"pragma user_version={LAYOUT}")
        #: the /search index (index.py): new lines go in by a trigger, old ones in steps
        self.index = SearchIndex(self._db, path, shown, fts=fts)
        #: our peer id: whose rows hold the sent log (saidrows.py)
        self._own_id: str | None = (self._upgrade_sent(LAYOUT) if existed and layout < 3
                                    else None)
        #: the id of the line ``save_sent`` last queued (its row), which ``remember`` skips
        self._sent_id = ""
        #: authors of lines we keep to hand on, and their keys (a packed line keeps none of
        #: its own): no query for the others (a peer joining a mesh of 50 is asked about 49
        #: authors on each of its 49 links)
        self._keys: dict[str, str] = dict(self._db.execute("select sender_id, pk from keys"))
        self.line_count = self._db.execute("select count(*) from lines").fetchone()[0]
        self.hand_on_after = 0.0
        #: lines up to this rowid were looked at for packing (packing.py), in ``pack_step``
        row = self._db.execute("select value from settings where key = 'packed_upto'"
                               ).fetchone()
        self.packed_upto = int(row[0]) if row and row[0].isdigit() else 0
        self._call_soon = call_soon
        #: queued rows, by statement (in the order each statement was first queued)
        self._pending: dict[str, list[tuple]] = {}
        #: queued high-water marks and settings: only the last of each counts
        self._high: dict[str, int] = {}
        self._settings: dict[str, str] = {}
        #: authors whose seen sequences changed: their set (read at commit), or its text
        self._seen: dict[str, Any] = {}
        self._flush_scheduled = False
        self._next_turn = next_turn
        #: told ``why`` once when saving fails, and None once it works again (a notice)
        self.on_trouble: Callable[[str | None], None] | None = None
        self.trouble: str | None = None
        #: bytes written since the last ``upkeep`` (which runs early past UPKEEP_AFTER_BYTES)
        self._written = 0
        self._bad_rows_logged = 0
        self.closed = False
        self._upkeep_error = ""
        self.lull = None
        self._upkeep_put_off, self._budget_put_off = PutOff(), PutOff()
        #: what calls ``upkeep`` while running (a LoopingCall the service starts): stopped at close
        self.upkeep_loop: Any = None
        self._open_jot(path, (_ADD_LINE, _ADD_KEY, OLD_SENT, _ADD_SEEN, ADD_SAID), _ADD_SEEN)
        if self._own_id is None:  # (after what a killed run jotted: it may say)
            row = self._db.execute("select value from settings where key = ?",
                                   (OWN_KEY,)).fetchone()
            self._own_id = row[0] if row else None

    # --- writing --------------------------------------------------------------------------

    def _migrate(self) -> None:
        """Files of older versions: lines get the columns of a line to hand on, and the lines
        kept apart to hand on join their row (one row and one write per line, not two)."""
        columns = {row[1] for row in self._db.execute("pragma table_info(lines)")}
        old = self._db.execute("select 1 from sqlite_master where type = 'table' "
                               "and name = 'relayable'").fetchone()
        missing = [(name, kind) for name, kind in (("seq", "integer"), ("raw", "blob"),
                                                   ("pk", "text")) if name not in columns]
        if missing or old:
            self._upgrade(missing, bool(old))
        self._db.executescript(_INDEXES)

    def _shift_sequences(self) -> None:
        """Layout 0 kept sequences as they are (so 2**63 and above did not fit): shift them."""
        with self._db:
            self._db.execute("begin")
            self._db.execute("update lines set seq = seq + ? where seq is not null",
                             (-SEQ_SHIFT,))
            self._db.execute("update high_water set seq = seq + ?", (-SEQ_SHIFT,))
            self._db.execute(f"pragma user_version={LAYOUT}")
        auto = self._db.execute("pragma auto_vacuum").fetchone()[0]
        if auto != 2:
            self._db.execute("pragma auto_vacuum=incremental")  # takes effect at VACUUM
            self.needs_vacuum = True

    def _upgrade(self, missing: list[tuple[str, str]], old: bool) -> None:
        with self._db:
            self._db.execute("begin")
            for name, kind in missing:
                self._db.execute(f"alter table lines add column {name} {kind}")
            if old:
                self._db.execute(
                    "update lines set (seq, raw, pk) = (select seq, raw, pk from relayable "
                    "where relayable.id = lines.id) where id in (select id from relayable)")
                self._db.execute("drop table relayable")

    def _soon(self) -> None:
        if self._call_soon is None:
            self.flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._call_soon(self._step)

    def _write_up(self, batch: list[Writes]) -> None:
        """Commit writes in one transaction.  A row that fails (one no file could keep)
        fails alone: the batch is retried row by row.  A commit that fails (a full disk) is
        told once through ``on_trouble``, and its end too."""
        pending, high, settings = merged(batch)
        started = time.perf_counter()
        try:
            try:
                self._commit(pending, high, settings, row_by_row=False)
            except _BAD_ROW:
                self._commit(pending, high, settings, row_by_row=True)
        except Exception as e:  # never let a failing disk take the reactor (or shutdown) down
            lost = self._keep_for_later(pending, high, settings)
            if self.trouble is None or lost:
                log.error("history not saved ({n} writes kept to retry, {lost} lost): {why}",
                          n=sum(map(len, self._pending.values())), lost=lost, why=str(e))
            self._troubled(str(e))
            return
        self._troubled(None)
        took = time.perf_counter() - started
        if took > 0.05:
            log.warn("saving history took {ms:.0f} ms", ms=took * 1000)
        if self._written >= UPKEEP_AFTER_BYTES and not self._budget_put_off.waits(self.lull):
            self._written = 0
            self._keep_to_budget()

    def _keep_for_later(self, pending: dict[str, list[tuple]], high: dict[str, int],
                        settings: dict[str, str]) -> int:
        """A commit failed (a full disk): its writes go back in front of the queue, to be
        retried at the next write or upkeep (every UPKEEP_INTERVAL), RETRY_MAX_WRITES at most
        (the oldest go first).  Returns how many were dropped."""
        for sql, rows in pending.items():
            self._pending[sql] = rows + self._pending.get(sql, [])
        for sender, seq in high.items():
            self._high[sender] = max(seq, self._high.get(sender, seq))
        for key, value in settings.items():
            self._settings.setdefault(key, value)
        lost = 0
        total = sum(map(len, self._pending.values()))
        size = sum(_row_bytes(row) for rows in self._pending.values() for row in rows)
        for rows in self._pending.values():
            cut = 0
            while cut < len(rows) and (total > RETRY_MAX_WRITES or size > RETRY_MAX_BYTES):
                size -= _row_bytes(rows[cut])
                total -= 1
                cut += 1
            del rows[:cut]
            lost += cut
        return lost

    def _commit(self, pending: dict[str, list[tuple]], high: dict[str, int],
                settings: dict[str, str], row_by_row: bool) -> None:
        with self._db:
            self._db.execute("begin")
            lines_before = (self._db.execute("select max(rowid) from lines").fetchone()[0] or 0
                            if _ADD_LINE in pending or ADD_SAID in pending else None)
            for sql, rows in pending.items():
                if sql == ADD_SAID:  # an upsert: rows made are counted by their rowids
                    self._add_said(rows, row_by_row)
                elif row_by_row:
                    for row in rows:
                        self._one_row(sql, row)
                else:
                    changed = self._db.executemany(sql, rows).rowcount
                    if sql == _ADD_LINE:
                        self.line_count += max(0, changed)
            extra: dict[str, list[tuple[Any, ...]]] = {
                "insert into high_water values (?, ?) on conflict(sender_id) do update "
                "set seq = max(seq, excluded.seq)":
                    [(sender, to_db(seq)) for sender, seq in high.items()],
                "insert or replace into settings values (?, ?)": list(settings.items()),
            }
            for sql, rows in extra.items():
                if rows and row_by_row:
                    for row in rows:
                        self._one_row(sql, row)
                elif rows:
                    self._db.executemany(sql, rows)
            if lines_before is not None:
                self.index.add_new(lines_before)  # the new lines, for /search

    def _add_said(self, rows: list[tuple], row_by_row: bool) -> None:
        top = self._db.execute("select max(rowid) from lines").fetchone()[0] or 0
        if row_by_row:
            for row in rows:
                self._one_row(ADD_SAID, row)
        else:
            self._db.executemany(ADD_SAID, rows)
        self.line_count += (self._db.execute("select max(rowid) from lines").fetchone()[0]
                            or 0) - top

    def _one_row(self, sql: str, row: tuple) -> None:
        try:
            changed = self._db.execute(sql, row).rowcount
            if sql == _ADD_LINE:
                self.line_count += max(0, changed)
        except _BAD_ROW as e:
            if self._bad_rows_logged < 10:  # a few, not one per row of a flood
                self._bad_rows_logged += 1
                log.warn("a history row could not be saved and was skipped ({why}): {row}",
                         why=str(e), row=repr(row)[:200])

    def _troubled(self, why: str | None) -> None:
        if why == self.trouble or (why is not None and self.trouble is not None):
            return
        self.trouble = why
        if why is None:
            log.info("history: saving lines again")
        if self.on_trouble is not None:
            try:
                self.on_trouble(why)
            except Exception:
                log.failure("telling of a history problem failed")

    def remember(self, line: StoredLine) -> None:
        """One line (hearing.py), jotted with the others of this turn (before an ack).  Our
        own line that ``save_sent`` just queued is that row already."""
        if line.own and line.id == self._sent_id:
            self._sent_id = ""
            if self._next_turn is None:
                self._jot()
        else:
            self.remember_rows([_row(line)], at_once=self._next_turn is None)
        self._jot_next_turn()

    def remember_lines(self, lines: list[StoredLine]) -> None:
        """Keep lines.  One to hand on is kept once, with its bytes and its text as shown (the
        /search index takes the text); ``pack_step`` packs the bytes a second or more later."""
        self.remember_rows([_row(line) for line in lines])

    def remember_rows(self, rows: list[Row], at_once: bool = True) -> None:
        """``remember_lines`` of tuples (a read's run), jotted now, made rows behind it."""
        if not rows:
            return
        keys, written = self._keys, 0
        add = self._pending.setdefault(_ADD_LINE, []).append
        for (ident, room, sender, nick, text, action, own, when, seq, raw, pk) in rows:
            kept: str | None = pk or None  # the row's key: None, not to hand on
            if raw is not None:
                if pk:
                    if keys.get(sender) != pk:
                        keys[sender] = pk
                        self._pending.setdefault(_ADD_KEY, []).append((sender, pk))
                    # the row keeps no copy of the key (44 bytes a line): its author's is in
                    # ``keys``, and it is the only one (an author's peer id is its key's)
                    kept = ""
                written += len(raw)
            written += len(text) + 100
            # (action and own as ints: sqlite3 binds a bool, as any type but int, float, str
            # and bytearray, through its adapters' lookup, ~0.2 us each a row)
            add((ident, room, sender, nick, text, 1 if action else 0, 1 if own else 0, when,
                 seq - SEQ_SHIFT if seq else None, raw, kept))
        self._written += written
        if at_once:
            self._jot()  # kept now (before they are shown or acked), rows later
        if not self._flush_scheduled:
            self._soon()

    def wait_for_lulls(self, lull: Lull) -> None:
        """The history's work behind the burst (rows made of what is jotted, upkeep, the
        /search index) waits for a lull in the lines (lull.py)."""
        self.lull = self.index.lull = lull

    def set_high_water(self, sender_id: str, seq: int) -> None:
        """We have ``sender_id``'s lines up to ``seq`` (never lowered on disk)."""
        if seq > self._high.get(sender_id, -1):
            self._high[sender_id] = seq
        self._soon()

    def seen_changed(self, author: str, source: Any) -> None:
        """``author``'s seen sequences changed: ``source`` is its SeenSet (its text is taken
        at commit time, once per commit), or the text itself (it left the SeenSet's memory)."""
        self._seen[author] = source
        self._soon()

    def seen_text(self, author: str) -> str | None:
        """``author``'s seen sequences as text, as last written (or about to be)."""
        queued = self._seen.get(author)
        if isinstance(queued, str):
            return queued
        row = self._db.execute("select ranges from seen where sender_id = ?",
                               (author,)).fetchone()
        return row[0] if row else None

    def last_sequence(self) -> int:
        """The highest sequence number we ever used (0 if none): a new run continues above
        it even if the clock went back."""
        self.flush()
        row = self._db.execute("select value from settings where key = 'last_sequence'"
                               ).fetchone()
        try:
            return int(row[0]) if row else 0
        except ValueError:
            return 0

    def relayable_after(self, sender_id: str, after: int, rooms: list[str], limit: int,
                        since: float) -> list[tuple[int, bytes, str]]:
        """(sequence, raw line, author key) of ``sender_id``'s lines after sequence ``after``
        in ``rooms``, said at ``since`` or later (and not before ``hand_on_after``), oldest
        first: packed lines unpacked, as their author wrote them."""
        key = self._keys.get(sender_id)
        if key is None or after >= SEQ_SHIFT * 2 - 1:
            return []
        self.flush()
        marks, db = ",".join("?" * len(rooms)), self._db
        sql = "select seq, raw, pk, id, room, nick, text, ts from lines where sender_id = ? and "
        return hand_on(sender_id, key, limit, after, lambda after: db.execute(
            f"{sql}seq > ? and ts >= ? and raw is not null and pk is not null and room in "
            f"({marks}) order by seq limit ?", (sender_id, to_db(after),
                                                 max(since, self.hand_on_after), *rooms, limit)),
            lambda first, last: db.execute(f"{sql}seq between ? and ? and raw is not null "
                                           "order by seq", (sender_id, to_db(first), to_db(last))))

    def set_rooms(self, rooms: list[str]) -> None:
        self._settings["rooms"] = json.dumps(rooms)
        self._soon()

    # --- reading --------------------------------------------------------------------------

    def recent_ids(self, count: int) -> list[str]:
        """The ids of the last ``count`` lines, oldest first (to drop duplicates after a
        restart, when a peer resends what we already have)."""
        self.flush()
        rows = self._db.execute("select id from lines order by rowid desc limit ?",
                                (count,)).fetchall()
        return [r[0] for r in reversed(rows)]

    def high_water(self) -> dict[str, int]:
        self.flush()
        return {sender: from_db(seq) for sender, seq in
                self._db.execute("select sender_id, seq from high_water")}

    def search(self, query: Query, limit: int) -> Deferred[list[SearchHit]]:
        """/search (search.Query): the newest ``limit`` matching lines, found in a thread
        after the queued lines are written (a step of rows a reactor turn, with a reactor:
        a burst's rows behind it would hold it)."""
        turn = self.turn
        if turn is None:
            self.flush()
            return self.index.search(query, limit)
        found: Deferred[list[SearchHit]] = Deferred()

        def step() -> None:
            if self.closed:
                return
            if not self.rows_step(down_to=0):
                turn.next(step)
                return
            self.flush()
            self.index.search(query, limit).chainDeferred(found)
        step()
        return found

    def indexing(self) -> int | None:
        """Percent done of indexing an older file for /search, or None when done."""
        return self.index.progress()

    def rooms(self) -> list[str]:
        self.flush()
        row = self._db.execute("select value from settings where key = 'rooms'").fetchone()
        try:
            value = json.loads(row[0]) if row else []
        except ValueError:
            return []
        return [r for r in value if isinstance(r, str)]

    def close(self) -> None:
        self.flush()
        self.jotter.close()
        self.index.close()
        self._db.close()
        self.closed = True
        if self.upkeep_loop is not None and self.upkeep_loop.running:
            self.upkeep_loop.stop()


def _row(line: StoredLine) -> Row:
    return (line.id, line.room, line.sender_id, line.nick, line.text, line.action, line.own,
            line.when, line.seq, line.raw, line.pk)


def _row_bytes(row: tuple) -> int:
    return 16 + sum(len(x) for x in row if isinstance(x, (str, bytes)))
