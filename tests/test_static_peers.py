"""Static peers (issue 18, item 1) across a router: two hosts on two subnets, routed to each
other, with no multicast between them (tests/netns.py ``RoutedLab``): on one multicast group
they don't find each other; ``--peer`` links them; they chat both ways; a peer that restarts
catches up on what was said meanwhile; the static peer is kept in the data dir (a restart
without --peer relinks), /contacts shows it, /disconnect forgets it.

Needs root and ``ip netns``; skips with the reason otherwise.
"""

from __future__ import annotations

import time

import pytest

from p2pchat.discovery import ANNOUNCE_INTERVAL
from tests import netns
from tests.netns import NsPeer, RoutedLab, chat_texts
from tests.support import fresh_multicast

#: bob listens here (alice's --peer names it)
BOB_PORT = 8765
LINK_TIMEOUT = 40.0


@pytest.fixture(scope="module")
def routed():
    reason = netns.why_unavailable()
    if reason:
        pytest.skip(reason)
    lab = RoutedLab()
    try:
        lab.create()
    except netns.LabError as e:
        pytest.skip(f"can't build the routed lab here: {e}")
    try:
        yield lab
    finally:
        lab.teardown()
        assert not lab.leftovers(), f"namespaces left behind: {lab.leftovers()}"


def says(peer: NsPeer, nick: str, text: str, timeout: float = LINK_TIMEOUT, start: int = 0):
    return peer.wait_for(lambda ls: (nick, text) in chat_texts(ls), timeout, start)


def linked(peer: NsPeer, other: str, timeout: float = LINK_TIMEOUT) -> None:
    """Until /contacts on ``peer`` says ``other``'s address is linked."""
    deadline = time.monotonic() + timeout
    while True:
        mark = peer.mark()
        peer.send("/contacts")
        try:
            lines = peer.wait_for(lambda ls: any(" Tor: " in x for x in ls), 5.0, mark)
        except AssertionError:
            lines = []
        if any(other in x and "linked" in x and "not linked" not in x for x in lines):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{peer.nick}: {other} not linked in {timeout:.0f} s\n"
                                 + "\n".join(lines) + "\n" + peer.report())
        time.sleep(0.5)


def test_static_peers_across_a_router(routed, tmp_path) -> None:
    h1, h2 = routed.hosts
    bob_at = f"{h2.address}:{BOB_PORT}"
    alice_dir, bob_dir = str(tmp_path / "alice"), str(tmp_path / "bob")
    group = fresh_multicast()
    bob = routed.start_peer(h2, "bob", group, bob_dir, "--port", str(BOB_PORT))
    # On one multicast group, but the router does not carry multicast: no beacon crosses.
    alice = routed.start_peer(h1, "alice", group, alice_dir)
    time.sleep(2 * ANNOUNCE_INTERVAL + 1)
    mark = alice.mark()
    alice.send("/users")
    users = alice.wait_for(lambda ls: any(" connected, " in x for x in ls), 10.0, mark)
    assert any(" 0 connected, 0 known" in x for x in users), users
    alice.send("/quit")
    alice.proc.wait(15)

    alice = routed.start_peer(h1, "alice", group, alice_dir, "--peer", bob_at)
    linked(alice, bob_at)

    alice.send("hello over the router")
    says(bob, "alice", "hello over the router")
    bob.send("hello back")
    says(alice, "bob", "hello back")

    # bob goes (a goodbye) and comes back: alice redials it; what she said meanwhile reaches
    # it by catch-up.
    bob.send("/quit")
    bob.proc.wait(15)
    alice.send("said while bob was away")
    bob = routed.start_peer(h2, "bob", fresh_multicast(), bob_dir, "--port", str(BOB_PORT))
    says(bob, "alice", "said while bob was away", timeout=60.0)

    # alice restarts without --peer: bob is kept in her data dir, and relinked.
    alice.send("/quit")
    alice.proc.wait(15)
    alice = routed.start_peer(h1, "alice", fresh_multicast(), alice_dir)
    linked(alice, bob_at, timeout=60.0)
    mark = bob.mark()
    alice.send("after alice's restart")
    says(bob, "alice", "after alice's restart", start=mark)

    # /disconnect forgets it: the link goes, and a restart does not bring it back.
    mark = alice.mark()
    alice.send(f"/disconnect {bob_at}")
    alice.wait_for(lambda ls: any("forgot" in x for x in ls), 10.0, mark)
    mark = alice.mark()
    alice.send("/contacts")
    lines = alice.wait_for(lambda ls: any(" Tor: " in x for x in ls), 10.0, mark)
    assert not any(bob_at in x for x in lines), lines
