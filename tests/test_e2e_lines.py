"""End to end: three ``twistd -n p2pchat --ui lines`` processes, started as a user would,
chat through stdin and stdout."""

from __future__ import annotations

import re

import pytest

from tests.processes import PeerProcess
from tests.support import fresh_multicast

#: every line the line face prints (README.rst, "The line face")
LINE = re.compile(r"^\d\d:\d\d:\d\d (<[^>]+> .*|\* .*|- .*|! .*)$")


@pytest.fixture
def trio(tmp_path):
    group = fresh_multicast()
    peers = [PeerProcess(nick, group, str(tmp_path / nick)) for nick in ("alice", "bob", "carol")]
    yield peers
    for peer in peers:
        peer.stop()


def test_three_processes_chat(trio) -> None:
    alice, bob, carol = trio
    for peer in trio:
        peer.wait_for(lambda lines: sum(" joined" in line for line in lines) == 2)

    for peer in trio:
        peer.send(f"Hello from {peer.nick}!")
    for peer in trio:
        for other in trio:
            if other is not peer:
                peer.wait_line(f"<{other.nick}> Hello from {other.nick}!")
    for peer in trio:
        for other in trio:
            assert peer.count(f"<{other.nick}> Hello from {other.nick}!") == 1

    bob.send("/nick robert")
    alice.wait_line("* bob is now known as robert")
    carol.wait_line("* bob is now known as robert")
    carol.send("/me waves")
    alice.wait_line("* carol waves")
    alice.send("/users")
    alice.wait_line("2 connected, 2 known; you are alice")
    alice.send("/frobnicate")
    alice.wait_line("! unknown command /frobnicate")

    # end of stdin = a clean leave and exit status 0
    carol.close_stdin()
    assert carol.proc.wait(10) == 0
    alice.wait_line("* carol left")
    bob.wait_line("* carol left")
    assert alice.count("carol left (connection lost)") == 0

    bob.send("/quit")
    assert bob.proc.wait(10) == 0
    alice.wait_line("* robert left")

    for peer in trio:
        peer.wait_for(lambda lines: True)
        bad = [line for line in peer.lines if not LINE.match(line)]
        assert bad == [], f"{peer.nick} printed lines outside the format: {bad}"


def test_killed_peer_shown_gone_at_once(trio) -> None:
    alice, bob, carol = trio
    for peer in trio:
        peer.wait_for(lambda lines: sum(" joined" in line for line in lines) == 2)
    carol.proc.kill()
    # well before the 30 s discovery timeout
    alice.wait_line("* carol left (connection lost)", timeout=5)
    bob.wait_line("* carol left (connection lost)", timeout=5)


def test_bad_option_is_one_line(tmp_path) -> None:
    peer = PeerProcess("bad name", fresh_multicast(), str(tmp_path / "x"))
    try:
        assert peer.proc.wait(15) == 2
        err = peer.stderr().strip().splitlines()
        assert len(err) == 1 and "spaces" in err[0], err
    finally:
        peer.stop()


def test_one_peer_per_data_dir(tmp_path) -> None:
    group = fresh_multicast()
    first = PeerProcess("alice", group, str(tmp_path / "same"))
    try:
        first.wait_line("you are alice")
        second = PeerProcess("alice", group, str(tmp_path / "same"))
        try:
            assert second.proc.wait(15) != 0
            assert "another p2pchat is running" in second.stderr()
        finally:
            second.stop()
    finally:
        first.stop()


def test_headless_peer(tmp_path) -> None:
    """--ui none: no face; the peer links and is seen; its log goes to stdout (twistd's)."""
    group = fresh_multicast()
    headless = PeerProcess("robot", group, str(tmp_path / "robot"), ui="none")
    alice = PeerProcess("alice", group, str(tmp_path / "alice"))
    try:
        alice.wait_line("* robot joined")
        headless.wait_for(lambda lines: any("linked with" in line for line in lines))
        assert not any(LINE.match(line) for line in headless.lines)  # log lines, not chat
    finally:
        alice.stop()
        headless.stop()
