"""Notifications: when a line is worth telling the user about, and how it is told.

Pure rules (``Notifier.reason``), the escape sequences each terminal understands
(``sequences``), the highlight words kept in the data dir (``Highlights``), and the
freedesktop notification through ``notify-send`` (``Desktop``, the one part with a reactor).
The console decides what is on screen and whether the terminal has the focus; this module
decides the rest.

Worth telling: a line (not ours, not replayed from history or catch-up) that names our nick as
a word, is private, or has a highlight word; and only while its conversation is not on screen,
or the terminal has said (focus reporting) that it lost the focus.  Never under /dnd, nor for
a muted room or nick.  A terminal that never reported its focus is taken as not known to be
focused, so a mention on screen still rings the bell (as the console always did).
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from typing import Any, Callable, Iterable, Mapping

from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.procutils import which

from p2pchat.identity import _write_private
from p2pchat.notifyopts import (  # noqa: F401 (their old home: re-exported)
    DEFAULT_OUTPUTS,
    HIGHLIGHTS_NAME,
    OUTPUTS,
    NotifyConfig,
    parse_outputs,
)
from p2pchat.wire import printable

log = Logger()

#: Most characters of a notification's title (who, where) and body (what), after cleaning.
MAX_TITLE_CHARS = 64
MAX_BODY_CHARS = 200
#: Most highlight words kept, and the longest one.
MAX_HIGHLIGHTS = 50
MAX_HIGHLIGHT_CHARS = 40
#: Most notify-send processes running at once: a burst of mentions spawns no more.
MAX_DESKTOP_RUNNING = 4
#: The environment that says a desktop session is there to notify.
DESKTOP_ENV = ("DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS")

ESC = "\x1b"
BEL = "\a"
ST = ESC + "\\"


def clean(text: str, limit: int) -> str:
    """Text from the network made safe inside an escape sequence: ``printable`` first, then
    every control, format or separator character left (C0, C1, DEL, U+FFFD from printable,
    bidi and zero-width marks) and ';' (the OSC field separator) dropped; at most ``limit``
    characters."""
    out = []
    for ch in printable(text):
        if ch == " ":
            out.append(ch)
        elif ch == ";":
            out.append(",")
        elif ch == "\ufffd" or unicodedata.category(ch)[0] in ("C", "Z"):
            continue
        else:
            out.append(ch)
    cleaned = " ".join("".join(out).split())
    if len(cleaned) > limit:
        cleaned = cleaned[:limit - 1] + "…"
    return cleaned


def names_word(text: str, word: str) -> bool:
    """Whether ``text`` has ``word`` as a word of its own (case-insensitive)."""
    if not word:
        return False
    return re.search(r"(?<!\w)" + re.escape(word) + r"(?!\w)", text, re.IGNORECASE) is not None


def tmux_wrap(seq: str) -> str:
    """An escape sequence passed through tmux to the terminal outside it (tmux needs
    ``set -g allow-passthrough on``): inner ESCs doubled."""
    return f"{ESC}Ptmux;" + seq.replace(ESC, ESC + ESC) + ST


def sequences(outputs: Iterable[str], title: str, body: str, tmux: bool = False) -> str:
    """What is written to the terminal for one notification, for the outputs chosen
    (``desktop`` writes nothing).  ``title`` and ``body`` must be ``clean`` already."""
    text = f"{title}: {body}" if body else title
    out = []
    for name in outputs:
        if name == "bell":
            out.append(BEL)  # tmux passes a bell on by itself (its bell-action)
            continue
        if name == "osc777":
            seq = f"{ESC}]777;notify;{title};{body}{BEL}"
        elif name == "osc9":
            seq = f"{ESC}]9;{text}{BEL}"
        elif name == "osc99":
            seq = f"{ESC}]99;;{text}{ST}"
        else:
            continue
        out.append(tmux_wrap(seq) if tmux else seq)
    return "".join(out)


class Highlights:
    """The highlight words (``/highlight add WORD``), kept in the data dir across restarts."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._words: list[str] = []
        if path is None or not os.path.exists(path):
            return
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            words = data.get("words", []) if isinstance(data, dict) else []
            for word in words[:MAX_HIGHLIGHTS]:
                if isinstance(word, str) and word_problem(word) is None \
                        and word.lower() not in self._lowered():
                    self._words.append(word)
        except (OSError, ValueError) as e:
            log.warn("highlight words in {path} not read: {why}", path=path, why=str(e))

    def _lowered(self) -> list[str]:
        return [w.lower() for w in self._words]

    @property
    def words(self) -> list[str]:
        return list(self._words)

    def add(self, word: str) -> str:
        """What to tell the user."""
        problem = word_problem(word)
        if problem:
            return problem
        if word.lower() in self._lowered():
            return f"{word!r} is a highlight word already"
        if len(self._words) >= MAX_HIGHLIGHTS:
            return f"{MAX_HIGHLIGHTS} highlight words already; /highlight del one first"
        self._words.append(word)
        return self._save(f"lines with {word!r} are highlighted now")

    def remove(self, word: str) -> str:
        lowered = self._lowered()
        if word.lower() not in lowered:
            return f"{word!r} is not a highlight word"
        del self._words[lowered.index(word.lower())]
        return self._save(f"{word!r} is no longer a highlight word")

    def find(self, text: str) -> str | None:
        """The first highlight word ``text`` has, as a word."""
        for word in self._words:
            if names_word(text, word):
                return word
        return None

    def _save(self, done: str) -> str:
        if self.path is None:
            return done
        try:
            _write_private(self.path, json.dumps({"words": self._words}).encode("utf-8"))
        except OSError as e:
            log.warn("highlight words not saved in {path}: {why}", path=self.path, why=str(e))
            return f"{done} (but not saved: {e.strerror})"
        return done


def word_problem(word: str) -> str | None:
    """Why ``word`` can't be a highlight word."""
    if not word or any(ch.isspace() for ch in word):
        return "a highlight word is one word: /highlight add WORD"
    if len(word) > MAX_HIGHLIGHT_CHARS:
        return f"a highlight word has at most {MAX_HIGHLIGHT_CHARS} characters"
    if clean(word, MAX_HIGHLIGHT_CHARS) != word:
        return "a highlight word has no control characters"
    return None


class Notifier:
    """The rules and the user's choices: do-not-disturb, muted conversations and nicks,
    highlight words, and whether the terminal has the focus (None: it never said)."""

    def __init__(self, config: NotifyConfig | None = None) -> None:
        self.config = config or NotifyConfig()
        self.highlights = Highlights(self.config.highlights_path)
        self.dnd = False
        #: muted: room keys as "#general", private talks as "@peer_id", nicks lowercased
        self.muted: set[str] = set()
        self.focused: bool | None = None

    def reason(self, *, text: str, nick: str, me: str, room: str, private: bool,
               own: bool = False, replayed: bool = False, on_screen: bool = False) -> str | None:
        """Why this line is worth a notification ("mention", "private", "highlight"), or
        None.  ``room``: its conversation key ("general", "@peer_id")."""
        if own or replayed or self.dnd:
            return None
        if on_screen and self.focused is not False:
            # On screen in a terminal with the focus (or one that never said): a bell for a
            # mention only, as always, unless the terminal said it has the focus.
            if self.focused or not names_word(text, me):
                return None
        if self.is_muted(room, nick):
            return None
        if names_word(text, me):
            return "mention"
        if private:
            return "private"
        if self.highlights.find(text) is not None:
            return "highlight"
        return None

    def is_muted(self, room: str, nick: str) -> bool:
        key = room if room.startswith("@") else f"#{room}"
        return key in self.muted or nick.lower() in self.muted

    def texts(self, *, text: str, nick: str, where: str) -> tuple[str, str]:
        """The title (who, where) and body (what, unless --notify-hide-text), cleaned."""
        title = clean(f"{nick} in {where}" if where else nick, MAX_TITLE_CHARS)
        body = "" if self.config.hide_text else clean(text, MAX_BODY_CHARS)
        return title, body


class _Ended(ProcessProtocol):
    def __init__(self, done: Callable[[], object]) -> None:
        self._done = done

    def processEnded(self, reason: Failure) -> None:
        self._done()


class Desktop:
    """Freedesktop notifications through ``notify-send``, spawned on the reactor (never
    waited for).  Silently absent, with one log line, where there is no desktop session or
    no notify-send."""

    def __init__(self, reactor: Any, env: Mapping[str, str] | None = None,
                 find: Callable[[str], list[str]] = which) -> None:
        self.reactor = reactor
        self.env = dict(os.environ if env is None else env)
        self.running = 0
        self.path: str | None = None
        if not any(self.env.get(name) for name in DESKTOP_ENV):
            log.info("no desktop session (no {names}): no desktop notifications",
                     names="/".join(DESKTOP_ENV))
            return
        found = find("notify-send")
        if not found:
            log.info("notify-send not found: no desktop notifications")
            return
        self.path = found[0]

    def send(self, title: str, body: str) -> None:
        """``title`` and ``body`` cleaned already; passed as arguments, never to a shell."""
        if self.path is None or self.running >= MAX_DESKTOP_RUNNING:
            return
        args = [self.path, "--app-name=p2pchat", "--", title, body]
        try:
            self.reactor.spawnProcess(_Ended(self._ended), self.path, args, env=self.env)
        except Exception as e:
            log.warn("notify-send could not run: {why}; no more desktop notifications",
                     why=str(e))
            self.path = None
            return
        self.running += 1

    def _ended(self) -> None:
        self.running = max(0, self.running - 1)
