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
from bench.store import lines_in
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
        state = self.node.links["slow_1"].hand_on
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
        self.assertEqual(lines_in(store), 21)  # all but the one that can't be kept
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
        self.assertEqual(store._db.execute("pragma auto_vacuum").fetchone()[0], 0)
        store.prune(now=200.0)  # at start: compacted once, giving space back from then on
        self.assertEqual(store._db.execute("pragma auto_vacuum").fetchone()[0], 2)
        store.close()
        store = Store(self.path)
        self.assertEqual(store.high_water(), {"bob_1": 6})  # shifted once only
        self.assertFalse(store.needs_vacuum)
        store.close()

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
        # what could not be saved meanwhile was kept, and is saved now
        self.assertEqual([x.text for x in store.recent("general", 10)],
                         [f"hi {n}" for n in range(5)] + ["back"])
        store.close()

    def test_writes_kept_to_retry_are_bounded(self) -> None:
        from p2pchat.store import RETRY_MAX_WRITES

        store = Store(self.path, call_soon=lambda f: self.clock.callLater(0.05, f))
        disk = store._db = FailingDisk(store._db)
        disk.full = True
        for n in range(RETRY_MAX_WRITES + 500):
            store.remember(StoredLine(f"m{n}", "general", "bob_1", "bob", f"hi {n}", False,
                                      False, 1000.0 + n))
            if n % 1000 == 0:
                self.clock.advance(0.05)
        self.clock.advance(0.05)
        self.assertEqual(sum(map(len, store._pending.values())), RETRY_MAX_WRITES)
        disk.full = False
        store.upkeep(2000.0)
        self.assertEqual(lines_in(store), RETRY_MAX_WRITES)
        self.assertEqual(store.recent("general", 1)[0].text, f"hi {RETRY_MAX_WRITES + 499}")
        store.close()

    def test_bytes_kept_to_retry_are_bounded(self) -> None:
        from p2pchat.store import RETRY_MAX_BYTES

        store = Store(self.path, call_soon=lambda f: self.clock.callLater(0.05, f))
        disk = store._db = FailingDisk(store._db)
        disk.full = True
        size = 60_000
        for n in range(2 * RETRY_MAX_BYTES // size):
            store.remember(StoredLine(f"m{n}", "general", "bob_1", "bob", "x" * size, False,
                                      False, 1000.0 + n))
            self.clock.advance(0.05)
        kept = sum(len(row[4]) for rows in store._pending.values() for row in rows)
        self.assertLessEqual(kept, RETRY_MAX_BYTES)
        self.assertGreater(kept, RETRY_MAX_BYTES // 2)
        store.close()


class Replays(TestCase):
    """A genuine signed line of bob's, handed on again later by someone else."""

    def setUp(self) -> None:
        from p2pchat.identity import Identity

        path = self.mktemp()
        os.makedirs(path)
        self.path = os.path.join(path, "h.sqlite3")
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.bob = Identity.generate()

    def open(self) -> Node:
        self.store = Store(self.path, call_soon=lambda f: self.clock.callLater(0.05, f))
        node = Node("alice", self.clock, store=self.store)
        node.subscribe(lambda e: self.shown.append(e) if isinstance(e, events.ChatLine)
                       else None)
        self.mallory = FakeLink("mallory_1", "mallory", caps=ROGUE_CAPS)
        node.link_ready(self.mallory)
        return node

    def replay(self, node: Node, raw: bytes) -> None:
        node.message_received(self.mallory, Message(
            id=new_message_id(), type=RELAY, sender_id="mallory_1",
            metadata={"lines": [raw.decode()], "keys": {self.bob.peer_id:
                                                        self.bob.public_key_b64()}}))

    def test_a_replayed_line_is_shown_once_after_many_ids_and_after_a_restart(self) -> None:
        from p2pchat.relay import sign_line
        from p2pchat.wire import encode_message

        self.shown: list[events.ChatLine] = []
        node = self.open()
        line = Message(id="bob-line", type="chat", sender_id=self.bob.peer_id, username="bob",
                       content="the real one", timestamp=self.clock.seconds(),
                       sequence=1_700_000_000_000_123, metadata={})
        line.metadata["sig"] = sign_line(self.bob, line)
        raw = encode_message(line)[:-1]
        bob = FakeLink(self.bob.peer_id, "bob", caps=ROGUE_CAPS)
        bob.pk = self.bob.public_key_b64()
        node.link_ready(bob)
        node.message_received(bob, line, raw)
        node.link_lost(bob, "gone")
        for n in range(10_050):
            node.message_received(self.mallory, Message(
                id=f"filler{n}", type="chat", sender_id="mallory_1", username="mallory",
                content=".", sequence=n + 1))
            if n % 1000 == 0:
                self.clock.advance(0.05)
        self.clock.advance(0.05)
        self.replay(node, raw)
        self.clock.advance(0.05)
        self.store.close()
        node = self.open()  # a restart
        self.replay(node, raw)
        self.clock.advance(0.05)
        self.assertEqual([e.text for e in self.shown if e.sender_id == self.bob.peer_id],
                         ["the real one"])
        # and a later line of bob's, handed on, is shown
        later = Message(id="bob-later", type="chat", sender_id=self.bob.peer_id,
                        username="bob", content="later", timestamp=self.clock.seconds(),
                        sequence=1_700_000_000_000_200, metadata={})
        later.metadata["sig"] = sign_line(self.bob, later)
        self.replay(node, encode_message(later)[:-1])
        self.assertEqual([e.text for e in self.shown if e.sender_id == self.bob.peer_id],
                         ["the real one", "later"])
        self.store.close()


class Seen(TestCase):
    def test_ranges_merge_and_stay_bounded(self) -> None:
        from p2pchat.seen import SeenSet

        seen = SeenSet(max_ranges=3)
        self.assertTrue(seen.add("a", 5))
        self.assertFalse(seen.add("a", 5))
        for seq in (7, 6, 2**64 - 1):
            self.assertTrue(seen.add("a", seq))
        self.assertEqual(seen.ranges("a"), [(5, 7), (2**64 - 1, 2**64 - 1)])
        self.assertTrue(seen.add("a", 3))  # below the highest: a late line, shown
        self.assertTrue(seen.add("a", 10))  # a fourth range: the lowest gap (4) is filled
        self.assertEqual(seen.ranges("a"), [(3, 7), (10, 10), (2**64 - 1, 2**64 - 1)])
        self.assertIn(("a", 4), seen)
        self.assertNotIn(("a", 8), seen)
        self.assertNotIn(("b", 5), seen)

    def test_a_set_is_written_as_compact_pairs_and_read_back(self) -> None:
        from p2pchat.seen import SeenSet, _parse

        seen = SeenSet()
        for seq in (1, 2, 3, 7, 2**64 - 1):
            seen.add("a", seq)
        text = seen.dump("a")
        self.assertEqual(text, f"[[1,3],[7,7],[{2**64 - 1},{2**64 - 1}]]")
        assert text is not None
        self.assertEqual(_parse(text), ([1, 7, 2**64 - 1], [3, 7, 2**64 - 1]))

    def test_authors_out_of_memory_come_back_from_the_backing(self) -> None:
        from p2pchat.seen import SeenSet

        class Disk:
            def __init__(self) -> None:
                self.rows: dict[str, str] = {}
                self.live: dict[str, SeenSet] = {}

            def seen_text(self, author: str) -> str | None:
                return self.rows.get(author)

            def seen_changed(self, author: str, source) -> None:
                if isinstance(source, str):
                    self.rows[author] = source

        disk = Disk()
        seen = SeenSet(backing=disk, max_authors=2)
        for author in ("a", "b", "c"):
            seen.add(author, 1)
        self.assertIn("a", disk.rows)  # pushed out of memory, written
        self.assertFalse(seen.add("a", 1))


def file_bytes(path: str) -> int:
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


class Budget(TestCase):
    def setUp(self) -> None:
        folder = self.mktemp()
        os.makedirs(folder)
        self.path = os.path.join(folder, "h.sqlite3")
        self.clock = Clock()
        self.clock.advance(1_000_000)

    def flood(self, store: Store, megabytes: int, size: int = 50_000) -> None:
        """``megabytes`` of lines to hand on, as fast as the store takes them (the reactor
        commits every 50 ms; upkeep runs every 5 s)."""
        from p2pchat.wire import encode_message

        for n in range(megabytes * 1_000_000 // size):
            raw = encode_message(Message(id=f"f{n}", type="chat", sender_id="flood_1",
                                         content="x" * size, sequence=n + 1))[:-1]
            store.remember(StoredLine(f"f{n}", "general", "flood_1", "flood", "", False,
                                      False, self.clock.seconds(), n + 1, raw, "KEY"))
            if n % 20 == 0:
                self.clock.advance(0.05)
            if n % 100 == 0:
                store.upkeep(self.clock.seconds())
        self.clock.advance(0.05)

    def test_a_flood_keeps_the_file_within_its_byte_budget(self) -> None:
        from p2pchat.store import UPKEEP_AFTER_BYTES, WAL_LIMIT_BYTES

        budget = 4 * 2**20
        store = Store(self.path, call_soon=lambda f: self.clock.callLater(0.05, f),
                      max_bytes=budget)
        store.remember(StoredLine("old", "general", "bob_1", "bob", "first", False, False,
                                  self.clock.seconds()))
        biggest = 0
        for _ in range(8):
            self.flood(store, 5)
            biggest = max(biggest, os.path.getsize(self.path))
        self.assertLessEqual(biggest, budget + 2 * UPKEEP_AFTER_BYTES)
        self.assertLessEqual(file_bytes(self.path), budget + WAL_LIMIT_BYTES
                             + 2 * UPKEEP_AFTER_BYTES)
        self.assertGreater(lines_in(store), 10)  # the newest lines are kept
        self.assertEqual([x.text for x in store.recent("general", 1)], ["x" * 50_000])
        self.assertNotIn("first", [x.text for x in store.recent("general", 1000)])
        store.close()

    def test_space_is_given_back_while_running(self) -> None:
        store = Store(self.path, call_soon=lambda f: self.clock.callLater(0.05, f),
                      max_age=3600.0)
        self.flood(store, 8)
        full = os.path.getsize(self.path)
        self.clock.advance(7200)  # all of it is too old now
        for _ in range(10):  # upkeep steps, as every UPKEEP_INTERVAL
            store.upkeep(self.clock.seconds())
        self.assertEqual(lines_in(store), 0)
        self.assertLess(os.path.getsize(self.path), full / 4)
        store.close()

    def test_retention_options_are_honoured_while_running(self) -> None:
        store = Store(self.path, call_soon=lambda f: self.clock.callLater(0.05, f),
                      max_lines=50, max_age=2 * 86400.0)
        for n in range(80):
            store.remember(StoredLine(f"m{n}", "general", "bob_1", "bob", f"hi {n}", False,
                                      False, self.clock.seconds() - 3 * 86400 * (n < 10)))
        self.clock.advance(0.05)
        store.upkeep(self.clock.seconds())
        self.assertEqual(lines_in(store), 50)
        self.assertEqual(store.recent("general", 1)[0].text, "hi 79")
        self.assertNotIn("hi 5", [x.text for x in store.recent("general", 100)])
        store.close()

    def test_history_options(self) -> None:
        from p2pchat.service import Options, open_store

        options = Options()
        options.parseOptions(["--history-lines", "500", "--history-days", "2",
                              "--history-mb", "10", "--data-dir", os.path.dirname(self.path)])
        store = open_store(options["data-dir"], self.clock, options["catchup-age"],
                           options["history-lines"], options["history-days"],
                           options["history-mb"])
        self.assertEqual((store.max_lines, store.max_age, store.max_bytes),
                         (500, 2 * 86400.0, 10 * 2**20))
        self.assertTrue(store.upkeep_loop.running)
        store.close()
        self.assertFalse(store.upkeep_loop.running)
        self.assertEqual(Options().parseOptions([]) or Options()["history-mb"], "512")


class SavingRate(TestCase):
    def test_a_flooding_link_has_only_so_much_saved_but_all_shown(self) -> None:
        from p2pchat.store import SAVE_BURST, SAVE_RATE

        clock = Clock()
        clock.advance(1_000_000)
        folder = self.mktemp()
        os.makedirs(folder)
        store = Store(os.path.join(folder, "h.sqlite3"),
                      call_soon=lambda f: clock.callLater(0.05, f))
        node = Node("me", clock, store=store)
        shown = []
        node.subscribe(lambda e: shown.append(e) if isinstance(e, events.ChatLine) else None)
        flood = FakeLink("flood_1", "flood")
        node.link_ready(flood)
        size = 60_000
        count = 2 * SAVE_BURST // size  # twice the burst, in about a second
        for n in range(count):
            node.message_received(flood, Message(id=f"f{n}", type="chat", sender_id="flood_1",
                                                 username="flood", content="x" * size))
            if n % (count // 10) == 0:  # ten steps of 0.1 s: about a second in all
                clock.advance(0.1)
        clock.advance(0.1)
        self.assertEqual(len(shown), count)
        self.assertLessEqual(lines_in(store) * size, SAVE_BURST + 2 * SAVE_RATE)
        self.assertGreater(lines_in(store), 100)
        store.close()
