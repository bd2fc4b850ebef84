"""The plain lines of one read of the line face are said together (saying.py): each still
numbered, signed, in the sent log and the history, and shown, in order; each link gets the
run in one write; a command among them runs in its place; a line that fails is refused
alone."""

from __future__ import annotations

import base64
import gc
import os
import tempfile

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import TestCase

from p2pchat import runsig
from p2pchat.identity import Identity
from p2pchat.lines import LINES_PER_TURN, LineFace
from p2pchat.mesh import PeerProtocol
from p2pchat.node import Node
from p2pchat.relay import _verify, line_payload
from p2pchat.store import Store
from p2pchat.wire import CHAT, Message, parse_message
from tests.test_gather import Counting  # a transport that counts its writes


class Paste(TestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.reactor.advance(1_800_000_000)
        folder = tempfile.mkdtemp()
        self.store = Store(os.path.join(folder, "h.sqlite3"))
        self.addCleanup(self.store.close)
        self.identity = Identity.generate()
        self.node = Node("alice", self.reactor, identity=self.identity, store=self.store)
        self.wires = [self.link(f"r{n}") for n in range(3)]
        self.out = Counting()
        self.face = LineFace(self.node, lambda: None, self.reactor,
                             call_soon=lambda f: self.reactor.callLater(0, f))
        self.face.makeConnection(self.out)
        self.node.say("hello")  # the sent log has a line: the links' cursors are at it
        self.out.writes = 0
        for wire in self.wires:
            wire.clear()
            wire.writes = 0
        self.out.clear()

    def link(self, nick: str) -> Counting:
        other = Node(nick, self.reactor, identity=Identity.generate())
        proto = PeerProtocol(self.node, self.reactor)
        transport = Counting(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        transport.protocol = proto
        proto.makeConnection(transport)
        proto.peer_id, proto.username, proto.caps = other.peer_id, other.nick, other.caps
        proto.fp, proto.pk = other.identity.fingerprint, other.identity.public_key_b64()
        proto._become_ready()
        session = self.node.links[other.peer_id]
        session.synced, session.cursor = True, self.node.outbox.sequence  # as its sync would
        transport.clear()
        transport.writes = 0
        return transport

    def chat_lines(self, transport: Counting) -> list:
        msgs = [parse_message(line) for line in transport.value().splitlines()]
        return [m for m in msgs if m.type == CHAT]

    def check_signed(self, msg) -> None:
        sig = base64.b64decode(msg.metadata["sig"])
        key = base64.b64decode(self.identity.public_key_b64())
        if runsig.is_run(msg.metadata):  # one signature for the run (runsig.py)
            runsig.check_run(key, sig, line_payload(msg), msg.metadata)
        else:
            self.assertTrue(_verify(key, sig, line_payload(msg)))

    def test_a_paste_is_said_line_by_line_in_one_write_per_link(self) -> None:
        texts = [f"line {n}" for n in range(20)]
        self.face.dataReceived("".join(f"{t}\n" for t in texts).encode())
        for wire in self.wires:
            got = self.chat_lines(wire)
            self.assertEqual([m.content for m in got], texts)  # each once, in order
            self.assertEqual(wire.writes, 1)
            seqs = [m.sequence for m in got]
            self.assertEqual(seqs, sorted(set(seqs)))
            for msg in got:
                self.check_signed(msg)
        kept = self.node.outbox.log.since(0)[0][1:]
        self.assertEqual([m.content for m, _ in kept], texts)  # the sent log has each
        self.assertEqual(kept[-1][1], self.wires[0].value().splitlines(True)[-1])
        self.store.flush()
        self.assertEqual([line.text for line in self.store.recent("general", 50)],
                         ["hello"] + texts)
        self.assertEqual(self.store.last_sequence(), kept[-1][0].sequence)
        shown = self.out.value().decode().splitlines()
        self.assertEqual([line.split(" ", 1)[1] for line in shown],
                         [f"<alice> {t}" for t in texts])
        self.assertEqual(self.out.writes, 1)  # one write to stdout

    def test_each_line_waits_for_its_acks(self) -> None:
        self.face.dataReceived(b"one\ntwo\nthree\n")
        self.assertEqual(len(self.node.delivery), 4)  # and "hello"
        last = self.node.outbox.sequence
        for link in list(self.node.links.values()):
            self.node.delivery.acked(link.peer_id, last - 1)
        self.assertEqual(len(self.node.delivery), 1)  # "three" still waits
        for link in list(self.node.links.values()):
            self.node.delivery.acked(link.peer_id, last)
        self.assertEqual(len(self.node.delivery), 0)

    def test_a_run_said_while_no_link_is_synced_is_told_delivered_once_acked(self) -> None:
        # Told together to the line face (on_lines), each line is still remembered to tell
        # its delivery, as one said alone is.
        for link in self.node.links.values():
            link.synced = False
        self.face.dataReceived(b"one\ntwo\n")
        self.out.clear()
        last = self.node.outbox.sequence
        for link in list(self.node.links.values()):
            self.node.catchup.acked(link, last)
        told = [line.split(" ", 1)[1] for line in self.out.value().decode().splitlines()]
        self.assertEqual(told, ["- delivered: one", "- delivered: two"])

    def test_a_said_line_leaves_one_object_a_line_for_the_garbage_collector(self) -> None:
        # The sent log keeps up to LOG_LINES lines, walked by every full collection: a run
        # line's metadata (its "run" a tuple) leaves the collector's sight once it saw it.
        self.face.dataReceived("".join(f"line {n}\n" for n in range(20)).encode())
        gc.collect()
        kept = [msg for msg, _ in self.node.outbox.log.since(0)[0][1:]]
        self.assertEqual(len(kept), 20)
        self.assertTrue(all(runsig.is_run(msg.metadata) for msg in kept))
        self.assertEqual([gc.is_tracked(msg.metadata) for msg in kept], [False] * 20)

    def test_the_run_is_taken_by_the_room_as_each_line_alone(self) -> None:
        # Room.accept_own does for a run what accept does for each line: each id seen (a copy
        # coming back is a duplicate, by its id or by its sequence), the high-water mark at
        # the last, and no more ids remembered than the room's bound.
        room = self.node.room
        room.seen_limit = 15
        self.face.dataReceived("".join(f"line {n}\n" for n in range(20)).encode())
        kept = [msg for msg, _ in self.node.outbox.log.since(0)[0][1:]]
        self.assertEqual(len(room._seen), 15)
        self.assertEqual([room.accept(msg) for msg in kept[-15:]], [False] * 15)
        again = Message("another-id", CHAT, kept[-1].sender_id, "alice", "x", 1.0,
                        kept[-1].sequence, "general", {"sig": "c2ln"})
        self.assertFalse(room.accept(again))
        self.assertEqual(room.high_water[self.node.peer_id], kept[-1].sequence)
        self.assertEqual([(self.node.peer_id, msg.sequence) in room.seqs for msg in kept],
                         [True] * 20)
        self.assertEqual(room.seqs.ranges(self.node.peer_id)[-1][1], kept[-1].sequence)

    def test_a_command_runs_in_its_place(self) -> None:
        self.face.dataReceived(b"before\n/me waves\nafter\n")
        got = self.chat_lines(self.wires[0])
        self.assertEqual([m.content for m in got], ["before", "* alice waves", "after"])

    def test_a_line_that_fails_is_refused_alone(self) -> None:
        keep = self.node.outbox.keep

        def failing(msg: Message, *args: object, **kwargs: object) -> bytes:
            if msg.content == "two":
                raise RuntimeError("no room for it today")
            return keep(msg, *args, **kwargs)  # type: ignore[arg-type]

        self.node.outbox.keep = failing  # type: ignore[method-assign]
        self.face.dataReceived(b"one\ntwo\nthree\n")
        self.assertEqual([m.content for m in self.chat_lines(self.wires[0])], ["one", "three"])
        self.assertEqual([m.content for m, _ in self.node.outbox.log.since(0)[0]],
                         ["hello", "one", "three"])
        self.store.flush()
        self.assertEqual([line.text for line in self.store.recent("general", 50)],
                         ["hello", "one", "three"])
        self.assertIn(b"! that failed", self.out.value())
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_a_failing_history_still_leaves_the_lines_going_out(self) -> None:
        """What reached the sent log goes to the links even if the run's end fails."""
        def broken(said: object) -> None:
            raise OSError("disk gone")

        self.store.save_said = broken  # type: ignore[method-assign]
        self.face.dataReceived(b"one\ntwo\n")
        self.assertEqual([m.content for m in self.chat_lines(self.wires[0])], ["one", "two"])
        self.assertIn(b"! ", self.out.value())
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_a_link_behind_gets_the_run_from_the_sent_log(self) -> None:
        link = next(iter(self.node.links.values()))
        link.cursor -= 1  # as if it had not had "hello" yet
        self.face.dataReceived(b"one\ntwo\n")
        wire = link.wire.transport  # type: ignore[attr-defined]
        self.assertEqual([m.content for m in self.chat_lines(wire)], ["hello", "one", "two"])
        self.assertEqual(link.cursor, self.node.outbox.sequence)

    def test_a_long_paste_is_taken_a_turn_at_a_time_and_all_said(self) -> None:
        texts = [f"line {n}" for n in range(LINES_PER_TURN * 2 + 7)]
        self.face.dataReceived("".join(f"{t}\n" for t in texts).encode())
        self.assertEqual(len(self.chat_lines(self.wires[0])), LINES_PER_TURN)
        for _ in range(3):
            self.reactor.advance(0)
        self.assertEqual([m.content for m in self.chat_lines(self.wires[0])], texts)
        self.assertEqual(self.wires[0].writes, 3)

    def test_not_in_the_room_is_refused_for_each_line(self) -> None:
        self.assertEqual([r.why for r in self.node.say_lines(["a", "b"], "ops")],
                         ["you are not in #ops"] * 2)
        self.assertEqual(self.wires[0].value(), b"")

    def test_history_of_a_paste_reads_back_in_order(self) -> None:
        self.face.dataReceived(b"".join(b"%d\n" % n for n in range(30)))
        self.store.flush()
        rows = [line.text for line in self.store.recent("general", 30)]
        self.assertEqual(rows, [str(n) for n in range(30)])
