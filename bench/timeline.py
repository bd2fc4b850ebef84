"""How a room formed, from its peers' logs: ``BENCH_DEBUG=1 python -m bench --only mesh
--mesh-sizes N --keep`` starts the peers with ``--debug`` (log lines stamped to the
millisecond) and keeps their data dirs; then ``python -m bench.timeline WORKDIR [PREFIX]``
prints, for the last peer up and for the slowest pairs, when each heard the other's beacon,
dialed, linked, and first heard the other's member line (a peer past a full mesh is listed
at once from it), in seconds from the first peer's start.  PREFIX (``m``: the mesh run's
peers; ``c``: the cost run's) picks the peers."""

from __future__ import annotations

import glob
import os
import re
import sys
from datetime import datetime

from p2pchat.logs import TIME_FORMAT

LINE = re.compile(r"^(\S+) \[([^\]]+)\] (.*)$")
EVENTS = {"disc": re.compile(r"discovered (\w+) at"), "dial": re.compile(r"dialing (\w+) at"),
          "linked": re.compile(r"linked with (\w+) at"),
          "member": re.compile(r"member line of (\w+) first heard, from (\w+) \((\d+) hops")}


def read(workdir: str, prefix: str = "") -> dict[str, dict]:
    """Per peer id: its nick, start, up (listening), and per other peer the first time of
    each event (``member``: (time, via, hops))."""
    peers: dict[str, dict] = {}
    for d in glob.glob(os.path.join(workdir, f"data-{prefix}*")):
        p: dict = {"start": None, "up": None, "nick": None, "pruned": 0,
                   **{k: {} for k in EVENTS}}
        me = None
        for path in sorted(glob.glob(os.path.join(d, "p2pchat.log*")), reverse=True):
            with open(path, errors="replace") as f:
                for line in f:
                    m = LINE.match(line.rstrip("\n"))
                    if not m:
                        continue
                    try:
                        t = datetime.strptime(m.group(1), TIME_FORMAT).timestamp()
                    except ValueError:
                        continue  # not stamped to the ms: an old log
                    text = m.group(3)
                    p["start"] = t if p["start"] is None else min(p["start"], t)
                    up = re.match(r"(\S+) \((\w+)\) listening on TCP port", text)
                    if up:
                        p["nick"], me, p["up"] = up.group(1), up.group(2), t
                    p["pruned"] += "pruned: " in text
                    for kind, rx in EVENTS.items():
                        e = rx.match(text)
                        if e:
                            value = (t, e.group(2), int(e.group(3))) if kind == "member" else t
                            p[kind].setdefault(e.group(1), value)
        if me:
            peers[me] = p
    return peers


def listed(p: dict, other: str) -> float | None:
    """When peer ``p`` listed ``other``: its link, or the first member line of it."""
    times = [x for x in (p["linked"].get(other), (p["member"].get(other) or (None,))[0])
             if x is not None]
    return min(times) if times else None


def main(argv: list[str]) -> int:
    peers = read(argv[0], argv[1] if len(argv) > 1 else "")
    if not peers:
        print("no --debug logs there (BENCH_DEBUG=1 and --keep)")
        return 1
    t0 = min(p["start"] for p in peers.values())
    nick = {i: p["nick"] for i, p in peers.items()}
    up = {i: p["up"] for i, p in peers.items()}
    last = max(peers, key=lambda i: up[i])

    def at(t: float | None) -> str:
        return "-" if t is None else f"+{t - t0:.2f}"

    def spread(ts: list[float]) -> str:
        ts = sorted(ts)
        return (f"n={len(ts)} first {at(ts[0])} median {at(ts[len(ts) // 2])} last "
                f"{at(ts[-1])}") if ts else "none"

    pairs = [(w - max(up[a], up[b]), w, a, b) for a in peers for b in peers if a != b
             for w in [listed(peers[a], b)] if w is not None]
    done = max(w for _, w, _, _ in pairs) if pairs else None
    print(f"{len(peers)} peers; last up {nick[last]} at {at(up[last])}; everyone listed "
          f"everyone at {at(done)} ({(done or 0) - up[last]:.2f} s after the last up); "
          f"{sum(p['pruned'] for p in peers.values())} prunes")
    lp = peers[last]
    print(f"the last peer {nick[last]}: started {at(lp['start'])}, up {at(up[last])}")
    print("  others heard its beacon:", spread([p["disc"][last] for i, p in peers.items()
                                               if last in p["disc"]]))
    print("  it dialed:", spread(list(lp["dial"].values())))
    print("  its links up:", spread(list(lp["linked"].values())))
    print("  others listed it:", spread([w for i, p in peers.items() if i != last
                                         for w in [listed(p, last)] if w is not None]))
    print("  it listed others:", spread([w for i in peers if i != last
                                         for w in [listed(lp, i)] if w is not None]))
    pairs.sort()
    for wait, w, a, b in pairs[-5:]:
        pa, pb = peers[a], peers[b]
        m = pa["member"].get(b)
        print(f"slow pair: {nick[a]} listed {nick[b]} {wait:.2f} s after both up ({at(w)}); "
              f"{nick[b]} up {at(up[b])}, its first link {at(min(pb['linked'].values(), default=None))}"
              + (f", its member line came {m[2]} hops via {nick.get(m[1])}" if m else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
