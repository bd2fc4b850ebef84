"""History on disk: what is kept, read back, pruned, and that a kill never loses a committed
line nor corrupts the file."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from p2pchat.node import Node
from bench.store import lines_in
from p2pchat.store import Store, StoredLine
from p2pchat.wire import Message
from tests import fakes
from tests.support import ROOT, child_env


def handed(store: Store, *args) -> list[tuple[bytes, str]]:
    """(raw line, author key) of the lines ``relayable_after`` gives."""
    return [(raw, pk) for _, raw, pk in store.relayable_after(*args)]


def line(n: int, room: str = "general", when: float = 1000.0) -> StoredLine:
    return StoredLine(f"id{n}", room, "s_1", "sam", f"text {n}", False, False, when + n)


class Keeping(TestCase):
    def setUp(self) -> None:
        self.path = os.path.join(self.mktemp() + ".sqlite3")
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self.store = Store(self.path)

    def tearDown(self) -> None:
        self.store.close()

    def test_lines_by_room_in_order_without_duplicates(self) -> None:
        for n in range(5):
            self.store.remember(line(n))
        self.store.remember(line(2))  # again: ignored
        self.store.remember(line(9, room="ops"))
        self.assertEqual([x.text for x in self.store.recent("general", 3)],
                         ["text 2", "text 3", "text 4"])
        self.assertEqual([x.id for x in self.store.recent("ops", 10)], ["id9"])
        self.assertEqual(self.store.recent_ids(2), ["id4", "id9"])

    def test_high_water_rooms_and_sent_lines_survive_a_reopen(self) -> None:
        self.store.set_high_water("p_1", 5)
        self.store.set_high_water("p_1", 3)  # never goes back
        self.store.set_rooms(["general", "ops"])
        msg = Message(id="m1", type="chat", sender_id="me", content="hi", sequence=7,
                      timestamp=100.0, room_id="ops")
        self.store.save_sent(msg)
        self.store.close()
        self.store = Store(self.path)
        self.assertEqual(self.store.high_water(), {"p_1": 5})
        self.assertEqual(self.store.rooms(), ["general", "ops"])
        self.assertEqual(self.store.load_sent(10, 3600, now=200.0), [msg])
        self.assertEqual(self.store.load_sent(10, 50, now=200.0), [])  # too old to resend

    def test_prune(self) -> None:
        for n in range(10):
            self.store.remember(line(n, when=0.0))
        self.store.prune(now=5.0, max_lines=4, max_age=100.0)
        self.assertEqual(lines_in(self.store), 4)
        self.store.prune(now=1000.0, max_lines=100, max_age=10.0)
        self.assertEqual(lines_in(self.store), 0)

    def test_batched_writes_commit_once_per_flush(self) -> None:
        clock = Clock()
        calls = []
        store = Store(self.path + "2", call_soon=lambda f: calls.append(clock.callLater(0.05, f)))
        for n in range(100):
            store.remember(line(n))
        self.assertEqual(len(calls), 1)
        other = sqlite3.connect(self.path + "2")
        self.assertEqual(other.execute("select count(*) from lines").fetchone()[0], 0)
        clock.advance(0.05)
        self.assertEqual(other.execute("select count(*) from lines").fetchone()[0], 100)
        other.close()
        store.close()

    def test_a_burst_writes_each_high_water_and_setting_once(self) -> None:
        clock = Clock()
        store = Store(self.path + "3", call_soon=lambda f: clock.callLater(0.05, f))
        statements = []
        store._db.set_trace_callback(statements.append)
        for seq in (3, 9, 5):
            store.set_high_water("p_1", seq)
        store.set_high_water("p_2", 1)
        store.set_rooms(["general"])
        store.set_rooms(["general", "ops"])
        clock.advance(0.05)
        store._db.set_trace_callback(None)
        self.assertEqual(sum("high_water" in s for s in statements), 2)  # one row per sender
        self.assertEqual(sum("settings" in s for s in statements), 1)
        self.assertEqual(store.high_water(), {"p_1": 9, "p_2": 1})
        self.assertEqual(store.rooms(), ["general", "ops"])
        store.close()

    def test_lines_to_hand_on_are_moved_from_a_file_of_an_older_version(self) -> None:
        self.store.close()
        old = self.path + "4"
        db = sqlite3.connect(old)
        db.executescript("""
            create table lines (id text primary key, room text not null, sender_id text not null,
                nick text not null, text text not null, action integer not null,
                own integer not null, ts real not null);
            create index lines_by_room on lines (room, ts);
            create table relayable (id text primary key, sender_id text not null,
                seq integer not null, room text not null, ts real not null, raw blob not null,
                pk text not null);
            insert into lines values ('m1', 'general', 'a_1', 'ann', 'hi', 0, 0, 100.0);
            insert into lines values ('m2', 'general', 'a_1', 'ann', 'yo', 0, 0, 101.0);
            insert into relayable values ('m1', 'a_1', 7, 'general', 100.0, x'7b7d', 'KEY');
        """)
        db.commit()
        db.close()
        self.store = Store(old)
        self.assertEqual(handed(self.store, "a_1", 0, ["general"], 10, 0.0),
                         [(b"{}", "KEY")])
        self.assertEqual(self.store.relayable_after("a_1", 6, ["general"], 10, 0.0),
                         [(7, b"{}", "KEY")])  # its sequence moved, then shifted (15.7)
        self.assertEqual(self.store.relayable_after("a_1", 7, ["general"], 10, 0.0), [])
        self.assertEqual([x.text for x in self.store.recent("general", 5)], ["hi", "yo"])
        tables = {r[0] for r in self.store._db.execute(
            "select name from sqlite_master where type = 'table'")}
        self.assertNotIn("relayable", tables)

    def test_a_line_to_hand_on_is_one_row_and_forgotten_for_handing_on_after_a_day(self) -> None:
        self.store.remember(StoredLine("m1", "general", "a_1", "ann", "hi", False, False, 100.0,
                                       7, b"{raw}", "KEY"))
        self.store.remember(StoredLine("m2", "ops", "a_1", "ann", "x", False, False, 101.0,
                                       8, b"{raw2}", "KEY"))
        self.store.remember(line(3))  # not to hand on
        self.assertEqual(lines_in(self.store), 3)
        self.assertEqual(handed(self.store, "a_1", 0, ["general", "ops"], 10, 0.0),
                         [(b"{raw}", "KEY"), (b"{raw2}", "KEY")])
        self.assertEqual(handed(self.store, "a_1", 7, ["general"], 10, 0.0), [])
        self.store.prune(now=100.5 + 24 * 3600, sent_age=24 * 3600)
        self.assertEqual(handed(self.store, "a_1", 0, ["general", "ops"], 10, 0.0),
                         [(b"{raw2}", "KEY")])
        self.assertEqual(lines_in(self.store), 3)  # still in the history

    def test_a_row_to_hand_on_keeps_no_copy_of_its_authors_key(self) -> None:
        """The key is in ``keys`` once per author (a row had 44 bytes of it, each written
        and checkpointed); the lines are still handed on with it, after a reopen too, and a
        line without a key is still not handed on."""
        self.store.remember_rows([
            ("m1", "general", "a_1", "ann", "hi", False, False, 100.0, 7, b"{raw}", "KEY"),
            ("m2", "general", "a_1", "ann", "yo", False, False, 101.0, 8, b"{raw2}", "KEY"),
            ("m3", "general", "b_1", "bob", "no", False, False, 102.0, 9, b"{raw3}", "")])
        self.store.flush()
        self.assertEqual(self.store._db.execute("select id, pk from lines order by rowid"
                                                ).fetchall(),
                         [("m1", ""), ("m2", ""), ("m3", None)])
        self.store.close()
        self.store = Store(self.path)
        self.assertEqual(handed(self.store, "a_1", 0, ["general"], 10, 0.0),
                         [(b"{raw}", "KEY"), (b"{raw2}", "KEY")])
        self.assertEqual(handed(self.store, "b_1", 0, ["general"], 10, 0.0), [])

    def test_a_row_is_bound_as_ints_not_bools(self) -> None:
        """A bool costs sqlite3 its adapters' lookup (~0.2 us a value, two a row): a line's
        action and own flags are queued (and jotted) as ints, and read back as bools."""
        self.store.close()
        self.store = Store(self.path, call_soon=lambda f: None)  # rows made at flush
        self.store.remember_rows([
            ("m1", "general", "a_1", "ann", "hi", True, False, 100.0, 7, b"{raw}", "KEY")])
        self.store.remember(line(2))
        queued = [row for writes, _, _ in self.store.jotter.behind
                  for rows in writes[0].values() for row in rows if len(row) == 11]
        self.assertEqual([(type(row[5]), type(row[6])) for row in queued], [(int, int)] * 2)
        self.assertEqual([(x.action, x.own) for x in self.store.recent("general", 5)],
                         [(True, False), (False, False)])

    def test_sequences_continue_above_the_last_run_even_if_the_clock_went_back(self) -> None:
        clock = Clock()
        clock.advance(2000)
        first = Node("me", clock, store=self.store)
        said = fakes.said(first.say("hello"))
        clock = Clock()
        clock.advance(1000)  # the clock went back between runs
        again = Node("me", clock, store=self.store)
        self.assertGreater(fakes.said(again.say("again")).sequence, said.sequence)

    def test_a_restarted_node_knows_what_it_had(self) -> None:
        clock = Clock()
        clock.advance(1000)
        self.store.set_high_water("bob_1", 42)
        self.store.remember(line(1))
        node = Node("me", clock, store=self.store)
        self.assertEqual(node.room.high_water["bob_1"], 42)
        seen = Message(id="id1", type="chat", sender_id="s_1")
        self.assertFalse(node.room.accept(seen))  # a duplicate: seen already
        self.assertEqual([x.text for x in node.history("general")], ["text 1"])


WRITER = textwrap.dedent("""
    import sys
    from p2pchat.store import Store, StoredLine
    store = Store(sys.argv[1])          # no batching: every write commits at once
    start = int(sys.argv[2])
    for n in range(start, start + 200000):
        store.remember(StoredLine(f"id{n}", "general", "s", "sam", "x" * 200, False, False, n))
        print(n, flush=True)            # n is committed
""")


class KillAtAnyMoment(TestCase):
    def test_no_committed_line_lost_and_no_corruption(self) -> None:
        path = os.path.abspath(self.mktemp() + ".sqlite3")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        committed: list[int] = []
        rng = random.Random(11)
        start = 0
        for _ in range(6):
            child = subprocess.Popen([sys.executable, "-c", WRITER, path, str(start)],
                                     stdout=subprocess.PIPE, env=child_env(), cwd=str(ROOT))
            time.sleep(rng.uniform(0.3, 0.8))
            child.send_signal(signal.SIGKILL)
            out, _ = child.communicate(timeout=10)
            numbers = [int(x) for x in out.split()]
            committed.extend(numbers)
            start = (numbers[-1] + 1) if numbers else start + 200000
        self.assertGreater(len(committed), 100)
        db = sqlite3.connect(path)
        self.assertEqual(db.execute("pragma integrity_check").fetchone()[0], "ok")
        kept = {int(r[0][2:]) for r in db.execute("select id from lines")}
        db.close()
        self.assertEqual(set(committed) - kept, set())
