"""``python -m bench.store``: what keeping history costs the reactor.

A peer saves every chat line it shows (p2pchat/store.py): the write is queued and committed
with the others of the same 50 ms.  This measures, on a file in a temporary directory, the cost
per line of queueing it, the cost per line of the commits, and the longest single commit (the
longest the reactor is held) for bursts of lines, against a baseline of appending the same
lines to a Python list in the same process.  Prints a table, or JSON with ``--json``."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from p2pchat.store import Store, StoredLine
from p2pchat.wire import DEFAULT_ROOM


def lines_in(store: Store) -> int:
    """How many lines the file holds (for the figures and the tests; the chat never asks)."""
    store.flush()
    return store._db.execute("select count(*) from lines").fetchone()[0]


def burst(store: Store, start: int, count: int) -> tuple[float, float]:
    """Queue ``count`` lines then commit them; returns (queue seconds, commit seconds)."""
    began = time.perf_counter()
    for n in range(start, start + count):
        store.remember(StoredLine(f"id{n:012d}", DEFAULT_ROOM, "abcdefabcdefabcd", "alice",
                                  "a line of an ordinary length, as people type them" * 2,
                                  False, False, 1_700_000_000.0 + n))
    queued = time.perf_counter()
    store.flush()
    return queued - began, time.perf_counter() - queued


def run(bursts: list[int], rounds: int) -> dict:
    figures = {}
    with tempfile.TemporaryDirectory() as folder:
        store = Store(os.path.join(folder, "history.sqlite3"), call_soon=lambda f: None)
        start = 0
        for size in bursts:
            queue_s = commit_s = 0.0
            longest = 0.0
            for _ in range(rounds):
                q, c = burst(store, start, size)
                start += size
                queue_s, commit_s, longest = queue_s + q, commit_s + c, max(longest, c)
            base = []
            began = time.perf_counter()
            for n in range(size * rounds):
                base.append(("id", DEFAULT_ROOM, "abcdef", "alice", "text", False, False, n))
            baseline = time.perf_counter() - began
            lines = size * rounds
            figures[size] = {
                "queue_us_per_line": queue_s / lines * 1e6,
                "commit_us_per_line": commit_s / lines * 1e6,
                "longest_commit_ms": longest * 1e3,
                "baseline_us_per_line": baseline / lines * 1e6,
                "ratio_to_baseline": (queue_s + commit_s) / max(baseline, 1e-9),
            }
        figures["lines_in_file"] = lines_in(store)
        store.close()
    return figures


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__)
    p.add_argument("--bursts", default="1,100,1000", help="lines per commit [1,100,1000]")
    p.add_argument("--rounds", type=int, default=50, help="commits per burst size [50]")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    bursts = [int(x) for x in a.bursts.split(",")]
    figures = run(bursts, max(1, a.rounds))
    if a.json:
        print(json.dumps(figures, indent=1))
        return
    print(f"History on disk: {a.rounds} commits per burst size, "
          f"{figures['lines_in_file']} lines in the file at the end")
    print(f"  {'lines per commit':<34}" + "".join(f"{b:>12}" for b in bursts))
    rows = [("queue, us per line", "queue_us_per_line", "{:.1f}"),
            ("commit, us per line", "commit_us_per_line", "{:.1f}"),
            ("longest commit (reactor held), ms", "longest_commit_ms", "{:.2f}"),
            ("baseline (list append), us/line", "baseline_us_per_line", "{:.2f}"),
            ("store / baseline", "ratio_to_baseline", "{:.0f}x")]
    for label, key, fmt in rows:
        print(f"  {label:<34}" + "".join(f"{fmt.format(figures[b][key]):>12}" for b in bursts))


if __name__ == "__main__":
    main()
