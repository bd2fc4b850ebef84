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

    def start(self, nick: str, *extra: str) -> PeerProcess:
        p = PeerProcess(nick, self.group, str(self.tmp / nick), "--download-dir",
                        str(self.down[nick]), *extra)
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



def percent_seen(peer: PeerProcess, name: str, low: int, timeout: float = 30) -> int:
    """Wait for a progress line of ``name`` at ``low``% or more; returns its percent."""
    pattern = re.compile(rf"{re.escape(name)} (?:from|to) \w+: (\d+)%")

    def found(lines):
        return any(int(m.group(1)) >= low for m in map(pattern.search, lines) if m)

    lines = peer.wait_for(found, timeout)
    return max(int(m.group(1)) for m in map(pattern.search, lines) if m)


def started_at(peer: PeerProcess, name: str) -> list[int]:
    peer.wait_for(lambda ls: True, 0)
    return [int(m.group(1)) for m in (re.search(rf"{re.escape(name)} from \w+: started at "
                                                 r"(\d+)%", x) for x in peer.lines) if m]


RATE = ("--file-rate", "10M")  # 50 MB in about 5 s: time to kill a side midway


def sending_midway(pair) -> tuple[PeerProcess, PeerProcess, str]:
    """alice sends bob 50 MB at RATE; returns once bob has 30% or more (and the hash)."""
    alice, bob = pair.start("alice", *RATE), pair.start("bob")
    linked(alice)
    linked(bob)
    src = pair.tmp / "big.bin"
    digest = make_file(src, 50 * MB)
    alice.send(f"/send bob {src}")
    bob.send(f"/accept {offer_number(bob, 'big.bin')}")
    percent_seen(bob, "big.bin", 30)
    return alice, bob, digest


def test_the_receiver_killed_midway_resumes_after_a_restart(pair) -> None:
    alice, bob, digest = sending_midway(pair)
    bob.stop()  # SIGKILL: nothing saved at the end
    part = pair.down["bob"] / "big.bin.part"
    had = os.path.getsize(part)
    assert 0 < had < 50 * MB, had
    bob = pair.start("bob")
    bob.wait_line("done, SHA-256 checked", timeout=60)
    assert sha(pair.down["bob"] / "big.bin") == digest
    [again] = started_at(bob, "big.bin")
    # asked from the chunk its partial file ended in: at most one chunk sent twice
    assert again == (had // MB) * MB * 100 // (50 * MB), (again, had)
    alice.wait_line("big.bin to bob: done", timeout=20)


def test_the_sender_killed_midway_resumes_after_a_restart(pair) -> None:
    alice, bob, digest = sending_midway(pair)
    alice.stop()
    bob.wait_line("big.bin from alice: paused", timeout=20)
    alice = pair.start("alice", *RATE)
    bob.wait_line("done, SHA-256 checked", timeout=60)
    assert sha(pair.down["bob"] / "big.bin") == digest
    assert len(started_at(bob, "big.bin")) == 2
    assert started_at(bob, "big.bin")[1] >= 20
    alice.wait_line("big.bin to bob: done", timeout=20)


def test_a_damaged_chunk_is_caught_and_not_kept(pair) -> None:
    alice, bob = pair.start("alice"), pair.start("bob")
    linked(alice)
    linked(bob)
    src = pair.tmp / "rot.bin"
    make_file(src, 5 * MB)
    alice.send(f"/send bob {src}")
    n = offer_number(bob, "rot.bin")
    stat = os.stat(src)
    with open(src, "r+b") as f:  # bit rot after hashing: same size, same mtime
        f.seek(3 * MB + 12345)
        byte = f.read(1)
        f.seek(3 * MB + 12345)
        f.write(bytes([byte[0] ^ 0x40]))
    os.utime(src, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    bob.send(f"/accept {n}")
    bob.wait_line("chunk 4 of rot.bin did not match its hash", timeout=30)
    alice.wait_line("rot.bin to bob: failed", timeout=20)
    assert not os.path.exists(pair.down["bob"] / "rot.bin")
    assert os.path.getsize(pair.down["bob"] / "rot.bin.part") == 3 * MB


def test_two_transfers_at_once_while_chat_lines_flow(pair) -> None:
    alice, bob = pair.start("alice", "--file-rate", "20M"), pair.start("bob", "--file-rate",
                                                                        "20M")
    linked(alice)
    linked(bob)
    one, two = pair.tmp / "one.bin", pair.tmp / "two.bin"
    d1, d2 = make_file(one, 30 * MB, 1), make_file(two, 30 * MB, 2)
    alice.send(f"/send bob {one}")
    bob.send(f"/send alice {two}")
    bob.send(f"/accept {offer_number(bob, 'one.bin')}")
    alice.send(f"/accept {offer_number(alice, 'two.bin')}")
    percent_seen(bob, "one.bin", 10)
    for i in range(20):
        alice.send(f"line {i} from alice")
        bob.send(f"line {i} from bob")
        time.sleep(0.05)
    bob.wait_line("<alice> line 19 from alice", timeout=10)
    alice.wait_line("<bob> line 19 from bob", timeout=10)
    bob.wait_line("one.bin from alice: done", timeout=60)
    alice.wait_line("two.bin from bob: done", timeout=60)
    assert sha(pair.down["bob"] / "one.bin") == d1
    assert sha(pair.down["alice"] / "two.bin") == d2
    for i in range(20):
        assert bob.count(f"<alice> line {i} from alice") == 1


def test_a_folder_goes_with_its_tree(pair) -> None:
    alice, bob = pair.start("alice"), pair.start("bob")
    linked(alice)
    linked(bob)
    top = pair.tmp / "album"
    files = {"a.txt": b"top", "sub/b.bin": os.urandom(3 * MB + 5), "sub/deeper/c.txt": b"",
             "sub/deeper/d.txt": b"d" * 1000}
    for rel, data in files.items():
        (top / rel).parent.mkdir(parents=True, exist_ok=True)
        (top / rel).write_bytes(data)
    alice.send(f"/send bob {top}")
    n = offer_number(bob, "album/")
    bob.wait_line("4 files")
    bob.send(f"/accept {n}")
    bob.wait_line("album from alice: done", timeout=30)
    for rel, data in files.items():
        assert (pair.down["bob"] / "album" / rel).read_bytes() == data, rel
    assert not list((pair.down["bob"] / "album").rglob("*.part"))


def test_a_peer_that_quits_midway_exits_at_once_and_resumes_later(pair) -> None:
    """/quit while its transfer threads run: the process ends in seconds (the threads are
    cut, none keeps it), with no traceback; back, the transfer goes on."""
    alice, bob, digest = sending_midway(pair)
    began = time.monotonic()
    bob.send("/quit")
    bob.proc.wait(15)
    assert time.monotonic() - began < 10
    assert "Traceback" not in bob.stderr()
    bob = pair.start("bob")
    bob.wait_line("done, SHA-256 checked", timeout=60)
    assert sha(pair.down["bob"] / "big.bin") == digest
    alice.send("/quit")
    alice.proc.wait(15)
    assert "Traceback" not in alice.stderr()


def test_a_sender_that_quits_midway_exits_at_once(pair) -> None:
    alice, bob, digest = sending_midway(pair)
    began = time.monotonic()
    alice.send("/quit")
    alice.proc.wait(15)
    assert time.monotonic() - began < 10
    assert "Traceback" not in alice.stderr()
    bob.wait_line("big.bin from alice: paused", timeout=20)
