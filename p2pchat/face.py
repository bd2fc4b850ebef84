"""What every face shares: running what the user typed against the node, and describing the
peer list and rooms, so each command behaves the same in the console, the line face and the
rest."""

from __future__ import annotations

import time

from p2pchat.commands import Command, Refusal, Say, help_lines, parse_input, room_name
from p2pchat.files.describe import FILE_COMMANDS, file_command
from p2pchat.interfaces import (
    Done,
    IChat,
    Outcome,
    PeerView,
    Refused,
    SearchHit,
    StoredLine,
    private_key,
)
from p2pchat.wire import DEFAULT_ROOM

#: Lines /context shows on each side of a search result (the chat bounds it: CONTEXT_MAX).
CONTEXT_LINES = 5

#: The last second ``clock_text`` formatted, and its text (it is on every line shown).
_last_clock: list = [None, ""]


def clock_text(when: float) -> str:
    """HH:MM:SS in local time, as every face stamps its lines (remembered for the current
    second)."""
    second = int(when)
    if _last_clock[0] != second:
        _last_clock[0], _last_clock[1] = second, time.strftime("%H:%M:%S", time.localtime(second))
    return _last_clock[1]


def describe_users(rows: list[PeerView], me: str) -> list[str]:
    """The text of /users."""
    linked = sum(1 for r in rows if r.state == "connected")
    lines = [f"{linked} connected, {len(rows)} known; you are {me}"]
    for r in rows:
        how = "encrypted" if r.encrypted else "plain" if r.state == "connected" else ""
        kind = "" if r.ours else " (base peer)"
        flag = ", KEY NOT THE PINNED ONE" if r.flagged else ""
        away = f", away: {r.away}" if r.away else ""
        lines.append(f"  {r.nick:<21} {r.state:<10} {how:<9} {r.address}{kind}{flag}{away}")
    return lines


def describe_rooms(rooms: list[tuple[str, list[str]]], current: str) -> list[str]:
    """The text of /rooms."""
    lines = []
    for name, members in rooms:
        mark = "*" if name == current else " "
        lines.append(f"{mark} #{name:<20} {len(members):>3}  {', '.join(members)}")
    return lines


def conversation_label(room: str, node: IChat) -> str:
    """How a conversation is named to the user: ``#ops``, or ``bob`` for a private talk."""
    if room.startswith("@"):
        return node.shown_nick(room[1:])
    return f"#{room}"


def history_line(line: StoredLine) -> str:
    """One history line as the line face and /history show it (without the room)."""
    stamp = clock_text(line.when)
    if line.action:
        return f"{stamp} [history] * {line.nick} {line.text}"
    return f"{stamp} [history] <{line.nick}> {line.text}"


def search_line(hit: SearchHit, node: IChat) -> str:
    """One /search result: ``YYYY-MM-DD HH:MM #room <nick> text`` (local time)."""
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(hit.when))
    where = conversation_label(hit.room, node)
    said = f"* {hit.nick} {hit.text}" if hit.action else f"<{hit.nick}> {hit.text}"
    return f"{stamp} {where} {said}"


def search_answer(found: list[SearchHit] | Refused, text: str, node: IChat,
                  numbered: bool = False) -> list[str]:
    """What /search shows: the hits, newest first, between a head and a count, or why not;
    ``numbered`` ([1], [2], ...) where /context N can open them (the console, the line face)."""
    if isinstance(found, Refused):
        return [found.why]
    indexing = node.search_indexing()
    note = f" (indexing: {indexing}% done)" if indexing is not None else ""
    if not found:
        return [f"no lines found for {text}{note}"]
    count = f"{len(found)} line" + ("" if len(found) == 1 else "s")
    return ([f"search {text}: {count}, newest first{note}"]
            + [f"  {f'[{n}] ' if numbered else ''}{search_line(hit, node)}"
               for n, hit in enumerate(found, 1)]
            + ["end of search (/context N: the lines around result N)" if numbered
               else "end of search"])


class CommandFace:
    """Mixin for a face: ``handle_input`` runs one line the user typed in the face's current
    conversation (``room``: a room name, or ``@peer_id``).  The face supplies ``node`` and the
    ways to answer: ``show_info``, ``show_error``, ``clear``, ``quit``; it may override
    ``switch_room`` and ``show_history``."""

    node: IChat
    room: str = DEFAULT_ROOM
    #: the results of the last /search, newest first, which /context N opens
    last_hits: tuple[SearchHit, ...] = ()

    def show_info(self, lines: list[str]) -> None:
        raise NotImplementedError

    def show_error(self, text: str) -> None:
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError

    def quit(self) -> None:
        raise NotImplementedError

    def switch_room(self, room: str) -> None:
        """Make ``room`` the current conversation."""
        self.room = room

    def show_history(self, room: str, lines: list[StoredLine], title: str = "") -> None:
        """/history (and the line face's start): the lines between "history of ..." and "end
        of history"; with a ``title`` (/context), between it and "end of context"."""
        label = conversation_label(room, self.node)
        if not lines:
            self.show_info([f"no history for {label}"])
            return
        self.show_info([title or f"history of {label}, last {len(lines)} lines:"])
        self.show_history_lines([history_line(line) for line in lines])
        self.show_info(["end of context" if title else "end of history"])

    def searched(self, found: list[SearchHit] | Refused, text: str) -> None:
        """/search's answer: shown numbered, and kept for /context N."""
        if not isinstance(found, Refused):
            self.last_hits = tuple(found)
        self.show_info(search_answer(found, text, self.node, numbered=True))

    def context(self, arg: str) -> None:
        """/context N: the lines around result N of the last /search (CONTEXT_LINES before
        and after it, by time, in its conversation), set apart in the current pane."""
        hits = self.last_hits
        if not hits:
            self.show_error("/context N: no search results to open (/search WORDS first)")
            return
        if not arg.strip().isdigit() or not 1 <= int(arg) <= len(hits):
            self.show_error(f"/context N: N is the number of a result of the last /search, "
                            f"1 to {len(hits)} (not {arg.strip()!r})")
            return
        hit = hits[int(arg) - 1]
        lines = self.node.around(hit.room, hit.when, CONTEXT_LINES)
        where = conversation_label(hit.room, self.node)
        self.show_history(self.room, lines, f"context of [{int(arg)}] in {where}")

    def show_history_lines(self, lines: list[str]) -> None:
        """The history lines themselves (a face may write them as they are)."""
        self.show_info(lines)

    def open_private(self, peer_id: str, nick: str) -> None:
        """/query: make the private talk with ``peer_id`` (shown as ``nick``) the current
        conversation."""
        self.switch_room(private_key(peer_id))

    def query(self, arg: str) -> None:
        """/query NICK [TEXT]: the one place every face opens a private talk.  NICK is
        linked, or away (its lines are kept); TEXT (the command parser checked its length) is
        said there as it is, a leading ``/`` too."""
        target, _, text = arg.partition(" ")
        found = self.node.addressee(target)
        if isinstance(found, Refused):
            self.show_error(found.why)
            return
        peer_id, nick = found
        self.open_private(peer_id, nick)
        if text.strip():
            self._answer(self.node.say(text.strip(), room=private_key(peer_id)))

    def handle_input(self, text: str) -> None:
        parsed = parse_input(text)
        if parsed is None:
            return
        if isinstance(parsed, Refusal):
            self.show_error(parsed.reason)
        elif isinstance(parsed, Say):
            self._answer(self.node.say(parsed.text, room=self.room))
        elif isinstance(parsed, Command):
            self.run_command(parsed)

    def _answer(self, result: object) -> None:
        """A verb that says something shows its line by the node's events; a refusal says
        why not."""
        if isinstance(result, Refused):
            self.show_error(result.why)

    def _tell(self, outcome: Outcome) -> None:
        """What /trust, /forget, /ignore and /unignore answer, done or not, as info."""
        self.show_info([outcome.text if isinstance(outcome, Done) else outcome.why])

    def run_command(self, command: Command) -> None:
        name, arg = command.name, command.arg
        if name == "help":
            self.show_info(["commands:"] + [f"  {line}" for line in help_lines()])
        elif name == "users":
            self.show_info(describe_users(self.node.users(), self.node.nick))
        elif name == "nick":
            outcome = self.node.set_nick(arg)
            if isinstance(outcome, Refused):
                self.show_error(f"nick not changed: {outcome.why}")
        elif name == "me":
            self._answer(self.node.act(arg, room=self.room))
        elif name == "join":
            room, problem = room_name(arg)
            joined = Refused(problem) if problem else self.node.join_room(room)
            if isinstance(joined, Refused):
                self.show_error(joined.why)
            else:  # joined now, or already in it: either way it is shown
                self.switch_room(room)
        elif name == "part":
            room = room_name(arg)[0] if arg else self.room
            if room.startswith("@"):
                self.switch_room(DEFAULT_ROOM)  # leaving a private talk: nothing to tell
                return
            parted = self.node.part_room(room)
            if isinstance(parted, Refused):
                self.show_error(parted.why)
            elif self.room == room:
                self.switch_room(DEFAULT_ROOM)
        elif name == "rooms":
            self.show_info(describe_rooms(self.node.room_list(), self.room))
        elif name == "msg":
            target, _, text = arg.partition(" ")
            self._answer(self.node.say_private(target, text.strip()))
        elif name == "query":
            self.query(arg)
        elif name == "history":
            kept = self.node.history(self.room, int(arg)) if arg else self.node.history(self.room)
            self.show_history(self.room, kept)
        elif name == "search":
            self.node.search(arg).addCallback(self.searched, arg)
        elif name == "context":
            self.context(arg)
        elif name == "whois":
            lines = self.node.whois(arg)
            if isinstance(lines, Refused):
                self.show_error(lines.why)
            else:
                self.show_info(lines)
        elif name == "trust":
            self._tell(self.node.trust_peer(arg))
        elif name == "forget":
            self._tell(self.node.forget_pin(arg))
        elif name == "ignore":
            if arg:
                self._tell(self.node.ignore(arg))
            else:
                self.show_info(self.node.ignored())
        elif name == "unignore":
            self._tell(self.node.unignore(arg))
        elif name == "away":
            self._tell(self.node.set_away(arg or "away"))
        elif name == "back":
            self._tell(self.node.set_away(""))
        elif name == "set":
            answer = self.node.setting(arg)
            if isinstance(answer, list):
                self.show_info(answer)
            elif isinstance(answer, Refused):
                self.show_error(answer.why)
            else:
                self._tell(answer)
        elif name in ("connect", "disconnect", "invite"):
            reach = self.node.reach
            outcome = (reach.connect(arg) if name == "connect" else
                       reach.disconnect(arg) if name == "disconnect" else reach.invite())
            if isinstance(outcome, Refused):
                self.show_error(outcome.why)
            else:
                self.show_info([outcome.text])
        elif name == "contacts":
            self.show_info(self.node.reach.contacts())
        elif name in FILE_COMMANDS:
            file_command(self, name, arg)
        elif name == "clear":
            self.clear()
        elif name in ("highlight", "mute", "unmute", "dnd"):
            self.show_error(f"/{name} is for the console (the one face that notifies)")
        elif name == "quit":
            self.quit()
