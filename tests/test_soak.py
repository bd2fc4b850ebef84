"""A bounded soak (issue 5): three real peers (``twistd -n p2pchat --ui lines`` on loopback,
a private multicast group) each say lines at a steady rate for a while; then every peer must
have shown every line of the others exactly once, and its own exactly once.

Prints a table per peer: sent / received / lost / duplicated (received, lost and duplicated
count the others' lines); lost and duplicated must be 0.

    P2PCHAT_SOAK_SECONDS   how long the peers talk (default 15; 60 or more by hand)
    P2PCHAT_SOAK_RATE      lines per second per peer (default 10)

By hand: ``P2PCHAT_SOAK_SECONDS=60 python -m pytest -m soak tests/test_soak.py``.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter

import pytest

from tests.netns import chat_texts, ranges
from tests.processes import PeerProcess
from tests.support import fresh_multicast

pytestmark = pytest.mark.soak

NICKS = ("alice", "bob", "carol")
SECONDS = float(os.environ.get("P2PCHAT_SOAK_SECONDS", "15"))
RATE = float(os.environ.get("P2PCHAT_SOAK_RATE", "10"))
#: after the last line, how long the rest may take to arrive
DRAIN_TIMEOUT = 30.0
#: then how long we keep watching for late duplicates
SETTLE = 2.0


def _number(nick: str, text: str) -> int | None:
    match = re.fullmatch(rf"s-{re.escape(nick)}-(\d+)", text)
    return int(match.group(1)) if match else None


def test_soak(tmp_path, capsys) -> None:
    assert SECONDS > 0 and RATE > 0
    group = fresh_multicast()
    peers = [PeerProcess(nick, group, str(tmp_path / nick)) for nick in NICKS]
    try:
        for peer in peers:
            peer.wait_for(lambda lines: sum(" joined" in line for line in lines) == 2, 30)

        # Steady rate, bounded in count and in time: each tick every peer says its next line.
        ticks = max(1, int(SECONDS * RATE))
        sent = Counter()
        start = time.monotonic()
        for i in range(ticks):
            delay = start + i / RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for peer in peers:
                sent[peer.nick] += 1
                peer.send(f"s-{peer.nick}-{sent[peer.nick]}")
            if time.monotonic() - start > SECONDS * 2 + 10:
                break  # far behind the pace: stop rather than run on
        talked = time.monotonic() - start

        expected = {nick: {f"s-{nick}-{n}" for n in range(1, sent[nick] + 1)} for nick in NICKS}
        everything = set().union(*expected.values())

        def shown(peer: PeerProcess) -> list[tuple[str, str]]:
            peer.wait_for(lambda lines: True)  # take what was printed so far
            return chat_texts(peer.lines)

        deadline = time.monotonic() + DRAIN_TIMEOUT
        complete = False
        while not complete and time.monotonic() < deadline:
            complete = all(everything <= {t for _, t in shown(p)} for p in peers)
            if not complete:
                time.sleep(0.2)
        drained = time.monotonic() - start - talked
        time.sleep(SETTLE)

        rows, problems = [], []
        for peer in peers:
            counts = Counter(text for _, text in shown(peer))
            others = everything - expected[peer.nick]
            received = sum(1 for t in others if counts[t] > 0)
            lost = len(others) - received
            duplicated = sum(counts[t] - 1 for t in others if counts[t] > 1)
            own_missing = [t for t in expected[peer.nick] if counts[t] == 0]
            own_doubled = sum(counts[t] - 1 for t in expected[peer.nick] if counts[t] > 1)
            rows.append((peer.nick, sent[peer.nick], received, lost, duplicated))
            if lost or duplicated or own_missing or own_doubled:
                by_sender = {
                    nick: ranges(_number(nick, t) for t in expected[nick] if counts[t] == 0)
                    for nick in NICKS if any(counts[t] == 0 for t in expected[nick])}
                problems.append(f"{peer.nick}: lost {lost}, duplicated {duplicated}, own not "
                                f"shown {len(own_missing)}, own twice {own_doubled}; missing "
                                f"by sender: {by_sender}")
            for nick in NICKS:
                seq = [n for _, t in shown(peer) if (n := _number(nick, t)) is not None]
                if seq != sorted(seq):
                    problems.append(f"{peer.nick}: {nick}'s lines out of order")

        table = [f"soak: 3 peers, {RATE:g} lines/s each for {talked:.1f} s "
                 f"(P2PCHAT_SOAK_SECONDS={SECONDS:g}); "
                 + (f"all shown {drained:.1f} s after the last line" if complete
                    else f"NOT all shown {DRAIN_TIMEOUT:.0f} s after the last line"),
                 f"{'peer':<8} {'sent':>6} {'received':>9} {'lost':>6} {'duplicated':>11}"]
        table += [f"{n:<8} {s:>6} {r:>9} {lo:>6} {d:>11}" for n, s, r, lo, d in rows]
        with capsys.disabled():
            print("\n" + "\n".join(table))

        assert not problems, "\n".join(problems) + "\n" + "\n".join(
            f"--- {p.nick}:\n" + "\n".join(p.lines[-20:]) for p in peers)
        assert all(lo == 0 and d == 0 for _, _, _, lo, d in rows)
    finally:
        for peer in peers:
            peer.stop()
