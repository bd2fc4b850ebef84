"""A year of history (issue 21, item 4): signed lines packed small and handed on byte for
byte, retention bounded by options whose defaults hold a year, and pruning that reads no more
than it deletes.  The figures (start-up, /history 50, bytes a line) are in ``bench.year``."""

from __future__ import annotations

import os

from twisted.trial.unittest import TestCase

from bench.store import lines_in
from p2pchat import retention
from p2pchat.identity import Identity
from p2pchat.packing import PACKED, is_packed, pack, unpack
from p2pchat.relay import check_relayed, sign_line
from p2pchat.search import Query
from p2pchat.service import Options
from p2pchat.store import Store, StoredLine
from p2pchat.wire import CHAT, Message, encode_message, printable

T0 = 1_800_000_000.0


def signed(author: Identity, n: int, text: str = "", room: str = "general",
           nick: str = "ann", when: float = T0, **meta: str) -> tuple[Message, bytes]:
    msg = Message(id=f"m{n:04d}", type=CHAT, sender_id=author.peer_id, username=nick,
                  content=text or f"line {n} about the deploy", timestamp=when + n,
                  sequence=n + 1, room_id=room, metadata=dict(meta))
    assert msg.metadata is not None
    msg.metadata["sig"] = sign_line(author, msg)
    return msg, encode_message(msg).rstrip(b"\n")


def stored(author: Identity, msg: Message, raw: bytes, nick: str = "ann") -> StoredLine:
    """As the node keeps it: with the text shown (an action's, made printable)."""
    assert msg.timestamp is not None
    action = (msg.metadata or {}).get("action")
    return StoredLine(msg.id, msg.room_id, msg.sender_id, nick, printable(action or msg.content),
                      bool(action), False, msg.timestamp, msg.sequence, raw,
                      author.public_key_b64())


class Packing(TestCase):
    def setUp(self) -> None:
        folder = self.mktemp()
        os.makedirs(folder)
        self.path = os.path.join(folder, "h.sqlite3")
        self.store = Store(self.path)
        self.addCleanup(lambda: self.store.closed or self.store.close())
        self.ann = Identity.generate()

    def raw_of(self, message_id: str) -> bytes:
        return bytes(self.store._db.execute("select raw from lines where id = ?",
                                            (message_id,)).fetchone()[0])

    def test_a_signed_line_is_packed_and_handed_on_byte_for_byte(self) -> None:
        lines = [signed(self.ann, n, "naïve “quotes” \\ and \"more\"" if n == 1 else "")
                 for n in range(3)]
        for msg, raw in lines:
            self.store.remember(stored(self.ann, msg, raw))
        self.store.flush()
        self.assertEqual(self.store.pack_step(), 3)
        for msg, raw in lines:
            kept = self.raw_of(msg.id)
            self.assertTrue(is_packed(kept))
            self.assertLess(len(kept), len(raw) // 4)
        handed = self.store.relayable_after(self.ann.peer_id, 0, ["general"], 10, 0.0)
        self.assertEqual([raw for _, raw, _ in handed], [raw for _, raw in lines])
        for _, raw, key in handed:
            self.assertEqual(key, self.ann.public_key_b64())
            self.assertEqual(check_relayed(raw, key).msg.sender_id, self.ann.peer_id)
        self.assertEqual([x.text for x in self.store.recent("general", 5)],
                         [msg.content for msg, _ in lines])
        self.store.index.catch_up()  # (as a search does first)
        hits = self.store.index._search(Query(words=("deploy",)), 10)
        self.assertEqual(len(hits), 2)
        self.assertEqual(hits[0].text, "line 2 about the deploy")
        self.assertEqual(self.store.pack_step(), 0)  # done: nothing looked at twice

    def test_packed_lines_keep_their_own_nick_and_time_text(self) -> None:
        msg, raw = signed(self.ann, 1, nick="ann")
        # shown as "ann~2" (a nick clash), said at a time the row keeps otherwise (now)
        line = StoredLine(msg.id, "general", msg.sender_id, "ann~2", msg.content, False, False,
                          T0 + 99, msg.sequence, raw, self.ann.public_key_b64())
        self.store.remember(line)
        self.store.flush()
        self.assertEqual(self.store.pack_step(), 1)
        self.assertTrue(is_packed(self.raw_of(msg.id)))
        (_, again, _), = self.store.relayable_after(self.ann.peer_id, 0, ["general"], 10, 0.0)
        self.assertEqual(again, raw)

    def test_lines_of_another_shape_stay_as_they_came(self) -> None:
        action, action_raw = signed(self.ann, 1, action="waves")
        spaced, spaced_raw = signed(self.ann, 2)
        spaced_raw = spaced_raw.replace(b'","type"', b'", "type"')  # not as we would write it
        bell, bell_raw = signed(self.ann, 3, "a bell \x07 here")  # shown otherwise than said
        lines = ((action, action_raw), (spaced, spaced_raw), (bell, bell_raw))
        for msg, raw in lines:
            self.store.remember(stored(self.ann, msg, raw))
        self.store.flush()
        self.assertEqual(self.store.pack_step(), 0)
        for msg, raw in lines:
            self.assertEqual(self.raw_of(msg.id), raw)
        handed = self.store.relayable_after(self.ann.peer_id, 0, ["general"], 10, 0.0)
        self.assertEqual([raw for _, raw, _ in handed], [raw for _, raw in lines])
        self.assertEqual([x.text for x in self.store.recent("general", 5)],
                         ["waves", spaced.content, printable(bell.content)])
        self.store.index.catch_up()  # (as a search does first)
        self.assertEqual(len(self.store.index._search(Query(words=("bell",)), 10)), 1)

    def test_pack_refuses_what_would_not_come_back(self) -> None:
        msg, raw = signed(self.ann, 1)
        assert msg.timestamp is not None
        self.assertIsNone(pack(raw + b" ", "general", msg.sender_id, "ann", msg.timestamp, 2))
        self.assertIsNone(pack(raw, "general", msg.sender_id, "ann", msg.timestamp, 3))
        self.assertIsNone(pack(b"not json", "general", msg.sender_id, "ann", 0.0, 2))
        text, packed = pack(raw, "general", msg.sender_id, "ann", msg.timestamp, 2) or ("", b"")
        self.assertEqual(packed[:1], PACKED)
        self.assertEqual(unpack(msg.id, "general", msg.sender_id, "ann", text, msg.timestamp,
                                2, packed), raw)

    def test_keys_survive_a_restart_and_an_older_file_gets_its_keys_table(self) -> None:
        msg, raw = signed(self.ann, 1)
        self.store.remember(stored(self.ann, msg, raw))
        self.store.close()
        db = self.store._db = __import__("sqlite3").connect(self.path)
        db.execute("delete from keys")
        # as a file of an older version left it: its rows named their authors' keys
        db.execute("update lines set pk = ? where raw is not null", (self.ann.public_key_b64(),))
        db.execute("pragma user_version=1")
        db.commit()
        db.close()
        self.store = Store(self.path)
        self.assertEqual(self.store.relayable_after(self.ann.peer_id, 0, ["general"], 10, 0.0),
                         [(2, raw, self.ann.public_key_b64())])
        self.store.pack_step()
        self.store.close()
        self.store = Store(self.path)
        self.assertEqual(self.store.relayable_after(self.ann.peer_id, 0, ["general"], 10, 0.0),
                         [(2, raw, self.ann.public_key_b64())])


def line(n: int, room: str = "general", when: float = T0) -> StoredLine:
    return StoredLine(f"id{n:05d}", room, "s_1", "sam", f"text {n}", False, False, when + n)


class Bounds(TestCase):
    def setUp(self) -> None:
        folder = self.mktemp()
        os.makedirs(folder)
        self.path = os.path.join(folder, "h.sqlite3")

    def test_the_line_count_is_kept_without_counting(self) -> None:
        store = Store(self.path, max_lines=50)
        self.addCleanup(store.close)
        for n in range(30):
            store.remember(line(n))
            store.remember(line(n))  # a duplicate is not saved, nor counted
        store.flush()
        self.assertEqual(store.line_count, 30)
        store.prune(now=T0 + 100, max_lines=20)
        self.assertEqual((store.line_count, lines_in(store)), (20, 20))
        store.close()
        again = Store(self.path)
        self.addCleanup(again.close)
        self.assertEqual(again.line_count, 20)

    def test_old_lines_go_in_every_conversation_even_behind_younger_ones(self) -> None:
        store = Store(self.path)
        self.addCleanup(store.close)
        store.remember(line(1, "general", when=T0))  # young, written first
        for n, room in enumerate(("general", "ops", "@a1b2c3d4e5f6a7b8"), start=2):
            store.remember(line(n, room, when=T0 - 40 * 86400))  # a catch-up of old lines
        store.flush()
        self.assertEqual(store.conversations(), ["@a1b2c3d4e5f6a7b8", "general", "ops"])
        store.prune(now=T0 + 10, max_age=30 * 86400)
        self.assertEqual([x.text for x in store.recent("general", 10)], ["text 1"])
        self.assertEqual(lines_in(store), 1)
        self.assertEqual(store.conversations(), ["general"])

    def test_a_step_while_running_deletes_a_bounded_number(self) -> None:
        store = Store(self.path, max_lines=10)
        self.addCleanup(store.close)
        step = retention.PRUNE_STEP
        count = 3 * step + 10
        db = store._db
        with db:
            db.execute("begin")
            db.executemany("insert into lines values (?,?,?,?,?,0,0,?,null,null,null)",
                           [(f"x{n}", "general", "s_1", "sam", f"t {n}",
                             T0 - 400 * 86400 * (n < step + 5)) for n in range(count)])
            store.index.add_new(0)  # as a commit does
        store.line_count = count
        store.upkeep(T0)
        # at most PRUNE_STEP too old, then at most PRUNE_STEP past the count
        self.assertEqual(lines_in(store), count - 2 * step)
        self.assertEqual(store.line_count, lines_in(store))
        store.upkeep(T0)
        self.assertEqual(lines_in(store), 10)
        store.upkeep(T0)
        self.assertEqual(lines_in(store), 10)
        self.assertEqual(store.recent("general", 1)[0].text, f"t {count - 1}")

    def test_handing_on_stops_at_the_sent_age_while_running(self) -> None:
        ann = Identity.generate()
        store = Store(self.path)
        self.addCleanup(store.close)
        msg, raw = signed(ann, 1, when=T0)
        store.remember(stored(ann, msg, raw))
        store.prune(now=T0, sent_age=86400)
        self.assertEqual(len(store.relayable_after(ann.peer_id, 0, ["general"], 10, 0.0)), 1)
        store.upkeep(T0 + 2 * 86400)
        self.assertEqual(store.relayable_after(ann.peer_id, 0, ["general"], 10, 0.0), [])
        self.assertEqual(lines_in(store), 1)  # still in the history


class Defaults(TestCase):
    def test_a_year_by_default_and_the_options_change_it(self) -> None:
        options = Options()
        options.parseOptions(["--data-dir", self.mktemp()])
        self.assertEqual((options["history-lines"], options["history-days"],
                          options["history-mb"], options["catchup-lines"]),
                         (1_000_000, 365.0, 512.0, 50_000))
        options = Options()
        options.parseOptions(["--data-dir", self.mktemp(), "--history-lines", "2000000",
                              "--history-days", "730", "--catchup-lines", "100000"])
        self.assertEqual((options["history-lines"], options["history-days"],
                          options["catchup-lines"]), (2_000_000, 730.0, 100_000))
        # a year of lines at the file's cost (bench.year: under 400 bytes a line) fits
        self.assertGreaterEqual(retention.HISTORY_MAX_BYTES, retention.HISTORY_MAX_LINES * 400)
