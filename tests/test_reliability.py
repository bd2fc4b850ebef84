"""Reliability on real loopback sockets: catch-up across a dropped link, a peer that never
reads, and a battery of bad input, after which the mesh still works."""

from __future__ import annotations

import json
import socket

import pytest_twisted
from twisted.internet import protocol, reactor
from twisted.internet.task import deferLater
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

from p2pchat import events, handshake, mesh, wire
from p2pchat.peers import MAX_PEERS
from tests.support import LOOPBACK, InProcessPeer, fresh_multicast, wait_for


def heard(peer: InProcessPeer, nick: str | None = None) -> list[str]:
    return [e.text for e in peer.events if isinstance(e, events.ChatLine) and not e.own
            and (nick is None or e.nick == nick)]


async def pair() -> tuple[InProcessPeer, InProcessPeer]:
    group = fresh_multicast()
    a, b = InProcessPeer("alice", group), InProcessPeer("bob", group)
    await a.start()
    await b.start()
    await wait_for(lambda: len(a.node.links) == 1 and len(b.node.links) == 1, timeout=5)
    return a, b


class Raw(protocol.Protocol):
    """A hand-driven TCP client: writes what it is told, keeps what it gets."""

    def __init__(self) -> None:
        self.data = b""
        self.lost = False

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason=None) -> None:
        self.lost = True


async def raw(peer: InProcessPeer) -> Raw:
    endpoint = TCP4ClientEndpoint(reactor, LOOPBACK, peer.node.port, timeout=5)
    return await connectProtocol(endpoint, Raw())


def join_line(sender: str, caps: tuple[str, ...] = ()) -> bytes:
    return wire.encode_message(wire.Message(id=wire.new_message_id(), type="join",
                                            sender_id=sender, username=sender, caps=caps))


def chat_line(sender: str, text: str) -> bytes:
    return wire.encode_message(wire.Message(id=wire.new_message_id(), type="chat",
                                            sender_id=sender, username=sender, content=text,
                                            timestamp=1.0))


@pytest_twisted.ensureDeferred
async def test_lines_said_while_the_link_is_down_arrive_once_in_order() -> None:
    a, b = await pair()
    try:
        a.node.say("a0")
        await wait_for(lambda: heard(b) == ["a0"])
        # Cut the link and talk at once on both sides: what is written now dies with the
        # connection; the redial (at once) and the catch-up must bring it all back.
        next(iter(a.node.links.values())).wire.transport.abortConnection()
        for i in range(1, 6):
            a.node.say(f"a{i}")
            b.node.say(f"b{i}")
        await wait_for(lambda: len(heard(b)) == 6 and len(heard(a)) == 5, timeout=10)
        assert heard(b) == [f"a{i}" for i in range(6)]
        assert heard(a) == [f"b{i}" for i in range(1, 6)]
        # every own line ends up delivered
        own = {e.message_id for e in a.events if isinstance(e, events.ChatLine) and e.own}
        await wait_for(lambda: own <= {e.message_id for e in a.events
                                       if isinstance(e, events.Delivered)})
    finally:
        await a.stop()
        await b.stop()


@pytest_twisted.ensureDeferred
async def test_a_peer_that_never_reads_is_dropped_and_others_unaffected(monkeypatch) -> None:
    monkeypatch.setattr(mesh, "STALL_TIMEOUT", 2.0)
    a, b = await pair()
    lazy = None
    try:
        lazy = await raw(a)
        lazy.transport.write(join_line("lazy_1", caps=(wire.CAP_OURS,)))
        await wait_for(lambda: "lazy_1" in a.node.links)
        lazy.transport.pauseProducing()  # never reads again
        link = a.node.links["lazy_1"]
        text = "x" * 3900
        for i in range(3000):  # ~12 MB, far past what the kernel holds for a socket
            a.node.say(f"{i} {text}")
        await wait_for(lambda: len(heard(b)) == 3000, timeout=30)
        assert [t.split(" ")[0] for t in heard(b)] == [str(i) for i in range(3000)]
        # what waits for the lazy peer is not buffered: its cursor stays behind, and the
        # transport holds at most its 64 KiB high-water mark and one line
        assert link.backed_up and link.cursor < a.node.run_start + 3000
        buffered = len(link.wire.transport.dataBuffer) + link.wire.transport._tempDataLen
        assert buffered <= 64 * 1024 + 4096, buffered
        await wait_for(lambda: "lazy_1" not in a.node.links, timeout=10)
        assert b.node.peer_id in a.node.links
    finally:
        if lazy is not None:
            lazy.transport.abortConnection()
        await a.stop()
        await b.stop()


@pytest_twisted.ensureDeferred
async def test_bad_input_battery(monkeypatch) -> None:
    monkeypatch.setattr(handshake, "HANDSHAKE_TIMEOUT", 0.5)
    a, b = await pair()
    conns: list[Raw] = []
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        # a joined peer sending every kind of bad line: each skipped, link kept
        bad = await raw(a)
        conns.append(bad)
        bad.transport.write(join_line("bad_1"))
        await wait_for(lambda: "bad_1" in a.node.links)
        for junk in (b"not json", b'{"id":1}', b"\xff\xfe\xfd", b'{"a":"\x00"}',
                     b"[" * 20_000 + b"]" * 20_000, b'{"id":"x","type":"chat","sender_id":'
                     b'"bad_1","sequence":1e400}', b'{"id":"y","type":"chat","sender_id":'
                     b'"bad_1","sequence":123456789012345678901234567890}'):
            bad.transport.write(junk + b"\n")
        bad.transport.write(chat_line("bad_1", "nul\x00inside"))
        await wait_for(lambda: "nul\ufffdinside" in heard(a))
        assert not bad.lost

        # speaking for another peer: refused, never shown as bob, connection closed
        bad.transport.write(chat_line(b.node.peer_id, "I am bob"))
        await wait_for(lambda: bad.lost)
        assert "I am bob" not in heard(a)

        # a 10 MB line with no newline: closed
        huge = await raw(a)
        conns.append(huge)
        huge.transport.write(join_line("huge_1"))
        huge.transport.write(b"y" * 10_000_000)
        await wait_for(lambda: huge.lost, timeout=10)

        # silent connections: closed after the handshake timeout; hundreds of them at once
        idle = [await raw(a) for _ in range(200)]
        conns.extend(idle)
        await wait_for(lambda: all(c.lost for c in idle), timeout=10)

        # a flood of lines from one connection: read at a bounded rate, all processed
        flood = await raw(a)
        conns.append(flood)
        flood.transport.write(join_line("flood_1") + b"".join(
            chat_line("flood_1", f"f{i}") for i in range(30_000)))
        await wait_for(lambda: len(heard(a, "flood_1")) == 30_000, timeout=30)

        # datagrams: garbage, oversized, thousands of fake peers, a forged leave for bob
        group, port = a.service.group, a.service.group_port
        udp.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(LOOPBACK))
        udp.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        udp.sendto(b"garbage", (group, port))
        udp.sendto(b"{" + b" " * 2000 + b"}", (group, port))
        now = wire.format_time(reactor.seconds())
        for i in range(2000):  # in batches, so the kernel's receive buffer keeps up
            fake = {"type": "announce", "peer_id": f"ghost_{i:05d}", "username": "ghost",
                    "port": 1 + i, "timestamp": now}
            udp.sendto(json.dumps(fake).encode(), (group, port))
            if i % 50 == 49:
                await deferLater(reactor, 0.01, lambda: None)
        forged = {"type": "leave", "peer_id": b.node.peer_id, "username": "bob", "port": 1,
                  "timestamp": now}
        udp.sendto(json.dumps(forged).encode(), (group, port))
        await wait_for(lambda: len(a.node.peers) >= MAX_PEERS - 1, timeout=10)
        assert len(a.node.peers) <= MAX_PEERS

        # after all that, alice and bob still chat both ways over the same link
        assert b.node.peer_id in a.node.links
        a.node.say("still here?")
        b.node.say("yes")
        await wait_for(lambda: "still here?" in heard(b) and "yes" in heard(a))
    finally:
        udp.close()
        for conn in conns:
            if not conn.lost:
                conn.transport.abortConnection()
        await a.stop()
        await b.stop()
