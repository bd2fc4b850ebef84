"""``python -m bench.search`` (and ``python -m bench --only search``): how long /search takes
over a big history file.

Fills a history file in a temporary directory with ``--lines`` lines (1,000,000 by default;
the store's retention raised to hold them all), with one executemany so the fill is quick
(indexed as a commit of the store indexes its new lines), then times searches as the chat
runs them (``Store.search``: a thread with its own read-only connection), the median of
``--rounds`` of each: a rare word, a common word (about one line in a hundred), two words, and a
word with a ``from:`` filter.  Target: each at most 100 ms over 1,000,000 lines."""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time

from p2pchat.search import SEARCH_MAX_HITS, Query
from p2pchat.store import Store

#: What each search is given (words and filters) and its name in the figures.
SEARCHES = {
    "rare_word": Query(words=("zanzibar",)),
    "common_word": Query(words=("deploy",)),
    "two_words": Query(words=("deploy", "green")),
    "word_from_nick": Query(words=("deploy",), nick="nick7"),
}
TARGET_MS = 100.0
_VOCABULARY = [f"w{n}" for n in range(5000)]


def fill(path: str, count: int, seed: int = 1) -> float:
    """Write ``count`` lines to a new history file; returns the seconds it took."""
    rng = random.Random(seed)
    store = Store(path, max_lines=count * 2, max_bytes=1 << 40)
    began = time.perf_counter()
    rows = []
    for n in range(count):
        words = rng.sample(_VOCABULARY, 8)
        if n % 97 == 0:  # about one line in a hundred, by every nick
            words[0] = "deploy"
        if n % 7 == 0:
            words[1] = "green"
        if n % 10_000 == 0:
            words[2] = "zanzibar"
        rows.append((f"id{n:09d}", f"room{n % 5}", f"s{n % 20}", f"nick{n % 20}",
                     " ".join(words), 0, 0, 1_700_000_000.0 + n, None, None, None))
    db = store._db
    with db:
        db.execute("begin")
        before = db.execute("select max(rowid) from lines").fetchone()[0] or 0
        db.executemany("insert into lines values (?,?,?,?,?,?,?,?,?,?,?)", rows)
        store.index.add_new(before)  # as Store's commit does
    store.index.catch_up()  # and indexed, as a peer does a moment after its commit
    store.close()
    return time.perf_counter() - began


def timed(store: Store, query: Query) -> tuple[float, int]:
    """One search as a pool thread runs it (``SearchIndex._search``, on this thread's own
    read-only connection, made once and kept, as a pool thread keeps its): (ms, hits)."""
    began = time.perf_counter()
    hits = store.index._search(query, SEARCH_MAX_HITS)
    return (time.perf_counter() - began) * 1000, len(hits)


def run(count: int, rounds: int) -> dict:
    figures: dict = {"lines": count, "target_ms": TARGET_MS}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "history.sqlite3")
        figures["fill_s"] = fill(path, count)
        figures["file_mb"] = os.path.getsize(path) / 2**20
        store = Store(path, max_lines=count * 2, max_bytes=1 << 40)
        searches = {}
        for name, query in SEARCHES.items():
            times = []
            hits = 0
            for _ in range(max(1, rounds)):
                ms, hits = timed(store, query)
                times.append(ms)
            searches[name] = {"median_ms": statistics.median(times), "max_ms": max(times),
                              "hits": hits}
        figures["fts"] = store.index.fts
        store.close()
    figures["searches"] = searches
    figures["worst_median_ms"] = max(s["median_ms"] for s in searches.values())
    return figures


def render(f: dict) -> str:
    lines = [f"/search over {f['lines']:,} lines ({'FTS5' if f['fts'] else 'LIKE fallback'};"
             f" file {f['file_mb']:.0f} MB, filled in {f['fill_s']:.1f} s), milliseconds:"]
    for name, s in f["searches"].items():
        lines.append(f"  {name:<16} median {s['median_ms']:7.1f}  max {s['max_ms']:7.1f}  "
                     f"({s['hits']} hits)")
    verdict = "within" if f["worst_median_ms"] <= f["target_ms"] else "OVER"
    lines.append(f"  worst median {f['worst_median_ms']:.1f} ms: {verdict} the "
                 f"{f['target_ms']:.0f} ms target")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__)
    p.add_argument("--lines", type=int, default=1_000_000, help="lines in the file [1000000]")
    p.add_argument("--rounds", type=int, default=5, help="times each search is run [5]")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    figures = run(max(1, a.lines), a.rounds)
    print(json.dumps(figures, indent=1) if a.json else render(figures))


if __name__ == "__main__":
    main()
