"""Lines caught up live after a reconnect (``ChatLine.replayed``) in a ``chathistory`` batch
for a client with ``batch`` (caught_up.py): opened at the first, closed by a live line, by a
line of another conversation, by the quiet timer, and never left open or timed at
disconnect; nothing for a client without ``batch``."""

from __future__ import annotations

import re

from p2pchat import events
from p2pchat.irc.caught_up import CATCH_UP_QUIET
from tests.test_irc_v3 import V3TestCase, split_tags


class CaughtUpTests(V3TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.bob = self.link("bob_00000002", "bob")

    def say(self, text: str, replayed: bool, room: str = "general") -> None:
        self.factory.on_event(events.ChatLine(
            self.clock.seconds() - 100, "bob", text, "bob_00000002", f"m-{text}",
            room=room, replayed=replayed,
            private="bob" if room.startswith("@") else ""))

    def timers(self) -> list:
        return [c for c in self.clock.getDelayedCalls()
                if c.func == self.factory.caught_up.close]

    def batched(self) -> list[tuple[dict[str, str], str]]:
        return [split_tags(line) for line in self.client_.lines()]

    def open_with_two(self) -> str:
        self.client_ = self.capable("batch", "server-time")
        self.client_.lines()
        self.say("one", True)
        self.say("two", True)
        lines = self.batched()
        match = re.fullmatch(r":p2pchat BATCH \+(\S+) chathistory #general", lines[0][1])
        assert match is not None, lines
        ref = match.group(1)
        self.assertEqual(len(lines), 3, lines)
        for tags, rest in lines[1:]:
            self.assertEqual(tags["batch"], ref)
            self.assertIn(" PRIVMSG #general :", rest)
        return ref

    def test_opened_and_closed_by_a_live_line(self) -> None:
        ref = self.open_with_two()
        self.say("live", False)
        lines = self.batched()
        self.assertEqual(lines[0][1], f":p2pchat BATCH -{ref}")
        self.assertNotIn("batch", lines[1][0])
        self.assertTrue(lines[1][1].endswith(" PRIVMSG #general :live"), lines)
        self.assertEqual(len(lines), 2)
        self.clock.advance(CATCH_UP_QUIET * 2)
        self.assertEqual(self.batched(), [])  # the timer went with the batch
        self.assertEqual(self.timers(), [])

    def test_closed_by_the_quiet_timer(self) -> None:
        ref = self.open_with_two()
        self.clock.advance(CATCH_UP_QUIET * 0.9)
        self.say("three", True)  # still coming: the same batch, the timer starts again
        self.clock.advance(CATCH_UP_QUIET * 0.9)
        lines = self.batched()
        self.assertEqual(len(lines), 1)
        self.assertEqual(lines[0][0]["batch"], ref)
        self.clock.advance(CATCH_UP_QUIET * 0.2)
        self.assertEqual([rest for _, rest in self.batched()], [f":p2pchat BATCH -{ref}"])

    def test_another_conversation_gets_its_own_batch(self) -> None:
        ref = self.open_with_two()
        self.say("in private", True, room="@bob_00000002")
        lines = self.batched()
        self.assertEqual(lines[0][1], f":p2pchat BATCH -{ref}")
        match = re.fullmatch(r":p2pchat BATCH \+(\S+) chathistory bob", lines[1][1])
        assert match is not None, lines
        self.assertNotEqual(match.group(1), ref)
        self.assertEqual(lines[2][0]["batch"], match.group(1))

    def test_nothing_open_or_timed_after_disconnect(self) -> None:
        self.open_with_two()
        self.assertEqual(len(self.timers()), 1)
        self.client_.proto.connectionLost(None)
        self.assertEqual(self.factory.caught_up.open, {})
        self.assertEqual(self.timers(), [])
        self.clock.advance(CATCH_UP_QUIET * 2)
        self.assertEqual(self.client_.lines(), [])

    def test_nothing_for_a_client_without_batch(self) -> None:
        self.client_ = self.capable("server-time")
        plain = self.client()
        self.client_.lines()
        plain.lines()
        self.say("one", True)
        self.say("live", False)
        for client in (self.client_, plain):
            lines = client.lines()
            self.assertEqual(len(lines), 2, lines)
            self.assertNotIn("BATCH", " ".join(lines))
            self.assertNotIn("batch=", " ".join(lines))
        self.assertEqual(self.factory.caught_up.open, {})
