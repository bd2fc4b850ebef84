"""A LAN of any shape, made of network namespaces (issue 17): each host is a namespace, and each
edge of the graph is a cable of its own (a veth pair, one end in each of the two hosts, on a
subnet of its own), so a host on two edges is a peer on two LANs and two hosts with no edge
between them can't reach each other at all (no routes, no forwarding)::

    Graph(3, [(1, 2), (2, 3)])      h1 -- h2 -- h3           (A - B - C)
    Graph(5, ring(5))               h1 -- h2 -- ... -- h5 -- h1

A peer runs with ``--interface`` listing its host's addresses (one per edge).  Made and torn
down as ``netns.Lab`` (uniquely named namespaces, killed by pid, deleted; nothing in the root
namespace).
"""

from __future__ import annotations

import os
import time

from tests import netns
from tests.netns import IP, Lab, LabError, NsPeer, _catch_termination, _run, peer_argv


def chain(count: int) -> list[tuple[int, int]]:
    return [(i, i + 1) for i in range(1, count)]


def ring(count: int) -> list[tuple[int, int]]:
    return chain(count) + [(count, 1)]


class GraphHost:
    def __init__(self, lab: Graph, index: int) -> None:
        self.index = index
        self.ns = f"{lab.prefix}-h{index}"
        #: (device, address) per edge it is on
        self.legs: list[tuple[str, str]] = []

    @property
    def addresses(self) -> list[str]:
        return [address for _, address in self.legs]

    def __repr__(self) -> str:
        return f"<GraphHost {self.ns} {self.addresses}>"


class Graph(Lab):
    """``count`` hosts and one cable per edge (1-based host numbers)."""

    def __init__(self, count: int, edges: list[tuple[int, int]]) -> None:
        super().__init__(0)
        self.edges = edges
        self.nodes = [GraphHost(self, i) for i in range(1, count + 1)]

    def create(self) -> None:
        _catch_termination()
        with netns._LABS_LOCK:
            netns._LABS.add(self)
        try:
            for host in self.nodes:
                self._ns_add(host.ns)
                self.ip(host.ns, "link", "set", "lo", "up")
            for e, (i, j) in enumerate(self.edges):
                a, b = self.nodes[i - 1], self.nodes[j - 1]
                dev_a, dev_b = f"g{self.token}e{e}a", f"g{self.token}e{e}b"
                _run([IP, "link", "add", dev_a, "netns", a.ns, "type", "veth", "peer", "name",
                      dev_b, "netns", b.ns])
                for host, dev, other in ((a, dev_a, i), (b, dev_b, j)):
                    address = f"10.214.{e + 1}.{10 + other}"
                    self.ip(host.ns, "addr", "add", f"{address}/24", "dev", dev)
                    self.ip(host.ns, "link", "set", dev, "up")
                    if not host.legs:
                        self.ip(host.ns, "route", "add", "224.0.0.0/4", "dev", dev)
                    host.legs.append((dev, address))
            self._wait_legs_up()
        except BaseException:
            self.teardown()
            raise

    def _wait_legs_up(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            pending = [(h.ns, dev) for h in self.nodes for dev, _ in h.legs
                       if "LOWER_UP" not in self.ip(h.ns, "link", "show", dev).stdout]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise LabError(f"cables not up after {timeout} s: {pending}")
            time.sleep(0.1)

    def start_on(self, index: int, nick: str, multicast: tuple[str, int], data_dir: str,
                 *extra: str) -> NsPeer:
        """A peer on host ``index`` (1-based), on every cable of that host."""
        host = self.nodes[index - 1]
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
        argv = [IP, "netns", "exec", host.ns,
                *peer_argv(nick, multicast, data_dir, ",".join(host.addresses), *extra)]
        peer = NsPeer(nick, argv, data_dir)
        self.peers.append(peer)
        return peer
