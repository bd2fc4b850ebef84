"""Peers that are away: whom a private line can still be said to when no link to them is up.

A private line to a peer of ours that is not linked now (it quit, restarts, or its link
dropped) is not refused: it is kept in our sent log, like every line we say, and catch-up
writes it to that peer when it links again (``Node._synced``), so it is delivered then and its
mark clears on the peer's ack.  For that the node must know which peer a nick means while the
peer is gone: one it linked with in this run (remembered here, bounded), or one whose key is
pinned for that nick (its peer id comes from the key, so a line kept for it can only ever be
written to a link that proved that key).  Pure code: plain values.
"""

from __future__ import annotations

#: Most peers remembered as seen in this run (the oldest seen is forgotten first).  Peers whose
#: key is pinned are known anyway, from the pins.
RECENT_PEERS = 1024
#: Most private lines kept for one absent peer: past this, a private line to it is refused
#: (the first ones are still delivered when it is back).  Every kept line is in the sent log,
#: so it is also bounded by ``--catchup-lines`` and ``--catchup-age``.
HELD_LINES = 200


class RecentPeers:
    """Peers of ours (they take private lines and catch up) linked in this run, with the nick
    they were last shown as; newest last."""

    def __init__(self, limit: int = RECENT_PEERS) -> None:
        self.limit = limit
        self._nicks: dict[str, str] = {}

    def seen(self, peer_id: str, nick: str) -> None:
        """``peer_id`` is (or was just) linked, shown as ``nick``."""
        self._nicks.pop(peer_id, None)
        self._nicks[peer_id] = nick
        while len(self._nicks) > self.limit:
            del self._nicks[next(iter(self._nicks))]

    def nick(self, peer_id: str) -> str | None:
        return self._nicks.get(peer_id)

    def find(self, shown: str) -> tuple[str, str] | None:
        """(peer id, nick) of the peer ``shown`` names (a peer id, or a nick: the peer seen
        last under it), or None."""
        nick = self._nicks.get(shown)
        if nick is not None:
            return shown, nick
        for peer_id, nick in reversed(self._nicks.items()):
            if nick == shown:
                return peer_id, nick
        return None

    def __len__(self) -> int:
        return len(self._nicks)
