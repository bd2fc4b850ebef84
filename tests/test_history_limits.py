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
