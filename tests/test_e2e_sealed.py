"""End to end: a private line to carol while she is stopped is sealed to her key and handed to
bob; alice quits; carol starts and gets it from bob (alice is gone), exactly once; alice comes
back and is told it was delivered (carol's receipt, carried by bob or handed by carol).  Bob
carries it without ever having the plaintext: his history, log and sealed items are grepped
for it."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.processes import PeerProcess
from tests.support import fresh_multicast

SECRET = "the eagle lands at noon 7f3a"


def _held(data_dir: Path) -> list[str]:
    """The kinds of the items bob holds for others (read from his sealed file)."""
    path = data_dir / "sealed.sqlite3"
    if not path.exists():
        return []
    db = sqlite3.connect(str(path))
    try:
        rows = db.execute("select data from items where bag = 'held'").fetchall()
    except sqlite3.Error:
        return []
    finally:
        db.close()
    return ['"kind": "receipt"' in data and "receipt" or "line" for (data,) in rows]


def _wait(predicate, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen in {timeout} s: {what}")
        time.sleep(0.05)


def test_a_sealed_line_reaches_carol_through_bob_and_is_told_delivered(tmp_path) -> None:
    group = fresh_multicast()
    dirs = {nick: tmp_path / nick for nick in ("alice", "bob", "carol")}
    alice = PeerProcess("alice", group, str(dirs["alice"]))
    bob = PeerProcess("bob", group, str(dirs["bob"]))
    carol = PeerProcess("carol", group, str(dirs["carol"]))
    peers = [alice, bob, carol]
    try:
        for peer in peers:
            others = [p.nick for p in peers if p is not peer]
            peer.wait_for(lambda lines, others=others: all(
                any(f"* {o} joined" in line for line in lines) for o in others), timeout=20)
        alice.wait_line("pinned carol's key")
        carol.send("/quit")
        assert carol.proc.wait(10) == 0
        alice.wait_line("carol left", timeout=10)

        alice.send(f"/msg carol {SECRET}")
        alice.wait_line("carol is away: the line is kept and sent when carol is back")
        _wait(lambda: _held(dirs["bob"]) == ["line"], "bob carries alice's sealed line")
        alice.send("/quit")
        assert alice.proc.wait(10) == 0

        carol = PeerProcess("carol", group, str(dirs["carol"]))
        peers.append(carol)
        carol.wait_line(f"[private] <alice> {SECRET}", timeout=20)
        # carol's receipt made bob drop the line; he holds the receipt for alice now
        _wait(lambda: _held(dirs["bob"]) == ["receipt"], "bob holds carol's receipt")

        alice = PeerProcess("alice", group, str(dirs["alice"]))
        peers.append(alice)
        alice.wait_line(f"- delivered to carol: {SECRET}", timeout=20)
        carol.wait_line("* alice joined", timeout=15)
        _wait(lambda: _held(dirs["bob"]) == [], "bob drops the receipt once handed to alice")
        time.sleep(1.0)  # time for a wrong second showing (alice's catch-up resends it)
        assert carol.count(SECRET) == 1, "\n".join(carol.lines)
        assert alice.count(f"delivered to carol: {SECRET}") == 1, "\n".join(alice.lines)
        assert bob.count(SECRET) == 0
    finally:
        for peer in peers:
            peer.stop()
    secret = SECRET.encode("utf-8")
    files = [p for p in dirs["bob"].rglob("*") if p.is_file()]
    assert any(p.name.startswith("history.sqlite3") for p in files), files
    assert any(p.name.startswith("p2pchat.log") for p in files), files
    assert any(p.name.startswith("sealed.sqlite3") for p in files), files
    assert [p.name for p in files if secret in p.read_bytes()] == []
    # ... while alice's history (the author's) has it: the grep would see it
    assert any(secret in p.read_bytes() for p in dirs["alice"].rglob("history.sqlite3*"))
