"""Pastes: told apart from typing, and asked about before more than one line is sent.

The console turns on the terminal's bracketed paste mode (``ESC[?2004h``), so a paste comes
between the keys urwid names ``'begin paste'`` and ``'end paste'``.  Without it (a terminal
that does not support it), a read of keys that holds an Enter before its last key is taken as
a paste too: nobody types a line and more within one read.

``PasteGate`` is the screen-free state machine the console feeds each read of keys through.
It answers with actions for the face: keys to handle as typed, text to insert, a question to
ask, lines to send, a paste dropped.  While it asks (``asking``), Ctrl-Y and Ctrl-N (or Esc)
mean only yes and no; a pasted line is always sent as text, never run as a command.
"""

from __future__ import annotations

from typing import Iterable, Union

from p2pchat.console.input_line import is_text_key

#: Characters of one paste kept; the rest is dropped (and the user told).
PASTE_MAX_CHARS = 200_000
#: Lines one paste may send; past these the rest is dropped (the question says so).
PASTE_MAX_LINES = 100
#: A pasted tab becomes this (Tab is completion when typed).
PASTE_TAB = "    "
#: Keys that still work while the question is shown (leaving, scrolling).
WHILE_ASKING = frozenset({"ctrl c", "page up", "page down"})

BEGIN, END = "begin paste", "end paste"

Key = Union[str, tuple]
#: ("keys", [key, ...]) | ("insert", text) | ("ask", lines) | ("send", [line, ...])
#: | ("drop", lines) | ("cut", characters dropped)
Action = tuple


def paste_lines(text: str) -> list[str]:
    """The lines a paste would send: split at newlines, blank ones left out."""
    return [line.rstrip("\r") for line in text.split("\n") if line.strip()]


def is_burst(keys: list[Key]) -> bool:
    """A read that can only be a paste: text keys, with an Enter before the last key."""
    if len(keys) < 3 or not all(k in ("enter", "tab") or is_text_key(k) for k in keys):
        return False
    return "enter" in keys[:-1]


class PasteGate:
    """See the module's docstring.  ``collecting``: inside a bracketed paste; ``pending``:
    the text asked about."""

    def __init__(self) -> None:
        self.collecting = False
        self.pending: str | None = None
        self._parts: list[str] = []
        self._size = 0
        self._cut = 0

    @property
    def asking(self) -> bool:
        return self.pending is not None

    def lines(self) -> list[str]:
        return paste_lines(self.pending or "")

    def feed(self, keys: Iterable[Key]) -> list[Action]:
        keys = list(keys)
        if not self.collecting and BEGIN not in keys and (
                is_burst(keys) or (self.asking and len(keys) > 1
                                   and all(is_text_key(k) or k in ("enter", "tab")
                                           for k in keys))):
            # An unbracketed paste (or more of one while asking): all of it is the paste.
            for key in keys:
                self._take(key)
            return self._finish(joined=True)
        out: list[Action] = []
        typed: list[Key] = []
        for key in keys:
            if self.collecting:
                if key == END:
                    out += self._flush(typed) + self.end()
                else:
                    self._take(key)
            elif key == BEGIN:
                out += self._flush(typed)
                self.collecting = True
            elif key == END:
                continue  # a stray end: nothing was begun
            elif self.asking:
                out += self._flush(typed) + self._answer(key)
            else:
                typed.append(key)
        return out + self._flush(typed)

    def end(self) -> list[Action]:
        """The paste is over ('end paste', or it never came and the console stopped
        waiting)."""
        if not self.collecting:
            return []
        self.collecting = False
        return self._finish(joined=False)

    @staticmethod
    def _flush(typed: list[Key]) -> list[Action]:
        if not typed:
            return []
        keys = list(typed)
        typed.clear()
        return [("keys", keys)]

    def _take(self, key: Key) -> None:
        if key == "enter":
            piece = "\n"
        elif key == "tab":
            piece = PASTE_TAB
        elif is_text_key(key):
            piece = key  # type: ignore[assignment]
        else:
            return  # other keys inside a paste (escape sequences) are dropped
        if self._size + len(piece) > PASTE_MAX_CHARS:
            self._cut += len(piece)
            return
        self._parts.append(piece)
        self._size += len(piece)

    def _finish(self, joined: bool) -> list[Action]:
        """A paste (or a piece of one) is in: one line is inserted, more are asked about.
        ``joined``: an unbracketed piece, which continues what is asked about as it is."""
        text = "".join(self._parts)
        self._parts = []
        out: list[Action] = [("cut", self._cut)] if self._cut else []
        self._size = self._cut = 0
        if self.pending is not None:
            sep = "" if joined or self.pending.endswith("\n") else "\n"
            self.pending += sep + text
            return out + [("ask", len(self.lines()))]
        lines = paste_lines(text)
        if len(lines) <= 1:
            return out + ([("insert", lines[0])] if lines else [])
        self.pending = text
        return out + [("ask", len(lines))]

    def _answer(self, key: Key) -> list[Action]:
        if key == "ctrl y":
            lines = self.lines()
            self.pending = None
            return [("send", lines)]
        if key in ("ctrl n", "esc"):
            count = len(self.lines())
            self.pending = None
            return [("drop", count)]
        if key in WHILE_ASKING:
            return [("keys", [key])]
        return []  # the question is modal: other keys mean nothing now
