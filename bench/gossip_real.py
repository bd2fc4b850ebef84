"""``python -m bench.gossip --real``: the same figures as bench/gossip.py, with real peers
(``twistd -n p2pchat --ui lines``) on hosts made of network namespaces wired as a full mesh,
a chain or a ring (tests/netgraph.py: one cable per edge, so only the links asked for can
exist).  Bytes are what the hosts' cables carried (``tx_bytes`` of every veth, so TCP, IP
and TLS are in), while the lines went out, less what the same peers send idle over as long
(member lines, heartbeats, beacons), over the deliveries.  Needs root and ``ip netns``.

A full mesh here is 45 cables, so 10 peers each with 9 interfaces and 9 beacons a round.
"""

from __future__ import annotations

import json
import os
import tempfile
import time

from tests import netns
from tests.netgraph import Graph
from tests.netns import chat_texts
from tests.support import fresh_multicast

#: how long 10 fresh peers may take to reach each other (2 cores, shared)
SETTLE_TIMEOUT = 120.0
#: how long the idle traffic is measured (two rounds of member lines)
IDLE_WINDOW = 20.0


def _tx_bytes(lab: Graph) -> int:
    total = 0
    for host in lab.nodes:
        for dev, _ in host.legs:
            out = lab.ip(host.ns, "-s", "-j", "link", "show", dev).stdout
            total += int(json.loads(out)[0]["stats64"]["tx"]["bytes"])
    return total


def _reached(peer, count: int) -> bool:
    mark = peer.mark()
    peer.send("/users")
    try:
        peer.wait_for(lambda ls: any(" connected, " in x for x in ls), 10.0, start=mark)
    except AssertionError:
        return False
    time.sleep(0.3)
    rows = peer.since(mark)
    start = next(i for i, x in enumerate(rows) if " connected, " in x)
    return sum(1 for r in rows[start + 1:] if " connected " in r or " relayed " in r) >= count


def measure(shape_edges: list[tuple[int, int]], shape: str, count: int, lines: int) -> dict:
    lab = Graph(count, [(a + 1, b + 1) for a, b in shape_edges])
    lab.create()
    work = tempfile.mkdtemp(prefix="p2pchat-gossip-")
    try:
        group = fresh_multicast()
        peers = [lab.start_on(i, f"p{i}", group, os.path.join(work, f"p{i}"))
                 for i in range(1, count + 1)]
        deadline = time.monotonic() + SETTLE_TIMEOUT
        pending = list(peers)
        while pending and time.monotonic() < deadline:
            pending = [p for p in pending if not _reached(p, count - 1)]
        if pending:
            return {"shape": shape, "status": "timed out",
                    "pending": [p.nick for p in pending]}
        time.sleep(3.0)
        marks = [p.mark() for p in peers]
        before, began = _tx_bytes(lab), time.monotonic()
        for k in range(lines):
            peers[k % count].send(f"g-{k}")
            time.sleep(0.01)
        want = {f"g-{k}" for k in range(lines)}

        def done() -> bool:
            return all(len({t for _, t in chat_texts(p.drain()[m:]) if t in want})
                       >= lines - (lines // count + 1) for p, m in zip(peers, marks))
        while not done() and time.monotonic() - began < 60:
            time.sleep(0.2)
        time.sleep(1.0)
        took = time.monotonic() - began
        busy = _tx_bytes(lab) - before
        deliveries = sum(len([t for _, t in chat_texts(p.drain()[m:]) if t in want])
                         - len([k for k in range(lines) if k % count == i])
                         for i, (p, m) in enumerate(zip(peers, marks)))
        # what they send meanwhile anyway, over two rounds of member lines
        idle_from, idle_began = _tx_bytes(lab), time.monotonic()
        time.sleep(IDLE_WINDOW)
        rate = (_tx_bytes(lab) - idle_from) / (time.monotonic() - idle_began)
        return {"shape": shape, "status": "ok", "peers": count, "links": len(shape_edges),
                "deliveries": deliveries, "expected": lines * (count - 1),
                "bytes_per_delivery": (busy - rate * took) / max(1, deliveries),
                "idle_bytes_per_s": rate, "seconds": took}
    finally:
        lab.teardown()


def run(count: int, lines: int, edges) -> dict:
    reason = netns.why_unavailable()
    if reason:
        return {"status": reason}
    out = {shape: measure(edges(shape, count), shape, count, lines)
           for shape in ("full", "chain", "ring")}
    base = out["full"].get("bytes_per_delivery")
    for r in out.values():
        if base and "bytes_per_delivery" in r:
            r["ratio"] = r["bytes_per_delivery"] / base
    return out


def render(result: dict) -> str:
    if "status" in result:
        return f"Gossip with real peers: {result['status']}"
    shapes = ("full", "chain", "ring")
    rows = [f"{'Gossip, real peers in namespaces':<36}" + "".join(f"{s:>12}" for s in shapes)]

    def row(name: str, fmt: str, key: str) -> str:
        return f"{name:<36}" + "".join(
            f"{fmt.format(result[s][key]) if key in result[s] else result[s]['status']:>12}"
            for s in shapes)
    rows += [row("links", "{}", "links"), row("deliveries", "{}", "deliveries"),
             row("expected", "{}", "expected"),
             row("bytes/line delivered (TCP+TLS)", "{:.0f}", "bytes_per_delivery"),
             row("ratio to the full mesh", "{:.2f}", "ratio"),
             row("idle bytes/s, all peers", "{:.0f}", "idle_bytes_per_s")]
    return "\n".join(rows)
