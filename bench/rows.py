"""``python -m bench.rows``: what making one history row costs, behind the burst.

A line received or said is jotted down at once and made a SQLite row a moment later
(jotting.py): that row is paid by the same CPU that reads and says lines (a sender's burst
past BEHIND_MAX_ROWS makes its oldest rows on the path).  This times, in one process on a
file in a temporary directory, the store keeping ``--lines`` lines, in reads of READ_LINES:
jotted and made rows (all of it, whether behind the burst or, past BEHIND_MAX_ROWS, on the
path).  Lines of a linked peer (signed bytes kept to hand on, ``remember_rows``: a read's
run) and our own lines said in a burst (``save_said``: the history and the sent log), into a
new file and, with ``--history``, into a copy of one of that many lines; then, apart, what
indexing those lines for /search costs a line (index.py does it in steps a moment after the
commit, off the path but on the same CPU).  Prints CPU microseconds per line (the median of
``--rounds``) and the load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from typing import Any, Callable

from p2pchat.store import Store
from p2pchat.wire import CHAT, Message, encode_message

TEXT = "a line of an ordinary length, as people type them in a chat"
SIG = "s" * 86 + "=="
#: Lines of one read (or one run said), jotted together.
READ_LINES = 256


def _heard(count: int, first: int) -> list[tuple[Any, ...]]:
    """Rows of a read's run (reading.py's shape): signed lines of one author, to hand on."""
    rows = []
    for n in range(first, first + count):
        msg = Message(f"h{n:015x}", CHAT, "carol_1", "carol", f"{TEXT} {n}", 1.7e9 + n, n + 1,
                      "general", {"sig": SIG})
        rows.append((msg.id, "general", "carol_1", "carol", msg.content, False, False,
                     1.7e9 + n, n + 1, encode_message(msg).rstrip(b"\n"), "K" * 43 + "="))
    return rows


def _said(count: int, first: int) -> list[tuple[Message, bytes]]:
    said = []
    for n in range(first, first + count):
        msg = Message(f"s{n:015x}", CHAT, "alice_1", "alice", f"{TEXT} {n}", 1.7e9 + n, n + 1,
                      "general", {"sig": SIG})
        said.append((msg, encode_message(msg)))
    return said


def _cpu(run: Callable[[], None]) -> float:
    began = time.process_time()
    run()
    return time.process_time() - began


def kept(store: Any, count: int, read_lines: int,
         index: Callable[[], Any]) -> tuple[float, float, float]:
    """CPU seconds of ``store`` (a Store, or anything with its ``remember_rows``,
    ``save_said`` and ``flush``: bench/readrows.py's prototype) keeping ``count`` heard
    lines, then ``count`` said, in reads of ``read_lines``; then of ``index()``."""
    heard_rows = _heard(count, 0)
    said = _said(count, 0)

    def hear() -> None:
        for first in range(0, count, read_lines):
            store.remember_rows(heard_rows[first:first + read_lines])
        store.flush()

    def say() -> None:
        for first in range(0, count, read_lines):
            store.save_said(said[first:first + read_lines])
        store.flush()

    return _cpu(hear), _cpu(say), _cpu(index)


def one(path: str, count: int, read_lines: int = READ_LINES) -> dict[str, float]:
    """Per line: ``count`` heard lines kept, then ``count`` said lines, in reads (or runs) of
    ``read_lines``, jotted and made rows (those past BEHIND_MAX_ROWS at once, the rest at the
    end: ``flush``)."""
    store = Store(path, call_soon=lambda f: None)
    # (then what the /search index's steps do a moment later)
    heard, own, indexed = kept(store, count, read_lines, store.index.catch_up)
    store.close()
    return {"heard_us_per_line": heard / count * 1e6, "said_us_per_line": own / count * 1e6,
            "search_us_per_line": indexed / (2 * count) * 1e6}


def kept_file(folder: str, lines: int) -> str:
    path = os.path.join(folder, "kept.sqlite3")
    store = Store(path, call_soon=lambda f: None)
    for first in range(0, lines, 50_000):
        store.remember_rows(_heard(min(50_000, lines - first), 1_000_000 + first))
        store.flush()
    store.index.catch_up()
    store._db.execute("pragma wal_checkpoint(truncate)")
    store.close()
    return path


def parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    """The options of this bench and of bench/readrows.py (``--lines``, ``--rounds``)."""
    p = argparse.ArgumentParser(prog=prog, description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lines", type=int, default=10_000, help="lines of each kind [10000]")
    p.add_argument("--rounds", type=int, default=5, help="runs; the median is shown [5]")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m bench.rows", __doc__)
    p.add_argument("--history", type=int, default=0,
                   help="lines already in the file of a second set of runs [0: not run]")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="p2pchat-rows-") as folder:
        kept = kept_file(folder, a.history) if a.history > 0 else None
        for name, source in (("new file", None), (f"a file of {a.history:,} lines", kept)):
            if name != "new file" and source is None:
                continue
            runs = []
            for r in range(a.rounds):
                path = os.path.join(folder, f"run{r}-{len(figures)}.sqlite3")
                if source is not None:
                    shutil.copyfile(source, path)
                runs.append(one(path, a.lines))
            figures[name] = {key: statistics.median(run[key] for run in runs)
                             for key in runs[0]}
    load = os.getloadavg()[0]
    if a.json:
        print(json.dumps({"figures": figures, "load": load}, indent=1))
        return 0
    print(f"Rows made behind the burst, CPU us per line (median of {a.rounds} runs of "
          f"{a.lines} lines; load {load:.2f}):")
    for name, got in figures.items():
        print(figure_line(name, 28, got))
    return 0


def figure_line(name: str, width: int, got: dict[str, float]) -> str:
    """One layout's figures, as this bench and bench/readrows.py print them."""
    return (f"  {name:<{width}} heard {got['heard_us_per_line']:6.2f}  "
            f"said {got['said_us_per_line']:6.2f}  "
            f"then /search index {got['search_us_per_line']:5.2f}")


if __name__ == "__main__":
    raise SystemExit(main())
