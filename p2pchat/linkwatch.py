"""Watching links come and go: flapping links, links that die young, probes after a silence,
and links that went quiet.  Pure code: every call takes ``now`` and says what to do; the
node does it (shows a leave, tells the user, writes a probe, drops a link).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from p2pchat.peers import Liveness
    from p2pchat.session import PeerSession

#: A link to one of our peers (which heartbeat) silent this long is dropped as dead.  Base
#: peers send no heartbeats: theirs are watched by TCP keepalive and their beacons instead.
IDLE_TIMEOUT = 90.0
#: A link that lasts less than this (seconds) and is followed by a new one within this time
#: is not shown as a leave and a join: a flapping link stays quiet on screen.
FLAP_WINDOW = 2.0
#: After this many short-lived links in a row to a base peer, the user is told once.
FLAPS_TOLD = 3
#: When a peer's beacons come back after a silence while its link is up, the link may be dead
#: (a cut cable) or stuck in TCP's retransmission backoff: it is probed, and dropped (then
#: redialed and caught up) if no answer comes within this many seconds.
PROBE_TIMEOUT = 3.0
#: A link heard this long (seconds) after its peer's last beacon, when the next one was due
#: (every 5 s), worked during the silence: it is not probed when the beacons come back.
OVERDUE_AFTER = 5.0


def keep_newer(us: str, peer_id: str, new_dialer: str, old_dialer: str) -> bool:
    """Two links to one peer: whether the new one is kept (else it is closed).  Both sides
    must keep the same one.  Links dialed by the same side: the newer wins (the dialer saw
    the old one die).  Else the rule-abiding one (dialed by the smaller id) wins."""
    if new_dialer == old_dialer:
        return True
    return new_dialer == min(us, peer_id, key=lambda s: s.encode("utf-8"))


@dataclass(frozen=True)
class Lost:
    """What to do about a lost link: show it as gone now (``show_leave``), or wait a
    FLAP_WINDOW for it to come back; ``tell_flaps``: tell the user (once) that the peer closes
    every link right after it opens."""

    show_leave: bool
    tell_flaps: bool = False


class LinkWatch:
    """The flap window, the count of short links per peer, the probes in flight, and how
    alive each peer sounded at the last sweep."""

    def __init__(self) -> None:
        #: peers whose short-lived link dropped: shown as gone only if no new link comes soon
        self.flapping: dict[str, tuple[str, float]] = {}
        #: short-lived links in a row, per peer
        self.short_links: dict[str, int] = {}
        #: the token of the probe waiting for an answer, per peer
        self.probes: dict[str, str] = {}
        self._liveness: dict[str, Liveness] = {}

    def linked(self, peer_id: str) -> bool:
        """A link came up: True if it is a flapping link back (show no join)."""
        return self.flapping.pop(peer_id, None) is not None

    def lost(self, peer_id: str, nick: str, lived: float, now: float, base: bool) -> Lost:
        """A link was lost after ``lived`` seconds (not by a goodbye).  ``base``: a base
        peer's (one that lost track of us closes every link at once, until it restarts)."""
        if lived >= FLAP_WINDOW:
            self.short_links.pop(peer_id, None)
            return Lost(show_leave=True)
        self.flapping[peer_id] = (nick, now)
        count = self.short_links[peer_id] = self.short_links.get(peer_id, 0) + 1
        return Lost(show_leave=False, tell_flaps=count == FLAPS_TOLD and base)

    def settled(self, now: float, linked: Collection[str]) -> list[tuple[str, str]]:
        """The flapping peers that did not come back within FLAP_WINDOW: (peer id, nick) to
        show as gone now."""
        out = []
        for pid, (nick, since) in list(self.flapping.items()):
            if pid not in linked and now - since >= FLAP_WINDOW:
                del self.flapping[pid]
                out.append((pid, nick))
        return out

    def forget(self, peer_id: str) -> None:
        """The peer said goodbye or was forgotten."""
        self.short_links.pop(peer_id, None)

    @staticmethod
    def idle(sessions: Iterable[PeerSession], now: float,
             factor: float = 1.0) -> list[PeerSession]:
        """The links of our peers silent past IDLE_TIMEOUT (they heartbeat: these are dead);
        ``factor``: how much longer a saturated machine gives them (busy.py)."""
        after = IDLE_TIMEOUT * factor
        return [s for s in sessions if s.ours and now - s.last_heard > after]

    def liveness_changed(self, liveness: dict[str, Liveness]) -> bool:
        """Whether how alive the peers sound changed since the last sweep (a face redraws)."""
        changed = liveness != self._liveness
        self._liveness = liveness
        return changed

    def probe(self, peer_id: str, token: str) -> bool:
        """Start a probe of ``peer_id``'s link with ``token``: False if one is in flight."""
        if peer_id in self.probes:
            return False
        self.probes[peer_id] = token
        return True

    def answered(self, peer_id: str, token: str) -> bool:
        """An answer came: True (and the probe is over) if it is the one in flight."""
        if self.probes.get(peer_id) != token:
            return False
        del self.probes[peer_id]
        return True

    def timed_out(self, peer_id: str, token: str) -> bool:
        """PROBE_TIMEOUT passed: True (drop the link) if that probe is still unanswered."""
        return self.answered(peer_id, token)
