"""The history's work behind the burst waits for a lull in the lines (p2pchat/lull.py): rows,
upkeep and the /search index are put off while lines are jotted, at most MAX_PUTOFF; what a
reader sees is the same whether the lines are rows yet or not; readers in steps have rows
made a step a turn, never all at once."""

from __future__ import annotations

import os
import tempfile

from twisted.internet import task
from twisted.internet.defer import succeed
from twisted.trial.unittest import TestCase

from p2pchat import turn as turn_module
from p2pchat.interfaces import StoredLine
from p2pchat.jotting import READ_BEHIND_ROWS, WRITE_UP_ROWS
from p2pchat.lull import LULL_SECONDS, MAX_PUTOFF, Lull, PutOff
from p2pchat.search import Query
from p2pchat.store import FLUSH_DELAY, Store
from tests.test_jotting import rows_in


def line(n: int, room: str = "general", sender: str = "bob_1", when: float | None = None,
         ident: str | None = None) -> StoredLine:
    return StoredLine(ident or f"id{n:08d}", room, sender, sender.split("_")[0], f"line {n}",
                      False, False, 1000.0 + n if when is None else when)


class PuttingOff(TestCase):
    def test_a_job_waits_while_lines_come_and_no_longer_than_max_putoff(self) -> None:
        clock = task.Clock()
        lull, job = Lull(clock.seconds), PutOff()
        self.assertFalse(job.waits(lull))  # nothing jotted yet: a lull
        lull.stir()
        self.assertTrue(job.waits(lull))
        clock.advance(LULL_SECONDS)
        self.assertFalse(job.waits(lull))  # quiet for LULL_SECONDS
        waited = []
        while clock.seconds() < 10:  # a line every 0.1 s, for ever
            lull.stir()
            waited.append(job.waits(lull))
            clock.advance(0.1)
        steps = int(MAX_PUTOFF / 0.1)
        self.assertEqual(waited[:steps], [True] * steps)
        self.assertEqual(waited[steps], False)  # waited MAX_PUTOFF: this step runs
        self.assertEqual(waited[steps + 1], True)  # and the next waits again
        self.assertGreaterEqual(waited.count(False), 4)

    def test_without_a_lull_nothing_waits(self) -> None:
        self.assertFalse(PutOff().waits(None))


class Store_(TestCase):
    def setUp(self) -> None:
        self.path = os.path.join(tempfile.mkdtemp(), "history.sqlite3")
        self.clock = task.Clock()

    def store(self) -> Store:
        store = Store(self.path, call_soon=lambda f: self.clock.callLater(FLUSH_DELAY, f))
        store.wait_for_lulls(Lull(self.clock.seconds))
        self.addCleanup(lambda: None if store.closed else store.close())
        return store

    def flowing(self, store: Store, first: int, reads: int, per_read: int = 10,
                every: float = 0.05) -> int:
        """``reads`` reads of lines, ``every`` seconds apart; the next line's number."""
        n = first
        for _ in range(reads):
            store.remember_lines([line(k) for k in range(n, n + per_read)])
            n += per_read
            self.clock.advance(every)
        return n

    def test_rows_wait_while_lines_come_and_are_made_in_the_lull(self) -> None:
        store = self.store()
        n = self.flowing(store, 0, 20)  # a second of lines
        self.assertEqual(rows_in(self.path), 0)  # none made while they came
        self.assertEqual(store.jotter.rows, n)
        self.clock.advance(LULL_SECONDS)
        for _ in range(4):
            self.clock.advance(FLUSH_DELAY)
        self.assertEqual(rows_in(self.path), n)

    def test_a_room_that_never_goes_quiet_has_its_rows_made_all_the_same(self) -> None:
        store = self.store()
        self.flowing(store, 0, int(3 * MAX_PUTOFF / 0.05), per_read=1)
        self.assertGreater(rows_in(self.path), 0)

    def test_upkeep_waits_for_the_lull(self) -> None:
        store = self.store()
        store.max_lines = 10
        n = self.flowing(store, 0, 10)
        store.flush()
        store.remember_lines([])  # (nothing)
        assert store.lull is not None
        store.lull.stir()  # lines still come
        store.upkeep(self.clock.seconds())
        self.assertEqual(rows_in(self.path), n)  # not pruned while lines come
        self.clock.advance(LULL_SECONDS)
        store.upkeep(self.clock.seconds())
        self.assertLess(rows_in(self.path), n)

    def test_reads_see_the_lines_waiting_as_they_will_be_rows(self) -> None:
        store = self.store()
        store.remember_lines([line(n) for n in range(0, 30)])
        store.remember_lines([line(n, room="ops") for n in range(30, 40)])
        store.flush()
        # waiting: later lines, one said at the same time as a row, one by someone ignored,
        # one the file has already (a duplicate), and lines of another room
        store.remember_lines([line(n) for n in range(40, 60)])
        store.remember_lines([line(99, when=1000.0 + 10, ident="same-time")])
        store.remember_lines([line(61, sender="eve_1")])
        store.remember_lines([line(5)])
        store.remember_lines([line(50)])  # twice among those waiting
        store.remember_lines([line(n, room="ops") for n in range(62, 70)])
        self.assertEqual(rows_in(self.path), 40)
        waiting = store.jotter.rows

        def reads() -> list[list[str]]:
            out = []
            for room in ("general", "ops"):
                for when, count, skip in ((1015.0, 5, ()), (1045.0, 3, ("eve_1",)),
                                          (1010.0, 2, ()), (1000.0, 0, ()),
                                          (2000.0, 100, ()), (1061.0, 1, ("eve_1",))):
                    out.append([x.id for x in store.recent(room, count * 7, skip)])
                    out.append([x.id for x in store.around(room, when, count, skip)])
            return out
        early = reads()
        self.assertEqual(store.jotter.rows, waiting)  # read where they wait, not made rows
        self.assertEqual(rows_in(self.path), 40)
        ids = [x.id for x in store.recent("general", 100)]
        self.assertEqual(len(ids), len(set(ids)))  # the duplicate once
        self.assertIn("same-time", ids)
        self.assertNotIn("id00000061", [x.id for x in store.recent("general", 100, ["eve_1"])])
        self.assertEqual(ids.index("same-time"), ids.index("id00000010") + 1)  # rows first
        store.flush()
        self.assertEqual(rows_in(self.path), 40 + 20 + 1 + 1 + 8)
        self.assertEqual(reads(), early)  # the same once they are rows

    def test_a_read_in_steps_has_rows_made_a_step_at_a_time(self) -> None:
        store = self.store()
        store.turn = turn_module.Turn(self.clock)
        count = READ_BEHIND_ROWS + 2 * WRITE_UP_ROWS
        for start in range(0, count, 100):
            store.remember_lines([line(n) for n in range(start, start + 100)])
        self.assertEqual(rows_in(self.path), 0)
        self.assertFalse(store.rows_step())  # too many behind: one step made
        self.assertEqual(rows_in(self.path), WRITE_UP_ROWS)
        self.assertFalse(store.rows_step())
        self.assertTrue(store.rows_step())  # down to READ_BEHIND_ROWS: may flush now
        self.assertEqual(rows_in(self.path), 2 * WRITE_UP_ROWS)

    def test_a_search_makes_the_rows_behind_a_step_a_turn(self) -> None:
        store = self.store()
        store.turn = turn_module.Turn(self.clock)
        count = 3 * WRITE_UP_ROWS + 100
        for start in range(0, count, 100):
            store.remember_lines([line(n) for n in range(start, start + 100)])
        made: list[int] = []
        write_up = store._write_up

        def counted(batch: list) -> None:
            made.append(sum(len(rows) for pending, _h, _s in batch
                            for rows in pending.values()))
            write_up(batch)
        store._write_up = counted  # type: ignore[method-assign]
        store.index.in_thread = lambda f, *a: succeed(f(*a))  # type: ignore[method-assign]
        found = store.search(Query(words=("line",)), 5)
        self.assertEqual(made, [WRITE_UP_ROWS])  # one step this turn, not all of them
        hits: list = []
        found.addCallback(hits.extend)
        for _ in range(10):
            self.clock.advance(0)
        self.assertEqual(len(hits), 5)
        self.assertTrue(all(n <= WRITE_UP_ROWS for n in made))
        self.assertEqual(rows_in(self.path), count)

    def test_new_lines_are_indexed_for_search_in_the_lull(self) -> None:
        store = self.store()
        store.index.index_in_steps(self.clock)
        if not store.index.fts:
            self.skipTest("no FTS5 in this SQLite: nothing is indexed in steps")
        self.flowing(store, 0, int(3.9 / 0.05), per_read=2)
        # rows were made once (MAX_PUTOFF), then indexing was due (INDEX_DELAY) and waits
        self.assertGreater(rows_in(self.path), 0)
        self.assertIsNotNone(store.index.live_upto)
        self.clock.advance(LULL_SECONDS)
        for _ in range(40):
            self.clock.advance(0.05)
        self.assertIsNone(store.index.live_upto)  # indexed, in the lull

    def test_the_byte_budget_is_kept_in_the_lull(self) -> None:
        store = self.store()
        kept: list[float] = []
        keep = store._keep_to_budget

        def counted() -> bool:
            kept.append(self.clock.seconds())
            return keep()
        store._keep_to_budget = counted  # type: ignore[method-assign]
        n = 0
        while self.clock.seconds() < 3.0:  # 3 MB of lines in 3 s, rows made at MAX_PUTOFF
            store.remember_lines([StoredLine(f"big{n}", "general", "bob_1", "bob", "x" * 20_000,
                                             False, False, 1000.0 + n)])
            n += 1
            self.clock.advance(0.02)
        self.assertGreater(rows_in(self.path), 0)
        self.assertEqual(kept, [])  # over UPKEEP_AFTER_BYTES, but lines come
        self.clock.advance(LULL_SECONDS)
        store.upkeep(self.clock.seconds())
        self.assertTrue(kept)

    def test_upkeep_takes_a_turn_a_stage_when_they_do_not_fit_in_one(self) -> None:
        """A day of catch-up: the rows behind (26 ms), the byte budget (19) and the packing
        (13) in one call held the reactor 58 ms; each stage now waits for a turn with room."""
        store = self.store()
        now = [0.0]  # the reactor thread's time, as the turn reads it
        store.turn = turn_module.Turn(self.clock, seconds=0.015, timer=lambda: now[0])
        ran: list[tuple[int, str]] = []
        turns = [0]

        def costing(name: str, f, seconds: float):  # type: ignore[no-untyped-def]
            def stage(*a, **kw):  # type: ignore[no-untyped-def]
                ran.append((turns[0], name))
                now[0] += seconds
                return f(*a, **kw)
            return stage
        store.rows_step = costing("rows", store.rows_step, 0.010)  # type: ignore[method-assign]
        store._keep_to_budget = costing("budget", store._keep_to_budget,  # type: ignore
                                        0.010)
        store.pack_step = costing("pack", store.pack_step, 0.010)  # type: ignore
        store.remember_lines([line(n) for n in range(50)])
        store.flush()
        self.clock.advance(LULL_SECONDS)  # (upkeep waits for a lull in the lines)
        store.upkeep(self.clock.seconds())
        self.assertEqual(ran, [(0, "rows")])  # the rest waits: 10 ms of the 15 went
        store.upkeep(self.clock.seconds())  # (the next second's call: one is under way)
        for _ in range(6):
            turns[0] += 1
            self.clock.advance(0.02)
        self.assertEqual([name for _t, name in ran], ["rows", "budget", "pack"])
        self.assertEqual(len({t for t, _name in ran}), 3)  # a turn each
        store.upkeep(self.clock.seconds())  # a later upkeep runs again, from its start
        self.assertEqual(ran[-1][1], "rows")

    def ready_for_upkeep(self) -> tuple[Store, list[int]]:
        """A store with rows and a lull, and the upkeeps that reached packing (a 1 each)."""
        store = self.store()
        packed: list[int] = []
        pack = store.pack_step
        store.pack_step = lambda: packed.append(1) or pack()  # type: ignore[method-assign]
        store.remember_lines([line(n) for n in range(50)])
        store.flush()
        self.clock.advance(LULL_SECONDS)
        return store, packed

    def test_an_upkeep_stage_that_fails_does_not_stop_the_next_upkeep(self) -> None:
        store, packed = self.ready_for_upkeep()
        budget = store._keep_to_budget
        failing = [True]

        def keep() -> bool:
            if failing[0]:
                failing[0] = False
                raise RuntimeError("a stage failed")
            return budget()
        store._keep_to_budget = keep  # type: ignore[method-assign]
        self.assertRaises(RuntimeError, store.upkeep, self.clock.seconds())
        self.assertEqual(packed, [])
        store.upkeep(self.clock.seconds())  # not skipped as one under way
        self.assertEqual(packed, [1])

    def test_upkeep_without_a_turn_runs_whole(self) -> None:
        store, packed = self.ready_for_upkeep()
        store.upkeep(self.clock.seconds())
        self.assertEqual(packed, [1])


class HandOnWithRowsBehind(TestCase):
    def test_a_catch_up_handed_on_has_the_rows_behind_made_a_step_a_turn(self) -> None:
        """Not all of a burst's rows at once before its first read (6000 behind: 50-60 ms)."""
        from p2pchat.node import Node
        from tests.test_history_limits import ROGUE_CAPS, Reads, plant, sync

        clock = task.Clock()
        clock.advance(1_000_000)
        path = os.path.join(tempfile.mkdtemp(), "history.sqlite3")
        store = Store(path, call_soon=lambda f: None)  # (rows are made only when asked)
        self.addCleanup(store.close)
        node = Node("keeper", clock, store=store, log_lines=30)
        authors = plant(store, authors=2, lines=100, size=50, when=clock.seconds())
        behind = READ_BEHIND_ROWS + 2 * WRITE_UP_ROWS
        for start in range(0, behind, 100):  # a burst heard, its rows still to be made
            store.remember_lines([line(n, room="ops") for n in range(start, start + 100)])
        self.assertEqual(store.jotter.rows, behind)
        made: list[int] = [0]
        write_up = store._write_up

        def counted(batch: list) -> None:
            made[-1] += sum(len(rows) for pending, _h, _s in batch for rows in pending.values())
            write_up(batch)
        store._write_up = counted  # type: ignore[method-assign]
        peer = Reads("back_1", "back", caps=ROGUE_CAPS)
        node.link_ready(peer)
        node.message_received(peer, sync("back_1", {a: 0 for a in authors}))
        for _ in range(50):  # (a turn's budget ends 15 ms after it began: the next turn)
            made.append(0)
            clock.advance(0.02)
        self.assertEqual([peer.relay_lines_of(a) for a in authors], [30, 30])  # all handed on
        self.assertGreaterEqual(sum(made), behind)
        self.assertLessEqual(max(made), READ_BEHIND_ROWS + 100)  # never all of them in a turn
