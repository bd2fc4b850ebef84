"""Lines caught up live, in a ``chathistory`` batch: after a reconnect, catch-up resends and
relayed lines come as events (``ChatLine.replayed``), not from the history on JOIN, so
playback.py never batches them.  For a client with ``batch``, consecutive replayed lines of
one conversation go in one batch: it opens at the first, and closes when a line that is not
replayed comes for that client, when a replayed line of another conversation comes (which
opens its own), or after CATCH_UP_QUIET seconds without another (a timer on the face's
clock).  A client that goes has its timer cancelled; nothing is left open.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from p2pchat.irc.caps import BATCH
from p2pchat.irc.client import IrcClientProtocol

#: Seconds without another replayed line of the conversation before its batch closes.
CATCH_UP_QUIET = 0.3


@dataclass
class _Open:
    """One client's open batch: the conversation, the id and the timer that closes it."""

    room: str
    ref: str
    timer: IDelayedCall


class CaughtUp:
    """The open catch-up batch of each client (at most one each)."""

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self.open: dict[IrcClientProtocol, _Open] = {}

    def batch_for(self, client: IrcClientProtocol, room: str, target: str,
                  replayed: bool) -> str:
        """The batch a chat line of ``room`` (shown to ``client`` as ``target``: a channel,
        or the other party's nick) goes in: "" for a line not replayed (closing the open
        batch first) and for a client without ``batch``."""
        current = self.open.get(client)
        if not replayed or not client.has(BATCH):
            self.close(client)
            return ""
        if current is not None and current.room == room:
            current.timer.reset(CATCH_UP_QUIET)
            return current.ref
        self.close(client)
        ref = client.open_batch("chathistory", target)
        self.open[client] = _Open(room, ref, self.clock.callLater(CATCH_UP_QUIET, self.close,
                                                                  client))
        return ref

    def close(self, client: IrcClientProtocol) -> None:
        """Close the client's open batch, if any (not written to a client that is going)."""
        current = self.open.pop(client, None)
        if current is None:
            return
        if current.timer.active():
            current.timer.cancel()
        if not client.closing:
            client.close_batch(current.ref)

    def forget(self, client: IrcClientProtocol) -> None:
        """The client is gone: its timer is cancelled, nothing written."""
        current = self.open.pop(client, None)
        if current is not None and current.timer.active():
            current.timer.cancel()
