"""Our own lines' sent log kept in their history rows (saidrows.py): one row a line said, read
back after a restart as the sent log was, bounded as it was, and moved over from the ``sent``
table of an older file (and from an older run's jot records)."""

from __future__ import annotations

import base64
import os
import sqlite3

from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from p2pchat.jotting import JOT_SUFFIX, Jotter
from p2pchat.node import Node
from p2pchat.saidrows import OLD_SENT
from p2pchat.search import Query, parse_query
from p2pchat.store import Store, StoredLine
from p2pchat.wire import CHAT, PRIVATE, Message, encode_message
from tests import fakes

DAY = 24 * 3600.0
#: a signature's shape (64 bytes), so that a row of ours would pack if it were let
SIG = base64.b64encode(bytes(64)).decode()


def said(n: int, when: float = 1000.0, me: str = "me_1") -> Message:
    return Message(f"m{n}", CHAT, me, "me", f"hi {n}", when + n, n + 1, "general",
                   {"sig": SIG})


def count(path: str, sql: str = "select count(*) from lines") -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute(sql).fetchone()[0])
    finally:
        db.close()


def tables(path: str) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {r[0] for r in db.execute("select name from sqlite_master where type = 'table'")}
    finally:
        db.close()


def older_file(path: str, sent: list[Message], history: list[Message]) -> None:
    """A file as the last version left it (layout 2): the sent log in a ``sent`` table, our
    lines in ``lines`` without their bytes."""
    store = Store(path)
    for msg in history:
        store.remember(StoredLine(msg.id, msg.room_id, msg.sender_id, msg.username,
                                  msg.content, False, True, msg.timestamp or 0.0))
    store.flush()
    store.index.catch_up()  # all indexed for /search
    store.close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("create table sent (seq integer primary key, ts real not null, "
               "line blob not null)")
    db.executemany("insert into sent values (?, ?, ?)",
                   [(m.sequence, m.timestamp, encode_message(m)) for m in sent])
    db.execute("delete from settings where key = 'own_id'")
    db.execute("pragma user_version=2")
    db.close()


class SentLogInRows(TestCase):
    def setUp(self) -> None:
        self.path = os.path.join(self.mktemp() + ".sqlite3")
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)

    def store(self, **kw: object) -> Store:
        store = Store(self.path, **kw)  # type: ignore[arg-type]
        self.addCleanup(lambda: store.closed or store.close())
        return store

    def test_a_line_said_is_one_row_and_one_jotted_write(self) -> None:
        store = self.store(call_soon=lambda f: None)
        store.save_said([(m, encode_message(m)) for m in map(said, range(5))])
        self.assertEqual(store.jotter.rows, 5)  # not 10: no second row for the sent log
        store.flush()
        self.assertEqual(count(self.path), 5)
        self.assertNotIn("sent", tables(self.path))
        self.assertEqual(store.load_sent(10, DAY, 2000.0), [said(n) for n in range(5)])
        self.assertEqual([x.text for x in store.recent("general", 10)],
                         [f"hi {n}" for n in range(5)])

    def test_a_line_said_alone_and_then_remembered_is_one_row_kept_to_resend(self) -> None:
        clock = Clock()
        clock.advance(1000)
        store = self.store(call_soon=lambda f: None)
        node = Node("me", clock, store=store)
        msg = fakes.said(node.say("hello"))
        self.assertEqual(store.jotter.rows, 1)  # its remember added no second row
        store.flush()
        self.assertEqual(count(self.path), 1)
        self.assertEqual(count(self.path, "select count(*) from lines where raw is not null"),
                         1)
        again = Node("me", clock, store=self.store())  # a restart: resent from the log
        self.assertEqual([m.id for m, _ in again.outbox.log.since(0)[0]], [msg.id])

    def test_the_row_of_a_line_said_keeps_its_conversation_and_its_action(self) -> None:
        store = self.store()
        private = Message("p1", PRIVATE, "me_1", "me", "* me waves", 1000.0, 3, "",
                          {"to": "bob_1", "action": "waves"})
        store.save_sent(private)
        store.remember(StoredLine("p1", "@bob_1", "me_1", "me", "waves", True, True, 1000.0))
        self.assertEqual(count(self.path), 1)
        [line] = store.recent("@bob_1", 5)
        self.assertEqual((line.text, line.action, line.own), ("waves", True, True))
        self.assertEqual([m.id for m in store.load_sent(10, DAY, 2000.0)], ["p1"])

    def test_a_restart_reloads_only_what_the_sent_log_holds(self) -> None:
        store = self.store()
        store.save_said([(m, encode_message(m)) for m in map(said, range(6))])
        store.close()
        again = self.store()
        self.assertEqual([m.id for m in again.load_sent(3, DAY, 2000.0)], ["m3", "m4", "m5"])
        self.assertEqual([m.id for m in again.load_sent(10, 998.5, 2000.0)],
                         ["m2", "m3", "m4", "m5"])  # said at 1001 or earlier: too old

    def test_lines_past_the_sent_log_age_lose_their_bytes_not_their_row(self) -> None:
        store = self.store()
        store.save_said([(m, encode_message(m)) for m in map(said, range(4))])
        store.prune(now=1001.5 + DAY, sent_age=DAY)  # m0 and m1 too old to resend
        self.assertEqual([m.id for m in store.load_sent(10, 1e12, 1e12)], ["m2", "m3"])
        self.assertEqual(count(self.path, "select count(*) from lines where raw is null"), 2)
        self.assertEqual(count(self.path), 4)  # still in the history
        store.upkeep(now=1003.5 + DAY)  # and while running, in steps
        self.assertEqual(store.load_sent(10, 1e12, 1e12), [])
        self.assertEqual(count(self.path, "select count(*) from lines where raw is null"), 4)

    def test_the_history_limits_never_take_a_line_still_in_the_sent_log(self) -> None:
        store = self.store()
        store.save_said([(m, encode_message(m)) for m in map(said, range(4))])
        for n in range(4):
            store.remember(StoredLine(f"h{n}", "general", "bob_1", "bob", "yo", False, False,
                                      900.0 + n))
        # a history of 2 lines kept 10 s: the sent log (a day) still resends all 4
        store.prune(now=1100.0, max_lines=2, max_age=10.0, sent_age=DAY)
        self.assertEqual([m.id for m in store.load_sent(10, DAY, 1100.0)],
                         ["m0", "m1", "m2", "m3"])
        self.assertEqual(count(self.path), 4)  # bob's went
        store.max_lines, store.max_age = 2, 10.0
        store.upkeep(now=1100.0)
        store.max_bytes = 0  # the byte budget neither
        store._keep_to_budget()
        self.assertEqual(len(store.load_sent(10, DAY, 1100.0)), 4)
        store.prune(now=1100.0 + DAY, max_lines=2, max_age=10.0, sent_age=DAY)
        self.assertEqual(count(self.path), 0)  # out of the sent log: the limits hold again

    def test_our_own_rows_are_neither_handed_on_nor_packed(self) -> None:
        """(Their bytes end in the newline written, so they never unpack the same.)"""
        store = self.store()
        store.save_said([(m, encode_message(m)) for m in map(said, range(3))])
        store._keys["me_1"] = "KEY"  # even if our key were known as an author's
        self.assertEqual(store.relayable_after("me_1", 0, ["general"], 10, 0.0), [])
        store.flush()
        store.pack_step()
        self.assertEqual(count(self.path, "select count(*) from lines where substr(raw, 1, 1) = x'7b'"), 3)
        self.assertEqual([m.id for m in store.load_sent(10, DAY, 2000.0)], ["m0", "m1", "m2"])

    def test_an_older_files_sent_table_moves_into_its_rows(self) -> None:
        kept = [said(n) for n in range(3)]
        older_file(self.path, sent=kept, history=kept[1:])  # m0 pruned from the history
        store = self.store()
        self.assertNotIn("sent", tables(self.path))
        self.assertEqual(store.load_sent(10, DAY, 2000.0), kept)
        self.assertEqual(count(self.path), 3)  # one row each, m0's back
        self.assertEqual(store.line_count, 3)
        self.assertEqual(count(self.path, "pragma user_version"), 3)
        store.index.in_thread = lambda f, *a: succeed(f(*a))
        hits = self.successResultOf(store.search(_query("hi"), 10))
        self.assertEqual(len(hits), 3)  # the row made is indexed for /search
        store.prune(now=1e9, max_age=10.0, sent_age=10.0)  # and leaves the index whole
        self.assertEqual(count(self.path), 0)
        self.assertEqual(self.successResultOf(store.search(_query("hi"), 10)), [])

    def test_an_older_runs_jotted_sent_log_is_read_too(self) -> None:
        older_file(self.path, sent=[said(0)], history=[said(0)])
        jot = Jotter(self.path + JOT_SUFFIX, ("a", "b", OLD_SENT))
        jot.open()
        msg = said(1)
        jot.jot(({OLD_SENT: [(msg.sequence, msg.timestamp, encode_message(msg))]}, {},
                 {"last_sequence": "2"}))
        jot.close()  # killed before its rows were made
        store = self.store()
        self.assertEqual(store.load_sent(10, DAY, 2000.0), [said(0), said(1)])
        self.assertEqual(store.last_sequence(), 2)


def _query(text: str) -> Query:
    query = parse_query(text)
    assert isinstance(query, Query), query
    return query
