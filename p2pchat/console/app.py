"""The console face: the widgets put together, fed by the node's events and the keyboard, and
the service that runs them on the reactor (``urwid.TwistedEventLoop``, no threads).

``ConsoleFace`` needs no screen (tests render its widget to canvases); ``ConsoleService`` gives
it the terminal while twistd runs.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Protocol

import urwid
import urwid.display.raw
from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from p2pchat import events, logs
from p2pchat.commands import COMMANDS, Command, Refusal, Say, help_lines, parse_input
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
from p2pchat.console.input_line import INPUT_MAX_CHARS, is_text_key
from p2pchat.console.paste import PASTE_MAX_CHARS, PASTE_MAX_LINES, PasteGate
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
from p2pchat.interfaces import IChat, StoredLine, private_key
from p2pchat.wire import DEFAULT_ROOM, MAX_SAY_BYTES

log = Logger()

#: Sidebar width in cells, and the narrowest terminal that still gets a sidebar.
SIDEBAR_WIDTH = 20
SIDEBAR_MIN_COLS = 60
#: How often (seconds) the peer list is refreshed even without news: "stale" comes with time.
PEER_REFRESH = 2.0

#: Own lines whose mark is kept to be cleared (the oldest are let go: nobody may ever ack).
UNDELIVERED_KEPT = 1000
#: Seconds a bracketed paste may go without its end marker before it is taken as ended.
PASTE_END_WAIT = 1.0
#: Lines of an accepted paste said per reactor turn (the rest in the next turns).
PASTE_LINES_PER_TURN = 10

#: Every key the console knows, as /help and the README list them.
KEYS: tuple[tuple[str, str], ...] = (
    ("Enter", "send the line (empty input is ignored)"),
    ("Alt-1 .. Alt-9", "show conversation 1 .. 9 (as numbered in the list)"),
    ("Ctrl-N / Ctrl-P", "next / previous conversation"),
    ("Alt-A", "next conversation with unread lines (those naming you first)"),
    ("Up / Down", "older / newer lines from the input history"),
    ("Tab / Shift-Tab", "complete a command, #room or nick; again: the next match"),
    ("Left / Right", "move one character"),
    ("Home / End, Ctrl-A / Ctrl-E", "start / end of the line"),
    ("Meta-B / Meta-F", "one word left / right"),
    ("Backspace / Delete, Ctrl-D", "delete a character"),
    ("Ctrl-W, Meta-Backspace", "delete the word before the cursor"),
    ("Meta-D", "delete the word after the cursor"),
    ("Ctrl-U / Ctrl-K", "delete to the start / end of the line"),
    ("Ctrl-Y", "paste what was last deleted"),
    ("Ctrl-Y / Ctrl-N", "while 'Paste N lines?' shows: send them (as text) / drop them"),
    ("Ctrl-_", "undo an edit"),
    ("PgUp / PgDn", "scroll the messages by a page"),
    ("mouse wheel", "scroll the messages (Shift+drag selects text)"),
    ("Ctrl-L", "redraw the screen"),
    ("Ctrl-C", "leave, as /quit"),
)

#: What the console adds to the commands every face has.
CONSOLE_COMMANDS: tuple[tuple[str, str], ...] = (
    ("/query NICK [TEXT]", "open the private talk with NICK and show it (and say TEXT)"),
    ("/part in a private talk", "close it (its lines stay in the history)"),
)

#: Meta-digit keys as urwid names them: conversation 1..9.
NUMBER_KEYS = {f"meta {n}": n for n in range(1, 10)}


class Clock(Protocol):
    """What the console needs of the reactor: timers (the paste's end, its lines per turn).
    A Protocol, not ``IReactorTime``: mypy reads zope interfaces' methods as lacking self."""

    def callLater(self, delay: float, callable: Callable[..., object], *args: object,
                  **kw: object) -> Any: ...


def key_help_lines() -> list[str]:
    return [f"{keys:<28} {what}" for keys, what in KEYS]


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

    def render(self, size, focus=False):
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

    def keypress(self, size, key):
        """One key (tests, and urwid for keys the service's input filter passed on)."""
        unhandled = self.face.take_keys([key], size)
        return unhandled[0] if unhandled else None

    def mouse_event(self, size, event, button, col, row, focus) -> bool:
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


class ConsoleFace(CommandFace):
    """The chat as the console shows it: an observer of the node and a source of its verbs.

    Every conversation has a pane of its own; ``room`` (CommandFace's current conversation) is
    the one shown, and ``messages`` its pane."""

    def __init__(self, node: IChat, on_quit: Callable[[], object], clock: Clock,
                 bell: Callable[[], object] = lambda: None, log_path: str | None = None,
                 changed: Callable[[], object] = lambda: None) -> None:
        """``clock``: where the paste timers run (the reactor; a test's Clock)."""
        self.node = node
        self.clock = clock
        self._on_quit = on_quit
        self._bell = bell
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
        self._paste_wait: Any = None  # the timer ending a paste whose end never came
        self._paste_queue: list[tuple[str, str]] = []
        self._paste_call: Any = None  # the timer saying the next lines of a paste
        #: the conversation shown before each one, to go back to when a private talk closes
        self._came_from: dict[str, str] = {}
        #: own lines not yet delivered, by message id: the row widget, to clear its mark
        self.undelivered: dict[str, MessageRow] = {}
        #: the rooms each peer was in when last looked (to show its leaving in them)
        self._peer_rooms: dict[str, tuple[str, ...]] = {}
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
        self.node.subscribe(self.on_event)
        self.show_info([f"you are {self.node.nick} ({self.node.peer_id}), on port "
                        f"{self.node.port}, in {self.label(self.current)}",
                        "/help lists the commands and keys; /quit or Ctrl-C leaves"])
        self.refresh_peers()

    def detach(self) -> None:
        self.node.unsubscribe(self.on_event)

    def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Delivered):
            self.delivered(event.message_id)
        elif isinstance(event, events.ChatLine):
            self._chat_line(event)
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
        if conv is not self.current:
            conv.unread += 1
            if row.mention or line.private:
                conv.mention = True
                self._bell()
            self.refresh_conversations()
        elif row.mention:
            self._bell()

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

    def show_history(self, room: str, lines: list[StoredLine]) -> None:
        """/history N: the lines into the conversation's pane, set apart."""
        conv = self.find(room) or self.current
        if not lines:
            self.show_info([f"no history for {self.label(conv)}"])
            return
        now = self.node.now()
        count = f"{len(lines)} line{'s' if len(lines) != 1 else ''}"
        title = f"history of {self.label(conv)}, last {count}"
        for row in history_rows(lines, title, now, "end of history"):
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
                           self.messages.unread, over, elsewhere, self.plain_peers())

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

    # --- keys -------------------------------------------------------------------------------

    def take_keys(self, keys: list, size: tuple[int, int]) -> list:
        """Every key of one read from the terminal, in one go: pastes go through the paste
        gate, runs of typed characters into the input line at once, so however much arrives
        the work is a pass over it (no layout per key).  Returns the keys nobody took."""
        unhandled: list = []
        try:
            for action in self.paste.feed(keys):
                unhandled += self._act(action, size)
        except Exception:
            log.failure("console keys {keys!r} failed", keys=keys[:20])
            self.show_error("that failed; the log has the details")
        self._wait_for_paste_end()
        self.refresh_status()  # once per read, however many keys it had
        return unhandled

    def _act(self, action: tuple, size: tuple[int, int]) -> list:
        kind, what = action
        if kind == "keys":
            return self._typed(what, size)
        if kind == "insert":
            self.input.insert(what)
        elif kind == "ask":
            more = f" (the first {PASTE_MAX_LINES} only)" if what > PASTE_MAX_LINES else ""
            self.input_area.ask(f"Paste {what} lines{more}? [ctrl-y] Yes [ctrl-n] No")
        elif kind == "send":
            self.input_area.done()
            self._send_paste(what)
        elif kind == "drop":
            self.input_area.done()
            self.show_info([f"paste of {what} lines dropped"])
        elif kind == "cut":
            self.show_error(f"a paste holds at most {PASTE_MAX_CHARS} characters; "
                            f"{what} more were dropped")
        return []

    def _typed(self, keys: list, size: tuple[int, int]) -> list:
        """Keys typed (not pasted): a run of characters is inserted in one go."""
        unhandled: list = []
        run: list[str] = []
        for key in keys:
            if is_text_key(key):
                run.append(key)
                continue
            if run:
                self.input.insert("".join(run))
                run = []
            left = self._key(size, key)
            if left is not None:
                unhandled.append(left)
        if run:
            self.input.insert("".join(run))
        return unhandled

    def _key(self, size: tuple[int, int], key):
        """One key that is not a character: the global ones first, then the input line's."""
        if key == "ctrl c":
            self.quit()
            return None
        if key in ("page up", "page down"):
            self.messages.scroll(key)
            return None
        if key in NUMBER_KEYS:
            self.show_number(NUMBER_KEYS[key])
            return None
        if key in ("ctrl n", "ctrl p"):
            self.show_next(1 if key == "ctrl n" else -1)
            return None
        if key == "meta a":
            self.show_active()
            return None
        try:
            unhandled = self.input.keypress((size[0],), key)
        except Exception:
            log.failure("console key {key!r} failed", key=key)
            self.show_error("that failed; the log has the details")
            return None
        if unhandled in ("tab", "shift tab", "esc", "up", "down", "left", "right"):
            return None  # nothing to complete or move: no focus changes, no beep
        return unhandled

    def _input_cut(self, dropped: int) -> None:
        self.show_error(f"the input line holds at most {INPUT_MAX_CHARS} characters; "
                        f"{dropped} more were dropped")

    def _wait_for_paste_end(self) -> None:
        """A bracketed paste whose end marker never comes ends by itself a moment later."""
        if self._paste_wait is not None and self._paste_wait.active():
            self._paste_wait.cancel()
        self._paste_wait = None
        if self.paste.collecting:
            self._paste_wait = self.clock.callLater(PASTE_END_WAIT, self._paste_timeout)

    def _paste_timeout(self) -> None:
        self._paste_wait = None
        for action in self.paste.end():  # text to insert or a question: no keys, no size
            self._act(action, (0, 0))
        self.refresh_status()
        self.changed()

    def _send_paste(self, lines: list[str]) -> None:
        """Say the lines of an accepted paste in the conversation shown now, as text (a
        leading ``/`` too), a few per reactor turn."""
        if len(lines) > PASTE_MAX_LINES:
            self.show_error(f"only the first {PASTE_MAX_LINES} of {len(lines)} lines are sent")
            lines = lines[:PASTE_MAX_LINES]
        self.messages.following = True
        self.messages.unread = 0
        self._paste_queue += [(self.room, line) for line in lines]
        if self._paste_call is None:
            self._send_some()

    def _send_some(self) -> None:
        self._paste_call = None
        batch = self._paste_queue[:PASTE_LINES_PER_TURN]
        del self._paste_queue[:PASTE_LINES_PER_TURN]
        for room, line in batch:
            parsed = parse_input("/" + line if line.startswith("/") else line)
            if isinstance(parsed, Say):
                self._answer(self.node.say(parsed.text, room=room))
            elif isinstance(parsed, Refusal):
                self.show_error(parsed.reason)
        if self._paste_queue and not self.quitting:
            self._paste_call = self.clock.callLater(0, self._send_some)
        self.changed()

    def stop_paste(self) -> None:
        """Nothing more of a paste is said or waited for (the console stops)."""
        for call in (self._paste_call, self._paste_wait):
            if call is not None and call.active():
                call.cancel()
        self._paste_call = self._paste_wait = None
        self._paste_queue = []

    def unhandled_input(self, key) -> bool:
        """Keys nobody took (MainLoop's hook): ignored on purpose."""
        return True

    def run_command(self, command: Command) -> None:
        if command.name == "help":
            where = self.log_path or "where twistd's --logfile or --logger sends it"
            self.show_info(["commands:"] + [f"  {line}" for line in help_lines()]
                           + [f"  {usage:<22} {what}" for usage, what in CONSOLE_COMMANDS]
                           + ["keys:"] + [f"  {line}" for line in key_help_lines()]
                           + [f"log file: {where}"])
        elif command.name == "part" and not command.arg and self.current.private:
            self.close(self.current)
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


class ConsoleService(Service):
    """Gives the terminal to a ConsoleFace while the service runs.

    ``screen`` is for tests (a fake screen); by default the real terminal, named explicitly
    because under twistd ``sys.stdout`` is the log file."""

    def __init__(self, node: IChat, reactor, data_dir: str, on_quit: Callable[[], object],
                 screen=None) -> None:
        """``on_quit``: what /quit and Ctrl-C do (the service stops the reactor)."""
        self.node = node
        self._on_quit = on_quit
        self.reactor = reactor
        self.data_dir = data_dir
        self._screen = screen
        self.face: ConsoleFace | None = None
        self.loop: urwid.MainLoop | None = None
        self._redraw_call = None
        self._peer_refresh: LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        screen = self._screen
        if screen is None:
            # Bracketed paste on (ESC[?2004h at start, ESC[?2004l at stop): a paste comes as
            # 'begin paste' ... 'end paste' keys, so the console can ask before sending it.
            screen = urwid.display.raw.Screen(input=sys.__stdin__,  # type: ignore[arg-type]
                                              output=sys.__stdout__,  # type: ignore[arg-type]
                                              bracketed_paste_mode=True)
        self.face = ConsoleFace(self.node, on_quit=self._on_quit, clock=self.reactor,
                                bell=self._bell, log_path=logs.log_path(),
                                changed=self.request_redraw)
        self.loop = urwid.MainLoop(
            self.face.widget, PALETTE, screen=screen,
            event_loop=urwid.TwistedEventLoop(reactor=self.reactor, manage_reactor=False),
            handle_mouse=True, unhandled_input=self.face.unhandled_input,
            input_filter=self._input_filter)
        self.loop.start()
        if hasattr(screen, "tty_signal_keys"):
            # Ctrl-C as a key ('ctrl c'), so it leaves as /quit does; urwid restores it on stop.
            screen.tty_signal_keys(intr="undefined")
        self.face.attach()
        self._peer_refresh = LoopingCall(self._refresh_peers)
        self._peer_refresh.clock = self.reactor
        self._peer_refresh.start(PEER_REFRESH, now=False)

    def _input_filter(self, keys: list, raw: list) -> list:
        """Every read of keys goes to the face in one piece (not key by key through the
        widgets); mouse events and resizes go on to urwid."""
        if self.face is None or self.loop is None:
            return keys
        size = self.loop.screen_size or self.loop.screen.get_cols_rows()
        typed = [k for k in keys if isinstance(k, str) and k != "window resize"]
        rest = [k for k in keys if not isinstance(k, str) or k == "window resize"]
        for key in self.face.take_keys(typed, size):
            if key == "ctrl l":
                self.loop.screen.clear()  # redraw it all
        return rest

    def _refresh_peers(self) -> None:
        if self.face is not None:
            self.face.refresh_peers()
            self.request_redraw()

    def request_redraw(self) -> None:
        """Redraw once this reactor turn is over, however many events came in it."""
        if self.loop is not None and self._redraw_call is None:
            self._redraw_call = self.reactor.callLater(0, self._redraw)

    def _redraw(self) -> None:
        self._redraw_call = None
        if self.loop is None:
            return
        try:
            self.loop.draw_screen()
        except Exception:
            log.failure("console redraw failed")

    def _bell(self) -> None:
        """Ring the terminal bell: a mention."""
        screen = self.loop.screen if self.loop is not None else None
        try:
            if screen is not None and hasattr(screen, "write"):
                screen.write("\a")
                screen.flush()  # type: ignore[attr-defined]
        except Exception:
            log.failure("bell failed")

    def stopService(self) -> None:
        super().stopService()
        if self._peer_refresh is not None and self._peer_refresh.running:
            self._peer_refresh.stop()
        self._peer_refresh = None
        if self._redraw_call is not None and self._redraw_call.active():
            self._redraw_call.cancel()
        self._redraw_call = None
        if self.face is not None:
            self.face.detach()
            self.face.stop_paste()
        loop, self.loop = self.loop, None
        if loop is not None:
            try:
                loop.stop()  # restores the terminal
            except Exception:
                log.failure("console stop failed")
