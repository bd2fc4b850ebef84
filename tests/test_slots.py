"""Floods of made-up peers (issue 15): the peer table, link slots, the signature budget,
rogue beacons at a peer's address, --secure-only redials, and a replayed beacon's address."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
import pytest_twisted
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from p2pchat import events, node as node_module, presence, slots, wire
from p2pchat.identity import Identity, Pins, peer_id_for
from p2pchat.node import MAX_LINKS, Node
from p2pchat.peers import Heard, PeerTable
from p2pchat.slots import RESERVED_KNOWN, VERIFY_BURST, VERIFY_RATE, VerifyBudget
from p2pchat.trust import Trust
from p2pchat.wire import CAP_OURS, CAP_TLS, Beacon

from tests.fakes import FakeAnnouncer, FakeDialer, FakeLink
from tests.support import fresh_multicast, wait_for
from tests.test_security import secure_peer


def fake_fp(n: int) -> str:
    return hashlib.sha256(f"key {n}".encode()).hexdigest()


def unsigned(peer_id: str, now: float, port: int = 8000, name: str = "") -> Beacon:
    return Beacon(type="announce", peer_id=peer_id, username=name or peer_id, port=port,
                  timestamp=now)


def on_wire(beacon: Beacon) -> Beacon:
    return wire.parse_beacon(wire.encode_beacon(beacon))


class SecureNode(TestCase):
    """A node with a key; ``pins`` holds the keys it knew before this run."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(10_000)
        self.pins = Pins(None)
        self.node = self.make_node()
        self.dialer = self.node.dialer = FakeDialer()
        self.node.announcer = FakeAnnouncer()

    def make_node(self, **trust) -> Node:
        # the smallest id there is, so it dials everyone
        return Node("me", self.clock, peer_id="0", identity=Identity.generate(),
                    trust=Trust(self.pins, **trust))

    def peer(self, nick: str, port: int = 8081) -> Node:
        other = Node(nick, self.clock, identity=Identity.generate())
        other.port = port
        return other

    def stranger(self, n: int) -> FakeLink:
        fp = fake_fp(n)
        link = FakeLink(peer_id_for(fp), f"sybil{n}", caps=(CAP_OURS, CAP_TLS),
                        now=self.clock.seconds())
        link.fp = fp
        return link

    def known(self, n: int) -> FakeLink:
        link = self.stranger(100_000 + n)
        link.username = f"friend{n}"
        self.pins.pin(link.username, link.fp)
        return link


class PeerTableRanks(TestCase):
    def test_a_better_known_newcomer_takes_the_worst_place(self) -> None:
        ranks = {"signed": 1, "friend": 2}
        table = PeerTable(limit=3, rank=lambda pid, nick, fp: ranks.get(pid, 0))
        for i, when in ((0, 5.0), (1, 1.0), (2, 3.0)):
            table.heard(unsigned(f"fake{i}", 0), "10.0.0.9", now=when)
        # another unsigned one: no place (and no scan of the table)
        self.assertIs(table.heard(unsigned("fake9", 0), "10.0.0.9", now=6.0), Heard.FULL)
        # a signed one: the unsigned entry heard longest ago goes
        self.assertIs(table.heard(unsigned("signed", 0), "10.0.0.9", now=6.0), Heard.NEW)
        self.assertEqual([p.peer_id for p in table.evicted], ["fake1"])
        self.assertNotIn("fake1", table)
        table.heard(unsigned("friend", 0), "10.0.0.9", now=7.0)
        self.assertEqual([p.peer_id for p in table.evicted], ["fake2"])
        # equal standing takes nothing: the signed and the friend stay
        ranks["signed2"] = 1
        table.heard(unsigned("fake0", 0), "10.0.0.9", now=8.0)  # a refresh, still there
        self.assertIs(table.heard(unsigned("signed2", 0), "10.0.0.9", now=8.0), Heard.NEW)
        self.assertEqual([p.peer_id for p in table.evicted], ["fake0"])
        self.assertIs(table.heard(unsigned("signed3", 0), "10.0.0.9", now=9.0), Heard.FULL)
        self.assertEqual(sorted(p.peer_id for p in table), ["friend", "signed", "signed2"])


class PeerTableScans(TestCase):
    def test_a_flood_of_signed_newcomers_costs_a_scan_per_second_not_per_beacon(self) -> None:
        calls = [0]

        def rank(pid: str, nick: str, fp: str) -> int:
            calls[0] += 1
            return 1 if fp else 0

        table = PeerTable(limit=256, rank=rank)
        for i in range(256):
            table.heard(Beacon("announce", f"s{i}", "s", 9000, 0.0, fp=fake_fp(i)), "h", 0.0)
        for i in range(10_000):  # as well known as the worst: no place, and few scans
            self.assertIs(table.heard(Beacon("announce", f"n{i}", "n", 9000, 0.0,
                                             fp=fake_fp(10**6 + i)), "h", 0.5), Heard.FULL)
        self.assertLess(calls[0], 3 * 10_000 + 2 * 256)
        # a better one still gets in at once
        ranks_before = calls[0]
        table.rank = lambda pid, nick, fp: 5 if pid == "friend" else rank(pid, nick, fp)
        self.assertIs(table.heard(Beacon("announce", "friend", "f", 9000, 0.0, fp="ab" * 32),
                                  "h", 0.6), Heard.NEW)
        self.assertGreater(calls[0], ranks_before)


class PeerTableFlood(SecureNode):
    def test_a_known_peer_restarting_during_a_flood_is_heard_and_dialed(self) -> None:
        bob = self.peer("bob")
        self.pins.pin("bob", bob.identity.fingerprint)  # known from an earlier run
        now = self.clock.seconds()
        for i in range(1000):  # unsigned fakes on distinct ports
            self.node.beacon_heard(unsigned(f"fake_{i}", now, port=10_000 + i), "10.0.0.66")
        self.assertEqual(len(self.node.peers), 256)
        self.node.beacon_heard(on_wire(bob.beacon("announce")), "10.0.0.2")
        self.assertIn(bob.peer_id, self.node.peers)
        self.assertIn(bob.peer_id, self.dialer.wanted)
        self.assertEqual(len(self.node.peers), 256)
        # the fake that went is forgotten by the dialer too
        self.assertIn("fake_0", self.dialer.dropped)

    def test_a_signed_stranger_takes_an_unsigned_place_but_not_a_known_one(self) -> None:
        self.node.peers.limit = 2
        bob, carol, dave = self.peer("bob"), self.peer("carol", 8082), self.peer("dave", 8083)
        self.pins.pin("bob", bob.identity.fingerprint)
        now = self.clock.seconds()
        self.node.beacon_heard(on_wire(bob.beacon("announce")), "10.0.0.2")
        self.node.beacon_heard(unsigned("fake_1", now), "10.0.0.66")
        self.node.beacon_heard(on_wire(carol.beacon("announce")), "10.0.0.3")
        self.assertEqual({p.peer_id for p in self.node.peers}, {bob.peer_id, carol.peer_id})
        self.node.beacon_heard(on_wire(dave.beacon("announce")), "10.0.0.4")
        self.assertNotIn(dave.peer_id, self.node.peers)  # carol is as well known


class LinkSlots(SecureNode):
    def fill(self, count: int, first: int = 0) -> list[FakeLink]:
        links = []
        for n in range(first, first + count):
            link = self.stranger(n)
            self.assertTrue(self.node.link_ready(link), n)
            self.clock.advance(0.001)
            links.append(link)
        return links

    def test_strangers_hold_at_most_the_unreserved_slots(self) -> None:
        self.fill(MAX_LINKS - RESERVED_KNOWN)
        late = self.stranger(9999)
        self.assertFalse(self.node.link_ready(late))
        self.assertIn("kept for known peers", late.closed)
        self.assertEqual(len(self.node.links), MAX_LINKS - RESERVED_KNOWN)
        # the reserved slots go to known peers, all of them
        for n in range(RESERVED_KNOWN):
            self.assertTrue(self.node.link_ready(self.known(n)), n)
        self.assertEqual(len(self.node.links), MAX_LINKS)

    def test_a_known_peer_finding_every_slot_taken_replaces_the_newest_stranger(self) -> None:
        self.patch(node_module, "MAX_LINKS", 10)
        self.patch(slots, "RESERVED_KNOWN", 4)
        self.fill(4)
        for n in range(4):
            self.assertTrue(self.node.link_ready(self.known(n)))
        strangers = self.fill(2, first=10)  # 6 of 10 strangers; 6 + 4 known = 10 links
        self.assertEqual(len(self.node.links), 10)
        friend = self.known(50)
        self.assertTrue(self.node.link_ready(friend))
        self.assertEqual(len(self.node.links), 10)
        self.assertIn(friend.peer_id, self.node.links)
        self.assertNotIn(strangers[-1].peer_id, self.node.links)  # the newest stranger
        self.assertIn("a known peer", strangers[-1].closed)
        self.assertIn(strangers[0].peer_id, self.node.links)

    def test_a_room_of_100_new_peers_fits(self) -> None:
        self.fill(100)
        self.assertEqual(len(self.node.links), 100)

    def test_a_key_pinned_on_first_use_is_not_known_until_its_link_lasted(self) -> None:
        link = self.stranger(1)
        self.assertTrue(self.node.link_ready(link))
        self.assertEqual(self.pins.get(link.username), link.fp)  # trust on first use
        self.assertFalse(self.node.standing.known(link.peer_id, link.username, link.fp))
        self.clock.advance(1)
        self.node.link_lost(link, "gone")
        self.assertFalse(self.node.standing.known(link.peer_id, link.username, link.fp))
        again = self.stranger(1)
        self.assertTrue(self.node.link_ready(again))
        self.clock.advance(slots.PROVEN_AFTER)
        self.node.link_lost(again, "gone")
        self.assertTrue(self.node.standing.known(link.peer_id, link.username, link.fp))

    def test_we_do_not_dial_strangers_when_their_slots_are_taken(self) -> None:
        self.fill(MAX_LINKS - RESERVED_KNOWN)
        carol = self.peer("carol")
        self.node.beacon_heard(on_wire(carol.beacon("announce")), "10.0.0.3")
        self.assertNotIn(carol.peer_id, self.dialer.wanted)
        bob = self.peer("bob", 8082)
        self.pins.pin("bob", bob.identity.fingerprint)
        self.node.beacon_heard(on_wire(bob.beacon("announce")), "10.0.0.2")
        self.assertIn(bob.peer_id, self.dialer.wanted)

    def test_a_join_is_refused_before_tls_when_no_slot_is_free(self) -> None:
        self.fill(MAX_LINKS - RESERVED_KNOWN)
        stranger = self.stranger(5000)
        self.assertIn("kept for known peers",
                      self.node.link_offered(stranger.peer_id, stranger.username, stranger.fp))
        friend = self.known(1)
        self.assertIsNone(self.node.link_offered(friend.peer_id, friend.username, friend.fp))


class VerifyBudgetTest(SecureNode):
    def test_bucket(self) -> None:
        budget = VerifyBudget(rate=10, burst=20, total_rate=100)
        self.assertEqual(sum(budget.allow("a", 0.0) for _ in range(50)), 20)
        self.assertEqual(sum(budget.allow("a", 1.0) for _ in range(50)), 10)
        self.assertEqual(sum(budget.allow("b", 1.0) for _ in range(50)), 20)  # its own

    def counting(self) -> list[int]:
        calls = [0]
        real = presence.verify_beacon

        def verify(*args):
            calls[0] += 1
            return real(*args)

        self.patch(presence, "verify_beacon", verify)
        return calls

    def test_signature_checks_per_source_are_bounded(self) -> None:
        calls = self.counting()
        mallory = self.peer("mallory")
        forged = on_wire(dataclasses.replace(mallory.beacon("announce"), sig="A" * 88))
        for _ in range(10_000):
            self.node.beacon_heard(forged, "10.6.6.6")
        self.assertLessEqual(calls[0], VERIFY_BURST)
        self.clock.advance(1.0)
        before = calls[0]
        for _ in range(10_000):
            self.node.beacon_heard(forged, "10.6.6.6")
        self.assertLessEqual(calls[0] - before, VERIFY_RATE + 1)
        # another host still gets its beacons checked
        bob = self.peer("bob")
        self.node.beacon_heard(on_wire(bob.beacon("announce")), "10.0.0.2")
        self.assertIn(bob.peer_id, self.node.peers)

    def test_cheap_checks_come_before_the_signature(self) -> None:
        calls = self.counting()
        bob = self.peer("bob")
        good = on_wire(bob.beacon("announce"))
        self.node.beacon_heard(good, "10.0.0.2")
        self.assertEqual(calls[0], 1)
        for _ in range(100):
            self.node.beacon_heard(good, "10.6.6.6")  # a replay
        wrong_id = on_wire(dataclasses.replace(bob.beacon("announce"), peer_id="someoneelse"))
        self.node.beacon_heard(wrong_id, "10.6.6.6")
        self.assertEqual(calls[0], 1)


class RogueBeaconAtAnAddress(SecureNode):
    def test_a_rogue_signed_beacon_does_not_evict_a_pinned_peer(self) -> None:
        bob = self.peer("bob", 8081)
        self.pins.pin("bob", bob.identity.fingerprint)
        self.node.beacon_heard(on_wire(bob.beacon("announce")), "10.0.0.2")
        rogue = self.peer("rogue", 8081)  # a key of its own, bob's host and port
        self.node.beacon_heard(on_wire(rogue.beacon("announce")), "10.0.0.2")
        self.assertIn(bob.peer_id, self.node.peers)
        self.assertNotIn(bob.peer_id, self.dialer.dropped)

    def test_a_beacon_at_a_linked_peers_address_does_not_evict_it(self) -> None:
        now = self.clock.seconds()
        self.node.beacon_heard(unsigned("gopher_417", now, port=8080), "10.0.0.5")
        link = FakeLink("gopher_417", "gopher", now=now)
        link.dialer_id = self.node.peer_id
        self.assertTrue(self.node.link_ready(link))
        self.node.beacon_heard(unsigned("gopher_999", now, port=8080), "10.0.0.5")
        self.assertIn("gopher_417", self.node.peers)
        self.assertNotIn("gopher_417", self.dialer.dropped)

    def test_an_unpinned_unlinked_peer_is_still_replaced_at_its_address(self) -> None:
        now = self.clock.seconds()
        self.node.beacon_heard(unsigned("gopher_417", now, port=8080), "10.0.0.5")
        self.node.beacon_heard(unsigned("gopher_999", now, port=8080), "10.0.0.5")
        self.assertNotIn("gopher_417", self.node.peers)


class SecureOnlyRedials(SecureNode):
    def test_a_refused_base_peer_is_not_dialed_again(self) -> None:
        self.node = self.make_node(secure_only=True)
        self.dialer = self.node.dialer = FakeDialer()
        for second in range(20):  # its beacons keep coming
            self.node.beacon_heard(unsigned("gopher_417", self.clock.seconds()), "10.0.0.5")
            self.assertNotIn("gopher_417", self.dialer.wanted, second)
            self.clock.advance(1)
        # one that dialed us anyway is refused, and not dialed back
        link = FakeLink("gopher_417", "gopher", now=self.clock.seconds())
        self.assertFalse(self.node.link_ready(link))
        self.assertIn("--secure-only", link.closed)
        self.assertNotIn("gopher_417", self.dialer.wanted)

    def test_our_own_peers_are_still_dialed(self) -> None:
        self.node = self.make_node(secure_only=True)
        self.dialer = self.node.dialer = FakeDialer()
        bob = self.peer("bob")
        self.node.beacon_heard(on_wire(bob.beacon("announce")), "10.0.0.2")
        self.assertIn(bob.peer_id, self.dialer.wanted)


class ReplayedBeaconAddress(SecureNode):
    def test_a_link_dialed_to_a_replayers_address_is_replaced(self) -> None:
        bob = self.peer("bob")
        old = on_wire(bob.beacon("announce"))
        self.clock.advance(2)
        # a newcomer hears bob's beacon first as replayed from 10.6.6.6 ...
        self.node.beacon_heard(old, "10.6.6.6")
        self.assertEqual(self.dialer.wanted[bob.peer_id].host, "10.6.6.6")
        via = FakeLink(bob.peer_id, "bob", dialer_id=self.node.peer_id,
                       caps=(CAP_OURS, CAP_TLS), now=self.clock.seconds())
        via.fp, via.address = bob.identity.fingerprint, "10.6.6.6:8081"
        self.assertTrue(self.node.link_ready(via))
        self.assertNotIn(bob.peer_id, self.dialer.wanted)
        # ... then bob's own, newer beacons from its host: it is dialed there
        self.node.beacon_heard(on_wire(bob.beacon("announce")), "10.0.0.2")
        self.assertEqual(self.dialer.wanted[bob.peer_id].host, "10.0.0.2")
        direct = FakeLink(bob.peer_id, "bob", dialer_id=self.node.peer_id,
                          caps=(CAP_OURS, CAP_TLS), now=self.clock.seconds())
        direct.fp, direct.address = bob.identity.fingerprint, "10.0.0.2:8081"
        self.assertTrue(self.node.link_ready(direct))
        self.assertIs(self.node.links[bob.peer_id].wire, direct)
        self.assertEqual(via.closed, "replaced by a newer link")
        # the replayer's copies of bob's beacons can't move it back
        self.node.beacon_heard(on_wire(bob.beacon("announce")), "10.0.0.2")
        self.node.beacon_heard(on_wire(bob.beacon("announce")), "10.6.6.6")
        self.assertEqual(self.node.peers.get(bob.peer_id).host, "10.0.0.2")

    def test_a_link_that_comes_up_after_the_peer_moved_is_replaced_too(self) -> None:
        bob = self.peer("bob")
        old = on_wire(bob.beacon("announce"))
        self.clock.advance(2)
        self.node.beacon_heard(old, "10.6.6.6")  # the dial to 10.6.6.6 is under way...
        self.node.beacon_heard(on_wire(bob.beacon("announce")), "10.0.0.2")  # ...it moved
        via = FakeLink(bob.peer_id, "bob", dialer_id=self.node.peer_id,
                       caps=(CAP_OURS, CAP_TLS), now=self.clock.seconds())
        via.fp, via.address = bob.identity.fingerprint, "10.6.6.6:8081"
        self.assertTrue(self.node.link_ready(via))
        self.assertEqual(self.dialer.wanted[bob.peer_id].host, "10.0.0.2")


# --- both sides agree on what is linked (real sockets, loopback) ---------------------------


@pytest.fixture
def logged():
    lines: list[str] = []

    def keep(event: dict) -> None:
        fmt = event.get("log_format") or ""
        try:
            lines.append(fmt.format(**event))
        except (KeyError, IndexError, ValueError):
            lines.append(fmt)

    globalLogPublisher.addObserver(keep)
    yield lines
    globalLogPublisher.removeObserver(keep)


def pair():
    group = fresh_multicast()
    a, b = secure_peer("alice", group), secure_peer("bob", group)
    return (a, b) if a.node.peer_id < b.node.peer_id else (b, a)


def joins(peer) -> list:
    return [e for e in peer.events if isinstance(e, events.PeerJoined)]


@pytest_twisted.ensureDeferred
async def test_a_link_refused_for_want_of_a_slot_never_looks_linked(logged) -> None:
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    dialer, listener = pair()
    listener.node.presence.slot_refusal = lambda *args: "no slot for you (test)"
    try:
        await dialer.start()
        await listener.start()
        await wait_for(lambda: any("refused the link: no slot for you" in line
                                   for line in logged), timeout=10)
        await deferLater(reactor, 2.0, lambda: None)
        assert dialer.node.links == {} and listener.node.links == {}
        assert [r.state for r in dialer.node.users()] != ["connected"]
        assert joins(dialer) == [] and joins(listener) == []
        dials = sum("dialing" in line for line in logged)
        assert 2 <= dials <= 8  # redialed, with backoff
    finally:
        await dialer.stop()
        await listener.stop()


@pytest_twisted.ensureDeferred
async def test_a_link_refused_after_tls_is_lost_on_the_dialers_side_too(logged) -> None:
    dialer, listener = pair()
    listener.node.keys.refusal = lambda link: "refused after the handshake (test)"
    try:
        await dialer.start()
        await listener.start()
        await wait_for(lambda: any("refused the link: refused after the handshake" in line
                                   for line in logged), timeout=10)
        await wait_for(lambda: not dialer.node.links, timeout=2)
        assert any("lost after" in line and "it refused the link" in line for line in logged)
        assert listener.node.links == {}
    finally:
        await dialer.stop()
        await listener.stop()


class _Flood:
    """Sends unsigned beacons of made-up peers to a test group on loopback, every second,
    for at most ``rounds`` seconds (ids start with "0": no peer of ours dials them)."""

    def __init__(self, group: tuple[str, int], count: int = 1000, rounds: int = 40) -> None:
        from twisted.internet.protocol import DatagramProtocol

        self.group, self.count, self.rounds = group, count, rounds
        self.proto = DatagramProtocol()
        self.port = None
        self.loop = None

    def start(self) -> None:
        from twisted.internet import reactor
        from twisted.internet.task import LoopingCall

        self.port = reactor.listenMulticast(0, self.proto, interface="127.0.0.1")
        self.port.setTTL(1)
        self.port.setOutgoingInterface("127.0.0.1")
        self.loop = LoopingCall(self.send)
        self.loop.start(1.0)

    def send(self) -> None:
        from twisted.internet import reactor

        self.rounds -= 1
        if self.rounds < 0:
            self.stop()
            return
        now = reactor.seconds()
        for i in range(self.count):
            data = wire.encode_beacon(unsigned(f"0fake_{i}", now, port=10_000 + i))
            self.port.write(data, self.group)

    def stop(self) -> None:
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        if self.port is not None:
            self.port.stopListening()
            self.port = None


@pytest_twisted.ensureDeferred
async def test_a_restarted_peer_relinks_while_fake_beacons_fill_the_table() -> None:
    from tests.support import InProcessPeer

    group = fresh_multicast()
    alice = secure_peer("alice", group)
    bob_identity = Identity.generate()
    while bob_identity.peer_id < alice.node.peer_id:  # alice dials: bob's return needs her
        bob_identity = Identity.generate()            # table to take it
    bob = InProcessPeer("bob", group, identity=bob_identity, trust=Trust(Pins(None)))
    flood = _Flood(group)
    try:
        await alice.start()
        await bob.start()
        await wait_for(lambda: bob.node.peer_id in alice.node.links, timeout=10)
        flood.start()
        await wait_for(lambda: len(alice.node.peers) == 256, timeout=10)
        await bob.stop()
        await wait_for(lambda: bob.node.peer_id not in alice.node.links, timeout=5)
        await wait_for(lambda: len(alice.node.peers) == 256
                       and bob.node.peer_id not in alice.node.peers, timeout=5)
        bob = InProcessPeer("bob", group, identity=bob_identity, trust=Trust(Pins(None)))
        await bob.start()
        await wait_for(lambda: bob.node.peer_id in alice.node.links, timeout=15)
        assert len(alice.node.peers) == 256  # still full of fakes, but bob is back
    finally:
        flood.stop()
        await bob.stop()
        await alice.stop()


@pytest_twisted.ensureDeferred
async def test_a_link_through_a_replayers_address_is_replaced_by_a_direct_one() -> None:
    """bob's signed beacon, replayed from 127.0.0.2 where a relay that stalls listens, is
    what the newcomer alice hears first: she dials there, then moves to bob's own address."""
    from twisted.internet import reactor
    from twisted.protocols import portforward

    from tests.support import InProcessPeer

    group = fresh_multicast()
    bob = secure_peer("bob", group)
    alice_identity = Identity.generate()
    while alice_identity.peer_id > bob.node.peer_id:  # alice dials bob
        alice_identity = Identity.generate()
    alice = InProcessPeer("alice", group, identity=alice_identity, trust=Trust(Pins(None)))
    relayed = []

    class Stalling(portforward.ProxyServer):
        def connectionMade(self) -> None:
            relayed.append(self)
            self.timer = reactor.callLater(1.0, setattr, self, "stalled", True)
            super().connectionMade()

        def dataReceived(self, data: bytes) -> None:
            if not getattr(self, "stalled", False):
                super().dataReceived(data)

    relay = portforward.ProxyFactory("127.0.0.1", 0)
    relay.protocol = Stalling
    listening = None
    try:
        await bob.start()
        relay.port = bob.node.port
        listening = reactor.listenTCP(bob.node.port, relay, interface="127.0.0.2")
        replay = wire.parse_beacon(wire.encode_beacon(bob.node.beacon("announce")))
        await alice.start()
        alice.node.beacon_heard(replay, "127.0.0.2")  # before bob's answer to her announce
        await wait_for(lambda: relayed, timeout=5)
        await wait_for(lambda: bob.node.peer_id in alice.node.links
                       and alice.node.links[bob.node.peer_id].address.startswith("127.0.0.1:"),
                       timeout=10)
        alice.node.say("hello directly")
        await wait_for(lambda: any(isinstance(e, events.ChatLine) and e.text == "hello directly"
                                   for e in bob.events), timeout=5)
    finally:
        if listening is not None:
            await listening.stopListening()
        for proxy in relayed:
            if proxy.timer.active():
                proxy.timer.cancel()
            proxy.transport.abortConnection()
        await alice.stop()
        await bob.stop()


@pytest_twisted.ensureDeferred
async def test_a_known_peer_relinks_while_sybils_hold_every_slot_they_can(monkeypatch) -> None:
    from tests.support import InProcessPeer

    monkeypatch.setattr(node_module, "MAX_LINKS", 6)
    monkeypatch.setattr(slots, "RESERVED_KNOWN", 2)  # strangers: 4 of 6
    group = fresh_multicast()
    bob_identity = Identity.generate()
    alice_identity = Identity.generate()
    pins, bobs_pins = Pins(None), Pins(None)  # they know each other from an earlier run
    pins.pin("bob", bob_identity.fingerprint)
    bobs_pins.pin("alice", alice_identity.fingerprint)
    alice = InProcessPeer("alice", group, identity=alice_identity, trust=Trust(pins))
    bob = InProcessPeer("bob", group, identity=bob_identity, trust=Trust(bobs_pins))
    sybils = []
    for n in range(7):  # each wants alice above all (so their own slots don't keep them away)
        wants = Pins(None)
        wants.pin("alice", alice_identity.fingerprint)
        sybils.append(secure_peer(f"sybil{n}", group, wants))
    try:
        await alice.start()
        await bob.start()
        await wait_for(lambda: bob.node.peer_id in alice.node.links, timeout=10)
        for sybil in sybils:
            await sybil.start()
        await wait_for(lambda: len(alice.node.links) == 5, timeout=10)  # 4 strangers + bob
        await bob.stop()
        await wait_for(lambda: bob.node.peer_id not in alice.node.links, timeout=5)
        bob = InProcessPeer("bob", group, identity=bob_identity, trust=Trust(bobs_pins))
        await bob.start()
        await wait_for(lambda: bob.node.peer_id in alice.node.links, timeout=15)
        strangers = [pid for pid in alice.node.links if pid != bob.node.peer_id]
        assert len(strangers) <= 4
    finally:
        for peer in [*sybils, bob, alice]:
            await peer.stop()
