"""The history file's search index (search.py says what it is), and searching it off the
reactor.

A file made before the index existed is indexed once, in steps of INDEX_STEP lines (and at
most INDEX_STEP_SECONDS) run one per reactor turn (``step``, called by a LoopingCall the
service starts), so no step holds the reactor for long; how far it got is kept in the
``settings`` table, so a restart goes on where it stopped.  Searches run in a thread of the
reactor's pool, each thread with a read-only SQLite connection of its own (the file is in
WAL mode, so reading there while the reactor writes is safe).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from p2pchat.interfaces import SearchHit
from p2pchat.search import (
    INDEX_STEP,
    INDEX_STEP_SECONDS,  # noqa: F401 (a step is timed against it)
    SEARCH_INDEX_CHARS,
    SEARCH_MAX_HITS,
    Query,
    has_fts5,
    search_db,
)

log = Logger()

#: ``settings`` key: "done", or "UPTO TARGET" (rowids) while an upgrade indexes the file.
INDEX_KEY = "search_index"
#: A line's text as SQL (``L`` the row), its first SEARCH_INDEX_CHARS: its text, or for a
#: line kept as its signed bytes only, the action or content in them (a malformed line:
#: nothing, never an error).  Deterministic, so a line's entry is deleted with the very
#: words it was indexed with (the index is contentless: it keeps no copy of the text).
SHOWN_TEXT = ("substr(case when L.text != '' then L.text when L.raw is not null and "
              "json_valid(cast(L.raw as text)) then coalesce(nullif(json_extract("
              "cast(L.raw as text), '$.metadata.action'), ''), json_extract(cast(L.raw as text),"
              f" '$.content'), '') else '' end, 1, {SEARCH_INDEX_CHARS})")
#: A deleted line leaves the index by a trigger.  New lines go in at each commit, all at once
#: (``add_new``): a trigger per inserted row cost four times as much (about 22 us a line here,
#: most of what receiving a line cost; bench.hotpath).
#: A line deleted is taken out of the index, unless an upgrade has not indexed it yet (its
#: rowid between the upgrade's "upto" and "target"): a contentless index told to delete what
#: it never held calls itself malformed, and every later prune would fail.
_NOT_YET_INDEXED = (
    f"exists (select 1 from settings where key = '{INDEX_KEY}' and value != 'done' and "
    "old.rowid > cast(value as integer) and "
    "old.rowid <= cast(substr(value, instr(value, ' ') + 1) as integer))")
_TRIGGERS = (
    "drop trigger if exists lines_fts_gone",  # an older build's, without the when clause
    "create trigger lines_fts_gone after delete on lines when not "
    + _NOT_YET_INDEXED + " begin "
    "insert into lines_fts(lines_fts, rowid, text) values ('delete', old.rowid, "
    + SHOWN_TEXT.replace("L.", "old.") + "); end",
)



class SearchIndex:
    """The index of one history file (``db``, the Store's connection, at ``path``).
    ``fts``: False forces the LIKE fallback (as where the sqlite3 build lacks FTS5)."""

    def __init__(self, db: sqlite3.Connection, path: str,
                 text_of: Callable[[str, bytes | None], str], fts: bool | None = None) -> None:
        self._db = db
        self.path = path
        self._text_of = text_of
        self.fts = has_fts5() if fts is None else fts
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        #: rowids indexed so far and the last to index, while an upgrade runs
        self.upto = 0
        self.target = 0
        self.done = True
        #: a test hook: told the name of the thread each search runs in
        self.on_thread: Callable[[str], None] | None = None
        #: how a search is run in a thread (the reactor's pool; tests may run it in one of
        #: their own, without the reactor running)
        self.in_thread: Callable[..., Deferred[list[SearchHit]]] = deferToThread
        #: how many steps the upgrade took (a figure for the log and the tests)
        self.steps = 0
        #: what runs ``step`` once per reactor turn (``index_in_steps``), stopped at close
        self.loop: LoopingCall | None = None
        if self.fts:
            self._open()
        else:
            # Deletes must not need FTS5: a file indexed elsewhere is re-indexed from scratch
            # once it is opened where FTS5 is.
            db.execute("drop trigger if exists lines_fts_new")
            db.execute("drop trigger if exists lines_fts_gone")
            db.execute("delete from settings where key = ?", (INDEX_KEY,))

    def _open(self) -> None:
        db = self._db
        row = db.execute("select value from settings where key = ?", (INDEX_KEY,)).fetchone()
        existed = db.execute("select 1 from sqlite_master where name = 'lines_fts'"
                             ).fetchone() is not None
        with db:
            db.execute("begin")
            db.execute("create virtual table if not exists lines_fts using fts5(text, "
                       "content='', columnsize=0)")
            db.execute("drop trigger if exists lines_fts_new")  # of an older build: add_new
            for trigger in _TRIGGERS:
                db.execute(trigger)
            if existed and row is not None:
                state = row[0]
            else:  # new, or left by a build without FTS5 (stale): index every line
                if existed:
                    db.execute("insert into lines_fts(lines_fts) values ('delete-all')")
                last = db.execute("select max(rowid) from lines").fetchone()[0] or 0
                state = f"0 {last}" if last else "done"
                db.execute("insert or replace into settings values (?, ?)", (INDEX_KEY, state))
        if state != "done":
            upto, _, target = state.partition(" ")
            self.upto, self.target, self.done = int(upto), int(target), False
            log.info("history: indexing {n} lines for /search, in steps",
                     n=self.target - self.upto)

    def add_new(self, after: int) -> None:
        """Index the lines above rowid ``after``: the ones the commit under way added (in its
        transaction: a line is in the file and the index, or in neither)."""
        if self.fts:
            self._db.execute("insert into lines_fts(rowid, text) select L.rowid, "
                             f"{SHOWN_TEXT} from lines L where L.rowid > ?", (after,))

    def reset(self) -> None:
        """The lines' rowids may have changed (a VACUUM): index them all again."""
        if not self.fts:
            return
        with self._db:
            self._db.execute("begin")
            self._db.execute("insert into lines_fts(lines_fts) values ('delete-all')")
            self._db.execute("delete from settings where key = ?", (INDEX_KEY,))
        self._open()

    def progress(self) -> int | None:
        """Percent of the upgrade done, or None when the index is whole."""
        if self.done:
            return None
        return min(99, int(100 * self.upto / self.target)) if self.target else 0

    def step(self) -> bool:
        """Index the next lines of an upgrade (at most INDEX_STEP, INDEX_STEP_SECONDS);
        True while more remain."""
        if self.done:
            return False
        started = time.perf_counter()
        db = self._db
        with db:
            db.execute("begin")
            last = db.execute("select max(rowid) from (select rowid from lines where rowid > ? "
                              "and rowid <= ? order by rowid limit ?)",
                              (self.upto, self.target, INDEX_STEP)).fetchone()[0]
            upto = self.target if last is None else last
            db.execute("insert into lines_fts(rowid, text) select L.rowid, "
                       f"{SHOWN_TEXT} from lines L where L.rowid > ? and L.rowid <= ?",
                       (self.upto, upto))
            if upto >= self.target or last is None:
                upto = self.target
            state = "done" if upto >= self.target else f"{upto} {self.target}"
            db.execute("insert or replace into settings values (?, ?)", (INDEX_KEY, state))
        took = time.perf_counter() - started
        if took > INDEX_STEP_SECONDS:
            log.warn("history: an indexing step took {ms:.0f} ms", ms=took * 1000)
        self.upto = upto
        self.steps += 1
        if state == "done":
            self.done = True
            log.info("history: indexed for /search in {n} steps", n=self.steps)
        return not self.done

    # --- searching, in a thread -------------------------------------------------------------

    def search(self, query: Query, limit: int = SEARCH_MAX_HITS) -> Deferred[list[SearchHit]]:
        """The newest ``limit`` lines that match, found in a thread (the Store flushed its
        queued lines first); fails with the sqlite3 error if the search did."""
        return self.in_thread(self._search, query, limit)

    def _reader(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True,
                                 check_same_thread=False)
            db.create_function("shown", 2, self._text_of, deterministic=True)
            self._local.db = db
            with self._lock:
                self._readers.append(db)
        return db

    def _search(self, query: Query, limit: int) -> list[SearchHit]:
        if self.on_thread is not None:
            self.on_thread(threading.current_thread().name)
        return search_db(self._reader(), query, self.fts, limit, text_of=self._text_of)

    def index_in_steps(self, clock: IReactorTime) -> None:
        """Start the upgrade's steps, one per reactor turn, if the file needs them; a step
        that fails (a full disk) is logged and the rest waits for the next start."""
        if self.done or self.loop is not None:
            return

        def step() -> None:
            try:
                more = self.step()
            except sqlite3.Error as e:
                log.error("history: indexing for /search stopped: {why}", why=str(e))
                more = False
            if not more and loop.running:
                loop.stop()

        loop = self.loop = LoopingCall(step)
        loop.clock = clock
        loop.start(0, now=False)

    def close(self) -> None:
        """Close the threads' connections (at the Store's close)."""
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        with self._lock:
            readers, self._readers = self._readers, []
        for db in readers:
            try:
                db.close()
            except sqlite3.Error:
                pass
