"""History to IRC clients: the last lines of a room played back on JOIN, and the IRCv3
``CHATHISTORY`` command (``draft/chathistory``), both from ``IChat.history``.

A client with ``batch`` gets them between ``BATCH +id chathistory TARGET`` and ``BATCH -id``;
with ``server-time`` each line carries its original time; with ``message-tags`` its msgid.
The ``[HH:MM]`` written in front of a line played back (for clients that show no other time)
is left out only for a client with both ``server-time`` and ``batch``: irssi 1.4 asks for
server-time but by default shows the time a line came (``show_server_time`` is off), so
without the written time its history would show the wrong times; a client that knows
batches of history shows theirs.

CHATHISTORY is answered from the last CHATHISTORY_WINDOW lines of the conversation (what
``IChat.history`` gives at most), filtered by the references asked: an answer that might
need a line older than that window is refused with ``FAIL CHATHISTORY MESSAGE_ERROR``
rather than answered short.  ``TARGETS`` is not answered (``FAIL ... UNKNOWN_COMMAND``):
``IChat`` has no list of conversations by time.
"""

from __future__ import annotations

import bisect
import calendar
import re
import time
from dataclasses import dataclass

from p2pchat.interfaces import StoredLine
from twisted.words.protocols import irc

from p2pchat.irc.caps import BATCH, CHATHISTORY, SERVER_TIME
from p2pchat.irc.client import Handler, IrcClientProtocol
from p2pchat.irc.names import SELF_HOST, Member, channel, channel_room, irc_nick, irc_user
from p2pchat.irc.names import is_channel

#: Lines of a room's history played back to a client that joins it.
HISTORY_PLAYBACK = 20
#: Most lines one CHATHISTORY answer holds (CHATHISTORY= in 005); a larger limit asked is
#: cut to it.
CHATHISTORY_LIMIT = 100
#: The lines of a conversation CHATHISTORY looks through: the most ``IChat.history`` gives
#: (chat.HISTORY_MAX_SHOWN; tests check they agree).
CHATHISTORY_WINDOW = 1000

_TIMESTAMP = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?Z?")


def play_history(client: IrcClientProtocol, room: str) -> None:
    """The room's last lines, as bouncers play back a buffer (in a batch, for a client with
    ``batch``, only if there are any)."""
    lines = client.lan.node.history(room, HISTORY_PLAYBACK)
    if not lines:
        return
    ref = client.open_batch("chathistory", channel(room))
    for line in lines:
        show_stored(client, line, channel(room), ref)
    client.close_batch(ref)


def show_stored(client: IrcClientProtocol, line: StoredLine, target: str, batch: str) -> None:
    """One line of history: from its nick (ours from us), to ``target`` (a channel, or for a
    private line the other party's nick: then a line of theirs is to us)."""
    private = not is_channel(target)
    author = Member(target if private and not line.own else irc_nick(line.nick),
                    line.sender_id, irc_user(line.sender_id),
                    SELF_HOST if line.own else "history")
    text = line.text
    if not (client.has(SERVER_TIME) and client.has(BATCH)):
        text = f"[{time.strftime('%H:%M', time.localtime(line.when))}] {text}"
    to = client.lan.roster.me.nick if private and not line.own else target
    client.show_chat(author, to, text, line.action, when=line.when, msgid=line.id,
                     batch=batch)


# --- CHATHISTORY ------------------------------------------------------------------------


class Failed(Exception):
    """A CHATHISTORY request that gets a FAIL: its code, context and words."""

    def __init__(self, code: str, why: str, *context: str) -> None:
        super().__init__(why)
        self.code = code
        self.why = why
        self.context = context


@dataclass(frozen=True)
class Cut:
    """Where a reference falls in the window: lines ``[:before]`` are before it, lines
    ``[after:]`` after it; ``anchored``: no line older than the window is after it."""

    before: int
    after: int
    anchored: bool


def parse_timestamp(text: str) -> float | None:
    """``2026-12-01T12:00:00.000Z`` (UTC) as a time, or None if it is not one."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        return None
    y, mo, d, h, mi, s = (int(g) for g in match.groups()[:6])
    try:
        whole = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
        time.gmtime(whole)
    except (OverflowError, ValueError, OSError):
        return None
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 61):
        return None
    fraction = match.group(7) or "0"
    return whole + int(fraction) / 10 ** len(fraction)


def _cut(window: list[StoredLine], complete: bool, ref: str) -> Cut:
    kind, _, value = ref.partition("=")
    if kind == "msgid" and value:
        for i, line in enumerate(window):
            if line.id == value:
                return Cut(i, i + 1, True)
        raise Failed("MESSAGE_ERROR", "no such message in the last "
                     f"{CHATHISTORY_WINDOW} lines of this conversation", ref[:64])
    if kind == "timestamp":
        when = parse_timestamp(value)
        if when is None:
            raise Failed("INVALID_PARAMS", "a timestamp is YYYY-MM-DDThh:mm:ss.sssZ", ref[:64])
        whens = [line.when for line in window]
        before, after = bisect.bisect_left(whens, when), bisect.bisect_right(whens, when)
        return Cut(before, after, complete or (bool(window) and when >= window[0].when))
    raise Failed("INVALID_PARAMS", "a reference is timestamp=TIME or msgid=ID", ref[:64])


def _too_old() -> Failed:
    return Failed("MESSAGE_ERROR", f"only the last {CHATHISTORY_WINDOW} lines of a "
                  "conversation can be asked for here")


def answer(window: list[StoredLine], complete: bool, sub: str, refs: list[str],
           limit: int) -> list[StoredLine]:
    """The lines a CHATHISTORY ``sub`` (LATEST, BEFORE, AFTER, AROUND, BETWEEN) asks for,
    oldest first, from ``window`` (the conversation's last lines; ``complete``: all of it);
    raises Failed when the answer could need a line older than the window."""
    if sub == "LATEST":
        if refs[0] == "*":
            return window[-limit:]
        cut = _cut(window, complete, refs[0])
        if not cut.anchored:
            raise _too_old()
        return window[cut.after:][-limit:]
    cut = _cut(window, complete, refs[0])
    if sub == "BEFORE":
        if not complete and cut.before < limit:
            raise _too_old()
        return window[:cut.before][-limit:]
    if sub == "AFTER":
        if not cut.anchored:
            raise _too_old()
        return window[cut.after:][:limit]
    if sub == "AROUND":
        start = cut.before - limit // 2
        if start < 0 and not complete:
            raise _too_old()
        return window[max(0, start):][:limit]
    # BETWEEN: strictly between the two, nearest the first one
    other = _cut(window, complete, refs[1])
    if (cut.before, cut.after) <= (other.before, other.after):
        if not cut.anchored:
            raise _too_old()
        return window[cut.after:other.before][:limit]
    between = window[other.after:cut.before]
    if not other.anchored and len(between) < limit:
        raise _too_old()
    return between[-limit:]


#: Each subcommand: how many references it takes before the limit.
_SUBCOMMANDS = {"LATEST": 1, "BEFORE": 1, "AFTER": 1, "AROUND": 1, "BETWEEN": 2}


def chathistory(client: IrcClientProtocol, params: list[str]) -> None:
    """``CHATHISTORY LATEST|BEFORE|AFTER|AROUND|BETWEEN TARGET REF [REF] LIMIT``: the lines
    asked, in a ``chathistory`` batch (empty if there are none), or a FAIL saying why not.
    Only for a client that asked for draft/chathistory (to others, unknown: 421, as before)."""
    if not client.has(CHATHISTORY):
        client.numeric(irc.ERR_UNKNOWNCOMMAND, "CHATHISTORY", text="Unknown command")
        return
    sub = params[0].upper() if params else ""
    try:
        if sub == "TARGETS":
            raise Failed("UNKNOWN_COMMAND", "TARGETS is not answered by p2pchat", sub)
        if sub not in _SUBCOMMANDS:
            raise Failed("UNKNOWN_COMMAND", "CHATHISTORY LATEST, BEFORE, AFTER, AROUND or "
                         "BETWEEN", sub[:32] or "*")
        wanted = _SUBCOMMANDS[sub] + 3
        if len(params) < wanted:
            raise Failed("NEED_MORE_PARAMS", "Not enough parameters", sub)
        target, refs, limit_text = params[1], params[2:wanted - 1], params[wanted - 1]
        if not limit_text.isdigit() or int(limit_text) < 1:
            raise Failed("INVALID_PARAMS", "the limit is a number above 0", sub,
                         limit_text[:32] or "*")
        limit = min(int(limit_text), CHATHISTORY_LIMIT)
        room, shown = _conversation(client, sub, target)
        window = client.lan.node.history(room, CHATHISTORY_WINDOW)
        lines = answer(window, len(window) < CHATHISTORY_WINDOW, sub, refs, limit)
    except Failed as failed:
        client.send("FAIL", "CHATHISTORY", failed.code, *failed.context, text=failed.why)
        return
    ref = client.open_batch("chathistory", shown)
    for line in lines:
        show_stored(client, line, shown, ref)
    client.close_batch(ref)


def _conversation(client: IrcClientProtocol, sub: str, target: str) -> tuple[str, str]:
    """The conversation a CHATHISTORY target names (a room, or ``@peer_id`` for the private
    talk with a nick) and the target as the answer names it."""
    if is_channel(target):
        room, code, why = channel_room(target)
        if code is not None:
            raise Failed("INVALID_TARGET", why or "not a p2pchat room", sub, target[:64])
        return room, channel(room)
    lan = client.lan
    member = lan.roster.holder(target)
    if member is not None:
        return "@" + member.peer_id, member.nick
    away = lan.away_peer(target)
    if away is None:
        raise Failed("INVALID_TARGET", "no such nick or channel", sub, target[:64])
    return "@" + away[1], target


COMMANDS: dict[str, Handler] = {"CHATHISTORY": chathistory}
