"""Who is out there: the peer table fed by beacons, its liveness rules, the dial rule, backoff.

Pure code: every call takes the time as a number, so tests drive it without a reactor.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field
from typing import Callable, Iterator

from p2pchat.wire import ANNOUNCE, PING, PONG, Beacon

#: A peer not heard for this long (seconds) is shown as stale.
STALE_AFTER = 10.0
#: A peer not heard for this long is forgotten (and, if it has no connection, shown gone).
GONE_AFTER = 30.0
#: The peer table holds at most this many peers; a flood of forged beacons can't grow it further.
MAX_PEERS = 256
#: When full, the worst entry found by a scan of the table is remembered for this long
#: (seconds): a flood of signed newcomers costs one scan per second, not one per beacon.
WORST_KEPT = 1.0


class Liveness(enum.Enum):
    ALIVE = "alive"
    STALE = "stale"
    GONE = "gone"


class Heard(enum.Enum):
    """What a beacon did to the table."""

    NEW = "new"  # a peer we did not know
    MOVED = "moved"  # a known peer at a new address or port
    REFRESHED = "refreshed"  # a known peer, nothing new
    IGNORED = "ignored"  # a pong from a stranger
    FULL = "full"  # a new peer, but the table is full (of peers as well known)


@dataclass
class PeerInfo:
    """What discovery knows of one peer."""

    peer_id: str
    username: str
    host: str
    port: int
    last_seen: float
    caps: tuple[str, ...] = field(default=())
    #: for signed beacons: the key fingerprint, and the newest signed timestamp accepted
    fp: str = ""
    last_stamp: float = 0.0
    #: when a beacon of it last had its signature checked (presence.py: a linked peer's
    #: unchanged beacons are believed unchecked for a while, slots.RECHECK_AFTER)
    checked_at: float = float("-inf")

    def liveness(self, now: float) -> Liveness:
        silent = now - self.last_seen
        if silent >= GONE_AFTER:
            return Liveness.GONE
        if silent >= STALE_AFTER:
            return Liveness.STALE
        return Liveness.ALIVE


def should_dial(my_id: str, their_id: str) -> bool:
    """The dial rule of the base protocol: the smaller peer id (in byte order) dials."""
    return my_id.encode("utf-8") < their_id.encode("utf-8")


#: How well a peer is known, from (peer id, nick, fingerprint): higher is better (slots.py).
Rank = Callable[[str, str, str], int]


class PeerTable:
    """Peers learnt from beacons, keyed by peer id, bounded by ``limit``.

    When full, a newcomer of better ``rank`` than the worst entry takes its place (the worst,
    and of those the longest unheard, goes: ``evicted``), so a flood of made-up peers can't
    keep a peer we know out.  Without ``rank`` every peer ranks the same."""

    def __init__(self, limit: int = MAX_PEERS, rank: Rank | None = None) -> None:
        self._peers: dict[str, PeerInfo] = {}
        self.limit = limit
        self.rank = rank
        #: the entries the last ``heard`` pushed out (for the caller to forget them)
        self.evicted: list[PeerInfo] = []
        self._worst: tuple[float, PeerInfo] | None = None  # when found, and the entry

    def heard(self, beacon: Beacon, host: str, now: float, checked: bool = True) -> Heard:
        """Record a beacon from ``host``.  ``announce`` and ``ping`` add or refresh a peer; a
        ``pong`` only refreshes one we know (as the reference does).  ``leave`` is ``left``.
        ``checked=False``: a signed beacon believed without its signature check (one that says
        what the last checked one said): it only says the peer is still there."""
        known = self._peers.get(beacon.peer_id)
        self.evicted = []
        if not checked and known is not None:
            known.last_seen = now  # not its stamp: an unchecked one can't hold back the next
            return Heard.REFRESHED
        if known is None:
            if beacon.type not in (ANNOUNCE, PING):
                return Heard.IGNORED
            if len(self._peers) >= self.limit and not self._make_room(beacon, now):
                return Heard.FULL
            self._peers[beacon.peer_id] = PeerInfo(
                beacon.peer_id, beacon.username, host, beacon.port, now, beacon.caps,
                beacon.fp, beacon.timestamp if beacon.fp else 0.0, now,
            )
            return Heard.NEW
        known.last_seen = now
        if beacon.username:
            known.username = beacon.username
        if beacon.type == PONG:
            return Heard.REFRESHED
        known.caps = beacon.caps
        if beacon.fp:
            known.fp, known.last_stamp, known.checked_at = beacon.fp, beacon.timestamp, now
        if (known.host, known.port) != (host, beacon.port):
            known.host, known.port = host, beacon.port
            return Heard.MOVED
        return Heard.REFRESHED

    def _make_room(self, beacon: Beacon, now: float) -> bool:
        """The table is full: push out the worst entry if the newcomer ranks above it.  An
        unsigned newcomer (rank 0) can't rank above anything, so a flood of them costs no
        scan of the table; the worst entry is remembered for WORST_KEPT seconds."""
        ranked = self.rank
        if ranked is None:
            return False
        mine = ranked(beacon.peer_id, beacon.username, beacon.fp)
        if mine <= 0:
            return False
        worst = self._find_worst(now, ranked)
        rank = ranked(worst.peer_id, worst.username, worst.fp)
        if rank >= mine:
            return False
        del self._peers[worst.peer_id]
        self._worst = None
        self.evicted = [worst]
        return True

    def _find_worst(self, now: float, rank: Rank) -> PeerInfo:
        kept = self._worst
        if (kept is not None and now - kept[0] < WORST_KEPT
                and self._peers.get(kept[1].peer_id) is kept[1]):
            return kept[1]
        worst = min(self._peers.values(),
                    key=lambda p: (rank(p.peer_id, p.username, p.fp), p.last_seen))
        self._worst = (now, worst)
        return worst

    def evict_address(self, keep_id: str, host: str, port: int, signed: bool = False,
                      keep: Callable[[PeerInfo], bool] | None = None) -> list[PeerInfo]:
        """Forget other peers announced at ``host:port``: one port has one listener, so a
        beacon from ``keep_id`` there means they are gone (a restarted base peer gets a new
        id and often the same port; redialing the old id would reach the new peer).  A peer
        that signs its beacons is evicted only by a signed beacon, and none for which
        ``keep`` says so (linked, or its key pinned: a rogue beacon at its address must not
        make us forget it)."""
        stale = [p for p in self._peers.values()
                 if p.peer_id != keep_id and (p.host, p.port) == (host, port)
                 and (signed or not p.fp) and not (keep is not None and keep(p))]
        for peer in stale:
            del self._peers[peer.peer_id]
        return stale

    def left(self, peer_id: str) -> PeerInfo | None:
        """Forget a peer that said it leaves; returns what was known of it."""
        return self._peers.pop(peer_id, None)

    def sweep(self, now: float, alive: Callable[[str], bool] = lambda _: False
              ) -> list[PeerInfo]:
        """Forget the peers silent for GONE_AFTER seconds (but those ``alive`` says are alive
        otherwise: by their link); returns them."""
        gone = [p for p in self._peers.values()
                if p.liveness(now) is Liveness.GONE and not alive(p.peer_id)]
        for peer in gone:
            del self._peers[peer.peer_id]
        return gone

    def get(self, peer_id: str) -> PeerInfo | None:
        return self._peers.get(peer_id)

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self._peers

    def __iter__(self) -> Iterator[PeerInfo]:
        return iter(list(self._peers.values()))

    def __len__(self) -> int:
        return len(self._peers)


class Backoff:
    """Exponential backoff with jitter for redialing a peer.

    The first retry comes quickly (the reference opens its listener only after its first
    announce, so a first dial is often refused); later ones double up to ``cap``.  Jitter of
    +/- ``jitter`` (a fraction) keeps many peers from redialing in lockstep.
    """

    def __init__(
        self,
        first: float = 0.25,
        cap: float = 30.0,
        factor: float = 2.0,
        jitter: float = 0.25,
        rng: random.Random | None = None,
    ) -> None:
        self.first, self.cap, self.factor, self.jitter = first, cap, factor, jitter
        self._rng = rng or random.Random()
        self.failures = 0

    def next_delay(self) -> float:
        """The wait before the next attempt, counting one more failure."""
        base = min(self.cap, self.first * self.factor ** min(self.failures, 32))
        self.failures += 1
        return base * (1 + self._rng.uniform(-self.jitter, self.jitter))

    def reset(self) -> None:
        self.failures = 0
