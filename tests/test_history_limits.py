"""History, catch-up and dedup under abuse (issue 15): relayed catch-up that a peer which never
reads can't turn into our memory, sync floods, a history that stays within its budget while
running, replays of genuine lines, sequences of the whole uint64 range, and saving errors shown
in the face."""

from __future__ import annotations

import json
import os
import sqlite3

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from p2pchat import events
from p2pchat.catchup import sync_metadata
from p2pchat.node import Node
from p2pchat.relay import CAP_RELAY, RELAY, RELAY_BATCH_BYTES, SYNC_BURST, SYNC_WINDOW
from p2pchat.store import Store, StoredLine
from p2pchat.wire import CAP_CATCHUP, CAP_OURS, CAP_ROOMS, SYNC, Message, new_message_id

from tests.fakes import FakeLink

#: What Twisted's TCP transport buffers before it pauses its producer (FileDescriptor).
TRANSPORT_BUFFER = 64 * 1024
ROGUE_CAPS = (CAP_OURS, CAP_CATCHUP, CAP_ROOMS, CAP_RELAY)


class NeverReads(FakeLink):
    """A link whose peer reads nothing: bytes pile up in its transport, which says it is
    backed up past TRANSPORT_BUFFER (as Twisted's does), and never drains."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.buffered = 0
        self.relay_lines = 0
        self.handed: list[str] = []

    @property
    def backed_up(self) -> bool:  # type: ignore[override]
        return self.buffered > TRANSPORT_BUFFER

    @backed_up.setter
    def backed_up(self, value: bool) -> None:
        pass

    def send(self, msg: Message) -> None:
        from p2pchat.wire import encode_message

        self.send_bytes(encode_message(msg))

    def send_bytes(self, data: bytes) -> None:
        self.buffered += len(data)
        if b'"type":"relay"' in data:
            self.relay_lines += 1
            self.handed.extend(json.loads(line)["sender_id"] for line in
                               json.loads(data)["metadata"]["lines"])

    def relay_lines_of(self, author: str) -> int:
        return self.handed.count(author)


class Reads(NeverReads):
    """A link whose peer reads everything at once."""

    @property
    def backed_up(self) -> bool:  # type: ignore[override]
        return False

    @backed_up.setter
    def backed_up(self, value: bool) -> None:
        pass


def plant(store: Store, authors: int, lines: int, size: int, when: float) -> list[str]:
    """Signed-looking lines of absent authors, kept to hand on (the sender does not check
    signatures: the receiver does)."""
    names = [f"ghost{a}_1" for a in range(authors)]
    for author in names:
        for seq in range(1, lines + 1):
            raw = json.dumps({"id": new_message_id(), "type": "chat", "sender_id": author,
                              "content": "x" * size, "sequence": seq}).encode()
            store.remember(StoredLine(new_message_id(), "general", author, author, "", False,
                                      False, when, seq, raw, "KEY"))
    store.flush()
    return names


def sync(sender: str, others: dict[str, int]) -> Message:
    return Message(id=new_message_id(), type=SYNC, sender_id=sender,
                   metadata=sync_metadata(0, None, others))


class RelayedCatchUp(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        path = self.mktemp()
        os.makedirs(path)
        self.store = Store(os.path.join(path, "h.sqlite3"))
        self.node = Node("victim", self.clock, store=self.store)

    def tearDown(self) -> None:
        self.store.close()

    def test_a_peer_that_never_reads_cannot_fill_our_memory(self) -> None:
        authors = plant(self.store, authors=20, lines=100, size=2000, when=self.clock.seconds())
        rogue = NeverReads("rogue_1", "rogue", caps=ROGUE_CAPS)
        self.node.link_ready(rogue)
        for _ in range(200):
            self.node.message_received(rogue, sync("rogue_1", {a: 0 for a in authors}))
            for _ in range(5):
                self.clock.advance(0)
            self.clock.advance(1)
        # Without the bound: all 2,000 lines (4 MB) and more per answered sync.
        self.assertGreater(rogue.relay_lines, 0)
        self.assertLessEqual(rogue.buffered, TRANSPORT_BUFFER + 2 * RELAY_BATCH_BYTES)

    def test_handing_on_resumes_when_the_peer_reads_and_a_new_sync_replaces_the_old(self
                                                                                  ) -> None:
        authors = plant(self.store, authors=3, lines=100, size=2000, when=self.clock.seconds())
        slow = NeverReads("slow_1", "slow", caps=ROGUE_CAPS)
        self.node.link_ready(slow)
        self.node.message_received(slow, sync("slow_1", {a: 0 for a in authors}))
        self.assertLess(slow.relay_lines, 20)
        state = self.node._hand_on[slow]
        self.assertEqual(set(state.pending), set(authors))
        # a new sync asks about one author: what was pending for the others is dropped
        self.node.message_received(slow, sync("slow_1", {authors[2]: 50}))
        self.assertEqual(list(state.pending), [authors[2]])
        for _ in range(100):  # it reads everything, now and then
            slow.buffered = 0
            self.node.link_writable(slow)
            self.clock.advance(0)
        self.assertEqual(state.pending, {})
        self.assertEqual(slow.relay_lines_of(authors[2]), 50)

    def test_sync_lines_are_rate_limited(self) -> None:
        authors = plant(self.store, authors=2, lines=5, size=100, when=self.clock.seconds())
        rogue = Reads("rogue_1", "rogue", caps=ROGUE_CAPS)
        self.node.link_ready(rogue)
        for _ in range(50):
            self.node.message_received(rogue, sync("rogue_1", {a: 0 for a in authors}))
        per_sync = len(authors)  # one relay line per author (its 5 small lines)
        self.assertEqual(rogue.relay_lines, SYNC_BURST * per_sync)
        self.clock.advance(SYNC_WINDOW)
        self.node.message_received(rogue, sync("rogue_1", {a: 0 for a in authors}))
        self.assertEqual(rogue.relay_lines, (SYNC_BURST + 1) * per_sync)


class FailingDisk:
    """The store's connection, whose writes fail while ``full`` (as on a full disk)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.full = False

    def execute(self, sql: str, *args):
        if self.full and sql.lstrip().lower().startswith(("insert", "update", "delete", "begin")):
            raise sqlite3.OperationalError("database or disk is full")
        return self.db.execute(sql, *args)

    def executemany(self, sql: str, rows):
        if self.full:
            raise sqlite3.OperationalError("database or disk is full")
        return self.db.executemany(sql, rows)

    def __enter__(self):
        return self.db.__enter__()

    def __exit__(self, *exc):
        return self.db.__exit__(*exc)

    def __getattr__(self, name: str):
        return getattr(self.db, name)


class Saving(TestCase):
    def setUp(self) -> None:
        path = self.mktemp()
        os.makedirs(path)
        self.path = os.path.join(path, "h.sqlite3")
        self.clock = Clock()
        self.clock.advance(1_000_000)

    def test_sequences_of_the_whole_uint64_range_fit_and_a_bad_row_fails_alone(self) -> None:
        store = Store(self.path, call_soon=lambda f: self.clock.callLater(0.05, f))
        top = 2**64 - 1
        for n in range(20):
            store.remember(StoredLine(f"h{n}", "general", "bob_1", "bob", f"hi {n}", False,
                                      False, 1000.0 + n))
        store.remember(StoredLine("rogue", "general", "r_1", "r", "", False, False, 1000.0,
                                  top, b'{"content":"x"}', "KEY"))
        store.set_high_water("r_1", top)
        store.set_high_water("bob_1", 20)
        store.remember(StoredLine("bad", "general", "r_1", "r", "x", False, False, 1000.0,
                                  0, None, object()))  # type: ignore[arg-type]
        self.clock.advance(0.05)
        self.assertEqual(store.count(), 21)  # all but the one that can't be kept
        self.assertEqual(store.high_water(), {"r_1": top, "bob_1": 20})
        self.assertEqual(store.relayable_after("r_1", top - 1, ["general"], 5, 0.0),
                         [(top, b'{"content":"x"}', "KEY")])
        self.assertEqual(store.relayable_after("r_1", top, ["general"], 5, 0.0), [])
        store.close()

    def test_a_file_of_the_old_layout_gets_its_sequences_shifted(self) -> None:
        db = sqlite3.connect(self.path)
        db.executescript("""
            create table lines (id text primary key, room text not null,
                sender_id text not null, nick text not null, text text not null,
                action integer not null, own integer not null, ts real not null, seq integer,
                raw blob, pk text);
            create table high_water (sender_id text primary key, seq integer not null);
            insert into high_water values ('bob_1', 5);
            insert into lines values ('m1', 'general', 'bob_1', 'bob', 'hi', 0, 0, 100.0, 7,
                                      x'7b7d', 'KEY');
        """)
        db.commit()
        db.close()
        store = Store(self.path)
        self.assertEqual(store.high_water(), {"bob_1": 5})
        self.assertEqual([s for s, _, _ in store.relayable_after("bob_1", 6, ["general"], 5, 0)],
                         [7])
        store.set_high_water("bob_1", 6)
        self.assertEqual(store.high_water(), {"bob_1": 6})
        store.close()
        self.assertEqual(Store(self.path).high_water(), {"bob_1": 6})  # shifted once only

    def test_saving_errors_are_shown_once_and_their_end_too(self) -> None:
        store = Store(self.path, call_soon=lambda f: self.clock.callLater(0.05, f))
        node = Node("me", self.clock, store=store)
        shown: list[events.Notice] = []
        node.subscribe(lambda e: shown.append(e) if isinstance(e, events.Notice) else None)
        disk = store._db = FailingDisk(store._db)
        disk.full = True
        bob = FakeLink("bob_1", "bob")
        node.link_ready(bob)
        for n in range(5):
            node.message_received(bob, Message(id=f"b{n}", type="chat", sender_id="bob_1",
                                               username="bob", content=f"hi {n}"))
            self.clock.advance(0.05)
        errors = [e for e in shown if "history" in e.text]
        self.assertEqual([e.error for e in errors], [True])
        self.assertIn("disk is full", errors[0].text)
        disk.full = False
        node.message_received(bob, Message(id="b9", type="chat", sender_id="bob_1",
                                           username="bob", content="back"))
        self.clock.advance(0.05)
        self.clock.advance(0.05)
        errors = [e for e in shown if "history" in e.text]
        self.assertEqual([e.error for e in errors], [True, False])
        self.assertIn("saving lines again", errors[1].text)
        store.close()
