"""A read of many chat lines on a live link, end to end in one process (as bench.hotpath
builds it: a handshaken link, the node, its history file and its line face): each line is
shown once and in order, each is saved, one ack answers them, a bad line among them is
skipped (logged) without losing the good ones around it, a line speaking for another peer
closes the link after the lines before it were taken, and /search finds them all once the
index took them (a moment after their commit: index.py)."""

from __future__ import annotations

import os
import time

from twisted.internet import defer, task
from twisted.trial.unittest import TestCase

from bench.hotpath import _Flusher, _face, _link, _peer
from bench.store import lines_in
from p2pchat import index as index_module
from p2pchat.catchup import ACK_DELAY
from p2pchat.search import Query
from p2pchat.wire import ACK, CHAT, encode_message, parse_message


class ReadOfLines(TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(time.time())
        folder = self.mktemp()
        os.makedirs(folder)
        flusher = _Flusher(self.clock)
        self.alice, _ = _peer("alice", self.clock, folder, _Flusher(self.clock))
        self.bob, self.store = _peer("bob", self.clock, folder, flusher)
        self.flusher = flusher
        self.addCleanup(self.store.close)
        self.out = _face(self.bob)
        self.proto, self.back = _link(self.bob, self.alice, self.clock)

    def said(self, count: int, start: int = 0) -> list[bytes]:
        return [encode_message(self.alice.sender.message(CHAT, f"word{n} of the burst",
                                                         sequenced=True))
                for n in range(start, start + count)]

    def shown(self) -> list[str]:
        return [line.split("> ", 1)[1] for line in self.out.value().decode().splitlines()
                if "<alice>" in line]

    def acks(self) -> list[int]:
        sent = [parse_message(line) for line in self.back.value().splitlines() if line]
        return [m.metadata["have"] for m in sent if m.type == ACK and m.metadata]

    def test_each_line_of_a_read_shown_once_in_order_saved_and_acked_once(self) -> None:
        lines = self.said(60)
        self.proto.dataReceived(b"".join(lines))
        self.assertEqual(self.shown(), [f"word{n} of the burst" for n in range(60)])
        self.clock.advance(ACK_DELAY)
        last = parse_message(lines[-1].rstrip(b"\n")).sequence
        self.assertEqual(self.acks(), [last])  # one ack, for the last line
        self.assertEqual(lines_in(self.store), 60)

    def test_a_bad_line_in_the_middle_is_skipped_and_the_others_taken(self) -> None:
        logged: list[dict] = []
        from twisted.logger import globalLogPublisher
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        lines = self.said(10)
        self.proto.dataReceived(b"".join(lines[:5] + [b'{"id": "not a chat line\n'] + lines[5:]))
        self.assertEqual(self.shown(), [f"word{n} of the burst" for n in range(10)])
        self.assertTrue(any("bad line" in str(e.get("log_format", "")) for e in logged))
        self.assertFalse(self.proto.transport.disconnecting)  # a live link stays up
        self.assertEqual(lines_in(self.store), 10)

    def test_a_line_for_another_peer_closes_the_link_after_the_lines_before_it(self) -> None:
        lines = self.said(6)
        other = parse_message(lines[3].rstrip(b"\n"))
        other.sender_id = "mallory_1"
        self.proto.dataReceived(b"".join(lines[:3] + [encode_message(other)] + lines[4:]))
        self.assertEqual(self.shown(), [f"word{n} of the burst" for n in range(3)])
        self.assertTrue(self.proto.transport.disconnecting)
        self.assertEqual(lines_in(self.store), 3)

    @defer.inlineCallbacks
    def test_search_finds_every_line_of_the_read_once_indexed(self):
        self.store.index.in_thread = lambda f, *a: defer.succeed(f(*a))
        self.store.index.index_in_steps(self.clock)
        self.proto.dataReceived(b"".join(self.said(30)))
        self.flusher.turn(force=True)  # the commit
        self.clock.advance(index_module.INDEX_DELAY)  # the index takes them after it
        hits = yield self.store.search(Query(words=("burst",)), 50)
        self.assertEqual(len(hits), 30)
        hits = yield self.store.search(Query(words=("word17",)), 50)
        self.assertEqual([h.text for h in hits], ["word17 of the burst"])
