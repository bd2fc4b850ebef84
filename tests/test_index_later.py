"""Lines saved while running go into the /search index a moment after their commit
(index.py's INDEX_DELAY, in steps), not in it: every line is still found, a search indexes
what waits first, a line pruned before it was indexed breaks nothing, and a restart indexes
what the last run left waiting."""

from __future__ import annotations

import os

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from p2pchat import index as index_module
from p2pchat.search import Query
from p2pchat.store import Store
from p2pchat.turn import Turn
from tests.test_search import T0, at, opened


def indexed(store: Store, word: str) -> int:
    return store._db.execute("select count(*) from lines_fts where lines_fts match ?",
                             (f'"{word}"',)).fetchone()[0]


class IndexedLater(TestCase):
    def setUp(self) -> None:
        folder = self.mktemp()
        os.makedirs(folder)
        self.path = os.path.join(folder, "h.sqlite3")
        self.clock = Clock()
        self.store = opened(self.path)
        self.store.index.index_in_steps(self.clock)
        self.addCleanup(lambda: self.store.closed or self.store.close())

    def said(self, count: int, word: str = "zebra", start: int = 0) -> None:
        for n in range(start, start + count):
            self.store.remember(at(n, f"{word} line {n}", when=T0 + n))
        self.store.flush()

    def test_not_in_the_commit_but_a_moment_after_it(self) -> None:
        self.said(3)
        self.assertEqual(indexed(self.store, "zebra"), 0)  # the commit did not index them
        self.clock.advance(index_module.INDEX_DELAY)
        self.assertEqual(indexed(self.store, "zebra"), 3)
        self.assertIsNone(self.store.index.live_upto)
        self.assertEqual(self.clock.getDelayedCalls(), [])  # nothing left to do

    def test_in_steps_of_index_step(self) -> None:
        count = int(index_module.INDEX_STEP * 2.5)
        self.said(count)
        self.assertTrue(self.store.index.catch_up_step())
        self.assertEqual(indexed(self.store, "zebra"), index_module.INDEX_STEP)
        self.clock.advance(index_module.INDEX_DELAY)  # (Clock runs the next steps at once)
        self.assertEqual(indexed(self.store, "zebra"), count)
        self.assertIsNone(self.store.index.live_upto)

    @defer.inlineCallbacks
    def test_a_search_finds_every_line_at_once(self):
        self.said(5)
        found = self.store.search(Query(words=("zebra",)), 50)
        hits = yield found
        self.assertEqual(len(hits), 5)

    @defer.inlineCallbacks
    def test_a_search_after_a_long_burst_indexes_a_step_per_turn(self):
        """(As many lines as the turn's shared budget has room for: here none, so the
        smallest step, which a fresh turn always takes.)"""
        self.store.index.turn = Turn(self.clock, seconds=0.0)
        count = int(index_module.INDEX_STEP * 1.5)
        self.said(count)
        found = self.store.search(Query(words=("zebra",)), 50)
        self.assertFalse(found.called)  # one step in this turn, the rest in the next
        self.assertEqual(indexed(self.store, "zebra"), index_module.INDEX_MIN_STEP)
        self.clock.advance(0)
        hits = yield found
        self.assertEqual(len(hits), 50)
        self.assertEqual(indexed(self.store, "zebra"), count)

    @defer.inlineCallbacks
    def test_a_line_pruned_before_it_was_indexed_breaks_nothing(self):
        self.said(10)
        failed: list[Exception] = []
        self.store._upkeep_failed = failed.append  # type: ignore[method-assign]
        self.store.max_lines = 4
        self.store.upkeep(T0 + 20)  # the 6 oldest go, none indexed yet
        self.assertEqual(failed, [])
        self.clock.advance(index_module.INDEX_DELAY)
        hits = yield self.store.search(Query(words=("zebra",)), 50)
        self.assertEqual(sorted(h.text for h in hits), [f"zebra line {n}" for n in range(6, 10)])
        self.store.max_lines = 2
        self.store.upkeep(T0 + 30)  # indexed ones go: they leave the index
        self.assertEqual(failed, [])
        self.store._db.execute("insert into lines_fts(lines_fts) values ('integrity-check')")
        self.assertEqual(indexed(self.store, "zebra"), 2)

    def test_what_a_run_left_waiting_is_indexed_at_the_next_start(self) -> None:
        self.said(3)
        self.store.close()
        again = opened(self.path)
        self.addCleanup(again.close)
        self.assertEqual(indexed(again, "zebra"), 0)
        clock = Clock()
        again.index.index_in_steps(clock)
        clock.advance(0)
        self.assertEqual(indexed(again, "zebra"), 3)
        self.assertIsNone(again.index.live_upto)
        again.close()
        third = opened(self.path)
        self.addCleanup(third.close)
        self.assertIsNone(third.index.live_upto)

    def test_lines_after_the_first_wait_are_not_skipped(self) -> None:
        """Commits that come while lines wait add theirs to the same wait."""
        self.said(3)
        self.clock.advance(index_module.INDEX_DELAY / 2)
        self.said(4, word="yak", start=3)
        self.clock.advance(index_module.INDEX_DELAY / 2)
        self.assertEqual((indexed(self.store, "zebra"), indexed(self.store, "yak")), (3, 4))
        self.said(2, word="gnu", start=7)
        self.clock.advance(index_module.INDEX_DELAY)
        self.assertEqual(indexed(self.store, "gnu"), 2)

    def test_a_commit_that_failed_leaves_the_next_one_to_say_what_waits(self) -> None:
        """The first commit that left lines waiting failed (rolled back: a full disk): the
        next one still writes how far the index goes, else a line deleted before it is
        indexed would be told to the index, which then calls itself malformed."""
        db = self.store._db
        db.execute("begin")
        self.store.index.add_new(0)
        db.execute("rollback")
        self.said(2)
        row = db.execute("select value from settings where key = ?",
                         (index_module.LIVE_KEY,)).fetchone()
        self.assertEqual(row, ("0",))


class MergedInSteps(TestCase):
    """FTS5's own merges are off (a level filling made one step of a catch-up 40-60 ms); each
    step of lines merges a bounded share instead, so the index stays merged."""

    def _stepped(self, merge: bool) -> Store:
        folder = self.mktemp()
        os.makedirs(folder)
        store = opened(os.path.join(folder, "h.sqlite3"))
        self.addCleanup(store.close)
        if not merge:
            self.patch(index_module, "_merge_some", lambda db: None)
        n = 0
        for _ in range(80):
            for _ in range(25):
                store.remember(at(n, f"word{n % 97} other{n % 13} line {n}", when=T0 + n))
                n += 1
            store.flush()
            while store.index.catch_up_step(25):
                pass
        return store

    def test_fts5_merges_only_when_told(self) -> None:
        store = self._stepped(merge=True)
        config = dict(store._db.execute("select k, v from lines_fts_config"))
        self.assertEqual(config.get("automerge"), 0)
        self.assertEqual(config.get("crisismerge"), index_module.INDEX_CRISIS_SEGMENTS)
        # a step merges a level of 16 segments, not FTS5's 4: each entry rewritten less often
        self.assertEqual(config.get("usermerge"), index_module.INDEX_USER_MERGE)
        self.assertLess(index_module.INDEX_USER_MERGE, index_module.INDEX_CRISIS_SEGMENTS)

    def test_each_step_merges_a_share(self) -> None:
        def pages(store: Store) -> int:
            return store._db.execute("select count(*) from lines_fts_data").fetchone()[0]
        store = self._stepped(merge=True)
        self.assertEqual(indexed(store, "word5"), len(range(5, 2000, 97)))  # all still found
        merged = pages(store)
        unmerged = pages(self._stepped(merge=False))
        self.assertLess(merged, unmerged)
