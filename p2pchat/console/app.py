"""The console face: the widgets put together, fed by the chat's events and the keyboard
(keys.py).

``ConsoleFace`` needs no screen (tests render its widget to canvases); ``ConsoleService``
(terminal.py) gives it the terminal while twistd runs.
"""

from __future__ import annotations

from typing import Any, Callable

import urwid
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from p2pchat import events
from p2pchat.catching_up import CATCH_UP_SCROLLBACK, CatchingUp, Run, summary
from p2pchat.commands import COMMANDS, Command, Refusal, help_lines, parse_input
from p2pchat.console.alerts import ALERT_COMMANDS, Alerts
from p2pchat.console.complete import candidates
from p2pchat.console.format import (
    PALETTE,
    Row,
    chat_row,
    delivered,
    echo_row,
    error_row,
    event_row,
    history_rows,
    info_row,
    room_row,
)
from p2pchat.console.keys import (  # noqa: F401 (PASTE_END_WAIT: tests)
    PASTE_END_WAIT,
    Keyboard,
    key_help_lines,
)
from p2pchat.console.paste import PasteGate
from p2pchat.console.widgets import (
    WHEEL_DOWN,
    WHEEL_ROWS,
    WHEEL_UP,
    ConversationList,
    ConversationView,
    InputArea,
    InputLine,
    MessagePane,
    MessageRow,
    PeerList,
    Scrollback,
    Sidebar,
    StatusBar,
)
from p2pchat.face import CommandFace, conversation_label
from p2pchat.files.describe import status_text
from p2pchat.interfaces import IChat, StoredLine, private_key
from p2pchat.notify import Notifier
from p2pchat.wire import DEFAULT_ROOM, MAX_SAY_BYTES

log = Logger()

#: Sidebar width in cells, and the narrowest terminal that still gets a sidebar.
SIDEBAR_WIDTH = 20
SIDEBAR_MIN_COLS = 60

#: Own lines whose mark is kept to be cleared (the oldest are let go: nobody may ever ack).
UNDELIVERED_KEPT = 1000
#: What the console adds to the commands every face has.
CONSOLE_COMMANDS: tuple[tuple[str, str], ...] = (
    ("/query NICK [TEXT]", "open the private talk with NICK and show it (and say TEXT)"),
    ("/part in a private talk", "close it (its lines stay in the history)"),
)

class ChatBody(urwid.Widget):
    """Messages with the sidebar on the right; the sidebar is left out on a narrow terminal,
    so the messages keep a useful width.  ``messages`` holds the current conversation's
    pane."""

    _sizing = frozenset([urwid.BOX])

    def __init__(self, messages: urwid.WidgetPlaceholder, sidebar: Sidebar) -> None:
        super().__init__()
        self.messages = messages
        self.wide = urwid.Columns([
            messages,
            (1, urwid.AttrMap(urwid.SolidFill("│"), "divider")),
            (SIDEBAR_WIDTH, sidebar),
        ], dividechars=1)

    def _pick(self, size: tuple[int, int]) -> urwid.Widget:
        return self.wide if size[0] >= SIDEBAR_MIN_COLS else self.messages

    def render(self, size: Any, focus: bool = False) -> urwid.Canvas:
        return self._pick(size).render(size, focus)


class ConsoleWidget(urwid.WidgetWrap):
    """The whole screen.  Keys go to the face (``ConsoleFace.take_keys``: global keys first,
    then the input line); any exception in a handler is logged and shown, never printed over
    the screen."""

    def __init__(self, face: ConsoleFace) -> None:
        self.face = face
        footer = urwid.Pile([face.status, face.input_area])
        frame: urwid.Frame = urwid.Frame(ChatBody(face.body, face.sidebar), footer=footer,
                            focus_part="footer")
        super().__init__(frame)

    def keypress(self, size: Any, key: str) -> str | None:
        """One key (tests, and urwid for keys the service's input filter passed on)."""
        unhandled = self.face.take_keys([key], size)
        return unhandled[0] if unhandled else None

    def mouse_event(self, size: Any, event: str, button: int, col: int, row: int,
                    focus: bool) -> bool:
        try:
            if event == "mouse press" and button in (WHEEL_UP, WHEEL_DOWN):
                self.face.messages.scroll("up" if button == WHEEL_UP else "down", WHEEL_ROWS)
                return True
            # Other clicks are swallowed: focus stays on the input line.
            return True
        except Exception:
            log.failure("console mouse event failed")
            return True


class Conversation:
    """One conversation: a room (``key`` "ops") or a private talk (``key`` "@peer_id"), with
    its own scrollback and the count of lines that came while it was not shown."""

    def __init__(self, key: str, pane: MessagePane, nick: str = "") -> None:
        self.key = key
        self.pane = pane
        #: for a private talk: the other party's nick as last seen (it may be gone now)
        self.nick = nick
        self.unread = 0
        #: an unread line names you, or is a private line
        self.mention = False

    @property
    def private(self) -> bool:
        return self.key.startswith("@")

    @property
    def peer_id(self) -> str:
        return self.key[1:] if self.private else ""


class ConsoleFace(CommandFace, Keyboard):
    """The chat as the console shows it: an observer of the node and a source of its verbs.

    Every conversation has a pane of its own; ``room`` (CommandFace's current conversation) is
    the one shown, and ``messages`` its pane."""

    def __init__(self, node: IChat, on_quit: Callable[[], object], clock: IReactorTime,
                 bell: Callable[[], object] = lambda: None, log_path: str | None = None,
                 changed: Callable[[], object] = lambda: None,
                 alert: Callable[[str, str], object] | None = None,
                 notifier: Notifier | None = None) -> None:
        """``clock``: where the paste timers run (the reactor; a test's Clock).  ``alert``
        tells the user of a line (title, body); without it, ``bell`` rings."""
        self.node = node
        self.clock = clock
        self._on_quit = on_quit
        self.alerts = Alerts(notifier or Notifier(),
                             alert if alert is not None else (lambda title, body: bell()))
        self.log_path = log_path
        #: called after the node changed what is shown (the service redraws)
        self.changed = changed
        self.quitting = False
        self.conversations: list[Conversation] = []
        self.scrollback = Scrollback()
        self.current = self._new_conversation(DEFAULT_ROOM)
        self.room = DEFAULT_ROOM
        self.body = urwid.WidgetPlaceholder(self.current.pane)
        self.peers = PeerList()
        self.conversation_list = ConversationList()
        self.sidebar = Sidebar(self.conversation_list, self.peers)
        self.status = StatusBar()
        self.input = InputLine(self.submit, self.complete, on_cut=self._input_cut)
        self.input_area = InputArea(self.input)
        self.paste = PasteGate()
        self._paste_wait: IDelayedCall | None = None  # ends a paste whose end never came
        self._paste_queue: list[tuple[str, str]] = []
        self._paste_call: IDelayedCall | None = None  # says the next lines of a paste
        #: the conversation shown before each one, to go back to when a private talk closes
        self._came_from: dict[str, str] = {}
        #: own lines not yet delivered, by message id: the row widget, to clear its mark
        self.undelivered: dict[str, MessageRow] = {}
        #: the rooms each peer was in when last looked (to show its leaving in them)
        self._peer_rooms: dict[str, tuple[str, ...]] = {}
        #: who is typing, by conversation: peer id -> (nick, shown until) (events.Typing)
        self.typing_now: dict[str, dict[str, tuple[str, float]]] = {}
        self._typing_call: IDelayedCall | None = None
        self.catching_up = CatchingUp(clock, lambda run: caught_up(self, run))
        self.widget = ConsoleWidget(self)
        self.refresh_peers()

    @property
    def messages(self) -> MessagePane:
        """The pane of the conversation shown."""
        return self.current.pane

    # --- the node ---------------------------------------------------------------------------

    def attach(self) -> None:
        """Start listening to the node, show #general's history, and greet the user."""
        self._show_history_block(self.current)
        for room in self.node.my_rooms():
            if self.find(room) is None:
                self.open(room)
        self.catching_up.watch(self.node, self.on_event)  # a big catch-up summed up
        self.show_info([f"you are {self.node.nick} ({self.node.peer_id}), on port "
                        f"{self.node.port}, in {self.label(self.current)}",
                        "/help lists the commands and keys; /quit or Ctrl-C leaves"])
        self.refresh_peers()

    def detach(self) -> None:
        self.catching_up.unwatch()
        if self._typing_call is not None and self._typing_call.active():
            self._typing_call.cancel()

    def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Typing):
            self._typing(event)
            return
        if isinstance(event, events.Delivered):
            self.delivered(event.message_id)
        elif isinstance(event, events.ChatLine):
            self.typing_now.get(event.room, {}).pop(event.sender_id, None)  # it said it
            self._chat_line(event)
        elif isinstance(event, events.AwayChanged):
            if not event.own:
                self.show_info([f"{event.nick} is away: {event.text}" if event.text
                                else f"{event.nick} is back"])
        elif isinstance(event, events.RoomChanged):
            self._room_changed(event)
        elif isinstance(event, (events.PeerJoined, events.PeerLeft, events.NickChanged)):
            self._peer_event(event)
        else:
            row = event_row(event, self.node.nick)  # a Notice: where the user is
            if row is not None:
                self._add(row)
        if not isinstance(event, (events.ChatLine, events.Notice, events.Delivered)):
            self.refresh_peers()
        else:
            self.refresh_status()
        self.changed()

    def _typing(self, event: events.Typing) -> None:
        """A peer types in a conversation: named in the status line while it is shown, until
        ``event.until`` (a timer takes it off)."""
        self.typing_now.setdefault(event.room, {})[event.peer_id] = (event.nick, event.until)
        self._typing_timer()
        self.refresh_status()
        self.changed()

    def _typing_timer(self) -> None:
        """One timer, for the first typing mark to end."""
        if self._typing_call is not None and self._typing_call.active():
            self._typing_call.cancel()
        self._typing_call = None
        ends = [until for who in self.typing_now.values() for _, until in who.values()]
        if ends:
            delay = max(0.0, min(ends) - self.clock.seconds()) + 0.01
            self._typing_call = self.clock.callLater(delay, self._typing_ended)

    def _typing_ended(self) -> None:
        self._typing_call = None
        self.refresh_status()
        self._typing_timer()
        self.changed()

    def _chat_line(self, line: events.ChatLine) -> None:
        conv = self.find(line.room)
        if conv is None:
            # A private talk (or a room) seen first now: open it, with its history (but not
            # this line, which the store already has).
            conv = self.open(line.room, nick=line.private, skip=line.message_id)
        if line.private:
            conv.nick = line.private
        row = chat_row(line, self.node.nick)
        widget = self._add(row, conv)
        if row.message_id is not None and (row.undelivered or row.pending):
            self.undelivered[row.message_id] = widget
            if len(self.undelivered) > UNDELIVERED_KEPT:
                del self.undelivered[next(iter(self.undelivered))]
        if line.own:
            if conv is not self.current:
                self._add(echo_row(line, self.label(conv), self.number(conv)))
            return
        on_screen = conv is self.current
        if not on_screen:
            conv.unread += 1
            if row.mention or line.private:
                conv.mention = True
            self.refresh_conversations()
        self.alerts.heard(line, self.node.nick, "" if conv.private else self.label(conv),
                          on_screen)

    def _room_changed(self, event: events.RoomChanged) -> None:
        label = f"#{event.room}"
        if event.own and event.joined:
            conv = self.find(event.room) or self.open(event.room)
            self._add(room_row(event, label), conv)
            members = dict(self.node.room_list()).get(event.room, [])
            others = [m for m in members if m != self.node.nick]
            text = f"also here: {', '.join(others)}" if others else "nobody else is here yet"
            self._add(info_row(event.when, text), conv)
        elif event.own:
            left = self.find(event.room)
            if left is not None:
                self.close(left)
            self._add(room_row(event, label), self.find(DEFAULT_ROOM) or self.current)
        else:
            shown = self.find(event.room)
            if shown is not None:
                self._add(room_row(event, label), shown)

    def _peer_event(self, event: events.PeerJoined | events.PeerLeft | events.NickChanged
                    ) -> None:
        """Joins, leaves and nick changes: shown in #general, in the rooms the peer is in, and
        in the private talk with it; your own nick change in every conversation."""
        row = event_row(event, self.node.nick)
        if getattr(event, "own", False):
            targets = list(self.conversations)
        else:
            rooms = self._peer_rooms.get(event.peer_id, ())
            targets = [c for c in self.conversations
                       if c.key == DEFAULT_ROOM or c.key in rooms or c.peer_id == event.peer_id]
            if isinstance(event, events.NickChanged):
                for conv in targets:
                    if conv.peer_id == event.peer_id:
                        conv.nick = event.new
        for conv in targets:
            if row is not None:  # always, for these events
                self._add(row, conv)
        if isinstance(event, events.PeerLeft) and event.reason is None:
            self._peer_rooms.pop(event.peer_id, None)  # it said goodbye: its rooms are gone
        self.refresh_conversations()

    def delivered(self, message_id: str) -> None:
        """Clear the "not delivered" or pending mark of an own line."""
        widget = self.undelivered.pop(message_id, None)
        if widget is not None:
            widget.update(delivered(widget.row))

    # --- conversations ----------------------------------------------------------------------

    def _new_conversation(self, key: str, nick: str = "") -> Conversation:
        conv = Conversation(key, MessagePane(on_scroll=self.refresh_status,
                                             budget=self.scrollback), nick)
        self.conversations.append(conv)
        return conv

    def find(self, key: str) -> Conversation | None:
        for conv in self.conversations:
            if conv.key == key:
                return conv
        return None

    def open(self, key: str, nick: str = "", skip: str | None = None) -> Conversation:
        """A new conversation (not shown), at the end of the list (so the numbers of the others
        stay what they were), with its history first."""
        conv = self._new_conversation(key, nick)
        self._show_history_block(conv, skip)
        self.refresh_conversations()
        return conv

    def close(self, conv: Conversation) -> None:
        """Close a conversation (not #general): its pane goes (its rows leave the scrollback
        budget).  If it was shown, the one shown before it comes back (when still open), else
        #general."""
        if conv.key == DEFAULT_ROOM or conv not in self.conversations:
            return
        if conv is self.current:
            back = self.find(self._came_from.get(conv.key, DEFAULT_ROOM))
            self.show(back if back is not None and back is not conv else self.conversations[0])
        self.conversations.remove(conv)
        self._came_from.pop(conv.key, None)
        conv.pane.clear()
        self.refresh_conversations()

    def show(self, conv: Conversation) -> None:
        """Make ``conv`` the conversation shown: its unread count is cleared."""
        if conv is not self.current:
            self._came_from[conv.key] = self.current.key
        self.current = conv
        self.room = conv.key
        conv.unread, conv.mention = 0, False
        self.body.original_widget = conv.pane
        self.refresh_peers()
        self.changed()

    def show_number(self, number: int) -> None:
        """Alt-N: the Nth conversation of the list (from 1), if there is one."""
        if 1 <= number <= len(self.conversations):
            self.show(self.conversations[number - 1])

    def show_next(self, step: int) -> None:
        """Ctrl-N / Ctrl-P: the next / previous conversation, round the list."""
        index = self.conversations.index(self.current)
        self.show(self.conversations[(index + step) % len(self.conversations)])

    def show_active(self) -> None:
        """Alt-A: the next conversation with unread lines, those naming you first."""
        index = self.conversations.index(self.current)
        ring = self.conversations[index + 1:] + self.conversations[:index]
        for wanted in (lambda c: c.mention, lambda c: c.unread):
            for conv in ring:
                if wanted(conv):
                    self.show(conv)
                    return

    def number(self, conv: Conversation) -> int:
        return self.conversations.index(conv) + 1

    def label(self, conv: Conversation) -> str:
        """``#ops``, or the other party's nick (as the node shows it while linked)."""
        if (conv.private and conv.nick
                and conv.peer_id not in self.node.members(DEFAULT_ROOM)):  # not linked
            return conv.nick
        return conversation_label(conv.key, self.node)

    def switch_room(self, room: str) -> None:
        """/join (also of a room you are in) and /part: show that conversation."""
        self.show(self.find(room) or self.open(room))

    def refresh_conversations(self) -> None:
        self.conversation_list.update([
            ConversationView(i + 1, self.label(c), c.unread, c.mention, c is self.current)
            for i, c in enumerate(self.conversations)])

    # --- history ----------------------------------------------------------------------------

    def _show_history_block(self, conv: Conversation, skip: str | None = None) -> None:
        """The last lines of a conversation opened for the first time in this run, set apart
        between "history of ..." and "now"."""
        lines = [line for line in self.node.history(conv.key)
                 if line.id != skip]
        now = self.node.now()
        for row in history_rows(lines, f"history of {self.label(conv)}", now, "now"):
            self._add(row, conv)

    def show_history(self, room: str, lines: list[StoredLine], title: str = "") -> None:
        """/history N (and /context N, with its ``title``): the lines into the conversation's
        pane, set apart."""
        conv = self.find(room) or self.current
        if not lines:
            self.show_info([f"no history for {self.label(conv)}"])
            return
        now = self.node.now()
        count = f"{len(lines)} line{'s' if len(lines) != 1 else ''}"
        end = "end of context" if title else "end of history"
        title = title or f"history of {self.label(conv)}, last {count}"
        for row in history_rows(lines, title, now, end):
            self._add(row, conv)
        self.changed()

    # --- the sidebar and the status bar -----------------------------------------------------

    def peer_nicks(self) -> list[str]:
        return [p.nick for p in self.peers.peers if p.nick != self.node.nick]

    def complete(self, text: str, pos: int) -> list[tuple[str, int]]:
        """Tab: commands, rooms (those known) and the peers' nicks (see ``complete``)."""
        names = [spec.name for spec in COMMANDS]
        rooms = [name for name, _members in self.node.room_list()]
        return candidates(text, pos, names, rooms, self.peer_nicks())

    def plain_peers(self) -> list[str]:
        """The linked peers whose link is not encrypted (base peers among them)."""
        return [p.nick for p in self.peers.peers if p.state == "connected" and not p.encrypted]

    def refresh_peers(self) -> None:
        users = self.node.users()
        for peer in users:
            if peer.state == "connected":
                self._peer_rooms[peer.peer_id] = peer.rooms
        room = self.current.key
        self.peers.update(users, None if room == DEFAULT_ROOM or self.current.private else room)
        self.refresh_conversations()
        self.refresh_status()

    def refresh_status(self) -> None:
        rows = self.peers.peers
        size = len(self.input.edit_text.encode("utf-8"))
        over = (size, MAX_SAY_BYTES) if size > MAX_SAY_BYTES else None
        others = [c for c in self.conversations if c is not self.current and c.unread]
        elsewhere = (sum(c.unread for c in others), any(c.mention for c in others),
                     [self.number(c) for c in others])
        self.status.update(self.node.nick, self.label(self.current), self.node.port,
                           sum(1 for p in rows if p.state == "connected"), len(rows),
                           self.messages.unread, over, elsewhere, self.plain_peers(),
                           typing=typing_nicks(self),
                           transfers=status_text(self.node.files.transfers()))

    # --- input ------------------------------------------------------------------------------

    def submit(self, text: str) -> bool:
        """Run one line the user typed (Enter).  Returns whether it was taken: a refused line
        (too long, unknown command) is not, and says why; either way it leaves the input line
        (so it does not glue onto what is typed next) and Up brings it back."""
        parsed = parse_input(text)
        if not isinstance(parsed, Refusal) and not (isinstance(parsed, Command)
                                                    and parsed.name == "clear"):
            self.messages.following = True  # you speak: back to the bottom
            self.messages.unread = 0
        self.handle_input(text)
        self.refresh_status()
        return not isinstance(parsed, Refusal)

    def open_private(self, peer_id: str, nick: str) -> None:
        """/query: show the private talk (opened if new, named ``nick`` while the peer is
        away), at its bottom."""
        key = private_key(peer_id)
        self.show(self.find(key) or self.open(key, nick=nick))
        self.show_info([f"talking privately with {self.label(self.current)} (/part to end)"])
        self.messages.following = True

    def run_command(self, command: Command) -> None:
        if command.name == "help":
            where = self.log_path or "where twistd's --logfile or --logger sends it"
            self.show_info(["commands:"] + [f"  {line}" for line in help_lines()]
                           + [f"  {usage:<22} {what}" for usage, what in CONSOLE_COMMANDS]
                           + ["keys:"] + [f"  {line}" for line in key_help_lines()]
                           + [f"log file: {where}"])
        elif command.name == "part" and not command.arg and self.current.private:
            self.close(self.current)
        elif command.name in ALERT_COMMANDS:
            self.show_info(self.alerts.command(command.name, command.arg, self.current.key,
                                               self.label(self.current)))
        else:
            super().run_command(command)

    # --- CommandFace's answers ----------------------------------------------------------------

    def _add(self, row: Row, conv: Conversation | None = None) -> MessageRow:
        return (conv or self.current).pane.append(row)

    def show_info(self, lines: list[str]) -> None:
        now = self.node.now()
        for line in lines:
            self._add(info_row(now, line))
        self.changed()

    def show_error(self, text: str) -> None:
        self._add(error_row(self.node.now(), text))
        self.changed()

    def clear(self) -> None:
        self.messages.clear()
        self.refresh_status()

    def quit(self) -> None:
        if not self.quitting:
            self.quitting = True
            self._on_quit()


def caught_up(face: ConsoleFace, run: Run) -> None:
    """A big catch-up ended (catching_up.py): a summary, then the conversation's last lines
    from the history (in the order they were said, whoever handed them on) fill its pane."""
    conv = face.find(run.room) or face.open(run.room)
    lines = face.node.history(run.room, CATCH_UP_SCROLLBACK)
    title = f"{summary(run, face.label(conv))}; the last {len(lines)}:"
    for row in history_rows(lines, title, face.node.now(), "now"):
        face._add(row, conv)
    if conv is not face.current:
        conv.unread += run.held
        face.refresh_conversations()
    face.changed()


def typing_nicks(face: ConsoleFace) -> list[str]:
    """Who is typing in the conversation on screen now (marks that ended are dropped)."""
    now = face.clock.seconds()
    for room in list(face.typing_now):
        who = face.typing_now[room]
        for peer_id in [p for p, (_, until) in who.items() if until <= now]:
            del who[peer_id]
        if not who:
            del face.typing_now[room]
    return sorted(nick for nick, _ in face.typing_now.get(face.current.key, {}).values())
