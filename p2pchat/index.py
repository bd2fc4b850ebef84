"""The history file's search index (search.py says what it is), and searching it off the
reactor.

A file made before the index existed is indexed once, in steps of INDEX_STEP lines (and at
most INDEX_STEP_SECONDS) run one per reactor turn (``step``, called by a LoopingCall the
service starts), so no step holds the reactor for long; how far it got is kept in the
``settings`` table, so a restart goes on where it stopped.  Lines saved while running are
indexed the same way, a moment after their commit (INDEX_DELAY), not in it: a burst of
received lines pays nothing for the index while it comes.  Each step runs only in a turn
whose shared budget (turn.py) has room for it, as long as the last took, or in a fresh one.  Searches run in a thread of the
reactor's pool, each thread with a read-only SQLite connection of its own (the file is in
WAL mode, so reading there while the reactor writes is safe).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any, Callable

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from p2pchat.interfaces import SearchHit
from p2pchat.lull import LULL_SECONDS, Lull, PutOff
from p2pchat.turn import Turn, shared
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
#: ``settings`` key: while lines saved since the file was opened wait to be indexed, the rowid
#: up to which they are (written in the commit that leaves the first of them unindexed, so
#: the delete trigger and a restart know; absent once they are all indexed).
LIVE_KEY = "search_index_live"
#: Lines saved while running go into the index this long (seconds) after the commit that
#: saved the first of them, INDEX_STEP at a time, one step per reactor turn: off the path a
#: received line takes (in a burst, after it), and in bigger steps than a commit's.  A
#: /search indexes what still waits first, so it finds every line.
INDEX_DELAY = 1.0
#: A step of new lines (``catch_up_step``) with a reactor indexes as many as fit in what is
#: left of the turn's shared budget (turn.py), INDEX_STEP at most and INDEX_MIN_STEP at
#: least, at the pace of the last step (before the first: INDEX_LINE_SECONDS a line)...
INDEX_MIN_STEP = 200
INDEX_LINE_SECONDS = 10e-6
#: ...planned for this share of what is left: a step's cost is not quite in proportion to its
#: lines (FTS5 merges its segments now and then), and one of 2,000 lines planned for 20 ms
#: took 29 beside a turn's checks.
INDEX_TURN_SHARE = 0.5
#: FTS5 merges its segments by itself at the end of a transaction that fills a level
#: ('automerge'), a merge whose size grows with the history: in a 100,000-line catch-up one
#: step of 200 lines took 40-60 ms, most of it merging.  So the index merges only when told:
#: each step of lines ends with a merge of at most INDEX_MERGE_PAGES pages (bench of
#: 300,000 lines in steps of 200: the worst step 60 ms -> 25, the whole the same), and a
#: level is merged at once only past INDEX_CRISIS_SEGMENTS segments ('crisismerge'; the
#: steps' merges keep it far below).
INDEX_MERGE_PAGES = 50
INDEX_CRISIS_SEGMENTS = 64
#: A step's merge takes a level only once it has this many segments ('usermerge'; FTS5's
#: default is 4), merged into one: each entry is rewritten once a level of 16 times more
#: lines, not of 4, so the index costs a line about a third less all told (bench of 60,000
#: lines in steps of 500: 5.1 -> 3.4 us a line, load 50) for a few more segments a search
#: reads (a 50-hit search 1.1 -> 1.8 ms there).
INDEX_USER_MERGE = 16
#: A line's text as SQL (``L`` the row), its first SEARCH_INDEX_CHARS: its text, or for a
#: line kept as its signed bytes only, the action or content in them (a malformed line:
#: nothing, never an error).  Deterministic, so a line's entry is deleted with the very
#: words it was indexed with (the index is contentless: it keeps no copy of the text).
SHOWN_TEXT = ("substr(case when L.text != '' then L.text when L.raw is not null and "
              "json_valid(cast(L.raw as text)) then coalesce(nullif(json_extract("
              "cast(L.raw as text), '$.metadata.action'), ''), json_extract(cast(L.raw as text),"
              f" '$.content'), '') else '' end, 1, {SEARCH_INDEX_CHARS})")
#: A deleted line leaves the index by a trigger.  New lines go in a moment after their commit,
#: many at once (``add_new``, ``catch_up_step``): a trigger per inserted row cost four times as
#: much (about 22 us a line here, most of what receiving a line cost; bench.hotpath), and
#: even one ``insert ... select`` per commit 2 us of each received line.
#: A line deleted is taken out of the index, unless it was not indexed yet (its rowid between
#: an upgrade's "upto" and "target", or above LIVE_KEY's): a contentless index told to delete
#: what it never held calls itself malformed, and every later prune would fail.
_NOT_YET_INDEXED = (
    f"exists (select 1 from settings where key = '{INDEX_KEY}' and value != 'done' and "
    "old.rowid > cast(value as integer) and "
    "old.rowid <= cast(substr(value, instr(value, ' ') + 1) as integer)) or exists ("
    f"select 1 from settings where key = '{LIVE_KEY}' and old.rowid > cast(value as integer))")
_TRIGGERS = (
    "drop trigger if exists lines_fts_gone",  # an older build's, without the when clause
    "create trigger lines_fts_gone after delete on lines when not ("
    + _NOT_YET_INDEXED + ") begin "
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
        #: lines saved since the file was opened are indexed up to this rowid; None: all are
        self.live_upto: int | None = None
        #: the reactor (given by ``index_in_steps``): without it, lines waiting are indexed
        #: only when a search asks (tests, bench.hotpath)
        self.clock: IReactorTime | None = None
        self._live_call: Any = None
        #: the reactor turn's budget, shared with every stepped job (turn.py; with the clock)
        self.turn: Turn | None = None
        #: how long the last step took (seconds): what the next is expected to take
        self.took = 0.0
        #: how long a line of new lines took to index, at the last step (seconds)
        self.line_took = INDEX_LINE_SECONDS
        self._live_waiting = False  # a step waits for a turn with room for it
        #: when lines were last jotted (lull.py; the store gives it): new lines are indexed
        #: in a lull (a search indexes what waits first, whatever the lull)
        self.lull: Lull | None = None
        self._put_off = PutOff()
        self._closed = False
        if self.fts:
            self._open()
        else:
            # Deletes must not need FTS5: a file indexed elsewhere is re-indexed from scratch
            # once it is opened where FTS5 is.
            db.execute("drop trigger if exists lines_fts_new")
            db.execute("drop trigger if exists lines_fts_gone")
            db.execute("delete from settings where key in (?, ?)", (INDEX_KEY, LIVE_KEY))

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
            db.execute("insert into lines_fts(lines_fts, rank) values ('automerge', 0)")
            db.execute("insert into lines_fts(lines_fts, rank) values ('crisismerge', ?)",
                       (INDEX_CRISIS_SEGMENTS,))
            db.execute("insert into lines_fts(lines_fts, rank) values ('usermerge', ?)",
                       (INDEX_USER_MERGE,))
            for trigger in _TRIGGERS:
                db.execute(trigger)
            if existed and row is not None:
                state = row[0]
                live = db.execute("select value from settings where key = ?",
                                  (LIVE_KEY,)).fetchone()
                self.live_upto = int(live[0]) if live and live[0].isdigit() else None
            else:  # new, or left by a build without FTS5 (stale): index every line
                if existed:
                    db.execute("insert into lines_fts(lines_fts) values ('delete-all')")
                last = db.execute("select max(rowid) from lines").fetchone()[0] or 0
                state = f"0 {last}" if last else "done"
                db.execute("insert or replace into settings values (?, ?)", (INDEX_KEY, state))
                db.execute("delete from settings where key = ?", (LIVE_KEY,))
                self.live_upto = None
        if state != "done":
            upto, _, target = state.partition(" ")
            self.upto, self.target, self.done = int(upto), int(target), False
            log.info("history: indexing {n} lines for /search, in steps",
                     n=self.target - self.upto)

    def add_new(self, after: int) -> None:
        """The commit under way (in its transaction) saved lines above rowid ``after``: they
        are indexed a moment later (INDEX_DELAY, ``catch_up_step``), not in the commit.  Each
        such commit writes how far the index goes (LIVE_KEY), in its transaction, so a deleted
        line not indexed yet is not told to the index and a restart indexes what was left
        (each commit, not only the first: a first one that failed, a full disk, wrote
        nothing)."""
        if not self.fts:
            return
        if self.live_upto is None:
            self.live_upto = after
        self._db.execute("insert or replace into settings values (?, ?)",
                         (LIVE_KEY, str(self.live_upto)))
        self._schedule(INDEX_DELAY)

    def _schedule(self, delay: float) -> None:
        if self.clock is not None and self._live_call is None and not self._live_waiting:
            self._live_call = self.clock.callLater(delay, self._live_step)

    def _room(self) -> bool:
        """Whether this reactor turn has room for a step (always, without a reactor)."""
        return self.turn is None or self.turn.fits(self.took)

    def _lines_now(self) -> int:
        """How many lines a step of new lines may index now: INDEX_STEP without a reactor,
        else as many as fit in INDEX_TURN_SHARE of what is left of the turn's shared budget
        at the last steps' pace (INDEX_MIN_STEP at least, so a step is worth its
        transaction), or 0 when not
        even those fit (the step waits for the next turn, which always takes one)."""
        turn = self.turn
        if turn is None:
            return INDEX_STEP
        if not turn.fits(INDEX_MIN_STEP * self.line_took):
            return 0
        share = turn.left() * INDEX_TURN_SHARE
        return max(INDEX_MIN_STEP, min(INDEX_STEP, int(share / self.line_took)))

    def _live_step(self) -> None:
        self._live_call = None
        self._live_waiting = False
        if self._closed:
            return
        if self._put_off.waits(self.lull):
            self._schedule(LULL_SECONDS)  # lines are flowing: indexed behind the burst
            return
        while True:  # steps while the turn has room for them, then at the next turn
            count = self._lines_now()
            if not count and self.turn is not None:
                self._live_waiting = True
                self.turn.next(self._live_step)
                return
            try:
                more = self.catch_up_step(count)
            except sqlite3.Error as e:  # a full disk: the lines wait for the next start
                log.error("history: indexing new lines for /search failed: {why}", why=str(e))
                return
            if not more:
                return
            if self.turn is None:
                self._schedule(0)
                return

    def catch_up_step(self, count: int = INDEX_STEP) -> bool:
        """Index the next ``count`` lines saved since the file was opened that wait (in one
        transaction, with how far it got); True while more wait."""
        if self.live_upto is None:
            return False
        db, upto = self._db, self.live_upto
        timer = time.perf_counter if self.turn is None else self.turn.timer
        started = timer()
        with db:
            db.execute("begin")
            top = db.execute("select max(rowid) from lines").fetchone()[0] or 0
            last = db.execute("select max(rowid) from (select rowid from lines where rowid > ? "
                              "order by rowid limit ?)", (upto, count)).fetchone()[0]
            if last is not None:
                db.execute("insert into lines_fts(rowid, text) select L.rowid, "
                           f"{SHOWN_TEXT} from lines L where L.rowid > ? and L.rowid <= ?",
                           (upto, last))
                _merge_some(db)
            if last is None or last >= top:
                db.execute("delete from settings where key = ?", (LIVE_KEY,))
                done = True
            else:
                db.execute("insert or replace into settings values (?, ?)",
                           (LIVE_KEY, str(last)))
                done = False
        self.live_upto = None if done else last
        self.took = timer() - started
        if last is not None and last > upto:
            self.line_took = max(1e-7, self.took / min(count, last - upto))
        return not done

    def catch_up(self) -> None:
        """Index every line that waits, at once (a search where no reactor is known)."""
        while self.catch_up_step():
            pass

    def reset(self) -> None:
        """The lines' rowids may have changed (a VACUUM): index them all again."""
        if not self.fts:
            return
        with self._db:
            self._db.execute("begin")
            self._db.execute("insert into lines_fts(lines_fts) values ('delete-all')")
            self._db.execute("delete from settings where key in (?, ?)", (INDEX_KEY, LIVE_KEY))
        self.live_upto = None
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
            _merge_some(db)
            if upto >= self.target or last is None:
                upto = self.target
            state = "done" if upto >= self.target else f"{upto} {self.target}"
            db.execute("insert or replace into settings values (?, ?)", (INDEX_KEY, state))
        took = self.took = time.perf_counter() - started
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
        queued lines first) once the lines waiting to be indexed are (a step per reactor turn
        when the reactor is known, so a search after a long burst holds no turn for long);
        fails with the sqlite3 error if indexing or the search did."""
        clock = self.clock
        if clock is None or self.live_upto is None:
            try:
                self.catch_up()
            except sqlite3.Error as e:
                return fail(e)
            return self.in_thread(self._search, query, limit)
        found: Deferred[list[SearchHit]] = Deferred()

        turn = self.turn

        def step() -> None:
            more = True
            while more:  # steps while the turn has room for them, then at the next turn
                count = self._lines_now()
                if turn is not None and not count:
                    turn.next(step)
                    return
                try:
                    more = self.catch_up_step(count)
                except sqlite3.Error as e:
                    found.errback(e)
                    return
                if more and turn is None:
                    clock.callLater(0, step)
                    return
            self.in_thread(self._search, query, limit).chainDeferred(found)

        step()
        return found

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
        self.clock = clock
        self.turn = shared(clock)
        if self.live_upto is not None:  # left waiting by the last run
            self._schedule(0)
        if self.done or self.loop is not None:
            return
        skipped = [False]

        def step() -> None:
            if not skipped[0] and not self._room():
                skipped[0] = True  # this turn has no room: the next (never two skipped)
                return
            skipped[0] = False
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
        self._closed = True
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        if self._live_call is not None and self._live_call.active():
            self._live_call.cancel()
        self._live_call = None
        with self._lock:
            readers, self._readers = self._readers, []
        for db in readers:
            try:
                db.close()
            except sqlite3.Error:
                pass


def _merge_some(db: sqlite3.Connection) -> None:
    """A bounded share of the index's merging, in the step's transaction (INDEX_MERGE_PAGES:
    FTS5's own merges are off, so a step's cost does not jump when a level fills)."""
    db.execute("insert into lines_fts(lines_fts, rank) values ('merge', ?)",
               (INDEX_MERGE_PAGES,))
