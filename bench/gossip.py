"""``python -m bench.gossip`` (and ``python -m bench --only gossip``): what relaying costs
(issue 17.5): bytes sent per line delivered in a chain and a ring of N peers (10) against a
full mesh of N.

Real ``Node`` s (the whole node: signing, the outbox, acks, catch-up, forwarding) in one
process, linked by in-memory wires (bench/meshsim.py) in the shape asked for, under one
``task.Clock``: the figures count the bytes of every line each node writes to its links (the
protocol's own bytes; TLS and TCP add the same share everywhere), so they hold still from run
to run and no process, socket or multicast group is involved.  After the mesh settles (member
lines gone round), each peer says ``--lines`` lines (round-robin); then nothing is said for
``ALIVE_INTERVAL`` seconds, to show what membership alone costs.

- *bytes/line delivered*: every byte written while the lines went out, acks and forwards
  included, over the deliveries (lines x (N - 1)); *ratio*: against the full mesh;
- *copies/delivery*: the lines' copies that reached a peer (directly or in a relay line),
  over the deliveries: 1.0 is no duplicate at all;
- *idle bytes/peer/10 s*: member lines (and their forwards) when nothing is said.
"""

from __future__ import annotations

import argparse
import json

from bench.meshsim import Sim
from p2pchat.gossip import ALIVE_INTERVAL

SHAPES = ("full", "chain", "ring")


def edges(shape: str, count: int) -> list[tuple[int, int]]:
    if shape == "full":
        return [(i, j) for i in range(count) for j in range(i + 1, count)]
    chain = [(i, i + 1) for i in range(count - 1)]
    return chain + ([(count - 1, 0)] if shape == "ring" else [])


def measure(shape: str, count: int, lines: int) -> dict:
    nicks = [f"p{i}" for i in range(count)]
    sim = Sim(nicks)
    for a, b in edges(shape, count):
        sim.link(nicks[a], nicks[b])
    sim.tick(3)  # member lines go round
    for nick in nicks:
        sim.bytes_sent[nick] = 0
    sim.copies = 0
    forwarded = sum(node.forwarder.log.last for node in sim.nodes.values())
    for k in range(lines):
        sim.nodes[nicks[k % count]].say(f"line {k} " + "x" * 60)
        sim.run()
    total = sum(sim.bytes_sent.values())
    deliveries = sum(len(sim.said(n)) for n in nicks)
    copies = sim.copies
    forwarded = sum(node.forwarder.log.last for node in sim.nodes.values()) - forwarded
    for nick in nicks:
        sim.bytes_sent[nick] = 0
    sim.tick(int(ALIVE_INTERVAL))
    return {"shape": shape, "peers": count, "links": len(edges(shape, count)),
            "lines": lines, "deliveries": deliveries, "expected": lines * (count - 1),
            "bytes": total, "bytes_per_delivery": total / max(1, deliveries),
            "copies_per_delivery": copies / max(1, deliveries), "forwarded": forwarded,
            "idle_bytes_per_peer": sum(sim.bytes_sent.values()) / count}


def run(count: int = 10, lines: int = 100) -> dict:
    out = {shape: measure(shape, count, lines) for shape in SHAPES}
    base = out["full"]["bytes_per_delivery"]
    for r in out.values():
        r["ratio"] = r["bytes_per_delivery"] / base
    return out


def render(result: dict) -> str:
    rows = [f"{'Gossip, N peers in one process':<36}" + "".join(f"{s:>12}" for s in SHAPES)]

    def row(name: str, fmt: str, key: str) -> str:
        return f"{name:<36}" + "".join(f"{fmt.format(result[s][key]):>12}" for s in SHAPES)
    rows += [row("peers", "{}", "peers"), row("links", "{}", "links"),
             row("deliveries", "{}", "deliveries"), row("expected", "{}", "expected"),
             row("bytes/line delivered", "{:.0f}", "bytes_per_delivery"),
             row("ratio to the full mesh", "{:.2f}", "ratio"),
             row("copies/delivery", "{:.2f}", "copies_per_delivery"),
             row("forwards (relay lines written)", "{}", "forwarded"),
             row("idle bytes/peer per 10 s", "{:.0f}", "idle_bytes_per_peer")]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gossip", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("--peers", type=int, default=10)
    p.add_argument("--lines", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.add_argument("--real", action="store_true",
                   help="also with real peers on namespace hosts (root; a few minutes)")
    a = p.parse_args(argv)
    result = {"in_process": run(a.peers, a.lines)}
    if a.real:
        from bench import gossip_real
        result["real"] = gossip_real.run(a.peers, a.lines, edges)
    if a.json:
        print(json.dumps(result, indent=2))
    else:
        print(render(result["in_process"]))
        if a.real:
            from bench import gossip_real
            print()
            print(gossip_real.render(result["real"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
