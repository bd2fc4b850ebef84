"""Lines through a partial mesh (issue 17), with real peers (``twistd -n p2pchat --ui lines``)
on hosts made of network namespaces wired as a graph (tests/netgraph.py: one cable per edge,
no route between hosts that share no cable):

- A - B - C: alice and carol can't reach each other; every line of each reaches the other
  exactly once through bob, under its author's nick; bob killed: they are shown gone to each
  other within 30 s; bob back: they come back and catch up what was said meanwhile.
- a chain of 5 and a ring of 5: every line reaches everyone exactly once.

Needs root and ``ip netns`` (skips otherwise); ``-m faults`` selects it with the fault tests.
"""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest

from tests import netns
from tests.netgraph import Graph, chain, ring
from tests.netns import NsPeer, chat_texts
from tests.support import fresh_multicast

pytestmark = pytest.mark.faults

#: process start, discovery, dialing, member lines going round (2 cores, shared)
MESH_TIMEOUT = 45.0
DELIVERY_TIMEOUT = 30.0
SETTLE = 2.0


def make(count: int, edges) -> Graph:
    reason = netns.why_unavailable()
    if reason:
        pytest.skip(reason)
    lab = Graph(count, edges)
    try:
        lab.create()
    except netns.LabError as e:
        pytest.skip(f"can't build the namespace lab here: {e}")
    return lab


def close(lab: Graph) -> None:
    lab.teardown()
    left = lab.leftovers()
    assert not left, f"namespaces left behind: {left}"


def users(peer: NsPeer, timeout: float = 5.0) -> list[str]:
    """The rows of ``/users`` (after its header line)."""
    mark = peer.mark()
    peer.send("/users")
    lines = peer.wait_for(lambda ls: any(" connected, " in x for x in ls), timeout, start=mark)
    start = next(i for i, x in enumerate(lines) if " connected, " in x)
    time.sleep(0.2)
    lines = peer.since(mark)[start:]
    return lines


def wait_reaching(peers: list[NsPeer], count: int, timeout: float) -> None:
    """Until each peer lists ``count`` others, linked or relayed."""
    deadline = time.monotonic() + timeout
    pending = list(peers)
    last: dict[str, list[str]] = {}
    while pending:
        for peer in list(pending):
            try:
                rows = users(peer)
            except AssertionError:
                continue
            last[peer.nick] = rows
            reached = [r for r in rows[1:] if re.search(r"\s(connected|relayed)\s", r)]
            if len(reached) >= count:
                pending.remove(peer)
        if pending and time.monotonic() > deadline:
            raise AssertionError("not every peer reached the others: " + "; ".join(
                f"{p.nick}: {last.get(p.nick)}" for p in pending) + "\n"
                + "\n".join(p.report() for p in peers))
        if pending:
            time.sleep(0.5)


def await_lines(peers: dict[str, NsPeer], said: dict[str, list[str]], starts=None,
                timeout: float = DELIVERY_TIMEOUT) -> None:
    """Until every peer showed every other's lines; then each exactly once, in order, under
    its author's nick."""
    starts = starts or {}

    def shown(peer: NsPeer) -> list[tuple[str, str]]:
        return chat_texts(peer.drain()[starts.get(peer.nick, 0):])

    def complete() -> bool:
        return all({(a, t) for a in said if a != nick for t in said[a]} <= set(shown(p))
                   for nick, p in peers.items())

    deadline = time.monotonic() + timeout
    while not complete() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(SETTLE)
    wrong = []
    for nick, peer in peers.items():
        got = shown(peer)
        counts = Counter(got)
        for author, texts in said.items():
            if author == nick:
                continue
            for t in texts:
                if counts[(author, t)] != 1:
                    wrong.append(f"{nick} showed {author}'s {t!r} {counts[(author, t)]} times")
            order = [t for a, t in got if a == author and t in texts]
            if order != [t for t in texts if t in order]:
                wrong.append(f"{nick} showed {author}'s lines out of order: {order}")
    if wrong:
        raise AssertionError("\n".join(wrong) + "\n"
                             + "\n".join(p.report() for p in peers.values()))


def test_a_b_c_through_b(tmp_path) -> None:
    lab = make(3, chain(3))
    try:
        group = fresh_multicast()
        nicks = {"alice": 1, "bob": 2, "carol": 3}
        peers = {n: lab.start_on(h, n, group, str(tmp_path / n)) for n, h in nicks.items()}
        wait_reaching(list(peers.values()), 2, MESH_TIMEOUT)
        alice, bob, carol = peers["alice"], peers["bob"], peers["carol"]
        rows = users(alice)
        assert any(re.search(r"carol\s+relayed\s.*via bob", r) for r in rows), rows
        assert not any(re.search(r"carol\s+connected", r) for r in rows), rows  # no route

        said = {"alice": [f"a-{k}" for k in range(5)], "carol": [f"c-{k}" for k in range(5)]}
        for k in range(5):
            alice.send(said["alice"][k])
            carol.send(said["carol"][k])
            time.sleep(0.05)
        await_lines({"alice": alice, "carol": carol}, said)
        assert [t for a, t in chat_texts(bob.drain()) if a == "alice"] == said["alice"]

        # bob dies: alice and carol are shown gone to each other within 30 s
        marks = {n: peers[n].mark() for n in ("alice", "carol")}
        killed = time.monotonic()
        bob.kill()
        lab.peers.remove(bob)
        for nick, other in (("alice", "carol"), ("carol", "alice")):
            peers[nick].wait_for(lambda ls, o=other: any(
                re.search(rf"\* {o} left \(no longer reached\)", x) for x in ls),
                35.0, start=marks[nick])
        assert time.monotonic() - killed <= 32.0  # 30 s, and the polling
        # said while bob is down: nobody can carry them yet
        alice.send("a-while")
        carol.send("c-while")
        time.sleep(1.0)

        # bob is back (same data dir): they come back and catch up
        starts = {n: peers[n].mark() for n in ("alice", "carol")}
        bob = peers["bob"] = lab.start_on(2, "bob", group, str(tmp_path / "bob"))
        for nick, other in (("alice", "carol"), ("carol", "alice")):
            peers[nick].wait_for(lambda ls, o=other: any(
                re.search(rf"\* {o} joined", x) for x in ls), MESH_TIMEOUT,
                start=starts[nick])
        await_lines({"alice": alice, "carol": carol},
                    {"alice": ["a-while"], "carol": ["c-while"]}, starts=starts)
    finally:
        close(lab)


@pytest.mark.parametrize("shape", ["chain", "ring"])
def test_five_every_line_once(tmp_path, shape) -> None:
    lab = make(5, chain(5) if shape == "chain" else ring(5))
    try:
        group = fresh_multicast()
        nicks = [f"p{i}" for i in range(1, 6)]
        peers = {n: lab.start_on(i, n, group, str(tmp_path / n))
                 for i, n in enumerate(nicks, start=1)}
        wait_reaching(list(peers.values()), 4, MESH_TIMEOUT)
        said = {n: [f"{n}-{k}" for k in range(4)] for n in nicks}
        for k in range(4):
            for n in nicks:
                peers[n].send(said[n][k])
            time.sleep(0.05)
        await_lines(peers, said)
    finally:
        close(lab)
