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
from p2pchat import events
from p2pchat import index as index_module
from p2pchat.catchup import ACK_DELAY
from p2pchat.search import Query
from p2pchat.wire import ACK, CHAT, JOIN, Message, encode_message, parse_message


class _Linked(TestCase):
    """bob, with a history file and a line face, linked to alice (as bench.hotpath)."""

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


class ReadOfLines(_Linked):
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

    def test_a_read_cut_short_counts_against_the_flood_limit_only_the_lines_taken(self):
        # the read is counted at once when it fits the bucket (mesh.py); a close after its
        # fourth line leaves the two after it untaken, and uncounted
        lines = self.said(6)
        other = parse_message(lines[3].rstrip(b"\n"))
        other.sender_id = "mallory_1"
        self.proto._flood.tokens = 100.0
        self.proto._flood._at = self.clock.seconds()
        self.proto.dataReceived(b"".join(lines[:3] + [encode_message(other)] + lines[4:]))
        self.assertTrue(self.proto.transport.disconnecting)
        self.assertEqual(self.proto._flood.tokens, 96.0)

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


class RunOfLines(_Linked):
    """The room lines of a read taken together (reading.py): each check still per line, in
    the order the lines came."""

    def parsed(self, raw: bytes) -> Message:
        return parse_message(raw.rstrip(b"\n"))

    def test_a_duplicate_in_the_read_and_one_of_an_earlier_read_shown_and_saved_once(self):
        lines = self.said(8)
        self.proto.dataReceived(b"".join(lines[:3]))
        self.proto.dataReceived(b"".join(lines[3:5] + [lines[4], lines[1]] + lines[5:]))
        self.assertEqual(self.shown(), [f"word{n} of the burst" for n in range(8)])
        self.flusher.turn(force=True)
        self.assertEqual(lines_in(self.store), 8)

    def test_the_sequences_seen_are_written_for_each_run(self) -> None:
        lines = self.said(6)
        first = self.parsed(lines[0]).sequence
        for part in (lines[:3], lines[3:]):
            self.proto.dataReceived(b"".join(part))
            self.flusher.turn(force=True)
        self.assertEqual(self.store.seen_text(self.alice.peer_id), f"[[{first},{first + 5}]]")

    def test_an_unsigned_line_again_is_a_duplicate_by_its_id(self) -> None:
        unsigned = []  # as a base peer's lines come: known by their id alone
        for raw in self.said(4):
            msg = self.parsed(raw)
            msg.metadata = None
            unsigned.append(encode_message(msg))
        self.proto.dataReceived(b"".join(unsigned[:2]))
        self.proto.dataReceived(b"".join([unsigned[2], unsigned[2], unsigned[0], unsigned[3]]))
        self.assertEqual(self.shown(), [f"word{n} of the burst" for n in range(4)])
        self.flusher.turn(force=True)
        self.assertEqual(lines_in(self.store), 4)

    def test_a_line_again_under_another_id_is_a_duplicate_by_its_sequence(self) -> None:
        lines = self.said(5)
        again = self.parsed(lines[2])
        again.id = "0123456789abcdef"  # the same author and sequence, another id
        self.proto.dataReceived(b"".join(lines[:4] + [encode_message(again)] + lines[4:]))
        self.assertEqual(self.shown(), [f"word{n} of the burst" for n in range(5)])
        self.flusher.turn(force=True)
        self.assertEqual(lines_in(self.store), 5)

    def test_a_late_line_is_taken_in_its_place_and_the_order_kept(self) -> None:
        lines = self.said(6)
        order = [0, 1, 4, 2, 5, 3]
        self.proto.dataReceived(b"".join(lines[n] for n in order))
        self.assertEqual(self.shown(), [f"word{n} of the burst" for n in order])
        first = self.parsed(lines[0]).sequence
        self.assertEqual(self.bob.room.seqs.ranges(self.alice.peer_id),
                         [(first, first + 5)])
        self.assertEqual(self.bob.room.high_water[self.alice.peer_id], first + 5)
        self.flusher.turn(force=True)
        self.assertEqual(lines_in(self.store), 6)
        # what the history file keeps of the sequences seen is the run's, written once
        self.assertEqual(self.store.seen_text(self.alice.peer_id), f"[[{first},{first + 5}]]")

    def test_a_line_of_another_kind_mid_read_is_taken_in_its_place(self) -> None:
        lines = self.said(4)
        rename = self.alice.sender.message(JOIN, "", sequenced=False)
        rename.username = "alicia"
        self.proto.dataReceived(b"".join(lines[:2] + [encode_message(rename)] + lines[2:]))
        nicks = [line.split("<", 1)[1].split(">", 1)[0]
                 for line in self.out.value().decode().splitlines() if "<" in line]
        self.assertEqual(nicks, ["alice", "alice", "alicia", "alicia"])

    def test_a_line_for_a_room_we_are_not_in_is_dropped_alone(self) -> None:
        lines = self.said(3)
        elsewhere = self.parsed(lines[1])
        elsewhere.room_id = "ops"
        # (unsigned: its signature would not cover another room; the room check comes first)
        elsewhere.metadata = None
        self.proto.dataReceived(b"".join([lines[0], encode_message(elsewhere), lines[2]]))
        self.assertEqual(self.shown(), ["word0 of the burst", "word2 of the burst"])
        self.flusher.turn(force=True)
        self.assertEqual(lines_in(self.store), 2)

    def test_past_the_flood_limit_the_rest_of_the_read_waits_and_comes_in_order(self) -> None:
        lines = self.said(20)
        self.proto._flood.tokens = 5.5  # (the read refills it: a moment later it is 5.5)
        self.proto._flood._at = self.clock.seconds()
        self.proto.dataReceived(b"".join(lines))
        self.assertEqual(self.shown(), [f"word{n} of the burst" for n in range(6)])
        self.assertTrue(self.proto.paused)
        self.clock.advance(1.0)  # the bucket refilled: reading again, the rest in order
        self.assertEqual(self.shown(), [f"word{n} of the burst" for n in range(20)])

    def test_past_the_save_budget_the_lines_are_shown_but_not_saved(self) -> None:
        lines = self.said(10)
        self.proto.dataReceived(lines[0])  # the link's save budget now exists
        link = self.bob.links[self.alice.peer_id]
        assert link.save_rate is not None
        link.save_rate.bucket.tokens = 3 * len(lines[1])  # room for 2 lines and their text
        link.save_rate.bucket.rate = 0.0
        self.proto.dataReceived(b"".join(lines[1:]))
        self.assertEqual(self.shown(), [f"word{n} of the burst" for n in range(10)])
        self.flusher.turn(force=True)
        self.assertEqual(lines_in(self.store), 3)


class OneWritePerRead(_Linked):
    """The line face writes the lines of one read in one write (issue 21: one output write
    per read), each as it wrote it alone; a big catch-up's lines still go through its count."""

    def writes(self) -> list[bytes]:
        got: list[bytes] = []
        write = self.out.write

        def counted(data: bytes) -> None:
            got.append(data)
            write(data)
        self.out.write = counted  # type: ignore[method-assign]
        return got

    def test_the_lines_of_a_read_are_one_write(self) -> None:
        writes = self.writes()
        self.proto.dataReceived(b"".join(self.said(40)))
        self.assertEqual(len(writes), 1)
        self.assertEqual(self.shown(), [f"word{n} of the burst" for n in range(40)])
        self.assertTrue(writes[0].endswith(b" of the burst\n"))

    def test_a_big_catch_up_read_at_once_is_still_held_past_the_first_lines(self) -> None:
        from p2pchat.catching_up import CATCH_UP_SHOWN
        lines = self.said(CATCH_UP_SHOWN + 50)
        self.bob.links[self.alice.peer_id].linked_at = self.clock.seconds() + 1  # all replayed
        self.addCleanup(self.bob._face.catching_up.stop)  # its timer is the reactor's
        self.proto.dataReceived(b"".join(lines))
        self.assertEqual(len(self.shown()), CATCH_UP_SHOWN)
        self.assertEqual(self.bob._face.catching_up.runs["general"].count, len(lines))

    def test_an_observer_that_fails_on_a_run_does_not_keep_it_from_the_others(self) -> None:
        class Failing:
            def __call__(self, event: object) -> None:
                raise AssertionError("not called one by one")

            def chat_lines(self, lines: object) -> None:
                raise RuntimeError("this observer fails")
        self.bob._observers.insert(0, Failing())
        self.proto.dataReceived(b"".join(self.said(5)))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.shown(), [f"word{n} of the burst" for n in range(5)])

    def test_a_heard_line_is_the_event_its_init_makes(self) -> None:
        # reading.py sets a ChatLine's fields itself (not through __init__): each of them
        heard: list[events.ChatLine] = []
        self.bob.subscribe(heard.append)
        self.clock.advance(0.01)  # said after the link came up: live, not replayed
        (line,) = self.said(1)
        msg = parse_message(line.rstrip(b"\n"))
        self.clock.advance(0.01)  # heard a moment later (its time on the wire is rounded to
        self.proto.dataReceived(line)  # the microsecond: it may come out after "now")
        self.assertEqual(heard, [events.ChatLine(msg.timestamp, "alice", msg.content,
                                                 msg.sender_id, msg.id)])
