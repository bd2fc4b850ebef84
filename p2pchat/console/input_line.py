"""The line you type in, drawn by laying out only the rows that are shown.

urwid's ``Edit`` lays its whole text out again for every key and every redraw (and a ``Pile``
asks it for its rows on every key), so a 4,000-character paste took seconds in one reactor
callback and the peer's links dropped.  ``InputLine`` keeps the text as a plain string and
draws at most ``INPUT_ROWS`` rows starting at a remembered character (``view``), moved only as
far as needed to keep the cursor shown: the cost of a key or a redraw does not depend on how
long the line is.  ``insert`` puts a whole run of typed or pasted characters in at once.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import urwid
from urwid.canvas import TextCanvas
from urwid.str_util import calc_width, move_next_char, move_prev_char

#: Most rows the input line grows to; a longer line scrolls within them, following the cursor.
INPUT_ROWS = 4
#: Lines kept in the input history.
HISTORY_LINES = 500
#: Edits Ctrl-_ can undo.
UNDO_STEPS = 100
#: Most characters the input line holds (ten times what a line may say: enough to see a
#: pasted line is too long and fix it, not a store for anything a terminal can send).
INPUT_MAX_CHARS = 40_000

PROMPT = "> "

Completer = Callable[[str, int], Sequence[tuple[str, int]]]


def _width(ch: str) -> int:
    return calc_width(ch, 0, 1)


#: Format characters that belong inside text though ``str.isprintable()`` says no: the
#: zero-width non-joiner and joiner (``👨‍👩‍👧``); the wire and every face keep them.
TEXT_JOINERS = frozenset("\u200c\u200d")


def is_text_key(key: object) -> bool:
    """A key that types a character (urwid names those by the character itself)."""
    return (isinstance(key, str) and len(key) == 1
            and (key.isprintable() or key in TEXT_JOINERS))


class InputLine(urwid.Widget):
    """Readline keys (Ctrl-A/E/U/K/W/Y/D/_, Meta-B/F/D/Backspace), history on Up/Down, Tab
    completion through ``complete`` (again: the next candidate, then back to what was typed),
    Enter handing the line to ``on_submit``."""

    _sizing = frozenset([urwid.FLOW])
    _selectable = True

    def __init__(self, on_submit: Callable[[str], bool], complete: Completer,
                 on_cut: Callable[[int], object] = lambda dropped: None) -> None:
        super().__init__()
        self._on_submit = on_submit
        self._complete = complete
        self._on_cut = on_cut
        self._text = ""
        self._pos = 0
        #: the first character shown (the line scrolls when it is longer than the rows)
        self.view = 0
        self.history: list[str] = []
        self._history_pos: int | None = None
        self._draft = ""
        self._kill = ""
        self._last_was_kill = False
        self._undo: list[tuple[str, int]] = []
        self._cycle: tuple[list[tuple[str, int]], int] | None = None

    # --- the text ---------------------------------------------------------------------------

    @property
    def edit_text(self) -> str:
        return self._text

    @property
    def edit_pos(self) -> int:
        return self._pos

    def set_edit_text(self, text: str) -> None:
        self._text = text[:INPUT_MAX_CHARS]
        self._pos = min(self._pos, len(self._text))
        self._invalidate()

    def set_edit_pos(self, pos: int) -> None:
        self._pos = max(0, min(pos, len(self._text)))
        self._invalidate()

    def _change(self, text: str, pos: int) -> None:
        """An edit that Ctrl-_ can undo."""
        if text == self._text:
            self.set_edit_pos(pos)
            return
        self._undo.append((self._text, self._pos))
        del self._undo[:-UNDO_STEPS]
        self._text = text
        self._pos = pos
        self._invalidate()

    def insert(self, text: str) -> None:
        """Type ``text`` at the cursor in one go (a run of keys from one read, or a paste).
        What would go past ``INPUT_MAX_CHARS`` is dropped, and ``on_cut`` told how much."""
        if not text:
            return
        self._end_cycle()
        self._last_was_kill = False
        room = INPUT_MAX_CHARS - len(self._text)
        dropped = max(0, len(text) - room)
        if dropped:
            text = text[:room]
        if text:
            before, after = self._text[:self._pos], self._text[self._pos:]
            # One undo step per insert: a key, or a whole run (a paste) at once.
            self._change(before + text + after, self._pos + len(text))
        if dropped:
            self._on_cut(dropped)

    # --- keys -------------------------------------------------------------------------------

    def keypress(self, size: Any, key: str) -> str | None:
        if is_text_key(key):
            self.insert(key)
            return None
        if key in ("tab", "shift tab"):
            self._step_cycle(1 if key == "tab" else -1)
            return None
        self._end_cycle()
        kill = key in ("ctrl k", "ctrl u", "ctrl w", "meta backspace", "meta d")
        handled = self._key(key)
        self._last_was_kill = kill and handled
        return None if handled else key

    def _key(self, key: str) -> bool:
        text, pos = self._text, self._pos
        if key == "enter":
            self._enter()
        elif key == "up":
            self._browse(-1)
        elif key == "down":
            self._browse(+1)
        elif key in ("left", "ctrl b"):
            self.set_edit_pos(move_prev_char(text, 0, pos) if pos else 0)
        elif key in ("right", "ctrl f"):
            self.set_edit_pos(move_next_char(text, pos, len(text)) if pos < len(text) else pos)
        elif key in ("home", "ctrl a"):
            self.set_edit_pos(0)
        elif key in ("end", "ctrl e"):
            self.set_edit_pos(len(text))
        elif key == "meta b":
            self.set_edit_pos(self._word(pos, forward=False))
        elif key == "meta f":
            self.set_edit_pos(self._word(pos, forward=True))
        elif key == "backspace":
            if pos:
                start = move_prev_char(text, 0, pos)
                self._change(text[:start] + text[pos:], start)
        elif key in ("delete", "ctrl d"):
            if pos < len(text):
                end = move_next_char(text, pos, len(text))
                self._change(text[:pos] + text[end:], pos)
        elif key == "ctrl w":
            self._cut(self._word(pos, forward=False, spaces=True), pos, forward=False)
        elif key == "meta backspace":
            self._cut(self._word(pos, forward=False), pos, forward=False)
        elif key == "meta d":
            self._cut(pos, self._word(pos, forward=True), forward=True)
        elif key == "ctrl u":
            self._cut(0, pos, forward=False)
        elif key == "ctrl k":
            self._cut(pos, len(text), forward=True)
        elif key == "ctrl y":
            if self._kill:
                self.insert(self._kill)
        elif key == "ctrl _":
            if self._undo:
                self._text, self._pos = self._undo.pop()
                self._invalidate()
        else:
            return False
        return True

    def _cut(self, start: int, end: int, forward: bool) -> None:
        """Delete ``text[start:end]`` into the kill buffer; consecutive kills add up, so Ctrl-Y
        brings all of them back (readline's way)."""
        if start >= end:
            return
        piece = self._text[start:end]
        if self._last_was_kill:
            self._kill = self._kill + piece if forward else piece + self._kill
        else:
            self._kill = piece
        self._change(self._text[:start] + self._text[end:], start)

    def _word(self, pos: int, forward: bool, spaces: bool = False) -> int:
        """The position after the next word, or at the start of the previous one.  A word is
        letters, digits and underscores (``spaces``: anything but white space)."""
        text = self._text

        def in_word(ch: str) -> bool:
            return not ch.isspace() if spaces else (ch.isalnum() or ch == "_")

        if forward:
            while pos < len(text) and not in_word(text[pos]):
                pos += 1
            while pos < len(text) and in_word(text[pos]):
                pos += 1
        else:
            while pos > 0 and not in_word(text[pos - 1]):
                pos -= 1
            while pos > 0 and in_word(text[pos - 1]):
                pos -= 1
        return pos

    def _enter(self) -> None:
        text = self._text
        if not text.strip():
            return  # empty input: ignored
        self._remember(text)
        self._on_submit(text)
        # Sent or refused, the line leaves the input: a refused one must not glue onto what
        # is typed next (Up brings it back to fix).
        self._set("")

    def _remember(self, text: str) -> None:
        if not self.history or self.history[-1] != text:
            self.history.append(text)
            del self.history[:-HISTORY_LINES]
        self._history_pos = None
        self._draft = ""

    def _browse(self, step: int) -> None:
        """Older (-1) or newer (+1) history; past the newest comes back what you were typing."""
        if not self.history:
            return
        if self._history_pos is None:
            if step > 0:
                return
            self._draft = self._text
            pos = len(self.history) - 1
        else:
            pos = self._history_pos + step
        if pos < 0:
            return
        if pos >= len(self.history):
            self._history_pos = None
            self._set(self._draft)
            return
        self._history_pos = pos
        self._set(self.history[pos])

    def _set(self, text: str) -> None:
        self.set_edit_text(text)
        self.set_edit_pos(len(self._text))

    # --- completion -------------------------------------------------------------------------

    def _step_cycle(self, step: int) -> None:
        """Tab: the first candidate; again: the next, and past the last back to what was typed
        (Shift-Tab goes the other way)."""
        if self._cycle is None:
            found = list(self._complete(self._text, self._pos))
            if not found:
                return
            self._cycle = (found + [(self._text, self._pos)], -1 if step > 0 else 0)
        candidates, index = self._cycle
        index = (index + step) % len(candidates)
        self._cycle = (candidates, index)
        text, pos = candidates[index]
        self._change(text, pos)

    def _end_cycle(self) -> None:
        self._cycle = None

    # --- drawing ----------------------------------------------------------------------------

    def _layout(self, start: int, cols: int) -> list[tuple[int, int, int]]:
        """Rows (start, end, cells used) of the text from ``start``: the first row after the
        prompt, the others the full width; at most ``INPUT_ROWS`` rows.  A row ends where the
        next character would not fit (a wide one goes to the next row whole).  The cursor
        after the last character needs a cell: when the last row is full, an empty row
        follows."""
        rows: list[tuple[int, int, int]] = []
        text = self._text
        i = start
        while len(rows) < INPUT_ROWS:
            room = cols - (len(PROMPT) if not rows else 0)
            used = 0
            j = i
            while j < len(text):
                w = _width(text[j])
                if used + w > room and j > i:
                    break
                used += w
                j += 1
            rows.append((i, j, used))
            if j >= len(text):
                if used >= room and len(rows) < INPUT_ROWS:
                    rows.append((j, j, 0))  # the cursor's cell at the end
                break
            i = j
        return rows

    def _cursor(self, rows: list[tuple[int, int, int]], cols: int) -> tuple[int, int] | None:
        """Where the rows draw the cursor (column, row), or None if they don't show it."""
        pos, end = self._pos, len(self._text)
        for n, (a, b, used) in enumerate(rows):
            prefix = len(PROMPT) if n == 0 else 0
            if a <= pos < b or (pos == b == end and prefix + used < cols):
                # (a cursor before a combining mark at the row's end: on the last cell)
                return min(cols - 1, prefix + sum(_width(ch) for ch in self._text[a:pos])), n
        return None

    def _place(self, cols: int) -> list[tuple[int, int, int]]:
        """Move ``view`` as little as needed to show the cursor; the rows to draw."""
        end, pos = len(self._text), self._pos
        whole = self._layout(0, cols)
        if whole[-1][1] >= end and self._cursor(whole, cols) is not None:
            self.view = 0  # it all fits
            return whole
        self.view = min(self.view, end)
        rows = self._layout(self.view, cols)
        if self._cursor(rows, cols) is not None:
            return rows
        if pos < self.view:
            # Back before the view (Home, Left): show half a row of what is left of the
            # cursor too, so what is typed there is seen.
            cells = (cols - len(PROMPT)) // 2
            start = pos
            while start > 0 and cells - _width(self._text[start - 1]) >= 0:
                cells -= _width(self._text[start - 1])
                start -= 1
            self.view = start
            return self._layout(start, cols)
        # Past the rows: start far enough back that the cursor is on the last row.
        cells = cols * INPUT_ROWS - len(PROMPT) - 1
        start = pos
        while start > 0 and cells - _width(self._text[start - 1]) >= 0:
            cells -= _width(self._text[start - 1])
            start -= 1
        rows = self._layout(start, cols)
        while self._cursor(rows, cols) is None and start < pos:
            start += 1
            rows = self._layout(start, cols)
        self.view = start
        return rows

    def rows(self, size: Any, focus: bool = False) -> int:
        return len(self._place(max(size[0], len(PROMPT) + 2)))

    def render(self, size: Any, focus: bool = False) -> urwid.Canvas:
        cols = size[0]
        if cols < len(PROMPT) + 2:  # too narrow to edit in: blank
            return urwid.SolidFill(" ").render((cols, 1))
        rows = self._place(cols)
        cursor = self._cursor(rows, cols)
        lines: list[bytes] = []
        attrs: list[list] = []
        charsets: list[list] = []
        for n, (a, b, used) in enumerate(rows):
            prefix = PROMPT if n == 0 else ""
            line = (prefix + self._text[a:b] + " " * (cols - len(prefix) - used)).encode("utf-8")
            head = len(prefix.encode("utf-8"))
            attrs.append([("prompt", head), (None, len(line) - head)] if head else
                         [(None, len(line))])
            charsets.append([(None, len(line))])
            lines.append(line)
        return TextCanvas(lines, attrs, charsets, cursor=cursor if focus else None,
                          maxcol=cols)
