"""End to end with history and rooms: three ``twistd -n p2pchat --ui lines`` processes; a
room line reaches its members only, a /msg its target only; a peer restarted with the same
data dir is shown its history, then what was said while it was away, exactly once."""

from __future__ import annotations

import signal
import time

import pytest

from tests.processes import PeerProcess
from tests.support import fresh_multicast


def linked(peer: PeerProcess, count: int) -> None:
    peer.wait_for(lambda lines: sum(" joined" in line and "[#" not in line
                                    for line in lines) >= count)


@pytest.fixture
def trio(tmp_path):
    group = fresh_multicast()
    peers = {n: PeerProcess(n, group, str(tmp_path / n)) for n in ("alice", "bob", "carol")}
    yield group, tmp_path, peers
    for peer in peers.values():
        peer.stop()


def test_rooms_privates_and_missed_lines_after_a_restart(trio) -> None:
    group, tmp_path, peers = trio
    alice, bob, carol = peers["alice"], peers["bob"], peers["carol"]
    for peer in peers.values():
        linked(peer, 2)

    alice.send("/join #ops")
    bob.send("/join #ops")
    alice.wait_line("[#ops] * bob joined")
    alice.send("ops only")
    bob.wait_line("[#ops] <alice> ops only")
    carol.send("/msg bob just between us")
    bob.wait_line("[private] <carol> just between us")
    alice.send("/join #general")
    alice.send("everyone hears this")
    carol.wait_line("<alice> everyone hears this")
    bob.wait_line("<alice> everyone hears this")
    assert carol.count("ops only") == 0
    assert alice.count("just between us") == 0

    bob.send("/quit")
    assert bob.proc.wait(10) == 0
    alice.wait_line("* bob left")
    alice.send("said while bob was away")
    alice.send("/join #ops")
    alice.send("ops while bob was away")
    carol.send("/msg bob are you back?")
    # away: kept by carol and sent when bob is back (test_e2e_private.py has the timings)
    carol.wait_line("- bob is away: the line is kept and sent when bob is back")

    again = PeerProcess("bob", group, str(tmp_path / "bob"))
    peers["bob2"] = again
    again.wait_line("<alice> said while bob was away")
    again.wait_line("[#ops] <alice> ops while bob was away")
    again.wait_line("[private] <carol> are you back?")
    carol.wait_line("- delivered to bob: are you back?")
    lines = again.lines
    start = lines.index(next(line for line in lines if "history of #general" in line))
    end = lines.index(next(line for line in lines if "end of history" in line))
    history = lines[start + 1:end]
    assert any("[history] <alice> everyone hears this" in line for line in history)
    assert again.count("said while bob was away") == 1
    assert again.count("ops while bob was away") == 1
    assert again.count("are you back?") == 1
    # nothing seen before the restart is shown again as new
    assert not any("<alice> everyone hears this" in line and "[history]" not in line
                   for line in lines)

    # restarted once more: the missed lines are now history, not new
    again.send("/quit")
    assert again.proc.wait(10) == 0
    third = PeerProcess("bob", group, str(tmp_path / "bob"))
    peers["bob3"] = third
    third.wait_line("end of history")
    linked(third, 2)
    time.sleep(1.0)  # give a wrong resend the time to show up
    third.wait_for(lambda lines: True)
    assert third.count("[history] <alice> said while bob was away") == 1
    assert sum("said while bob was away" in line for line in third.lines) == 1


def test_a_peer_killed_right_after_a_burst_keeps_every_line_it_showed(tmp_path) -> None:
    """bob is SIGKILLed the moment he has shown (and so jotted down, and then acked) the last
    line of a burst; alice is killed too, so no catch-up can make up for what he lost: after
    a restart, his history holds every line, once (jotting.py)."""
    group = fresh_multicast()
    alice = PeerProcess("alice", group, str(tmp_path / "alice"))
    bob = PeerProcess("bob", group, str(tmp_path / "bob"))
    peers = [alice, bob]
    try:
        linked(alice, 1)
        linked(bob, 1)
        count = 40
        alice.proc.stdin.write(b"".join(f"burst line {n}\n".encode() for n in range(count)))
        alice.proc.stdin.flush()
        bob.wait_line(f"<alice> burst line {count - 1}", timeout=20)
        bob.proc.send_signal(signal.SIGKILL)
        alice.stop()
        bob.proc.wait(10)
        again = PeerProcess("bob", group, str(tmp_path / "bob"))
        peers.append(again)
        again.wait_line("end of history")
        history = [line for line in again.lines if "[history] <alice> burst line" in line]
        assert [line.split("burst line ")[1] for line in history] == [
            str(n) for n in range(count)], again.lines
    finally:
        for peer in peers:
            peer.stop()
