"""Joiners typed or pasted into the console stay in the line (issue 14, item 8).

urwid hands a zero-width joiner (U+200D) or non-joiner (U+200C) over as a key of its own;
``str.isprintable()`` says no to them (they are format characters), so the console dropped
them and ``👨‍👩‍👧`` went out as three separate faces, though the wire and every face keep it.
"""

from __future__ import annotations

from twisted.trial import unittest
from urwid.display import escape

from p2pchat.console.input_line import InputLine, is_text_key

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
TEXT = f"hi {FAMILY} \u2764\ufe0f a\u200cb"


def terminal_keys(text: str) -> list:
    """The keys urwid makes of ``text`` as a terminal sends it (UTF-8 bytes)."""
    data, keys = list(text.encode("utf-8")), []
    while data:
        got, data = escape.process_keyqueue(data, more_available=False)
        keys += got
    return keys


class JoinersTyped(unittest.TestCase):
    def test_urwid_gives_joiners_as_keys(self) -> None:
        keys = terminal_keys(TEXT)
        self.assertIn("\u200d", keys)
        self.assertIn("\u200c", keys)

    def test_joiners_are_text_keys(self) -> None:
        self.assertTrue(is_text_key("\u200d"))
        self.assertTrue(is_text_key("\u200c"))
        self.assertTrue(is_text_key("\ufe0f"))

    def test_typed_line_keeps_joiners(self) -> None:
        said: list[str] = []
        line = InputLine(lambda text: said.append(text) or True, lambda text, pos: [])
        for key in terminal_keys(TEXT) + ["enter"]:
            line.keypress((80,), key)
        self.assertEqual(said, [TEXT])

    def test_controls_are_still_not_text(self) -> None:
        for ch in ("\x1b", "\x07", "\x85", "\u202e"):
            self.assertFalse(is_text_key(ch), ascii(ch))
