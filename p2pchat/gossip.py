"""Relaying through a partial mesh: what to forward to whom, and who is reached through whom
(issue 17).  Pure code: plain values in, plain values out.

The scheme is Scuttlebutt's (and Briar's): every author's signed lines form one append-only
log, numbered by the author's one sequence counter; peers replicate those logs for each
other.  Live, a line first seen is pushed at once ("eager push", as Scuttlebutt's epidemic
broadcast trees and Plumtree do) to each other linked peer that speaks ``gossip/1``, is in
the line's room and may lack it; a line already seen is dropped (the per-author SeenSet of
seen.py is the one dedup: no second set).  Catch-up is the existing ``sync`` per link: it says
how far we have every author, and the other side hands on what it holds beyond that
(relay.py's HandOn, which now also hands on lines of authors linked to it but not to the
asker).  GossipSub's IHAVE/IWANT is not needed: a link's neighbour list (below) already tells
who has a line from its author directly, so a full mesh forwards nothing at all.

Two different peers are named for every line, and never mixed up: its *author* (who wrote
and signed it: ``AuthorId``) and its *hander* (the linked peer that handed it to us:
``HanderId``).  A line is never forwarded to its hander nor to its author, nor to a peer that
is linked to its author (that peer's signed ``member`` line and the author's list the
link: ``linked_both``), nor to one
that already handed it to us; it is forwarded at most ``MAX_HOPS`` times on its way.

Membership travels the same way: a ``member`` line (relay.MEMBER), signed and sequenced by
its author, states its nick, its rooms and its links; it is sent at link-up, when any of
those change, and every ``ALIVE_INTERVAL`` seconds, and relayed like a chat line.  A peer
reached only through others is kept in ``Reached`` with the neighbour it came through; one
not heard of for ``GONE_AFTER`` seconds is gone.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, NewType

from p2pchat.rooms import rooms_of
from p2pchat.wire import (DEFAULT_ROOM, MAX_ID_CHARS, MAX_LINE_BYTES, Message, WireError,
                          nick_problem)

#: Announced by peers that forward lines live and send ``member`` lines.
CAP_GOSSIP = "gossip/1"
#: A line is forwarded at most this many times on its way (so it reaches 17 links from its
#: author: the end of a chain of 18 peers).
MAX_HOPS = 16
#: Our ``member`` line goes out at least this often (seconds), so a peer reached through
#: others knows we are still there.
ALIVE_INTERVAL = 10.0
#: When only our links changed, it goes out at most this often (a forming mesh changes them
#: every moment); a new nick or room goes out at once.
LINKS_GAP = 3.0
#: A peer reached only through others and not heard of for this long is shown gone (within
#: 30 s of the last line it could have sent: the window after which a silent peer is
#: forgotten by its beacons).
GONE_AFTER = 25.0
#: In a room past a full mesh (--links, neighbours.py) member lines go out this rarely when
#: nothing changes, and only to a neighbour linked to a peer whose signed beacons we don't
#: hear (forwarding._send_member: on one LAN, none); a peer reached through others is gone
#: after LARGE_GONE_AFTER without one, but while its signed beacons come it is not gone (on a
#: LAN the beacons say it is there: a member line every 10 s from each of 100 peers, then
#: every 30 s, was most of an idle peer's CPU).
LARGE_ALIVE_INTERVAL = 30.0
LARGE_GONE_AFTER = 75.0
#: There, changed links go out at most this often (a forming room of 100 changes them every
#: moment, and each member line goes to every peer: a signature check and a write each).
LARGE_LINKS_GAP = 10.0
#: There, links only added (none listed gone, nick and rooms the same) go out this rarely: a
#: stale list that lists fewer links than we have costs only copies of lines we drop unread
#: (relay.relayed_of), and in a room of 100 forming for a minute the 10 s gap made each peer
#: send some 10 member lines, each checked by every peer.  A link gone waits LARGE_LINKS_GAP.
LARGE_ADDED_GAP = 30.0
#: In a full mesh, changed links go out at most once per this many seconds per link we have
#: (LINKS_GAP at least, LARGE_LINKS_GAP at most: ``links_gap``).  Each member line lists
#: every link and goes to every link: a room of N forming sent N lines of N links to each of
#: N peers per gap (a room of 100 spent most of its CPU on them, and on the writes of what
#: each one marks seen); so every peer gets about the same number of them a second,
#: whatever the size of the room.
LINKS_GAP_PER_LINK = 0.1


def only_added(now: tuple[str, tuple[str, ...], tuple[str, ...]],
               sent: tuple[str, tuple[str, ...], tuple[str, ...]] | None) -> bool:
    """Whether our member state ``now`` (nick, rooms, links) only adds links to ``sent``."""
    return sent is not None and now[:2] == sent[:2] and set(sent[2]) <= set(now[2])


def member_gap(capped: bool, links: int, now: tuple[str, tuple[str, ...], tuple[str, ...]],
               sent: tuple[str, tuple[str, ...], tuple[str, ...]] | None) -> float:
    """How long our changed member state waits to go out (``capped``: a room past a full
    mesh, neighbours.py)."""
    if not capped:
        return links_gap(links)
    return LARGE_ADDED_GAP if only_added(now, sent) else LARGE_LINKS_GAP


def links_gap(links: int) -> float:
    """How long a full mesh's changed links wait to go out, with ``links`` links up."""
    return min(LARGE_LINKS_GAP, max(LINKS_GAP, links * LINKS_GAP_PER_LINK))


#: A peer first reached through others is shown joining so only if no link of our own to it
#: is up within JOIN_WAIT seconds, or JOIN_GRACE when we hear its beacons (that link is on
#: its way): so a forming full mesh shows each peer joining once, by its own link.
JOIN_WAIT = 3.0
JOIN_GRACE = 10.0
#: Peers reached only through others that we keep (the rest are not listed; their lines
#: are still shown and forwarded).
MAX_REACHED = 1024
#: Links listed in one member line (a peer has at most 256: node.MAX_LINKS).
MAX_MEMBER_LINKS = 256
#: The forward log: lines waiting to be forwarded, with a cursor per link, as our own sent
#: log (catchup.SentLog).  A link whose peer reads too slowly to keep within it misses the
#: lines that fell out (they come by catch-up when it relinks).
FORWARD_LOG_LINES = 4096
FORWARD_LOG_BYTES = 8 * 1024 * 1024

AuthorId = NewType("AuthorId", str)
"""Who wrote and signed a line."""
HanderId = NewType("HanderId", str)
"""The linked peer that handed a line to us (its author, for a line it says itself)."""


@dataclass(frozen=True)
class Heard:
    """A signed line as it came to us: whose it is, where it goes, how far it travelled."""

    author: AuthorId
    seq: int
    room: str
    hander: HanderId
    #: hops from its author to us (0: its author handed it to us)
    hops: int


@dataclass(frozen=True)
class Neighbour:
    """A linked peer, as the forwarding decision sees it."""

    peer_id: HanderId
    gossip: bool  # it announced CAP_GOSSIP (a base peer never has it)
    rooms: frozenset[str]
    #: the peers it says (in its member line) it is linked to
    links: frozenset[str] = frozenset()


def forward_to(line: Heard, neighbours: Iterable[Neighbour],
               had_by: frozenset[str] = frozenset(),
               author_links: frozenset[str] | None = None) -> list[HanderId]:
    """The neighbours to push ``line`` to: those that speak gossip, are in its room, and may
    lack it (not its hander, not its author, not linked to its author, not one that handed
    it to us too); none once it has gone MAX_HOPS hops.

    ``author_links``: the links the author's own member line lists, when known: a neighbour
    counts as linked to the author only if both member lines say so (``linked_both``).  A
    link the author pruned is left out of the author's line DRAIN_FOR before it goes, while
    the other end's line may list it for up to LARGE_LINKS_GAP more (it hears of the prune
    only as the link closes): believed, that stale line kept the author's next lines from
    the other end (a room of 16 lost a line so, now and then)."""
    if line.hops + 1 > MAX_HOPS:
        return []
    out = []
    for n in neighbours:
        if (not n.gossip or n.peer_id == line.hander or n.peer_id == line.author
                or n.peer_id in had_by or linked_both(line.author, n, author_links)):
            continue
        if line.room != DEFAULT_ROOM and line.room not in n.rooms:
            continue  # a room's lines travel only through its members
        out.append(n.peer_id)
    return out


def linked_both(author: str, n: Neighbour, author_links: frozenset[str] | None) -> bool:
    """Whether neighbour ``n`` has ``author``'s lines from the author itself: its member line
    lists the author and (``author_links`` known) the author's lists it."""
    return author in n.links and (author_links is None or n.peer_id in author_links)


def hops_of(metadata: dict[str, Any] | None) -> int | None:
    """The hop count a relay line carries (None: a line handed on at catch-up, which counts
    as one hop); a bad value counts as MAX_HOPS (not forwarded further)."""
    value = (metadata or {}).get("hops")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_HOPS:
        return MAX_HOPS
    return value


# --- member lines -------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """What a member line states about its author."""

    nick: str
    rooms: frozenset[str]
    links: frozenset[str]
    #: "bye" when it leaves; else why it was sent ("hello", "alive", "changed")
    event: str


def member_metadata(event: str, rooms: list[str], links: list[str]) -> dict[str, Any]:
    """A member line's metadata (signed with the line: relay.line_payload)."""
    return {"event": event, "rooms": [r for r in rooms if r != DEFAULT_ROOM],
            "links": sorted(links)[:MAX_MEMBER_LINKS]}


def parse_member(msg: Message) -> Member:
    """A member line's statement; WireError if it is malformed."""
    meta = msg.metadata or {}
    links = meta.get("links")
    event = meta.get("event")
    if not isinstance(links, list) or len(links) > MAX_MEMBER_LINKS:
        raise WireError("a member line's 'links' is not a short list")
    if any(not isinstance(x, str) or not 0 < len(x) <= MAX_ID_CHARS for x in links):
        raise WireError("a member line's 'links' holds something that is not a peer id")
    if not isinstance(event, str) or len(event) > MAX_ID_CHARS:
        raise WireError("a member line has no 'event'")
    if nick_problem(msg.username):
        raise WireError("a member line's nick is not a nick")
    return Member(msg.username, rooms_of(msg), frozenset(links), event)


# --- who is reached through whom -------------------------------------------------------------


@dataclass
class Reach:
    """A peer we know of from its member lines (linked to us or not)."""

    nick: str
    fp: str
    rooms: frozenset[str]
    links: frozenset[str]
    #: the neighbour its newest member line came through (itself when linked)
    via: HanderId
    heard_at: float
    #: the sequence of the newest member line taken (an older one changes nothing)
    version: int
    #: its newest member line's bytes and its key, for a peer that links to us later
    raw: bytes = b""
    pk: str = ""
    #: shown to the faces as reached through others (a join was told)
    shown: bool = False
    #: since when its join waits for a link of our own (JOIN_GRACE), or None
    waiting_since: float | None = None
    #: its newest member line said goodbye (it is not brought ``back`` by its beacons)
    bye: bool = False


@dataclass(frozen=True)
class Change:
    """What a member line changed, for the faces: ``kind`` is "joined", "nick", "rooms",
    "left" (it said goodbye) or "gone" (not heard of for GONE_AFTER)."""

    kind: str
    author: AuthorId
    nick: str
    old_nick: str = ""
    fp: str = ""
    joined_rooms: tuple[str, ...] = ()
    left_rooms: tuple[str, ...] = ()


@dataclass
class Reached:
    """Every author's newest member statement, and which of them we reach only through
    others.  Bounded: MAX_REACHED authors (least recently heard out first)."""

    max_authors: int = MAX_REACHED
    of: OrderedDict[AuthorId, Reach] = field(default_factory=OrderedDict)

    def links_of(self, peer_id: str) -> frozenset[str]:
        reach = self.of.get(AuthorId(peer_id))
        return reach.links if reach is not None else frozenset()

    def both(self, peer_id: str, author: str) -> bool:
        """Whether ``peer_id`` has ``author``'s lines from the author itself: both their
        member lines list the link (``linked_both``)."""
        return author in self.links_of(peer_id) and peer_id in self.links_of(author)

    def heard(self, author: AuthorId, seq: int, member: Member, fp: str, hander: HanderId,
              now: float, linked: bool, raw: bytes = b"", pk: str = "") -> list[Change]:
        """A member line of ``author`` (sequence ``seq``) came through ``hander``.
        ``linked``: the author is linked to us (its own lines tell the faces about it, so
        nothing is told here).  A first one waits (``due``) before it is told as a join.
        Returns what to tell the faces."""
        reach = self.of.get(author)
        if reach is not None and seq <= reach.version:
            return []  # older than what we hold: it changes nothing
        changes: list[Change] = []
        if reach is None:
            reach = Reach(member.nick, fp, member.rooms, member.links, hander, now, seq, raw,
                          pk)
            self.of[author] = reach
            while len(self.of) > self.max_authors:
                old_author, old = self.of.popitem(last=False)
                if old.shown:  # no longer listed: told as gone
                    changes.append(Change("gone", old_author, old.nick, fp=old.fp))
            old_nick, old_rooms = member.nick, frozenset({DEFAULT_ROOM})
            was_shown = False
        else:
            self.of.move_to_end(author)
            old_nick, old_rooms, was_shown = reach.nick, reach.rooms, reach.shown
            reach.nick, reach.fp, reach.rooms, reach.links = (member.nick, fp, member.rooms,
                                                              member.links)
            reach.via, reach.heard_at, reach.version = hander, now, seq
            reach.raw, reach.pk = raw, pk
        reach.bye = member.event == "bye"
        if linked:
            reach.shown, reach.waiting_since = False, None
            return changes
        if member.event == "bye":
            if was_shown:
                changes.append(Change("left", author, member.nick))
            reach.shown, reach.waiting_since = False, None
            return changes
        if not was_shown:
            if reach.waiting_since is None:
                reach.waiting_since = now
            return changes  # its join is told by ``due``, unless a link of ours comes first
        if old_nick != member.nick:
            changes.append(Change("nick", author, member.nick, old_nick=old_nick))
        if old_rooms != member.rooms:
            changes.append(Change("rooms", author, member.nick,
                                  joined_rooms=tuple(sorted(member.rooms - old_rooms)),
                                  left_rooms=tuple(sorted(old_rooms - member.rooms))))
        return changes

    def linked(self, author: str) -> bool:
        """``author`` linked to us: it is not shown as reached through others any more.
        Returns whether it was."""
        reach = self.of.get(AuthorId(author))
        if reach is None:
            return False
        reach.waiting_since = None
        if not reach.shown:
            return False
        reach.shown = False
        return True

    def unlinked(self, author: str, now: float) -> None:
        """Its link to us went: if it is still reached through others, its next member line
        says so (it counts as heard now, so it is not gone before it could come)."""
        reach = self.of.get(AuthorId(author))
        if reach is not None:
            reach.heard_at = now

    def due(self, now: float, link_coming: Callable[[str], bool],
            no_link: Callable[[str], bool] = lambda _: False) -> list[Change]:
        """Joins through others that waited long enough for a link of our own (JOIN_WAIT;
        JOIN_GRACE while ``link_coming``: we hear its beacons; none when ``no_link``: we hear
        them but won't link to it, neighbours.py)."""
        joined = []
        for author, reach in self.of.items():
            if reach.waiting_since is None or reach.shown:
                continue
            if now - reach.heard_at > GONE_AFTER:
                reach.waiting_since = None  # gone before it was told
                continue
            wait = (JOIN_GRACE if link_coming(author) else 0.0 if no_link(author)
                    else JOIN_WAIT)
            if now - reach.waiting_since >= wait:
                reach.shown, reach.waiting_since = True, None
                joined.append(Change("joined", author, reach.nick, fp=reach.fp))
        return joined

    def sweep(self, now: float, gone_after: float = GONE_AFTER,
              heard_otherwise: Callable[[str], bool] = lambda _: False) -> list[Change]:
        """Peers shown as reached through others and not heard of for ``gone_after``: gone
        (unless ``heard_otherwise``: its signed beacons still come, neighbours.py)."""
        gone = []
        for author, reach in self.of.items():
            if reach.shown and now - reach.heard_at > gone_after and heard_otherwise(author):
                reach.heard_at = now  # alive: its signed beacons say so
            elif reach.shown and now - reach.heard_at > gone_after:
                reach.shown = False
                gone.append(Change("gone", author, reach.nick, fp=reach.fp))
        return gone

    def back(self, now: float, alive: Callable[[str], bool]) -> list[Change]:
        """Peers not shown (gone, or whose link to us went) that are ``alive`` again (in a
        room past a full mesh: reached through others, its signed beacons coming): shown
        again, from their last member line.  There no member line comes while nothing
        changes, so none would bring back a peer shown gone while the beacons of a
        saturated machine were late."""
        joined = []
        for author, reach in self.of.items():
            if (not reach.shown and reach.waiting_since is None and reach.raw and not reach.bye
                    and alive(author)):
                reach.shown, reach.heard_at = True, now
                joined.append(Change("joined", author, reach.nick, fp=reach.fp))
        return joined

    def shown(self) -> list[tuple[AuthorId, Reach]]:
        """The peers shown as reached through others."""
        return [(a, r) for a, r in self.of.items() if r.shown]


# --- the forward log ---------------------------------------------------------------------------


@dataclass
class Forward:
    """One line to forward: its relay line's bytes (encoded once) and whom it goes to."""

    index: int
    data: bytes
    targets: set[str]
    key: tuple[AuthorId, int]


class ForwardLog:
    """Lines to forward, oldest first, each for its targets; a cursor per link says how far
    that link has been written.  A link whose peer reads gets a new line's bytes at once; a
    backed-up one falls behind and is written to as it reads (``due``), within the log's
    bounds: no queue per link, memory bounded by FORWARD_LOG_LINES and FORWARD_LOG_BYTES."""

    def __init__(self, max_lines: int = FORWARD_LOG_LINES,
                 max_bytes: int = FORWARD_LOG_BYTES) -> None:
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.entries: list[Forward] = []
        self._head = 0  # entries before it are gone
        self._bytes = 0
        self._by_key: dict[tuple[AuthorId, int], Forward] = {}
        #: the index of the newest line (0: none yet)
        self.last = 0
        self.cursors: dict[str, int] = {}

    def append(self, key: tuple[AuthorId, int], data: bytes, targets: set[str]) -> Forward:
        assert len(data) <= MAX_LINE_BYTES + 1
        self.last += 1
        entry = Forward(self.last, data, targets, key)
        self.entries.append(entry)
        self._by_key[key] = entry
        self._bytes += len(data)
        while len(self) > self.max_lines or self._bytes > self.max_bytes:
            old = self.entries[self._head]
            self._head += 1
            self._bytes -= len(old.data)
            if self._by_key.get(old.key) is old:
                del self._by_key[old.key]
        # entries every link has been written past are kept no longer (in a large room the
        # log of every member line relayed was most of what an idle peer's memory grew by)
        low = min(self.cursors.values(), default=self.last)
        while len(self) and self.entries[self._head].index <= low:
            old = self.entries[self._head]
            self._head += 1
            self._bytes -= len(old.data)
            if self._by_key.get(old.key) is old:
                del self._by_key[old.key]
        if self._head > 1024 and self._head * 2 > len(self.entries):
            del self.entries[:self._head]
            self._head = 0
        return entry

    def had_by(self, key: tuple[AuthorId, int], peer_id: str) -> None:
        """``peer_id`` handed us this line too: it is not to be written to it."""
        entry = self._by_key.get(key)
        if entry is not None:
            entry.targets.discard(peer_id)

    def start(self, peer_id: str) -> None:
        """A new link: it starts at the newest line (what it lacks comes by catch-up)."""
        self.cursors[peer_id] = self.last

    def stop(self, peer_id: str) -> None:
        self.cursors.pop(peer_id, None)

    def due(self, peer_id: str) -> tuple[list[Forward], int]:
        """The lines after ``peer_id``'s cursor that are for it (the caller moves the cursor
        to each one it writes, then to ``last``), and how many it missed because they fell
        out of the log."""
        cursor = self.cursors.get(peer_id, self.last)
        first = self.entries[self._head].index if len(self) else self.last + 1
        missed = max(0, first - cursor - 1)
        start = self._head + max(0, cursor + 1 - first)
        return [e for e in self.entries[start:] if peer_id in e.targets], missed

    def __len__(self) -> int:
        return len(self.entries) - self._head
