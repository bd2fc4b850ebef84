"""Identities, signed beacons, mutual TLS with pinned keys, and base peers beside them."""

from __future__ import annotations

import dataclasses
import os
import stat

import pytest
import pytest_twisted
from twisted.internet import abstract
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from p2pchat import events, wire
from p2pchat.face import describe_users
from p2pchat.identity import Identity, Pins, peer_id_for, short_form
from p2pchat.node import Node
from p2pchat.peers import PeerInfo
from p2pchat.trust import Trust
from tests.fakes import done
from tests.support import InProcessPeer, fresh_multicast, wait_for
from tests.test_reliability import Raw, chat_line, join_line, raw


class IdentityFiles(TestCase):
    def test_made_once_private_and_reused(self) -> None:
        folder = self.mktemp()
        first = Identity.load_or_create(folder)
        # the certificate is made from the key when the first TLS link needs it (latetls.py)
        self.assertFalse(os.path.exists(os.path.join(folder, "identity.crt")))
        first.tls_context(server=True)
        for name in ("identity.key", "identity.crt"):
            mode = stat.S_IMODE(os.stat(os.path.join(folder, name)).st_mode)
            self.assertEqual(mode, 0o600, name)
        again = Identity.load_or_create(folder)
        self.assertEqual(again.cert, first.cert)  # the kept one, not a new one
        self.assertEqual(again.fingerprint, first.fingerprint)
        self.assertEqual(again.peer_id, first.peer_id)
        self.assertEqual(len(first.fingerprint), 64)
        self.assertRegex(first.short, r"^[A-Z2-7]{4}(-[A-Z2-7]{4}){3}$")
        self.assertEqual(first.peer_id, first.short.replace("-", "").lower())

    def test_pins_file_private_and_persistent(self) -> None:
        path = os.path.join(self.mktemp(), "pins.json")
        os.makedirs(os.path.dirname(path))
        Pins(path).pin("carol", "ab" * 32)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(Pins(path).get("carol"), "ab" * 32)
        self.assertTrue(Pins(path).forget("carol"))
        self.assertIsNone(Pins(path).get("carol"))

    def test_pins_of_one_moment_are_written_once(self) -> None:
        from twisted.internet.task import Clock

        from p2pchat.identity import PINS_SAVE_DELAY

        path = os.path.join(self.mktemp(), "pins.json")
        os.makedirs(os.path.dirname(path))
        clock = Clock()
        pins = Pins(path, call_soon=lambda f: clock.callLater(PINS_SAVE_DELAY, f))
        for n in range(49):  # joining a mesh of 50
            pins.pin(f"peer{n}", f"{n:02d}" * 32)
        self.assertFalse(os.path.exists(path))
        self.assertEqual(len(clock.getDelayedCalls()), 1)  # one write for all of them
        clock.advance(PINS_SAVE_DELAY)
        self.assertEqual(Pins(path).get("peer48"), "48" * 32)
        pins.pin("late", "cd" * 32)
        pins.flush()  # at exit: nothing pending is lost
        self.assertEqual(Pins(path).get("late"), "cd" * 32)


class SignedBeacons(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(10_000)
        self.me = Node("me", self.clock, identity=Identity.generate())
        self.bob = Node("bob", self.clock, identity=Identity.generate())
        self.bob.port = 8081

    def test_signed_beacon_accepted_and_carries_the_key(self) -> None:
        beacon = wire.parse_beacon(wire.encode_beacon(self.bob.beacon("announce")))
        self.me.beacon_heard(beacon, "10.0.0.2")
        info = self.me.peers.get(self.bob.peer_id)
        self.assertEqual(info.fp, self.bob.identity.fingerprint)
        self.assertIn(wire.CAP_TLS, info.caps)

    def hear(self, beacon: wire.Beacon, host: str = "10.0.0.2") -> None:
        self.me.beacon_heard(wire.parse_beacon(wire.encode_beacon(beacon)), host)

    def test_tampered_unsigned_replayed_and_forged_beacons_ignored(self) -> None:
        good = self.bob.beacon("announce")
        self.hear(dataclasses.replace(good, port=6666))  # signature no longer matches
        self.assertEqual(len(self.me.peers), 0)
        self.hear(good)
        self.clock.advance(1)
        # an unsigned beacon for a peer that signs: can't move it
        self.hear(dataclasses.replace(good, fp="", pk="", sig="", port=6666,
                                      timestamp=self.clock.seconds()), host="10.6.6.6")
        # a replay of its signed beacon from elsewhere: can't move it either
        self.hear(good, host="10.6.6.6")
        info = self.me.peers.get(self.bob.peer_id)
        self.assertEqual((info.host, info.port), ("10.0.0.2", 8081))
        # someone else's key claiming bob's id
        mallory = Node("bob", self.clock, peer_id=self.bob.peer_id, identity=Identity.generate())
        mallory.port = 6666
        self.hear(mallory.beacon("announce"), host="10.6.6.6")
        self.assertEqual(self.me.peers.get(self.bob.peer_id).host, "10.0.0.2")
        # an unsigned leave for bob
        self.hear(dataclasses.replace(good, type="leave", fp="", pk="", sig="",
                                      timestamp=self.clock.seconds()))
        self.assertIn(self.bob.peer_id, self.me.peers)
        # a signed, fresh leave from bob himself works
        self.clock.advance(1)
        self.hear(self.bob.beacon("leave"))
        self.assertNotIn(self.bob.peer_id, self.me.peers)


class TrustRules(TestCase):
    def test_refusals_and_display(self) -> None:
        trust = Trust(Pins(None))
        self.assertIsNone(trust.refusal("dave", "", ""))  # a base peer, unpinned
        self.assertTrue(trust.first_use("carol", "aa" * 32))
        self.assertFalse(trust.first_use("carol", "bb" * 32))
        self.assertIn("no downgrade", trust.refusal("carol", "", ""))
        self.assertIn("no downgrade", trust.refusal("erin", "", "cc" * 32))
        self.assertEqual(trust.display("carol", "aa" * 32), "carol")
        self.assertEqual(trust.display("carol", "bb" * 32), "carol?")
        self.assertIn("--secure-only", Trust(Pins(None), secure_only=True).refusal("x", "", ""))


def secure_peer(nick: str, group, pins: Pins | None = None, **kw) -> InProcessPeer:
    return InProcessPeer(nick, group, identity=Identity.generate(), trust=Trust(pins, **kw))


def chats(peer: InProcessPeer) -> list[tuple[str, str]]:
    return [(e.nick, e.text) for e in peer.events if isinstance(e, events.ChatLine) and not e.own]


@pytest.fixture
def wire_tap(monkeypatch):
    """Every byte any TCP connection of this process writes, TLS records included."""
    captured: list[bytes] = []
    original = abstract.FileDescriptor.write

    def tap(self, data):
        captured.append(bytes(data))
        return original(self, data)

    monkeypatch.setattr(abstract.FileDescriptor, "write", tap)
    return captured


@pytest_twisted.ensureDeferred
async def test_tls_chat_hides_the_words(wire_tap) -> None:
    group = fresh_multicast()
    a, b = secure_peer("alice", group), secure_peer("bob", group)
    try:
        await a.start()
        await b.start()
        await wait_for(lambda: len(a.node.links) == 1 and len(b.node.links) == 1, timeout=5)
        link = a.node.links[b.node.peer_id]
        assert link.fp == b.node.identity.fingerprint and link.tls.startswith("TLSv1.3")
        a.node.say("the eagle flies at midnight")
        await wait_for(lambda: ("alice", "the eagle flies at midnight") in chats(b))
        sent = b"".join(wire_tap)
        assert len(sent) > 1000  # TLS records went by
        assert b"eagle" not in sent and b"midnight" not in sent
        assert [r.encrypted for r in a.node.users()] == [True]
        assert "TLSv1.3" in " ".join(a.node.whois("bob"))
    finally:
        await a.stop()
        await b.stop()


@pytest_twisted.ensureDeferred
async def test_the_tap_sees_plain_words(wire_tap) -> None:
    """The control for the test above: without keys the words are on the wire."""
    group = fresh_multicast()
    a, b = InProcessPeer("alice", group), InProcessPeer("bob", group)
    try:
        await a.start()
        await b.start()
        await wait_for(lambda: len(a.node.links) == 1 and len(b.node.links) == 1, timeout=5)
        a.node.say("the eagle flies at midnight")
        await wait_for(lambda: ("alice", "the eagle flies at midnight") in chats(b))
        assert b"the eagle flies at midnight" in b"".join(wire_tap)
    finally:
        await a.stop()
        await b.stop()


@pytest_twisted.ensureDeferred
async def test_same_nick_new_key_is_flagged() -> None:
    group = fresh_multicast()
    pins = Pins(None)
    pins.pin("bob", "ab" * 32)  # the bob alice knew had another key
    a = secure_peer("alice", group, pins)
    b = secure_peer("bob", group)
    try:
        await a.start()
        await b.start()
        await wait_for(lambda: len(a.node.links) == 1, timeout=5)
        joined = [e.nick for e in a.events if isinstance(e, events.PeerJoined)]
        assert joined == ["bob?"]
        warning = [e.text for e in a.events if isinstance(e, events.Notice) and e.error]
        assert any("another key" in text for text in warning)
        b.node.say("trust me")
        await wait_for(lambda: ("bob?", "trust me") in chats(a))
        assert "KEY NOT THE PINNED ONE" in "\n".join(describe_users(a.node.users(), "alice"))
        # /trust bob? pins the new key: from then on shown as bob
        assert "pinned" in done(a.node.trust_peer("bob?"))
        b.node.say("thanks")
        await wait_for(lambda: ("bob", "thanks") in chats(a))
    finally:
        await a.stop()
        await b.stop()


@pytest_twisted.ensureDeferred
async def test_certificate_not_matching_the_announced_key_is_refused() -> None:
    group = fresh_multicast()
    a, b = secure_peer("alice", group), secure_peer("bob", group)
    a.node.peer_id = "0" + a.node.peer_id  # make alice the dialer whatever the keys
    other = Identity.generate()
    try:
        await b.start()
        a.service.startService()  # no discovery wait: we dial by hand
        a.node.beacon_heard = lambda beacon, host: None  # alice hears no real beacons
        lie = PeerInfo(b.node.peer_id, "bob", "127.0.0.1", b.node.port, 0.0,
                       b.node.caps, fp=other.fingerprint)
        a.node.dialer.want(lie)
        await wait_for(lambda: any(isinstance(e, events.Notice) for e in a.events)
                       or a.node.links or len(a.service.dialer.outgoing) == 0, timeout=5)
        await wait_for(lambda: not a.service.dialer.outgoing, timeout=5)
        assert a.node.links == {}
    finally:
        await a.stop()
        await b.stop()


@pytest_twisted.ensureDeferred
async def test_base_peer_chats_marked_plain_and_a_pinned_nick_cannot_downgrade() -> None:
    group = fresh_multicast()
    pins = Pins(None)
    pins.pin("carol", "cd" * 32)
    a = secure_peer("alice", group, pins)
    conns: list[Raw] = []
    try:
        await a.start()
        # a peer that speaks only Part 1 of the protocol (like the Go reference)
        base = await raw(a)
        conns.append(base)
        base.transport.write(join_line("gopher_417"))
        base.transport.write(chat_line("gopher_417", "hello from Go"))
        await wait_for(lambda: ("gopher_417", "hello from Go") in chats(a))
        rows = a.node.users()
        assert [(r.nick, r.encrypted, r.ours) for r in rows] == [("gopher_417", False, False)]
        assert "plain" in " ".join(a.node.whois("gopher_417"))
        # and it receives what alice says, in plain JSON lines it can read
        a.node.say("hi gopher")
        await wait_for(lambda: b"hi gopher" in base.data)
        assert b'"type":"starttls"' not in base.data
        # someone plain calling themselves carol, whose key is pinned: refused
        fake = await raw(a)
        conns.append(fake)
        fake.transport.write(join_line("carol"))
        fake.transport.write(chat_line("carol", "it's me, carol"))
        await wait_for(lambda: fake.lost)
        assert ("carol", "it's me, carol") not in chats(a)
        refusals = [e.text for e in a.events if isinstance(e, events.Notice) and e.error]
        assert any("no downgrade" in text for text in refusals)
    finally:
        for conn in conns:
            if not conn.lost:
                conn.transport.abortConnection()
        await a.stop()


@pytest_twisted.ensureDeferred
async def test_secure_only_refuses_base_peers() -> None:
    a = secure_peer("alice", fresh_multicast(), secure_only=True)
    conn = None
    try:
        await a.start()
        conn = await raw(a)
        conn.transport.write(join_line("gopher_417") + chat_line("gopher_417", "let me in"))
        await wait_for(lambda: conn.lost)
        assert chats(a) == []
    finally:
        if conn is not None and not conn.lost:
            conn.transport.abortConnection()
        await a.stop()


def test_peer_id_is_the_key() -> None:
    ident = Identity.generate()
    assert peer_id_for(ident.fingerprint) == ident.peer_id
    assert short_form(ident.fingerprint).replace("-", "").lower() == ident.peer_id
