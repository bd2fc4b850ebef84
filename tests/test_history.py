"""history.py: the in-memory History (a run without a data dir) and the node using it the
way it uses the SQLite one."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from p2pchat.history import MemoryHistory
from p2pchat.interfaces import StoredLine
from p2pchat.node import Node

from tests.test_history_limits import ROGUE_CAPS, Reads, plant, sync


def line(n: int, room: str = "general", raw: bytes | None = None, seq: int = 0,
         sender: str = "s_1") -> StoredLine:
    return StoredLine(f"id{n}", room, sender, "sam", f"text {n}", False, False, 1000.0 + n,
                      seq, raw, "KEY" if raw else "")


class Memory(TestCase):
    def test_recent_is_per_conversation_oldest_first(self) -> None:
        history = MemoryHistory()
        for n in range(6):
            history.remember(line(n, room="ops" if n % 2 else "general"))
        self.assertEqual([x.id for x in history.recent("ops", 2)], ["id3", "id5"])
        self.assertEqual([x.id for x in history.recent("general", 10)], ["id0", "id2", "id4"])
        self.assertEqual(history.recent_ids(2), ["id4", "id5"])

    def test_lines_and_bytes_to_hand_on_are_bounded(self) -> None:
        history = MemoryHistory(max_lines=5, max_relay_bytes=250)
        for n in range(10):
            history.remember(line(n))
        self.assertEqual([x.id for x in history.lines], [f"id{n}" for n in range(5, 10)])
        for n in range(10, 13):
            history.remember(line(n, raw=b"x" * 100, seq=n))
        self.assertEqual(sum(len(x.raw or b"") for x in history.lines), 200)
        self.assertEqual([x.id for x in history.lines], ["id11", "id12"])  # oldest first

    def test_relayable_lines_of_one_author_after_a_sequence(self) -> None:
        history = MemoryHistory()
        for n in range(1, 6):
            history.remember(line(n, raw=b"r%d" % n, seq=n, sender="a_1"))
        history.remember(line(6, raw=b"other", seq=9, sender="b_1"))
        history.remember(line(7, room="ops", raw=b"ops", seq=7, sender="a_1"))
        self.assertEqual(history.relayable_after("a_1", 2, ["general"], 2, 0.0),
                         [(3, b"r3", "KEY"), (4, b"r4", "KEY")])
        self.assertEqual(history.relayable_after("a_1", 2, ["general"], 9, 1004.0),
                         [(4, b"r4", "KEY"), (5, b"r5", "KEY")])
        self.assertEqual([seq for seq, _, _ in
                          history.relayable_after("a_1", 0, ["general", "ops"], 9, 0.0)],
                         [1, 2, 3, 4, 5, 7])


class NodeWithoutStore(TestCase):
    def test_lines_of_absent_authors_are_handed_on_without_a_data_dir(self) -> None:
        clock = Clock()
        clock.advance(1_000_000)
        node = Node("keeper", clock)
        self.assertIsInstance(node.store, MemoryHistory)
        authors = plant(node.store, authors=2, lines=5, size=10,  # type: ignore[arg-type]
                        when=clock.seconds())
        peer = Reads("late_1", "late", caps=ROGUE_CAPS)
        self.assertTrue(node.link_ready(peer))
        node.message_received(peer, sync("late_1", {authors[0]: 2, authors[1]: 0}))
        clock.advance(0)
        self.assertEqual((peer.relay_lines_of(authors[0]), peer.relay_lines_of(authors[1])),
                         (3, 5))

    def test_own_and_heard_lines_are_in_history(self) -> None:
        node = Node("me", Clock(), peer_id="me_1")
        node.say("hello")
        node.act("waves")
        self.assertEqual([(x.text, x.action, x.own) for x in node.history("general")],
                         [("hello", False, True), ("waves", True, True)])
