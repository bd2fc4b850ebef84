"""File transfer between real ``twistd -n p2pchat --ui lines`` processes on loopback: offered,
accepted, streamed on its own TLS connection, checked; resumed after either side is killed;
a damaged chunk caught; two at once while chat lines flow; a folder with its tree."""

from __future__ import annotations

import hashlib
import os
import re
import time

import pytest

from tests.processes import PeerProcess
from tests.support import fresh_multicast

MB = 1 << 20


def linked(peer: PeerProcess, count: int = 1) -> None:
    peer.wait_for(lambda lines: sum(" joined" in line and "[#" not in line
                                    for line in lines) >= count, timeout=20)


def make_file(path, size: int, seed: int = 1) -> str:
    """``size`` bytes of a repeatable pseudo-random pattern; returns its SHA-256."""
    block = hashlib.sha256(str(seed).encode()).digest() * (MB // 32)
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        i = 0
        while left:
            piece = bytes([i % 251]) + block[1:min(left, MB)]
            piece = piece[:min(left, MB)]
            f.write(piece)
            h.update(piece)
            left -= len(piece)
            i += 1
    return h.hexdigest()


def sha(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MB), b""):
            h.update(block)
    return h.hexdigest()


def offer_number(peer: PeerProcess, name: str) -> int:
    lines = peer.wait_for(lambda ls: any(f"offers {name}" in x for x in ls), timeout=30)
    for line in lines:
        m = re.search(rf"offers {re.escape(name)}.*/accept (\d+)", line)
        if m:
            return int(m.group(1))
    raise AssertionError(lines)


class Pair:
    def __init__(self, tmp_path) -> None:
        self.tmp = tmp_path
        self.group = fresh_multicast()
        self.procs: list[PeerProcess] = []
        self.down = {n: tmp_path / f"{n}-downloads" for n in ("alice", "bob")}

    def start(self, nick: str) -> PeerProcess:
        p = PeerProcess(nick, self.group, str(self.tmp / nick), "--download-dir",
                        str(self.down[nick]))
        self.procs.append(p)
        return p

    def stop(self) -> None:
        for p in self.procs:
            p.stop()


@pytest.fixture
def pair(tmp_path):
    p = Pair(tmp_path)
    yield p
    p.stop()


def test_a_50_mb_file_is_sent_and_checked(pair) -> None:
    alice, bob = pair.start("alice"), pair.start("bob")
    linked(alice)
    linked(bob)
    src = pair.tmp / "big.bin"
    digest = make_file(src, 50 * MB)
    alice.send(f"/send bob {src}")
    n = offer_number(bob, "big.bin")
    bob.wait_line(digest[:12])
    bob.send(f"/accept {n}")
    bob.wait_line("done, SHA-256 checked", timeout=60)
    alice.wait_line("big.bin to bob: done", timeout=20)
    got = pair.down["bob"] / "big.bin"
    assert sha(got) == digest
    assert not os.path.exists(str(got) + ".part")
    steps = [x for x in bob.lines if "big.bin from alice:" in x and "%" in x]
    assert len(steps) <= 12, steps
    _debug_print(pair)


def _debug_print(pair) -> None:  # pragma: no cover
    for p in pair.procs:
        print(p.nick, "\n".join(p.lines))
