"""End to end: a line just received is found by /search at once, before the index would have
taken it on its own (index.INDEX_DELAY after its commit): the search indexes what waits
first.  Two ``twistd -n p2pchat --ui lines`` processes on loopback."""

from __future__ import annotations

import pytest

from tests.processes import PeerProcess
from tests.support import fresh_multicast


@pytest.fixture
def pair(tmp_path):
    group = fresh_multicast()
    peers = {n: PeerProcess(n, group, str(tmp_path / n)) for n in ("alice", "bob")}
    yield peers
    for peer in peers.values():
        peer.stop()


def test_a_line_just_received_is_found_at_once(pair) -> None:
    alice, bob = pair["alice"], pair["bob"]
    for peer in (alice, bob):
        peer.wait_for(lambda lines: any(" joined" in line for line in lines))
    for n in range(20):
        alice.send(f"zanzibar line {n}")
    bob.wait_line("<alice> zanzibar line 19")
    bob.send("/search zanzibar")  # within a second of the lines: not indexed yet on its own
    bob.wait_line("search zanzibar: 20 lines, newest first")
    bob.wait_line("<alice> zanzibar line 0")
