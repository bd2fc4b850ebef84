"""The link cap with real peers (``twistd -n p2pchat --ui lines --links 4``) on loopback: 16
peers, more than a full mesh (neighbours.FULL_MESH_UP_TO), so each links to a few and reaches
the rest through them: every peer lists every other (``/users``: connected or relayed), shows
each joining once and none leaving, keeps at most 2 x 4 links, and a line from each reaches
everyone exactly once."""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest

from tests.processes import PeerProcess
from tests.support import fresh_multicast

COUNT = 16
LINKS = 4
#: 16 processes starting on 2 shared cores, then discovery, links, member lines going round
MESH_TIMEOUT = 60.0
DELIVERY_TIMEOUT = 20.0
PRUNE_TIMEOUT = 35.0

JOINED = re.compile(r"^\d\d:\d\d:\d\d \* (\S+) joined( \(via \S+\))?$")
USERS = re.compile(r"(\d+) connected, (\d+) known; you are ")
ROW = re.compile(r"\s(p\d\d)\s+(connected|relayed)\s")


def joined(peer: PeerProcess) -> Counter[str]:
    peer._drain()
    return Counter(m.group(1) for m in map(JOINED.match, peer.lines) if m)


def users(peer: PeerProcess) -> tuple[int, set[str]]:
    """``/users``: how many peers it links to, and whom it lists (connected or relayed)."""
    start = len(peer.lines)
    peer.send("/users")
    peer.wait_for(lambda ls: any(USERS.search(x) for x in ls[start:]), 10)
    time.sleep(0.3)
    peer._drain()
    lines = peer.lines[start:]
    head = next(i for i, x in enumerate(lines) if USERS.search(x))
    m = USERS.search(lines[head])
    assert m is not None
    rows = {r.group(1) for r in map(ROW.search, lines[head + 1:]) if r}
    return int(m.group(1)), rows


@pytest.fixture
def room(tmp_path):
    group = fresh_multicast()
    nicks = [f"p{i:02d}" for i in range(COUNT)]
    peers = [PeerProcess(n, group, str(tmp_path / n), "--links", str(LINKS)) for n in nicks]
    yield peers
    for peer in peers:
        peer.stop()


def test_sixteen_peers_with_four_links_each(room) -> None:
    nicks = {p.nick for p in room}
    deadline = time.monotonic() + MESH_TIMEOUT
    for peer in room:
        peer.wait_for(lambda ls, p=peer: set(joined(p)) >= nicks - {p.nick},
                      max(1.0, deadline - time.monotonic()))
    for peer in room:
        counts = joined(peer)
        assert set(counts) == nicks - {peer.nick}, peer.nick
        assert set(counts.values()) == {1}, (peer.nick, counts)  # each join told once
        linked, listed = users(peer)
        assert listed == nicks - {peer.nick}, (peer.nick, listed)
    # a starting peer dials the first dozen it hears (a full mesh) until the room is larger:
    # the links no end wants are pruned 15-20 s later (neighbours.PRUNE_AFTER, DRAIN_FOR)
    deadline = time.monotonic() + PRUNE_TIMEOUT
    for peer in room:
        while True:
            linked, listed = users(peer)
            if linked <= 2 * LINKS or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        assert 1 <= linked <= 2 * LINKS, (peer.nick, linked)
        assert listed == nicks - {peer.nick}, (peer.nick, listed)  # still, after pruning
    for peer in room:
        peer.send(f"hello from {peer.nick}")

    def shown(peer: PeerProcess) -> Counter[str]:
        peer._drain()
        return Counter(x.split("> ", 1)[1] for x in peer.lines if re.match(
            r"^\d\d:\d\d:\d\d <p\d\d> hello from ", x) and f"<{peer.nick}>" not in x)

    deadline = time.monotonic() + DELIVERY_TIMEOUT
    for peer in room:
        want = {f"hello from {n}" for n in nicks - {peer.nick}}
        peer.wait_for(lambda ls, p=peer, w=want: set(shown(p)) >= w,
                      max(1.0, deadline - time.monotonic()))
    time.sleep(1.0)  # a second copy, if any, would show by now
    for peer in room:
        counts = shown(peer)
        assert set(counts) == {f"hello from {n}" for n in nicks - {peer.nick}}, peer.nick
        assert set(counts.values()) == {1}, (peer.nick, counts)
        assert not [x for x in peer.lines if re.search(r"\* p\d\d left", x)], peer.nick
