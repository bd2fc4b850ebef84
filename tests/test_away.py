"""Private lines to a peer that is away (absent.py, Node.say_private): kept by their author,
written when the peer links again, shown to it once, and their marks cleared by its ack; and a
peer that is leaving takes no more lines (it could not show them)."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase

from p2pchat import chat as chat_module, events
from p2pchat.absent import RecentPeers
from p2pchat.catchup import ACK_DELAY
from p2pchat.identity import Pins, peer_id_for
from p2pchat.lines import LineFace
from p2pchat.interfaces import Refused, Said
from p2pchat.node import CAPS, Node
from p2pchat.trust import Trust
from p2pchat.wire import CAP_OURS, PRIVATE

from tests.fakes import FakeLink, said_id, waits_for
from tests.test_catchup import Wire

FP = "ab" * 32  # a key fingerprint, as pinned


class AwayTest(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(100)
        self.a = Node("alice", self.clock, peer_id="a_1")
        self.b = Node("bob", self.clock, peer_id="b_1")
        self.seen: dict[str, list] = {"a": [], "b": []}
        self.a.subscribe(self.seen["a"].append)
        self.b.subscribe(self.seen["b"].append)
        self.wire = Wire(self.a, self.b, self.clock)
        self.wire.connect()
        self.wire.pump()

    def own(self) -> list[events.ChatLine]:
        return [e for e in self.seen["a"] if isinstance(e, events.ChatLine)]

    def notices(self) -> list[str]:
        return [e.text for e in self.seen["a"] if isinstance(e, events.Notice)]

    def delivered(self) -> list[str]:
        return [e.message_id for e in self.seen["a"] if isinstance(e, events.Delivered)]

    def bob_quits(self) -> None:
        """bob says goodbye; its link lingers (its shutdown waits up to 2 s) until cut."""
        self.b.say_goodbye()
        self.wire.pump()
        self.assertTrue(self.a.links["b_1"].said_leave)
        self.assertIn("b_1", self.a.links)

    def bob_is_back(self) -> list[events.ChatLine]:
        """bob starts again with its data dir (how far it has alice's lines, from disk) and
        links; returns what the new bob was shown."""
        again = Node("bob", self.clock, peer_id="b_1")
        again.room.high_water.update(self.b.room.high_water)
        shown: list = []
        again.subscribe(shown.append)
        self.wire.b = again
        self.wire.connect()
        self.wire.pump()
        self.clock.advance(ACK_DELAY)
        self.wire.pump()
        return [e for e in shown if isinstance(e, events.ChatLine)]

    def test_lines_said_after_a_quit_are_kept_and_delivered_once_back(self) -> None:
        hello = self.a.say("hello")  # bob's cursor is at the newest line: the quick way
        self.wire.pump()
        self.clock.advance(ACK_DELAY)
        self.wire.pump()
        self.bob_quits()
        early = self.a.say_private("bob", "at +1 s")  # its link still lingers
        self.assertEqual([data for peer, _, data in self.wire.queue if b"+1 s" in data], [])
        self.wire.cut()
        late = self.a.say("at +4 s", room="@b_1")  # /query bob: typed in the talk
        assert isinstance(early, Said) and isinstance(late, Said)
        self.assertEqual((early.msg.metadata or {}).get("to"), "b_1")
        self.assertEqual((early.waits_for, late.waits_for), ("bob", "bob"))
        # told once, by nick (not a raw id); shown pending, not "not delivered"
        self.assertEqual(self.notices(),
                         ["bob is away: the line is kept and sent when bob is back"])
        self.assertEqual([(e.kept, e.pending, e.room, e.private) for e in self.own()],
                         [(False, True, "general", "")] + [(True, True, "@b_1", "bob")] * 2)
        shown = self.bob_is_back()
        self.assertEqual([(e.text, e.room, e.private) for e in shown],
                         [("at +1 s", "@a_1", "alice"), ("at +4 s", "@a_1", "alice")])
        self.assertEqual(self.delivered(), [said_id(hello), early.msg.id, late.msg.id])
        # back: a new line goes at once, and no notice
        self.assertEqual(waits_for(self.a.say_private("bob", "welcome back")), "")
        self.assertEqual(len(self.notices()), 1)

    def test_a_leaving_peer_takes_no_lines_and_gets_them_when_back(self) -> None:
        private = self.a.say_private("bob", "racing the goodbye")
        room = self.a.say("room line racing the goodbye")
        self.b.say_goodbye()  # before the lines reach it: its face is gone already
        have = dict(self.b.room.high_water)
        self.wire.pump()
        self.clock.advance(ACK_DELAY)
        self.wire.pump()
        self.assertEqual([e for e in self.seen["b"] if isinstance(e, events.ChatLine)
                          and not e.own], [])
        self.assertEqual(self.b.room.high_water, have)  # not taken, so not acked
        self.assertEqual(self.delivered(), [])
        self.wire.cut()
        shown = self.bob_is_back()
        self.assertEqual([e.text for e in shown],
                         ["racing the goodbye", "room line racing the goodbye"])
        self.assertEqual(sorted(self.delivered()), sorted([said_id(private), said_id(room)]))

    def test_mark_clears_when_a_peer_that_left_acks_by_its_sync(self) -> None:
        # bob got the line but quit before its ack left: its sync, once back, says it has it.
        said = self.a.say_private("bob", "got it, no time to ack")
        self.wire.pump()  # bob has it; its ack is scheduled
        self.b.say_goodbye()  # the ack timer is cancelled
        self.wire.pump()
        self.wire.cut()
        self.assertEqual(self.delivered(), [])
        shown = self.bob_is_back()
        self.assertEqual(shown, [])  # nothing shown twice
        self.assertEqual(self.delivered(), [said_id(said)])

    def test_a_nick_never_seen_is_refused_by_name(self) -> None:
        self.assertEqual(self.a.say_private("zed", "hello?"),
                         Refused("no peer called zed; /users lists who is here"))
        self.assertEqual(self.own(), [])

    def test_a_pinned_peer_is_known_after_our_restart(self) -> None:
        pins = Pins(None)
        pins.pin("dave", FP)
        fresh = Node("alice", self.clock, peer_id="a_2", trust=Trust(pins))
        kept = fresh.say_private("dave", "for when you are back")
        assert isinstance(kept, Said)
        self.assertEqual((kept.waits_for, (kept.msg.metadata or {}).get("to")),
                         ("dave", peer_id_for(FP)))
        self.assertEqual(fresh.addressee(peer_id_for(FP)),
                         Refused("no peer called " + peer_id_for(FP) + "; /users lists who is here"))

    def test_what_is_kept_for_one_absent_peer_is_bounded(self) -> None:
        self.patch(chat_module, "HELD_LINES", 3)
        self.bob_quits()
        self.wire.cut()
        for i in range(3):
            self.assertEqual(waits_for(self.a.say_private("bob", f"kept {i}")), "bob")
        refused = self.a.say_private("bob", "one too many")
        self.assertEqual(refused, Refused("bob is away and 3 private lines already wait for "
                                          "bob: this one is not kept"))
        self.assertEqual(len(self.own()), 3)
        self.assertEqual([e.text for e in self.bob_is_back()], ["kept 0", "kept 1", "kept 2"])

    def test_a_kept_line_never_goes_to_a_link_that_takes_no_private_lines(self) -> None:
        # A link claiming bob's id without taking private lines (as a plain link is, when we
        # have a key): the line waits for the real bob, and is never written to it.
        self.bob_quits()
        self.wire.cut()
        claimer = FakeLink("b_1", "eve", caps=(CAP_OURS,), now=self.clock.seconds())
        self.assertTrue(self.a.link_ready(claimer))
        self.a.links["b_1"].cursor = 0  # behind: every line of the log is looked at for it
        self.assertEqual(waits_for(self.a.say_private("bob", "for bob only")), "bob")
        self.a.link_writable(claimer)
        self.assertEqual([m.content for m in claimer.sent if m.type == PRIVATE], [])

    def test_a_gone_peer_is_still_named(self) -> None:
        self.bob_quits()
        self.wire.cut()
        self.assertNotIn("b_1", self.a.peers)
        self.assertEqual(self.a.shown_nick("b_1"), "bob")  # not its raw id


class RecentPeersTest(TestCase):
    def test_bounded_newest_wins(self) -> None:
        recent = RecentPeers(limit=2)
        recent.seen("p1", "bob")
        recent.seen("p2", "bob")
        self.assertEqual(recent.find("bob"), ("p2", "bob"))
        self.assertEqual(recent.find("p1"), ("p1", "bob"))
        recent.seen("p1", "bob")  # seen again: newest
        recent.seen("p3", "carol")
        self.assertEqual(len(recent), 2)
        self.assertIsNone(recent.find("p2"))
        self.assertEqual(recent.find("bob"), ("p1", "bob"))


class LineFaceDeliveryTest(TestCase):
    """The line face has no marks: a line told kept is told delivered."""

    def test_kept_then_delivered(self) -> None:
        clock = Clock()
        clock.advance(100)
        node = Node("alice", clock, peer_id="a_1")
        bob = FakeLink("b_1", "bob", caps=CAPS, now=100)
        node.link_ready(bob)
        node.link_lost(bob, "gone")
        face = LineFace(node, on_quit=lambda: None)
        transport = StringTransport()
        face.makeConnection(transport)
        kept = node.say_private("bob", "see you later " + "x" * 80)
        node.say("nobody hears this")  # not linked to anyone: told when delivered too
        node.emit(events.Delivered(clock.seconds(), "unknown"))  # not told: nothing
        node.emit(events.Delivered(clock.seconds(), said_id(kept)))
        out = transport.value().decode("utf-8").splitlines()
        self.assertIn("[private to bob] <alice> see you later", "\n".join(out))
        self.assertTrue(out[-1].endswith("- delivered to bob: see you later " + "x" * 46 + "…"),
                        out[-1])
        self.assertEqual(sum("delivered" in line and "bob is away" not in line
                             for line in out), 1)

    def test_lines_remembered_to_tell_are_bounded(self) -> None:
        from p2pchat import lines
        self.patch(lines, "TOLD_WHEN_DELIVERED", 2)
        clock = Clock()
        node = Node("alice", clock, peer_id="a_1")
        face = LineFace(node, on_quit=lambda: None)
        transport = StringTransport()
        face.makeConnection(transport)
        said = [node.say(f"alone {i}") for i in range(3)]  # nobody linked: all told later
        self.assertEqual(list(face._told_later), [said_id(m) for m in said[1:]])
        node.emit(events.Delivered(clock.seconds(), said_id(said[0])))  # forgotten: not told
        self.assertNotIn("delivered: alone 0", transport.value().decode("utf-8"))
