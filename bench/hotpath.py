"""``python -m bench.hotpath``: the CPU time a chat line costs inside one process.

The process benchmark (``python -m bench``) shows what users see, but on 2 cores shared by a
dozen processes its figures move with the machine's mood.  This one runs the same code paths
in one process, with no sockets, no TLS and no other process: a peer receiving chat lines from
a linked peer (split, parse and check, dedup, ack, history, the line face's output; once
into a new history file, once into one of ``--history`` lines, as a peer's is after a while,
where saving a line costs more) and a peer
saying lines to K linked peers (the line face's input, sequence, signature, encoding, sent
log, history, one write per link).  Beside each, in the same run, the bare relay of
``bench/baseline.py`` doing the same with no JSON and no checks, and the floor of any receiver
that keeps history in CPython (parse, save a row, format a line; no checks).  Prints
microseconds per line and the ratios; ``--json`` the same figures; ``--profile`` the top
functions of each path.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import shutil
import sqlite3
import statistics
import tempfile
import time
from types import SimpleNamespace
from typing import Callable

from twisted.internet import task
from twisted.internet.testing import StringTransport
from twisted.protocols.basic import LineReceiver

from bench.baseline import Printer
from bench.store import lines_in
from p2pchat.identity import Identity
from p2pchat.lines import LineFace
from p2pchat.mesh import PeerProtocol
from p2pchat.node import Node
from p2pchat.relay import line_payload
from p2pchat.runsig import RUN_MAX_LINES, sign_run
from p2pchat.store import Store
from p2pchat.wire import CHAT, encode_message

TEXT = "a line of an ordinary length, as people type them in a chat"
#: Bytes handed to dataReceived at once, about what one read of a busy socket gives.
CHUNK = 16 * 1024
#: Lines between two history commits (a burst at saturation fills 50 ms with about this many).
COMMIT_EVERY = 256


class _Relay(LineReceiver):
    """The baseline sender: every input line to each link (bench/baseline.py)."""

    delimiter = b"\n"
    MAX_LENGTH = 1 << 16

    def __init__(self, links: list[LineReceiver]) -> None:
        self.links = links

    def lineReceived(self, line: bytes) -> None:
        for link in self.links:
            link.sendLine(line)


class _Flusher:
    """The reactor's part: after each read, the timers due (acks); history is committed once
    about COMMIT_EVERY lines came in, as FLUSH_DELAY does on a busy peer.  What the store
    asks to run later (the rows made of what it jotted down: jotting.py) runs then too, and
    its CPU time is counted apart (``behind``), to be shown beside the line's, not hidden."""

    def __init__(self, clock: task.Clock) -> None:
        self.clock = clock
        self.due: list[Callable[[], None]] = []
        self.turns = 0
        #: CPU seconds of the store's steps behind the burst
        self.behind = 0.0

    def call_soon(self, f: Callable[[], None]) -> None:
        self.due.append(f)

    def turn(self, force: bool = False) -> None:
        self.turns += 1
        self.clock.advance(0.001)
        if force or self.turns * CHUNK >= COMMIT_EVERY * 300:  # lines of about 300 bytes
            self.turns = 0
            due, self.due = self.due, []
            for f in due:
                if getattr(f, "__name__", "") == "_step":  # Store._step: rows, behind
                    began = time.process_time()
                    f()
                    self.behind += time.process_time() - began
                else:
                    f()


def _peer(nick: str, clock: task.Clock, folder: str, flusher: _Flusher) -> tuple[Node, Store]:
    store = Store(os.path.join(folder, f"{nick}.sqlite3"), call_soon=flusher.call_soon)
    node = Node(nick, clock, identity=Identity.generate(), store=store)
    return node, store


def _link(node: Node, other: Node, clock: task.Clock) -> tuple[PeerProtocol, StringTransport]:
    """A handshaken TLS-proven link from ``node`` to ``other`` (as mesh.py leaves one)."""
    proto = PeerProtocol(node, clock)
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.peer_id, proto.username, proto.caps = other.peer_id, other.nick, other.caps
    proto.fp, proto.pk, proto.tls = (other.identity.fingerprint,
                                     other.identity.public_key_b64(), "TLSv1.3")
    proto._become_ready()
    session = node.links[other.peer_id]  # as its sync would leave it
    session.synced, session.cursor = True, node.outbox.sequence
    transport.clear()
    return proto, transport


def _face(node: Node) -> StringTransport:
    out = StringTransport()
    face = LineFace(node, lambda: None)
    face.makeConnection(out)
    node._face = face  # kept alive with the node
    out.clear()
    return out


def _feed(proto: LineReceiver, data: bytes, every: Callable[[], None]) -> None:
    """``data`` in CHUNK-sized reads, ``every`` after each (the reactor's turn)."""
    for start in range(0, len(data), CHUNK):
        proto.dataReceived(data[start:start + CHUNK])
        every()


def _timed(run: Callable[[], None], profile: cProfile.Profile | None) -> float:
    """CPU seconds of this process (what limits a fan-out on shared cores; waits for the disk
    are not counted).  What an earlier run left to the garbage collector (its nodes, their
    sent logs and stores) is collected first: else it was billed to whichever run next
    crossed the collector's threshold (5-6 us a line of the say round in its second and
    third rounds, for the rounds before it), which no peer pays (it has no earlier run)."""
    gc.collect()
    began = time.process_time()
    if profile is not None:
        profile.runcall(run)
    else:
        run()
    return time.process_time() - began


def history_file(folder: str, lines: int) -> str:
    """A history file of ``lines`` lines as a peer's is after a while (their ids random, as a
    base peer's and an older build's are; indexed for /search), to copy for each run."""
    path = os.path.join(folder, "kept.sqlite3")
    store = Store(path)
    raw = encode_message(Node("carol", task.Clock(), identity=Identity.generate()).sender.message(
        CHAT, TEXT, sequenced=True))
    ids = os.urandom(8 * lines).hex()
    rows = [(ids[16 * n:16 * n + 16], "general", "carol_1", "carol", f"{TEXT} {n}", 0, 0,
             1.7e9 + n, n, raw, None) for n in range(lines)]
    with store._db:
        store._db.execute("begin")
        store._db.executemany("insert into lines values (?,?,?,?,?,?,?,?,?,?,?)", rows)
        store.index.add_new(0)
    getattr(store.index, "catch_up", lambda: None)()  # (older code: indexed at add_new)
    store._db.execute("pragma wal_checkpoint(truncate)")
    store.close()
    return path


def receive(count: int, folder: str, profile: cProfile.Profile | None = None,
            kept: str | None = None) -> dict:
    """Per line: a peer receiving ``count`` signed chat lines from one linked peer (into a
    copy of the history file ``kept``, if given)."""
    clock = task.Clock()
    clock.advance(time.time())
    flusher = _Flusher(clock)
    alice, _ = _peer("alice", clock, folder, _Flusher(clock))
    if kept is not None:
        shutil.copyfile(kept, os.path.join(folder, "bob.sqlite3"))
    bob, store = _peer("bob", clock, folder, flusher)
    before = lines_in(store)
    out = _face(bob)
    proto, back = _link(bob, alice, clock)
    # said after the link is up: live lines, each shown (said at the very moment it came up,
    # a line read back to the microsecond may fall before it, a catch-up's, which the line
    # face counts without showing past the first 200: catching_up.py)
    clock.advance(0.01)
    data = b"".join(encode_message(alice.sender.message(CHAT, f"{TEXT} {n}", sequenced=True))
                    for n in range(count))

    def turn() -> None:
        flusher.turn()
        out.clear()
        back.clear()

    base_out = StringTransport()
    printer = Printer(SimpleNamespace(transport=base_out))  # the process baseline's receiver
    printer.makeConnection(StringTransport())
    relay = _relay_times(lambda: _feed(printer, data, base_out.clear))
    ours = _timed(lambda: (_feed(proto, data, turn), flusher.turn(force=True)), profile)
    # the rows made of the lines jotted down (jotting.py) in the steps behind the burst,
    # and those still behind at its end: timed apart, shown beside it
    rows = flusher.behind + _timed(store.flush, None)
    ours -= flusher.behind
    # the /search index takes the lines a moment after their commit (index.py), off the
    # path a line takes: timed apart, as a peer does it after the burst
    later = _timed(getattr(store.index, "catch_up", lambda: None), None)  # (older code: none)
    shown = lines_in(store) - before
    store.close()
    relay += _relay_times(lambda: _feed(printer, data, base_out.clear))
    base = statistics.median(relay)
    if shown != count:
        raise SystemExit(f"bench.hotpath: {shown} of {count} lines were kept")
    return {"lines": count, "us_per_line": ours / count * 1e6,
            "baseline_us_per_line": base / count * 1e6, "ratio": ours / base,
            "rows_later_us_per_line": rows / count * 1e6,
            "index_later_us_per_line": later / count * 1e6}


#: The bare relay's run is short (a few tens of milliseconds) and jitters by half between
#: runs: it is timed this many times before ours and as many after, and its median taken.
RELAY_RUNS = 3


def _relay_times(run: Callable[[], None], times: int = 1) -> list[float]:
    return [_timed(run, None) for _ in range(RELAY_RUNS * times)]


def floor(count: int, folder: str) -> dict:
    """Per line: the least any receiver that keeps history can do in CPython: parse the JSON
    line, save one row (committed every COMMIT_EVERY lines), format one line of output; no
    checks, no dedup, no ack.  What a receiver of ours could at best come down to."""
    clock = task.Clock()
    clock.advance(time.time())
    alice, _ = _peer("alice", clock, folder, _Flusher(clock))
    lines = [encode_message(alice.sender.message(CHAT, f"{TEXT} {n}", sequenced=True)).rstrip(b"\n")
             for n in range(count)]
    db = sqlite3.connect(os.path.join(folder, "floor.sqlite3"), isolation_level=None)
    db.execute("pragma journal_mode=wal")
    db.execute("pragma synchronous=normal")
    db.execute("create table lines (id text primary key, sender_id text, nick text, text text,"
               " ts real, seq integer, raw blob)")

    def run() -> None:
        rows, out = [], []
        for raw in lines:
            obj = json.loads(raw)
            rows.append((obj["id"], obj["sender_id"], obj["username"], obj["content"], 0.0,
                         obj["sequence"], raw))
            out.append(f"12:00:00 <{obj['username']}> {obj['content']}")
            if len(rows) == COMMIT_EVERY:
                db.execute("begin")
                db.executemany("insert or ignore into lines values (?,?,?,?,?,?,?)", rows)
                db.execute("commit")
                "\n".join(out).encode()
                rows, out = [], []

    took = _timed(run, None)
    db.close()
    return {"lines": count, "us_per_line": took / count * 1e6}


def send(count: int, links: int, folder: str, profile: cProfile.Profile | None = None) -> dict:
    """Per line: a peer saying ``count`` lines (typed into the line face) to ``links`` peers."""
    clock = task.Clock()
    clock.advance(time.time())
    flusher = _Flusher(clock)
    alice, store = _peer("alice", clock, folder, flusher)
    out = _face(alice)
    face = alice._face
    wires = []
    for n in range(links):
        other, _ = _peer(f"r{n}", clock, folder, _Flusher(clock))
        wires.append(_link(alice, other, clock)[1])
    data = b"".join(f"{TEXT} {n}\n".encode() for n in range(count))

    def turn() -> None:
        flusher.turn()
        out.clear()
        for w in wires:
            w.clear()

    ours = _timed(lambda: (_feed(face, data, turn), flusher.turn(force=True)), profile)
    said = lines_in(store)
    store.close()
    base_links = []
    base_wires = []
    for _ in range(links):
        link = LineReceiver()
        wire = StringTransport()
        link.makeConnection(wire)
        base_links.append(link)
        base_wires.append(wire)
    relay = _Relay(base_links)
    relay.makeConnection(StringTransport())

    def base_turn() -> None:
        for w in base_wires:
            w.clear()

    base = statistics.median(_relay_times(lambda: _feed(relay, data, base_turn), 2))
    if said != count:
        raise SystemExit(f"bench.hotpath: {said} of {count} lines were kept")
    return {"lines": count, "links": links, "us_per_line": ours / count * 1e6,
            "baseline_us_per_line": base / count * 1e6, "ratio": ours / base}


def signature(count: int) -> dict:
    """Per line: what signing a line we say costs, alone: as a line of a burst (one Ed25519
    signature per run of RUN_MAX_LINES, over the Merkle root of its lines: runsig.py, as
    saying.py signs them), and as a line said alone (its own signature, sending.py)."""
    identity = Identity.generate()
    clock = task.Clock()
    clock.advance(time.time())
    node = Node("alice", clock, identity=identity)
    payloads = [line_payload(node.sender.message(CHAT, f"{TEXT} {n}", sequenced=True))
                for n in range(count)]
    sign = identity.sign
    runs = [payloads[i:i + RUN_MAX_LINES] for i in range(0, count, RUN_MAX_LINES)]

    def alone() -> None:
        for data in payloads:
            sign(data)

    def in_runs() -> None:
        for run in runs:
            if len(run) > 1:
                sign_run(sign, run)
            else:
                sign(run[0])

    took_alone = _timed(alone, None)
    took = _timed(in_runs, None)
    return {"lines": count, "us_per_line": took / count * 1e6, "run_lines": RUN_MAX_LINES,
            "alone_us_per_line": took_alone / count * 1e6}


def _medians(runs: list[dict]) -> dict:
    """The median of each figure over the rounds; a ratio is the ratio of the medians (ours
    over the relay's, each the median of its runs: the relay's is timed beside each of ours,
    RELAY_RUNS times before and after it), and ``worst_ratio`` the highest of any round."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, float):
            out[key] = statistics.median(run[key] for run in runs)
    if "ratio" in out:
        out["ratio"] = out["us_per_line"] / out["baseline_us_per_line"]
        out["worst_ratio"] = max(run["ratio"] for run in runs)
        out["rounds"] = len(runs)
    return out


def _top(profile: cProfile.Profile, count: int, limit: int = 15) -> str:
    text = io.StringIO()
    stats = pstats.Stats(profile, stream=text)
    stats.sort_stats("tottime").print_stats(limit)
    rows = [line for line in text.getvalue().splitlines() if line.strip()]
    start = next((i for i, line in enumerate(rows) if "ncalls" in line), 0)
    return "\n".join(f"    {line}" for line in rows[start:])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.hotpath", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lines", type=int, default=20_000, help="lines per run [20000]")
    p.add_argument("--links", type=int, default=10, help="links of the sending peer [10]")
    p.add_argument("--rounds", type=int, default=3,
                   help="runs of each; the median is shown, and the worst ratio [3]")
    p.add_argument("--history", type=int, default=200_000,
                   help="lines already in the history file of the second receive run [200000;"
                        " 0: not run]")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--profile", action="store_true", help="also show the top functions")
    a = p.parse_args(argv)
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="p2pchat-hotpath-") as folder:
        kept = history_file(folder, a.history) if a.history > 0 else None
        for r in range(max(1, a.rounds)):
            os.makedirs(os.path.join(folder, f"recv{r}"))
            runs.setdefault("receive", []).append(receive(a.lines,
                                                          os.path.join(folder, f"recv{r}")))
            if kept is not None:
                os.makedirs(os.path.join(folder, f"kept{r}"))
                got = receive(a.lines, os.path.join(folder, f"kept{r}"), kept=kept)
                got["history"] = a.history
                runs.setdefault("receive_kept", []).append(got)
            runs.setdefault("floor", []).append(floor(a.lines, os.path.join(folder, f"recv{r}")))
            os.makedirs(os.path.join(folder, f"send{r}"))
            runs.setdefault("send", []).append(send(a.lines, a.links,
                                                    os.path.join(folder, f"send{r}")))
            runs.setdefault("sign", []).append(signature(a.lines))
        figures = {name: _medians(those) for name, those in runs.items()}
        s = figures["send"]
        # the target reads "at most 8 times the relay, plus the signature": the rest, as a ratio
        s["less_signature_ratio"] = ((s["us_per_line"] - figures["sign"]["us_per_line"])
                                     / s["baseline_us_per_line"])
        figures["load"] = os.getloadavg()[0]
        profiles = {}
        if a.profile:
            for name, run in (("receive", lambda prof, d: receive(a.lines, d, prof)),
                              ("send", lambda prof, d: send(a.lines, a.links, d, prof))):
                prof = cProfile.Profile()
                folder_p = os.path.join(folder, f"prof-{name}")
                os.makedirs(folder_p)
                run(prof, folder_p)
                profiles[name] = _top(prof, a.lines)
    if a.json:
        print(json.dumps(figures, indent=1))
        return 0
    r, s = figures["receive"], figures["send"]
    print(f"Hot path in one process (median of {a.rounds} runs of {a.lines} lines, the relay's "
          f"timed {RELAY_RUNS * 2} times beside each; no sockets, no TLS; load "
          f"{figures['load']:.2f}):")
    print(f"  {'':<44}{'p2pchat':>10}{'baseline':>10}{'ratio':>8}{'worst':>8}")
    k = figures.get("receive_kept")
    for name, got in (("receive one line, us", r),
                      (f"  into a history of {k['history']:,} lines, us" if k else "", k)):
        if got is None:
            continue
        print(f"  {name:<44}{got['us_per_line']:>10.2f}{got['baseline_us_per_line']:>10.2f}"
              f"{got['ratio']:>7.1f}x{got['worst_ratio']:>7.1f}x")
        print(f"  {'    then made into rows, behind it, us':<44}"
              f"{got['rows_later_us_per_line']:>10.2f}")
        whole = got["us_per_line"] + got["rows_later_us_per_line"]
        print(f"  {'    the two together, us':<44}{whole:>10.2f}"
              f"{got['baseline_us_per_line']:>10.2f}"
              f"{whole / got['baseline_us_per_line']:>7.1f}x")
    print(f"  {'  then indexed for /search, after it, us':<44}"
          f"{r['index_later_us_per_line']:>10.2f}")
    print(f"  {'receive floor (parse, save, format), us':<44}"
          f"{figures['floor']['us_per_line']:>10.2f}")
    say = f"say one line to {s['links']} links, us"
    print(f"  {say:<44}{s['us_per_line']:>10.2f}"
          f"{s['baseline_us_per_line']:>10.2f}{s['ratio']:>7.1f}x{s['worst_ratio']:>7.1f}x")
    share = f"  of which its signature (1 per {figures['sign']['run_lines']} lines), us"
    print(f"  {share:<44}{figures['sign']['us_per_line']:>10.2f}")
    print(f"  {'  (a line said alone: its own signature), us':<44}"
          f"{figures['sign']['alone_us_per_line']:>10.2f}")
    print(f"  {'  the rest (say less the signature)':<44}"
          f"{s['us_per_line'] - figures['sign']['us_per_line']:>10.2f}"
          f"{s['baseline_us_per_line']:>10.2f}{s['less_signature_ratio']:>7.1f}x")
    for name, text in profiles.items():
        print(f"\n  top functions by own time, {name} ({a.lines} lines):\n{text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
