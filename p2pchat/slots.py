"""Who gets the scarce places (the peer table, the link slots, signature checks) when someone
floods us with made-up peers.

Anyone on the LAN can make keys by the thousand (sybils) and send beacons by the ten thousand,
so the places go by *standing*: a peer we know (its key was pinned before this run, or it held
a link for ``PROVEN_AFTER`` seconds in this run, or is linked now) before a signed stranger,
a signed stranger before an unsigned one.  Keys pinned on first use during this run don't
count as known until their link has lasted: a sybil's first link pins its key too.

- Peer table: a newcomer of better standing takes the place of the worst entry (peers.py).
- Link slots: of ``MAX_LINKS`` (node.py), ``RESERVED_KNOWN`` are kept for known peers;
  strangers hold at most the rest, and a known peer arriving when all are taken replaces the
  newest stranger.
- Signature checks (60-120 us each): at most ``VERIFY_RATE`` per second per source host
  (after a burst of ``VERIFY_BURST``) and ``VERIFY_TOTAL_RATE`` in all; the cheap checks
  (parse, age, id against key, replay) come first.  A linked peer's unchanged beacons are
  checked once per ``RECHECK_AFTER``, anyone else's once per ``UNPROVEN_RECHECK_AFTER``
  (presence.py says what an unchecked one can do).

Pure code: the time is passed in, as in peers.py.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

#: Link slots kept for known peers (of MAX_LINKS = 256: strangers hold at most 192, so a
#: room of 100 new peers still links).
RESERVED_KNOWN = 64
#: A link that lasted this long (seconds) makes its peer known for the rest of the run.
PROVEN_AFTER = 60.0
#: Keys pinned on first use in this run, and peers proven, remembered at most (each).
MAX_REMEMBERED = 10_000
#: Signature checks of beacons per second per source host, after a burst of VERIFY_BURST;
#: and in all (VERIFY_TOTAL_RATE x 120 us is at most a quarter of a core).
VERIFY_RATE = 500.0
VERIFY_BURST = 1000.0
VERIFY_TOTAL_RATE = 2000.0
#: A beacon from a peer linked by TLS (which proved its key) that says what the last checked
#: one said (the same nick, port, caps and source host; a newer stamp) is believed without a
#: signature check for this long after the last check (seconds): 1 check in 12 announces.
RECHECK_AFTER = 60.0
#: The same for a peer not linked and not proven by member lines (a room forming, a peer we
#: don't link to): one check in 3 announces.  A room of 100 starting together checked
#: nearly every beacon each peer heard until their member lines came (some 40,000 checks,
#: 115 us each: the largest share of its CPU after the imports), and a forger can do no
#: more with this than keep a dead peer's table entry (an address dialed, if at all, for
#: nothing) for UNPROVEN_RECHECK_AFTER past its last real beacon.
UNPROVEN_RECHECK_AFTER = 15.0
#: Source hosts whose budget is tracked; the longest unseen is forgotten past this.
MAX_SOURCES = 1024

#: The line type a listener of ours sends (to peers of ours only) before it closes a link it
#: refuses; ``content`` says why.  Base peers only see the connection close.
REFUSED = "refused"

#: Standings, worst first.
UNSIGNED, SIGNED, PINNED, PROVEN = range(4)


class _Remembered:
    """A bounded set, oldest forgotten first."""

    def __init__(self, limit: int = MAX_REMEMBERED) -> None:
        self._items: OrderedDict[str, None] = OrderedDict()
        self.limit = limit

    def add(self, item: str) -> None:
        self._items[item] = None
        self._items.move_to_end(item)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)

    def discard(self, item: str) -> None:
        self._items.pop(item, None)

    def __contains__(self, item: object) -> bool:
        return item in self._items


class Standing:
    """How well we know a peer: UNSIGNED < SIGNED < PINNED < PROVEN.

    ``pinned(nick)`` gives the fingerprint pinned for a nick (``Pins.get``); ``linked(id)``
    whether a link to that peer is up now."""

    def __init__(self, pinned: Callable[[str], str | None],
                 linked: Callable[[str], bool]) -> None:
        self._pinned = pinned
        self._linked = linked
        self._new_pins = _Remembered()
        self._proven = _Remembered()
        #: peers whose link now up took a slot as known (the rest are strangers)
        self.known_links: set[str] = set()

    def of(self, peer_id: str, nick: str, fp: str) -> int:
        if peer_id in self._proven or self._linked(peer_id):
            return PROVEN
        if not fp:
            return UNSIGNED
        if self._pinned(nick) == fp and fp not in self._new_pins:
            return PINNED
        return SIGNED

    def known(self, peer_id: str, nick: str, fp: str) -> bool:
        """Whether a link may take a reserved slot (being linked now does not count here)."""
        if peer_id in self._proven:
            return True
        return bool(fp) and self._pinned(nick) == fp and fp not in self._new_pins

    def pinned_now(self, fp: str) -> None:
        """A key was pinned on first use in this run: not known until its link has lasted."""
        self._new_pins.add(fp)

    def link_lasted(self, peer_id: str, fp: str, lived: float) -> None:
        if lived >= PROVEN_AFTER:
            self._proven.add(peer_id)
            if fp:
                self._new_pins.discard(fp)


def slot_refusal(known: bool, linked: int, strangers: int, limit: int,
                 reserved: int | None = None) -> str | None:
    """Why a new link can't have a slot, or None.  ``linked``: links up; ``strangers``: how
    many of them are not known.  A known peer finding every slot taken is not refused here:
    the caller makes room by closing the newest stranger."""
    reserved = RESERVED_KNOWN if reserved is None else reserved
    if known:
        if linked >= limit and strangers == 0:
            return f"all {limit} link slots are taken by known peers"
        return None
    if strangers >= limit - reserved:
        return (f"{strangers} links to unknown peers already ({reserved} of {limit} slots are "
                "kept for known peers)")
    if linked >= limit:
        return f"all {limit} link slots are taken"
    return None


class _Bucket:
    __slots__ = ("tokens", "at")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens, self.at = tokens, at

    def take(self, now: float, rate: float, burst: float) -> bool:
        self.tokens = min(burst, self.tokens + (now - self.at) * rate)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class VerifyBudget:
    """Token buckets over signature checks: one per source host, and one for all of them."""

    def __init__(self, rate: float = VERIFY_RATE, burst: float = VERIFY_BURST,
                 total_rate: float = VERIFY_TOTAL_RATE, max_sources: int = MAX_SOURCES) -> None:
        self.rate, self.burst, self.total_rate = rate, burst, total_rate
        self.max_sources = max_sources
        self._hosts: OrderedDict[str, _Bucket] = OrderedDict()
        self._total: _Bucket | None = None

    def allow(self, host: str, now: float) -> bool:
        """True if a signature from ``host`` may be checked now (and counts it)."""
        bucket = self._hosts.get(host)
        if bucket is None:
            bucket = self._hosts[host] = _Bucket(self.burst, now)
            while len(self._hosts) > self.max_sources:
                self._hosts.popitem(last=False)
        else:
            self._hosts.move_to_end(host)
        if self._total is None:
            self._total = _Bucket(2 * self.total_rate, now)
        # Refill both first; take from the total only if the host has budget left.
        if not bucket.take(now, self.rate, self.burst):
            return False
        if not self._total.take(now, self.total_rate, 2 * self.total_rate):
            bucket.tokens += 1.0
            return False
        return True
