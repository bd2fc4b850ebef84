"""``python -m bench.readrows``: a prototype of the history kept *a read a row*, timed beside
today's row a line (``bench.rows``'s ``one``) in the same invocation.  A design note and a
measurement for the next session, not wired into the Store (h-read, tenth session).

Today a line heard or said is a row of ``lines``: 11 values bound, four B-tree inserts (the
row, the ``id`` key, ``lines_by_room``, ``lines_to_hand_on``), then FTS5 indexes it as one
document, and a line to hand on is packed a second or more later (retention.pack_step: its
row rewritten).  A table of one row a line with no index at all still costs 4.4 us (ninth
session), so no row-a-line layout reaches a third of today's.

The prototype (write path, and the two reads that must stay fast): a *read* (the lines
``remember_rows`` or ``save_said`` get at once: a burst comes as reads of tens to hundreds of
lines, a line typed alone is a read of one) is one row of ``reads``: room, first and last
time, and its rows in one MessagePack blob: the very bytes its jot record holds, encoded once.
Dedup and hand-on by one of:

- ``ids``: the per-line id key, as today (``insert or ignore``, two values bound, one B-tree
  insert in a WITHOUT ROWID table);
- ``runs``: a row per (read, author): its first and last sequence, the key hand-on and the
  sent log look up by; a signed line with a sequence is had exactly once by its author's
  seen ranges already (reading.py, ``seqs.add``; persisted with the read in one commit), so
  only lines without one (the reference's) would still need an ``ids`` row.

Where the line's bytes live, by one of:

- ``blob``: in the read's row (with the text, nick, time and so on);
- ``log``: the jot record *is* the history's copy: the jot file is kept as an append-only
  segment, and the read's row holds where its record is (offset, length); SQLite then holds
  only the index (a read's room, times, runs), and the bytes are written once, not three times
  (jot, write-ahead log, checkpoint into the file).

The /search index takes a read as one document (its lines' texts, one a line); a search
filters the read's lines after the match.  Same pragmas as the Store (WAL,
synchronous=normal, the same journal limit), a commit per WRITE_UP_ROWS lines, so the same
checkpoints.  "A commit's reads a row" gathers what was jotted since the last commit into
runs of one room and author (the reads it came in, whatever their size), one row each.
CPU us per line, median of ``--rounds`` interleaved runs.

Figures (tenth session, 05:04-05:05 UTC, load 4-12; 3 rounds; "all told" = made + committed
+ checkpointed + indexed for /search, against today's in the same run)::

    reads of 256 (a burst)        heard   said  /search  all told (heard / said)
    today (Store, a row a line)   10.54  11.05   2.54    100% / 100%
    read a row: blob + ids         4.46   4.38   1.31     44% /  42%
    read a row: blob + runs        2.43   2.87   1.26     28% /  30%  /history 50 1.2 ms
    a commit's reads: blob + runs  3.07   2.90   1.59     36% /  33%  hand-on 500 2.3 ms
    read a row: log + runs         0.73   0.97   1.51     17% /  18%
    (blob + runs without raw)      0.96   1.12   1.38     18% /  18%

    reads of 1 (lines typed alone), 3,000 lines
    today                         19.17  23.36   2.88    100% / 100%
    read a row: blob + runs       16.45  17.35   5.55    100% /  87%
    a commit's reads: blob + runs  6.98   6.89   1.69     39% /  33%

(an earlier run at load 12, reads of 256: blob + runs 27% / 27%, log + runs 13% / 16%;
reads of 16: blob + runs 43% / 41%, log + runs 28% / 25%.)

What the figures say:

- The per-line id key alone costs ~2 us a line (blob + ids against blob + runs): dedup and
  hand-on by (author, sequence) runs is what takes a read a row to about a third.  It is
  sound for our peers' signed lines: both ways a line is kept (reading.py's run, and
  hearing.show_line after room.accept) already have such a line exactly once by its author's
  seen ranges (``seqs.add``, "for good"), jotted in the same record as the line (the seen
  change is queued before ``remember_rows``), and ``recent_ids`` stays (the ids of the last
  reads).  Lines without a sequence (the
  reference's, unsigned ones) keep an ``ids`` row each.
- The line's bytes (``raw``, ~350 bytes of JSON, most of a 650-byte line) are most of what is
  left: 1.5-2 us a line, written three times (jot, write-ahead log, checkpoint).  Keeping the
  jot record itself as the history's copy ("log": append-only segments, SQLite the index
  only) takes it under a fifth, but needs segment retention and compaction (packing, the
  byte budget, the sent log's spared lines) of its own: a larger change.  Bigger pages help
  a little only (4 KiB -> 64 KiB: 2.3 -> 1.4 us a line of bytes; an old file would need a
  VACUUM to change).
- A read of one line as its own row is no cheaper than today (the row, its run and its
  /search document each cost per read): the rows must be gathered per commit into runs of
  one room and author (FLUSH_DELAY already gathers a commit's worth), which keeps a line
  typed alone at today's cost and a burst at a third.  A gathered row should stay bounded
  (256 lines: /history decodes whole rows) and span a bounded time (MAX_READ_SPAN, split
  otherwise) so /context finds the rows around a time by one range of ``(room, last_ts)``.
- /history 50 and hand-on of 500 lines stay around 1-2 ms (a row or two decoded).
- A year (200,000 lines filled as bench/year.py fills them, packed; scratch script, 05:08):
  today 392 bytes a line; a row a line typed alone (a quiet chat: one line a commit) 406,
  over the 400 target; rows of 16 lines of one room and author 317.  So the step that packs
  lines a second later (retention.pack_step, which rewrites every peer's line today anyway)
  should also merge a room's small rows into bigger ones, off the path.

What wiring it in takes (not done this session: 26 SQL sites in the storage modules and 40
in 14 test and bench files read ``lines`` directly):

1. ``reads`` (room, first_ts, last_ts, its rows' blob), ``runs`` (author, first and last
   sequence, read: WITHOUT ROWID), ``ids`` for lines without a sequence; ``line_count`` and
   ``recent_ids`` from them; jot replay idempotent by a read key assigned at jot time.
2. ``recent``/``around`` (the ignored left out while decoding, so they don't use up the
   count), ``relayable_after``/runpaths (a run's other rows for its paths), the sent log
   (``load`` by our runs; ``forget`` rewrites our rows' blobs without their bytes).
3. Retention by whole rows where they can go, a row's blob rewritten where only some of its
   lines may (age, and SENT_LOG_SPARED per line); packing rewrites a row's blob once for
   all its lines (today it rewrites a row a line, 10-17 us of packing each, a second later).
4. /search: a row one FTS5 document; the lines of a matching row filtered with FTS5's own
   tokenizer (a word is a token there, "zeb*" a prefix, diacritics folded: a Python
   substring test would find more than today), e.g. by matching the row's lines in a
   temporary in-memory FTS5 table, newest rows first until ``limit`` lines; the nick, room,
   time and ignored filters on the decoded lines; the contentless index's deletes told from
   Python (or a registered function that decodes the blob); the LIKE fallback through a
   registered function over the blob.
5. The upgrade of a layout-3 file: ``lines`` moved into rows in steps (as index.py indexes
   an old file), read from both tables meanwhile (old lines are older than any new row), the
   /search index rebuilt in steps; tested from a layout-3 file.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import struct
import tempfile
import time
import zlib
from typing import Any, Callable

import msgspec

from bench.rows import READ_LINES, _heard, figure_line, kept, one, parser
from p2pchat.jotting import WRITE_UP_ROWS
from p2pchat.store import WAL_LIMIT_BYTES

_HEAD = struct.Struct("<II")

SCHEMA = """
create table reads (rowid integer primary key, room text not null, first_ts real not null,
                    last_ts real not null, lines blob, at integer, size integer);
create index reads_by_room on reads (room, last_ts);
create table ids (id text primary key, read integer not null) without rowid;
create table runs (sender_id text not null, first_seq integer not null,
                   last_seq integer not null, read integer not null,
                   primary key (sender_id, first_seq)) without rowid;
create virtual table reads_fts using fts5(text, content='', columnsize=0);
"""
#: the rows' fields (Store.remember_rows's shape)
ID, ROOM, SENDER, NICK, TEXT, ACTION, OWN, WHEN, SEQ, RAW, PK = range(11)


class ReadRows:
    """The write path of a history kept a read a row (the prototype): jot, queue, commit.
    ``keys``: "ids" or "runs"; ``bytes_in``: "blob", "log" or "none" (the raw's share)."""

    def __init__(self, path: str, keys: str, bytes_in: str, gather: bool = False) -> None:
        self.keys, self.bytes_in, self.gather = keys, bytes_in, gather
        #: (gather) the rows jotted since the last commit, made reads at the commit
        self.rows: list[tuple[Any, ...]] = []
        self.db = db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("pragma auto_vacuum=incremental")
        db.execute("pragma journal_mode=wal")
        db.execute("pragma synchronous=normal")
        db.execute(f"pragma journal_size_limit={WAL_LIMIT_BYTES}")
        db.executescript(SCHEMA)
        for name, value in (("automerge", 0), ("crisismerge", 64), ("usermerge", 16)):
            db.execute("insert into reads_fts(reads_fts, rank) values (?, ?)", (name, value))
        self.fd = os.open(path + "-jot", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self.at = 0
        self.encode = msgspec.msgpack.Encoder().encode
        #: reads queued: (room, first, last, blob, where, keys)
        self.queued: list[tuple[str, float, float, bytes | None, tuple[int, int],
                                list[Any]]] = []
        self.queued_lines = 0
        self.unindexed: list[tuple[int, bytes]] = []

    def remember_rows(self, rows: list[tuple[Any, ...]]) -> None:
        """A read's rows, kept as one: one jot record (its blob), one row later."""
        if self.bytes_in == "none":
            body = self.encode([row[:RAW] for row in rows])
        else:
            body = self.encode(rows)
        record = _HEAD.pack(len(body), zlib.crc32(body)) + body
        os.write(self.fd, record)
        if self.gather:
            self.rows.extend(rows)
            if len(self.rows) >= WRITE_UP_ROWS:
                self.flush()
            return
        where = (self.at + _HEAD.size, len(body))
        self.at += len(record)
        if self.keys == "ids":
            keys: list[Any] = [row[ID] for row in rows]
        else:  # a run per author of the read (a read's run is one author's: reading.py)
            first = rows[0]
            keys = [(first[SENDER], first[SEQ], rows[-1][SEQ])]
        self.queued.append((rows[0][ROOM], rows[0][WHEN], rows[-1][WHEN],
                            None if self.bytes_in == "log" else body, where, keys))
        self.queued_lines += len(rows)
        if self.queued_lines >= WRITE_UP_ROWS:
            self.flush()

    def save_said(self, said: list[tuple[Any, bytes]]) -> None:
        """A run said: its rows as saidrows.save_said makes them, kept as a read."""
        self.remember_rows([(msg.id, msg.room_id, msg.sender_id, msg.username, msg.content,
                             0, 1, msg.timestamp, msg.sequence, data, None)
                            for msg, data in said])

    def _gathered(self) -> None:
        """(gather) the rows since the last commit as reads: a run of one room and author
        each, whatever reads they came in (a line typed alone is a read of one)."""
        rows, self.rows = self.rows, []
        start = 0
        for n in range(1, len(rows) + 1):
            if n == len(rows) or rows[n][ROOM] != rows[start][ROOM] or (
                    rows[n][SENDER] != rows[start][SENDER]):
                run = rows[start:n]
                self.queued.append((run[0][ROOM], run[0][WHEN], run[-1][WHEN],
                                    self.encode(run), (0, 0),
                                    [(run[0][SENDER], run[0][SEQ], run[-1][SEQ])]))
                start = n

    def flush(self) -> None:
        if self.rows:
            self._gathered()
        if not self.queued:
            return
        db = self.db
        with db:
            db.execute("begin")
            for room, first, last, body, (at, size), keys in self.queued:
                read = db.execute("insert into reads values (null, ?, ?, ?, ?, ?, ?)",
                                  (room, first, last, body, at, size)).lastrowid or 0
                if self.keys == "ids":
                    db.executemany("insert or ignore into ids values (?, ?)",
                                   [(ident, read) for ident in keys])
                else:
                    db.executemany("insert or ignore into runs values (?, ?, ?, ?)",
                                   [(*key, read) for key in keys])
                self.unindexed.append((read, body if body is not None else b""))
        self.queued, self.queued_lines = [], 0
        if self.bytes_in != "log":
            os.ftruncate(self.fd, 0)  # (kept as the history's copy in "log")
            self.at = 0

    def index(self) -> None:
        """The /search index a moment later: a read one document (its texts, a line each)."""
        decode = msgspec.msgpack.Decoder().decode
        docs = []
        for read, body in self.unindexed:
            if not body:  # (in the log: read back by where)
                at, size = self.db.execute("select at, size from reads where rowid = ?",
                                           (read,)).fetchone()
                body = os.pread(self.fd, size, at)
            docs.append((read, "\n".join(row[TEXT] for row in decode(body))))
        with self.db:
            self.db.execute("begin")
            self.db.executemany("insert into reads_fts(rowid, text) values (?, ?)", docs)
            self.db.execute("insert into reads_fts(reads_fts, rank) values ('merge', 500)")
        self.unindexed = []

    def recent(self, room: str, count: int) -> list[tuple[Any, ...]]:
        """/history: the last ``count`` lines of a room, oldest first (by time, then as
        kept): reads newest last-time first until ``count`` lines are at or after the next
        read's last time."""
        decode = msgspec.msgpack.Decoder().decode
        got: list[tuple[float, int, int, tuple[Any, ...]]] = []
        for read, last, body, at, size in self.db.execute(
                "select rowid, last_ts, lines, at, size from reads where room = ? "
                "order by last_ts desc", (room,)):
            if sum(1 for g in got if g[0] >= last) >= count:
                break
            rows = decode(body if body is not None else os.pread(self.fd, size, at))
            got.extend((row[WHEN], read, n, row) for n, row in enumerate(rows))
        got.sort()
        return [g[3] for g in got[-count:]]

    def hand_on(self, sender: str, after: int, limit: int) -> list[bytes]:
        """A sender's raw lines after sequence ``after``, oldest first (``runs`` only)."""
        decode = msgspec.msgpack.Decoder().decode
        out: list[bytes] = []
        for body, at, size in self.db.execute(
                "select R.lines, R.at, R.size from runs S join reads R on R.rowid = S.read "
                "where S.sender_id = ? and S.last_seq > ? order by S.first_seq",
                (sender, after)):
            for row in decode(body if body is not None else os.pread(self.fd, size, at)):
                if row[SENDER] == sender and row[SEQ] > after:
                    out.append(row[RAW])
                    if len(out) >= limit:
                        return out
        return out

    def close(self) -> None:
        self.db.close()
        os.close(self.fd)


def proto(path: str, count: int, keys: str, bytes_in: str, read_lines: int,
          gather: bool = False) -> dict[str, float]:
    store = ReadRows(path, keys, bytes_in, gather)
    heard, own, indexed = kept(store, count, read_lines, store.index)
    heard_rows = _heard(count, 0)
    files = (path, path + "-wal") + ((path + "-jot",) if bytes_in == "log" else ())
    size = sum(os.path.getsize(name) for name in files if os.path.exists(name))
    figures = {"heard_us_per_line": heard / count * 1e6, "said_us_per_line": own / count * 1e6,
               "search_us_per_line": indexed / (2 * count) * 1e6,
               "bytes_per_line": size / (2 * count)}
    if keys == "runs" and bytes_in != "none":
        began = time.perf_counter()
        got = store.recent("general", 50)
        figures["history_50_ms"] = (time.perf_counter() - began) * 1e3
        assert len(got) == 50 and [row[WHEN] for row in got] == sorted(row[WHEN]
                                                                       for row in got)
        began = time.perf_counter()
        wanted = min(500, count - count // 2)
        handed = store.hand_on("carol_1", count // 2, wanted)
        figures["hand_on_500_ms"] = (time.perf_counter() - began) * 1e3
        assert len(handed) == wanted and handed[0] == heard_rows[count // 2][RAW]
    store.close()
    return figures


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m bench.readrows", __doc__)
    p.add_argument("--read-lines", type=int, default=READ_LINES,
                   help=f"lines a read (a line typed alone is a read of 1) [{READ_LINES}]")
    a = p.parse_args(argv)
    n, size = a.lines, a.read_lines
    kinds: dict[str, Callable[[str], dict[str, float]]] = {
        "today (Store, a row a line)": lambda path: one(path, n, size),
        "read a row: blob + ids": lambda path: proto(path, n, "ids", "blob", size),
        "read a row: blob + runs": lambda path: proto(path, n, "runs", "blob", size),
        "a commit's reads a row: blob + runs": lambda path: proto(path, n, "runs", "blob",
                                                                    size, gather=True),
        "read a row: log + runs": lambda path: proto(path, n, "runs", "log", size),
        "  (blob + runs, no raw: its share)": lambda path: proto(path, n, "runs", "none",
                                                                   size),
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in kinds}
    with tempfile.TemporaryDirectory(prefix="p2pchat-readrows-") as folder:
        for r in range(a.rounds):  # interleaved, so the load moves all alike
            for k, (name, run) in enumerate(kinds.items()):
                results[name].append(run(os.path.join(folder, f"r{r}-{k}.sqlite3")))
    print(f"CPU us per line (median of {a.rounds} runs of {n} lines heard and {n} said, "
          f"reads of {size}; load {os.getloadavg()[0]:.2f}); all told = made + /search:")
    base = None
    for name, runs in results.items():
        got = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        heard = got["heard_us_per_line"] + got["search_us_per_line"]
        said = got["said_us_per_line"] + got["search_us_per_line"]
        base = base or (heard, said)
        extra = "".join(f"  {key.replace('_', ' ')} {got[key]:.2f}" for key in
                        ("bytes_per_line", "history_50_ms", "hand_on_500_ms") if key in got)
        print(f"{figure_line(name, 36, got)}  all told {heard / base[0]:4.0%} / "
              f"{said / base[1]:4.0%}{extra}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
