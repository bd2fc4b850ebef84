"""Three whole peers in one reactor, real sockets on loopback: discovery, a full mesh with one
connection per pair, messages delivered exactly once, a stop seen by the others, a rejoin."""

from __future__ import annotations

import pytest_twisted

from twisted.internet import reactor
from twisted.internet.task import deferLater

from p2pchat import events
from p2pchat.node import FLAP_WINDOW
from tests.support import InProcessPeer, fresh_multicast, wait_for


def connections(peer: InProcessPeer) -> int:
    """Open TCP connections of a peer, handshaken or not."""
    return len(peer.service.server.open) + len(peer.service.dialer.outgoing)


def lines(peer: InProcessPeer) -> list[tuple[str, str]]:
    return [(e.nick, e.text) for e in peer.events
            if isinstance(e, events.ChatLine) and not e.own]


@pytest_twisted.ensureDeferred
async def test_three_peers_mesh_chat_leave_rejoin() -> None:
    group = fresh_multicast()
    peers = [InProcessPeer(nick, group) for nick in ("alice", "bob", "carol")]
    try:
        for peer in peers:
            await peer.start()
        await wait_for(lambda: all(len(p.node.links) == 2 for p in peers), timeout=5)
        await wait_for(lambda: all(connections(p) == 2 for p in peers), timeout=3)
        # exactly one connection per pair: both ends of each link are the same socket pair
        for peer in peers:
            for link in peer.node.links.values():
                assert link.wire.transport.getHost().port in {
                    other.node.links[peer.node.peer_id].wire.transport.getPeer().port
                    for other in peers if other is not peer}

        for peer in peers:
            peer.node.say(f"hello from {peer.node.nick}")
        await wait_for(lambda: all(len(lines(p)) == 2 for p in peers), timeout=5)
        for peer in peers:
            others = sorted(f"hello from {o.node.nick}" for o in peers if o is not peer)
            assert sorted(text for _, text in lines(peer)) == others

        carol = peers.pop()
        await carol.stop()
        await wait_for(lambda: all(
            any(isinstance(e, events.PeerLeft) and e.nick == "carol" for e in p.events)
            for p in peers), timeout=5)
        for peer in peers:
            left = [e for e in peer.events if isinstance(e, events.PeerLeft)]
            assert [(e.nick, e.reason) for e in left] == [("carol", None)]
            assert len(peer.node.links) == 1

        again = InProcessPeer("carol", group)
        peers.append(again)
        await again.start()
        await wait_for(lambda: all(len(p.node.links) == 2 for p in peers), timeout=5)
        again.node.say("back again")
        await wait_for(lambda: all(("carol", "back again") in lines(p) for p in peers[:2]),
                       timeout=5)
        for peer in peers[:2]:
            assert lines(peer).count(("carol", "back again")) == 1
    finally:
        for peer in peers:
            await peer.stop()


@pytest_twisted.ensureDeferred
async def test_dropped_connection_is_shown_and_redialed() -> None:
    group = fresh_multicast()
    a, b = InProcessPeer("alice", group), InProcessPeer("bob", group)
    try:
        await a.start()
        await b.start()
        await wait_for(lambda: len(a.node.links) == 1 and len(b.node.links) == 1, timeout=5)
        # a fresh link that drops and comes back at once is not shown as a leave and a join
        next(iter(a.node.links.values())).wire.transport.abortConnection()
        await deferLater(reactor, 0.05, lambda: None)
        await wait_for(lambda: len(a.node.links) == 1 and len(b.node.links) == 1, timeout=5)
        await deferLater(reactor, FLAP_WINDOW + 0.5, lambda: None)
        assert not any(isinstance(e, (events.PeerLeft)) for e in b.events)
        assert len([e for e in b.events if isinstance(e, events.PeerJoined)]) == 1
        # an older link that drops is shown at once
        next(iter(a.node.links.values())).wire.transport.abortConnection()
        await wait_for(lambda: any(isinstance(e, events.PeerLeft) for e in b.events), timeout=5)
        left = [e for e in b.events if isinstance(e, events.PeerLeft)]
        assert left[0].reason == "connection lost"
        # the dialer side redials at once (both still announce)
        await wait_for(lambda: len(a.node.links) == 1 and len(b.node.links) == 1, timeout=5)
        a.node.say("after the cut")
        await wait_for(lambda: ("alice", "after the cut") in lines(b), timeout=5)
    finally:
        await a.stop()
        await b.stop()
