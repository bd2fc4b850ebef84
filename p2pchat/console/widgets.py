"""The console's widgets: message pane, peer list, status bar, input line.

Each one renders what it is told and keeps no chat state of its own beyond what the screen needs
(scroll position, unread count, input history), so the face decides and they draw.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import urwid

from p2pchat.console.format import (
    NICK_WIDTH,
    TIME_WIDTH,
    Row,
    clock_text,
    nick_attr,
)
from p2pchat.console.input_line import INPUT_ROWS, InputLine  # noqa: F401 (INPUT_ROWS: tests)
from p2pchat.interfaces import PeerView

#: Rows kept in one conversation's pane; older ones are dropped.
SCROLLBACK_ROWS = 5000
#: What all the panes together may hold, in bytes: each row counts its text's UTF-8 bytes
#: plus ``ROW_COST`` (the widgets that draw it).  Past it the oldest rows of all the
#: conversations go first, so no number of peers or lines can grow the console without end.
SCROLLBACK_BYTES = 16 * 1024 * 1024
ROW_COST = 512
#: Rows one mouse wheel notch scrolls.
WHEEL_ROWS = 3
#: Narrower than this, a message row leaves out the time (the nick column narrows too).
TIME_MIN_COLS = 40

WHEEL_UP = 4
WHEEL_DOWN = 5


def row_widths(cols: int) -> tuple[int, int]:
    """(time column, nick column) of a message row ``cols`` wide: the full ones where there
    is room; narrower, the nick column shrinks (to a third of the row, at least 3 cells) and
    below ``TIME_MIN_COLS`` the time goes, so the text always keeps most of the row."""
    time_w = TIME_WIDTH if cols >= TIME_MIN_COLS else 0
    rest = cols - (time_w + 1 if time_w else 0)
    return time_w, max(3, min(NICK_WIDTH, rest // 3))


class MessageRow(urwid.WidgetWrap):
    """One row: time, right-aligned nick column, text column that wraps under itself (see
    ``row_widths`` for narrow panes).  A separator row is a rule across the pane with its text
    in the middle."""

    def __init__(self, row: Row) -> None:
        self.row = row
        #: what the row counts against SCROLLBACK_BYTES, and whether it was let go
        self.cost = len(row.plain().encode("utf-8")) + ROW_COST
        self.gone = False
        self._layouts: dict[tuple[int, int], urwid.Widget] = {}
        if row.separator:
            self.body = urwid.Text(("separator", f" {row.body} "))
            super().__init__(urwid.Columns([
                urwid.AttrMap(urwid.Divider("─"), "separator"),
                (urwid.PACK, self.body),
                urwid.AttrMap(urwid.Divider("─"), "separator"),
            ]))
            return
        self.body = urwid.Text(row.shown_body())
        self._time = urwid.Text(("time", clock_text(row.when)))
        self._nick = urwid.Text(row.marker, align="right", wrap="ellipsis")
        super().__init__(self._columns(TIME_WIDTH, NICK_WIDTH))

    def _columns(self, time_w: int, nick_w: int) -> urwid.Widget:
        layout = self._layouts.get((time_w, nick_w))
        if layout is None:
            parts: list = [(time_w, self._time)] if time_w else []
            layout = urwid.Columns(parts + [(nick_w, self._nick), self.body], dividechars=1)
            self._layouts[(time_w, nick_w)] = layout
        return layout

    def _fit(self, cols: int) -> None:
        if not self.row.separator:
            layout = self._columns(*row_widths(cols))
            if layout is not self._w:
                self._w = layout

    def rows(self, size: Any, focus: bool = False) -> int:
        self._fit(size[0])
        return super().rows(size, focus)

    def render(self, size: Any, focus: bool = False) -> urwid.Canvas:
        self._fit(size[0])
        return super().render(size, focus)

    def update(self, row: Row) -> None:
        """Show a changed row (its time and nick column stay)."""
        self.row = row
        self.body.set_text(row.shown_body())


class Scrollback:
    """The byte budget all the panes share (``SCROLLBACK_BYTES``): it knows every row in the
    order it came, so the oldest of all go first."""

    def __init__(self) -> None:
        self.used = 0
        self.rows = 0
        self._order: deque[tuple[MessagePane, MessageRow]] = deque()

    def added(self, pane: MessagePane, widget: MessageRow) -> None:
        self.used += widget.cost
        self.rows += 1
        self._order.append((pane, widget))
        while self.used > SCROLLBACK_BYTES and self._order:
            old_pane, old = self._order.popleft()
            if not old.gone:
                old_pane.drop_oldest(old)

    def dropped(self, widget: MessageRow) -> None:
        """A row left its pane (its pane's own limit, /clear, a closed conversation)."""
        if widget.gone:
            return
        widget.gone = True
        self.used -= widget.cost
        self.rows -= 1
        if len(self._order) > 2 * self.rows + 1024:
            # Rows let go by their pane still wait in the order: sweep them, now and then.
            self._order = deque(entry for entry in self._order if not entry[1].gone)


class MessagePane(urwid.ListBox):
    """The scrollback.  Follows new rows while at the bottom; once scrolled up it stays put
    and counts the rows that arrived (``unread``) until the bottom is visible again."""

    def __init__(self, on_scroll: Callable[[], None] = lambda: None,
                 budget: Scrollback | None = None) -> None:
        self.walker: urwid.SimpleFocusListWalker = urwid.SimpleFocusListWalker([])
        super().__init__(self.walker)
        self.budget = budget if budget is not None else Scrollback()
        self.following = True
        self.unread = 0
        self._size: tuple[int, int] | None = None
        self._on_scroll = on_scroll

    def render(self, size: Any, focus: bool = False
               ) -> urwid.CompositeCanvas | urwid.SolidCanvas:
        self._size = size
        if self.following and self.walker:
            self._to_bottom()
        return super().render(size, focus)

    def append(self, row: Row) -> MessageRow:
        widget = MessageRow(row)
        self.walker.append(widget)
        excess = len(self.walker) - SCROLLBACK_ROWS
        if excess > 0:
            for old in self.walker[:excess]:
                self.budget.dropped(old)
            del self.walker[:excess]
        self.budget.added(self, widget)
        if self.following:
            self._to_bottom()
        else:
            self.unread += 1
        return widget

    def drop_oldest(self, widget: MessageRow) -> None:
        """The scrollback budget lets ``widget`` go: it is this pane's oldest row."""
        self.budget.dropped(widget)
        if self.walker and self.walker[0] is widget:
            del self.walker[0]
        elif widget in self.walker:
            self.walker.remove(widget)

    def clear(self) -> None:
        for widget in self.walker:
            self.budget.dropped(widget)
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

    def keypress(self, size: Any, key: str) -> str | None:
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
    "relayed": ("◌", "peer_connecting"),  # reached only through others (gossip.py)
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
        self.walker: urwid.SimpleListWalker = urwid.SimpleListWalker([])
        self.peers: list[PeerView] = []
        pile: urwid.Frame = urwid.Frame(urwid.ListBox(self.walker), header=self.title)
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
        self.walker: urwid.SimpleFocusListWalker = urwid.SimpleFocusListWalker([])
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

    def render(self, size: Any, focus: bool = False) -> urwid.Canvas:
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


#: Nicks the status bar names in its "plain:" mark; more are counted ("+2").
PLAIN_SHOWN = 3


class StatusBar(urwid.WidgetWrap):
    """Your nick, the conversation ("#general", or a peer's nick), the port, peers
    connected/known; on the right, "plain: bob" while a linked peer is not encrypted, "N new"
    while scrolled up, the unread lines in the other
    conversations and their numbers, and the byte count when the input is over the limit."""

    def __init__(self) -> None:
        self.left = urwid.Text("", wrap="ellipsis")
        self.right = urwid.Text("", align="right", wrap="clip")
        columns = urwid.Columns([self.left, (urwid.PACK, self.right)])
        super().__init__(urwid.AttrMap(columns, "status"))

    def update(self, nick: str, room: str, port: int, connected: int, known: int,
               unread: int = 0, over: tuple[int, int] | None = None,
               elsewhere: tuple[int, bool, Sequence[int]] = (0, False, ()),
               plain: Sequence[str] = (), typing: Sequence[str] = (),
               transfers: str = "") -> None:
        """``typing``: who is typing in this conversation ("alice is typing").
        ``transfers``: the running file transfers, a bar, rate and time left each.
        ``elsewhere``: unread lines in the other conversations, whether one names you (or
        is private), and the numbers of the conversations that have them.  ``plain``: the
        nicks of the linked peers whose link is not encrypted (base peers included), shown
        first and loud: they read #general in the clear."""
        left: list = [("status_nick", f" {nick} "), f"│ {room} │ port {port} │ "
                      f"peers {connected}/{known} "]
        if typing:
            who = (f"{typing[0]} is" if len(typing) == 1 else
                   f"{typing[0]} and {typing[1]} are" if len(typing) == 2 else
                   f"{len(typing)} people are")
            left.append(f"│ {who} typing ")
        if transfers:
            left.append(f"│ {transfers} ")
        self.left.set_text(left)
        right: list = []
        if plain:
            shown = ", ".join(plain[:PLAIN_SHOWN])
            more = f" +{len(plain) - PLAIN_SHOWN}" if len(plain) > PLAIN_SHOWN else ""
            right.append(("status_plain", f" plain: {shown}{more} "))
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


class Question(urwid.Text):
    """The paste question, drawn where the input line is.  Selectable, so the input area
    keeps the focus while it shows (the face takes the keys)."""

    _selectable = True

    def keypress(self, size: Any, key: str) -> str | None:
        return key


class InputArea(urwid.WidgetWrap):
    """The input line (at most ``INPUT_ROWS`` rows: a long paste must not push the messages
    off the screen), or in its place the paste question while it is asked."""

    def __init__(self, line: InputLine) -> None:
        self.line = line
        self.question = Question("", wrap="ellipsis")
        self._asking = urwid.AttrMap(self.question, "paste_prompt")
        super().__init__(line)

    def ask(self, text: str) -> None:
        self.question.set_text(text)
        self._w = self._asking

    def done(self) -> None:
        self._w = self.line

    @property
    def asking(self) -> bool:
        return self._w is self._asking
