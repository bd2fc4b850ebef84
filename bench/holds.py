"""Reading the stall probe (p2pchat/lateness.py) from the bench: every peer spawned inside
``probing()`` runs the probe, which logs the worst of each second into the peer's log; a
``Watch`` notes where each log ended when some work began and reads the worst logged since.
Used by the stall phase (bench/stall.py), the day of catch-up (bench/day.py) and the file
transfer (bench/files.py).
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import Iterator

from bench.procs import Child, Children
from p2pchat.lateness import PROBE_ENV

#: What the probe logs (lateness.StallProbe._tick): its lateness, then the CPU held.
PROBE_LINE = re.compile(rb"stall probe: worst ([0-9.]+) ms late, ([0-9.]+) ms of CPU")


@contextlib.contextmanager
def probing() -> Iterator[None]:
    """Children spawned inside run the probe (the variable is put back as it was after)."""
    before = os.environ.get(PROBE_ENV)
    os.environ[PROBE_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PROBE_ENV, None)
        else:
            os.environ[PROBE_ENV] = before


def log_of(child: Child) -> str:
    """The peer's log file (its data dir is the argument after --data-dir)."""
    argv = child.argv
    return os.path.join(argv[argv.index("--data-dir") + 1], "p2pchat.log")


def log_end(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def worst_since(path: str, offset: int, cpu: bool = True) -> float | None:
    """The worst the probe logged after ``offset`` bytes of its log, in ms: the most CPU
    used between two of its ticks (``cpu``: the reactor held, whatever the machine's load),
    else the worst lateness (which also counts waiting for a core)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read()
    except OSError:
        return None
    found = [float(m.group(2 if cpu else 1)) for m in PROBE_LINE.finditer(text)]
    return max(found) if found else None


def after_report(kids: Children) -> None:
    """Wait past the probe's next report (it logs once a second)."""
    kids.sleep(1.3)


class Watch:
    """Where each peer's log ended when some work began."""

    def __init__(self, children: list[Child]) -> None:
        self.marks = {c.name: (log_of(c), log_end(log_of(c))) for c in children}

    def worst(self, child: Child, cpu: bool = True) -> float | None:
        path, offset = self.marks[child.name]
        return worst_since(path, offset, cpu)

    def both(self, child: Child) -> dict[str, float] | None:
        """The CPU held and the lateness, ms (None before the probe's first report)."""
        cpu, wall = self.worst(child), self.worst(child, cpu=False)
        return None if cpu is None or wall is None else {"cpu": cpu, "wall": wall}
