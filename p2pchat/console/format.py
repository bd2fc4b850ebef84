"""How the console shows things: the palette, nick colors, and events turned into rows.

Pure code (no widgets, no screen): a row is plain text markup, so it can be tested by value and
the widgets stay a thin rendering of it.
"""

from __future__ import annotations

import re
import time
import zlib
from dataclasses import dataclass, replace
from typing import Union

from urwid.str_util import calc_width

from p2pchat import events
from p2pchat.face import clock_text  # noqa: F401 (HH:MM:SS: one function for every face)
from p2pchat.files.describe import event_text
from p2pchat.interfaces import StoredLine

#: urwid text markup: a string, an (attribute, markup) pair, or a list of those.
Markup = Union[str, tuple, list]

#: Nick colors: the 16-color terminal's colors minus those taken (white: you, gray: text and
#: notices) and those unreadable on a dark or a light background (black, dark blue).
NICK_COLORS: tuple[str, ...] = (
    "light red", "light green", "yellow", "light blue", "light magenta", "light cyan",
    "dark red", "dark green", "brown", "dark magenta", "dark cyan",
)

#: (name, foreground, background[, mono]) entries for urwid.MainLoop.
PALETTE: list[tuple[str, str, str]] = [
    ("time", "dark gray", "default"),
    ("text", "default", "default"),
    ("own_nick", "white,bold", "default"),
    ("own_text", "light gray", "default"),
    ("action", "default,italics", "default"),
    ("notice", "dark gray", "default"),
    ("info", "light gray", "default"),
    ("error", "light red", "default"),
    ("mention", "yellow,bold", "default"),
    ("mention_mark", "black", "yellow"),
    ("undelivered", "dark red", "default"),
    ("pending", "dark gray", "default"),
    ("history", "dark gray", "default"),
    ("separator", "dark cyan", "default"),
    ("status", "white", "dark blue"),
    ("status_nick", "white,bold", "dark blue"),
    ("status_unread", "black,bold", "yellow"),
    ("status_over", "white,bold", "dark red"),
    ("status_act", "white,bold", "dark blue"),
    ("status_mention", "black,bold", "yellow"),
    ("status_plain", "white,bold", "dark magenta"),
    ("paste_prompt", "black,bold", "yellow"),
    ("sidebar_title", "white,bold", "default"),
    ("peer_connected", "light green", "default"),
    ("peer_connecting", "yellow", "default"),
    ("peer_stale", "dark gray", "default"),
    ("peer_flagged", "light red,bold", "default"),
    ("peer_note", "dark gray", "default"),
    ("conv", "light gray", "default"),
    ("conv_current", "black", "light gray"),
    ("conv_unread", "white,bold", "default"),
    ("conv_mention", "yellow,bold", "default"),
    ("divider", "dark gray", "default"),
    ("prompt", "light cyan,bold", "default"),
] + [(f"nick{i}", color, "default") for i, color in enumerate(NICK_COLORS)]

#: Width of the nick column, in terminal cells (longer nicks are cut with an ellipsis).
NICK_WIDTH = 12
#: Width of the time column ("HH:MM:SS").
TIME_WIDTH = 8

#: What the nick column shows for rows that are not someone speaking.
MARK_JOIN = "-->"
MARK_LEAVE = "<--"
MARK_NICK = "--"
MARK_INFO = "-"
MARK_ERROR = "!"
MARK_ACTION = "*"

#: After an own line nobody heard (no peer connected when it was said).
NOT_DELIVERED = "(not delivered)"
#: After an own line that was sent but is not yet acknowledged by every peer in the room.
PENDING = "⧗"


def nick_attr(nick: str) -> str:
    """The palette entry for a nick: a stable hash, so a nick keeps its color across runs
    and machines (Python's ``hash`` is salted per process; crc32 is not)."""
    return f"nick{zlib.crc32(nick.encode('utf-8')) % len(NICK_COLORS)}"


def fit(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` terminal cells (wide characters count two), with an
    ellipsis when cut."""
    if calc_width(text, 0, len(text)) <= width:
        return text
    out, used = [], 0
    for ch in text:
        w = calc_width(ch, 0, 1)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


def mentions(text: str, nick: str) -> bool:
    """Whether ``text`` names ``nick`` as a word (case-insensitive): "bob:" and "hi Bob!" do,
    "bobby" does not."""
    if not nick:
        return False
    pattern = r"(?<![\w])" + re.escape(nick) + r"(?![\w])"
    return re.search(pattern, text, re.IGNORECASE) is not None


@dataclass(frozen=True)
class Row:
    """One row of the message pane: the time, the nick column, and the text column (which
    wraps under itself)."""

    when: float
    marker: Markup
    body: Markup
    mention: bool = False
    #: the message id of an own line, so its "not delivered" mark can be found again
    message_id: str | None = None
    #: an own line nobody heard yet: shown with a "not delivered" mark
    undelivered: bool = False
    #: an own line sent but not yet acknowledged by every peer in the room: a dim mark
    pending: bool = False
    #: a separator across the pane (history, now, a day): ``body`` is its plain text
    separator: bool = False

    def shown_body(self) -> Markup:
        """The text column as drawn: the body, and the mark while undelivered or pending."""
        if self.undelivered:
            return [self.body, " ", ("undelivered", NOT_DELIVERED)]
        if self.pending:
            return [self.body, " ", ("pending", PENDING)]
        return self.body

    def plain(self) -> str:
        """The row as one line of plain text (for tests and logs)."""
        if self.separator:
            return f"— {_flatten(self.body)} —"
        return f"{clock_text(self.when)} {_flatten(self.marker)} {_flatten(self.shown_body())}"


def _flatten(markup: Markup) -> str:
    if isinstance(markup, str):
        return markup
    if isinstance(markup, tuple):
        return _flatten(markup[1])
    return "".join(_flatten(m) for m in markup)


def chat_row(line: events.ChatLine, my_nick: str) -> Row:
    """A line said in a conversation.  Own lines: nick in bold white and text dimmer, so they
    stand apart; a line that names us: text highlighted (the caller rings the bell)."""
    mention = not line.own and mentions(line.text, my_nick)
    text_attr = "own_text" if line.own else ("mention" if mention else "text")
    who_attr = "own_nick" if line.own else nick_attr(line.nick)
    if line.action:
        marker: Markup = ("mention" if mention else "action", MARK_ACTION)
        body: list = [(who_attr, line.nick), " ", (text_attr, line.text)]
    else:
        marker = [(who_attr, fit(line.nick, NICK_WIDTH))]
        body = [(text_attr, line.text)]
    return Row(line.when, marker, body, mention=mention,
               message_id=line.message_id if line.own else None,
               # kept for a peer that is away: sent when it is back, so pending, not lost
               undelivered=line.own and line.sent_to == 0 and not line.kept,
               pending=line.own and (line.sent_to > 0 or line.kept) and line.pending)


def event_row(event: events.Event, my_nick: str) -> Row | None:
    """The row for a node event, or None for events that only redraw (PeersChanged, Delivered,
    a transfer's progress; RoomChanged has ``room_row``)."""
    if isinstance(event, events.ChatLine):
        return chat_row(event, my_nick)
    if isinstance(event, events.PeerJoined):
        where = _host(event.address)
        return Row(event.when, ("notice", MARK_JOIN),
                   [(nick_attr(event.nick), event.nick), ("notice", f" joined ({where})")])
    if isinstance(event, events.PeerLeft):
        why = f" ({event.reason})" if event.reason else ""
        return Row(event.when, ("notice", MARK_LEAVE),
                   [(nick_attr(event.nick), event.nick), ("notice", f" left{why}")])
    if isinstance(event, events.NickChanged):
        if event.own:
            body: list = [("notice", "you are now known as "), (nick_attr(event.new), event.new)]
        else:
            body = [(nick_attr(event.old), event.old), ("notice", " is now known as "),
                    (nick_attr(event.new), event.new)]
        return Row(event.when, ("notice", MARK_NICK), body)
    if isinstance(event, events.Notice):
        return error_row(event.when, event.text) if event.error else info_row(event.when,
                                                                              event.text)
    if isinstance(event, events.TransferChanged):  # progress: in the status line only
        text = event_text(event.view, event.what)
        if text and event.what not in ("progress", "started"):
            return (error_row if event.what == "failed" else info_row)(event.when, text)
    return None


def _host(address: str) -> str:
    """The host of "host:port": the port of a link is often the peer's outgoing one, which
    tells the user nothing (/users shows where each peer listens)."""
    host, sep, _port = address.rpartition(":")
    return host if sep else address


def info_row(when: float, text: str) -> Row:
    """Command output and information: dimmed."""
    return Row(when, ("notice", MARK_INFO), ("info", text))


def error_row(when: float, text: str) -> Row:
    """An error or a refusal: in red, so it is not missed."""
    return Row(when, ("error", MARK_ERROR), ("error", text))


def delivered(row: Row) -> Row:
    """The row once its line was delivered: the mark goes."""
    return replace(row, undelivered=False, pending=False)


def room_row(event: events.RoomChanged, where: str) -> Row:
    """Someone (or you) joined or left a room: shown in that room's conversation (``where``
    is its label, "#ops")."""
    marker = ("notice", MARK_JOIN if event.joined else MARK_LEAVE)
    verb = "joined" if event.joined else "left"
    if event.own:
        return Row(event.when, marker, ("notice", f"you {verb} {where}"))
    return Row(event.when, marker,
               [(nick_attr(event.nick), event.nick), ("notice", f" {verb} {where}")])


def history_row(line: StoredLine) -> Row:
    """A line from before this run: all of it dimmed, so it stands apart from what is new."""
    if line.action:
        return Row(line.when, ("history", MARK_ACTION), ("history", f"{line.nick} {line.text}"))
    return Row(line.when, ("history", fit(line.nick, NICK_WIDTH)), ("history", line.text))


def separator_row(when: float, text: str) -> Row:
    """A rule across the pane with ``text`` in its middle ("history of #ops", "now")."""
    return Row(when, "", text, separator=True)


def day_text(when: float) -> str:
    """A day as separators name it: "Tue 14 Mar 2024"."""
    return time.strftime("%a %d %b %Y", time.localtime(when))


def history_rows(lines: list[StoredLine], title: str, now: float, end: str) -> list[Row]:
    """History set apart: a separator naming it (and the day it starts, if not today), the
    dimmed lines with a separator where the day changes, and a closing separator ``end``."""
    if not lines:
        return []
    first_day = day_text(lines[0].when)
    if first_day != day_text(now):
        title = f"{title}, from {first_day}"
    rows = [separator_row(lines[0].when, title)]
    day = first_day
    for line in lines:
        if day_text(line.when) != day:
            day = day_text(line.when)
            rows.append(separator_row(line.when, day))
        rows.append(history_row(line))
    rows.append(separator_row(now, end))
    return rows


def echo_row(line: events.ChatLine, where: str, number: int) -> Row:
    """What you said into another conversation (``/msg bob hi`` while in #general), echoed
    where you are, with the key that shows that conversation."""
    key = f" (Alt-{number})" if number <= 9 else ""
    text = f"{line.nick} {line.text}" if line.action else line.text
    return Row(line.when, ("notice", "→"),
               [("notice", "to "), (nick_attr(where), where), ("notice", ": "),
                ("own_text", text), ("notice", key)])
