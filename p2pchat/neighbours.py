"""Which peers we keep a link to (``--links N``): a small room is a full mesh; in a larger
one each peer keeps a bounded set of neighbours and the rest of the room is reached by gossip
relay (gossip.py, forwarding.py).

The choice (``ring_wanted``) is pure and deterministic: the room's peers that relay (signed,
``gossip/1``), sorted by peer id, form a ring, and each keeps its two ring neighbours (so the
graph is connected whatever the rest) and a few random long links: the pairs each of which is
among the other's ``N - 2`` lowest pair scores (a hash of the two ids: both ends work it out
alike), as in a mutual nearest-neighbour graph.  So a peer has at most N links (6.6 on average
with 8 in a room of 100), the diameter stays small (4 hops there, 6 in a room of 256), both
ends of a link agree that it is kept (the rule is symmetric), and a peer joining or leaving
changes about N/2 links in the whole room, not the ring distances of everyone: nothing flaps.
(A first version took Chord-like ring distances 1, 3, 7, 19: in a room of 100 started over a
minute, each newcomer moved some 60 links, 1,665 links were pruned, and the room never
settled.)

- Base peers (the Go reference) don't relay: they are always linked directly, outside the
  ring; so are peers we don't hear beacons of (static peers, contacts: not ours to choose).
- Rooms: a non-member never carries a room's lines, so each room we are in gets a ring of its
  own among its members (whose rooms we know from their member and rooms lines): we keep the
  union of our neighbours in every ring, so each room's members stay connected among
  themselves (a small room, up to FULL_MESH_UP_TO members, is a full mesh).
- While views differ (a room forming), a link the other end wants is accepted up to
  ``hard_bound`` (2N) links; one wanted by neither end is closed ("pruned") once it has been
  unwanted for PRUNE_AFTER seconds, and only if that peer is reached through our other
  neighbours, as their member lines say (it stays reached, and is listed as relayed at once:
  no leave, no second join).
"""

from __future__ import annotations

from hashlib import blake2b
from typing import TYPE_CHECKING, Iterable

from twisted.logger import Logger, LogLevel

from p2pchat.clocks import log_limited
from p2pchat.gossip import CAP_GOSSIP
from p2pchat.peers import GONE_AFTER, should_dial
from p2pchat.wire import DEFAULT_ROOM

if TYPE_CHECKING:
    from p2pchat.node import Node
    from p2pchat.session import PeerSession

log = Logger()

#: The links a peer keeps in a room larger than FULL_MESH_UP_TO (``--links``; 0: no cap,
#: a full mesh whatever the size).  10 by default: a room of 100 then makes about 400 links
#: (each a TLS handshake at both ends and a catch-up) instead of 4,950, which on 2 cores
#: was about 160 s of CPU and a minute past the last peer up; each peer keeps 2 ring links
#: and up to 8 mutual long ones (about 8 chosen; links no end wants are kept up to
#: ``soft_bound``, 15: 8-15 measured, median 14; a line crosses the room of 100 in 3-4
#: hops, each a signature check and a reactor turn at a peer), and idle it hears its few
#: links' keep-alives, not 99 (README, "Links in a large room").  A smaller cap means more
#: hops (4 needs 5-6 in a room of 100); a larger one more handshakes and memory per peer.
DEFAULT_LINKS = 10
#: The fewest ``--links`` allowed (a ring and one finger each way).
MIN_LINKS = 4
#: A room of at most this many peers (us included) is a full mesh whatever ``--links`` says.
FULL_MESH_UP_TO = 12
#: The choice is worked out again at most this often (seconds): each beacon asks it.
WORKED_FOR = 1.0
#: A peer starting only listens this long (seconds) before it dials (listen_first) any but
#: its two ring neighbours, which it dials at once (they answered its first beacon).
LISTEN_FIRST = 1.5
#: ... once it hears more than this many peers (the first ones are dialed at once).
LISTEN_PAST = 3
#: ... and past a full mesh until its first link is up, or this long from its start at most
#: (seconds: discovery's ANNOUNCE_INTERVAL and then some, by when every beacon came).
LISTEN_MOST = 6.0
#: For this long from its start (seconds: two of discovery's ANNOUNCE_INTERVAL, by when
#: every peer's beacon came) a peer chooses from the peers it heard beacons of and those its
#: links' member lines tell of (``Neighbours._heard_of``).
HEARD_OF_FOR = 10.0
#: The room we know grew (a peer new to us, by its beacon or a member line) less than this
#: ago (seconds): our view of it still moves, so only our ring neighbours are dialed until
#: it has stood still this long (``settled``), and nothing is pruned until it has stood
#: still for PRUNE_AFTER (a room coming up over a minute on a busy machine pauses a few
#: seconds now and then: links pruned in such a pause were wanted again, or others were,
#: 126 pruned in one run).  A room of 100
#: started together comes up over 15-40 s on 2 cores: each peer's long links chosen from
#: the part of the room up so far were mostly wrong by the end (1,066 links made for the
#: 418 wanted, 505 of them pruned, each a handshake at both ends, a catch-up and member
#: lines of changed links checked by all 99), and the room took 32 s past its last peer.
SETTLE_AFTER = 2.0
#: A link wanted by neither end is closed after it has been unwanted this long (seconds):
#: long enough for the views of a forming room to settle.
PRUNE_AFTER = 15.0
#: A link to be pruned is left out of our member line this long (seconds) before it is
#: closed, so the room relays between its two ends before it goes.
DRAIN_FOR = 4.0
#: A peer whose end closed our link as not a neighbour is not dialed again for this long
#: (seconds), unless it links to us: so views that differ a while don't flap a link.
PRUNED_HOLD = 60.0
#: The reason a pruned link is closed with (its peer, told so, lists us as relayed at once).
PRUNED = "not a neighbour any more"


def pair_score(a: str, b: str) -> int:
    """A number both ends of a pair work out alike, and no one can aim (a hash of both ids,
    in order): the random part of the choice."""
    x, y = (a, b) if a < b else (b, a)
    return int.from_bytes(blake2b(f"{x} {y}".encode("utf-8"), digest_size=8).digest(), "big")


class PairScores:
    """Pair scores worked out once, by rows: ``row(a, ids)`` is ``a``'s score with each of
    ``ids``.  ``ring_wanted`` ranks the room by them from our end and from the end of each of
    our ``cap - 2`` lowest (some 900 scores in a room of 100, a blake2b each), and it is
    asked again for each peer new to us: a newcomer to a room of 100 worked out 44,000 of
    them, most of its CPU after it was up, and every peer of a room forming did as much.  A
    score never changes, so a row only grows by the peers new to it.

    Bounded: the rows of the last choice only (``keep``: us and our lowest), each at most
    twice the room it was asked about (a room that shrank gets its rows made again)."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, int]] = {}

    def row(self, a: str, ids: list[str]) -> dict[str, int]:
        row = self._rows.get(a)
        if row is None or len(row) > 2 * len(ids) + 16:
            row = self._rows[a] = {}
        for x in ids:
            if x not in row:
                row[x] = pair_score(a, x)
        return row

    def keep(self, rows: set[str]) -> None:
        """Only these rows are kept (the others' peers are no longer among our lowest)."""
        for a in [a for a in self._rows if a not in rows]:
            del self._rows[a]

    def __len__(self) -> int:
        return sum(len(row) for row in self._rows.values())


def _among_lowest(me: str, b: str, ids: list[str], k: int, row: dict[str, int]) -> bool:
    """Whether ``me`` is among ``b``'s ``k`` lowest pair scores (``row``: ``b``'s scores):
    fewer than ``k`` peers come before it (a lower score, or the same and a lower id: the
    order a stable sort of the ids by score gives), counted without a sort."""
    mine = row[me]
    ahead = 0
    for x in ids:
        if x == b or x == me:
            continue
        s = row[x]
        if s < mine or (s == mine and x < me):
            ahead += 1
            if ahead >= k:
                return False
    return True


def ring_wanted(me: str, members: Iterable[str], cap: int,
                scores: PairScores | None = None) -> set[str]:
    """The members (``me`` among them or not) that ``me`` keeps a link to: all of them in a
    room of at most ``max(FULL_MESH_UP_TO, cap + 1)`` or with ``cap`` 0; else its two ring
    neighbours (by peer id: the graph is connected whatever the rest) and the peers ``b``
    among its ``cap - 2`` lowest pair scores that have ``me`` among theirs (random long
    links, so the diameter stays small: 4 hops in a room of 100 with 8 links).

    ``b in ring_wanted(a, M)`` iff ``a in ring_wanted(b, M)``: both ends agree.  At most
    ``cap`` each.  A peer joining changes a few links in the whole room (the ring pair it
    steps between, and the few peers that have it among their lowest scores), not the ring
    distances of everyone.  ``scores``: where the pair scores are kept between calls (the
    choice is the same with or without)."""
    ids = sorted(set(members) | {me})
    n = len(ids)
    if cap <= 0 or n <= max(FULL_MESH_UP_TO, cap + 1):
        return set(ids) - {me}
    if scores is None:
        scores = PairScores()
    out = ring_of(me, ids)
    k = cap - 2
    mine = scores.row(me, ids)
    low = sorted((x for x in ids if x != me), key=mine.__getitem__)[:k]
    for b in low:
        if _among_lowest(me, b, ids, k, scores.row(b, ids)):
            out.add(b)
    scores.keep({me, *low})
    out.discard(me)
    return out


def ring_of(me: str, members: Iterable[str]) -> set[str]:
    """``me``'s two neighbours in the ring of ``members`` by peer id (none alone)."""
    ids = sorted(set(members) | {me})
    i = ids.index(me)
    return {ids[(i + 1) % len(ids)], ids[(i - 1) % len(ids)]} - {me}


class Neighbours:
    """The link choice of one node: whom to dial, whose link to accept, which to prune."""

    def __init__(self, node: Node, cap: int = DEFAULT_LINKS) -> None:
        self.node = node
        self.cap = cap
        self._wanted: set[str] = set()
        #: ring_wanted's pair scores, kept between its calls: per room (each has its ring)
        self._scores: dict[str, PairScores] = {}
        self._key: tuple[object, ...] | None = None
        self._members = 0  # the ring's peers (us not counted)
        self._listen_until = 0.0  # listen_first: no dial before this
        self._started = float("-inf")  # when we started (listen_first): _heard_of
        self._ring: set[str] = set()  # our two ring neighbours in the room we know
        self._worked_at = float("-inf")  # when ``wanted`` was last worked out
        self._rooms: list[str] = []  # our rooms then
        self._table = 0  # and the peer table's size
        self._ids: frozenset[str] = frozenset()  # the ring's peers it was worked out for
        #: linked peers we don't want, since when
        self._unwanted_since: dict[str, float] = {}
        #: peers that pruned our link, when (PRUNED_HOLD)
        self._pruned_by: dict[str, float] = {}
        #: peers whose link we pruned (their loss is not a leave)
        self._pruning: set[str] = set()
        #: peers that listed us again after dropping us, when (``dropped_by``'s hold)
        self._relisted: dict[str, float] = {}
        #: links being pruned: left out of our member line since when (DRAIN_FOR)
        self.draining: dict[str, float] = {}
        #: of those, the ones whose other end left us out of its member line first
        self._dropped: set[str] = set()
        #: when the room we know last grew (``settled``), and whether a dial waits for it
        self._grew_at = float("-inf")
        self._held = False

    @property
    def soft_bound(self) -> int:
        """Relaying links past which those neither end wants are pruned (1.5 N): within it
        they are kept, a link kept costing less than one made again."""
        return self.cap + self.cap // 2

    @property
    def hard_bound(self) -> int:
        """Relaying links past which a link neither end wants is refused (D_hi)."""
        return 2 * self.cap

    def _ring_member(self, peer_id: str) -> bool:
        info = self.node.peers.get(peer_id)
        return info is not None and bool(info.fp) and CAP_GOSSIP in info.caps

    def wanted(self, fresh: bool = False) -> set[str]:
        """The relaying peers we keep a link to now (worked out again only when the peer
        table's ids or the rooms changed)."""
        node = self.node
        now = node.clock.seconds()
        if not fresh and self._key is not None and now - self._worked_at < WORKED_FOR and (
                self._rooms == node.rooms.joined and self._table == len(node.peers)):
            return self._wanted  # (a peer new to the table is chosen at once)
        self._worked_at, self._rooms, self._table = now, list(node.rooms.joined), len(node.peers)
        ids = tuple(sorted({info.peer_id for info in node.peers
                            if self._ring_member(info.peer_id)} | self._heard_of(now)))
        rooms = tuple(node.rooms.joined)
        key = (ids, rooms, self.cap,
               tuple(node.rooms.rooms_of_peer(p) for p in ids) if len(rooms) > 1 else ())
        if key != self._key:
            if not frozenset(ids) <= self._ids:
                self._grew_at = now  # a peer new to us: the choice moves (settled)
            self._key, self._members, self._ids = key, len(ids), frozenset(ids)
            scores = self._scores
            for gone in [r for r in scores if r != DEFAULT_ROOM and r not in rooms]:
                del scores[gone]
            wanted = ring_wanted(node.peer_id, ids, self.cap,
                                 scores.setdefault(DEFAULT_ROOM, PairScores()))
            self._ring = ring_of(node.peer_id, ids)
            for room in rooms:
                if room != DEFAULT_ROOM:
                    members = [p for p in ids if node.rooms.peer_in(p, room)]
                    wanted |= ring_wanted(node.peer_id, members, self.cap,
                                          scores.setdefault(room, PairScores()))
            self._wanted = wanted
        return self._wanted

    def _heard_of(self, now: float) -> set[str]:
        """The room's peers we know from their member lines, shown as reached through others
        and heard of within the table's GONE_AFTER (not one that said goodbye): part of the
        room we choose from.  A newcomer hears beacons of a few peers at first (only its
        future neighbours answer its first one, ``answers``) and the member lines of the
        whole room from its first link: chosen from the few, its ring neighbours and lowest
        pair scores would be wrong, each a link dialed for nothing and pruned later.  Only
        for HEARD_OF_FOR from our start: past it the beacons tell the room (a peer we hear
        only of, on another LAN behind a bridge, is not a ring neighbour we could dial)."""
        if now - self._started >= HEARD_OF_FOR:
            return set()  # by then every peer's beacon came (one LAN): the table is the room
        reached = self.node.forwarder.reached.of
        me = self.node.peer_id
        return {a for a, r in reached.items()
                if r.shown and not r.bye and r.fp and a != me and now - r.heard_at < GONE_AFTER}

    def capped(self) -> bool:
        """Whether the room is larger than a full mesh (we don't link to every peer in it):
        then a peer reached through others is listed at once, with no wait for a link of
        our own (gossip.Reached.due)."""
        # the room as its beacons and its member lines tell it (a newcomer hears the member
        # lines of everyone from its first neighbour, before every beacon)
        self.wanted()
        known = max(self._members, len(self.node.forwarder.reached.of))
        return self.cap > 0 and known + 1 > max(FULL_MESH_UP_TO, self.cap + 1)

    def answers(self, peer_id: str) -> bool:
        """Whether a newcomer's first beacon is answered by ours at once (discovery's
        reply_soon): when it dials us (the smaller id dials; one we dial learns of us from our
        join) and, in a room past a full mesh, when it will be our neighbour.  Every peer of a
        room of 100 answered every newcomer there, so it would choose from the whole room:
        some 100 answers for each, each heard by all 100 and most of them a signature check,
        while the room started (a fifth of each peer's CPU, and the cores were saturated).
        The newcomer learns the rest of the room from the member lines its first link hands
        it (``wanted`` counts them) and from their beacons within ANNOUNCE_INTERVAL."""
        if not should_dial(peer_id, self.node.peer_id):
            return False
        return not self.capped() or self.wants(peer_id)

    def listen_first(self) -> None:
        """We start: until LISTEN_FIRST seconds from now, once we hear more than LISTEN_PAST
        peers, we only listen (the room answers our first beacon within REPLY_GAP), then dial
        the neighbours chosen from the whole room; the first few heard before that, and our
        two ring neighbours, are dialed at once (two or three peers link as fast as before;
        one dial at a time while we have no link bounds a wrong one).  Dialing the first dozen
        (a full mesh, until the room was known to be larger) made a room of 100 started
        together prune 1,152 links and take 93 s, against 261 and 27 s."""
        self._started = self.node.clock.seconds()
        if self.cap > 0:
            self._listen_until = self._started + LISTEN_FIRST

    def _listening(self, now: float) -> bool:
        """Whether we still only listen: for LISTEN_FIRST; then, past a full mesh, until a
        link of ours is up (its member lines tell us the room: ``_heard_of``) or LISTEN_MOST
        has passed (every peer's beacon came).  Only the peers whose neighbour we will be
        answer our first beacon (``answers``): chosen from those and the few others heard
        by then, a newcomer to a room of 100 on a busy machine dialed 15 peers, most of them
        for nothing (refused, or pruned later).  Meanwhile our two ring neighbours are
        dialed (``dial_now``): they answered us, so they are the right ones (the next id
        is the next in any part of the room that holds it), and a room starting together,
        where everyone listens, gets its first links at once."""
        if now < self._listen_until:
            return True
        if now >= self._started + LISTEN_MOST or not self.capped():
            return False
        return not any(link.gossip for link in self.node.links.values())

    def settled(self, now: float, still: float = SETTLE_AFTER) -> bool:
        """Whether the room we know has stood still (no peer new to us) for ``still``."""
        return now - self._grew_at >= still

    def dial_now(self, peer_id: str) -> bool:
        """Whether ``peer_id`` may be dialed now: wanted, and not while we listen first;
        past the first few peers heard, one that is not our ring neighbour only once our
        view of the room has settled (``tick`` dials it then), in a room past a full mesh
        or while we start (a starting peer that has heard a dozen may be in a room of
        100): the ring keeps the room connected meanwhile, and a long link chosen while
        the room still grows is one made, and pruned, for nothing."""
        if self.cap > 0 and self._ring_member(peer_id):
            self.wanted()
            now = self.node.clock.seconds()
            if self._one_at_a_time(now, peer_id):
                self._held = self._held or self.wants(peer_id)
                return False
            if self._members > LISTEN_PAST and peer_id not in self._ring:
                if self._listen_until and self._listening(now):
                    return False  # (the first few heard are dialed at once: a pair forms)
                if not self.settled(now) and (
                        self.capped() or now - self._started < HEARD_OF_FOR):
                    self._held = self._held or self.wants(peer_id)
                    return False  # (a small room's peers link a newcomer at once)
        return self.wants(peer_id)

    def _one_at_a_time(self, now: float, peer_id: str) -> bool:
        """Whether a dial of ``peer_id`` waits because we start, no link of ours is up yet,
        and another dial is under way: our first link hands us the room's member lines
        (``_heard_of``), and only then are our ring neighbours the right ones.  In a room
        of 100 started together each peer dialed the first peers it heard and then each
        ring neighbour of its growing view while its first handshake waited for a busy
        machine (15 s): 290 of some 800 links made were of such views, wrong by the end."""
        dialer = self.node.dialer
        if dialer is None or now - self._started >= HEARD_OF_FOR:
            return False
        if any(link.gossip for link in self.node.links.values()):
            return False
        return dialer.dialing() > 0 and not dialer.in_flight(peer_id)

    def wants(self, peer_id: str) -> bool:
        """Whether we keep (and dial) a link to ``peer_id``: always with no cap, for a base
        peer and for one we hear no beacons of; else if the choice says so."""
        if self.cap <= 0 or not self._ring_member(peer_id):
            return True
        held = self._pruned_by.get(peer_id)
        if held is not None:
            if self.node.clock.seconds() - held < PRUNED_HOLD:
                return False
            del self._pruned_by[peer_id]
        wanted = self.wanted()
        if peer_id not in self._ids:
            wanted = self.wanted(fresh=True)  # new to the table since: chosen at once
        return peer_id in wanted

    def refusal(self, peer_id: str) -> str | None:
        """Why an inbound link from ``peer_id`` is refused now, or None: one we don't want
        is taken while we have fewer than ``hard_bound`` relaying links (its end wants it)."""
        if self.wants(peer_id) or peer_id in self.node.links:
            return None
        relaying = sum(1 for link in self.node.links.values() if link.gossip)
        if relaying < self.hard_bound:
            return None
        return f"not a neighbour, and {relaying} links are up (--links {self.cap})"

    def pruned(self, link: PeerSession, why: str) -> bool:
        """Whether the lost ``link`` was pruned (by us, or its end said so): then its peer,
        still reached through others, is not shown leaving."""
        ours = link.peer_id in self._pruning
        self._pruning.discard(link.peer_id)
        theirs = PRUNED in why
        if theirs:
            self._pruned_by[link.peer_id] = self.node.clock.seconds()
        return ours or theirs

    def dropped_by(self, peer_id: str) -> None:
        """A linked peer's member line no longer lists us: it is about to prune our link.
        We drop it from ours too (so the others relay its lines to us, and ours to it, from
        now on), and close it ourselves after DRAIN_FOR if it has not.

        Not in a full mesh (we prune nothing, so we never close it: its end does), and not
        within DRAIN_FOR of its listing us again: two peers each mirroring the other's member
        line, with their lines crossing on the wire, would flip each other for ever, a
        member line each way per round trip (three peers saw it after a restart)."""
        node = self.node
        if self.cap <= 0 or peer_id not in node.links or peer_id in self.draining:
            return
        now = node.clock.seconds()
        if now - self._relisted.get(peer_id, float("-inf")) < DRAIN_FOR:
            return
        self.draining[peer_id] = now
        self._dropped.add(peer_id)
        node.forwarder.changed_soon()

    def listed_by(self, peer_id: str) -> None:
        """A linked peer's member line lists us (again): if it had dropped us, it keeps the
        link after all."""
        if peer_id in self._dropped:
            self._dropped.discard(peer_id)
            self._relisted[peer_id] = self.node.clock.seconds()
            if self.draining.pop(peer_id, None) is not None:
                self.node.forwarder.changed_soon()

    def tick(self) -> None:
        """Every second: a link neither end wants, unwanted for PRUNE_AFTER, whose peer is
        reached through our other neighbours, is first dropped from our member line (the
        others then relay between its two ends), then closed DRAIN_FOR later: no line is in
        flight only on it when it goes."""
        node = self.node
        if self.cap <= 0 or node.leaving:
            return
        now = node.clock.seconds()
        self.wanted()  # (a peer new to the table counts now)
        settled = self.settled(now, PRUNE_AFTER)
        if (self._listen_until and now >= self._listen_until) or (
                self._held and self.settled(now)):
            self._held = False
            if self._listen_until and not self._listening(now):
                self._listen_until = 0.0  # listened: dial the chosen neighbours
            for info in list(node.peers):  # (still listening: our ring neighbours, dial_now)
                if info.peer_id not in node.links:
                    node.presence.maybe_dial(info)
        since, draining = self._unwanted_since, self.draining
        for table in (since, draining):
            for pid in [p for p in table if p not in node.links]:
                del table[pid]
        self._dropped &= set(node.links)
        for pid in [p for p, at in self._relisted.items() if now - at >= DRAIN_FOR]:
            del self._relisted[pid]
        # Unwanted links are pruned only past soft_bound: in a room growing to 100 each peer's
        # choice changed some 10 times (a newcomer steps into the ring, or has a lower pair
        # score), and pruning each change closed 950 links, every one a handshake and a
        # catch-up done for nothing and member lines of changed links to the whole room.
        excess = sum(1 for p, x in node.links.items() if x.gossip and p not in draining)
        excess -= self.soft_bound
        for pid, link in list(node.links.items()):
            if pid in self._dropped:
                continue  # its end prunes it (and tells us), or lists us again
            if not link.gossip or self.wants(pid):
                since.pop(pid, None)
                if draining.pop(pid, None) is not None:
                    node.forwarder.changed_soon()  # kept after all: listed again
                continue
            first = since.setdefault(pid, now)
            if pid in draining:
                if now - draining[pid] >= DRAIN_FOR:
                    self._prune(pid, link)
                continue
            if now - first < PRUNE_AFTER or now - link.linked_at < PRUNE_AFTER or not settled:
                continue  # (while our view moves, a link unwanted now may be wanted soon)
            if excess <= 0:
                continue  # within the cap: kept (it costs less kept than made again)
            if node.forwarder.path_to(pid) is None:
                continue  # not reached otherwise (yet): kept
            draining[pid] = now
            excess -= 1
            node.forwarder.changed_soon()

    def _prune(self, pid: str, link: PeerSession) -> None:
        node = self.node
        via = node.forwarder.path_to(pid)
        if via is None:
            return  # no other path any more: kept (not listed) until there is one
        log_limited(node.clock, log, "pruned", LogLevel.info,
                    "pruned: the link with {peer} closed, not a neighbour any more (reached "
                    "through {via})", burst=50, peer=pid, via=via)
        del self.draining[pid]
        self._unwanted_since.pop(pid, None)
        self._pruning.add(pid)
        link.refuse(PRUNED)
        node.link_lost(link.wire, PRUNED)
