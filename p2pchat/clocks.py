"""The time as the node's pieces see it: what they call on a reactor (or a test's
``task.Clock``).  Twisted's ``IReactorTime`` and ``IDelayedCall`` are zope interfaces, which
mypy can't check calls against; these Protocols say the same, so it can."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol

from p2pchat import ratelog

if TYPE_CHECKING:
    from twisted.logger import Logger, LogLevel


class Delayed(Protocol):
    """A call scheduled with ``callLater``."""

    def active(self) -> bool: ...

    def cancel(self) -> None: ...


class Clock(Protocol):
    """The reactor's time: now, and calling something later."""

    def seconds(self) -> float: ...

    def callLater(self, delay: float, callable: Callable[..., Any], *args: Any,
                  **kw: Any) -> Delayed: ...


def log_limited(clock: Clock, logger: Logger, kind: str, level: LogLevel, fmt: str, /,
                **kw: Any) -> None:
    """A log line that network input can repeat at will (one per packet or received line):
    rate-limited by the limiter of ``clock`` (ratelog.py), which the mesh and discovery of
    the same node share."""
    ratelog.limiter(clock).emit(logger, kind, level, fmt, **kw)  # type: ignore[arg-type]


def flush_logs(clock: Clock) -> None:
    """Write the rate-limited logs' summaries that are due (the sweep calls it each second)."""
    ratelog.limiter(clock).flush()  # type: ignore[arg-type]
