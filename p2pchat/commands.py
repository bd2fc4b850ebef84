"""Slash commands: what the user typed, parsed into a thing to say or a command to run.

Pure code shared by every face, so ``/nick`` means the same in the console and the line face.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2pchat.wire import MAX_SAY_BYTES, room_problem

#: Shown with a refused room name: names that work.
ROOM_EXAMPLE = "#ops or #team-2"


@dataclass(frozen=True)
class Spec:
    name: str
    aliases: tuple[str, ...]
    args: str
    help: str
    needs_arg: bool = False


#: Every command, in the order /help lists them.
COMMANDS: tuple[Spec, ...] = (
    Spec("help", (), "", "list the commands"),
    Spec("users", ("who",), "", "list the peers and their state"),
    Spec("nick", (), "NAME", "change your nick (1-20 characters, no spaces)", needs_arg=True),
    Spec("me", (), "ACTION", "say an action, shown as '* you ACTION'", needs_arg=True),
    Spec("join", ("j",), "#ROOM", "join a room (and talk there); made if new", needs_arg=True),
    Spec("part", ("leave",), "[#ROOM]", "leave a room (the current one by default)"),
    Spec("rooms", (), "", "list the rooms and who is in each"),
    Spec("msg", (), "NICK TEXT", "say TEXT to NICK alone (private)", needs_arg=True),
    Spec("query", (), "NICK [TEXT]", "talk to NICK alone from now on (and say TEXT)",
         needs_arg=True),
    Spec("history", (), "[N]", "show the last N lines of this room (default 50)"),
    Spec("search", (), "WORDS", "find lines in the history; filters from:NICK in:#ROOM "
         "before:YYYY-MM-DD after:YYYY-MM-DD", needs_arg=True),
    Spec("context", (), "N", "show the lines around result N of the last /search",
         needs_arg=True),
    Spec("whois", (), "NICK", "a peer's key, address, and whether the link is encrypted",
         needs_arg=True),
    Spec("trust", (), "NICK", "pin the key NICK uses now (e.g. after a 'carol?' warning)",
         needs_arg=True),
    Spec("forget", (), "NICK", "forget the key pinned for NICK", needs_arg=True),
    Spec("ignore", (), "[NICK]", "hide NICK's lines (by its key, kept); alone: who is ignored"),
    Spec("unignore", (), "NICK", "show NICK's lines again", needs_arg=True),
    Spec("connect", (), "HOST:PORT|INVITE", "link with a static peer (direct TCP), or with "
         "a friend's p2pchat: invite (over Tor); kept, and redialed", needs_arg=True),
    Spec("disconnect", (), "NAME|ADDRESS", "forget a static peer, contact or used invite",
         needs_arg=True),
    Spec("contacts", (), "", "list the static peers and contacts, and their state"),
    Spec("invite", (), "", "make an invite for one friend to reach you over Tor"),
    Spec("away", (), "[TEXT]", "tell your peers you are away (TEXT, or just 'away')"),
    Spec("back", (), "", "you are back: no longer away"),
    Spec("set", (), "[typing on|off]", "settings (kept); typing off: peers are not told "
         "when you type"),
    Spec("send", (), "NICK|#ROOM PATH", "offer a file (or a folder, with its tree) to NICK, "
         "or to everyone in #ROOM", needs_arg=True),
    Spec("files", (), "", "the file transfers, in and out: state, size, progress, rate"),
    Spec("accept", (), "[N]", "take file offer N (the newest waiting without N)"),
    Spec("reject", (), "[N]", "refuse file offer N (the newest waiting without N)"),
    Spec("cancel", (), "N", "stop file transfer N (yours or to you)", needs_arg=True),
    Spec("clear", (), "", "clear the message pane (console)"),
    Spec("highlight", (), "[add|del WORD]",
         "notify for lines with WORD (kept); alone: the words (console)"),
    Spec("mute", (), "[#ROOM|NICK]", "no notifications from a room or nick (default: the "
         "current conversation; console)"),
    Spec("unmute", (), "[#ROOM|NICK]", "notifications from it again (console)"),
    Spec("dnd", (), "", "do not disturb: no notifications until /dnd again (console)"),
    Spec("quit", ("q", "exit"), "", "leave the chat (peers are told)"),
)

_BY_NAME = {alias: spec for spec in COMMANDS for alias in (spec.name, *spec.aliases)}


@dataclass(frozen=True)
class Say:
    """Plain text to say to the room."""

    text: str


@dataclass(frozen=True)
class Command:
    """A known command with its argument text (stripped; may be empty)."""

    name: str
    arg: str = ""


@dataclass(frozen=True)
class Refusal:
    """Input that can't be done, with the reason to show."""

    reason: str


def is_plain(text: str) -> bool:
    """Whether ``text`` is plain text to say as it is (``parse_input`` makes it a ``Say`` of
    itself): not a command, not blank, short enough in any encoding.  What a paste is made
    of, so the line face takes such a line without the ``Say`` (a frozen dataclass: half a
    microsecond a line)."""
    return bool(text and text[0] != "/" and len(text) * 4 <= MAX_SAY_BYTES
                and text[-1] not in "\r\n" and not text.isspace())


def parse_input(text: str) -> Say | Command | Refusal | None:
    """One line of user input.  None for blank input (nothing to do).  ``//text`` says
    ``/text`` literally, as IRC clients do."""
    if is_plain(text):
        return Say(text)  # plain text, short enough in any encoding: what a paste is made of
    text = text.rstrip("\r\n")
    if not text.strip():
        return None
    if text.startswith("/") and not text.startswith("//"):
        word, _, arg = text[1:].partition(" ")
        spec = _BY_NAME.get(word.lower())
        if spec is None:
            return Refusal(f"unknown command /{word}; /help lists the commands")
        arg = arg.strip()
        if spec.needs_arg and not arg:
            return Refusal(f"usage: /{spec.name} {spec.args}")
        if spec.name == "me":
            return _checked(Command("me", arg), arg)
        if spec.name == "query":
            return _checked(Command("query", arg), arg.partition(" ")[2])
        if spec.name == "msg":
            target, _, text = arg.partition(" ")
            if not text.strip():
                return Refusal(f"usage: /{spec.name} {spec.args}")
            return _checked(Command("msg", arg), text)
        # isdigit() alone takes "²", which int() refuses: only ASCII digits are a count.
        if spec.name == "history" and arg and not (arg.isascii() and arg.isdigit()
                                                   and int(arg) > 0):
            return Refusal("usage: /history [N], N a number of lines")
        return Command(spec.name, arg)
    if text.startswith("//"):
        text = text[1:]
    return _checked(Say(text), text)


def _checked(result: Say | Command, text: str) -> Say | Command | Refusal:
    size = len(text.encode("utf-8"))
    if size > MAX_SAY_BYTES:
        return Refusal(f"that line is {size} bytes; the limit is {MAX_SAY_BYTES}, not sent")
    return result


def room_name(text: str) -> tuple[str, str | None]:
    """What the user typed (``#Ops``, ``ops``) to a room name, and why it can't be one."""
    name = text.strip().lstrip("#").lower()
    problem = room_problem(name)
    if problem and name:
        problem = f"{problem}; for example {ROOM_EXAMPLE}"
    return name, problem


def help_lines() -> list[str]:
    """The text of /help, one line per command."""
    lines = []
    for spec in COMMANDS:
        names = " ".join(f"/{n}" for n in (spec.name, *spec.aliases))
        usage = f"{names} {spec.args}".strip()
        lines.append(f"{usage:<22} {spec.help}")
    lines.append(f"{'//text':<22} say text that starts with /")
    return lines
