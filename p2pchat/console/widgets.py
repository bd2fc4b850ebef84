"""The console's widgets: message pane, peer list, status bar, input line.

Each one renders what it is told and keeps no chat state of its own beyond what the screen needs
(scroll position, unread count, input history), so the face decides and they draw.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    """One row: time, right-aligned nick column, text column that wraps under itself.  A
    separator row is a rule across the pane with its text in the middle."""

    def __init__(self, row: Row) -> None:
        self.row = row
        if row.separator:
            self.body = urwid.Text(("separator", f" {row.body} "))
            super().__init__(urwid.Columns([
                urwid.AttrMap(urwid.Divider("─"), "separator"),
                (urwid.PACK, self.body),
                urwid.AttrMap(urwid.Divider("─"), "separator"),
            ]))
            return
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
#: The encryption mark (two cells wide; a plain peer gets two blanks and a "plain" note).
LOCK = "🔒"


def peer_row(peer: PeerView) -> urwid.Text:
    """One peer: state mark, the lock when the link is encrypted, the nick in its color (in
    red when its key is not the pinned one: the node shows it as "nick?"), and a dim note for
    a plain link ("plain") or a base peer ("base")."""
    mark, attr = STATE_MARKS.get(peer.state, ("?", "peer_stale"))
    connected = peer.state == "connected"
    lock = LOCK if connected and peer.encrypted else "  "
    if peer.flagged:
        nick_a = "peer_flagged"
    else:
        nick_a = nick_attr(peer.nick) if connected else "peer_stale"
    markup: list = [(attr, mark), ("peer_note", lock), " ", (nick_a, peer.nick)]
    if not peer.ours:
        markup.append(("peer_note", " base"))
    elif connected and not peer.encrypted:
        markup.append(("peer_note", " plain"))
    return urwid.Text(markup, wrap="ellipsis")


class PeerList(urwid.WidgetWrap):
    """The peer list: a title with the counts, then one row per peer (see ``peer_row``).  In a
    room other than #general, the room's members come first, under the room's name."""

    def __init__(self) -> None:
        self.title = urwid.Text("")
        self.walker = urwid.SimpleListWalker([])
        self.peers: list[PeerView] = []
        pile = urwid.Frame(urwid.ListBox(self.walker), header=self.title)
        super().__init__(pile)
        self.update([])

    def update(self, peers: Sequence[PeerView], room: str | None = None) -> None:
        """``room``: the current room, when its members are to be listed first."""
        self.peers = list(peers)
        linked = sum(1 for p in peers if p.state == "connected")
        self.title.set_text(("sidebar_title", f"peers {linked}/{len(peers)}"))
        rows: list[urwid.Widget] = []
        if room is not None:
            members = [p for p in peers if room in p.rooms]
            others = [p for p in peers if room not in p.rooms]
            rows.append(urwid.Text(("peer_note", f"in #{room}: {len(members)}"),
                                   wrap="ellipsis"))
            rows += [peer_row(p) for p in members]
            if others:
                rows.append(urwid.Text(("peer_note", "elsewhere:"), wrap="ellipsis"))
                rows += [peer_row(p) for p in others]
        else:
            rows += [peer_row(p) for p in peers]
        if not peers:
            rows.append(urwid.Text(("peer_stale", "nobody yet"), wrap="ellipsis"))
        self.walker[:] = rows


@dataclass(frozen=True)
class ConversationView:
    """One row of the conversation list."""

    number: int
    label: str  # "#ops", or the peer's nick
    unread: int = 0
    mention: bool = False
    current: bool = False


class ConversationList(urwid.WidgetWrap):
    """The conversations: number (Alt-N shows it), name, and the count of unread lines ("3",
    "3!" when one names you or is a private line).  The current one is drawn reversed."""

    def __init__(self) -> None:
        self.walker = urwid.SimpleFocusListWalker([])
        self.listbox = urwid.ListBox(self.walker)
        self.views: list[ConversationView] = []
        super().__init__(self.listbox)

    def update(self, views: Sequence[ConversationView]) -> None:
        self.views = list(views)
        rows = []
        focus = 0
        for i, view in enumerate(views):
            if view.current:
                attr, focus = "conv_current", i
            elif view.mention:
                attr = "conv_mention"
            elif view.unread:
                attr = "conv_unread"
            else:
                attr = "conv"
            count = f"{view.unread}{'!' if view.mention else ''}" if view.unread else ""
            number = f"{view.number}" if view.number <= 9 else "·"
            row = urwid.Columns([
                urwid.Text(f"{number} {view.label}", wrap="ellipsis"),
                (urwid.PACK, urwid.Text(count)),
            ], dividechars=1)
            rows.append(urwid.AttrMap(row, attr))
        self.walker[:] = rows
        if rows:
            self.walker.set_focus(focus)

    def wanted_rows(self) -> int:
        return len(self.views)


class Sidebar(urwid.Widget):
    """The conversation list (at most half the height, keeping the current one in view), a
    blank row, then the peer list."""

    _sizing = frozenset([urwid.BOX])

    def __init__(self, conversations: ConversationList, peers: PeerList) -> None:
        super().__init__()
        self.conversations = conversations
        self.peers = peers
        self.title = urwid.Text(("sidebar_title", "conversations"))

    def render(self, size, focus=False):
        cols, rows = size
        wanted = self.conversations.wanted_rows()
        if rows < 4:
            # Too short for both: the conversations only (the status bar counts the peers).
            return self.conversations.render(size, focus)
        listed = max(1, min(wanted, rows // 2 - 1))
        pile = urwid.Pile([
            (urwid.PACK, self.title),
            (listed, self.conversations),
            (1, urwid.SolidFill(" ")),
            self.peers,
        ])
        return pile.render(size, focus)


class StatusBar(urwid.WidgetWrap):
    """Your nick, the conversation ("#general", or a peer's nick), the port, peers
    connected/known; on the right, "N new" while scrolled up, the unread lines in the other
    conversations and their numbers, and the byte count when the input is over the limit."""

    def __init__(self) -> None:
        self.left = urwid.Text("", wrap="ellipsis")
        self.right = urwid.Text("", align="right", wrap="clip")
        columns = urwid.Columns([self.left, (urwid.PACK, self.right)])
        super().__init__(urwid.AttrMap(columns, "status"))

    def update(self, nick: str, room: str, port: int, connected: int, known: int,
               unread: int = 0, over: tuple[int, int] | None = None,
               elsewhere: tuple[int, bool, Sequence[int]] = (0, False, ())) -> None:
        """``elsewhere``: unread lines in the other conversations, whether one names you (or
        is private), and the numbers of the conversations that have them."""
        self.left.set_text([("status_nick", f" {nick} "), f"│ {room} │ port {port} │ "
                            f"peers {connected}/{known} "])
        right: list = []
        if over is not None:
            right.append(("status_over", f" {over[0]}/{over[1]} bytes: too long "))
        if unread:
            right.append(("status_unread", f" {unread} new ↓ "))
        total, mention, numbers = elsewhere
        if total:
            where = ",".join(str(n) for n in numbers)
            right.append(("status_mention" if mention else "status_act",
                          f" {total} unread in {where} "))
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
