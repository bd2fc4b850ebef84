"""Forwarding signed lines through a partial mesh, for the node (gossip.py decides, this does
it): a line first seen goes on to the other linked peers that may lack it, through a forward
log with a cursor per link (written only while the peer reads, as our own lines); our own
``member`` line (nick, rooms, links) goes out at link-up, on a change, and every
ALIVE_INTERVAL to the neighbours that carry it on; member lines of others tell who is reached
only through others, and when such a peer is gone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.logger import Logger, LogLevel

from p2pchat import events, logs
from p2pchat.clocks import log_limited
from p2pchat.gossip import (ALIVE_INTERVAL, GONE_AFTER, LARGE_ALIVE_INTERVAL,
                            LARGE_GONE_AFTER, AuthorId, Change, ForwardLog, HanderId, Heard,
                            Neighbour, Reached, forward_to, member_gap, member_metadata,
                            parse_member)
from p2pchat.handmembers import MemberHandOn
from p2pchat.interfaces import PeerView
from p2pchat.peers import Liveness
from p2pchat.relay import MEMBER, RELAY, relay_lines, sign_line
from p2pchat.runsig import is_run
from p2pchat.wire import DEFAULT_ROOM, Message, WireError, encode_message, new_message_id

if TYPE_CHECKING:
    from p2pchat.node import Node
    from p2pchat.session import PeerSession

log = Logger()


def _first_heard(author: str, via: str, hops: int) -> None:
    """(--debug: when each peer first heard of each other, as a room forms.)"""
    if logs.debugging():
        log.debug("member line of {peer} first heard, from {via} ({hops} hops)",
                  peer=author, via=via, hops=hops)


class Forwarder:
    """The relaying side of one node (``node``)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.log = ForwardLog()
        self.reached = Reached()
        #: per author reached only through others, the highest sequence of its lines we
        #: took from a relay (what a sync says we have of it)
        self.relayed_high: dict[str, int] = {}
        self._sent_state: tuple[str, tuple[str, ...], tuple[str, ...]] | None = None
        self._sent_at = float("-inf")
        self._dirty = False
        self._soon = False  # changed_soon asked for a member line this second
        #: our last member line sent to every link, and the links it listed
        self._last_member: tuple[bytes, tuple[str, ...]] = (b"", ())
        #: per author, the neighbours its lines may go to (``_lacking``), and what they
        #: were worked out from (our links and their member lines, by generation)
        self._lacking_cache: dict[str, tuple[int, tuple[str, ...]]] = {}
        self._generation = 0
        self.members = MemberHandOn(node, self.reached)

    # --- links ---------------------------------------------------------------------------

    def linked(self, link: PeerSession) -> None:
        """A new link: it starts at the forward log's end, gets our member line (before the
        sync, so its neighbour list is known when it asks for lines) and the member lines of
        the peers we reach only through others."""
        node = self.node
        self._generation += 1
        known = self.reached.of.get(AuthorId(link.peer_id))  # (before linked() below)
        if self.reached.linked(link.peer_id):
            node.emit(events.PeersChanged(node.clock.seconds()))
        if not link.gossip:
            return
        self.log.start(link.peer_id)
        last, sent_links = self._last_member
        if (last and node.neighbours.capped()
                and set(sent_links) <= {p for p, x in node.links.items() if x.gossip}):
            # A room past a full mesh: the member line the room has already (its links only
            # fewer than now: a neighbour then hands on more at our sync, never less), so a
            # link-up is not a new line flooding every peer; the new link goes out with the
            # next change (LINKS_GAP).
            link.send_bytes(last)
        else:
            hello = encode_message(self.member_message("hello"))
            link.send_bytes(hello)
            if node.neighbours.capped():
                # the next link-ups get it too (its links fewer than ours, never more): each
                # hello floods the room, and a peer made one a link-up till its first tick
                self._last_member = (hello, self._state()[2])
        self.members.linked(link, known)  # the member lines it lacks

    def lost(self, link: PeerSession) -> None:
        self._generation += 1
        self.members.lost(link.peer_id)
        self.log.stop(link.peer_id)
        self.reached.unlinked(link.peer_id, self.node.clock.seconds())

    def was_shown(self, peer_id: str) -> bool:
        """Whether ``peer_id`` is shown as reached through others (so a join for its new
        link is not news)."""
        reach = self.reached.of.get(AuthorId(peer_id))
        return reach is not None and reach.shown

    def author_linked_to(self, link: PeerSession, author: str) -> bool:
        """Whether ``link``'s peer has ``author``'s lines from ``author`` itself (so we hand
        none on): a gossip peer if it is the author or lists it among its links; an older
        peer of ours if the author is linked to us (it was so in a full mesh)."""
        if author == link.peer_id:
            return True
        return self.reached.both(link.peer_id, author) if link.gossip else author in self.node.links

    # --- our member line ----------------------------------------------------------------------

    def _state(self) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        node = self.node
        draining = node.neighbours.draining  # links about to be pruned: not listed
        return (node.nick, tuple(node.rooms.joined),
                tuple(sorted(pid for pid, link in node.links.items()
                             if link.gossip and pid not in draining)))

    def member_message(self, event: str) -> Message:
        """Our member line now: signed, and numbered from our one counter."""
        node = self.node
        nick, rooms, links = self._state()
        msg = Message(new_message_id(), MEMBER, node.peer_id, nick, "",
                      node.clock.seconds(), node.outbox.number(), DEFAULT_ROOM,
                      member_metadata(event, list(rooms), list(links)))
        if node.identity is not None and msg.metadata is not None:
            msg.metadata["sig"] = sign_line(node.identity, msg)
        return msg

    def changed(self) -> None:
        """Our nick or rooms changed: every gossip link hears it now."""
        self._send_member("changed")

    def changed_soon(self) -> None:
        """Our listed links changed (a prune, or kept after all): one member line at the end
        of this second (``flush_soon``) for every such change in it, not one each."""
        self._soon = True

    def flush_soon(self) -> None:
        """The member line ``changed_soon`` asked for (at the sweep, within DRAIN_FOR)."""
        if self._soon and not self.node.leaving and self._state() != self._sent_state:
            self._send_member("changed")  # (unless the tick just sent this state)
        self._soon = False

    def _send_member(self, event: str, only_carriers: bool = False) -> None:
        """Our member line to every gossip link (encoded once); ``only_carriers``: nothing
        changed, so only to those that carry it on (a neighbour linked to a peer we are not
        linked to: that peer learns from it that we are still there).  A full mesh then
        sends no member line at all while nothing changes."""
        node = self.node
        links = [link for link in node.links.values() if link.gossip]
        if only_carriers:
            # In a room past a full mesh a peer whose signed beacons we hear hears ours (one
            # LAN, one group): our beacons tell it we are there (``_sweep``), so it needs no
            # member line of ours either; one every LARGE_ALIVE_INTERVAL from each of 100
            # peers, relayed to all, was most of an idle peer's CPU (the relayed copies'
            # parse, the seen marks' commits).
            now = node.clock.seconds()
            quiet = (lambda p: not self._beacons(p, now)) if node.neighbours.capped() else (
                lambda p: True)
            links = [link for link in links if any(
                p not in node.links and p != node.peer_id and quiet(p)
                for p in self.reached.links_of(link.peer_id))]
        self._sent_state, self._sent_at = self._state(), node.clock.seconds()
        if not links or node.identity is None:
            return
        data = encode_message(self.member_message(event))
        self._last_member = (data, self._sent_state[2])
        for link in links:
            link.send_bytes(data)

    def goodbye(self) -> None:
        self._send_member("bye")

    def tick(self) -> None:
        """Every second (the node's sweep): our member line when our links changed or every
        ALIVE_INTERVAL; peers reached through others and silent too long are gone."""
        node = self.node
        now = node.clock.seconds()
        if node.leaving:
            return
        since = now - self._sent_at
        capped = node.neighbours.capped()
        state = self._state()
        if since >= member_gap(capped, len(node.links), state, self._sent_state) and (
                self._dirty or state != self._sent_state):
            self._dirty = False
            self._send_member("alive")
        elif since >= (LARGE_ALIVE_INTERVAL if capped else ALIVE_INTERVAL):
            self._send_member("alive", only_carriers=True)
        # How far we have a peer that is gone stays known: when a path to it is back, a sync
        # asks for what it said meanwhile.
        self._tell(self._due(now) + self._sweep(now), now)

    def _gone_after(self) -> float:
        return LARGE_GONE_AFTER if self.node.neighbours.capped() else GONE_AFTER

    def _sweep(self, now: float) -> list[Change]:
        """The peers reached through others that are gone: in a room past a full mesh, not
        one whose signed beacons still come (checked, or unchanged since a checked one within
        slots.RECHECK_AFTER: presence._unchanged)."""
        node = self.node
        if not node.neighbours.capped():
            return self.reached.sweep(now)
        gone = self.reached.sweep(now, LARGE_GONE_AFTER, lambda pid: self._beacons(pid, now))
        return gone + self.reached.back(now, lambda pid: (
            pid not in node.links and self._beacons(pid, now) and self.path_to(pid) is not None))

    def _beacons(self, peer_id: str, now: float) -> bool:
        """Whether ``peer_id``'s signed beacons come (it is alive by them)."""
        info = self.node.peers.get(peer_id)
        return info is not None and bool(info.fp) and info.liveness(now) is Liveness.ALIVE

    def _due(self, now: float) -> list[Change]:
        """The joins through others to tell now.  A forming full mesh shows each peer joining
        by its own link; a room past a full mesh (--links, neighbours.py) lists a peer reached
        through others at once (a link of ours to it, if one comes, tells nothing more)."""
        node = self.node
        heard, wants, capped = node.peers.get, node.neighbours.wants, node.neighbours.capped()
        return self.reached.due(
            now, lambda pid: not capped and heard(pid) is not None and wants(pid),
            lambda pid: capped or (heard(pid) is not None and not wants(pid)))

    def proven(self, peer_id: str, now: float) -> str:
        """The key fingerprint a peer reached through others proved within GONE_AFTER (its
        signed member line checked by its key), or "" (presence's unchanged beacons)."""
        reach = self.reached.of.get(AuthorId(peer_id))
        if reach is None or not reach.shown or now - reach.heard_at > self._gone_after():
            return ""
        return reach.fp

    def relayed_now(self, peer_id: str) -> bool:
        """Its link was pruned (neighbours.py): if another neighbour of ours is linked to it,
        it is listed as reached through others at once, with no leave and no join shown.
        False: no neighbour of ours says it is linked to it."""
        node = self.node
        reach = self.reached.of.get(AuthorId(peer_id))
        via = self.path_to(peer_id)
        if reach is None or via is None:
            return False
        reach.shown, reach.waiting_since = True, None
        reach.heard_at, reach.via = node.clock.seconds(), HanderId(via)
        return True

    def path_to(self, peer_id: str) -> str | None:
        """The neighbour of ours through which ``peer_id`` is reached other than by a link
        of ours to it, as the member lines say who is linked to whom (a search of that graph:
        some 1,000 edges in a room of 100), or None."""
        node = self.node
        first: dict[str, str] = {pid: pid for pid, link in node.links.items()
                                 if link.gossip and pid != peer_id}
        todo = list(first)
        while todo:
            here = todo.pop(0)
            for there in self.reached.links_of(here):
                if there == peer_id:
                    return first[here]
                if there not in first and there != node.peer_id:
                    first[there] = first[here]
                    todo.append(there)
        return None

    # --- lines heard ----------------------------------------------------------------------------

    def spread(self, raw: bytes, pk: str, msg: Message, hander: PeerSession, hops: int) -> None:
        """A signed line first seen (``raw``, its author's key ``pk``): on to the linked peers
        that may lack it, through the forward log."""
        node = self.node
        if node.leaving:
            return
        if msg.room_id != DEFAULT_ROOM and msg.room_id not in node.rooms.joined:
            return  # a non-member never carries a room's lines
        candidates = self._lacking(msg.sender_id)
        if not candidates or candidates == (hander.peer_id,):
            return  # the usual case in a full mesh: every neighbour has it from its author
        heard = Heard(AuthorId(msg.sender_id), msg.sequence, msg.room_id,
                      HanderId(hander.peer_id), hops)
        neighbours = [Neighbour(HanderId(pid), True, node.rooms.rooms_of_peer(pid),
                                self.reached.links_of(pid)) for pid in candidates]
        # A neighbour whose sync said it has this author this far already gets nothing (a
        # line we are caught up on is, mostly, one the others have too).
        had_by = frozenset(pid for pid in candidates
                           if node.links[pid].has.get(msg.sender_id, 0) >= msg.sequence)
        targets = forward_to(heard, neighbours, had_by, self.reached.links_of(msg.sender_id))
        if targets and is_run(msg.metadata):  # only to peers that take run signatures
            targets = [pid for pid in targets if node.links[pid].runsig]
        if not targets:
            return
        metadata = relay_lines([(raw, msg.sender_id, pk)])[0]
        metadata["hops"] = hops + 1
        data = encode_message(node.sender.message(RELAY, "", metadata=metadata))
        previous = self.log.last
        self.log.append((heard.author, heard.seq), data, set(targets))
        for pid in targets:
            link = node.links[pid]
            if not link.synced:
                continue  # after its sync: what it lacks from before comes first
            if self.log.cursors.get(pid) == previous and not link.backed_up:
                link.send_bytes(data)
                self.log.cursors[pid] = self.log.last
            else:
                self.pump(link)

    def may_spread(self, author: str, hander: PeerSession) -> bool:
        """Whether a line of ``author`` heard from ``hander`` may have anyone to go on to
        (else ``spread`` would find no one): asked once for a run of its lines (reading.py)."""
        candidates = self._lacking(author)
        return bool(candidates) and candidates != (hander.peer_id,)

    def _lacking(self, author: str) -> tuple[str, ...]:
        """Our gossip neighbours that are not ``author`` and not linked to it: the only ones
        a line of it may go to.  Kept per author until a link or a neighbour's links change,
        so a line costs a dict lookup where nothing is to be forwarded."""
        cached = self._lacking_cache.get(author)
        if cached is not None and cached[0] == self._generation:
            return cached[1]
        found = tuple(pid for pid, link in self.node.links.items() if link.gossip
                      and pid != author and not self.reached.both(pid, author))
        if len(self._lacking_cache) >= 4096:
            self._lacking_cache.clear()
        self._lacking_cache[author] = (self._generation, found)
        return found

    def duplicate(self, msg: Message, hander: PeerSession) -> None:
        """A line we had came again from ``hander``: it is not to be forwarded to it."""
        self.log.had_by((AuthorId(msg.sender_id), msg.sequence), hander.peer_id)

    def pump(self, link: PeerSession) -> None:
        """Write to ``link`` what it lacks of the forward log, while its peer reads."""
        if link.peer_id not in self.log.cursors or not link.synced:
            return
        entries, missed = self.log.due(link.peer_id)
        if missed:
            log_limited(self.node.clock, log, "forward log overrun", LogLevel.warn,
                        "{peer} reads too slowly: {n} lines to forward to it were dropped "
                        "(it gets them by catch-up when it links again)", peer=link.peer_id,
                        n=missed)
        for entry in entries:
            if link.backed_up:
                return
            link.send_bytes(entry.data)
            self.log.cursors[link.peer_id] = entry.index
        self.log.cursors[link.peer_id] = self.log.last

    def relayed_line(self, msg: Message) -> None:
        """A line of another author taken from a relay: how far we have that author."""
        if msg.sender_id not in self.node.links:
            high = self.relayed_high.get(msg.sender_id, 0)
            if msg.sequence > high and (high or len(self.relayed_high) < 1024):
                self.relayed_high[msg.sender_id] = msg.sequence

    def member(self, msg: Message, fp: str, hander: PeerSession, raw: bytes, pk: str,
               hops: int) -> None:
        """A member line (direct: ``hops`` 0, or relayed), after its signature or its link
        proved its author: dedup, what it changes, then on to the others."""
        node = self.node
        if msg.sender_id == node.peer_id:
            return
        if not msg.sequence or not node.room.seqs.add(msg.sender_id, msg.sequence):
            if msg.sequence:
                self.duplicate(msg, hander)
            return
        try:
            member = parse_member(msg)
        except WireError as e:
            log_limited(node.clock, log, "bad member line", LogLevel.warn,
                        "bad member line from {peer} skipped: {why}", peer=hander.peer_id,
                        why=str(e))
            return
        now = node.clock.seconds()
        author = AuthorId(msg.sender_id)
        linked = author in node.links
        before = self.reached.of.get(author)
        if linked and member.event != "bye" and before is not None and (
                msg.sequence > before.version):
            if node.peer_id not in member.links and node.peer_id in before.links:
                node.neighbours.dropped_by(author)  # it is about to prune our link
            elif node.peer_id in member.links:
                node.neighbours.listed_by(author)
        if member.links != self.reached.links_of(author):
            self._generation += 1  # whom lines may go to changed (any author's: linked_both)
            if linked and any(p not in node.links and p != node.peer_id
                              for p in member.links - self.reached.links_of(author)):
                # a new peer behind a neighbour: it hears of us at the tick (in a room past a
                # full mesh it has our member line from its own neighbour's link-up, and a
                # resend here, at every link change of a neighbour, flooded the room)
                self._dirty = not node.neighbours.capped()
        changes = self.reached.heard(author, msg.sequence, member, fp, HanderId(hander.peer_id),
                                     now, linked, raw, pk)
        if before is None:
            _first_heard(author, hander.peer_id, hops)
        if not linked:
            # From now on its lines are ours to have: a sync asks for those after this one.
            if len(self.relayed_high) < 1024:
                self.relayed_high.setdefault(author, msg.sequence)
            if member.event == "bye":
                node.rooms.forget_peer(author)
            else:
                node.rooms.set_peer(author, member.rooms)
        reach = self.reached.of.get(author)
        if reach is not None and reach.waiting_since is not None and node.neighbours.capped():
            changes += self._due(now)  # a room past a full mesh lists it at once
        self._tell(changes, now)
        self.spread(raw, pk, msg, hander, hops)

    def _tell(self, changes: list[Change], now: float) -> None:
        node = self.node
        for c in changes:
            reach = self.reached.of.get(c.author)
            nick = node.trust.display(c.nick, c.fp or (reach.fp if reach else ""))
            if c.kind == "joined" and reach is not None:
                via = node.links.get(reach.via)
                where = f"via {node.nick_of(via)}" if via is not None else "relayed"
                node.emit(events.PeerJoined(now, nick, c.author, where))
            elif c.kind in ("left", "gone"):
                node.emit(events.PeerLeft(now, nick, c.author,
                                          None if c.kind == "left" else "no longer reached"))
                node.rooms.forget_peer(c.author)
            elif c.kind == "nick":
                node.emit(events.NickChanged(now, node.trust.display(c.old_nick, ""), nick,
                                             c.author))
            for room in c.joined_rooms:
                if room in node.rooms.joined and c.kind != "joined":
                    node.emit(events.RoomChanged(now, room, nick, c.author, joined=True))
            for room in c.left_rooms:
                if room in node.rooms.joined:
                    node.emit(events.RoomChanged(now, room, nick, c.author, joined=False))
        if changes:
            node.emit(events.PeersChanged(now))

    # --- what the faces see ---------------------------------------------------------------------

    def members_of(self, room: str) -> list[str]:
        """The peers in ``room`` reached only through others, as shown."""
        return [self.node.trust.display(r.nick, r.fp) for a, r in self.reached.shown()
                if room in r.rooms and a not in self.node.links]

    def views(self) -> list[PeerView]:
        """/users rows for the peers reached only through others."""
        node = self.node
        rows = []
        for author, reach in self.reached.shown():
            if author in node.links:
                continue
            via = node.links.get(reach.via)
            rows.append(PeerView(node.trust.display(reach.nick, reach.fp), author, "relayed",
                                 f"via {node.nick_of(via) if via is not None else '?'}", True,
                                 rooms=tuple(sorted(reach.rooms,
                                                    key=lambda r: (r != DEFAULT_ROOM, r)))))
        return rows
