"""Typing (``typing/1``) and away (``away/1``): between two nodes, the rate limits both ways,
never stored, sequenced or sent to a base peer; /set typing kept in the data dir; the
console's status line; the IRC face's +typing TAGMSG, AWAY, away-notify and RPL_AWAY."""

from __future__ import annotations

import os

import pytest_twisted
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from p2pchat import events
from p2pchat.activity import (
    SETTINGS_NAME,
    TYPING_EVERY,
    TYPING_HEARD_BURST,
    TYPING_SHOWN,
    Settings,
)
from p2pchat.identity import Identity
from p2pchat.interfaces import Done, Refused
from p2pchat.irc import caps
from p2pchat.node import Node
from p2pchat.wire import (
    AWAY,
    CAP_AWAY,
    CAP_OURS,
    CAP_ROOMS,
    CAP_TYPING,
    MAX_AWAY_CHARS,
    TYPING,
    Message,
    new_message_id,
)
from tests.fakes import FakeLink
from tests.support import InProcessPeer, fresh_multicast, wait_for
from tests.test_catchup import Wire
from tests.test_console import ChatHarness
from tests.test_irc import Client, IrcTestCase

OURS = (CAP_OURS, CAP_ROOMS, CAP_TYPING, CAP_AWAY)


class TwoNodes(TestCase):
    """alice and bob linked as the mesh links them (test_catchup.Wire)."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.a = Node("alice", self.clock, peer_id="a_1")
        self.b = Node("bob", self.clock, peer_id="b_1")
        self.seen: list = []
        self.b.subscribe(self.seen.append)
        self.wire = Wire(self.a, self.b, self.clock)
        self.wire.connect()
        self.wire.pump()

    def typing(self) -> list[events.Typing]:
        return [e for e in self.seen if isinstance(e, events.Typing)]

    def sent(self, kind: str) -> list[bytes]:
        """The lines of ``kind`` waiting on the wire (before pump)."""
        return [data for _, _, data in self.wire.queue if f'"type":"{kind}"'.encode() in data]

    def test_typing_reaches_the_other_side_and_is_never_stored_nor_sequenced(self) -> None:
        sequence = self.a.outbox.sequence
        self.a.typing("general")
        self.wire.pump()
        [shown] = self.typing()
        self.assertEqual((shown.nick, shown.peer_id, shown.room),
                         ("alice", "a_1", "general"))
        self.assertEqual(shown.until, self.clock.seconds() + TYPING_SHOWN)
        self.assertEqual(self.a.outbox.sequence, sequence)  # not in the sent log
        self.assertEqual(self.b.history("general"), [])
        self.assertEqual(self.a.history("general"), [])

    def test_private_typing_is_shown_in_the_private_talk(self) -> None:
        self.a.typing("@b_1")
        self.wire.pump()
        self.assertEqual([e.room for e in self.typing()], ["@a_1"])

    def test_sent_at_most_once_per_interval(self) -> None:
        for _ in range(5):
            self.a.typing("general")
            self.clock.advance(0.5)
        self.assertEqual(len(self.sent(TYPING)), 1)
        self.clock.advance(TYPING_EVERY)
        self.a.typing("general")
        self.assertEqual(len(self.sent(TYPING)), 2)

    def test_set_typing_off_sends_none(self) -> None:
        self.assertIsInstance(self.a.setting("typing off"), Done)
        self.a.typing("general")
        self.assertEqual(self.sent(TYPING), [])
        self.assertIsInstance(self.a.setting("typing maybe"), Refused)
        self.assertIsInstance(self.a.setting("colour on"), Refused)
        self.assertEqual(self.a.setting(""), ["typing: off"])

    def test_received_typing_is_rate_limited_per_link(self) -> None:
        link = self.b.links["a_1"]
        for _ in range(20):  # a peer that ignores our limit: only a burst is taken
            self.b.message_received(link.wire, Message(new_message_id(), TYPING, "a_1"))
        self.assertEqual(len(self.typing()), TYPING_HEARD_BURST)
        self.clock.advance(1.0)
        self.b.message_received(link.wire, Message(new_message_id(), TYPING, "a_1"))
        self.assertEqual(len(self.typing()), TYPING_HEARD_BURST + 1)

    def test_typing_for_a_room_we_are_not_in_is_dropped(self) -> None:
        link = self.b.links["a_1"]
        self.b.message_received(link.wire, Message(new_message_id(), TYPING, "a_1",
                                                   room_id="ops"))
        self.assertEqual(self.typing(), [])

    def test_away_and_back_reach_the_other_side(self) -> None:
        self.assertEqual(self.a.set_away("lunch"), Done("you are away: lunch"))
        self.wire.pump()
        [row] = [r for r in self.b.users() if r.peer_id == "a_1"]
        self.assertEqual(row.away, "lunch")
        whois = self.b.whois("alice")
        assert isinstance(whois, list)
        self.assertIn("  away: lunch", whois)
        self.assertEqual(self.b.away_of("a_1"), "lunch")
        self.a.set_away("")
        self.wire.pump()
        self.assertEqual(self.b.away_of("a_1"), "")
        self.assertEqual([(e.nick, e.text) for e in self.seen
                          if isinstance(e, events.AwayChanged)],
                         [("alice", "lunch"), ("alice", "")])
        self.assertEqual(self.b.history("general"), [])

    def test_a_newcomer_learns_we_are_away_in_its_first_exchange(self) -> None:
        self.wire.cut()
        self.a.set_away("in a meeting")
        self.wire.connect()
        self.wire.pump()
        self.assertEqual(self.b.away_of("a_1"), "in a meeting")

    def test_a_received_away_text_is_cut_and_made_printable(self) -> None:
        link = self.b.links["a_1"]
        self.b.message_received(link.wire, Message(new_message_id(), AWAY, "a_1",
                                                   content="\x07" + "z" * 5000))
        self.assertEqual(self.b.away_of("a_1"), "\ufffd" + "z" * (MAX_AWAY_CHARS - 1))

    def test_away_text_is_cut_and_made_printable(self) -> None:
        self.a.set_away("x\x1b[2J" + "y" * 500)
        self.wire.pump()
        away = self.b.away_of("a_1")
        self.assertTrue(away.startswith("x\ufffd[2J"))
        self.assertEqual(len(away), 200)


class BasePeers(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.node = Node("alice", self.clock, peer_id="a_1")

    def test_a_base_peer_gets_no_typing_nor_away(self) -> None:
        base = FakeLink("c_1", "carol", caps=())
        ours = FakeLink("d_1", "dave", caps=OURS)
        self.assertTrue(self.node.link_ready(base))
        self.assertTrue(self.node.link_ready(ours))
        self.node.set_away("lunch")
        self.node.typing("general")
        self.assertEqual([m.type for m in base.sent if m.type in (TYPING, AWAY)], [])
        self.assertEqual([m.type for m in ours.sent if m.type in (TYPING, AWAY)],
                         [AWAY, TYPING])
        # and one that comes up while we are away learns it, a base peer does not
        later_base = FakeLink("e_1", "erin", caps=())
        later = FakeLink("f_1", "fay", caps=OURS)
        self.node.link_ready(later_base)
        self.node.link_ready(later)
        self.assertEqual([m.content for m in later.sent if m.type == AWAY], ["lunch"])
        self.assertEqual([m for m in later_base.sent if m.type == AWAY], [])

    def test_a_plain_link_claiming_the_caps_gets_none_while_we_have_a_key(self) -> None:
        node = Node("alice", self.clock, identity=Identity.generate())
        claims = FakeLink("c_1", "carol", caps=OURS)  # proved no key: not one of ours
        self.assertTrue(node.link_ready(claims))
        node.set_away("lunch")
        node.typing("general")
        self.assertEqual([m.type for m in claims.sent if m.type in (TYPING, AWAY)], [])

    def test_typing_and_away_from_a_peer_without_the_caps_are_ignored(self) -> None:
        seen: list = []
        self.node.subscribe(seen.append)
        base = FakeLink("c_1", "carol", caps=(CAP_OURS, CAP_ROOMS))
        self.node.link_ready(base)
        self.node.message_received(base, Message(new_message_id(), TYPING, "c_1"))
        self.node.message_received(base, Message(new_message_id(), AWAY, "c_1",
                                                 content="gone"))
        self.assertEqual([e for e in seen if isinstance(e, (events.Typing,
                                                            events.AwayChanged))], [])
        self.assertEqual(self.node.away_of("c_1"), "")

    def test_the_typing_setting_is_kept_in_the_data_dir(self) -> None:
        path = os.path.join(self.mktemp())
        os.makedirs(path)
        settings = Settings(os.path.join(path, SETTINGS_NAME))
        self.node.activity.settings = settings
        self.node.setting("typing off")
        self.assertFalse(Settings(os.path.join(path, SETTINGS_NAME)).values["typing"])
        self.assertEqual(os.stat(os.path.join(path, SETTINGS_NAME)).st_mode & 0o777, 0o600)


class ConsoleTyping(TestCase):
    def setUp(self) -> None:
        self.h = ChatHarness()
        self.bob = self.h.peer("bob")

    def status(self) -> str:
        return self.h.lines()[-2]

    def test_status_line_names_who_types_here_until_it_ends(self) -> None:
        now = self.h.clock.seconds()
        self.h.chat.emit(events.Typing(now, "bob", self.bob.peer_id, "general", now + 6))
        self.assertIn("bob is typing", self.status())
        self.h.clock.advance(5)
        self.assertIn("bob is typing", self.status())
        self.h.clock.advance(1.1)
        self.assertNotIn("is typing", self.status())

    def test_only_for_the_conversation_on_screen_and_cleared_by_its_line(self) -> None:
        now = self.h.clock.seconds()
        self.h.chat.emit(events.Typing(now, "bob", self.bob.peer_id, "ops", now + 6))
        self.assertNotIn("is typing", self.status())
        self.h.chat.emit(events.Typing(now, "bob", self.bob.peer_id, "general", now + 6))
        self.assertIn("bob is typing", self.status())
        self.h.hear(self.bob, "done typing")
        self.assertNotIn("is typing", self.status())

    def test_typing_text_tells_the_chat_but_a_command_does_not(self) -> None:
        self.h.type("hi")
        self.assertEqual([c for c in self.h.chat.calls if c[0] == "typing"],
                         [("typing", "general")] * 2)
        self.h.keys("enter")
        self.h.chat.calls.clear()
        self.h.type("/users")
        self.assertEqual([c for c in self.h.chat.calls if c[0] == "typing"], [])

    def test_away_and_back_commands(self) -> None:
        self.h.enter("/away lunch")
        self.h.enter("/back")
        self.h.enter("/away")
        self.assertEqual([c for c in self.h.chat.calls if c[0] == "set_away"],
                         [("set_away", "lunch"), ("set_away", ""), ("set_away", "away")])


class IrcActivity(IrcTestCase):
    def capable(self, *wanted: str) -> Client:
        client = Client(self.factory)
        client.send("CAP LS 302", "NICK alice", "USER a 0 * :a",
                    f"CAP REQ :{' '.join(wanted)}", "CAP END")
        client.lines()
        return client

    def peer(self) -> FakeLink:
        link = FakeLink("bob_00000002", "bob", caps=OURS)
        self.assertTrue(self.node.link_ready(link))
        return link

    def test_peer_typing_is_a_tagmsg_to_clients_with_message_tags(self) -> None:
        tagged = self.capable("message-tags")
        plain = self.client()
        bob = self.peer()
        tagged.lines(), plain.lines()
        self.hear(bob, TYPING)
        self.assertEqual(tagged.lines(),
                         [f"@+typing=active :bob!{self.mask_tail()} TAGMSG #general"])
        self.assertEqual(plain.lines(), [])
        self.clock.advance(1)
        self.hear(bob, TYPING, metadata={"to": self.node.peer_id})
        self.assertEqual(tagged.lines(),
                         [f"@+typing=active :bob!{self.mask_tail()} TAGMSG alice"])
        self.assertEqual(plain.lines(), [])

    def test_client_tagmsg_typing_is_our_typing(self) -> None:
        client = self.capable("message-tags")
        bob = self.peer()
        client.send("@+typing=active TAGMSG #general")
        self.assertEqual([m.type for m in bob.sent if m.type == TYPING], [TYPING])
        self.clock.advance(TYPING_EVERY)
        client.send("@+typing=active TAGMSG bob")
        [private] = [m for m in bob.sent if m.type == TYPING][1:]
        self.assertEqual((private.metadata or {}).get("to"), bob.peer_id)
        self.clock.advance(TYPING_EVERY)
        client.send("@+typing=done TAGMSG #general")  # not typing: nothing sent
        self.assertEqual(len([m for m in bob.sent if m.type == TYPING]), 2)

    def test_tags_of_a_client_without_message_tags_are_ignored(self) -> None:
        client = self.client()
        bob = self.peer()
        client.lines()
        client.send("@+typing=active PRIVMSG #general :hi", "@+typing=active TAGMSG #general")
        self.assertEqual([m.type for m in bob.sent if m.type == TYPING], [])
        self.assertEqual(client.proto.tags_in, {})
        self.assertIn("421", client.commands())

    def test_client_tags_are_bounded(self) -> None:
        many = ";".join(f"+t{i}=v" for i in range(100))
        self.assertEqual(len(caps.parse_tags(many)), caps.MAX_CLIENT_TAGS)
        self.assertEqual(caps.parse_tags(r"+typing=a\sb\:c"), {"+typing": "a b;c"})

    def test_away_notify_and_rpl_away(self) -> None:
        notified = self.capable("away-notify")
        plain = self.client()
        bob = self.peer()
        notified.lines(), plain.lines()
        self.hear(bob, AWAY, "lunch")
        self.assertEqual([l for l in notified.lines() if " AWAY " in l],
                         [f":bob!{self.mask_tail()} AWAY :lunch"])
        self.assertEqual([l for l in plain.lines() if " AWAY" in l], [])
        plain.send("PRIVMSG bob :hello")
        self.assertIn(":p2pchat 301 alice bob :lunch", plain.lines())
        plain.send("WHOIS bob")
        self.assertIn(":p2pchat 301 alice bob :lunch", plain.lines())
        self.hear(bob, AWAY, "")
        self.assertEqual([l for l in notified.lines() if " AWAY" in l],
                         [f":bob!{self.mask_tail()} AWAY"])
        plain.send("PRIVMSG bob :again")
        self.assertEqual([l for l in plain.lines() if " 301 " in l], [])

    def mask_tail(self) -> str:
        member = self.factory.roster.peer("bob_00000002")
        assert member is not None
        return member.mask.partition("!")[2]

    def test_client_away_sets_ours(self) -> None:
        client = self.client()
        bob = self.peer()
        client.lines()
        client.send("AWAY :gone fishing")
        self.assertIn("306", client.commands())
        self.assertEqual([m.content for m in bob.sent if m.type == AWAY], ["gone fishing"])
        client.send("AWAY")
        self.assertIn("305", client.commands())
        self.assertEqual([m.content for m in bob.sent if m.type == AWAY],
                         ["gone fishing", ""])



@pytest_twisted.ensureDeferred
async def test_typing_and_away_reach_the_other_node_over_tls() -> None:
    """Two whole nodes on loopback (keys, TLS links): alice's typing and away reach bob;
    bob, linking while alice is away, learns it in the link's first exchange."""
    multicast = fresh_multicast()
    alice = InProcessPeer("alice", multicast, identity=Identity.generate())
    bob = InProcessPeer("bob", multicast, identity=Identity.generate())
    running: list[InProcessPeer] = []
    try:
        await alice.start()
        running.append(alice)
        alice.node.set_away("lunch")
        await bob.start()
        running.append(bob)
        await wait_for(lambda: alice.node.peer_id in bob.node.links
                       and bob.node.peer_id in alice.node.links)
        assert bob.node.links[alice.node.peer_id].tls  # one of ours, proven
        await wait_for(lambda: bob.node.away_of(alice.node.peer_id) == "lunch")
        alice.node.typing("general")
        await wait_for(lambda: any(isinstance(e, events.Typing) and e.nick == "alice"
                                   for e in bob.events))
        alice.node.set_away("")
        await wait_for(lambda: bob.node.away_of(alice.node.peer_id) == "")
        assert bob.node.history("general") == []  # nothing of it was stored
    finally:
        for peer in reversed(running):
            await peer.stop()
