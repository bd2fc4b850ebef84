"""One budget per reactor turn shared by every stepped job (p2pchat/turn.py, issue 21 item 6):
two jobs together never hold a turn past it, the jobs that waited go first at the next turn,
and none starves.  The time is a fake timer each piece of work moves on (task.Clock runs
the calls of "the next turn" too: a turn here is what lies between two of the Turn's ends)."""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict

from twisted.internet import task
from twisted.trial.unittest import TestCase

from p2pchat.checking import RelayChecks
from p2pchat.store import FLUSH_DELAY, Store
from p2pchat.turn import Turn, shared
from tests.test_jotting import line

BUDGET = 0.020
CHECK = 0.003  # one relayed line's signature check
ROWS = 0.012  # one step of rows


class FakeTimer:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TheTurn(TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.timer = FakeTimer()
        self.turn = Turn(self.clock, BUDGET, timer=self.timer)

    def test_the_budget_counts_from_the_first_ask_and_ends_with_the_turn(self) -> None:
        self.assertTrue(self.turn.fits(1.0))  # a fresh turn: any step may run
        self.timer.now += 0.015
        self.assertAlmostEqual(self.turn.left(), 0.005)
        self.assertFalse(self.turn.fits(0.010))
        self.timer.now += 0.005
        self.assertFalse(self.turn.fits(0.0))  # spent: not even a step "of no time"
        self.clock.advance(0)  # the reactor's next turn
        self.assertAlmostEqual(self.turn.left(), BUDGET)
        self.assertEqual(self.turn.turns, 2)

    def test_jobs_that_waited_go_first_in_order_and_share_the_next_turn(self) -> None:
        ran: list[str] = []

        def job(name: str, cost: float) -> None:
            self.turn.left()
            ran.append(name)
            self.timer.now += cost

        self.turn.fits(0.0)
        self.timer.now += BUDGET  # this turn spent
        for name in "abc":
            self.turn.next(lambda name=name: job(name, 0.015))
        self.clock.advance(0)
        self.assertEqual(ran, ["a", "b", "c"])  # a, b in one turn (b started within it)...
        self.assertEqual(self.turn.turns, 3)  # ...c in the next: nothing left behind

    def test_the_waiting_jobs_come_after_the_timers_due_before_the_budget_ran_out(self) -> None:
        """A job that waits while the turn still has budget is due when the budget ends: a
        timer due before then (the stall probe's 10 ms tick) runs first in the next turn,
        so the probe never sees this turn's work and the next one's between two ticks."""
        order: list[str] = []
        self.turn.fits(0.0)
        self.turn.next(lambda: order.append("job"))
        self.clock.callLater(BUDGET / 2, order.append, "tick")
        self.clock.advance(0)
        self.assertEqual(order, [])
        self.clock.advance(BUDGET)
        self.assertEqual(order, ["tick", "job"])

    def test_one_turn_per_clock(self) -> None:
        self.assertIs(shared(self.clock), shared(self.clock))
        self.assertIsNot(shared(self.clock), shared(task.Clock()))


class TwoJobsInOneTurn(TestCase):
    """Relayed lines' checks (checking.py) and the history's steps of rows (jotting.py) at
    once, as in a day of catch-up: what both do in any one turn stays within the budget (one
    line's check past it at most), and both get all their work done."""

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.timer = FakeTimer()
        self.turn = Turn(self.clock, BUDGET, timer=self.timer)
        self.spent: dict[int, float] = defaultdict(float)
        self.checked = 0
        self.checks = RelayChecks(self.clock, self.check, turn=self.turn)
        path = os.path.join(tempfile.mkdtemp(), "history.sqlite3")
        self.store = Store(path, call_soon=lambda f: self.clock.callLater(FLUSH_DELAY, f))
        self.addCleanup(self.store.close)
        self.store.turn = self.turn
        write_up = self.store._write_up

        def costly_write_up(batch: list) -> None:
            write_up(batch)
            self.work(ROWS)

        self.store._write_up = costly_write_up  # type: ignore[method-assign]

    def work(self, cost: float) -> None:
        """``cost`` seconds of the reactor thread, in the turn under way."""
        self.spent[self.turn.turns] += cost
        self.timer.now += cost

    def check(self, link: object, raw: bytes, key: str) -> None:
        self.checked += 1
        self.work(CHECK)

    def run_both(self) -> None:
        lines = 2400  # (under BEHIND_MAX_ROWS: none made rows on the path a line takes)
        for start in range(0, lines, 50):  # reads of 50 lines, jotted at once
            self.store.remember_lines([line(n) for n in range(start, start + 50)])
        for n in range(100):  # and relay lines' checks waiting meanwhile
            self.checks.add("link", [(b"x", "K")] * 20)
        for _ in range(400):  # the reactor runs on (FLUSH_DELAY steps of rows among)
            if not self.store.jotter.behind and not self.checks.waiting():
                break
            self.clock.advance(FLUSH_DELAY / 4)
        self.assertEqual(self.checked, 2000)  # all checked...
        self.assertFalse(self.store.jotter.behind)  # ...and all rows made
        self.assertEqual(self.store.line_count, lines)

    def test_their_sum_in_a_turn_stays_within_the_budget(self) -> None:
        self.run_both()
        rows_turns = [n for n, cost in self.spent.items() if cost >= ROWS]
        self.assertTrue(rows_turns)  # (steps of rows were done)
        self.assertLessEqual(max(self.spent.values()), BUDGET + CHECK + 1e-9,
                             {n: round(c * 1000, 1) for n, c in self.spent.items()
                              if c > BUDGET + CHECK})


class TheIndexStep(TestCase):
    """The /search index's step of new lines (index.py) is sized to what is left of the
    turn: a step of 2,000 lines (20 ms under load) on top of a spent turn held 40-55 ms."""

    def test_as_many_lines_as_fit_in_what_is_left(self) -> None:
        from p2pchat import index

        clock, timer = task.Clock(), FakeTimer()
        store = Store(os.path.join(tempfile.mkdtemp(), "h.sqlite3"))
        self.addCleanup(store.close)
        store.index.turn = turn = Turn(clock, BUDGET, timer=timer)
        store.index.line_took = 10e-6
        turn.fits(0.0)
        timer.now += BUDGET - 0.005  # 5 ms left: 500 lines' worth, planned for half of it
        self.assertAlmostEqual(store.index._lines_now(), 250, delta=1)
        timer.now += 0.004  # 1 ms left: less than the smallest step, which waits
        self.assertEqual(store.index._lines_now(), 0)
        clock.advance(0)  # a fresh turn: a whole step (half of 20 ms: 2,500 lines' worth)
        store.index.line_took = 4e-6
        self.assertEqual(store.index._lines_now(), index.INDEX_STEP)
