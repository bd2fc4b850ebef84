"""The console's widgets: message pane, peer list, status bar, input line.

Each one renders what it is told and keeps no chat state of its own beyond what the screen needs
(scroll position, unread count, input history), so the face decides and they draw.
"""

from __future__ import annotations

from typing import Callable, Sequence

import urwid

from p2pchat.console.format import (
    NICK_WIDTH,
    TIME_WIDTH,
    Row,
    clock_text,
    nick_attr,
)
from p2pchat.node import PeerView

#: Rows kept in the message pane; older ones are dropped.
SCROLLBACK_ROWS = 5000
#: Rows one mouse wheel notch scrolls.
WHEEL_ROWS = 3
#: Lines kept in the input history.
HISTORY_LINES = 500
#: Most rows the input line grows to; a longer line scrolls within them, following the cursor.
INPUT_ROWS = 4

WHEEL_UP = 4
WHEEL_DOWN = 5


class MessageRow(urwid.WidgetWrap):
    """One row: time, right-aligned nick column, text column that wraps under itself."""

    def __init__(self, row: Row) -> None:
        self.row = row
        self.body = urwid.Text(row.shown_body())
        columns = urwid.Columns([
            (TIME_WIDTH, urwid.Text(("time", clock_text(row.when)))),
            (NICK_WIDTH, urwid.Text(row.marker, align="right", wrap="clip")),
            self.body,
        ], dividechars=1)
        super().__init__(columns)

    def update(self, row: Row) -> None:
        """Show a changed row (its time and nick column stay)."""
        self.row = row
        self.body.set_text(row.shown_body())


class MessagePane(urwid.ListBox):
    """The scrollback.  Follows new rows while at the bottom; once scrolled up it stays put
    and counts the rows that arrived (``unread``) until the bottom is visible again."""

    def __init__(self, on_scroll: Callable[[], None] = lambda: None) -> None:
        self.walker = urwid.SimpleFocusListWalker([])
        super().__init__(self.walker)
        self.following = True
        self.unread = 0
        self._size: tuple[int, int] | None = None
        self._on_scroll = on_scroll

    def render(self, size, focus=False):
        self._size = size
        if self.following and self.walker:
            self._to_bottom()
        return super().render(size, focus)

    def append(self, row: Row) -> MessageRow:
        widget = MessageRow(row)
        self.walker.append(widget)
        excess = len(self.walker) - SCROLLBACK_ROWS
        if excess > 0:
            del self.walker[:excess]
        if self.following:
            self._to_bottom()
        else:
            self.unread += 1
        return widget

    def clear(self) -> None:
        del self.walker[:]
        self.following = True
        self.unread = 0

    def _to_bottom(self) -> None:
        self.walker.set_focus(len(self.walker) - 1)
        self.set_focus_valign("bottom")

    def scroll(self, key: str, times: int = 1) -> None:
        """Scroll as ``key`` ('up', 'down', 'page up', 'page down') would, ``times`` over."""
        if self._size is None or not self.walker:
            return
        if key in ("up", "page up"):
            self.following = False
        for _ in range(times):
            super().keypress(self._size, key)
        if "bottom" in self.ends_visible(self._size):
            self.following = True
            self.unread = 0
        self._on_scroll()

    def keypress(self, size, key):
        # The face scrolls the pane itself (PgUp/PgDn, the wheel): the arrows belong to the
        # input line's history.
        return key

    def rows_text(self) -> list[str]:
        return [w.row.plain() for w in self.walker]


#: How each peer state is drawn in the peer list: mark and attribute.
STATE_MARKS: dict[str, tuple[str, str]] = {
    "connected": ("●", "peer_connected"),
    "connecting": ("○", "peer_connecting"),
    "stale": ("?", "peer_stale"),
}


class PeerList(urwid.WidgetWrap):
    """The sidebar: a title with the counts, then one row per peer: state mark, a cell kept for
    an encryption mark, the nick in its color."""

    def __init__(self) -> None:
        self.title = urwid.Text("")
        self.walker = urwid.SimpleListWalker([])
        self.peers: list[PeerView] = []
        pile = urwid.Frame(urwid.ListBox(self.walker), header=self.title)
        super().__init__(pile)
        self.update([])

    def update(self, peers: Sequence[PeerView]) -> None:
        self.peers = list(peers)
        linked = sum(1 for p in peers if p.state == "connected")
        self.title.set_text(("sidebar_title", f"peers {linked}/{len(peers)}"))
        rows = []
        for peer in peers:
            mark, attr = STATE_MARKS.get(peer.state, ("?", "peer_stale"))
            nick_a = nick_attr(peer.nick) if peer.state == "connected" else "peer_stale"
            # The second cell is kept for an encryption mark (a later issue).
            rows.append(urwid.Text([(attr, mark), "  ", (nick_a, peer.nick)], wrap="ellipsis"))
        if not peers:
            rows.append(urwid.Text(("peer_stale", "nobody yet"), wrap="ellipsis"))
        self.walker[:] = rows


class StatusBar(urwid.WidgetWrap):
    """Your nick, the conversation ("#general", or a peer's nick), the port, peers
    connected/known; on the right, "N new" while scrolled up, and the byte count when the
    input is over the limit."""

    def __init__(self) -> None:
        self.left = urwid.Text("", wrap="ellipsis")
        self.right = urwid.Text("", align="right", wrap="clip")
        columns = urwid.Columns([self.left, (urwid.PACK, self.right)])
        super().__init__(urwid.AttrMap(columns, "status"))

    def update(self, nick: str, room: str, port: int, connected: int, known: int,
               unread: int = 0, over: tuple[int, int] | None = None) -> None:
        self.left.set_text([("status_nick", f" {nick} "), f"│ {room} │ port {port} │ "
                            f"peers {connected}/{known} "])
        right: list = []
        if over is not None:
            right.append(("status_over", f" {over[0]}/{over[1]} bytes: too long "))
        if unread:
            right.append(("status_unread", f" {unread} new ↓ "))
        self.right.set_text(right or "")


def _readline_map() -> urwid.CommandMap:
    commands = urwid.CommandMap()
    commands.bind_readline()
    return commands


class InputLine(urwid.Edit):
    """The line you type in: readline keys (urwid's ``bind_readline``: Ctrl-A/E/U/K/W/Y/D,
    Meta-B/F/D), history on Up/Down, Tab completing nicks, Enter handing the line over."""

    _command_map = _readline_map()

    def __init__(self, on_submit: Callable[[str], bool],
                 nicks: Callable[[], Sequence[str]]) -> None:
        super().__init__(("prompt", "> "), text_completer=self._complete, undo_limit=100,
                         kill_buffer=[])
        self._on_submit = on_submit
        self._nicks = nicks
        self.history: list[str] = []
        self._history_pos: int | None = None  # index into history while browsing it
        self._draft = ""

    def keypress(self, size, key):
        if key == "enter":
            text = self.edit_text
            if not text.strip():
                return None  # empty input: ignored
            self._remember(text)
            if self._on_submit(text):
                self.set_edit_text("")
            return None
        if key == "up":
            self._browse(-1)
            return None
        if key == "down":
            self._browse(+1)
            return None
        return super().keypress(size, key)

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
            self._draft = self.edit_text
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
        self.set_edit_pos(len(text))

    def _complete(self, text: str, pos: int) -> list[tuple[str, int]]:
        """Nicks that start with the word before the cursor (case-insensitive).  At the start
        of the line the nick gets ": " (addressing someone), elsewhere a space."""
        start = text.rfind(" ", 0, pos) + 1
        prefix = text[start:pos].lower()
        if not prefix:
            return []
        names = sorted({n for n in self._nicks() if n.lower().startswith(prefix)}, key=str.lower)
        suffix = ": " if start == 0 else " "
        rest = text[pos:]
        if rest.startswith(" "):
            suffix = suffix.rstrip(" ")
        return [(text[:start] + n + suffix + rest, start + len(n) + len(suffix)) for n in names]


class InputArea(urwid.WidgetWrap):
    """The input line, at most ``INPUT_ROWS`` rows high: a long paste must not push the
    messages off the screen.  Shows the rows around the cursor."""

    def __init__(self, line: InputLine) -> None:
        super().__init__(line)

    def rows(self, size, focus=False) -> int:
        return min(self._w.rows(size, focus), INPUT_ROWS)

    def render(self, size, focus=False):
        canvas = self._w.render(size, focus)
        total = canvas.rows()
        if total <= INPUT_ROWS:
            return canvas
        cursor = canvas.cursor
        row = cursor[1] if cursor is not None else total - 1
        top = min(max(0, row - INPUT_ROWS + 1), total - INPUT_ROWS)
        canvas = urwid.CompositeCanvas(canvas)
        canvas.trim(top, INPUT_ROWS)
        return canvas
