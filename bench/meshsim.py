"""A mesh of real Nodes in one process with no sockets (bench/gossip.py, tests/test_gossip.py):
each link is a pair of in-memory wires that hand each other's bytes to the other node (parsed
as the mesh does), delivered when the caller says (``Sim.run``), so any topology (a chain, a
ring) can be built and cut at will under one ``task.Clock``.  Every byte written is counted,
per node."""

from __future__ import annotations

from collections import deque

from twisted.internet.task import Clock

from p2pchat import events, wire
from p2pchat.identity import Identity
from p2pchat.node import Node


class SimWire:
    """One end of a simulated link: what ``node`` writes goes to ``other``'s node."""

    def __init__(self, sim: Sim, node: Node, remote: Node, dialer_id: str) -> None:
        self.sim = sim
        self.node = node
        self.nick = node.nick  # as it started (bytes are counted under it)
        self.remote = remote
        self.peer_id = remote.peer_id
        self.username = remote.nick
        self.caps = remote.caps
        assert remote.identity is not None
        self.fp = remote.identity.fingerprint
        self.pk = remote.identity.public_key_b64()
        self.address = f"sim:{remote.nick}"
        self.dialer_id = dialer_id
        self.tls = "TLSv1.3"
        self.last_heard = 0.0
        self.backed_up = False
        self.other: SimWire | None = None
        self.closed: str | None = None

    def send(self, msg: wire.Message) -> None:
        self.send_bytes(wire.encode_message(msg))

    def send_bytes(self, data: bytes) -> None:
        if self.closed is not None or self.other is None:
            return
        self.sim.bytes_sent[self.nick] += len(data)
        self.sim.queue.append((self.other, data))

    def close(self, why: str) -> None:
        self.sim.cut_wire(self, why)

    abort = close


class Sim:
    """Nodes by nick, linked as the test says."""

    def __init__(self, nicks: list[str]) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.nodes: dict[str, Node] = {}
        self.heard: dict[str, list[events.Event]] = {}
        self.bytes_sent: dict[str, int] = {}
        self.queue: deque[tuple[SimWire, bytes]] = deque()
        self.wires: dict[frozenset[str], tuple[SimWire, SimWire]] = {}
        #: copies of chat lines that reached a node (directly or in a relay line)
        self.copies = 0
        for nick in nicks:
            node = Node(nick, self.clock, identity=Identity.generate())
            self.nodes[nick] = node
            self.heard[nick] = []
            self.bytes_sent[nick] = 0
            node.subscribe(self.heard[nick].append)

    def link(self, a: str, b: str) -> None:
        na, nb = self.nodes[a], self.nodes[b]
        dialer = min(na.peer_id, nb.peer_id)
        wa, wb = SimWire(self, na, nb, dialer), SimWire(self, nb, na, dialer)
        wa.other, wb.other = wb, wa
        wa.last_heard = wb.last_heard = self.clock.seconds()
        self.wires[frozenset((a, b))] = (wa, wb)
        assert na.link_ready(wa) and nb.link_ready(wb)
        self.run()

    def cut(self, a: str, b: str) -> None:
        wa, _ = self.wires[frozenset((a, b))]
        self.cut_wire(wa, "cut")

    def cut_wire(self, w: SimWire, why: str) -> None:
        pair = [p for p in self.wires.values() if w in p]
        if not pair:
            return
        for end in pair[0]:
            end.closed = why
        del self.wires[next(k for k, v in self.wires.items() if v is pair[0])]
        for end in pair[0]:
            end.node.link_lost(end, why)

    def run(self, limit: int = 100_000) -> None:
        """Deliver everything written (and what that writes), then fire due timers."""
        for _ in range(limit):
            if not self.queue:
                self.clock.advance(0.06)  # acks, next turns
                if not self.queue:
                    return
                continue
            target, data = self.queue.popleft()
            if target.closed is not None:
                continue
            raw = data.rstrip(b"\n")
            target.last_heard = self.clock.seconds()
            msg = wire.parse_message(raw)
            if msg.type == "chat":
                self.copies += 1
            elif msg.type == "relay":
                self.copies += sum('"type":"chat"' in x for x in (msg.metadata or {}).get(
                    "lines", []))
            target.node.message_received(target, msg, raw)
        raise AssertionError("the simulated mesh never went quiet")

    def tick(self, seconds: float) -> None:
        """Let ``seconds`` pass, a second at a time, with the node's sweeps."""
        for _ in range(int(seconds)):
            self.clock.advance(1.0)
            for node in self.nodes.values():
                node.sweep()
            self.run()

    def said(self, nick: str) -> list[str]:
        """What ``nick`` was shown of others' room lines, in order: 'author: text'."""
        return [f"{e.nick}: {e.text}" for e in self.heard[nick]
                if isinstance(e, events.ChatLine) and not e.own]
