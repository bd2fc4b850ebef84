"""Slash-command parsing, shared by every face."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from p2pchat.commands import Command, Refusal, Say, help_lines, parse_input, room_name
from p2pchat.wire import MAX_SAY_BYTES


class Parse(TestCase):
    def test_text_and_blank(self) -> None:
        self.assertEqual(parse_input("hello"), Say("hello"))
        self.assertIsNone(parse_input("   "))
        self.assertIsNone(parse_input(""))
        self.assertEqual(parse_input("//etc/passwd"), Say("/etc/passwd"))

    def test_commands_and_aliases(self) -> None:
        self.assertEqual(parse_input("/nick  bob "), Command("nick", "bob"))
        self.assertEqual(parse_input("/WHO"), Command("users"))
        self.assertEqual(parse_input("/q"), Command("quit"))
        self.assertEqual(parse_input("/exit"), Command("quit"))
        self.assertEqual(parse_input("/me waves"), Command("me", "waves"))

    def test_refusals(self) -> None:
        self.assertIn("unknown command /frob", parse_input("/frob x").reason)
        self.assertEqual(parse_input("/nick"), Refusal("usage: /nick NAME"))
        too_long = parse_input("é" * MAX_SAY_BYTES)
        self.assertIsInstance(too_long, Refusal)
        self.assertIn(str(MAX_SAY_BYTES), too_long.reason)
        self.assertEqual(parse_input("x" * MAX_SAY_BYTES), Say("x" * MAX_SAY_BYTES))

    def test_the_short_way_for_plain_text_answers_as_the_long_way(self) -> None:
        """A plain line short enough in any encoding skips the byte count (a paste is made of
        them); at the edge, and past it, the long way counts the bytes."""
        four = "\U0001f600"  # four bytes in UTF-8
        self.assertEqual(parse_input(four * (MAX_SAY_BYTES // 4)),
                         Say(four * (MAX_SAY_BYTES // 4)))
        self.assertIsInstance(parse_input(four * (MAX_SAY_BYTES // 4 + 1)), Refusal)
        self.assertIsNone(parse_input(" \t "))
        self.assertIsNone(parse_input("\r\n"))
        self.assertEqual(parse_input("hi\r"), Say("hi"))
        self.assertEqual(parse_input(" hi "), Say(" hi "))

    def test_help_lists_every_command(self) -> None:
        text = "\n".join(help_lines())
        for name in ("/help", "/users", "/who", "/nick", "/me", "/clear", "/quit", "/q", "/exit"):
            self.assertIn(name, text)


class RoomNames(TestCase):
    """What the user typed to a room name (commands.room_name: the faces and the node use the
    same)."""

    def test_names(self) -> None:
        self.assertEqual(room_name("#Ops"), ("ops", None))
        self.assertEqual(room_name("  team-2 "), ("team-2", None))
        name, problem = room_name("#bad room")
        self.assertIn("for example #ops or #team-2", problem or "")
        self.assertEqual(room_name("")[0], "")
