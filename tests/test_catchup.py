"""Catch-up: the sent log, delivery tracking, and the sync/ack exchange between two nodes
wired back to back (no sockets), including links that drop and come back."""

from __future__ import annotations

import random

from hypothesis import given, settings, strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from p2pchat import events, wire
from p2pchat.catchup import ACK_DELAY, Delivery, SentLog, parse_sync
from p2pchat.node import CAPS, LONELY_GRACE, Node
from p2pchat.wire import Beacon, Message, WireError

from tests.fakes import FakeLink


def line(seq: int, when: float = 0.0) -> Message:
    return Message(id=f"m{seq}", type="chat", sender_id="me", sequence=seq, timestamp=when)


class SentLogTest(TestCase):
    def test_since_and_bounds(self) -> None:
        log = SentLog(max_lines=3, max_age=100)
        for seq in range(1, 6):
            log.append(line(seq), now=0.0)
        self.assertEqual(len(log), 3)
        lines, missing = log.since(1)
        self.assertEqual(([m.sequence for m, _ in lines], missing), ([3, 4, 5], True))
        self.assertEqual(log.since(4)[0][0][0].sequence, 5)
        self.assertEqual(log.since(5), ([], False))
        self.assertEqual(log.since(2)[1], False)  # nothing after 2 was dropped
        self.assertEqual(wire.parse_message(lines[0][1][:-1]), lines[0][0])

    def test_sequences_may_jump_between_runs(self) -> None:
        log = SentLog()
        for seq in (7, 8, 9, 5_000_001, 5_000_002):
            log.append(line(seq), now=0.0)
        self.assertEqual([m.sequence for m, _ in log.since(8)[0]], [9, 5_000_001, 5_000_002])
        self.assertEqual([m.sequence for m, _ in log.since(5_000_000)[0]],
                         [5_000_001, 5_000_002])

    def test_age_and_compaction(self) -> None:
        log = SentLog(max_lines=100_000, max_age=10)
        log.append(line(1, when=0.0), now=0.0)
        dropped = log.append(line(2, when=11.0), now=11.0)
        self.assertEqual([m.sequence for m in dropped], [1])
        small = SentLog(max_lines=10)
        for seq in range(1, 5000):
            small.append(line(seq), now=0.0)
        self.assertEqual(len(small), 10)
        self.assertLess(len(small._msgs), 2100)  # trimmed entries are let go
        self.assertEqual([m.sequence for m, _ in small.since(4995)[0]], [4996, 4997, 4998, 4999])


class DeliveryTest(TestCase):
    def test_delivered_when_all_acked(self) -> None:
        d = Delivery()
        d.expect(1, "a", {"x", "y"})
        d.expect(2, "b", {"x"})
        self.assertEqual(d.acked("x", 2), ["b"])
        self.assertEqual(d.acked("y", 1), ["a"])
        self.assertEqual(len(d), 0)

    def test_acks_visit_only_new_lines(self) -> None:
        d = Delivery()
        for seq in range(1, 1001):
            d.expect(seq, f"m{seq}", {"x", "slow"})
        self.assertEqual(d.acked("x", 1000), [])
        self.assertEqual(d.acked("x", 1000), [])  # repeated acks are free
        self.assertEqual(len(d.acked("slow", 10)), 10)
        self.assertEqual(d.acked("slow", 5), [])  # acks never go back
        self.assertEqual(len(d.acked("slow", 1000)), 990)
        self.assertEqual(len(d), 0)
        self.assertEqual(d._seqs, [])

    def test_forget_through(self) -> None:
        d = Delivery()
        for seq in (1, 2, 3):
            d.expect(seq, f"m{seq}", {"x"})
        d.forget_through(2)
        self.assertEqual(d.acked("x", 3), ["m3"])

    def test_a_peer_that_left_still_clears_its_lines_when_back(self) -> None:
        # It left before acking: its catch-up, once back, delivers the lines, and its ack
        # (counted from the start again) clears their marks.
        d = Delivery()
        d.expect(1, "a", {"x"})
        d.expect(2, "b", {"x", "y"})
        self.assertEqual(d.acked("x", 1), ["a"])
        d.expect(3, "c", {"x"})
        d.forget_peer("x")
        self.assertEqual(len(d), 2)
        self.assertEqual(d.acked("y", 2), [])
        self.assertEqual(d.acked("x", 3), ["b", "c"])
        self.assertEqual(len(d), 0)

    def test_the_lines_of_a_run_wait_apart_though_they_share_one_set(self) -> None:
        # A run's lines share one set of peers (one a run): an ack of part of the run, or a
        # receipt of one line, must not clear the peer from the rest of it.
        d = Delivery()
        d.expect_run([(1, "m1"), (2, "m2"), (3, "m3"), (4, "m4")], {"x", "y"})
        self.assertEqual(d.acked("x", 2), [])
        self.assertEqual(d.received(4, "y"), None)
        self.assertEqual(d.acked("y", 3), ["m1", "m2"])
        self.assertEqual(d.acked("x", 4), ["m3", "m4"])
        self.assertEqual(len(d), 0)
        d.expect_run([(5, "m5"), (6, "m6")], {"x"})
        d.expect(6, "m6", {"y"})  # (one of them then waits for another peer too)
        self.assertEqual(d.acked("x", 6), ["m5"])
        self.assertEqual(d.acked("y", 6), ["m6"])

    def test_private_lines_counted_per_addressee(self) -> None:
        d = Delivery()
        d.expect(1, "a", {"x"}, private=True)
        d.expect(2, "b", {"x"}, private=True)
        d.expect(3, "c", {"x", "y"})  # a room line: not counted
        d.expect(4, "d", {"y"}, private=True)
        self.assertEqual((d.private_waiting("x"), d.private_waiting("y")), (2, 1))
        d.acked("x", 1)
        self.assertEqual(d.private_waiting("x"), 1)
        d.forget_through(2)  # out of the sent log: no longer waits
        self.assertEqual(d.private_waiting("x"), 0)
        d.acked("y", 4)
        self.assertEqual(d.private_waiting("y"), 0)
        self.assertEqual(d._private_counts, {})


class Parsing(TestCase):
    def test_sync(self) -> None:
        ok = Message(id="s", type="sync", sender_id="p", metadata={"sent": 3, "have": None})
        self.assertEqual((parse_sync(ok).sent, parse_sync(ok).have), (3, None))
        for meta in ({"sent": "3"}, {"sent": -1}, {"sent": 1, "have": True}, None):
            self.assertRaises(WireError, parse_sync,
                              Message(id="s", type="sync", sender_id="p", metadata=meta))


class Wire:
    """Two nodes joined by FakeLinks: what one sends is queued and ``pump`` delivers it (as
    a socket would, later and in order) unless the wire is cut meanwhile."""

    def __init__(self, a: Node, b: Node, clock: Clock) -> None:
        self.a, self.b, self.clock = a, b, clock
        self.queue: list[tuple[Node, FakeLink, bytes]] = []

    def connect(self) -> None:
        self.ab = FakeLink(self.b.peer_id, self.b.nick, dialer_id=self.a.peer_id, caps=CAPS)
        self.ba = FakeLink(self.a.peer_id, self.a.nick, dialer_id=self.a.peer_id, caps=CAPS)
        for link, peer, there in ((self.ab, self.b, self.ba), (self.ba, self.a, self.ab)):
            link.send = self._sender(peer, there)
        for node, other, port in ((self.a, self.b, 8002), (self.b, self.a, 8001)):
            # both announce: a dropped link is a peer away, not a peer gone
            node.peers.heard(Beacon(type="announce", peer_id=other.peer_id,
                                    username=other.nick, port=port,
                                    timestamp=self.clock.seconds()),
                             "127.0.0.1", self.clock.seconds())
        self.a.link_ready(self.ab)
        self.b.link_ready(self.ba)
        self.pump()

    def _sender(self, peer: Node, there: FakeLink):
        def send(msg: Message) -> None:
            self.queue.append((peer, there, wire.encode_message(msg)[:-1]))
        return send

    def pump(self) -> None:
        while self.queue:
            peer, there, data = self.queue.pop(0)
            if getattr(peer.links.get(there.peer_id), "wire", None) is there:
                peer.message_received(there, wire.parse_message(data))

    def cut(self) -> None:
        self.queue.clear()
        self.a.link_lost(self.ab, "cut")
        self.b.link_lost(self.ba, "cut")


class Exchange(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(100)
        self.a = Node("alice", self.clock, peer_id="a_1")
        self.b = Node("bob", self.clock, peer_id="b_1")
        self.seen = {"a": [], "b": []}
        self.a.subscribe(self.seen["a"].append)
        self.b.subscribe(self.seen["b"].append)
        self.wire = Wire(self.a, self.b, self.clock)

    def heard(self, who: str) -> list[str]:
        return [e.text for e in self.seen[who] if isinstance(e, events.ChatLine) and not e.own]

    def test_lines_said_while_cut_arrive_once_in_order(self) -> None:
        self.a.say("before")  # nobody there yet: bob, arriving soon after, gets it
        self.wire.connect()
        self.wire.pump()
        self.assertEqual(self.heard("b"), ["before"])
        self.a.say("a1")
        self.b.say("b1")
        self.wire.pump()
        self.wire.cut()
        self.a.say("a2")
        self.a.say("a3")
        self.b.say("b2")
        self.wire.connect()
        self.a.say("a4")
        self.wire.pump()
        self.assertEqual(self.heard("b"), ["before", "a1", "a2", "a3", "a4"])
        self.assertEqual(self.heard("a"), ["b1", "b2"])
        # a second reconnect resends nothing twice
        self.wire.cut()
        self.wire.connect()
        self.assertEqual(self.heard("b"), ["before", "a1", "a2", "a3", "a4"])

    def test_lines_said_alone_go_to_peers_arriving_soon_not_later(self) -> None:
        self.a.say("too early")
        self.clock.advance(LONELY_GRACE + 1)
        self.a.say("just in time")
        lonely = [e for e in self.seen["a"] if isinstance(e, events.ChatLine)]
        self.assertTrue(all(e.pending for e in lonely))
        self.assertIn("peers that arrive within", [e.text for e in self.seen["a"]
                                                   if isinstance(e, events.Notice)][0])
        self.wire.connect()
        self.wire.pump()
        self.assertEqual(self.heard("b"), ["just in time"])
        self.clock.advance(ACK_DELAY)
        self.wire.pump()
        delivered = [e.message_id for e in self.seen["a"] if isinstance(e, events.Delivered)]
        self.assertEqual(delivered, [lonely[1].message_id])

    def test_line_said_while_sync_is_pending_is_not_lost(self) -> None:
        self.wire.connect()
        self.wire.cut()
        self.a.link_ready(self.wire.ab.__class__(  # a link whose sync has not come yet
            "b_1", "bob", dialer_id="a_1", caps=CAPS))
        pending = self.a.links["b_1"]
        self.assertFalse(pending.synced)
        self.a.say("during sync")
        self.assertEqual(pending.wire.sent[-1].type, "sync")  # the line waits in the log
        self.a.catchup.synced(pending, parse_sync(Message(
            id="x", type="sync", sender_id="b_1", metadata={"sent": 0, "have": 0})))
        self.assertEqual([m.content for m in pending.wire.sent if m.type == "chat"],
                         ["during sync"])
        self.assertTrue(pending.synced)

    def test_newcomer_gets_lines_said_after_the_link_even_before_its_sync(self) -> None:
        self.a.say("old news")
        self.clock.advance(LONELY_GRACE + 1)  # long before bob came
        self.wire.connect()  # both syncs flow; bob never heard alice: have = None
        self.a.say("fresh")
        self.wire.pump()
        self.assertEqual(self.heard("b"), ["fresh"])

    def test_delivered_after_ack_and_pending_while_away(self) -> None:
        self.wire.connect()
        self.a.say("hi")
        self.wire.pump()
        own = [e for e in self.seen["a"] if isinstance(e, events.ChatLine)][-1]
        self.assertTrue(own.pending)
        self.clock.advance(ACK_DELAY)
        self.wire.pump()
        delivered = [e.message_id for e in self.seen["a"] if isinstance(e, events.Delivered)]
        self.assertEqual(delivered, [own.message_id])
        self.wire.cut()
        self.a.say("while away")
        notices = [e.text for e in self.seen["a"] if isinstance(e, events.Notice)]
        self.assertIn("not connected to bob right now", notices[-1])
        away = [e for e in self.seen["a"] if isinstance(e, events.ChatLine)][-1]
        self.assertTrue(away.pending)
        self.wire.connect()
        self.clock.advance(ACK_DELAY)
        self.wire.pump()
        delivered = [e.message_id for e in self.seen["a"] if isinstance(e, events.Delivered)]
        self.assertEqual(delivered[-1], away.message_id)

    def test_lines_older_than_the_log_age_are_not_resent(self) -> None:
        a = Node("alice", self.clock, peer_id="a_1", log_age=10)
        a.subscribe(self.seen["a"].append)
        self.wire.a = a
        self.wire.connect()
        self.wire.cut()
        a.say("stale by the time bob is back")
        self.clock.advance(20)
        self.wire.connect()
        self.wire.pump()
        self.assertEqual(self.heard("b"), [])

    def test_too_old_lines_are_reported(self) -> None:
        a = Node("alice", self.clock, peer_id="a_1", log_lines=2)
        a.subscribe(self.seen["a"].append)
        self.wire.a = a
        self.wire.connect()
        a.say("x")
        self.wire.pump()
        self.wire.cut()
        for i in range(5):
            a.say(f"x{i}")
        self.wire.connect()
        self.assertEqual(self.heard("b"), ["x", "x3", "x4"])
        self.assertIn("missed older lines",
                      [e.text for e in self.seen["a"] if isinstance(e, events.Notice)][-1])


class AnyOrder(TestCase):
    """Any interleaving, duplication and reordering of deliveries: the same room history."""

    @settings(max_examples=60, deadline=None)
    @given(st.randoms(use_true_random=False), st.integers(1, 4))
    def test_same_history(self, rng: random.Random, copies: int) -> None:
        senders = ["x_1", "y_1", "z_1"]
        lines = [Message(id=f"{s}-{n}", type="chat", sender_id=s, username=s[0], content=f"{n}",
                         sequence=n, timestamp=1000.0 + n * 0.5 + i)
                 for i, s in enumerate(senders) for n in range(1, 6)]

        def history(order: list[Message]) -> list[str]:
            node = Node("me", Clock(), peer_id="me_1")
            links = {s: FakeLink(s, s[0]) for s in senders}
            for link in links.values():
                node.link_ready(link)
            for msg in order:
                node.message_received(links[msg.sender_id], msg)
            shown = node.history("general", 100)  # in display order: time, sender, id
            return [m.id for m in sorted(shown, key=lambda m: (m.when, m.sender_id, m.id))]

        deliveries = [m for m in lines for _ in range(copies)]
        rng.shuffle(deliveries)
        self.assertEqual(history(deliveries), history(lines))
