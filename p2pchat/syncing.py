"""Catching a peer up when its link comes up (catchup.py's sync and ack lines) and handing on
the lines of authors who are not here (relay.py), for the node.

On a new link a catch-up peer is told how far we have its lines; its sync says how far it has
ours (the outbox then says where its cursor starts) and which other authors' lines it lacks,
which we hand on from the history as the peer reads, a turn's worth at a time.  Acks are sent
shortly after lines come (one per burst) and clear the delivery marks of what we said.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.logger import Logger, LogLevel

from p2pchat import events
from p2pchat.clocks import Delayed, log_limited
from p2pchat.checking import RelayChecks
from p2pchat.catchup import ACK_DELAY, parse_ack, parse_sync, sync_metadata
from p2pchat.gossip import AuthorId, hops_of
from p2pchat.runsig import is_run_raw
from p2pchat.relay import (
    MEMBER,
    RELAY,
    RELAY_STEP_LINES,
    RELAY_TURN_BYTES,
    RELAY_TURN_SECONDS,
    HandOn,
    check_relayed,
    relay_batches,
    relayed_of,
)
from p2pchat.wire import ACK, SYNC, Message, WireError, encode_message, parse_message

if TYPE_CHECKING:
    from p2pchat.catchup import Sync
    from p2pchat.node import Node
    from p2pchat.session import PeerSession

log = Logger()


class CatchUp:
    """The catch-up and hand-on side of one node (``node``)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        #: the ack waiting to go to each peer (one per burst of its lines)
        self._ack_calls: dict[str, Delayed] = {}
        #: relayed lines waiting for their signatures to be checked, in steps
        self.checks = RelayChecks(node.clock, self.check_relayed)

    def stop(self) -> None:
        """We leave: no more acks (the next sync, when we are back, says the same)."""
        for call in self._ack_calls.values():
            if call.active():
                call.cancel()
        self._ack_calls.clear()

    def start(self, link: PeerSession) -> None:
        """A new link: a catch-up peer is told how far we have its lines, and new lines wait
        (in the sent log) until its sync says how far it has ours.  Others get lines at once."""
        node = self.node
        node.away.pop(link.peer_id, None)
        link.cursor = node.outbox.sequence
        if link.rooms:
            link.send(node.rooms_message())  # before the sync: resends depend on our rooms
        if not link.catchup:
            link.synced = True
            return
        link.synced = False
        link.sync_point = node.outbox.sequence
        have = node.room.high_water.get(link.peer_id)
        others = None
        if link.relay:
            others = {s: h for s, h in node.forwarder.relayed_high.items()
                      if s != link.peer_id and s not in node.room.high_water}
            others.update((s, h) for s, h in node.room.high_water.items() if s != link.peer_id)
        members = node.forwarder.members.versions() if link.gossip else None
        link.send(node.sender.message(SYNC, "", sequenced=False, metadata=sync_metadata(
            node.outbox.sequence, have, others, members)))

    def line(self, link: PeerSession, msg: Message) -> None:
        node = self.node
        if not link.catchup:
            log_limited(node.clock, log, "catch-up unannounced", LogLevel.debug,
                        "{peer} sent {kind} without announcing catch-up: ignored",
                        peer=link.peer_id, kind=msg.type)
            return
        try:
            if msg.type == SYNC:
                state = self.hand_on_state(link)
                now = node.clock.seconds()
                if not state.allow_sync(now):
                    if state.should_log_refusal(now):
                        log.warn("{peer} sends sync lines too often: the extra ones ignored",
                                 peer=link.peer_id)
                    return
                self.synced(link, parse_sync(msg))
            else:
                self.acked(link, parse_ack(msg))
        except WireError as e:
            log_limited(node.clock, log, "bad sync or ack", LogLevel.warn,
                        "bad {kind} from {peer} skipped: {why}", kind=msg.type,
                        peer=link.peer_id, why=str(e))

    def synced(self, link: PeerSession, sync: Sync) -> None:
        # Lines it said before we were in the room are not ours to have; from now on we are
        # in its room, also across our restarts (so it resends what we miss while away).
        node = self.node
        if link.peer_id not in node.room.high_water:
            node.room.high_water[link.peer_id] = sync.sent
            node.store.set_high_water(link.peer_id, sync.sent)
        start = node.outbox.sync_start(link.peer_id, sync.have, link.sync_point,
                                       node.clock.seconds())
        link.cursor = start
        if start < node.outbox.sequence:
            log.info("{peer} lacks {n} of our lines: resending", peer=link.peer_id,
                     n=node.outbox.sequence - start)
        node.forwarder.members.synced(link, sync.members)  # (if they wait for its sync)
        link.synced = True
        if sync.have is not None:
            self.acked(link, sync.have)
        node.sender.pump(link)
        if sync.others and link.relay:
            link.has = dict(sync.others)
            self.relay_to(link, sync.others)
        node.forwarder.pump(link)  # what came for it since it linked, after the hand-on

    def hand_on_state(self, link: PeerSession) -> HandOn:
        node = self.node
        state = link.hand_on
        if state is None:
            state = link.hand_on = HandOn(node.clock.seconds())
        return state

    def relay_to(self, link: PeerSession, others: dict[str, int]) -> None:
        """Hand on the signed lines of authors that are not here now, which the peer lacks
        (it said how far it has each author), in the rooms it is in.  This replaces what was
        still to hand on to it; the lines go by ``_pump_relay``, as the peer reads."""
        node = self.node
        wanted = {author: have for author, have in others.items()
                  if author not in (node.peer_id, link.peer_id)}
        state = self.hand_on_state(link)
        state.replace(wanted, sorted(node.rooms.rooms_of_peer(link.peer_id)),
                      node.clock.seconds() - node.outbox.log.max_age, node.outbox.log.max_lines)
        self.pump_relay(link)

    def pump_relay(self, link: PeerSession) -> None:
        """Write to ``link`` the next of what it is to be handed on: in steps of
        RELAY_STEP_LINES, only while its peer reads (not ``backed_up``), RELAY_TURN_BYTES (and
        RELAY_TURN_SECONDS, within what is left of the turn's shared budget, turn.py) at most
        per reactor turn (then it goes on at the next turn)."""
        node = self.node
        state = link.hand_on
        if state is None or state.scheduled or not state.pending:
            return
        written = 0
        turn = self.checks.turn  # the reactor turn's budget, every stepped job's (turn.py)
        timer = turn.timer
        deadline = min(timer() + RELAY_TURN_SECONDS, turn.deadline())
        while state.pending:
            if link.backed_up or node.links.get(link.peer_id) is not link:
                return  # link_writable brings us back
            if written >= RELAY_TURN_BYTES:  # the bytes' bound: the next turn, at once
                state.scheduled = True
                node.clock.callLater(0, self._next_turn, link)
                return
            # the turn's budget spent, or a burst's rows behind (made a step a turn, not all
            # at once by the read): on with the jobs that wait for the next turn
            if timer() > deadline or not node.store.rows_step():
                state.scheduled = True
                turn.next(lambda: self._next_turn(link))
                return
            author = next(iter(state.pending))
            after, left = state.pending[author]
            rows = [] if node.forwarder.author_linked_to(link, author) else (
                node.store.relayable_after(author, after, state.rooms,
                                           min(RELAY_STEP_LINES, left), state.since))
            if not rows:  # done with it (an author linked to it resends its own lines)
                del state.pending[author]
                continue
            if not link.runsig:  # it takes no run-signed line (runsig.py): they are skipped
                kept = [row for row in rows if not is_run_raw(row[1])]
                if not kept:
                    state.pending[author] = [rows[-1][0], left]
                    continue
                rows = kept
            for metadata, last, count in relay_batches(
                    [(seq, raw, author, key) for seq, raw, key in rows]):
                if link.backed_up:
                    return
                data = encode_message(node.sender.message(RELAY, "", metadata=metadata))
                link.send_bytes(data)
                written += len(data)
                state.sent += count
                left -= count
                state.pending[author] = [last, left]
            if left <= 0:
                del state.pending[author]
        if state.sent:
            log.info("handed on {n} lines of absent authors to {peer}", n=state.sent,
                     peer=link.peer_id)
            state.sent = 0

    def _next_turn(self, link: PeerSession) -> None:
        state = link.hand_on
        if state is not None:
            state.scheduled = False
            self.pump_relay(link)

    def relayed(self, link: PeerSession, msg: Message) -> None:
        """Lines of other authors handed on by ``link``'s peer: shown only if signed by their
        author's key (the one its peer id comes from)."""
        node = self.node
        if not link.relay or node.leaving:
            return  # leaving: not shown any more (see message_received)
        try:
            pairs = relayed_of(msg, lambda author, seq: self._had(link, author, seq))
        except WireError as e:
            log_limited(node.clock, log, "bad relay line", LogLevel.warn,
                        "bad relay line from {peer} skipped: {why}", peer=link.peer_id,
                        why=str(e))
            return
        hops = hops_of(msg.metadata)
        # Handed on at catch-up (no hop count): not news, and one hop from its hander.
        replayed, hops = hops is None, 1 if hops is None else hops
        self.checks.add(link, [(raw, key, hops, replayed) for raw, key in pairs])  # in steps

    def _had(self, link: PeerSession, author: str, seq: int) -> bool:
        """Whether we have this line of ``author`` (then it is not forwarded to ``link``)."""
        if (author, seq) not in self.node.room.seqs:
            return False
        self.node.forwarder.log.had_by((AuthorId(author), seq), link.peer_id)
        return True

    def check_relayed(self, link: PeerSession, raw: bytes, key: str, hops: int = 1,
                      replayed: bool = True) -> None:
        """One line ``link``'s peer handed on: shown (and forwarded on, gossip.py) if its
        author's signature checks out; ``hops``: how far it came, ``replayed``: handed on at
        catch-up rather than live."""
        node = self.node
        if node.leaving:
            return
        try:
            parsed = parse_message(raw)
            if parsed.sender_id == node.peer_id:
                return  # our own, come back
            if parsed.sequence and (parsed.sender_id, parsed.sequence) in node.room.seqs:
                # had it (a copy by another path): no signature to check, not forwarded back
                node.forwarder.duplicate(parsed, link)
                return
            relayed = check_relayed(raw, key, parsed)
        except WireError as e:
            log_limited(node.clock, log, "relayed line refused", LogLevel.warn,
                        "a line {peer} handed on was refused: {why}", peer=link.peer_id,
                        why=str(e))
            return
        line = relayed.msg
        if line.type == MEMBER:
            node.forwarder.member(line, relayed.fp, link, raw, key, hops)
            return
        if line.room_id not in node.rooms.joined:
            return
        # A relayer has only some of an author's lines (its rooms): they don't tell how
        # far we have that author, so the author still resends whatever we lack.
        if not node.room.accept(line, advance=False):
            node.forwarder.duplicate(line, link)
            return  # already had it
        nick = node.trust.display(line.username or line.sender_id, relayed.fp)
        node.hearing.show_line(line, nick, line.room_id, "", node.clock.seconds(), (raw, key),
                               via=link, replayed=replayed)
        node.forwarder.relayed_line(line)
        node.forwarder.spread(raw, key, line, link, hops)

    def acked(self, link: PeerSession, have: int) -> None:
        node = self.node
        now = node.clock.seconds()
        delivered, emit = events.Delivered, node.emit
        for message_id in node.delivery.acked(link.peer_id, have):
            emit(delivered(now, message_id))
        node.sealing.acked(link.peer_id, have)

    def schedule_ack(self, link: PeerSession) -> None:
        node = self.node
        call = self._ack_calls.get(link.peer_id)
        if call is None or not call.active():
            self._ack_calls[link.peer_id] = node.clock.callLater(ACK_DELAY, self.send_ack,
                                                                 link.peer_id)

    def send_ack(self, peer_id: str) -> None:
        """Ack on whatever link to the peer is up now (the one that got the lines may be gone;
        if none is, the next sync says the same)."""
        node = self.node
        self._ack_calls.pop(peer_id, None)
        link = node.links.get(peer_id)
        if link is not None:
            have = node.room.high_water.get(peer_id, 0)
            link.send(node.sender.message(ACK, "", sequenced=False, metadata={"have": have}))
