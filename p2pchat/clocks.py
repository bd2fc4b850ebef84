"""The time as the node's pieces see it: what they call on a reactor (or a test's
``task.Clock``).  Twisted's ``IReactorTime`` and ``IDelayedCall`` are zope interfaces, which
mypy can't check calls against; these Protocols say the same, so it can."""

from __future__ import annotations

from typing import Any, Callable, Protocol


class Delayed(Protocol):
    """A call scheduled with ``callLater``."""

    def active(self) -> bool: ...

    def cancel(self) -> None: ...


class Clock(Protocol):
    """The reactor's time: now, and calling something later."""

    def seconds(self) -> float: ...

    def callLater(self, delay: float, callable: Callable[..., Any], *args: Any,
                  **kw: Any) -> Delayed: ...
