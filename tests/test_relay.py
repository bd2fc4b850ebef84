"""Relayed catch-up: a peer back from an absence gets, from peers that have them, the lines of
authors that are gone now; only lines their author signed are shown."""

from __future__ import annotations

import dataclasses
import os

import pytest_twisted
from hypothesis import given, settings, strategies as st
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from p2pchat import events, wire
from p2pchat.identity import Identity
from p2pchat.relay import check_relayed, line_payload, relay_lines, relayed_of, sign_line
from p2pchat.store import Store
from p2pchat.wire import Message, WireError
from tests.support import InProcessPeer, fresh_multicast, wait_for


def signed(identity: Identity, **fields) -> tuple[Message, bytes]:
    base = dict(id="m1", type="chat", sender_id=identity.peer_id, username="alice",
                content="hello", timestamp=1700000000.25, sequence=5, room_id="ops",
                metadata={})
    base.update(fields)
    msg = Message(**base)
    msg.metadata["sig"] = sign_line(identity, msg)
    return msg, wire.encode_message(msg)[:-1]


class Checking(TestCase):
    def setUp(self) -> None:
        self.alice = Identity.generate()
        self.key = self.alice.public_key_b64()

    @settings(max_examples=300)
    @given(st.lists(st.one_of(st.text(), st.integers(0, 2**64 - 1)), max_size=10))
    def test_the_signed_payload_is_written_as_json_writes_it(self, fields: list) -> None:
        """line_payload (the signer) writes with msgspec, _raw_payload (the checker, and
        peers of older builds) with json: the bytes must be the same."""
        from p2pchat import relay

        try:
            expected: object = relay._payload(fields)
        except UnicodeEncodeError:
            expected = "refused"
        try:
            got: object = relay._encode_list(fields)
        except UnicodeEncodeError:
            got = "refused"
        self.assertEqual(got, expected)

    def test_libsodium_signs_as_openssl_does(self) -> None:
        """Identity.sign goes through libsodium (faster here); the signature must be the very
        one OpenSSL makes (Ed25519 is deterministic), and OpenSSL's check must take it."""
        import base64

        from p2pchat import latesodium

        self.assertIsNotNone(latesodium.sodium().crypto_sign)  # PyNaCl is installed (setup.py)
        for data in (b"", b"hello", "é".encode() * 3000):
            sig = self.alice.sign(data)
            self.assertEqual(sig, base64.b64encode(self.alice.key.sign(data)).decode())
            self.alice.key.public_key().verify(base64.b64decode(sig), data)
        self.assertEqual(len(self.alice.seed + self.alice.public), 64)  # libsodium's key

    def test_a_signed_line_checks_out(self) -> None:
        msg, raw = signed(self.alice)
        relayed = check_relayed(raw, self.key)
        self.assertEqual((relayed.msg, relayed.fp), (msg, self.alice.fingerprint))

    def test_forgeries_refused(self) -> None:
        msg, raw = signed(self.alice)
        tampered = raw.replace(b"hello", b"HELLO")
        with self.assertRaises(WireError):
            check_relayed(tampered, self.key)
        mallory = Identity.generate()
        with self.assertRaises(WireError):  # another key: not the author's
            check_relayed(raw, mallory.public_key_b64())
        _, forged = signed(mallory, sender_id=self.alice.peer_id)
        with self.assertRaises(WireError):  # signed by someone else in alice's name
            check_relayed(forged, mallory.public_key_b64())
        unsigned = wire.encode_message(dataclasses.replace(msg, metadata={}))[:-1]
        with self.assertRaises(WireError):
            check_relayed(unsigned, self.key)
        _, private = signed(self.alice, type="private", metadata={"to": "bob_1"})
        with self.assertRaises(WireError):
            check_relayed(private, self.key)

    def test_the_signature_covers_what_a_reader_sees(self) -> None:
        msg, _ = signed(self.alice)
        for change in ({"username": "mallory"}, {"room_id": "general"}, {"sequence": 6},
                       {"timestamp": 1700000001.0}, {"metadata": {"action": "x"}}):
            self.assertNotEqual(line_payload(dataclasses.replace(msg, **change)),
                                line_payload(msg))

    def test_batches_stay_under_the_line_limit(self) -> None:
        lines = []
        for n in range(300):
            _, raw = signed(self.alice, id=f"m{n}", content="x" * 400, sequence=n + 1)
            lines.append((raw, self.alice.peer_id, self.key))
        batches = relay_lines(lines)
        self.assertGreater(len(batches), 1)
        total = 0
        for meta in batches:
            encoded = wire.encode_message(Message(id="r", type="relay", sender_id="me",
                                                  metadata=meta))
            self.assertLess(len(encoded), wire.MAX_LINE_BYTES)
            pairs = relayed_of(wire.parse_message(encoded[:-1]))
            total += len(pairs)
            for raw, key in pairs:
                check_relayed(raw, key)
        self.assertEqual(total, 300)


def peer(nick: str, group, folder, identity: Identity) -> InProcessPeer:
    os.makedirs(folder, exist_ok=True)
    return InProcessPeer(nick, group, identity=identity,
                         store=Store(os.path.join(folder, "history.sqlite3")))


def heard(p: InProcessPeer) -> list[tuple[str, str, str]]:
    return [(e.room, e.nick, e.text) for e in p.events
            if isinstance(e, events.ChatLine) and not e.own]


@pytest_twisted.ensureDeferred
async def test_lines_of_an_author_gone_meanwhile_come_from_another_peer(tmp_path) -> None:
    group = fresh_multicast()
    ids = {n: Identity.generate() for n in ("alice", "bob", "carol")}
    peers = {n: peer(n, group, tmp_path / n, ids[n]) for n in ids}
    try:
        for p in peers.values():
            await p.start()
        await wait_for(lambda: all(len(p.node.links) == 2 for p in peers.values()), timeout=10)
        for p in peers.values():
            p.node.join_room("ops")
        await wait_for(lambda: all(len(p.node.room_list()[1][1]) == 3 for p in peers.values()))

        await peers["bob"].stop()  # bob goes away...
        await wait_for(lambda: len(peers["alice"].node.links) == 1)
        alice = peers["alice"]
        alice.node.say("while bob was away, in general")
        alice.node.say("and in ops", room="ops")
        await wait_for(lambda: len(heard(peers["carol"])) == 2)
        await alice.stop()  # ...and alice is gone before bob is back
        peers.pop("alice")

        bob = peer("bob", group, tmp_path / "bob", ids["bob"])
        peers["bob"] = bob
        await bob.start()
        await wait_for(lambda: len(heard(bob)) == 2, timeout=10)
        assert heard(bob) == [("general", "alice", "while bob was away, in general"),
                              ("ops", "alice", "and in ops")]
        # Handed on for an absent author: replayed (a face notifies for none of them); what
        # carol heard live was not.
        assert [e.replayed for e in bob.events
                if isinstance(e, events.ChatLine) and not e.own] == [True] * 2
        assert not any(e.replayed for e in peers["carol"].events
                       if isinstance(e, events.ChatLine))
        await deferLater(reactor, 1.0, lambda: None)  # nothing more comes (no duplicates)
        assert len(heard(bob)) == 2
    finally:
        for p in peers.values():
            await p.stop()


def test_a_line_already_seen_is_left_out_before_its_check() -> None:
    """A relayed copy of a line we have is dropped when its relay line is read: not queued
    for its check nor parsed again (a forming room of 100 brings each member line ~13 times)."""
    alice = Identity.generate()
    key = alice.public_key_b64()
    lines = [signed(alice, id=f"m{n}", content="hi", sequence=n + 1)[1] for n in range(3)]
    meta = relay_lines([(raw, alice.peer_id, key) for raw in lines])[0]
    msg = wire.parse_message(wire.encode_message(
        Message(id="r", type="relay", sender_id="me", metadata=meta))[:-1])
    asked: list[tuple[str, int]] = []

    def seen(author: str, seq: int) -> bool:
        asked.append((author, seq))
        return seq == 2

    pairs = relayed_of(msg, seen)
    assert [raw for raw, _ in pairs] == [lines[0], lines[2]]
    assert asked == [(alice.peer_id, 1), (alice.peer_id, 2), (alice.peer_id, 3)]
    assert len(relayed_of(msg)) == 3  # no ``seen``: all of them


def test_relayed_lines_read_as_json_reads_them() -> None:
    """The relayed line's readers (msgspec's, relay._readers) take what json takes, alike:
    the line a signature covers is the same, an integer past 64 bits included; and a relay
    line whose lines are not JSON objects, or have no author with a key, is refused."""
    import json

    import pytest

    from p2pchat.relay import _read_line

    for raw in (b'{"a": 1, "b": [1.5, "x", null, true], "c": {"d": "\\u00e9"}}',
                b'{"n": 123456789012345678901234567890}', b'{"x": NaN}'):
        assert repr(_read_line(raw)) == repr(json.loads(raw))
    for lines, keys in (([1], {}), (["[1]"], {}), (["{"], {}), (['{"sender_id": 5}'], {"5": "k"}),
                        (['{"sequence": 1}'], {}), (['{"sender_id": "a"}'], {"b": "k"})):
        msg = Message(id="r", type="relay", sender_id="me",
                      metadata={"lines": lines, "keys": keys})
        with pytest.raises(wire.WireError):
            relayed_of(msg)
