"""File transfer's connections and their two ends, without processes: the receiving side's
checks (a bad chunk, a wrong hash list, a whole-file mismatch, more than offered), the key
checks of a transfer connection, and flat memory (the producer, the writer thread)."""

from __future__ import annotations

import hashlib
import os

from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase

from p2pchat.files.hashing import check_prefix, hash_file
from p2pchat.files.kept import Incoming
from p2pchat.files.offers import CHUNK_BYTES, Entry, Offer
from p2pchat.files.receive import Receive
from p2pchat.files.stream import FetchProtocol
from tests.test_files import FP, _file, _Link, _Owner

class Receiving(TestCase):
    def setUp(self) -> None:
        self.src = self.mktemp()
        self.data = _file(self.src, 2 * CHUNK_BYTES + 500)
        self.hashed = hash_file(self.src, "a.bin")
        folder = self.mktemp()
        os.makedirs(folder)
        self.final = os.path.join(folder, "a.bin")
        offer = Offer("o1", "a.bin", (self.hashed.entry,), 4000)
        self.inc = Incoming(1, offer, "bob_1", "bob", FP, "127.0.0.1", "accepted",
                            finals=[self.final], parts=[self.final + ".part"],
                            entry_done=[False])
        self.owner = _Owner()
        self.job = Receive(self.inc, self.owner, lambda f, *a: succeed(f(*a)))
        self.link = _Link()
        self.job.proven(self.link)  # type: ignore[arg-type]

    def answer(self, data: bytes, pieces: int = 7) -> None:
        request, expect, sink, end, refused = self.link.asked[-1]
        self.assertEqual(len(data), expect)
        step = max(1, len(data) // pieces)
        for i in range(0, len(data), step):
            sink(data[i:i + step])
            if self.job.over:
                return
        end()

    def test_a_whole_file_is_checked_and_renamed(self) -> None:
        self.answer(self.hashed.hashes)
        self.assertEqual(self.link.asked[-1][0]["from"], 0)
        self.answer(self.data)
        self.assertEqual(self.owner.done, 1)
        with open(self.final, "rb") as f:
            self.assertEqual(f.read(), self.data)
        self.assertFalse(os.path.exists(self.final + ".part"))

    def test_many_small_pieces_make_the_file(self) -> None:
        self.answer(self.hashed.hashes)
        self.answer(self.data, pieces=len(self.data) // 1000)  # 1000 B: over 1000 a chunk
        self.assertEqual(self.owner.done, 1)
        with open(self.final, "rb") as f:
            self.assertEqual(f.read(), self.data)

    def test_a_resume_asks_from_the_chunk_the_part_ends_in(self) -> None:
        with open(self.final + ".part", "wb") as f:
            f.write(self.data[:CHUNK_BYTES + 77])
        self.answer(self.hashed.hashes)
        self.assertEqual(self.link.asked[-1][0]["from"], CHUNK_BYTES)
        self.answer(self.data[CHUNK_BYTES:])
        with open(self.final, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), self.hashed.entry.sha256)

    def test_a_bad_chunk_is_not_kept_and_cuts_the_sender(self) -> None:
        self.answer(self.hashed.hashes)
        bad = bytearray(self.data)
        bad[CHUNK_BYTES + 3] ^= 1
        self.answer(bytes(bad))
        [(why, is_bad)] = self.owner.stops
        self.assertTrue(is_bad)
        self.assertIn("chunk 2 of a.bin did not match its hash", why)
        self.assertEqual(self.link.cuts, [why])
        self.assertEqual(os.path.getsize(self.final + ".part"), CHUNK_BYTES)
        self.assertFalse(os.path.exists(self.final))

    def test_a_wrong_hash_list_cuts_the_sender(self) -> None:
        self.answer(b"\0" * len(self.hashed.hashes))
        self.assertTrue(self.owner.stops[0][1])
        self.assertIn("bad hash list", self.owner.stops[0][0])

class FetchFraming(TestCase):
    """The receiving connection reads exactly what it was told, no more."""

    def setUp(self) -> None:
        self.got: list[bytes] = []
        self.ends = 0

        class Job:
            def proven(self, link) -> None:
                pass

            def lost(self, link, why) -> None:
                pass

        self.proto = FetchProtocol(None, Clock(), FP, Job())  # type: ignore[arg-type]
        self.transport = StringTransport()
        self.proto.transport = self.transport
        self.proto.connected = True

    def ask(self, expect: int) -> None:
        def end() -> None:
            self.ends += 1

        self.proto.ask({"what": "bytes"}, expect, self.got.append, end, lambda why: None)

    def test_the_bytes_offered_are_taken(self) -> None:
        self.ask(5)
        self.proto.dataReceived(b'{"length": 5}\nab')
        self.proto.dataReceived(b"cde")
        self.assertEqual((b"".join(self.got), self.ends), (b"abcde", 1))
        self.assertFalse(self.transport.disconnecting)

    def test_more_than_offered_is_cut_off(self) -> None:
        self.ask(5)
        self.proto.dataReceived(b'{"length": 5}\nabcdefgh')
        self.assertIn("more than it offered", self.proto.why)
        self.assertEqual(b"".join(self.got), b"")

    def test_a_wrong_length_or_garbage_is_cut_off(self) -> None:
        self.ask(5)
        self.proto.dataReceived(b'{"length": 6}\n')
        self.assertIn("not the 5 asked", self.proto.why)
        self.setUp()
        self.ask(5)
        self.proto.dataReceived(b'\x00\xff garbage\n')
        self.assertIn("not JSON", self.proto.why)

    def test_bytes_not_asked_for_are_cut_off(self) -> None:
        self.proto.dataReceived(b'{"length": 5}\n')
        self.assertIn("not asked for", self.proto.why)

class _TLSTransport(StringTransport):
    """A transport that says TLS is up with ``cert`` as the peer's certificate."""

    def __init__(self, cert) -> None:
        super().__init__()
        self.cert = cert
        self.aborted = False
        self.tls = None

    def startTLS(self, context) -> None:
        self.tls = context

    def getPeerCertificate(self):
        return self.cert

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()

class _Serving:
    def __init__(self, identity, known: str) -> None:
        self.identity, self.known, self.rate = identity, known, 0.0
        self.asked: list = []

    def fp_known(self, fp: str) -> bool:
        return fp == self.known

    def serve(self, fp, request):
        self.asked.append(request)
        return b"", None

    def sent(self, fp, offer_id, entry, upto) -> None:
        pass

    def unserved(self, fp, offer_id) -> None:
        pass

class TransferConnections(TestCase):
    """Each side of a transfer connection takes only the key it expects, and nothing before."""

    def setUp(self) -> None:
        from p2pchat.identity import Identity

        self.ours, self.theirs = Identity.generate(), Identity.generate()
        self.clock = Clock()

    def serve(self, known: str):
        from p2pchat.files.stream import ServeProtocol

        files = _Serving(self.ours, known)
        proto = ServeProtocol(files, self.clock, set())  # type: ignore[arg-type]
        transport = _TLSTransport(self.theirs.cert)
        proto.makeConnection(transport)
        return proto, transport, files

    def test_the_offerer_takes_only_a_receiver_it_offered_to(self) -> None:
        proto, transport, files = self.serve(known="00" * 32)
        self.assertIsNotNone(transport.tls)
        proto.dataReceived(b'{"offer": "o1", "entry": 0, "what": "chunks"}\n')
        self.assertTrue(transport.aborted)  # asked before TLS proved anything
        proto, transport, files = self.serve(known="00" * 32)
        proto.handshakeCompleted()
        self.assertTrue(transport.aborted)
        self.assertEqual(files.asked, [])

    def test_a_known_receiver_is_served(self) -> None:
        proto, transport, files = self.serve(known=self.theirs.fingerprint)
        proto.handshakeCompleted()
        self.assertFalse(transport.aborted)
        proto.dataReceived(b'{"offer": "o1", "entry": 0, "what": "chunks"}\n')
        self.assertEqual(files.asked, [{"offer": "o1", "entry": 0, "what": "chunks"}])
        self.assertIn(b'{"length": 0}\n', transport.value())

    def test_the_receiver_takes_only_the_offerers_key(self) -> None:
        proven: list = []

        class Job:
            def proven(self, link) -> None:
                proven.append(link)

            def lost(self, link, why) -> None:
                pass

        for expect, ok in (("00" * 32, False), (self.theirs.fingerprint, True)):
            proto = FetchProtocol(self.ours, self.clock, expect, Job())  # type: ignore[arg-type]
            transport = _TLSTransport(self.theirs.cert)
            proto.makeConnection(transport)
            proto.handshakeCompleted()
            self.assertEqual(transport.aborted, not ok)
        self.assertEqual(len(proven), 1)

    def test_a_silent_connection_is_closed(self) -> None:
        from p2pchat.files.stream import STREAM_TIMEOUT

        proto, transport, files = self.serve(known=self.theirs.fingerprint)
        self.clock.advance(STREAM_TIMEOUT + 1)
        self.assertTrue(transport.aborted)

    def test_a_long_request_line_is_cut(self) -> None:
        from p2pchat.files.stream import HEADER_BYTES

        proto, transport, files = self.serve(known=self.theirs.fingerprint)
        proto.handshakeCompleted()
        proto.dataReceived(b"x" * (HEADER_BYTES + 10))
        self.assertTrue(transport.aborted)

    def test_transfer_connections_are_bounded(self) -> None:
        from p2pchat.files.stream import MAX_STREAMS, ServeFactory

        factory = ServeFactory(_Serving(self.ours, ""), self.clock)  # type: ignore[arg-type]
        for _ in range(MAX_STREAMS):
            factory.buildProtocol(None).makeConnection(_TLSTransport(None))  # type: ignore[union-attr]
        self.assertIsNone(factory.buildProtocol(None))

class WholeFile(TestCase):
    def test_chunks_that_match_but_a_whole_hash_that_does_not_are_not_kept(self) -> None:
        src = self.mktemp()
        data = _file(src, CHUNK_BYTES + 10)
        hashed = hash_file(src, "a.bin")
        entry = Entry("a.bin", hashed.entry.size, "0" * 64, hashed.entry.root)
        folder = self.mktemp()
        os.makedirs(folder)
        final = os.path.join(folder, "a.bin")
        inc = Incoming(1, Offer("o1", "a.bin", (entry,), 4000), "bob_1", "bob", FP, "::1",
                       "accepted", finals=[final], parts=[final + ".part"], entry_done=[False])
        owner, link = _Owner(), _Link()
        job = Receive(inc, owner, lambda f, *a: succeed(f(*a)))
        job.proven(link)  # type: ignore[arg-type]
        for blob in (hashed.hashes, data):
            request, expect, sink, end, refused = link.asked[-1]
            sink(blob)
            end()
        self.assertEqual(owner.done, 0)
        self.assertIn("does not match its SHA-256", owner.stops[0][0])
        self.assertFalse(os.path.exists(final))

class FlatMemory(TestCase):
    """Whatever the size, only a few blocks or chunks are held at once."""

    def test_the_producer_writes_a_few_blocks_per_turn_and_stops_when_paused(self) -> None:
        import io

        from p2pchat.files.stream import BLOCK_BYTES, BLOCKS_PER_TURN, FileProducer

        class Turns(Clock):
            def turn(self) -> None:
                """One turn of the reactor: the calls due now, not the ones they make."""
                due = [c for c in self.calls if c.getTime() <= self.seconds()]
                for call in due:
                    self.calls.remove(call)
                    call.func(*call.args, **call.kw)

        clock, transport = Turns(), StringTransport()
        done: list = []
        producer = FileProducer(io.BytesIO(b"x" * (100 * BLOCK_BYTES)), BLOCK_BYTES,
                                99 * BLOCK_BYTES, transport, clock, lambda n: None,
                                lambda: done.append(1))
        producer.start()
        self.assertEqual(len(transport.value()), 0)  # nothing until the reactor turns
        clock.turn()
        self.assertEqual(len(transport.value()), BLOCKS_PER_TURN * BLOCK_BYTES)
        producer.pauseProducing()
        clock.turn()
        clock.turn()
        self.assertEqual(len(transport.value()), BLOCKS_PER_TURN * BLOCK_BYTES)
        producer.resumeProducing()
        for _ in range(100):
            clock.turn()
        self.assertEqual((len(transport.value()), done), (99 * BLOCK_BYTES, [1]))

    def test_the_producer_keeps_to_its_rate(self) -> None:
        import io

        from p2pchat.files.stream import FileProducer

        clock, transport = Clock(), StringTransport()
        producer = FileProducer(io.BytesIO(b"x" * (8 << 20)), 0, 8 << 20, transport, clock,
                                lambda n: None, lambda: None, rate=1 << 20)
        producer.start()
        for _ in range(40):
            clock.advance(0.1)  # 4 s
        self.assertLessEqual(len(transport.value()), 5 << 20)
        self.assertGreaterEqual(len(transport.value()), 3 << 20)

    def test_the_receiver_pauses_the_connection_while_its_writer_is_behind(self) -> None:
        from twisted.internet.defer import Deferred

        from p2pchat.files.receive import QUEUED_CHUNKS

        src = self.mktemp()
        data = _file(src, (QUEUED_CHUNKS + 4) * CHUNK_BYTES)
        hashed = hash_file(src, "a.bin")
        folder = self.mktemp()
        os.makedirs(folder)
        final = os.path.join(folder, "a.bin")
        inc = Incoming(1, Offer("o1", "a.bin", (hashed.entry,), 4000), "bob_1", "bob", FP,
                       "::1", "accepted", finals=[final], parts=[final + ".part"],
                       entry_done=[False])
        writes: list = []  # the writer thread's work, run when the test says

        def in_thread(f, *a):
            if f is check_prefix:
                return succeed(f(*a))
            d: Deferred = Deferred()
            writes.append((d, f, a))
            return d

        owner, link = _Owner(), _Link()
        transport = link.transport
        paused: list = []
        transport.pauseProducing = lambda: paused.append(True)  # type: ignore[method-assign]
        transport.resumeProducing = lambda: paused.append(False)  # type: ignore[method-assign]
        job = Receive(inc, owner, in_thread)
        job.proven(link)  # type: ignore[arg-type]
        request, expect, sink, end, refused = link.asked[-1]
        sink(hashed.hashes)
        end()
        request, expect, sink, end, refused = link.asked[-1]
        for i in range(0, len(data), 256 * 1024):
            sink(data[i:i + 256 * 1024])
        self.assertEqual(paused, [True])  # past QUEUED_CHUNKS chunks waiting
        self.assertLessEqual(len(writes), 1)  # one at a time
        end()
        while writes:
            d, f, a = writes.pop(0)
            d.callback(f(*a))
        self.assertEqual(paused, [True, False])
        self.assertEqual(owner.done, 1)
        with open(final, "rb") as f:
            self.assertEqual(f.read(), data)
