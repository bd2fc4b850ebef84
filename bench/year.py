"""``python -m bench --only year`` (or ``python -m bench.year``): a year of history.

Fills a history file with ``--year-lines`` lines (1,000,000 by default) as a year of chat
leaves it: lines of 100 characters (words of a Zipf-like vocabulary), four in five by nine
other authors, signed and packed (packing.py: as ``Store.pack_step`` leaves a line of one of
our peers a second after it came; the signatures here are random bytes of the right size,
as no signature is checked in this phase) and one in five our own; in three rooms and two
private conversations, over 365 days.  The fill is direct SQLite inserts (one executemany per
100,000 lines; the /search index fed as a commit feeds it), bounded by ``--year-lines`` (at
most 2,000,000).

Then, against the same measures with an empty file in the same run:
- the start-up to ready of a real peer (``twistd -n p2pchat --ui lines`` on loopback, a
  private multicast group: bench/procs.py), from its spawn to its "you are" line, the median
  of ``--year-starts`` starts of each (alternating), with the file in the page cache;
- ``/history 50``: ``Store.recent(room, 50)``, as the chat reads it, on a file just opened,
  the median and the worst of 20;
- the file's bytes per line (the file after a checkpoint, its indexes and the /search index
  included).
Targets: start-up at most 0.5 s slower, /history 50 within 20 ms, at most 400 bytes a line.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import tempfile
import time
from typing import Callable

from bench.procs import Children, fresh_multicast, peer_argv
from p2pchat.packing import PACKED, SIGNATURE_BYTES
from p2pchat.store import SEQ_SHIFT, STORE_NAME, Store

TARGET_START_S = 0.5
TARGET_HISTORY_MS = 20.0
TARGET_BYTES = 400.0
MAX_LINES = 2_000_000
ROOMS = ("general", "dev", "random", "@a1b2c3d4e5f6a7b8", "@0f1e2d3c4b5a6978")
AUTHORS = [f"{n:x}" * 16 for n in range(1, 10)]
NICKS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan"]


def vocabulary(rng: random.Random) -> tuple[list[str], list[float]]:
    """Words, and their cumulative weights (Zipf-like: the n-th is 1/n as common)."""
    words = ["".join(rng.choice("etaoinshrdlucmfwypvbgk") for _ in range(rng.randint(2, 9)))
             for _ in range(20_000)]
    return words, list(itertools.accumulate(1.0 / (n + 1) for n in range(len(words))))


def fill(path: str, count: int, now: float, seed: int = 1) -> float:
    """Write ``count`` lines over the year before ``now`` to a new history file; returns the
    seconds it took."""
    count = min(count, MAX_LINES)
    rng = random.Random(seed)
    words, weights = vocabulary(rng)
    texts = [" ".join(rng.choices(words, cum_weights=weights, k=25))[:100].ljust(100, ".")
             for _ in range(50_000)]  # drawn from, so the fill is mostly SQLite's time
    store = Store(path, max_lines=count * 2, max_bytes=1 << 40)
    db = store._db
    db.execute("pragma cache_size=-262144")  # 256 MB while filling (the chat keeps 2 MB)
    db.execute("pragma synchronous=off")
    began = time.perf_counter()
    with db:
        db.execute("begin")
        db.executemany("insert or replace into keys values (?, ?)",
                       [(a, "K" * 43 + "=") for a in AUTHORS])
    seqs = [0] * len(AUTHORS)
    step = 365 * 86400.0 / count
    start = now - 365 * 86400.0 + 60
    for first in range(0, count, 100_000):
        rows = []
        for n in range(first, min(count, first + 100_000)):
            text = texts[rng.randrange(len(texts))]
            room = ROOMS[n % len(ROOMS)]
            when = start + n * step
            if n % 5 == 0:  # our own
                rows.append((f"{rng.getrandbits(64):016x}", room, "0" * 16, "me", text, 0, 1,
                             when, None, None, None))
                continue
            a = n % len(AUTHORS)
            seqs[a] += 1
            rows.append((f"{rng.getrandbits(64):016x}", room, AUTHORS[a], NICKS[a], text, 0, 0,
                         when, seqs[a] - SEQ_SHIFT, PACKED + rng.randbytes(SIGNATURE_BYTES),
                         ""))
        with db:
            db.execute("begin")
            before = db.execute("select coalesce(max(rowid), 0) from lines").fetchone()[0]
            db.executemany("insert into lines values (?,?,?,?,?,?,?,?,?,?,?)", rows)
            store.index.add_new(before)  # the /search index, fed as a commit feeds it
        store.index.catch_up()  # and indexed, as a peer does a moment after its commit
    db.execute("insert or replace into settings values ('packed_upto', ?)",
               (str(db.execute("select max(rowid) from lines").fetchone()[0] or 0),))
    db.execute("pragma wal_checkpoint(truncate)")
    store.close()
    return time.perf_counter() - began


def file_bytes(path: str) -> int:
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


def history_ms(path: str, rounds: int = 20) -> tuple[float, float]:
    """/history 50 on a file just opened: (median, worst) milliseconds."""
    store = Store(path, max_lines=MAX_LINES * 2, max_bytes=1 << 40)
    times = []
    for n in range(rounds):
        began = time.perf_counter()
        lines = store.recent(ROOMS[n % 3], 50)
        times.append((time.perf_counter() - began) * 1000)
    store.close()
    if lines and len(lines) != 50:
        raise RuntimeError(f"/history 50 gave {len(lines)} lines")
    return statistics.median(times), max(times)


def start_s(kids: Children, data_dir: str, nick: str, timeout: float) -> float | None:
    """Seconds from spawning a peer on ``data_dir`` to its "you are" line (None: not up)."""
    up: list[float] = []

    def on_line(child: object, line: bytes, when: float) -> None:
        if line[8:19] == b" - you are " and not up:
            up.append(when)

    child = kids.start(f"year-{nick}-{len(kids.all)}",
                       peer_argv(nick, fresh_multicast(), data_dir), on_line)
    ok = kids.pump(lambda: bool(up), timeout)
    kids.stop([child])
    return up[0] - child.spawned if ok else None


def run(count: int, starts: int, timeout_scale: float = 1.0,
        say: Callable[[str], None] = lambda text: None) -> dict:
    figures: dict = {"lines": min(count, MAX_LINES), "targets": {
        "start_s_slower": TARGET_START_S, "history_50_ms": TARGET_HISTORY_MS,
        "bytes_per_line": TARGET_BYTES}}
    with tempfile.TemporaryDirectory(prefix="p2pchat-year-") as folder:
        dirs = {"empty": os.path.join(folder, "empty"), "year": os.path.join(folder, "year")}
        for d in dirs.values():
            os.makedirs(d, mode=0o700)
        now = time.time()
        say(f"year: filling a history file with {figures['lines']:,} lines")
        figures["fill_s"] = fill(os.path.join(dirs["year"], STORE_NAME), count, now)
        Store(os.path.join(dirs["empty"], STORE_NAME)).close()
        size = file_bytes(os.path.join(dirs["year"], STORE_NAME))
        figures["file_mb"] = size / 2**20
        figures["bytes_per_line"] = size / max(1, figures["lines"])
        empty_ms = history_ms(os.path.join(dirs["empty"], STORE_NAME))
        year_ms = history_ms(os.path.join(dirs["year"], STORE_NAME))
        figures["history_50_ms"] = {"median": year_ms[0], "max": year_ms[1],
                                    "empty_median": empty_ms[0]}
        kids = Children(folder)
        times: dict[str, list[float]] = {"empty": [], "year": []}
        try:
            for name, d in dirs.items():  # a first start makes the key and the certificate
                start_s(kids, d, name, 30 * timeout_scale)
            for n in range(max(1, starts)):
                for name, d in dirs.items():
                    took = start_s(kids, d, name, 30 * timeout_scale)
                    if took is not None:
                        times[name].append(took)
                say(f"year: start {n + 1}: " + ", ".join(
                    f"{k} {v[-1]:.2f} s" for k, v in times.items() if v))
        finally:
            kids.kill_all()
        if times["empty"] and times["year"]:
            empty, year = statistics.median(times["empty"]), statistics.median(times["year"])
            figures["start_s"] = {"empty": empty, "year": year, "slower": year - empty,
                                  "ratio": year / empty, "runs": times}
        else:
            figures["start_s"] = {"status": "a peer did not come up", "runs": times}
    return figures


def render(f: dict) -> str:
    t = f["targets"]
    h = f["history_50_ms"]
    lines = [f"A year of history: {f['lines']:,} lines of 100 characters "
             f"(filled in {f['fill_s']:.1f} s)"]
    s = f["start_s"]
    if "slower" in s:
        lines.append(f"  start-up to ready: empty {s['empty']:.2f} s, with the year "
                     f"{s['year']:.2f} s: {s['slower']:+.2f} s ({s['ratio']:.2f}x; target "
                     f"at most +{t['start_s_slower']:g} s: "
                     f"{'met' if s['slower'] <= t['start_s_slower'] else 'NOT met'})")
    else:
        lines.append(f"  start-up to ready: {s['status']}")
    lines.append(f"  /history 50: median {h['median']:.2f} ms, worst {h['max']:.2f} ms "
                 f"(empty file {h['empty_median']:.2f} ms; target {t['history_50_ms']:g} ms: "
                 f"{'met' if h['max'] <= t['history_50_ms'] else 'NOT met'})")
    lines.append(f"  file: {f['file_mb']:.0f} MB, {f['bytes_per_line']:.0f} bytes a line, "
                 f"indexes included (target {t['bytes_per_line']:g}: "
                 f"{'met' if f['bytes_per_line'] <= t['bytes_per_line'] else 'NOT met'})")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.year", description=__doc__)
    p.add_argument("--lines", type=int, default=1_000_000, help="lines in the file [1000000]")
    p.add_argument("--starts", type=int, default=3, help="timed starts of each peer [3]")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    figures = run(max(1, a.lines), a.starts)
    print(json.dumps(figures, indent=1) if a.json else render(figures))


if __name__ == "__main__":
    main()
