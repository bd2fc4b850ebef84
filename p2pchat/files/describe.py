"""What the faces show of file transfers, and the commands every face runs the same way
(/send, /files, /accept, /reject, /cancel).  Over interfaces.py only (faces import this)."""

from __future__ import annotations

from typing import Protocol

from p2pchat.files.terms import human_size, short_hash
from p2pchat.interfaces import Done, IChat, Outcome, Refused, TransferView
from p2pchat.wire import printable

#: The commands of this module (commands.py holds their help).
FILE_COMMANDS = frozenset({"send", "files", "accept", "reject", "cancel"})
#: The line face prints a running transfer's progress at most every this many percent.
PROGRESS_STEP = 10


class Answers(Protocol):
    node: IChat

    def show_info(self, lines: list[str]) -> None: ...

    def show_error(self, text: str) -> None: ...


def _what(view: TransferView) -> str:
    files = f", {view.files} files" if view.files > 1 else ""
    return f"{printable(view.name)}{'/' if view.files > 1 else ''} ({human_size(view.size)}" \
           f"{files}, sha256 {short_hash(view.sha256)})"


def percent(view: TransferView) -> int:
    return 100 if view.size == 0 else int(view.done * 100 / view.size)


def time_left(view: TransferView) -> str:
    if view.rate <= 0:
        return ""
    s = int((view.size - view.done) / view.rate)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def offer_text(view: TransferView) -> str:
    """An offer to us, with the command to take it."""
    return (f"{printable(view.peer)} offers {_what(view)}: /accept {view.number} to take it, "
            f"/reject {view.number} to refuse")


#: Why an offer to us closed when we closed it ourselves: /reject and /cancel answer for it
#: already, so the event is not told a second time.
YOU_REJECTED, YOU_CANCELLED = "you rejected it", "you cancelled it"


def event_text(view: TransferView, what: str) -> str | None:
    """One transfer event as one line (the line face, the IRC face's notices); None for the
    ones not told as lines."""
    n, name = view.number, printable(view.name)
    way = f"from {printable(view.peer)}" if view.incoming else f"to {printable(view.peer)}"
    if what == "offered":  # ours: /send's answer says so
        return offer_text(view) if view.incoming else None
    if what == "started":
        return f"file [{n}] {name} {way}: started at {percent(view)}%"
    if what == "progress":
        left = time_left(view)
        return (f"file [{n}] {name} {way}: {percent(view)}%, {human_size(view.rate)}/s"
                + (f", {left} left" if left else ""))
    if what == "done":
        where = f": saved as {view.path}" if view.incoming else ""
        return f"file [{n}] {name} {way}: done, SHA-256 checked{where}"
    if what in ("failed", "paused", "rejected", "cancelled", "expired"):
        if view.incoming and view.why in (YOU_REJECTED, YOU_CANCELLED):
            return None  # the command's own answer said it
        why = f": {printable(view.why)}" if view.why else ""
        tail = " (resumes by itself)" if what == "paused" else ""
        return f"file [{n}] {name} {way}: {what}{why}{tail}"
    return None


class Steps:
    """Which progress events the line face prints: one per PROGRESS_STEP percent at most."""

    def __init__(self) -> None:
        self.shown: dict[tuple[bool, int], int] = {}

    def show(self, view: TransferView, what: str) -> bool:
        key = (view.incoming, view.number)
        step = percent(view) // PROGRESS_STEP
        if what == "progress":
            if step <= self.shown.get(key, -1):
                return False
        elif what in ("done", "failed", "cancelled", "rejected", "expired"):
            self.shown.pop(key, None)
            return True
        self.shown[key] = step
        return True


def files_table(views: list[TransferView]) -> list[str]:
    """The text of /files."""
    if not views:
        return ["no file transfers (/send NICK PATH offers one)"]
    lines = ["file transfers (in: offered to you; out: yours):"]
    for v in views:
        way = "in  from" if v.incoming else "out to  "
        rate = f" {human_size(v.rate)}/s" if v.rate else ""
        left = time_left(v)
        lines.append(f"  [{v.number}] {way} {printable(v.peer):<12} {v.state:<9} "
                     f"{percent(v):>3}%{rate}{' ' + left + ' left' if left else ''}  "
                     f"{_what(v)}" + (f"  ({printable(v.why)})" if v.why else "")
                     + (f"  -> {v.path}" if v.incoming and v.path else ""))
    return lines


def status_text(views: list[TransferView]) -> str:
    """The console's status line: the running transfers, one bar each (at most two)."""
    running = [v for v in views if v.state in ("receiving", "sending")]
    parts = []
    for v in running[:2]:
        p = percent(v)
        bar = "█" * (p // 10) + "░" * (10 - p // 10)
        left = time_left(v)
        rate = f" {human_size(v.rate)}/s" if v.rate else ""  # none yet: not "0 B/s"
        parts.append(f"{'↓' if v.incoming else '↑'}{printable(v.name)[:16]} {bar} {p}%"
                     + rate + (f" {left}" if left else ""))
    if len(running) > 2:
        parts.append(f"+{len(running) - 2}")
    return " ".join(parts)


def _number(arg: str) -> int | None | str:
    arg = arg.strip().lstrip("[").rstrip("]")
    if not arg:
        return None
    if arg.isascii() and arg.isdigit():
        return int(arg)
    return f"not a transfer number: {arg!r} (/files lists them)"


def file_command(face: Answers, name: str, arg: str) -> None:
    """Run /send, /files, /accept, /reject or /cancel in ``face``."""
    files = face.node.files

    def tell(outcome: Outcome) -> None:
        if isinstance(outcome, Done):
            face.show_info([outcome.text])
        else:
            face.show_error(outcome.why)

    if name == "files":
        face.show_info(files_table(files.transfers()))
        return
    if name == "send":
        target, _, path = arg.strip().partition(" ")
        if not target or not path.strip():
            face.show_error("usage: /send NICK PATH or /send #ROOM PATH")
            return
        answer = files.send(target, path.strip())
        if not answer.called:  # a refusal comes at once; hashing takes a while: say so
            face.show_info([f"hashing {path.strip()} to offer it ..."])
        answer.addCallback(tell)
        return
    number = _number(arg)
    if isinstance(number, str):
        face.show_error(number)
    elif name == "accept":
        tell(files.accept(number))
    elif name == "reject":
        tell(files.reject(number))
    elif number is None:
        face.show_error("usage: /cancel N (/files lists them)")
    else:
        tell(files.cancel(number))


__all__ = ["FILE_COMMANDS", "Refused", "event_text", "file_command", "files_table",
           "offer_text", "status_text", "Steps"]
