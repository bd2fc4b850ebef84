"""Nicks and keys: our own nick is ours, pins are bounded per key and a full table trusts
nobody, /ignore, the nick kept across restarts, and what received text may hold."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from p2pchat import events, wire
from p2pchat.commands import Command, Refusal, parse_input
from p2pchat.identity import (MAX_PINS_PER_KEY, PIN_IDLE_EVICT, Identity, Pins, peer_id_for,
                              short_form)
from p2pchat.ignore import IGNORED_NAME, Ignores
from p2pchat.nick import NICK_NAME, NickKeeper, saved_nick, start_nick
from p2pchat.interfaces import Done
from p2pchat.node import CAPS, Node
from p2pchat.trust import Trust
from p2pchat.wire import MAX_ROOMS, Message

from tests.fakes import RecordingFace, FakeLink, done, refusal


def key(n: int) -> str:
    """A made-up fingerprint (64 hex digits), different for each n (so is its peer id)."""
    return hashlib.sha256(str(n).encode()).hexdigest()


def join(link: FakeLink, nick: str, n: int) -> Message:
    return Message(id=f"j{link.peer_id}{n}", type="join", sender_id=link.peer_id,
                   username=nick, content=f"changed their name to {nick}")


def chat(link: FakeLink, text: str, msg_id: str) -> Message:
    return Message(id=msg_id, type="chat", sender_id=link.peer_id, username=link.username,
                   content=text, timestamp=1.0)


class NickTest(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.wall = [1_000_000.0]
        self.pins = Pins(None, now=lambda: self.wall[0])
        self.me = Identity.generate()
        self.node = Node("alice", self.clock, identity=self.me, trust=Trust(self.pins))
        self.events: list = []
        self.node.subscribe(self.events.append)
        self.renames = 0

    def link(self, nick: str, n: int, plain: bool = False) -> FakeLink:
        fp = "" if plain else key(n)
        peer_id = f"plain{n}" if plain else peer_id_for(fp)
        link = FakeLink(peer_id, nick, caps=CAPS)
        link.fp = fp
        self.assertTrue(self.node.link_ready(link))
        return link

    def rename(self, link: FakeLink, nick: str) -> None:
        self.renames += 1
        self.node.message_received(link, join(link, nick, self.renames))

    def notices(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, events.Notice)]

    def chat_nicks(self) -> list[str]:
        return [e.nick for e in self.events if isinstance(e, events.ChatLine) and not e.own]


class OwnNick(NickTest):
    def test_another_key_taking_our_nick_is_flagged_warned_once_and_not_pinned(self) -> None:
        carol = self.link("carol", 1)
        self.rename(carol, "alice")
        self.assertEqual(self.node.shown_nick(carol.peer_id), "alice?")
        self.assertIsNone(self.pins.get("alice"))  # nothing pinned to our nick
        self.node.message_received(carol, chat(carol, "it's me, alice", "c1"))
        self.assertEqual(self.chat_nicks(), ["alice?"])
        warned = [t for t in self.notices() if "uses your nick" in t]
        self.assertEqual(len(warned), 1)
        self.assertIn("alice?", warned[0])
        self.rename(carol, "carol")
        self.rename(carol, "alice")  # again: no second warning
        self.assertEqual(len([t for t in self.notices() if "uses your nick" in t]), 1)
        self.assertEqual(self.node.users()[0].nick, "alice?")
        self.assertTrue(self.node.users()[0].flagged)
        self.assertIn("NOT you", " ".join(self.node.whois("alice?")))
        self.assertIn("your own nick", refusal(self.node.trust_peer("alice?")))
        self.assertIsNone(self.pins.get("alice"))

    def test_a_link_that_starts_with_our_nick_and_a_plain_one_are_flagged(self) -> None:
        keyed = self.link("alice", 2)
        plain = self.link("alice", 3, plain=True)  # a base peer may pick it: shown, flagged
        self.assertEqual([self.node.shown_nick(keyed.peer_id),
                          self.node.shown_nick(plain.peer_id)], ["alice?", "alice?"])
        self.assertEqual(len([t for t in self.notices() if "uses your nick" in t]), 2)

    def test_our_nick_is_ours_even_if_the_pins_say_otherwise(self) -> None:
        self.pins.pin("alice", key(9))  # e.g. seen before we took the nick
        other = self.link("alice", 9)
        self.assertEqual(self.node.shown_nick(other.peer_id), "alice?")

    def test_taking_a_nick_a_peer_uses_flags_that_peer(self) -> None:
        self.node.trust.pins.forget("bob")
        bob = self.link("zed", 4)
        self.pins.forget("zed")
        self.rename(bob, "newbie")  # pinned to bob's key now
        self.assertIn("pinned to another key", refusal(self.node.set_nick("newbie")))
        self.assertEqual(self.node.nick, "alice")
        self.pins.forget("newbie")
        self.assertEqual(self.node.set_nick("newbie"), Done())
        self.assertEqual(self.node.shown_nick(bob.peer_id), "newbie?")
        self.assertTrue(any("newbie? uses your nick" in t for t in self.notices()))
        self.assertIsNone(self.pins.get("newbie"))
        self.assertEqual(self.node.set_nick("alice"), Done())
        # The nick we leave stays ours here: bob, who used it meanwhile, is not pinned to it.
        self.assertEqual(self.pins.get("newbie"), self.me.fingerprint)
        self.assertEqual(self.node.shown_nick(bob.peer_id), "newbie?")
        self.assertEqual(len([t for t in self.notices() if "newbie?" in t]), 1)

    def test_honest_collision_first_key_wins_on_a_third_screen(self) -> None:
        first = self.link("dave", 5)
        second = self.link("dave", 6)
        self.assertEqual([self.node.shown_nick(first.peer_id),
                          self.node.shown_nick(second.peer_id)], ["dave", "dave?"])
        self.assertEqual(self.pins.get("dave"), key(5))
        self.assertEqual(len([t for t in self.notices() if "dave?" in t]), 1)


class BoundedPins(NickTest):
    def test_a_renaming_key_keeps_only_its_newest_pins_and_tofu_stays_on(self) -> None:
        """15.4: a rogue key renaming 10,500 times holds at most MAX_PINS_PER_KEY pins;
        afterwards a new honest peer is pinned, and a plain impostor of it is flagged."""
        bob = self.link("bob", 10)
        rogue = self.link("rogue", 11)
        started = time.monotonic()
        for n in range(10_500):
            self.rename(rogue, f"r{n}")
        self.rename(rogue, "bob")  # a nick pinned to another key is not taken over
        self.assertLess(time.monotonic() - started, 20)
        held = [nick for nick in ("rogue", "bob", *(f"r{n}" for n in range(10_500)))
                if self.pins.get(nick) == key(11)]
        self.assertEqual(held, [f"r{n}" for n in range(10_500 - MAX_PINS_PER_KEY, 10_500)])
        self.assertEqual(self.pins.get("bob"), key(10))
        self.assertEqual(self.node.shown_nick(rogue.peer_id), "bob?")
        self.assertEqual(self.node.shown_nick(bob.peer_id), "bob")
        self.assertEqual(len(self.pins), 1 + MAX_PINS_PER_KEY)
        erin = self.link("erin", 12)
        self.assertEqual(self.pins.get("erin"), key(12))
        self.assertIn("no downgrade", self.node.trust.refusal("erin", "", ""))
        fake = self.link("someone", 13, plain=True)
        self.rename(fake, "erin")
        self.assertEqual(self.node.shown_nick(fake.peer_id), "erin?")
        self.assertTrue(any("erin? has no key" in t for t in self.notices()))

    def test_a_full_table_flags_unknown_nicks_and_makes_room_only_from_idle_keys(self) -> None:
        pins = Pins(None, now=lambda: self.wall[0], max_pins=4)
        trust = Trust(pins)
        for n in range(2):
            self.assertTrue(pins.pin(f"t{n}", key(100 + n), trusted=True))
        self.assertTrue(pins.pin("old", key(200)))
        self.wall[0] += 10
        self.assertTrue(pins.pin("new", key(201)))
        self.assertFalse(pins.full)
        self.assertEqual(trust.display("stranger", key(300)), "stranger")  # not full yet
        self.assertFalse(trust.first_use("stranger", key(300)))  # full, nothing idle
        self.assertTrue(pins.full)
        self.assertEqual(trust.display("stranger", key(300)), "stranger?")
        self.assertEqual(trust.display("stranger", ""), "stranger?")  # plain: not trusted
        self.assertIn("table is full", trust.state("stranger", key(300)))
        self.wall[0] += PIN_IDLE_EVICT + 5  # "old" idle long enough; "new" seen 10 s later
        pins.touch("new", key(201))
        self.assertTrue(trust.first_use("stranger", key(300)))
        self.assertIsNone(pins.get("old"))  # the least recently seen key made room
        self.assertEqual([pins.get(n) for n in ("t0", "t1", "new", "stranger")],
                         [key(100), key(101), key(201), key(300)])
        self.assertFalse(pins.full)
        self.assertEqual(trust.display("stranger", key(300)), "stranger")
        self.wall[0] += 2 * PIN_IDLE_EVICT
        self.assertTrue(pins.pin("late", key(301)))
        self.assertEqual(pins.get("t0"), key(100))  # /trust pins are never dropped

    def test_a_renaming_key_in_a_full_table_makes_room_from_its_own_pins(self) -> None:
        pins = Pins(None, now=lambda: self.wall[0], max_pins=MAX_PINS_PER_KEY)
        for n in range(MAX_PINS_PER_KEY):
            self.assertTrue(pins.pin(f"n{n}", key(50)))
        self.assertTrue(pins.pin("newest", key(50)))  # its oldest goes, the table stays full
        self.assertEqual([pins.get("n0"), pins.get("newest")], [None, key(50)])
        self.assertFalse(pins.pin("other", key(51)))  # full, and nothing idle
        self.assertTrue(pins.full)

    def test_trust_takes_over_a_pin_and_is_not_counted_per_key(self) -> None:
        for n in range(MAX_PINS_PER_KEY):
            self.assertTrue(self.pins.pin(f"n{n}", key(20)))
        self.assertTrue(self.pins.pin("bob", key(21)))
        self.assertFalse(self.pins.pin("bob", key(20)))  # first use never takes over
        self.assertTrue(self.pins.pin("bob", key(20), trusted=True))
        self.assertEqual([self.pins.get(f"n{n}") for n in range(MAX_PINS_PER_KEY)],
                         [key(20)] * MAX_PINS_PER_KEY)

    def test_pins_file_old_format_read_and_bounded(self) -> None:
        path = os.path.join(self.mktemp(), "pins.json")
        os.makedirs(os.path.dirname(path))
        table = {f"r{n:05d}": key(30) for n in range(10_000)}
        table["bob"] = key(31)
        with open(path, "w") as f:
            json.dump(table, f)
        pins = Pins(path)
        self.assertEqual(len(pins), 1 + MAX_PINS_PER_KEY)
        self.assertEqual(pins.get("bob"), key(31))
        pins.pin("carol", key(32), trusted=True)
        again = Pins(path)
        self.assertEqual(len(again), 2 + MAX_PINS_PER_KEY)
        self.assertTrue(again.is_trusted("carol"))
        self.assertFalse(again.is_trusted("bob"))
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)


class Printable(TestCase):
    KEPT = "\u200d\u200c\ufe0e\ufe0f\u0301\u0308"
    HURTFUL = {chr(c) for c in [*range(0x20), 0x7f, *range(0x80, 0xa0)]} | set(
        wire.BIDI_CONTROLS)

    def test_family_and_flags_and_marks_kept(self) -> None:
        for text in ("👨\u200d👩\u200d👧", "❤\ufe0f", "☺\ufe0e", "e\u0301", "می\u200cخواهم",
                     "\u200fשלום"):
            self.assertEqual(wire.printable(text), text)

    def test_controls_and_overrides_replaced(self) -> None:
        self.assertEqual(wire.printable("a\x1b[2Jb\x07\x9b\u202egnp.exe\u2066x\u2069"),
                         "a\ufffd[2Jb\ufffd\ufffd\ufffdgnp.exe\ufffdx\ufffd")
        self.assertEqual(wire.printable("a\tb\u2028c"), "a b c")

    def test_joiners_reach_the_screen_and_history(self) -> None:
        """14.8: a family emoji arrived as 👨�👩�👧, live and in /history."""
        from p2pchat.store import Store

        clock = Clock()
        store = Store(self.mktemp() + "-history.sqlite3")
        self.addCleanup(store.close)
        node = Node("alice", clock, peer_id="alice_1", store=store)
        seen: list = []
        node.subscribe(seen.append)
        bob = FakeLink("bob_1", "bob", caps=CAPS)
        node.link_ready(bob)
        family = "👨\u200d👩\u200d👧 ❤\ufe0f"
        node.message_received(bob, chat(bob, family, "f1"))
        self.assertEqual([e.text for e in seen if isinstance(e, events.ChatLine)], [family])
        self.assertEqual([line.text for line in node.history("general")], [family])

    def test_names_stricter(self) -> None:
        self.assertEqual(wire.printable_name("bob\u200d"), "bob\ufffd")
        self.assertEqual(Trust().display("bob\u200d", ""), "bob\ufffd")

    @settings(max_examples=300, deadline=None)
    @given(st.text(alphabet=st.one_of(st.characters(), st.sampled_from(
        sorted(HURTFUL | set(KEPT))))))
    def test_output_never_hurts_and_keeps_joiners(self, text: str) -> None:
        out = wire.printable(text)
        self.assertFalse(set(out) & self.HURTFUL)
        self.assertEqual(len(out), len(text))
        for ch in self.KEPT:
            self.assertEqual(out.count(ch), text.count(ch))


class Ignoring(NickTest):
    def test_ignored_lines_not_shown_kept_across_restarts(self) -> None:
        path = os.path.join(self.mktemp(), IGNORED_NAME)
        os.makedirs(os.path.dirname(path))
        self.node.ignores = Ignores(path)
        face = RecordingFace(self.node)
        mallory, bob = self.link("mallory", 40), self.link("bob", 41)
        face.handle_input("/ignore")
        self.assertEqual(face.info[-1], "nobody is ignored")
        face.handle_input("/ignore mallory")
        self.assertIn(short_form(key(40)), face.info[-1])
        self.node.message_received(mallory, chat(mallory, "spam", "s1"))
        self.node.message_received(bob, chat(bob, "hi", "b1"))
        self.assertEqual(self.chat_nicks(), ["bob"])  # no line, so no notification either
        self.assertEqual([line.text for line in self.node.history("general")], ["hi"])
        self.rename(mallory, "mal2")  # by key: a new nick does not help
        self.node.message_received(mallory, chat(mallory, "spam again", "s2"))
        self.assertEqual(self.chat_nicks(), ["bob"])
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        again = Ignores(path)
        self.assertIn(mallory.peer_id, again)
        self.assertNotIn(bob.peer_id, again)
        face.handle_input("/ignore")
        self.assertIn("mallory", face.info[-1])
        face.handle_input("/ignore mal2")
        self.assertIn("already ignored", face.info[-1])
        face.handle_input("/unignore mallory")
        self.assertEqual(face.info[-1], "no longer ignoring mallory")
        self.node.message_received(mallory, chat(mallory, "hello", "s3"))
        self.assertEqual(self.chat_nicks(), ["bob", "mal2"])
        face.handle_input("/unignore mallory")
        self.assertIn("not ignored", face.info[-1])
        face.handle_input("/ignore nobody")
        self.assertIn("no linked peer", face.info[-1])
        self.assertNotIn(mallory.peer_id, Ignores(path))

    def test_ignored_lines_kept_on_disk_before_are_not_in_history(self) -> None:
        from p2pchat.store import Store

        store = Store(os.path.join(self.mktemp() + "-history.sqlite3"))
        self.addCleanup(store.close)
        node = Node("alice", self.clock, identity=self.me, trust=Trust(self.pins), store=store)
        self.node = node
        mallory, bob = self.link("mallory", 43), self.link("bob", 44)
        node.message_received(mallory, chat(mallory, "spam", "s1"))
        node.message_received(bob, chat(bob, "hi", "b1"))
        self.assertEqual(len(node.history("general")), 2)
        node.ignore("mallory")
        self.assertEqual([line.text for line in node.history("general")], ["hi"])

    def test_the_number_of_ignored_peers_is_bounded(self) -> None:
        from p2pchat.ignore import MAX_IGNORED

        ignores = Ignores(None)
        for n in range(MAX_IGNORED):
            self.assertIsNone(ignores.add(f"p{n}", "", f"n{n}"))
        self.assertIn("/unignore one first", ignores.add("one-more", "", "x"))
        self.assertEqual(len(ignores), MAX_IGNORED)

    def test_unignore_of_a_peer_that_is_gone(self) -> None:
        self.node.ignores = Ignores(None)
        plain = self.link("gopher", 42, plain=True)
        self.assertIn("peer id plain42", done(self.node.ignore("gopher")))
        self.node.link_lost(plain, "gone")
        self.assertIn("gopher", self.node.ignored()[1])
        self.assertEqual(self.node.unignore("gopher"), Done("no longer ignoring gopher"))


class KeptNick(TestCase):
    def test_saved_nick_used_unless_given(self) -> None:
        folder = self.mktemp()
        os.makedirs(folder)
        self.assertEqual(start_nick(folder, None, "login"), "login")
        keeper = NickKeeper(folder)
        keeper(events.NickChanged(0.0, "login", "carol", "me", own=True))
        keeper(events.NickChanged(0.0, "x", "someone", "other"))  # another peer's: not kept
        self.assertEqual(saved_nick(folder), "carol")
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(folder, NICK_NAME)).st_mode), 0o600)
        self.assertEqual(start_nick(folder, None, "login"), "carol")
        self.assertEqual(start_nick(folder, "dave", "dave"), "dave")  # --username wins
        self.assertEqual(start_nick(folder, None, "login"), "dave")  # and is kept
        with open(os.path.join(folder, NICK_NAME), "w") as f:
            f.write("no spaces allowed\n")
        self.assertEqual(start_nick(folder, None, "login"), "login")

    def test_options_say_whether_the_nick_was_given(self) -> None:
        from p2pchat.service import Options

        given, default = Options(), Options()
        given.parseOptions(["--username", "carol"])
        default.parseOptions([])
        self.assertEqual((given["username-given"], default["username-given"]), (True, False))


class RoomAndHistoryInput(NickTest):
    def test_join_of_a_room_we_are_in_switches_even_at_the_limit(self) -> None:
        face = RecordingFace(self.node)
        for n in range(MAX_ROOMS - 1):
            self.assertEqual(self.node.join_room(f"r{n}"), Done())
        face.handle_input("/join #r3")
        self.assertEqual((face.room, face.errors), ("r3", []))
        face.handle_input("/join #more")
        self.assertIn("rooms already", face.errors[-1])
        face.handle_input("/join #Bad!")
        self.assertIn("for example #ops", face.errors[-1])

    def test_history_count_must_be_ascii_digits(self) -> None:
        for arg in ("²", "٣", "0", "-1", "x"):
            self.assertIsInstance(parse_input(f"/history {arg}"), Refusal, arg)
        self.assertEqual(parse_input("/history 12"), Command("history", "12"))
        face = RecordingFace(self.node)
        face.handle_input("/history ²")
        self.assertIn("usage", face.errors[-1])
