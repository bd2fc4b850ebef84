"""History on disk: every chat line shown, our own lines to resend, how far we have each
sender, and the rooms we are in, in one SQLite file in the data dir.

Writes are queued and committed together (one transaction) within FLUSH_DELAY, so a burst of
lines costs one commit, and the reactor is never held for long.  Queued writes of one kind go
in one ``executemany``; how far we have each sender is written once per commit, whatever the
number of its lines in it.  The file is in WAL mode
with ``synchronous=NORMAL``: a committed line survives the process being killed at any moment,
and the file is never left corrupt (a power cut may lose the last commits, not the file).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Callable

from twisted.logger import Logger

from p2pchat.wire import Message, WireError, encode_message, parse_message

log = Logger()

STORE_NAME = "history.sqlite3"
#: Writes are committed together at most this long (seconds) after the first of them.
FLUSH_DELAY = 0.05
#: Lines kept on disk: at most this many, and none older than this (seconds).  Pruned at start.
HISTORY_MAX_LINES = 100_000
HISTORY_MAX_AGE = 30 * 24 * 3600.0

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
create table if not exists sent (seq integer primary key, ts real not null, line blob not null);
create table if not exists settings (key text primary key, value text not null);
"""


#: After the columns exist (files of older versions get them in ``_migrate``).
_INDEXES = """
create index if not exists lines_by_room on lines (room, ts);
create index if not exists lines_to_hand_on on lines (sender_id, seq) where raw is not null;
"""


@dataclass(slots=True)
class StoredLine:
    """A chat line as kept: ``room`` is a room name, or ``@peer_id`` for a private talk."""

    id: str
    room: str
    sender_id: str
    nick: str
    text: str
    action: bool
    own: bool
    when: float
    #: another author's signed room line, to hand on (relay.py): its sequence, its bytes as
    #: received and its author's public key; else 0, None, ""
    seq: int = 0
    raw: bytes | None = None
    pk: str = ""


class Store:
    def __init__(self, path: str, call_soon: Callable[[Callable[[], None]], Any] | None = None
                 ) -> None:
        """``call_soon(f)`` runs f a little later on the reactor
        (``reactor.callLater(FLUSH_DELAY, f)``); without it every write commits at once."""
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("pragma journal_mode=wal")
        self._db.execute("pragma synchronous=normal")
        self._db.executescript(_SCHEMA)
        self._migrate()
        #: authors of lines we keep to hand on: no query for the others (a peer joining a
        #: mesh of 50 is asked about 49 authors on each of its 49 links)
        self._relay_authors: set[str] = {row[0] for row in self._db.execute(
            "select distinct sender_id from lines where raw is not null")}
        self._call_soon = call_soon
        #: queued rows, by statement (in the order each statement was first queued)
        self._pending: dict[str, list[tuple]] = {}
        #: queued high-water marks and settings: only the last of each counts
        self._high: dict[str, int] = {}
        self._settings: dict[str, str] = {}
        self._flush_scheduled = False
        #: seconds the longest commit took, for the benchmark and the log
        self.slowest_commit = 0.0

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

    def _queue(self, sql: str, args: tuple) -> None:
        rows = self._pending.get(sql)
        if rows is None:
            self._pending[sql] = [args]
        else:
            rows.append(args)
        self._soon()

    def _soon(self) -> None:
        if self._call_soon is None:
            self.flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._call_soon(self.flush)

    def flush(self) -> None:
        """Commit every queued write in one transaction."""
        self._flush_scheduled = False
        if not (self._pending or self._high or self._settings):
            return
        pending, self._pending = self._pending, {}
        high, self._high = self._high, {}
        settings, self._settings = self._settings, {}
        started = time.perf_counter()
        try:
            with self._db:
                self._db.execute("begin")
                for sql, rows in pending.items():
                    self._db.executemany(sql, rows)
                if high:
                    self._db.executemany(
                        "insert into high_water values (?, ?) on conflict(sender_id) do update "
                        "set seq = max(seq, excluded.seq)", high.items())
                if settings:
                    self._db.executemany("insert or replace into settings values (?, ?)",
                                         settings.items())
        except Exception as e:  # never let one bad row take the reactor (or shutdown) down
            n = sum(map(len, pending.values())) + len(high) + len(settings)
            log.error("history not saved ({n} writes lost): {why}", n=n, why=str(e))
            return
        took = time.perf_counter() - started
        self.slowest_commit = max(self.slowest_commit, took)
        if took > 0.05:
            log.warn("saving history took {ms:.0f} ms", ms=took * 1000)

    def remember(self, line: StoredLine) -> None:
        if line.raw is not None:
            self._relay_authors.add(line.sender_id)
        self._queue("insert or ignore into lines values (?,?,?,?,?,?,?,?,?,?,?)",
                    (line.id, line.room, line.sender_id, line.nick, line.text, int(line.action),
                     int(line.own), line.when, line.seq or None, line.raw, line.pk or None))

    def set_high_water(self, sender_id: str, seq: int) -> None:
        """We have ``sender_id``'s lines up to ``seq`` (never lowered on disk)."""
        if seq > self._high.get(sender_id, -1):
            self._high[sender_id] = seq
        self._soon()

    def save_sent(self, msg: Message, data: bytes | None = None) -> None:
        self._queue("insert or replace into sent values (?, ?, ?)",
                    (msg.sequence, msg.timestamp or 0.0, data or encode_message(msg)))
        self._settings["last_sequence"] = str(msg.sequence)

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

    def relayable_since(self, sender_id: str, after: int, rooms: list[str], limit: int,
                        since: float) -> list[tuple[bytes, str]]:
        """(raw line, author key) of ``sender_id``'s lines after sequence ``after`` in
        ``rooms``, said at ``since`` or later, oldest first."""
        if sender_id not in self._relay_authors:
            return []
        self.flush()
        marks = ",".join("?" * len(rooms))
        rows = self._db.execute(
            f"select raw, pk from lines where sender_id = ? and seq > ? and ts >= ? "
            f"and raw is not null and room in ({marks}) order by seq limit ?",
            (sender_id, after, since, *rooms, limit)).fetchall()
        return [(bytes(raw), pk) for raw, pk in rows]

    def set_rooms(self, rooms: list[str]) -> None:
        self._settings["rooms"] = json.dumps(rooms)
        self._soon()

    # --- reading --------------------------------------------------------------------------

    def recent(self, room: str, count: int) -> list[StoredLine]:
        """The last ``count`` lines of a room, oldest first."""
        self.flush()
        rows = self._db.execute(
            "select id, room, sender_id, nick, text, action, own, ts from lines where room = ? "
            "order by ts desc, rowid desc limit ?", (room, count)).fetchall()
        return [StoredLine(r[0], r[1], r[2], r[3], r[4], bool(r[5]), bool(r[6]), r[7])
                for r in reversed(rows)]

    def recent_ids(self, count: int) -> list[str]:
        """The ids of the last ``count`` lines, oldest first (to drop duplicates after a
        restart, when a peer resends what we already have)."""
        self.flush()
        rows = self._db.execute("select id from lines order by rowid desc limit ?",
                                (count,)).fetchall()
        return [r[0] for r in reversed(rows)]

    def high_water(self) -> dict[str, int]:
        self.flush()
        return dict(self._db.execute("select sender_id, seq from high_water").fetchall())

    def load_sent(self, max_lines: int, max_age: float, now: float) -> list[Message]:
        """Our own lines still young enough to resend, oldest first."""
        self.flush()
        rows = self._db.execute("select line from sent where ts >= ? order by seq desc limit ?",
                                (now - max_age, max_lines)).fetchall()
        out = []
        for (data,) in reversed(rows):
            try:
                out.append(parse_message(bytes(data).rstrip(b"\n")))
            except WireError as e:
                log.warn("a saved line could not be read back: {why}", why=str(e))
        return out

    def rooms(self) -> list[str]:
        self.flush()
        row = self._db.execute("select value from settings where key = 'rooms'").fetchone()
        try:
            value = json.loads(row[0]) if row else []
        except ValueError:
            return []
        return [r for r in value if isinstance(r, str)]

    def count(self) -> int:
        self.flush()
        return self._db.execute("select count(*) from lines").fetchone()[0]

    # --- upkeep ---------------------------------------------------------------------------

    def prune(self, now: float, max_lines: int = HISTORY_MAX_LINES,
              max_age: float = HISTORY_MAX_AGE, sent_age: float = HISTORY_MAX_AGE) -> None:
        """Drop lines past the age and count limits, and sent lines too old to resend."""
        self.flush()
        with self._db:
            self._db.execute("begin")
            self._db.execute("delete from lines where ts < ?", (now - max_age,))
            self._db.execute("delete from lines where rowid not in (select rowid from lines "
                             "order by ts desc limit ?)", (max_lines,))
            self._db.execute("delete from sent where ts < ?", (now - sent_age,))
            self._db.execute("update lines set raw = null, pk = null where raw is not null "
                             "and ts < ?", (now - sent_age,))

    def close(self) -> None:
        self.flush()
        self._db.close()
