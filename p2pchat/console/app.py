"""The console face: the widgets put together, fed by the node's events and the keyboard, and
the service that runs them on the reactor (``urwid.TwistedEventLoop``, no threads).

``ConsoleFace`` needs no screen (tests render its widget to canvases); ``ConsoleService`` gives
it the terminal while twistd runs.
"""

from __future__ import annotations

import sys
from typing import Callable

import urwid
from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from p2pchat import events, logs
from p2pchat.commands import Command, Refusal, help_lines, parse_input
from p2pchat.console.format import (
    PALETTE,
    Row,
    delivered,
    error_row,
    event_row,
    info_row,
)
from p2pchat.console.widgets import (
    WHEEL_DOWN,
    WHEEL_ROWS,
    WHEEL_UP,
    InputArea,
    InputLine,
    MessagePane,
    MessageRow,
    PeerList,
    StatusBar,
)
from p2pchat.face import CommandFace, conversation_label
from p2pchat.node import Node
from p2pchat.service import stop_reactor
from p2pchat.wire import MAX_SAY_BYTES

log = Logger()

#: The delivery event of the reliability work, when the node has it (else own lines keep
#: their "not delivered" mark).
_DELIVERED = getattr(events, "Delivered", None)

#: Sidebar width in cells, and the narrowest terminal that still gets a sidebar.
SIDEBAR_WIDTH = 20
SIDEBAR_MIN_COLS = 60
#: How often (seconds) the peer list is refreshed even without news: "stale" comes with time.
PEER_REFRESH = 2.0

#: Every key the console knows, as /help and the README list them.
KEYS: tuple[tuple[str, str], ...] = (
    ("Enter", "send the line (empty input is ignored)"),
    ("Up / Down", "older / newer lines from the input history"),
    ("Tab / Shift-Tab", "complete a nick; again: the next match"),
    ("Left / Right", "move one character"),
    ("Home / End, Ctrl-A / Ctrl-E", "start / end of the line"),
    ("Meta-B / Meta-F", "one word left / right"),
    ("Backspace / Delete, Ctrl-D", "delete a character"),
    ("Ctrl-W, Meta-Backspace", "delete the word before the cursor"),
    ("Meta-D", "delete the word after the cursor"),
    ("Ctrl-U / Ctrl-K", "delete to the start / end of the line"),
    ("Ctrl-Y", "paste what was last deleted"),
    ("Ctrl-_", "undo an edit"),
    ("PgUp / PgDn", "scroll the messages by a page"),
    ("mouse wheel", "scroll the messages (Shift+drag selects text)"),
    ("Ctrl-L", "redraw the screen"),
    ("Ctrl-C", "leave, as /quit"),
)


def key_help_lines() -> list[str]:
    return [f"{keys:<28} {what}" for keys, what in KEYS]


class ChatBody(urwid.Widget):
    """Messages with the peer list on the right; the peer list is left out on a narrow
    terminal, so the messages keep a useful width."""

    _sizing = frozenset([urwid.BOX])

    def __init__(self, messages: MessagePane, peers: PeerList) -> None:
        super().__init__()
        self.messages = messages
        self.wide = urwid.Columns([
            messages,
            (1, urwid.AttrMap(urwid.SolidFill("│"), "divider")),
            (SIDEBAR_WIDTH, peers),
        ], dividechars=1)

    def _pick(self, size: tuple[int, int]) -> urwid.Widget:
        return self.wide if size[0] >= SIDEBAR_MIN_COLS else self.messages

    def render(self, size, focus=False):
        return self._pick(size).render(size, focus)


class ConsoleWidget(urwid.WidgetWrap):
    """The whole screen.  Global keys (PgUp/PgDn, Ctrl-C) are taken here before the input line
    sees them; any exception in a handler is logged and shown, never printed over the screen."""

    def __init__(self, face: ConsoleFace) -> None:
        self.face = face
        footer = urwid.Pile([face.status, InputArea(face.input)])
        frame = urwid.Frame(ChatBody(face.messages, face.peers), footer=footer,
                            focus_part="footer")
        super().__init__(frame)

    def keypress(self, size, key):
        try:
            return self._keypress(size, key)
        except Exception:
            log.failure("console key {key!r} failed", key=key)
            self.face.show_error("that failed; the log has the details")
            return None

    def _keypress(self, size, key):
        if key == "ctrl c":
            self.face.quit()
            return None
        if key in ("page up", "page down"):
            self.face.messages.scroll(key)
            return None
        unhandled = self._w.keypress(size, key)
        self.face.refresh_status()
        if unhandled in ("tab", "shift tab", "esc", "up", "down", "left", "right"):
            return None  # nothing to complete or move: no focus changes, no beep
        return unhandled

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


class ConsoleFace(CommandFace):
    """The chat as the console shows it: an observer of the node and a source of its verbs."""

    def __init__(self, node: Node, on_quit: Callable[[], object],
                 bell: Callable[[], object] = lambda: None, log_path: str | None = None,
                 changed: Callable[[], object] = lambda: None) -> None:
        self.node = node
        self._on_quit = on_quit
        self._bell = bell
        self.log_path = log_path
        #: called after the node changed what is shown (the service redraws)
        self.changed = changed
        self.quitting = False
        self.messages = MessagePane(on_scroll=self.refresh_status)
        self.peers = PeerList()
        self.status = StatusBar()
        self.input = InputLine(self.submit, self.peer_nicks)
        #: own lines nobody heard yet, by message id, for the reliability work to clear
        self.undelivered: dict[str, MessageRow] = {}
        self.widget = ConsoleWidget(self)
        self.refresh_peers()

    # --- the node ---------------------------------------------------------------------------

    def attach(self) -> None:
        """Start listening to the node and greet the user."""
        self.node.subscribe(self.on_event)
        self.show_info([f"you are {self.node.nick} ({self.node.peer_id}), on port "
                        f"{self.node.port}, in {conversation_label(self.room, self.node)}",
                        "/help lists the commands and keys; /quit or Ctrl-C leaves"])
        self.refresh_peers()

    def detach(self) -> None:
        self.node.unsubscribe(self.on_event)

    def on_event(self, event: events.Event) -> None:
        if _DELIVERED is not None and isinstance(event, _DELIVERED):
            self.delivered(event.message_id)
            self.changed()
            return
        row = event_row(event, self.node.nick, self._elsewhere(event))
        if row is not None:
            widget = self._add(row)
            if row.mention:
                self._bell()
            if row.undelivered and row.message_id is not None:
                self.undelivered[row.message_id] = widget
        if not isinstance(event, (events.ChatLine, events.Notice)):
            self.refresh_peers()
        else:
            self.refresh_status()
        self.changed()

    def _elsewhere(self, event: events.Event) -> str | None:
        """The label of the conversation a chat line belongs to, if not the current one."""
        room = getattr(event, "room", None)
        if not isinstance(event, events.ChatLine) or room is None or room == self.room:
            return None
        return conversation_label(room, self.node)

    def switch_room(self, room: str) -> None:
        super().switch_room(room)
        self.show_info([f"now talking in {conversation_label(room, self.node)}"])
        self.refresh_status()

    def delivered(self, message_id: str) -> None:
        """Clear the "not delivered" mark of an own line (for when delivery happens later)."""
        widget = self.undelivered.pop(message_id, None)
        if widget is not None:
            widget.update(delivered(widget.row))

    def peer_nicks(self) -> list[str]:
        return [p.nick for p in self.peers.peers if p.nick != self.node.nick]

    def refresh_peers(self) -> None:
        self.peers.update(self.node.users())
        self.refresh_status()

    def refresh_status(self) -> None:
        rows = self.peers.peers
        size = len(self.input.edit_text.encode("utf-8"))
        over = (size, MAX_SAY_BYTES) if size > MAX_SAY_BYTES else None
        self.status.update(self.node.nick, conversation_label(self.room, self.node), self.node.port,
                           sum(1 for p in rows if p.state == "connected"), len(rows),
                           self.messages.unread, over)

    # --- input ------------------------------------------------------------------------------

    def submit(self, text: str) -> bool:
        """Run one line the user typed.  Returns whether the input line should be emptied:
        a refused line (too long, unknown command) stays, so it can be fixed."""
        parsed = parse_input(text)
        if not isinstance(parsed, Refusal) and not (isinstance(parsed, Command)
                                                    and parsed.name == "clear"):
            self.messages.following = True  # you speak: back to the bottom
            self.messages.unread = 0
        self.handle_input(text)
        self.refresh_status()
        return not isinstance(parsed, Refusal)

    def unhandled_input(self, key) -> bool:
        """Keys nobody took (MainLoop's hook): ignored on purpose."""
        return True

    def run_command(self, command: Command) -> None:
        if command.name == "help":
            where = self.log_path or "where twistd's --logfile or --logger sends it"
            self.show_info(["commands:"] + [f"  {line}" for line in help_lines()]
                           + ["keys:"] + [f"  {line}" for line in key_help_lines()]
                           + [f"log file: {where}"])
        else:
            super().run_command(command)

    # --- CommandFace's answers ----------------------------------------------------------------

    def _add(self, row: Row) -> MessageRow:
        return self.messages.append(row)

    def show_info(self, lines: list[str]) -> None:
        now = self.node.clock.seconds()
        for line in lines:
            self._add(info_row(now, line))
        self.changed()

    def show_error(self, text: str) -> None:
        self._add(error_row(self.node.clock.seconds(), text))
        self.changed()

    def clear(self) -> None:
        self.messages.clear()
        self.undelivered.clear()
        self.refresh_status()

    def quit(self) -> None:
        if not self.quitting:
            self.quitting = True
            self._on_quit()


class ConsoleService(Service):
    """Gives the terminal to a ConsoleFace while the service runs.

    ``screen`` is for tests (a fake screen); by default the real terminal, named explicitly
    because under twistd ``sys.stdout`` is the log file."""

    def __init__(self, node: Node, reactor, data_dir: str, screen=None) -> None:
        self.node = node
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
            screen = urwid.raw_display.Screen(input=sys.__stdin__, output=sys.__stdout__)
        self.face = ConsoleFace(self.node, on_quit=lambda: stop_reactor(self.reactor),
                                bell=self._bell, log_path=logs.log_path(),
                                changed=self.request_redraw)
        self.loop = urwid.MainLoop(
            self.face.widget, PALETTE, screen=screen,
            event_loop=urwid.TwistedEventLoop(reactor=self.reactor, manage_reactor=False),
            handle_mouse=True, unhandled_input=self.face.unhandled_input)
        self.loop.start()
        if hasattr(screen, "tty_signal_keys"):
            # Ctrl-C as a key ('ctrl c'), so it leaves as /quit does; urwid restores it on stop.
            screen.tty_signal_keys(intr="undefined")
        self.face.attach()
        self._peer_refresh = LoopingCall(self._refresh_peers)
        self._peer_refresh.clock = self.reactor
        self._peer_refresh.start(PEER_REFRESH, now=False)

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
                screen.flush()
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
        loop, self.loop = self.loop, None
        if loop is not None:
            try:
                loop.stop()  # restores the terminal
            except Exception:
                log.failure("console stop failed")
