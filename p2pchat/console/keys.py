"""The console's keyboard: every read of keys from the terminal, the global keys, pastes (asked
about, then said a few lines per reactor turn) and the keys /help lists.

``Keyboard`` is a part of ``ConsoleFace`` (app.py) kept here so each file holds one concern;
it uses the face's input line, paste gate and panes, named below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from p2pchat.commands import Refusal, Say, parse_input
from p2pchat.console.input_line import INPUT_MAX_CHARS, InputLine, is_text_key
from p2pchat.console.paste import PASTE_MAX_CHARS, PASTE_MAX_LINES, PasteGate
from p2pchat.console.widgets import InputArea, MessagePane
from p2pchat.interfaces import IChat

log = Logger()
#: Seconds a bracketed paste may go without its end marker before it is taken as ended.
PASTE_END_WAIT = 1.0
#: Lines of an accepted paste said per reactor turn (the rest in the next turns): said
#: together (``IChat.say_lines``), so a turn's lines share one signature where the links take
#: it (runsig.py signs runs of up to 16).
PASTE_LINES_PER_TURN = 16

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

#: Meta-digit keys as urwid names them: conversation 1..9.
NUMBER_KEYS = {f"meta {n}": n for n in range(1, 10)}


def key_help_lines() -> list[str]:
    return [f"{keys:<28} {what}" for keys, what in KEYS]


class Keyboard:
    """The keys and pastes of a ConsoleFace (which provides what is declared here)."""

    node: IChat
    clock: IReactorTime
    room: str
    quitting: bool
    input: InputLine
    input_area: InputArea
    paste: PasteGate
    _paste_wait: IDelayedCall | None
    _paste_queue: list[tuple[str, str]]
    _paste_call: IDelayedCall | None
    changed: Callable[[], object]

    if TYPE_CHECKING:  # provided by ConsoleFace and CommandFace
        @property
        def messages(self) -> MessagePane:
            ...

        def show_info(self, lines: list[str]) -> None:
            ...

        def show_error(self, text: str) -> None:
            ...

        def refresh_status(self) -> None:
            ...

        def quit(self) -> None:
            ...

        def show_number(self, number: int) -> None:
            ...

        def show_next(self, step: int) -> None:
            ...

        def show_active(self) -> None:
            ...

        def _answer(self, result: object) -> None:
            ...

    def take_keys(self, keys: list, size: tuple[int, int]) -> list:
        """Every key of one read from the terminal, in one go: pastes go through the paste
        gate, runs of typed characters into the input line at once, so however much arrives
        the work is a pass over it (no layout per key).  Returns the keys nobody took."""
        unhandled: list = []
        before = self.input.edit_text
        try:
            for action in self.paste.feed(keys):
                unhandled += self._act(action, size)
            after = self.input.edit_text
            if after != before and after.strip() and not after.startswith("/"):
                self.node.typing(self.room)  # the node rate-limits what it sends
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

    def _key(self, size: tuple[int, int], key: str) -> str | None:
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
        run: list[str] = []  # consecutive lines of one conversation, said together
        run_room = ""
        for room, line in batch:
            parsed = parse_input("/" + line if line.startswith("/") else line)
            if run and (room != run_room or not isinstance(parsed, Say)):
                self._say_run(run, run_room)
                run = []
            if isinstance(parsed, Say):
                run.append(parsed.text)
                run_room = room
            elif isinstance(parsed, Refusal):
                self.show_error(parsed.reason)
        if run:
            self._say_run(run, run_room)
        if self._paste_queue and not self.quitting:
            self._paste_call = self.clock.callLater(0, self._send_some)
        self.changed()

    def _say_run(self, texts: list[str], room: str) -> None:
        for refused in self.node.say_lines(texts, room=room):
            self._answer(refused)

    def stop_paste(self) -> None:
        """Nothing more of a paste is said or waited for (the console stops)."""
        for call in (self._paste_call, self._paste_wait):
            if call is not None and call.active():
                call.cancel()
        self._paste_call = self._paste_wait = None
        self._paste_queue = []

    def unhandled_input(self, key: object) -> bool:
        """Keys nobody took (MainLoop's hook): ignored on purpose."""
        return True
