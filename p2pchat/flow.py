"""Flow control shared by every kind of connection (peer links, IRC clients, files): a token
bucket for what a peer may send us, back-pressure for what we write to a peer that doesn't
read, and closing a set of connections within a deadline.

One place for each, so a limit means the same thing wherever it is used; each user keeps its
own numbers (``mesh.FLOOD_RATE``, ``irc.FLOOD_RATE``, ...).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from zope.interface import implementer


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; starts full.

    ``take`` is for a hard limit (no token: refuse); ``spend`` may go into debt, and ``delay``
    says how long until the debt is paid (for a limit that slows a sender down)."""

    __slots__ = ("rate", "burst", "tokens", "_at")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self._at = now

    def refill(self, now: float) -> None:
        if now > self._at:
            self.tokens = min(self.burst, self.tokens + (now - self._at) * self.rate)
        self._at = now

    def take(self, now: float, n: float = 1.0) -> bool:
        """Take ``n`` tokens if there are that many; False (and nothing taken) if not."""
        self.refill(now)
        if self.tokens < n:
            return False
        self.tokens -= n
        return True

    def spend(self, now: float, n: float = 1.0) -> float:
        """Take ``n`` tokens, into debt if need be; returns what is left (< 0: in debt)."""
        self.refill(now)
        self.tokens -= n
        return self.tokens

    def delay(self) -> float:
        """Seconds until the bucket is out of debt (0 when it is not in debt)."""
        return -self.tokens / self.rate if self.tokens < 0 else 0.0


@implementer(IPushProducer)
class Backpressure:
    """Registered with a transport, which pauses it while too much waits to be written to a
    peer that does not read, and resumes it when that is gone.

    ``stall_after`` seconds paused: ``on_stall`` (drop the peer).  ``max_backlog``: bytes a
    writer may still write while paused (``written`` says whether it is over)."""

    def __init__(self, clock: IReactorTime, on_resume: Callable[[], Any] | None = None,
                 stall_after: float | None = None, on_stall: Callable[[], Any] | None = None,
                 max_backlog: int | None = None,
                 stretch: Callable[[], float] | None = None) -> None:
        """``stretch``: asked at each pause, how many times ``stall_after`` a saturated
        machine gives its peer (busy.load_factor)."""
        self.clock = clock
        self.paused = False
        self.backlog = 0
        self._on_resume = on_resume
        self._stall_after = stall_after
        self._on_stall = on_stall
        self._max_backlog = max_backlog
        self._stretch = stretch
        self._stall: IDelayedCall | None = None

    def pauseProducing(self) -> None:
        if self.paused:
            return
        self.paused = True
        if self._stall_after is not None and self._on_stall is not None:
            after = self._stall_after * (self._stretch() if self._stretch is not None else 1.0)
            self._stall = self.clock.callLater(after, self._stalled)

    def resumeProducing(self) -> None:
        self.paused = False
        self.backlog = 0
        self.cancel()
        if self._on_resume is not None:
            self._on_resume()

    def stopProducing(self) -> None:
        self.cancel()

    def written(self, size: int) -> bool:
        """Count ``size`` bytes written; False once more than ``max_backlog`` were written
        while paused (the writer should drop the peer)."""
        if not self.paused:
            return True
        self.backlog += size
        return self._max_backlog is None or self.backlog <= self._max_backlog

    def cancel(self) -> None:
        if self._stall is not None and self._stall.active():
            self._stall.cancel()
        self._stall = None

    def _stalled(self) -> None:
        self._stall = None
        if self._on_stall is not None:
            self._on_stall()


def close_within(clock: IReactorTime, deadline: float,
                 closed: Iterable[defer.Deferred[Any]],
                 cut: Callable[[], Any]) -> defer.Deferred[None]:
    """Wait for every ``closed`` Deferred (the connections were asked to close), but not more
    than ``deadline`` seconds: then ``cut`` (abort what is left).  Fires with None either way;
    the cut is cancelled if everything closed in time."""
    timer = clock.callLater(deadline, cut)

    def done(_: object) -> None:
        if timer.active():
            timer.cancel()

    waiting = defer.DeferredList(list(closed), consumeErrors=True)
    return waiting.addBoth(done)
