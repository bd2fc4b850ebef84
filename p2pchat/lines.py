"""The line face (``--ui lines``): stdin in, one line per event out.  For scripts, bots and
tests, so its output format is stable and documented in README.rst:

    10:30:05 <alice> Hello everyone!
    10:30:06 * alice waves
    10:30:01 * bob joined
    10:31:00 * bob left
    10:31:00 * bob left (connection lost)
    10:32:00 * bob is now known as rob
    10:32:05 - some information (command output)
    10:32:06 ! an error or a warning
    10:33:00 [#ops] <alice> a line in the room ops (likewise [#ops] * ... for its notices)
    10:33:01 [private] <bob> a line bob said to you alone
    10:33:02 [private to bob] <carol> a line you said to bob alone
    10:29:00 [history] <alice> a line from before this start (between "- history of ..." and
             "- end of history")
    10:34:00 - delivered to bob: a line of yours that was kept for bob (away) or said with
             nobody linked, once acknowledged ("delivered: ..." for a room line)
    10:35:00 - alice offers a.bin (1.0 MB, sha256 3f2a9c0d11b7): /accept 2 to take it, ...
    10:35:05 - file [2] a.bin from alice: started at 0% (then at most every 10%, then done)
    10:35:00 - caught up 33,412 lines in #general from alice, bob and carol; the last 20:
             a big catch-up (catching_up.py): its first 200 lines as they came, then this, then
             the last lines of the conversation as [history] lines and "- end of history"
"""

from __future__ import annotations

from typing import Any, Callable, cast

from twisted.application.service import Service
from twisted.internet import stdio
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from p2pchat import events
from p2pchat.catching_up import CATCH_UP_TAIL, CatchingUp, Run, summary
from p2pchat.commands import Say, is_plain, parse_input
from p2pchat.face import CommandFace, clock_text, conversation_label, history_line
from p2pchat.files.describe import Steps, event_text
from p2pchat.framing import LinesPerRead
from p2pchat.interfaces import IChat, Refused
from p2pchat.wire import DEFAULT_ROOM

log = Logger()


#: Most own lines remembered to tell their delivery (kept for an away peer, or said while no
#: peer was linked); past this the oldest is forgotten (its delivery is then not told).
TOLD_WHEN_DELIVERED = 1000
#: How much of a delivered line's text "delivered ..." repeats.
DELIVERED_TEXT = 60


def format_line(event: events.ChatLine) -> str:
    """A line said as one line of the line face (no newline): ``format_event``'s for a
    ChatLine, called by the line face for each of a run heard together (``on_lines``)."""
    stamp = clock_text(event.when)
    if event.private:
        where = f"[private to {event.private}] " if event.own else "[private] "
    elif event.room == DEFAULT_ROOM:
        if event.action:
            return f"{stamp} * {event.nick} {event.text}"
        return f"{stamp} <{event.nick}> {event.text}"
    else:
        where = f"[#{event.room}] "
    if event.action:
        return f"{stamp} {where}* {event.nick} {event.text}"
    return f"{stamp} {where}<{event.nick}> {event.text}"


def format_event(event: events.Event) -> str | None:
    """One event as one line of the line face (no newline), or None for events it skips."""
    if isinstance(event, events.ChatLine):
        return format_line(event)
    stamp = clock_text(event.when)
    if isinstance(event, events.RoomChanged):
        return f"{stamp} [#{event.room}] * {event.nick} {'joined' if event.joined else 'left'}"
    if isinstance(event, events.PeerJoined):
        # a peer reached only through others says through whom (gossip.py)
        via = f" ({event.address})" if event.address.startswith("via ") else ""
        return f"{stamp} * {event.nick} joined{via}"
    if isinstance(event, events.PeerLeft):
        tail = f" ({event.reason})" if event.reason else ""
        return f"{stamp} * {event.nick} left{tail}"
    if isinstance(event, events.NickChanged):
        return f"{stamp} * {event.old} is now known as {event.new}"
    if isinstance(event, events.Notice):
        return f"{stamp} {'!' if event.error else '-'} {event.text}"
    if isinstance(event, events.TransferChanged):
        text = event_text(event.view, event.what)
        return f"{stamp} - {text}" if text else None
    if isinstance(event, events.AwayChanged) and not event.own:
        return (f"{stamp} * {event.nick} is away: {event.text}" if event.text
                else f"{stamp} * {event.nick} is back")
    return None


#: Lines taken from stdin in one reactor turn: each said line is signed, saved and written to
#: every link (about 60 us), so a burst of 2,000 written at once held the reactor 140 ms
#: (100 a turn: the sender of a saturated burst held it 50 ms at 200).
LINES_PER_TURN = 100


class LineFace(LinesPerRead, CommandFace):
    """Reads lines from a transport (stdin), writes event lines to it (stdout).

    The plain lines of one read (a paste, a script's burst) are said together
    (``IChat.say_lines``: each numbered, signed, kept and shown as alone, but written to each
    link once); a command among them is run in its place, after the lines before it."""

    delimiter = b"\n"
    MAX_LENGTH = 64 * 1024

    def __init__(self, node: IChat, on_quit: Callable[[], object],
                 clock: IReactorTime | None = None,
                 call_soon: Callable[[Callable[[], None]], object] | None = None) -> None:
        """``clock``: what times a big catch-up's summary (the reactor's, by default).
        ``call_soon``: runs a function at the next reactor turn; given, a paste of
        thousands of lines is taken LINES_PER_TURN at a time."""
        self.node = node
        self._on_quit = on_quit
        self._call_soon = call_soon
        self._taken = 0  # lines taken in this reactor turn
        #: the plain lines of the read being taken, said together at its end (None: no read)
        self._run: list[str] | None = None
        #: what the face writes while a run is said (one write at its end)
        self._held: list[bytes] | None = None
        self._quitting = False
        if clock is None:
            from twisted.internet import reactor

            clock = cast(IReactorTime, reactor)
        self.catching_up = CatchingUp(clock, self._caught_up)
        #: own lines whose delivery is told when it comes (see _delivered), by message id
        self._told_later: dict[str, events.ChatLine] = {}
        #: file progress printed at most every 10%
        self._steps = Steps()

    def connectionMade(self) -> None:
        history = self.node.history(DEFAULT_ROOM)
        if history:
            self.show_history(DEFAULT_ROOM, history)
        # a big catch-up summed up; the lines of a run heard together written at once
        self.catching_up.watch(self.node, self.on_event, self.on_lines)
        self.show_info([f"you are {self.node.nick} ({self.node.peer_id}), on port "
                        f"{self.node.port}; /help lists the commands"])

    def switch_room(self, room: str) -> None:
        super().switch_room(room)
        label = conversation_label(room, self.node)
        if room.startswith("@"):
            self.show_info([f"talking privately with {label} (/part to end)"])
        else:
            self.show_info([f"now talking in {label}"])

    def show_history_lines(self, lines: list[str]) -> None:
        """History lines are written as they are (each has its stamp and ``[history]``)."""
        for line in lines:
            self._write(line)

    def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.ChatLine) and not event.own:  # most events: a peer's line
            line = format_event(event)
            if line is not None:
                self._write(line)
            return
        if isinstance(event, events.Delivered):
            line = self._delivered(event)
        elif isinstance(event, events.TransferChanged) and not self._steps.show(event.view,
                                                                                 event.what):
            return
        else:
            line = format_event(event)
            if isinstance(event, events.ChatLine) and event.own:
                self._tell_later(event)
        if line is not None:
            self._write(line)

    def _tell_later(self, event: events.ChatLine) -> None:
        """Remember an own line whose delivery is to be told (kept for an away peer, or
        said with nobody linked)."""
        if event.pending and (event.kept or event.sent_to == 0):
            self._told_later[event.message_id] = event
            if len(self._told_later) > TOLD_WHEN_DELIVERED:
                del self._told_later[next(iter(self._told_later))]

    def on_lines(self, lines: list[events.ChatLine]) -> None:
        """Lines heard together (one read of a link: reading.py), or our own said together
        (a run of one read of stdin: saying.py), written in one write (each line as
        ``on_event`` writes it), not one write a line."""
        texts: list[str] = []
        for event in lines:
            if event.own:
                self._tell_later(event)
            texts.append(format_line(event))
        self._write_lines(texts)

    def _write_lines(self, texts: list[str]) -> None:
        if not texts:
            return
        texts.append("")
        data = "\n".join(texts).encode("utf-8", "replace")
        if self._held is not None:
            self._held.append(data)
        elif self.transport is not None:
            self.transport.write(data)

    def _caught_up(self, run: Run) -> None:
        """A big catch-up ended: how many lines, from whom, then the conversation's last
        lines from the history (in the order they were said)."""
        lines = self.node.history(run.room, CATCH_UP_TAIL)
        self.show_info([f"{summary(run, conversation_label(run.room, self.node))}; the last "
                        f"{len(lines)}:"])
        self.show_history_lines([history_line(line) for line in lines])
        self.show_info(["end of history"])

    def _delivered(self, event: events.Delivered) -> str | None:
        """The line face has no marks: a line that was told kept (or said to nobody) is told
        delivered, once its peers acknowledged it."""
        said = self._told_later.pop(event.message_id, None)
        if said is None:
            return None
        text = said.text if len(said.text) <= DELIVERED_TEXT else said.text[:DELIVERED_TEXT] + "…"
        where = f" to {said.private}" if said.private else (
            "" if said.room == DEFAULT_ROOM else f" in #{said.room}")
        return f"{clock_text(event.when)} - delivered{where}: {text}"

    def _write(self, line: str) -> None:
        if self._held is not None:  # a run being said: written at its end, at once
            self._held.append(line.encode("utf-8", "replace") + b"\n")
        elif self.transport is not None:
            self.transport.write(line.encode("utf-8", "replace") + b"\n")

    def dataReceived(self, data: bytes) -> None:
        if self._run is not None:  # within a read already
            super().dataReceived(data)
            return
        self._run = []
        try:
            super().dataReceived(data)
        finally:
            self._say_run()
            self._run = None

    def lineReceived(self, line: bytes) -> None:
        self._taken += 1
        if self._call_soon is not None and self._taken >= LINES_PER_TURN and not self.paused:
            self.pauseProducing()  # the rest waits in the buffer (and stdin is not read)
            self._call_soon(self._next_turn)
        text = line.decode("utf-8", "replace").rstrip("\r")
        if self._run is not None:
            if is_plain(text):  # (most of a paste: parse_input's Say, without making one)
                self._run.append(text)
                return
            parsed = parse_input(text)
            if isinstance(parsed, Say):
                self._run.append(parsed.text)
                return
            self._say_run()  # the lines before this one go first
        try:
            self.handle_input(text)
        except Exception:
            log.failure("input {text!r} failed", text=text[:80])
            self.show_error("that failed; the log has the details")

    def _say_run(self) -> None:
        """Say the plain lines gathered so far, in the room we are in."""
        run = self._run
        if not run:
            return
        self._run = []
        self._held = []
        try:
            refused = self.node.say_lines(run, room=self.room)
        except Exception:
            log.failure("saying {n} lines failed", n=len(run))
            refused = [Refused(f"{len(run)} lines were not said; the log has the details")]
        finally:
            held, self._held = self._held, None
            if held and self.transport is not None:
                self.transport.write(b"".join(held))
        for answer in refused:
            self._answer(answer)

    def _next_turn(self) -> None:
        self._taken = 0
        if self.transport is not None and self.paused:
            self.resumeProducing()

    def lineLengthExceeded(self, line: bytes) -> None:
        self.show_error(f"input line over {self.MAX_LENGTH} bytes ignored")
        self.clearLineBuffer()

    def show_info(self, lines: list[str]) -> None:
        stamp = clock_text(self.node.now())
        for line in lines:
            self._write(f"{stamp} - {line}")

    def show_error(self, text: str) -> None:
        self._write(f"{clock_text(self.node.now())} ! {text}")

    def clear(self) -> None:
        self.show_info(["/clear has nothing to clear in the line face"])

    def quit(self) -> None:
        if not self._quitting:
            self._quitting = True
            self._on_quit()

    def connectionLost(self, reason: Failure | None = None) -> None:
        # End of stdin: leave cleanly, as /quit does.
        self.catching_up.unwatch()
        self.quit()


class LineFaceService(Service):
    """Attaches a LineFace to the process's stdin and stdout."""

    def __init__(self, node: IChat, reactor: Any, on_quit: Callable[[], object]) -> None:
        """``on_quit``: what /quit and the end of stdin do (the service stops the reactor)."""
        self.node = node
        self.reactor = reactor
        self._on_quit = on_quit
        self.face: LineFace | None = None

    def startService(self) -> None:
        super().startService()
        self.face = LineFace(self.node, self._on_quit, self.reactor,
                             call_soon=lambda f: self.reactor.callLater(0, f))
        stdio.StandardIO(self.face, reactor=self.reactor)

    def stopService(self) -> None:
        super().stopService()
        if self.face is not None:
            self.face.catching_up.unwatch()
