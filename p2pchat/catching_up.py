"""A big catch-up shown without drowning the screen, for the console and the line face.

Lines caught up after a reconnect (``ChatLine.replayed``: resent by their author or handed on
by another peer) come in runs, one per conversation.  The first CATCH_UP_SHOWN of a run are
shown as they come (a short catch-up looks as it always did); the rest are only counted.
When no line of the run came for CATCH_UP_QUIET seconds, the run ends and, if lines were held,
the face is told: "caught up 33,412 lines in #general from alice, bob, carol", and it fills
its scrollback from the history (which has every line by then, in the order they were said,
whichever peer they came from).  One timer, only while a run holds lines (a short catch-up
leaves none); nothing kept but counts and up to SUMMARY_NICKS nicks per conversation.  (The IRC face batches them instead: irc/caught_up.py.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from p2pchat import events
from p2pchat.interfaces import IChat

#: Lines of one run shown as they come; past this they are counted, and summed up (a catch-up
#: after a minute or two away is still shown line by line, as before, in every face).
CATCH_UP_SHOWN = 200
#: Seconds without another caught-up line of a conversation before its run ends.
CATCH_UP_QUIET = 0.5
#: Nicks a summary names (then "and N more").
SUMMARY_NICKS = 5
#: Lines of the history the console's pane is filled with after a summary, and the line face
#: writes after one.
CATCH_UP_SCROLLBACK = 500
CATCH_UP_TAIL = 20


@dataclass
class Run:
    """One conversation's caught-up lines so far."""

    room: str
    count: int = 0
    #: nicks in the order they first spoke (at most SUMMARY_NICKS), and how many more
    nicks: dict[str, None] = field(default_factory=dict)
    more_nicks: set[str] = field(default_factory=set)
    last: float = 0.0

    @property
    def held(self) -> int:
        """Lines of the run not shown as they came."""
        return max(0, self.count - CATCH_UP_SHOWN)

    def add(self, nick: str, now: float) -> None:
        self.count += 1
        self.last = now
        if nick not in self.nicks:
            if len(self.nicks) < SUMMARY_NICKS:
                self.nicks[nick] = None
            elif len(self.more_nicks) < 1000:
                self.more_nicks.add(nick)


def summary(run: Run, label: str) -> str:
    """``caught up 33,412 lines in #general from alice, bob and carol``."""
    nicks = list(run.nicks)
    if run.more_nicks:
        who = f"{', '.join(nicks)} and {len(run.more_nicks)} more"
    elif len(nicks) > 1:
        who = f"{', '.join(nicks[:-1])} and {nicks[-1]}"
    else:
        who = nicks[0] if nicks else "?"
    return f"caught up {run.count:,} line{'s' if run.count != 1 else ''} in {label} from {who}"


class CatchingUp:
    """Stands between the chat and a face (``watch``): passes on every event but the lines of
    a big catch-up past the first CATCH_UP_SHOWN, and calls ``on_summary(run)`` when a run
    that had lines held ends."""

    def __init__(self, clock: IReactorTime, on_summary: Callable[[Run], None]) -> None:
        self.clock = clock
        self.on_summary = on_summary
        self.runs: dict[str, Run] = {}
        self._timer: IDelayedCall | None = None
        self._watched: tuple[IChat, Callable[[events.Event], None]] | None = None
        #: the face's handler of a run of lines at once (``watch``), or None
        self._on_lines: Callable[[list[events.ChatLine]], None] | None = None

    def watch(self, chat: IChat, on_event: Callable[[events.Event], None],
              on_lines: Callable[[list[events.ChatLine]], None] | None = None) -> None:
        """Subscribe ``on_event`` to ``chat``'s events, through ``show``; ``on_lines``, if
        given, takes the shown lines of a run heard together at once (``chat_lines``)."""
        self._watched = (chat, on_event)
        self._on_lines = on_lines
        chat.subscribe(self)

    def unwatch(self) -> None:
        """The face goes: unsubscribed, its timer cancelled (nothing more is told)."""
        if self._watched is not None:
            self._watched[0].unsubscribe(self)
            self._watched = None
        self.stop()

    def __call__(self, event: events.Event) -> None:
        """An event of the chat (what ``watch`` subscribed): to the face, if ``show`` says."""
        if self._watched is not None and self.show(event):
            self._watched[1](event)

    def chat_lines(self, lines: Sequence[events.ChatLine]) -> None:
        """The lines of a run heard together (reading.emit_each), in order: those ``show``
        lets through go to the face at once (one write for the lot in the line face), where
        it takes them so, else one by one as ``__call__`` does."""
        if self._watched is None:
            return
        shown = [line for line in lines if not line.replayed or self.show(line)]
        if not shown:
            return
        if self._on_lines is not None:
            self._on_lines(shown)
        else:
            on_event = self._watched[1]
            for line in shown:
                on_event(line)

    def show(self, line: events.Event) -> bool:
        """Whether to show ``line`` now (False: it is one of a big catch-up, counted)."""
        if not isinstance(line, events.ChatLine) or not line.replayed:
            return True
        now = self.clock.seconds()
        run = self.runs.get(line.room)
        if run is None or (not run.held and now - run.last >= CATCH_UP_QUIET):
            run = self.runs[line.room] = Run(line.room)  # (a short run ended: forgotten)
        run.add(line.nick, now)
        if run.held and self._timer is None:  # a timer only once lines are held
            self._timer = self.clock.callLater(CATCH_UP_QUIET, self._quiet)
        return run.count <= CATCH_UP_SHOWN

    def _quiet(self) -> None:
        """End the runs quiet for CATCH_UP_QUIET; wait again for the others."""
        self._timer = None
        now = self.clock.seconds()
        ended = [run for run in self.runs.values() if now - run.last >= CATCH_UP_QUIET - 1e-6]
        for run in ended:
            del self.runs[run.room]
        holding = [run for run in self.runs.values() if run.held]
        if holding:
            soonest = min(run.last for run in holding) + CATCH_UP_QUIET
            self._timer = self.clock.callLater(max(0.0, soonest - now), self._quiet)
        for run in ended:
            if run.held:
                self.on_summary(run)

    def stop(self) -> None:
        """Its timer cancelled, the runs forgotten (nothing more is told)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self.runs.clear()
