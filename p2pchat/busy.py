"""How saturated the machine is, for the timeouts that judge a peer too slow.

A crowd of peers starting at once on a small machine (a room of 100 on 2 cores) saturates it
for a minute: every process gets a few percent of a core, and a handshake, a dial or a probe
that takes 1 s on an idle machine takes 20.  Timeouts fixed for an idle machine then cut live
connections, whose redials add to the load that slowed them.  So those timeouts are
multiplied by ``load_factor()``: the 1-minute load average per core, at least 1 and at most
``MAX_LOAD_FACTOR``.  On an idle machine nothing changes.
"""

from __future__ import annotations

import os
from typing import Callable

#: The most a timeout grows under load.
MAX_LOAD_FACTOR = 6.0


def _load_per_core() -> float:
    try:
        return os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:  # no load average on this system
        return 1.0


#: Where the load comes from (tests pin it).
source: Callable[[], float] = _load_per_core


def load_factor() -> float:
    """How many times longer than on an idle machine a slow peer is given."""
    return min(MAX_LOAD_FACTOR, max(1.0, source()))
