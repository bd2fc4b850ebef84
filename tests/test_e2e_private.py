"""End to end: private lines typed in ``/query bob`` after bob's ``/quit`` (at +1 s, while its
shutdown still holds the link; at +2 s, as it exits; at +4 s, once it is gone) are kept by
alice, shown to bob exactly once when he is back, and told delivered to alice then."""

from __future__ import annotations

import time

from tests.processes import PeerProcess
from tests.support import fresh_multicast

TIMINGS = (1.0, 2.0, 4.0)


def test_private_lines_after_a_quit_reach_the_peer_once_back(tmp_path) -> None:
    group = fresh_multicast()
    alice = PeerProcess("alice", group, str(tmp_path / "alice"))
    bob = PeerProcess("bob", group, str(tmp_path / "bob"))
    again = None
    try:
        alice.wait_line("* bob joined")
        bob.wait_line("* alice joined")
        alice.send("/query bob")
        alice.wait_line("talking privately with bob")
        bob.send("/quit")
        quit_at = time.monotonic()
        for delay in TIMINGS:
            time.sleep(max(0.0, quit_at + delay - time.monotonic()))
            alice.send(f"typed at +{delay:.0f} s")
        assert bob.proc.wait(10) == 0

        again = PeerProcess("bob", group, str(tmp_path / "bob"))
        again.wait_line("* alice joined", timeout=15)
        wanted = [f"typed at +{delay:.0f} s" for delay in TIMINGS]
        try:
            again.wait_for(lambda lines: all(any(f"[private] <alice> {w}" in line
                                                 for line in lines) for w in wanted))
            alice.wait_for(lambda lines: all(any(f"- delivered to bob: {w}" in line
                                                 for line in lines) for w in wanted))
        except AssertionError:
            pass  # the outcome of each timing is checked below, all at once
        time.sleep(0.5)  # time for a wrong second showing
        outcome = {w: (alice.count(f"[private to bob] <alice> {w}"),
                       again.count(f"[private] <alice> {w}"), bob.count(w),
                       alice.count(f"- delivered to bob: {w}")) for w in wanted}
        # said, shown once to bob when back (never to the bob that was leaving), told delivered
        assert outcome == {w: (1, 1, 0, 1) for w in wanted}, (
            outcome, "\nalice:\n" + "\n".join(alice.lines)
            + "\nbob back:\n" + "\n".join(again.lines))
        assert alice.count("bob is away: the line is kept and sent when bob is back") == 1
        assert alice.count("no linked peer") == 0 and alice.count("! ") == 0
    finally:
        for peer in (alice, bob, again):
            if peer is not None:
                peer.stop()
