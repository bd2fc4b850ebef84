"""History jotted down at once and made into rows behind the burst (p2pchat/jotting.py): what
a read keeps survives a kill before any commit, a torn last record is dropped, not a crash,
what waits is bounded, and everything that reads history sees the lines not yet rows."""

from __future__ import annotations

import os
import sqlite3
import tempfile

from twisted.internet import task
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from p2pchat import jotting
from p2pchat.interfaces import StoredLine
from p2pchat.jotting import BEHIND_MAX_ROWS, JOT_SUFFIX, WRITE_UP_ROWS
from p2pchat.store import FLUSH_DELAY, Store


def line(n: int, room: str = "general", seq: int = 0) -> StoredLine:
    raw = f'{{"n":{n}}}'.encode() if seq else None
    return StoredLine(f"id{n:08d}", room, "bob_1", "bob", f"line {n}", False, False,
                      1000.0 + n, seq, raw, "KEY" if seq else "")


def rows_in(path: str) -> int:
    """Lines in the file as another process would see them (no flush of ours)."""
    db = sqlite3.connect(path)
    try:
        return db.execute("select count(*) from lines").fetchone()[0]
    finally:
        db.close()


class Jotting(TestCase):
    def setUp(self) -> None:
        folder = tempfile.mkdtemp()
        self.path = os.path.join(folder, "history.sqlite3")
        self.clock = task.Clock()
        self.logged: list[dict] = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)

    def store(self) -> Store:
        store = Store(self.path, call_soon=lambda f: self.clock.callLater(FLUSH_DELAY, f))
        self.addCleanup(lambda: None if store.closed else store.close())
        return store

    def test_a_read_is_kept_at_once_and_made_rows_behind_it(self) -> None:
        store = self.store()
        store.remember_lines([line(n) for n in range(10)])
        self.assertEqual(rows_in(self.path), 0)  # no commit on the path a line takes
        self.assertGreater(os.path.getsize(self.path + JOT_SUFFIX), 0)  # but jotted down
        self.clock.advance(FLUSH_DELAY)
        self.assertEqual(rows_in(self.path), 10)
        self.assertEqual(os.path.getsize(self.path + JOT_SUFFIX), 0)  # emptied once all rows

    def test_rows_are_made_in_bounded_steps(self) -> None:
        store = self.store()
        count = WRITE_UP_ROWS * 2 + 5  # (under BEHIND_MAX_ROWS: none made on the path)
        for start in range(0, count, 50):  # reads of 50 lines
            store.remember_lines([line(n) for n in range(start, min(count, start + 50))])
        self.clock.advance(FLUSH_DELAY)
        self.assertEqual(rows_in(self.path), WRITE_UP_ROWS)  # one step, one transaction
        for _ in range(3):
            self.clock.advance(FLUSH_DELAY)
        self.assertEqual(rows_in(self.path), count)
        self.assertFalse(store.jotter.behind)

    def test_a_killed_run_loses_nothing_it_jotted(self) -> None:
        store = self.store()
        store.remember_lines([line(n, seq=n + 1) for n in range(30)])
        store.set_high_water("bob_1", 30)
        store.set_rooms(["ops"])
        store.remember_lines([line(30)])  # the rest of the queue goes with this read
        # killed here: no step ran, nothing committed, nothing closed
        self.assertEqual(rows_in(self.path), 0)
        again = Store(self.path)
        self.addCleanup(again.close)
        self.assertEqual(len(again.recent("general", 100)), 31)
        self.assertEqual(again.high_water(), {"bob_1": 30})
        self.assertEqual(again.rooms(), ["ops"])
        self.assertEqual(len(again.relayable_after("bob_1", 0, ["general"], 100, 0.0)), 30)
        self.assertTrue(any("killed run had jotted" in (e.get("log_format") or "")
                            for e in self.logged))
        store.jotter.close()

    def test_a_torn_last_record_is_dropped_with_a_log_line(self) -> None:
        store = self.store()
        store.remember_lines([line(n) for n in range(5)])
        store.remember_lines([line(n) for n in range(5, 10)])
        store.jotter.close()
        jot = self.path + JOT_SUFFIX
        with open(jot, "r+b") as f:  # killed in the middle of writing the second record
            f.truncate(os.path.getsize(jot) - 7)
        again = Store(self.path)
        self.addCleanup(again.close)
        self.assertEqual([x.id for x in again.recent("general", 100)],
                         [f"id{n:08d}" for n in range(5)])
        self.assertTrue(any("torn or damaged" in (e.get("log_format") or "")
                            for e in self.logged))

    def test_a_damaged_record_is_dropped_not_a_crash(self) -> None:
        store = self.store()
        store.remember_lines([line(n) for n in range(5)])
        store.jotter.close()
        jot = self.path + JOT_SUFFIX
        with open(jot, "r+b") as f:
            f.seek(12)
            f.write(b"\xff\xfe")  # a bit flipped: its CRC no longer matches
        again = Store(self.path)
        self.addCleanup(again.close)
        self.assertEqual(again.recent("general", 100), [])
        self.assertTrue(any("torn or damaged" in (e.get("log_format") or "")
                            for e in self.logged))

    def test_what_waits_is_bounded(self) -> None:
        """With no step ever run (a reactor that never gets to it), at most BEHIND_MAX_ROWS
        rows wait: the oldest are made rows on the path."""
        store = Store(self.path, call_soon=lambda f: None)
        self.addCleanup(store.close)
        count = BEHIND_MAX_ROWS * 2
        for start in range(0, count, 100):
            store.remember_lines([line(n) for n in range(start, start + 100)])
            self.assertLessEqual(store.jotter.rows, BEHIND_MAX_ROWS)
        self.assertGreaterEqual(rows_in(self.path), count - BEHIND_MAX_ROWS)

    def test_the_jot_file_is_bounded(self) -> None:
        self.patch(jotting, "JOT_FILE_BYTES", 20_000)
        store = Store(self.path, call_soon=lambda f: None)
        self.addCleanup(store.close)
        for start in range(0, 2000, 20):
            store.remember_lines([line(n) for n in range(start, start + 20)])
            self.assertLessEqual(os.path.getsize(self.path + JOT_SUFFIX), 21_000)

    def test_a_jot_file_past_its_bound_is_drained_a_step_at_a_time(self) -> None:
        """Not all its rows at once: 6000 rows behind held the reactor 50-60 ms."""
        store = Store(self.path, call_soon=lambda f: None)
        self.addCleanup(store.close)
        for start in range(0, 3 * WRITE_UP_ROWS, 100):
            store.remember_lines([line(n) for n in range(start, start + 100)])
        self.assertEqual(rows_in(self.path), 0)
        self.patch(jotting, "JOT_FILE_BYTES", 1000)
        made = []
        for n in range(3):
            store.remember_lines([line(10_000 + n)])
            made.append(rows_in(self.path))
        self.assertEqual(made, [WRITE_UP_ROWS, 2 * WRITE_UP_ROWS, 3 * WRITE_UP_ROWS])
        store.remember_lines([line(20_000)])
        self.assertFalse(store.jotter.behind)
        self.assertEqual(os.path.getsize(self.path + JOT_SUFFIX), 0)  # emptied at last

    def test_every_read_of_history_sees_lines_not_yet_rows(self) -> None:
        store = self.store()
        store.remember_lines([line(n, seq=n + 1) for n in range(3)])
        store.remember_lines([line(9, room="ops")])
        self.assertEqual(rows_in(self.path), 0)
        self.assertEqual(len(store.recent("general", 10)), 3)
        store.remember_lines([line(n, seq=n + 1) for n in range(3, 6)])
        self.assertEqual(len(store.relayable_after("bob_1", 0, ["general"], 10, 0.0)), 6)
        store.remember_lines([line(n) for n in range(6, 8)])
        self.assertEqual(store.recent_ids(2), ["id00000006", "id00000007"])
        store.remember_lines([line(8)])
        self.assertEqual(len(store.around("general", 1004.0, 10)), 9)

    def test_our_own_lines_and_their_sent_log_are_jotted_too(self) -> None:
        from p2pchat.wire import CHAT, Message, encode_message
        store = self.store()
        said = [Message(f"m{n}", CHAT, "me_1", "me", f"hi {n}", 1000.0 + n, n + 1)
                for n in range(4)]
        store.save_said([(m, encode_message(m)) for m in said])
        store.jotter.close()  # killed
        again = Store(self.path)
        self.addCleanup(again.close)
        self.assertEqual(again.last_sequence(), 4)
        self.assertEqual([m.id for m in again.load_sent(10, 1e12, 2000.0)],
                         ["m0", "m1", "m2", "m3"])
        self.assertEqual(len(again.recent("general", 10)), 4)

    def test_lines_kept_one_by_one_are_jotted_together_at_the_next_turn(self) -> None:
        store = Store(self.path, call_soon=lambda f: self.clock.callLater(FLUSH_DELAY, f),
                      next_turn=lambda f: self.clock.callLater(0, f))
        self.addCleanup(store.close)
        for n in range(3):
            store.remember(line(n))
        self.assertEqual(os.path.getsize(self.path + JOT_SUFFIX), 0)
        self.clock.advance(0)  # the next turn: one record for the three, before any ack
        self.assertEqual(len(store.jotter.behind), 1)
        self.assertEqual(store.jotter.rows, 3)
        self.clock.advance(FLUSH_DELAY)
        self.assertEqual(rows_in(self.path), 3)
