"""Who is around, for the node: our beacons and the peers' (discovery.py carries them), the
peer table, dialing, sweeping out the silent, and probing a link whose peer's beacons came
back after a silence (linkwatch.py keeps the bookkeeping).

A signed beacon must be signed by the key its peer id comes from, and newer than the last one
(a replay from elsewhere can't move a peer); a peer once heard signing is never believed
unsigned again; a leave datagram is not believed against a live link.  A signature is checked
only within its host's budget (slots.py), so a flood of forged beacons costs a bounded share of
the CPU; a beacon from a peer linked by TLS that says what its last checked beacon said is
believed unchecked for a while (``_unchanged``); who gets the table's places and the link
slots is decided by how well each peer is known (slots.Standing, the node's ``standing``).
Every log line that network input can repeat at will is rate-limited (ratelog.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.logger import Logger, LogLevel

from p2pchat import events, latetls
from p2pchat.busy import load_factor
from p2pchat.clocks import Delayed, flush_logs, log_limited
from p2pchat.identity import beacon_payload, peer_id_for, verify_beacon
from p2pchat.linkwatch import IDLE_TIMEOUT, OVERDUE_AFTER, PROBE_TIMEOUT
from p2pchat.peers import GONE_AFTER, Heard, Liveness, should_dial
from p2pchat.slots import RECHECK_AFTER, UNPROVEN_RECHECK_AFTER, slot_refusal
from p2pchat.wire import (ANNOUNCE, CAP_TLS, HEARTBEAT, LEAVE, Beacon, format_time, is_fresh,
                          new_message_id)

if TYPE_CHECKING:
    from p2pchat.node import Node
    from p2pchat.peers import PeerInfo
    from p2pchat.session import PeerSession
    from p2pchat.wire import Message

log = Logger()

#: Beacons read in one reactor turn past which the choices they ask for (whom to dial, whether
#: to answer a newcomer, the peers list shown) wait for the turn's end, made once for all of
#: them.  A peer starting in a room of 100 on a busy machine read some 450 datagrams in its
#: first turn (those that came while it started), and worked out its choice of neighbours
#: again for each newcomer among them (``neighbours.wanted``: about 100 times, each over the
#: whole table): 70-77 ms of CPU in one turn, which at its share of the cores then held its
#: first link, and its face's first line, 5-7 s.  The first ones of a turn are acted on at
#: once, as a few beacons always were.
CHOOSE_AFTER = 8


class Presence:
    """The beacon side of one node (``node``)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._full_warned = False
        #: the timers of the probes in flight
        self._probe_timers: dict[str, Delayed] = {}
        #: beacons read in this reactor turn (``heard(together=True)``), and the call at its end
        self._this_turn = 0
        self._turn_call: Delayed | None = None
        #: past CHOOSE_AFTER of them: the peers whose dial and answer wait for the turn's end
        #: (in the order heard), and whether the peers list changed meanwhile
        self._holding = False
        self._to_dial: dict[str, None] = {}
        self._to_answer: dict[str, None] = {}
        self._changed = False

    def stop(self) -> None:
        """We leave: no probe is waited for any more."""
        if self._turn_call is not None and self._turn_call.active():
            self._turn_call.cancel()
        self._turn_call, self._this_turn, self._holding, self._changed = None, 0, False, False
        self._to_dial.clear()
        self._to_answer.clear()
        for timer in self._probe_timers.values():
            if timer.active():
                timer.cancel()
        self._probe_timers.clear()
        self.node.watch.probes.clear()

    def beacon(self, kind: str) -> Beacon:
        """A beacon from us; signed when we have an identity, so no one else can announce
        our id at another address or say we left."""
        node = self.node
        now = node.clock.seconds()
        beacon = Beacon(type=kind, peer_id=node.peer_id, username=node.nick, port=node.port,
                        timestamp=now, address=f"0.0.0.0:{node.port}", caps=node.caps)
        if node.identity is None:
            return beacon
        fp = node.identity.fingerprint
        payload = beacon_payload(kind, node.peer_id, node.nick, node.port, format_time(now), fp)
        return Beacon(type=kind, peer_id=node.peer_id, username=node.nick, port=node.port,
                      timestamp=now, address=beacon.address, caps=node.caps, fp=fp,
                      pk=node.identity.public_key_b64(), sig=node.identity.sign_seldom(payload))

    def _count(self) -> None:
        """One more beacon read in this reactor turn; past CHOOSE_AFTER the choices wait."""
        self._this_turn += 1
        if self._turn_call is None:
            self._turn_call = self.node.clock.callLater(0, self._turn_over)
        if self._this_turn > CHOOSE_AFTER:
            self._holding = True

    def _turn_over(self) -> None:
        """The turn's beacons are in: the choices they asked for, made once (the peer table
        and so the choice of neighbours no longer move under them)."""
        node = self.node
        self._turn_call, self._this_turn, holding = None, 0, self._holding
        self._holding = False
        if not holding:
            return
        to_answer, to_dial, changed = self._to_answer, self._to_dial, self._changed
        self._to_answer, self._to_dial, self._changed = {}, {}, False
        if node.leaving:
            return
        if node.announcer is not None and any(
                pid in node.peers and node.neighbours.answers(pid) for pid in to_answer):
            node.announcer.reply_soon()
        if changed:
            node.emit(events.PeersChanged(node.clock.seconds()))
        for pid in to_dial:
            info = node.peers.get(pid)
            if info is not None and pid not in node.links:
                self.maybe_dial(info)

    def heard(self, beacon: Beacon, host: str, together: bool = False) -> None:
        """A beacon from ``host``.  ``together``: read from the socket with the others of
        this reactor turn (discovery.py), so past CHOOSE_AFTER of them its choices wait for
        the turn's end."""
        node = self.node
        if together:
            self._count()
        if beacon.peer_id == node.peer_id:
            return
        now = node.clock.seconds()
        if not is_fresh(beacon, now):
            log_limited(node.clock, log, "old beacon", LogLevel.debug,
                        "old beacon from {host} ({peer}) ignored", host=host,
                        peer=beacon.peer_id)
            return
        unchanged = self._unchanged(beacon, host, now)
        if not self._trusted(beacon, host, check=not unchanged):
            return
        if beacon.type == LEAVE:
            self._leave(beacon, host)
            return
        before = node.peers.get(beacon.peer_id)
        was_quiet = before is None or before.liveness(now) is not Liveness.ALIVE
        last_beacon = before.last_seen if before is not None else float("-inf")
        heard = node.peers.heard(beacon, host, now, checked=not unchanged)
        link = node.links.get(beacon.peer_id)
        # A link heard once its peer's next beacon was overdue was alive during the silence
        # (a saturated machine loses and delays datagrams first): probing it anyway, with a
        # 3 s deadline, dropped live links by the thousand in a room of 100 (and redialing
        # them fed the load).
        if was_quiet and link is not None and link.last_heard <= last_beacon + OVERDUE_AFTER:
            self.probe(link)
        if heard is Heard.FULL:
            if not self._full_warned:
                log.warn("peer table full ({n} peers): new peers ignored unless better known "
                         "than the worst of them", n=len(node.peers))
                self._full_warned = True
            return
        if heard is Heard.IGNORED:
            return
        for old in node.peers.evicted:
            log_limited(node.clock, log, "table eviction", LogLevel.info,
                        "peer table full: {old} forgotten to make room for {new}",
                        old=old.peer_id, new=beacon.peer_id)
            self._forget_peer(old)
        if heard in (Heard.NEW, Heard.MOVED):
            fp = beacon.fp
            for old in node.peers.evict_address(
                    beacon.peer_id, host, beacon.port, signed=bool(fp),
                    keep=lambda p: p.peer_id in node.links or (
                        bool(p.fp) and p.fp != fp and node.trust.pins.get(p.username) == p.fp)):
                log_limited(node.clock, log, "address eviction", LogLevel.info,
                            "{old} was at {host}:{port}, where {new} now is: forgotten",
                            old=old.peer_id, new=beacon.peer_id, host=host, port=beacon.port)
                self._forget_peer(old)
        if heard is Heard.MOVED and beacon.fp:
            self.moved_while_linked(beacon.peer_id, host)
        if heard is Heard.NEW:
            if node.identity is not None and CAP_TLS in beacon.caps:
                latetls.soon(node.clock)  # a link is coming: its TLS libraries meanwhile
            log_limited(node.clock, log, "discovered", LogLevel.info,
                        "discovered {peer} at {host}:{port}",
                        burst=10, peer=beacon.peer_id, host=host, port=beacon.port)
            if self._holding:
                self._to_answer[beacon.peer_id] = None
                self._changed = True
            else:
                if node.announcer is not None and node.neighbours.answers(beacon.peer_id):
                    # so the newcomer learns of us at once, and dials us (the smaller id
                    # dials); a newcomer we dial learns of us from our join, so it needs no
                    # answer: a crowd starting at once sends half the datagrams (each a
                    # signature check for every peer that hears it).  In a room past a full
                    # mesh only the few whose neighbour it will be answer
                    # (neighbours.answers).
                    node.announcer.reply_soon()
                node.emit(events.PeersChanged(now))
        info = node.peers.get(beacon.peer_id)
        if info is not None and beacon.peer_id not in node.links:
            if self._holding:
                self._to_dial[beacon.peer_id] = None
            else:
                self.maybe_dial(info)

    def _unchanged(self, beacon: Beacon, host: str, now: float) -> bool:
        """Whether this signed announce may be believed without its signature check (about
        115 us; in a room of 100, 20 a second, most of an idle peer's CPU): it comes from the
        host its last checked one came from and says the same key, nick, port and caps, and
        that check was less than UNPROVEN_RECHECK_AFTER ago, or less than RECHECK_AFTER ago
        for a peer linked now over TLS that proved the key ``beacon.fp`` or (not a neighbour
        of ours, neighbours.py) listed as reached through others by member lines signed by
        that key within gossip.GONE_AFTER (forwarder.proven).  The cheap checks still run
        first (id against key, a stamp newer than the last checked one).

        So a forged one (anyone can send a datagram with any source address) can only say,
        within those seconds, that the peer is still there (peers.heard): it can't move it,
        rename it, change its caps, say it left, or raise its stamp (the next real beacon is
        never taken for a replay).  A dead peer behind that forger is still found out: its
        link goes silent (linkwatch's IDLE_TIMEOUT), or its member lines stop (it is shown
        gone after GONE_AFTER), and from then on every beacon for it is checked again.  For a
        peer neither linked nor proven, the forger can at most keep its table entry (an
        address dialed for nothing) for UNPROVEN_RECHECK_AFTER after its last real beacon;
        for a relayed peer, for RECHECK_AFTER: it is not listed by beacons, so it is not
        shown alive.  Whatever differs is checked."""
        if beacon.type != ANNOUNCE or not beacon.fp:
            return False
        info = self.node.peers.get(beacon.peer_id)
        if info is None or info.fp != beacon.fp or (
                (info.host, info.port, info.username, info.caps)
                != (host, beacon.port, beacon.username, beacon.caps)):
            return False
        age = now - info.checked_at
        if age < UNPROVEN_RECHECK_AFTER:
            return True
        if age >= RECHECK_AFTER:
            return False
        link = self.node.links.get(beacon.peer_id)
        proven = link.fp if link is not None else self.node.forwarder.proven(beacon.peer_id,
                                                                              now)
        return proven == beacon.fp

    def _trusted(self, beacon: Beacon, host: str, check: bool = True) -> bool:
        """A signed beacon must carry a valid signature by the key its id is derived from; a
        peer once heard signing is never again believed unsigned; and a signed beacon must be
        newer than the last one (a replay from elsewhere can't move a peer's address).

        The cheap checks come first (the id against the key, the key and age against what we
        know); a signature is checked only within the source host's budget (slots.py), so a
        flood of forged beacons costs a bounded share of the CPU.  ``check=False``: the
        signature is not checked (``_unchanged``)."""
        node = self.node
        signed = bool(beacon.fp or beacon.sig or beacon.pk)
        if signed and beacon.peer_id != peer_id_for(beacon.fp):
            log_limited(node.clock, log, "bad beacon signature", LogLevel.info,
                        "beacon for {peer} from {host} with a bad signature ignored",
                        peer=beacon.peer_id, host=host)
            return False
        known = node.peers.get(beacon.peer_id)
        if known is not None and known.fp:
            if beacon.fp != known.fp:
                log_limited(node.clock, log, "unsigned beacon", LogLevel.info,
                            "unsigned beacon for {peer} (which signs) from {host} ignored",
                            peer=beacon.peer_id, host=host)
                return False
            if beacon.timestamp <= known.last_stamp:
                log_limited(node.clock, log, "replayed beacon", LogLevel.debug,
                            "replayed beacon for {peer} from {host} ignored",
                            peer=beacon.peer_id, host=host)
                return False
        if signed and check:
            if not node.verify_budget.allow(host, node.clock.seconds()):
                log_limited(node.clock, log, "verify budget", LogLevel.warn,
                            "too many signed beacons from {host}: {peer}'s not checked, "
                            "ignored", host=host, peer=beacon.peer_id)
                return False
            payload = beacon_payload(beacon.type, beacon.peer_id, beacon.username, beacon.port,
                                     beacon.stamp, beacon.fp)
            if not verify_beacon(beacon.pk, beacon.sig, payload, beacon.fp):
                log_limited(node.clock, log, "bad beacon signature", LogLevel.info,
                            "beacon for {peer} from {host} with a bad signature ignored",
                            peer=beacon.peer_id, host=host)
                return False
        return True

    def _leave(self, beacon: Beacon, host: str) -> None:
        node = self.node
        link = node.links.get(beacon.peer_id)
        if link is not None and not link.said_leave:
            # A datagram anyone could forge against a live connection: trust the connection.
            log_limited(node.clock, log, "leave ignored", LogLevel.info,
                        "leave datagram for {peer} from {host} ignored: its link is up",
                        peer=beacon.peer_id, host=host)
            return
        if node.peers.left(beacon.peer_id) is not None:
            if node.dialer is not None:
                node.dialer.drop(beacon.peer_id)
            node.emit(events.PeersChanged(node.clock.seconds()))

    def maybe_dial(self, info: PeerInfo) -> None:
        node = self.node
        if (node.dialer is None or node.leaving
                or not should_dial(node.peer_id, info.peer_id)
                or not node.neighbours.dial_now(info.peer_id)):
            return
        # A link we would refuse at once is not dialed (--secure-only and a base peer, a
        # pinned nick without a key): nor redialed while its beacons keep coming.
        plain = node.identity is None or CAP_TLS not in info.caps
        refusal = node.trust.refusal(info.username, "", info.fp) if plain else None
        if refusal is None and info.peer_id not in node.links:
            refusal = self.slot_refusal(info.peer_id, info.username, info.fp)
        if refusal is not None:
            log_limited(node.clock, log, "not dialed", LogLevel.info, "{peer} not dialed: {why}",
                        peer=info.peer_id, why=refusal)
            node.dialer.drop(info.peer_id)
            return
        node.dialer.want(info)

    def link_offered(self, peer_id: str, nick: str, fp: str) -> str | None:
        """A dialer's join came (before TLS): why we would refuse it, or None.  Refusing
        here, before the dialer's link is up, keeps both sides agreeing that it is not
        linked.  ``fp`` is only claimed yet: link_ready checks again once TLS proved it."""
        node = self.node
        if node.leaving:
            return "we are leaving"
        if peer_id == node.peer_id:
            return "it claims to be us"
        if peer_id in node.links:
            return None  # a replacement takes the slot of the link it replaces
        return node.neighbours.refusal(peer_id) or self.slot_refusal(peer_id, nick, fp)

    def slot_refusal(self, peer_id: str, nick: str, fp: str) -> str | None:
        """Why a new link to this peer would get no slot now, or None (slots.py)."""
        node = self.node
        known = node.standing.known(peer_id, nick, fp)
        strangers = len(node.links) - len(node.standing.known_links)
        return slot_refusal(known, len(node.links), strangers, node.max_links)

    def make_slot(self, link: PeerSession) -> None:
        """Every slot is taken and a known peer came (``link``, linked already): the newest
        stranger's link goes."""
        node = self.node
        strangers = [pid for pid in node.links if pid not in node.standing.known_links]
        newest = max(strangers, key=lambda pid: node.links[pid].linked_at)
        victim = node.links[newest]
        why = f"its slot went to {link.peer_id}, a known peer"
        self.refuse(victim, why)
        node.link_lost(victim.wire, why)

    def refuse(self, link: PeerSession, why: str) -> None:
        """Close a link we won't have; a peer of ours is told why first (mesh.refuse)."""
        log_limited(self.node.clock, log, "link refused", LogLevel.warn,
                    "link from {peer} ({address}) refused: {why}", peer=link.peer_id,
                    address=link.address, why=why)
        link.refuse(why)

    def moved_while_linked(self, peer_id: str, host: str) -> None:
        """A signed peer's newest beacons come from another host than the link we dialed
        (a newcomer can be led to a replayed beacon's sender first): that link is not
        trusted to stay; dial the address its beacons come from, whose link replaces it."""
        node = self.node
        link = node.links.get(peer_id)
        info = node.peers.get(peer_id)
        if (link is None or info is None or link.dialer_id != node.peer_id
                or link.address.rsplit(":", 1)[0] == host or node.dialer is None):
            return
        log_limited(node.clock, log, "moved while linked", LogLevel.warn,
                    "{peer}'s signed beacons come from {host}, but its link goes to "
                    "{address}: redialing it at {host}:{port}", peer=peer_id, host=host,
                    address=link.address, port=info.port)
        node.dialer.want(info)

    def _forget_peer(self, old: PeerInfo) -> None:
        """A table entry went (pushed out, or another peer at its address)."""
        node = self.node
        if node.dialer is not None:
            node.dialer.drop(old.peer_id)
        if old.peer_id not in node.links:
            node.left_room(old.peer_id)

    def sweep(self) -> None:
        """Forget peers silent too long; drop links that died quietly.  Called every second."""
        node = self.node
        now = node.clock.seconds()
        flush_logs(node.clock)
        # A peer of ours with a link up is alive by its link (heartbeats, IDLE_TIMEOUT): on a
        # saturated machine datagrams are lost first, and forgetting it for that, its next
        # beacon was news that half the room answered (a room of 100 never settled).
        gone = node.peers.sweep(now, alive=lambda pid: pid in node.links
                                and node.links[pid].ours)
        for info in gone:
            log_limited(node.clock, log, "forgotten", LogLevel.info,
                        "{peer} not heard for a while: forgotten", burst=50,
                        peer=info.peer_id)
            if node.dialer is not None:
                node.dialer.drop(info.peer_id)
            link = node.links.get(info.peer_id)
            if link is None:
                node.left_room(info.peer_id)
            elif not link.ours:
                link.close("its beacons stopped")
        forgotten = {info.peer_id for info in gone}
        for pid, link in list(node.links.items()):
            if (not link.ours and pid not in node.peers and pid not in forgotten
                    and now - link.linked_at > GONE_AFTER):
                link.close("it never announced itself")
        # A saturated machine (a room of 100 on 2 cores) reads late what came in time: its
        # links are given longer, as its handshakes and probes are (busy.py).
        factor = load_factor()
        for link in node.watch.idle(list(node.links.values()), now, factor):
            link.abort(f"silent for {IDLE_TIMEOUT * factor:.0f} s")
        changed = node.watch.liveness_changed({info.peer_id: info.liveness(now)
                                               for info in node.peers})
        for pid, nick in node.watch.settled(now, node.links):
            node.emit(events.PeerLeft(now, nick, pid, "connection lost"))
        if gone or changed:
            node.emit(events.PeersChanged(now))

    def probe(self, link: PeerSession) -> None:
        """Ask a peer of ours to answer on this link; drop the link if it doesn't in time."""
        node = self.node
        token = new_message_id()
        if not link.ours or not node.watch.probe(link.peer_id, token):
            return
        self._probe_timers[link.peer_id] = node.clock.callLater(
            PROBE_TIMEOUT * load_factor(), self._probe_rang, link, token, node.clock.seconds())
        link.send(node.sender.message(HEARTBEAT, "", metadata={"probe": token}))

    def _probe_rang(self, link: PeerSession, token: str, sent: float) -> None:
        """The verdict waits a reactor turn, so what already came is read first (as the
        handshake timer: a starved process finds its timers due before it reads)."""
        self._probe_timers[link.peer_id] = self.node.clock.callLater(
            0, self._probe_failed, link, token, sent)

    def _probe_failed(self, link: PeerSession, token: str, sent: float) -> None:
        node = self.node
        if link.last_heard > sent:  # anything heard since the probe: the link is alive
            if node.watch.answered(link.peer_id, token):
                self._probe_timers.pop(link.peer_id, None)
            return
        if link.unacked() == 0:
            # Its machine took every byte we wrote, the probe too: the peer is slow to read
            # (a saturated machine), not cut off.  The link stays (IDLE_TIMEOUT still watches
            # it); dropping it cost a redial and a TLS handshake (tcpinfo.py).
            if node.watch.answered(link.peer_id, token):
                self._probe_timers.pop(link.peer_id, None)
            log.debug("{peer}'s link did not answer a probe but its TCP took it: kept",
                      peer=link.peer_id)
            return
        if not node.watch.timed_out(link.peer_id, token):
            return
        self._probe_timers.pop(link.peer_id, None)
        if node.links.get(link.peer_id) is link:
            log.info("{peer} is back but its link does not answer: redialing", peer=link.peer_id)
            link.abort(f"no answer within {PROBE_TIMEOUT:.0f} s after a silence")

    def heartbeat_line(self, link: PeerSession, msg: Message) -> None:
        node = self.node
        meta = msg.metadata or {}
        probe, answer = meta.get("probe"), meta.get("answer")
        if isinstance(probe, str) and len(probe) <= 32 and link.ours:
            link.send(node.sender.message(HEARTBEAT, "", metadata={"answer": probe}))
        if isinstance(answer, str) and node.watch.answered(link.peer_id, answer):
            timer = self._probe_timers.pop(link.peer_id, None)
            if timer is not None and timer.active():
                timer.cancel()
