"""One signature per run of lines said at once (runsig.py, cap runsig/1): each line still checks
out alone, relayed; forgeries inside a run are refused; a peer without the cap never sees the
run form (it gets per-line signatures, and no run-signed line is handed on to it)."""

from __future__ import annotations

import base64
import os
import tempfile

from hypothesis import given, settings, strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import TestCase

from p2pchat import latesodium, packing, runsig, wire
from p2pchat.identity import Identity
from p2pchat.lines import LineFace
from p2pchat.mesh import PeerProtocol
from p2pchat.node import Node
from p2pchat.relay import RELAY, check_relayed, line_payload
from p2pchat.runsig import (CAP_RUNSIG, MAX_PATH_NODES, NODE_BYTES, RUN_MAX_LINES, root_of,
                            sign_run)
from p2pchat.store import Store
from p2pchat.wire import CHAT, Message, WireError, parse_message
from bench.meshsim import Sim
from tests.test_gather import Counting


def run_of(identity: Identity, texts: list[str], first_seq: int = 10,
           limit_check: bool = True, when: float = 1700000000.5) -> list[bytes]:
    """The encoded lines (no newline) of a run ``identity`` signed once."""
    msgs = [Message(f"m{first_seq + n}", CHAT, identity.peer_id, "alice", text, when + n,
                    first_seq + n, "general", {}) for n, text in enumerate(texts)]
    payloads = [line_payload(m) for m in msgs]
    if limit_check:
        metas = sign_run(identity.sign, payloads)
    else:  # past the limit: as a hostile author would (sign_run refuses to)
        root, paths = runsig._tree([runsig.leaf(p) for p in payloads])
        sig = identity.sign(runsig.run_message(len(payloads) % 256, root))
        metas = [{"sig": sig, "run": [i, len(payloads)],
                  "path": base64.b64encode(b"".join(p)).decode()} for i, p in enumerate(paths)]
    for msg, meta in zip(msgs, metas):
        msg.metadata = meta
    return [wire.encode_message(m)[:-1] for m in msgs]


def with_meta(raw: bytes, **changes: object) -> bytes:
    msg = parse_message(raw)
    assert msg.metadata is not None
    msg.metadata.update(changes)
    return wire.encode_message(msg)[:-1]


class Tree(TestCase):
    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.binary(max_size=40), min_size=1, max_size=RUN_MAX_LINES))
    def test_every_leaf_leads_to_the_root_and_no_other_does(self, payloads: list[bytes]) -> None:
        root, paths = runsig._tree([runsig.leaf(p) for p in payloads])
        count = len(payloads)
        for index, (payload, path) in enumerate(zip(payloads, paths)):
            self.assertLessEqual(len(path), MAX_PATH_NODES)
            self.assertEqual(root_of(payload, index, count, path), root)
            try:
                other = root_of(payload + b"x", index, count, path)
            except WireError:
                other = b""
            self.assertNotEqual(other, root)
            if count > 1:  # at another place the same path leads elsewhere, or nowhere
                try:
                    moved = root_of(payload, (index + 1) % count, count, path)
                except WireError:
                    moved = b""
                if payloads[(index + 1) % count] != payload:
                    self.assertNotEqual(moved, root)

    def test_a_leaf_is_never_a_node(self) -> None:
        """Domain separation: two leaves' concatenation, as a payload, is no node."""
        a, b = runsig.leaf(b"a"), runsig.leaf(b"b")
        root, _ = runsig._tree([a, b])
        self.assertNotEqual(runsig.leaf(a + b), root)


class Checking(TestCase):
    def setUp(self) -> None:
        self.alice = Identity.generate()
        self.key = self.alice.public_key_b64()
        runsig._run_signed.cache_clear()
        self.lines = run_of(self.alice, [f"line {n}" for n in range(11)])

    def test_each_line_of_a_run_checks_out_alone_and_the_run_once(self) -> None:
        opened = []
        real = latesodium.sign_open

        def counting(signed: bytes, key: bytes) -> bytes:
            opened.append(signed)
            return real(signed, key)

        self.patch(latesodium, "sign_open", counting)
        got = [check_relayed(raw, self.key).msg.content for raw in reversed(self.lines)]
        self.assertEqual(got, [f"line {n}" for n in reversed(range(11))])
        self.assertEqual(len(opened), 1)  # one signature check for the eleven lines

    def test_a_path_is_at_most_four_nodes(self) -> None:
        for raw in self.lines:
            path = base64.b64decode(parse_message(raw).metadata["path"])  # type: ignore[index]
            self.assertLessEqual(len(path), MAX_PATH_NODES * NODE_BYTES)

    def refused(self, raw: bytes, why: str, key: str | None = None) -> None:
        with self.assertRaises(WireError) as caught:
            check_relayed(raw, key or self.key)
        self.assertIn(why, str(caught.exception))

    def test_a_forged_line_inside_a_genuine_run_is_refused(self) -> None:
        for raw in self.lines[:3]:
            check_relayed(raw, self.key)  # the run's signature is known good now
        self.refused(self.lines[1].replace(b"line 1", b"line X"), "run signature does not match")

    def test_a_wrong_index_or_path_is_refused(self) -> None:
        check_relayed(self.lines[2], self.key)
        self.refused(with_meta(self.lines[2], run=[3, 11]), "run signature does not match")
        self.refused(with_meta(self.lines[2], run=[11, 11]), "index is outside its run")
        self.refused(with_meta(self.lines[2], run=[2, 12]), "run signature does not match")
        path = base64.b64decode(parse_message(self.lines[2]).metadata["path"])  # type: ignore
        swapped = base64.b64encode(path[16:32] + path[:16] + path[32:]).decode()
        self.refused(with_meta(self.lines[2], path=swapped), "run signature does not match")
        self.refused(with_meta(self.lines[2], path=base64.b64encode(path[:16]).decode()),
                     "path is shorter")
        self.refused(with_meta(self.lines[2], path=base64.b64encode(path[:-1]).decode()),
                     "not whole nodes")
        self.refused(with_meta(self.lines[2], run="2/11"), "not [index, count]")

    def test_a_run_signature_of_another_key_is_refused(self) -> None:
        mallory = Identity.generate()
        theirs = run_of(mallory, [f"line {n}" for n in range(11)])
        sig = parse_message(theirs[4]).metadata["sig"]  # type: ignore[index]
        # mallory's run signature on alice's genuine line, given with alice's key ...
        self.refused(with_meta(self.lines[4], sig=sig), "run signature does not match")
        # ... and a run mallory signed in alice's name, given with mallory's key
        forged = with_meta(theirs[4].replace(mallory.peer_id.encode(),
                                             self.alice.peer_id.encode()))
        self.refused(forged, "not its author's", mallory.public_key_b64())

    def test_a_path_longer_than_the_limit_is_refused(self) -> None:
        path = base64.b64encode(bytes(NODE_BYTES * (MAX_PATH_NODES + 1))).decode()
        self.refused(with_meta(self.lines[0], path=path), f"longer than {MAX_PATH_NODES} nodes")

    def test_a_run_longer_than_the_limit_is_refused(self) -> None:
        """Even genuinely signed by its author: a checker's work per line stays bounded."""
        long_run = run_of(self.alice, [f"l{n}" for n in range(RUN_MAX_LINES + 1)],
                          limit_check=False)
        self.refused(long_run[0], f"not of 2 to {RUN_MAX_LINES} lines")

    def test_a_run_signature_is_no_line_signature(self) -> None:
        """The run's signature is over RUN_DOMAIN, count and root: never a line's payload."""
        raw = self.lines[0]
        msg = parse_message(raw)
        assert msg.metadata is not None
        alone = wire.encode_message(Message(msg.id, msg.type, msg.sender_id, msg.username,
                                            msg.content, msg.timestamp, msg.sequence,
                                            msg.room_id, {"sig": msg.metadata["sig"]}))[:-1]
        self.refused(alone, "signature does not match")


class Packing(TestCase):
    def test_a_run_signed_line_packs_and_unpacks_byte_for_byte(self) -> None:
        alice = Identity.generate()
        for raw in run_of(alice, [f"line {n}" for n in range(RUN_MAX_LINES)]):
            msg = parse_message(raw)
            assert msg.timestamp is not None
            got = packing.pack(raw, msg.room_id, msg.sender_id, msg.username, msg.timestamp,
                               msg.sequence)
            self.assertIsNotNone(got)
            assert got is not None
            text, packed = got
            self.assertTrue(packing.is_packed(packed))
            self.assertEqual(len(packed), 1 + 64 + 2)  # no path: runpaths.py rebuilds it
            path = base64.b64decode(msg.metadata["path"])  # type: ignore[index]
            self.assertEqual(packing.unpack(msg.id, msg.room_id, msg.sender_id, msg.username,
                                            text, msg.timestamp, msg.sequence, packed, path),
                             raw)


class Saying(TestCase):
    """A run said at once: signed once per RUN_MAX_LINES when every link takes it."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.reactor.advance(1_800_000_000)
        store = Store(os.path.join(tempfile.mkdtemp(), "h.sqlite3"))
        self.addCleanup(store.close)
        self.identity = Identity.generate()
        self.node = Node("alice", self.reactor, identity=self.identity, store=store)
        self.face = LineFace(self.node, lambda: None, self.reactor,
                             call_soon=lambda f: self.reactor.callLater(0, f))
        self.face.makeConnection(Counting())
        runsig._run_signed.cache_clear()

    def link(self, nick: str, caps: bool = True) -> tuple[Counting, str]:
        other = Node(nick, self.reactor, identity=Identity.generate())
        proto = PeerProtocol(self.node, self.reactor)
        transport = Counting(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        transport.protocol = proto
        proto.makeConnection(transport)
        proto.peer_id, proto.username = other.peer_id, other.nick
        proto.caps = other.caps if caps else tuple(c for c in other.caps if c != CAP_RUNSIG)
        proto.fp, proto.pk = other.identity.fingerprint, other.identity.public_key_b64()
        proto._become_ready()
        session = self.node.links[other.peer_id]
        session.synced, session.cursor = True, self.node.outbox.sequence
        transport.clear()
        return transport, other.peer_id

    def chat(self, transport: Counting) -> list[bytes]:
        return [raw for raw in transport.value().splitlines()
                if parse_message(raw).type == CHAT]

    def test_every_link_takes_runs_the_lines_share_signatures(self) -> None:
        wires = [self.link(f"r{n}")[0] for n in range(3)]
        texts = [f"line {n}" for n in range(RUN_MAX_LINES + 5)]
        self.face.dataReceived("".join(f"{t}\n" for t in texts).encode())
        key = self.identity.public_key_b64()
        for transport in wires:
            lines = self.chat(transport)
            self.assertEqual([check_relayed(r, key).msg.content for r in lines], texts)
            sigs = {parse_message(r).metadata["sig"] for r in lines}  # type: ignore[index]
            self.assertEqual(len(sigs), 2)  # 16 lines, then 5

    def test_a_single_line_is_signed_as_before(self) -> None:
        transport = self.link("r0")[0]
        self.face.dataReceived(b"just one\n")
        (raw,) = self.chat(transport)
        self.assertEqual(list(parse_message(raw).metadata or {}), ["sig"])
        check_relayed(raw, self.identity.public_key_b64())

    def test_a_link_without_the_cap_makes_the_run_signed_per_line(self) -> None:
        ours, _ = self.link("r0")
        older, _ = self.link("r1", caps=False)
        self.face.dataReceived(b"one\ntwo\nthree\n")
        for transport in (ours, older):
            lines = self.chat(transport)
            self.assertEqual(len(lines), 3)
            for raw in lines:
                self.assertEqual(list(parse_message(raw).metadata or {}), ["sig"])

    def test_a_link_without_the_cap_behind_gets_each_line_signed_alone(self) -> None:
        """It linked after the run was said: from the sent log, each line signed anew."""
        ours, _ = self.link("r0")
        self.face.dataReceived(b"one\ntwo\nthree\n")
        self.assertTrue(all(runsig.is_run_raw(r) for r in self.chat(ours)))
        older, pid = self.link("r1", caps=False)
        session = self.node.links[pid]
        session.cursor = 0
        self.node.sender.pump(session)
        lines = self.chat(older)
        self.assertEqual([parse_message(r).content for r in lines], ["one", "two", "three"])
        key = self.identity.public_key_b64()
        for raw in lines:
            self.assertFalse(runsig.is_run_raw(raw))
            check_relayed(raw, key)

    def test_no_run_signed_line_is_handed_on_to_a_peer_without_the_cap(self) -> None:
        """Catch-up hands on an absent author's lines: the run-signed ones only to a peer
        that takes them (the older peer gets the rest)."""
        author = Identity.generate()
        store = self.node.store
        assert store is not None
        from p2pchat.store import StoredLine

        when = self.reactor.seconds() - 60
        raws = run_of(author, ["a", "b", "c"], first_seq=1, when=when) + [
            run_of(author, ["x", "y"], first_seq=4, when=when + 5)[0]]
        single = Message("s5", CHAT, author.peer_id, "carol", "alone", when + 9, 6,
                         "general", {})
        single.metadata = {"sig": author.sign(line_payload(single))}
        raws.append(wire.encode_message(single)[:-1])
        rows = []
        for raw in raws:
            msg = parse_message(raw)
            rows.append(StoredLine(msg.id, "general", msg.sender_id, msg.username, msg.content,
                                   False, False, msg.timestamp or 0.0, msg.sequence, raw,
                                   author.public_key_b64()))
        store.remember_lines(rows)
        store.flush()
        got = {}
        for caps in (True, False):
            transport, pid = self.link(f"r{int(caps)}", caps=caps)
            link = self.node.links[pid]
            self.node.catchup.relay_to(link, {author.peer_id: 0})
            handed = []
            for line in transport.value().splitlines():
                msg = parse_message(line)
                if msg.type == "relay":
                    handed += [parse_message(r.encode()).content
                               for r in (msg.metadata or {})["lines"]]
            got[caps] = handed
        self.assertEqual(got, {True: ["a", "b", "c", "x", "alone"], False: ["alone"]})


class PartialMesh(TestCase):
    """a - b - c, where c is an older peer of ours (no runsig/1), reached by a through b."""

    def sim(self) -> Sim:
        sim = Sim(["a", "b", "c"])
        c = sim.nodes["c"]
        c.caps = tuple(cap for cap in c.caps if cap != CAP_RUNSIG)
        sim.link("a", "b")
        sim.link("b", "c")
        sim.tick(5)  # member lines go round: a knows c is reached through b
        return sim

    def test_a_paste_reaching_an_older_peer_through_others_is_signed_per_line(self) -> None:
        sim = self.sim()
        sim.nodes["a"].say_lines(["one", "two", "three"], "general")
        sim.run()
        self.assertEqual(sim.said("c"), ["a: one", "a: two", "a: three"])
        self.assertEqual(sim.said("b"), ["a: one", "a: two", "a: three"])

    def test_no_run_signed_line_is_forwarded_to_a_peer_without_the_cap(self) -> None:
        sim = self.sim()
        a = sim.nodes["a"]
        a.forwarder.reached.shown = lambda: []  # type: ignore[method-assign]  # a run-signs
        a.say_lines(["one", "two", "three"], "general")
        sim.run()
        self.assertEqual(sim.said("b"), ["a: one", "a: two", "a: three"])
        self.assertEqual(sim.said("c"), [])  # not forwarded: c would refuse to hand them on

    def test_a_forged_line_of_a_run_handed_on_is_dropped_and_logged(self) -> None:
        """b hands c a line of a's genuine run with its text changed: c refuses it (a log
        line says why) and shows the genuine ones."""
        from twisted.logger import globalLogPublisher

        sim = Sim(["a", "b", "c"])
        sim.link("a", "b")
        sim.link("b", "c")
        sim.tick(5)
        a, b = sim.nodes["a"], sim.nodes["b"]
        assert a.identity is not None
        genuine = run_of(a.identity, ["one", "two", "three"], first_seq=a.outbox.number(),
                         when=sim.clock.seconds())
        forged = genuine[1].replace(b'"two"', b'"TWO"')
        relay = b.sender.message(RELAY, "", metadata={
            "lines": [genuine[0].decode(), forged.decode(), genuine[2].decode()],
            "keys": {a.peer_id: a.identity.public_key_b64()}, "hops": 1})
        logged: list[dict] = []
        globalLogPublisher.addObserver(logged.append)
        try:
            sim.wires[frozenset(("b", "c"))][0].send(relay)
            sim.run()
        finally:
            globalLogPublisher.removeObserver(logged.append)
        self.assertEqual(sim.said("c"), ["alice: one", "alice: three"])  # its nick in the line
        why = [e.get("why", "") for e in logged if "refused" in str(e.get("log_format", ""))]
        self.assertEqual(why, ["its author's run signature does not match"])
