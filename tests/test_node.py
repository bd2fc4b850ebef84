"""The node under a task.Clock with fake links: who gets dialed, what is shown, what is sent."""

from __future__ import annotations

import zlib

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from p2pchat import events
from p2pchat.identity import Identity
from p2pchat.interfaces import Done
from p2pchat.node import CAPS, FLAP_WINDOW, FLAPS_TOLD, IDLE_TIMEOUT, PROBE_TIMEOUT, Node
from p2pchat.peers import GONE_AFTER
from p2pchat.wire import Beacon, Message

from tests.fakes import FakeAnnouncer, FakeDialer, FakeLink, ReadOnlyLink, refusal, said


def beacon(peer_id: str, kind: str = "announce", when: float = 0.0, name: str = "",
           port: int | None = None) -> Beacon:
    return Beacon(type=kind, peer_id=peer_id, username=name or peer_id.split("_")[0],
                  port=port or 1000 + zlib.crc32(peer_id.encode()) % 60000, timestamp=when)


def chat(sender: str, text: str, msg_id: str = "m1", name: str = "", **kw) -> Message:
    return Message(id=msg_id, type="chat", sender_id=sender, username=name or sender.split("_")[0],
                   content=text, timestamp=kw.pop("timestamp", 1.0), **kw)


class NodeTest(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.node = Node("mmm", self.clock, peer_id="mmm_1")
        self.dialer = self.node.dialer = FakeDialer()
        self.announcer = self.node.announcer = FakeAnnouncer()
        self.events: list = []
        self.node.subscribe(self.events.append)

    def shown(self, kind):
        return [e for e in self.events if isinstance(e, kind)]

    def link(self, peer_id: str, **kw) -> FakeLink:
        link = FakeLink(peer_id, peer_id.split("_")[0], now=self.clock.seconds(), **kw)
        self.assertTrue(self.node.link_ready(link))
        return link


class Discovery(NodeTest):
    def test_dials_only_larger_ids_and_answers_newcomers(self) -> None:
        """A newcomer that dials us (a smaller id) is answered at once; one we dial learns
        of us from our join, so it gets no answer (a crowd starting together sends half the
        datagrams)."""
        self.node.beacon_heard(beacon("zed_1", when=1000), "127.0.0.1")
        self.assertEqual(list(self.dialer.wanted), ["zed_1"])
        self.assertEqual(self.announcer.replies, 0)
        self.node.beacon_heard(beacon("aaa_1", when=1000), "127.0.0.1")
        self.assertEqual(list(self.dialer.wanted), ["zed_1"])
        self.assertEqual(self.announcer.replies, 1)
        # a known peer announcing again is not answered again
        self.node.beacon_heard(beacon("aaa_1", when=1000), "127.0.0.1")
        self.assertEqual(self.announcer.replies, 1)

    def test_own_and_old_beacons_ignored(self) -> None:
        self.node.beacon_heard(beacon("mmm_1", when=1000), "127.0.0.1")
        self.node.beacon_heard(beacon("zed_1", when=1000 - 31), "127.0.0.1")
        self.assertEqual(len(self.node.peers), 0)

    def test_silent_peer_goes_stale_then_gone(self) -> None:
        self.node.beacon_heard(beacon("zed_1", when=1000), "127.0.0.1")
        self.assertEqual([r.state for r in self.node.users()], ["connecting"])
        self.clock.advance(10)
        self.assertEqual([r.state for r in self.node.users()], ["stale"])
        self.clock.advance(20)
        self.node.sweep()
        self.assertEqual(self.node.users(), [])
        self.assertIn("zed_1", self.dialer.dropped)

    def test_leave_datagram_forgets_an_unlinked_peer(self) -> None:
        self.node.beacon_heard(beacon("zed_1", when=1000), "127.0.0.1")
        self.node.beacon_heard(beacon("zed_1", "leave", when=1000), "127.0.0.1")
        self.assertEqual(self.node.users(), [])

    def test_forged_leave_datagram_does_not_break_a_live_link(self) -> None:
        self.node.beacon_heard(beacon("zed_1", when=1000), "127.0.0.1")
        link = self.link("zed_1")
        self.node.beacon_heard(beacon("zed_1", "leave", when=1000), "127.0.0.1")
        self.assertIsNone(link.closed)
        self.assertEqual([r.state for r in self.node.users()], ["connected"])
        self.assertEqual(self.shown(events.PeerLeft), [])

    def test_base_link_closed_when_its_beacons_stop(self) -> None:
        self.node.beacon_heard(beacon("zed_1", when=1000), "127.0.0.1")
        link = self.link("zed_1", caps=())
        self.clock.advance(31)
        self.node.sweep()
        self.assertEqual(link.closed, "its beacons stopped")


class Links(NodeTest):
    def test_join_and_lost_and_redial(self) -> None:
        self.node.beacon_heard(beacon("zed_1", when=1000), "127.0.0.1")
        link = self.link("zed_1")
        self.assertEqual([e.nick for e in self.shown(events.PeerJoined)], ["zed"])
        self.assertNotIn("zed_1", self.dialer.wanted)
        self.clock.advance(FLAP_WINDOW)
        self.node.link_lost(link, "connection refused")
        self.assertEqual(self.dialer.ended, [("zed_1", FLAP_WINDOW)])
        left = self.shown(events.PeerLeft)
        self.assertEqual([(e.nick, e.reason) for e in left], [("zed", "connection lost")])
        self.assertIn("zed_1", self.dialer.wanted)  # still announced: redial

    def flaps(self, peer_id: str, count: int, caps: tuple[str, ...]) -> list[str]:
        """``count`` links to ``peer_id`` that each die at once; the notices shown."""
        self.node.beacon_heard(beacon(peer_id, when=1000), "127.0.0.1")
        for _ in range(count):
            link = self.link(peer_id, caps=caps)
            self.clock.advance(0.5)
            self.node.link_lost(link, "closed by the peer")
        return [e.text for e in self.shown(events.Notice)]

    def test_a_base_peer_closing_every_link_is_told_once(self) -> None:
        self.assertEqual(self.flaps("gopher_1", FLAPS_TOLD - 1, caps=()), [])
        told = self.flaps("gopher_1", 3, caps=())  # the FLAPS_TOLD-th, and more
        self.assertEqual(len(told), 1, told)
        self.assertIn("closes every connection right after it opens", told[0])
        self.assertEqual(self.shown(events.PeerLeft), [])  # flapping: no leave shown

    def test_one_of_ours_flapping_is_not_told_and_a_long_link_resets_the_count(self) -> None:
        self.assertEqual(self.flaps("zed_1", FLAPS_TOLD + 1, caps=("p2pchat-py/1",)), [])
        self.flaps("gopher_1", FLAPS_TOLD - 1, caps=())
        link = self.link("gopher_1", caps=())
        self.clock.advance(FLAP_WINDOW)
        self.node.link_lost(link, "closed after a while")
        self.assertEqual(self.flaps("gopher_1", FLAPS_TOLD - 1, caps=()), [])

    def test_the_node_writes_nothing_onto_a_connection(self) -> None:
        # A plain link to a node with a key (its caps are not believed), a rename, lines,
        # a sync, an ack, a goodbye: all the node keeps goes to the session.
        node = Node("kkk", self.clock, identity=Identity.generate())
        link = ReadOnlyLink("aaa_1", "aaa", caps=("p2pchat-py/1", "catchup/1", "rooms/1"),
                            now=self.clock.seconds())
        self.assertTrue(node.link_ready(link))
        node.message_received(link, Message(id="j", type="join", sender_id="aaa_1",
                                            username="bbb"))
        self.assertEqual((node.links["aaa_1"].username, link.username), ("bbb", "aaa"))
        self.assertEqual(link.caps, ("p2pchat-py/1", "catchup/1", "rooms/1"))  # as it said
        node.message_received(link, chat("aaa_1", "hi", msg_id="c1"))
        node.say("hello")
        ours = ReadOnlyLink("zed_1", "zed", caps=CAPS, now=self.clock.seconds())
        self.assertTrue(self.node.link_ready(ours))
        self.node.message_received(ours, Message(id="s", type="sync", sender_id="zed_1",
                                                 metadata={"sent": 5, "have": 0}))
        self.node.say("to zed")
        self.node.message_received(ours, Message(id="a", type="ack", sender_id="zed_1",
                                                 metadata={"have": 2**62}))
        self.node.message_received(ours, Message(id="l", type="leave", sender_id="zed_1"))
        self.node.link_lost(ours, "it left")
        node.link_lost(link, "gone")
        self.assertEqual(ours.closed, "it left")

    def test_goodbye_then_close_shows_one_leave_and_no_redial(self) -> None:
        self.node.beacon_heard(beacon("zed_1", when=1000), "127.0.0.1")
        link = self.link("zed_1")
        self.node.message_received(link, Message(id="l1", type="leave", sender_id="zed_1",
                                                 username="zed"))
        self.node.link_lost(link, "closed")
        self.assertEqual([e.reason for e in self.shown(events.PeerLeft)], [None])
        self.assertNotIn("zed_1", self.dialer.wanted)
        self.assertEqual(self.node.users(), [])

    def test_no_redial_once_leaving(self) -> None:
        self.node.beacon_heard(beacon("zed_1", when=1000), "127.0.0.1")
        link = self.link("zed_1")
        self.node.say_goodbye()
        self.node.link_lost(link, "closed by us")
        self.assertNotIn("zed_1", self.dialer.wanted)

    def test_one_link_per_pair(self) -> None:
        # Both sides keep the link dialed by the smaller id ("mmm_1" < "zed_1").
        ours = self.link("zed_1", dialer_id="mmm_1")
        theirs = FakeLink("zed_1", "zed", dialer_id="zed_1")
        self.assertFalse(self.node.link_ready(theirs))
        self.assertIsNotNone(theirs.closed)
        self.assertIs(self.node.links["zed_1"].wire, ours)
        # Against "aaa_1" the rightful dialer is them.
        mine = self.link("aaa_1", dialer_id="mmm_1")
        rightful = FakeLink("aaa_1", "aaa", dialer_id="aaa_1")
        self.assertTrue(self.node.link_ready(rightful))
        self.assertIsNotNone(mine.closed)
        # A second link dialed by the same side replaces the first (it saw the first die).
        again = FakeLink("aaa_1", "aaa", dialer_id="aaa_1")
        self.assertTrue(self.node.link_ready(again))
        self.assertIsNotNone(rightful.closed)
        self.assertEqual(len(self.shown(events.PeerJoined)), 2)

    def test_link_claiming_to_be_us_refused(self) -> None:
        link = FakeLink("mmm_1", "mmm")
        self.assertFalse(self.node.link_ready(link))
        self.assertIsNotNone(link.closed)

    def test_idle_link_of_ours_dropped(self) -> None:
        link = self.link("zed_1")
        self.clock.advance(IDLE_TIMEOUT - 1)
        self.node.sweep()
        self.assertIsNone(link.closed)
        self.clock.advance(2)
        self.node.sweep()
        self.assertIn("silent", link.closed)

    def test_link_probed_when_its_peer_comes_back_from_a_silence(self) -> None:
        self.node.beacon_heard(beacon("zed_1", when=1000), "127.0.0.1")
        link = self.link("zed_1")
        self.clock.advance(12)  # its beacons stopped: stale (a cut cable?)
        self.node.beacon_heard(beacon("zed_1", when=self.clock.seconds()), "127.0.0.1")
        probe = link.sent[-1]
        self.assertEqual(probe.type, "heartbeat")
        token = probe.metadata["probe"]
        self.clock.advance(PROBE_TIMEOUT + 1)
        self.assertIn("no answer", link.closed)
        # the next time, an answer keeps the link
        again = self.link("zed_1", dialer_id="mmm_1")
        self.clock.advance(12)
        self.node.beacon_heard(beacon("zed_1", when=self.clock.seconds()), "127.0.0.1")
        token = again.sent[-1].metadata["probe"]
        self.node.message_received(again, Message(id="a1", type="heartbeat",
                                                  sender_id="zed_1", metadata={"answer": token}))
        self.clock.advance(PROBE_TIMEOUT + 1)
        self.assertIsNone(again.closed)

    def test_a_link_heard_during_the_beacon_silence_is_not_probed(self) -> None:
        """A saturated machine loses and delays beacons first: a link heard while its peer's
        beacons were overdue is alive, and is not probed (nor dropped) when they return."""
        self.node.beacon_heard(beacon("zed_1", when=1000), "127.0.0.1")
        link = self.link("zed_1")
        self.clock.advance(8)
        link.last_heard = self.clock.seconds()  # a line came on the link meanwhile
        self.clock.advance(4)  # its beacons: stale
        self.node.beacon_heard(beacon("zed_1", when=self.clock.seconds()), "127.0.0.1")
        self.assertEqual([m for m in link.sent if (m.metadata or {}).get("probe")], [])
        self.clock.advance(PROBE_TIMEOUT + 1)
        self.assertIsNone(link.closed)

    def test_a_probed_link_that_speaks_is_kept(self) -> None:
        """Anything heard on the link after the probe proves it (the answer may queue
        behind other lines on a busy link)."""
        self.node.beacon_heard(beacon("zed_1", when=1000), "127.0.0.1")
        link = self.link("zed_1")
        self.clock.advance(12)
        self.node.beacon_heard(beacon("zed_1", when=self.clock.seconds()), "127.0.0.1")
        self.assertTrue(link.sent[-1].metadata.get("probe"))
        self.clock.advance(1)
        link.last_heard = self.clock.seconds()  # some other line came
        self.clock.advance(PROBE_TIMEOUT + 1)
        self.assertIsNone(link.closed)
        self.assertEqual(self.node.watch.probes, {})  # and the probe is over

    def test_a_probe_answer_waiting_when_the_deadline_rings_is_read_first(self) -> None:
        """A starved process finds the probe's deadline due before it reads the answer that
        came: the verdict waits a reactor turn."""
        from tests.fakes import TurnClock

        clock = TurnClock()
        clock.advance(1000)
        node = Node("mmm", clock, peer_id="mmm_1")
        node.dialer, node.announcer = FakeDialer(), FakeAnnouncer()
        node.beacon_heard(beacon("zed_1", when=1000), "127.0.0.1")
        link = FakeLink("zed_1", "zed", now=clock.seconds())
        self.assertTrue(node.link_ready(link))
        clock.advance(12)
        node.beacon_heard(beacon("zed_1", when=clock.seconds()), "127.0.0.1")
        token = link.sent[-1].metadata["probe"]
        clock.advance(PROBE_TIMEOUT + 0.5)  # rings; the verdict is the next turn
        self.assertIsNone(link.closed)
        node.message_received(link, Message(id="a1", type="heartbeat", sender_id="zed_1",
                                            metadata={"answer": token}))  # read in that turn
        clock.advance(0)
        self.assertIsNone(link.closed)

    def test_probes_are_answered(self) -> None:
        link = self.link("zed_1")
        self.node.message_received(link, Message(id="p1", type="heartbeat", sender_id="zed_1",
                                                 metadata={"probe": "t0k"}))
        self.assertEqual(link.sent[-1].metadata, {"answer": "t0k"})

    def test_base_link_not_dropped_for_silence(self) -> None:
        link = self.link("zed_1", caps=())
        for _ in range(9):  # silent on its link for 3 x IDLE_TIMEOUT, but announcing
            self.clock.advance(IDLE_TIMEOUT / 3)
            self.node.beacon_heard(beacon("zed_1", when=self.clock.seconds()), "127.0.0.1")
            self.node.sweep()
        self.assertIsNone(link.closed)

    def test_base_link_that_never_announces_is_closed(self) -> None:
        link = self.link("zed_1", caps=())
        self.clock.advance(GONE_AFTER + 1)
        self.node.sweep()
        self.assertEqual(link.closed, "it never announced itself")

    def test_plain_link_gets_no_extensions_from_a_node_with_a_key(self) -> None:
        node = Node("kkk", self.clock, identity=Identity.generate())
        link = FakeLink("aaa_1", "aaa", caps=("p2pchat-py/1", "catchup/1", "rooms/1"))
        self.assertTrue(node.link_ready(link))
        session = node.links["aaa_1"]
        self.assertEqual((session.ours, session.catchup, session.rooms, session.relay),
                         (True, False, False, False))
        node.message_received(link, Message(id="s", type="sync", sender_id="aaa_1",
                                            metadata={"sent": 2**64 - 1, "have": None}))
        self.assertNotIn("aaa_1", node.room.high_water)

    def test_no_link_while_leaving(self) -> None:
        self.node.say_goodbye()
        link = FakeLink("zed_1", "zed")
        self.assertFalse(self.node.link_ready(link))


class Messages(NodeTest):
    def test_chat_shown_once(self) -> None:
        link = self.link("zed_1")
        self.node.message_received(link, chat("zed_1", "hi"))
        self.node.message_received(link, chat("zed_1", "hi"))
        lines = self.shown(events.ChatLine)
        self.assertEqual([(e.nick, e.text, e.own) for e in lines], [("zed", "hi", False)])

    def test_line_for_another_sender_refused(self) -> None:
        link = self.link("zed_1")
        self.node.message_received(link, chat("aaa_1", "I am aaa"))
        self.assertEqual(self.shown(events.ChatLine), [])
        self.assertIsNotNone(link.closed)

    def test_heartbeats_and_unknown_types_not_shown(self) -> None:
        link = self.link("zed_1")
        self.node.message_received(link, Message(id="h", type="heartbeat", sender_id="zed_1"))
        self.node.message_received(link, Message(id="f", type="file", sender_id="zed_1"))
        self.assertEqual(self.shown(events.ChatLine), [])

    def test_nick_change_by_join(self) -> None:
        link = self.link("zed_1")
        self.node.message_received(link, Message(id="j", type="join", sender_id="zed_1",
                                                 username="zorro"))
        self.assertEqual([(e.old, e.new) for e in self.shown(events.NickChanged)],
                         [("zed", "zorro")])
        self.node.message_received(link, chat("zed_1", "hi", msg_id="m2", name="zorro"))
        self.assertEqual(self.shown(events.ChatLine)[-1].nick, "zorro")
        self.assertEqual(self.node.users()[0].nick, "zorro")

    def test_shown_under_the_nick_of_the_link(self) -> None:
        link = self.link("zed_1")
        self.node.message_received(link, chat("zed_1", "trust me", name="mallory"))
        self.assertEqual(self.shown(events.ChatLine)[0].nick, "zed")

    def test_a_peer_never_announced_leaves_nothing_behind(self) -> None:
        link = self.link("zed_1")  # linked, but no beacon of it was ever heard
        self.clock.advance(FLAP_WINDOW)
        self.node.link_lost(link, "gone")
        self.assertEqual(self.node.away, {})
        self.assertIn("zed_1", self.dialer.dropped)

    def test_control_characters_neutralised(self) -> None:
        link = self.link("zed_1")
        self.node.message_received(link, chat("zed_1", "\x1b[2Jboom\x07"))
        self.assertEqual(self.shown(events.ChatLine)[0].text, "\ufffd[2Jboom\ufffd")

    def test_action(self) -> None:
        link = self.link("zed_1")
        self.node.message_received(link, chat("zed_1", "* zed waves", metadata={"action": "waves"}))
        line = self.shown(events.ChatLine)[0]
        self.assertEqual((line.text, line.action), ("waves", True))


class Verbs(NodeTest):
    def test_say_goes_to_every_link_with_rising_sequence(self) -> None:
        a, b = self.link("zed_1"), self.link("yak_1")
        first, second = said(self.node.say("one")), said(self.node.say("two"))
        for link in (a, b):
            self.assertEqual([m.content for m in link.sent], ["one", "two"])
        self.assertEqual(second.sequence, first.sequence + 1)
        own = self.shown(events.ChatLine)
        self.assertEqual([(e.text, e.own, e.sent_to) for e in own],
                         [("one", True, 2), ("two", True, 2)])

    def test_say_alone_warns_once(self) -> None:
        self.node.say("anyone?")
        self.node.say("hello?")
        self.assertEqual(self.shown(events.ChatLine)[0].sent_to, 0)
        self.assertEqual(len(self.shown(events.Notice)), 1)
        self.assertTrue(self.shown(events.Notice)[0].error)
        link = self.link("zed_1")
        self.clock.advance(FLAP_WINDOW)
        self.node.link_lost(link, "gone")
        self.node.say("again?")
        self.assertEqual(len(self.shown(events.Notice)), 2)

    def test_going_stale_redraws_the_peer_list(self) -> None:
        self.node.beacon_heard(beacon("zed_1", when=1000), "127.0.0.1")
        self.node.sweep()
        before = len(self.shown(events.PeersChanged))
        self.node.sweep()
        self.assertEqual(len(self.shown(events.PeersChanged)), before)
        self.clock.advance(10)
        self.node.sweep()
        self.assertEqual(len(self.shown(events.PeersChanged)), before + 1)

    def test_act_reads_sensibly_on_a_base_peer(self) -> None:
        link = self.link("zed_1")
        self.node.act("waves")
        self.assertEqual(link.sent[0].content, "* mmm waves")
        self.assertEqual(link.sent[0].metadata, {"action": "waves"})

    def test_set_nick(self) -> None:
        link = self.link("zed_1")
        self.assertIn("spaces", refusal(self.node.set_nick("a b")))
        self.assertIn("already", refusal(self.node.set_nick("mmm")))
        self.assertEqual(self.node.set_nick("newname"), Done())
        sent = link.sent[-1]
        self.assertEqual((sent.type, sent.username, sent.content),
                         ("join", "newname", "mmm changed their name to newname"))
        self.assertEqual(self.announcer.announced, 1)
        self.assertEqual(self.node.beacon("announce").username, "newname")

    def test_goodbye_and_heartbeat(self) -> None:
        link = self.link("zed_1")
        self.node.heartbeat()
        self.node.say_goodbye()
        self.assertEqual([m.type for m in link.sent], ["heartbeat", "leave"])

    def test_a_failing_observer_does_not_stop_the_others(self) -> None:
        def broken(event):
            raise RuntimeError("boom")

        self.node.unsubscribe(self.events.append)
        self.node.subscribe(broken)
        self.node.subscribe(self.events.append)
        self.node.say("still works")
        self.assertEqual(len(self.shown(events.ChatLine)), 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)  # the line and the notice


class ChatQueryTests(TestCase):
    """The queries faces use instead of reading the node's tables (interfaces.IChat)."""

    def test_rooms_and_members(self) -> None:
        clock = Clock()
        node = Node("alice", clock, peer_id="a" * 16)
        node.join_room("#ops")
        self.assertEqual(node.my_rooms(), ["general", "ops"])
        node.my_rooms().append("nope")  # a copy
        self.assertEqual(node.my_rooms(), ["general", "ops"])
        node.rooms.set_peer("b" * 16, frozenset({"general", "ops"}))
        node.rooms.set_peer("c" * 16, frozenset({"general"}))
        node.links["b" * 16] = object()  # type: ignore[assignment]
        self.assertEqual(node.members("ops"), frozenset({"b" * 16}))
        self.assertEqual(node.members("general"), frozenset({"b" * 16}))  # c is not linked
        self.assertEqual(node.rooms_of("c" * 16), frozenset({"general"}))
        clock.advance(5)
        self.assertEqual(node.now(), 5)
