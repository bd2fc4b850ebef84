"""Who is around, for the node: our beacons and the peers' (discovery.py carries them), the
peer table, dialing, sweeping out the silent, and probing a link whose peer's beacons came
back after a silence (linkwatch.py keeps the bookkeeping).

A signed beacon must be signed by the key its peer id comes from, and newer than the last one
(a replay from elsewhere can't move a peer); a peer once heard signing is never believed
unsigned again; a leave datagram is not believed against a live link.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.logger import Logger

from p2pchat import events
from p2pchat.clocks import Delayed
from p2pchat.identity import beacon_payload, peer_id_for, verify_beacon
from p2pchat.linkwatch import IDLE_TIMEOUT, PROBE_TIMEOUT
from p2pchat.peers import GONE_AFTER, Heard, Liveness, should_dial
from p2pchat.wire import HEARTBEAT, LEAVE, Beacon, format_time, is_fresh, new_message_id

if TYPE_CHECKING:
    from p2pchat.node import Node
    from p2pchat.peers import PeerInfo
    from p2pchat.session import PeerSession
    from p2pchat.wire import Message

log = Logger()


class Presence:
    """The beacon side of one node (``node``)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._full_warned = False
        #: the timers of the probes in flight
        self._probe_timers: dict[str, Delayed] = {}

    def stop(self) -> None:
        """We leave: no probe is waited for any more."""
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
                      pk=node.identity.public_key_b64(), sig=node.identity.sign(payload))

    def heard(self, beacon: Beacon, host: str) -> None:
        node = self.node
        if beacon.peer_id == node.peer_id:
            return
        now = node.clock.seconds()
        if not is_fresh(beacon, now):
            log.debug("old beacon from {host} ({peer}) ignored", host=host, peer=beacon.peer_id)
            return
        if not self._trusted(beacon, host):
            return
        if beacon.type == LEAVE:
            self._leave(beacon, host)
            return
        before = node.peers.get(beacon.peer_id)
        was_quiet = before is None or before.liveness(now) is not Liveness.ALIVE
        heard = node.peers.heard(beacon, host, now)
        if was_quiet and beacon.peer_id in node.links:
            self.probe(node.links[beacon.peer_id])
        if heard is Heard.FULL:
            if not self._full_warned:
                log.warn("peer table full ({n} peers): new peers ignored", n=len(node.peers))
                self._full_warned = True
            return
        if heard is Heard.IGNORED:
            return
        if heard in (Heard.NEW, Heard.MOVED):
            for old in node.peers.evict_address(beacon.peer_id, host, beacon.port,
                                                signed=bool(beacon.fp)):
                log.info("{old} was at {host}:{port}, where {new} now is: forgotten",
                         old=old.peer_id, new=beacon.peer_id, host=host, port=beacon.port)
                if node.dialer is not None:
                    node.dialer.drop(old.peer_id)
                if old.peer_id not in node.links:
                    node.left_room(old.peer_id)
        if heard is Heard.NEW:
            log.info("discovered {peer} at {host}:{port}", peer=beacon.peer_id, host=host,
                     port=beacon.port)
            if node.announcer is not None:
                node.announcer.reply_soon()  # so the newcomer learns of us at once
            node.emit(events.PeersChanged(now))
        info = node.peers.get(beacon.peer_id)
        if info is not None and beacon.peer_id not in node.links:
            self.maybe_dial(info)

    def _trusted(self, beacon: Beacon, host: str) -> bool:
        """A signed beacon must carry a valid signature by the key its id is derived from; a
        peer once heard signing is never again believed unsigned; and a signed beacon must be
        newer than the last one (a replay from elsewhere can't move a peer's address)."""
        node = self.node
        if beacon.fp or beacon.sig or beacon.pk:
            payload = beacon_payload(beacon.type, beacon.peer_id, beacon.username, beacon.port,
                                     beacon.stamp, beacon.fp)
            if (beacon.peer_id != peer_id_for(beacon.fp)
                    or not verify_beacon(beacon.pk, beacon.sig, payload, beacon.fp)):
                log.info("beacon for {peer} from {host} with a bad signature ignored",
                         peer=beacon.peer_id, host=host)
                return False
        known = node.peers.get(beacon.peer_id)
        if known is not None and known.fp:
            if beacon.fp != known.fp:
                log.info("unsigned beacon for {peer} (which signs) from {host} ignored",
                         peer=beacon.peer_id, host=host)
                return False
            if beacon.timestamp <= known.last_stamp:
                log.debug("replayed beacon for {peer} from {host} ignored",
                          peer=beacon.peer_id, host=host)
                return False
        return True

    def _leave(self, beacon: Beacon, host: str) -> None:
        node = self.node
        link = node.links.get(beacon.peer_id)
        if link is not None and not link.said_leave:
            # A datagram anyone could forge against a live connection: trust the connection.
            log.info("leave datagram for {peer} from {host} ignored: its link is up",
                     peer=beacon.peer_id, host=host)
            return
        if node.peers.left(beacon.peer_id) is not None:
            if node.dialer is not None:
                node.dialer.drop(beacon.peer_id)
            node.emit(events.PeersChanged(node.clock.seconds()))

    def maybe_dial(self, info: PeerInfo) -> None:
        node = self.node
        if (node.dialer is not None and not node.leaving
                and should_dial(node.peer_id, info.peer_id)):
            node.dialer.want(info)

    def sweep(self) -> None:
        """Forget peers silent too long; drop links that died quietly.  Called every second."""
        node = self.node
        now = node.clock.seconds()
        gone = node.peers.sweep(now)
        for info in gone:
            log.info("{peer} not heard for a while: forgotten", peer=info.peer_id)
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
        for link in node.watch.idle(list(node.links.values()), now):
            link.abort(f"silent for {IDLE_TIMEOUT:.0f} s")
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
            PROBE_TIMEOUT, self._probe_failed, link, token)
        link.send(node.sender.message(HEARTBEAT, "", metadata={"probe": token}))

    def _probe_failed(self, link: PeerSession, token: str) -> None:
        node = self.node
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
