"""BLAKE3 chunk hashes (``files/2``): negotiated per peer, named by the offer, checked as each
chunk comes and when a partial file is resumed; a peer without the cap is offered SHA-256
chunk hashes as before, and a room of both gets each its own.  The whole file's hash stays
SHA-256 either way.  Also the TLS reads that fill a chunk straight from OpenSSL."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading

import blake3
from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from p2pchat.files import stream
from p2pchat.files.hashing import check_prefix, hash_file
from p2pchat.files.kept import Kept, Outgoing
from p2pchat.files.offers import (
    CAP_FILES,
    CAP_FILES_BLAKE3,
    CHUNK_BYTES,
    FILE,
    LEAF_BLAKE3,
    LEAF_SHA256,
    Offer,
    OfferError,
    check_hash_list,
    chunk_root,
    offer_metadata,
    parse_offer,
)
from p2pchat.files.ours import kinds_for
from p2pchat.files.stream import Channel, StreamError
from p2pchat.identity import Identity, peer_id_for
from p2pchat.node import Node
from p2pchat.wire import Message
from tests.fakes import FakeLink
from tests.test_files import _file, _Owner
from tests import test_files_stream as fs
from tests.test_files_stream import _incoming


class Leaves(TestCase):
    def setUp(self) -> None:
        self.src = self.mktemp()
        self.data = _file(self.src, 2 * CHUNK_BYTES + 500)

    def test_both_kinds_in_one_read_and_the_whole_hash_stays_sha256(self) -> None:
        hashed = hash_file(self.src, "a.bin", (LEAF_BLAKE3, LEAF_SHA256))
        self.assertEqual(hashed.entry.sha256, hashlib.sha256(self.data).hexdigest())
        b3 = hashed.leaves[LEAF_BLAKE3]
        self.assertEqual(hashed.hashes, b3)
        self.assertEqual(b3[32:64], blake3.blake3(self.data[CHUNK_BYTES:2 * CHUNK_BYTES])
                         .digest())
        self.assertEqual(hashed.entry.root, chunk_root(b3))
        self.assertEqual(hashed.leaves[LEAF_SHA256], hash_file(self.src, "a.bin").hashes)
        self.assertNotEqual(b3, hashed.leaves[LEAF_SHA256])

    def test_a_partial_file_is_checked_with_the_offers_chunk_hash(self) -> None:
        hashed = hash_file(self.src, "a.bin", (LEAF_BLAKE3, LEAF_SHA256))
        part = self.mktemp()
        with open(part, "wb") as f:
            f.write(self.data[:CHUNK_BYTES + 77])
        b3 = check_hash_list(hashed.leaves[LEAF_BLAKE3], hashed.entry)
        self.assertEqual(check_prefix(part, len(self.data), b3, LEAF_BLAKE3).length,
                         CHUNK_BYTES)
        with open(part, "wb") as f:
            f.write(self.data[:CHUNK_BYTES + 77])
        # BLAKE3 hashes checked as SHA-256 ones (or the other way) keep nothing
        self.assertEqual(check_prefix(part, len(self.data), b3, LEAF_SHA256).length, 0)

    def test_the_offer_names_its_chunk_hash(self) -> None:
        hashed = hash_file(self.src, "a.bin", (LEAF_BLAKE3,))
        offer = Offer("o1", "a.bin", (hashed.entry,), 4000, chunks=LEAF_BLAKE3)
        meta = json.loads(json.dumps(offer_metadata(offer)))
        self.assertEqual(meta["chunks"], "blake3")
        self.assertEqual(parse_offer(meta, 1 << 30), offer)
        plain = offer_metadata(Offer("o1", "a.bin", (hashed.entry,), 4000))
        self.assertNotIn("chunks", plain)  # a files/1 offer is what it was
        self.assertEqual(parse_offer(plain, 1 << 30).chunks, LEAF_SHA256)
        for bad in ("md5", "", ["blake3"], None):
            self.assertRaises(OfferError, parse_offer, dict(meta, chunks=bad), 1 << 30)


class ReceivingBlake3(fs.Receiving):
    """Every check of a Receive (test_files_stream.Receiving: a bad chunk, a resume, a wrong
    hash list, more than offered ...), for an offer with BLAKE3 chunk hashes; and these."""

    def setUp(self) -> None:
        self.src = self.mktemp()
        self.data = _file(self.src, 2 * CHUNK_BYTES + 500)
        self.hashed = hash_file(self.src, "a.bin", (LEAF_BLAKE3,))
        self.inc, self.final = _incoming(self, self.hashed.entry)
        self.inc.offer = Offer("o1", "a.bin", (self.hashed.entry,), 4000, chunks=LEAF_BLAKE3)
        self.owner = _Owner()

    def test_it_asks_for_blake3_hashes(self) -> None:
        channel = self.run_job()
        self.assertEqual(channel.asked[0], {"offer": "o1", "entry": 0, "what": "chunks",
                                            "hash": "blake3"})
        self.assertEqual((self.owner.done, self.owner.stops), (1, []))

    def test_a_damaged_part_is_cut_at_its_bad_chunk(self) -> None:
        with open(self.final + ".part", "wb") as f:
            f.write(self.data[:CHUNK_BYTES] + b"X" + self.data[CHUNK_BYTES + 1:2 * CHUNK_BYTES])
        channel = self.run_job()
        self.assertEqual(channel.asked[-1]["from"], CHUNK_BYTES)
        self.assertEqual(self.owner.done, 1)

    def test_sha256_hashes_for_a_blake3_offer_are_refused(self) -> None:
        self.run_job(hashes=hash_file(self.src, "a.bin").hashes)
        self.assertTrue(self.owner.stops[0][1])
        self.assertIn("bad hash list", self.owner.stops[0][0])


class Negotiation(TestCase):
    """Which chunk hashes each peer is offered, and what the sender serves."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.node = Node("mmm", self.clock, identity=Identity.generate())
        self.node.files.configure(self.mktemp(), self.mktemp(), 1 << 30, self.clock, None)
        self.node.files.port = 4000
        self.node.files.in_thread = lambda f, *a: succeed(f(*a))
        self.path = self.mktemp()
        self.data = _file(self.path, CHUNK_BYTES + 10)

    def link(self, nick: str, caps: tuple[str, ...]) -> FakeLink:
        fp = hashlib.sha256(nick.encode()).hexdigest()
        link = FakeLink(peer_id_for(fp), nick, caps=("p2pchat-py/1", "rooms/1") + caps)
        link.fp = fp
        self.assertTrue(self.node.link_ready(link))
        return link

    def offered(self, link: FakeLink) -> Offer:
        [line] = [m for m in link.sent if m.type == FILE]
        return parse_offer(line.metadata, 1 << 30)

    def served(self, fp: str, offer: Offer, kind: object) -> bytes | str:
        request: dict[str, object] = {"offer": offer.id, "entry": 0, "what": "chunks"}
        if kind is not None:
            request["hash"] = kind
        got = self.node.files.serve(fp, request)
        return got if isinstance(got, str) else got[0]  # type: ignore[return-value]

    def send(self, target: str) -> Outgoing:
        self.node.files.send(target, self.path)
        [out] = self.node.files.outgoing
        return out

    def test_we_announce_it(self) -> None:
        self.assertIn(CAP_FILES_BLAKE3, self.node.caps)
        self.assertIn(CAP_FILES, self.node.caps)

    def test_kinds_for_whom(self) -> None:
        links = self.node.links
        new = links[self.link("new", (CAP_FILES, CAP_FILES_BLAKE3)).peer_id]
        old = links[self.link("old", (CAP_FILES,)).peer_id]
        self.assertEqual(kinds_for([new]), [LEAF_BLAKE3])
        self.assertEqual(kinds_for([old]), [LEAF_SHA256])
        self.assertEqual(kinds_for([old, new]), [LEAF_BLAKE3, LEAF_SHA256])

    def test_a_peer_with_the_cap_is_offered_blake3(self) -> None:
        bob = self.link("bob", (CAP_FILES, CAP_FILES_BLAKE3))
        out = self.send("bob")
        offer = self.offered(bob)
        self.assertEqual((offer.chunks, out.more), (LEAF_BLAKE3, {}))
        blob = self.served(bob.fp, offer, "blake3")
        self.assertIsInstance(blob, bytes)
        self.assertEqual(len(check_hash_list(blob, offer.entries[0])), 2)  # type: ignore[arg-type]
        self.assertIn("no sha256 chunk hashes", self.served(bob.fp, offer, None))
        self.assertIn("no md5 chunk hashes", self.served(bob.fp, offer, "md5"))
        self.assertIn("no ['blake3'] chunk hashes", self.served(bob.fp, offer, ["blake3"]))

    def test_a_peer_without_it_is_offered_sha256_as_before(self) -> None:
        old = self.link("old", (CAP_FILES,))
        self.send("old")
        [line] = [m for m in old.sent if m.type == FILE]
        self.assertNotIn("chunks", line.metadata)
        offer = self.offered(old)
        blob = self.served(old.fp, offer, None)  # a files/1 receiver names no hash
        self.assertEqual(blob, hash_file(self.path, "x").hashes)
        self.assertEqual(len(check_hash_list(blob, offer.entries[0])), 2)  # type: ignore[arg-type]

    def test_a_room_of_both_gets_each_its_own_and_keeps_it(self) -> None:
        new, old = self.link("new", (CAP_FILES, CAP_FILES_BLAKE3)), self.link("old", (CAP_FILES,))
        for link in (new, old):
            self.node.message_received(link, Message(
                id=f"r{link.username}", type="rooms", sender_id=link.peer_id,
                metadata={"rooms": []}))
        out = self.send("#general")
        to_new, to_old = self.offered(new), self.offered(old)
        self.assertEqual((to_new.chunks, to_old.chunks), (LEAF_BLAKE3, LEAF_SHA256))
        self.assertEqual((to_new.id, to_new.entries[0].sha256),
                         (to_old.id, to_old.entries[0].sha256))
        for link, offer, kind in ((new, to_new, "blake3"), (old, to_old, None)):
            blob = self.served(link.fp, offer, kind)
            check_hash_list(blob, offer.entries[0])  # type: ignore[arg-type]
        # kept across a restart, and offered again the same way when the links come back
        again = Kept(self.node.files.kept.folder.rsplit("/", 1)[0])  # type: ignore[union-attr]
        _, [back], _ = again.load()
        self.assertEqual((back.hashes, back.more), (out.hashes, out.more))
        for link in (new, old):
            link.sent.clear()
            self.node.files.linked(self.node.links[link.peer_id])
        self.assertEqual((self.offered(new), self.offered(old)), (to_new, to_old))

    def test_a_peer_that_no_longer_takes_blake3_is_told_to_send_again(self) -> None:
        bob = self.link("bob", (CAP_FILES, CAP_FILES_BLAKE3))
        out = self.send("bob")
        bob.caps = ("p2pchat-py/1", CAP_FILES)  # back, a version without files/2
        bob.sent.clear()
        self.node.files.linked(self.node.links[bob.peer_id])
        self.assertEqual([m for m in bob.sent if m.type == FILE], [])
        [r] = out.receivers.values()
        self.assertEqual(r.state, "failed")
        self.assertIn("no longer takes BLAKE3", r.why)


class Fills(TestCase):
    """The receiver's TLS reads (real TLS over a socket pair): a chunk filled straight from
    OpenSSL, or by pyOpenSSL's recv_into where its binding is not there; closed and cut."""

    def setUp(self) -> None:
        self.a, self.b = Identity.generate(), Identity.generate()

    def transfer(self, data: bytes, close_after: bool = True, slow: bool = False
                 ) -> tuple[Channel, list]:
        sa, sb = socket.socketpair()
        ca, cb = Channel(sa, self.a, server=True), Channel(sb, self.b, server=False)
        said: list = []

        def send() -> None:
            try:
                ca.handshake(lambda fp: True)
                ca.send_line({"length": len(data)})
                ca.sendall(data)
                if close_after:
                    ca.cut("done")
            except StreamError as e:
                said.append(e)

        t = threading.Thread(target=send)
        t.start()
        cb.handshake(lambda fp: True)
        if slow:
            cb._fill = stream.recv_filler(cb.conn)  # type: ignore[arg-type]
        self.assertEqual(cb.read_line(), {"length": len(data)})
        self.addCleanup(lambda: (t.join(10), ca.close(), cb.close()))
        return cb, said

    def test_a_chunk_comes_whole_and_a_short_answer_is_an_error(self) -> None:
        data = os.urandom(CHUNK_BYTES + 12345)
        cb, _ = self.transfer(data)
        got = memoryview(bytearray(CHUNK_BYTES))
        cb.read_exactly(got)
        self.assertEqual(bytes(got), data[:CHUNK_BYTES])
        with self.assertRaises(StreamError) as e:  # 12345 bytes, then closed
            cb.read_exactly(memoryview(bytearray(CHUNK_BYTES)))
        self.assertFalse(e.exception.bad)

    def test_without_the_binding_recv_into_fills_it(self) -> None:
        class Bare:  # a Connection of a pyOpenSSL whose insides are not what we know
            def recv_into(self, view, n):
                view[:3] = b"abc"
                return 3

        got = memoryview(bytearray(9))
        stream.filler(Bare())(got)  # type: ignore[arg-type]
        self.assertEqual(bytes(got), b"abc" * 3)
        data = os.urandom(CHUNK_BYTES + 5)
        cb, _ = self.transfer(data, slow=True)
        got = memoryview(bytearray(CHUNK_BYTES))
        cb.read_exactly(got)
        self.assertEqual(bytes(got), data[:CHUNK_BYTES])
        with self.assertRaises(StreamError):
            cb.read_exactly(memoryview(bytearray(CHUNK_BYTES)))

    def test_a_cut_wakes_a_fill(self) -> None:
        cb, _ = self.transfer(b"abc", close_after=False)
        threading.Timer(0.2, cb.cut, ("you cancelled it",)).start()
        with self.assertRaises(StreamError) as e:
            cb.read_exactly(memoryview(bytearray(CHUNK_BYTES)))
        self.assertEqual(e.exception.why, "you cancelled it")

    def test_a_silent_sender_times_out(self) -> None:
        self.patch(stream, "STREAM_TIMEOUT", 0.3)
        cb, _ = self.transfer(b"abc", close_after=False)
        with self.assertRaises(StreamError) as e:
            cb.read_exactly(memoryview(bytearray(CHUNK_BYTES)))
        self.assertIn("silent", e.exception.why)
