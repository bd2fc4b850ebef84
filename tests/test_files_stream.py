"""File transfer's connections and their two ends, without processes: the receiving side's
checks (a bad chunk, a wrong hash list, a whole-file mismatch, more than offered, garbage),
the key checks of a transfer connection (real TLS over a socket pair), its timeout and cut,
the bound on connections, and flat memory (the writer's few buffers)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time

from OpenSSL import SSL
from twisted.trial.unittest import SkipTest, TestCase

from p2pchat.files import stream
from p2pchat.files.hashing import hash_file
from p2pchat.files.kept import Incoming
from p2pchat.files.offers import CHUNK_BYTES, Entry, Offer
from p2pchat.files.receive import WRITE_BUFFERS, Receive, _Writer
from p2pchat.files.stream import Acceptor, Channel, Served, StreamError
from p2pchat.identity import Identity
from tests.test_files import FP, _file, _Owner


class _Reactor:
    """Runs what a thread hands to the reactor at once (the tests run one thread)."""

    def __init__(self) -> None:
        self.readers: list = []

    def callFromThread(self, f, *a, **kw) -> None:
        f(*a, **kw)

    def seconds(self) -> float:
        return time.monotonic()

    def callLater(self, delay, f, *a, **kw):  # ratelog's window
        class Call:
            def active(self) -> bool:
                return False

            def cancel(self) -> None:
                pass

        return Call()

    def addReader(self, r) -> None:
        self.readers.append(r)

    def removeReader(self, r) -> None:
        self.readers.remove(r)


class _Channel:
    """A transfer connection's other end, scripted: ``answer(request)`` gives the header and
    the bytes; the bytes come in ``piece``-sized reads, ``more`` past their end."""

    def __init__(self, answer, piece: int = 100_000, more: bytes = b"") -> None:
        self.answer = answer
        self.piece = piece
        self.more = more
        self.asked: list[dict] = []
        self.lines: list = []
        self.data = b""
        self.past = b""
        self.cuts: list[str] = []

    def handshake(self, expected) -> str:
        if not expected(FP):
            raise StreamError("a certificate we don't expect", bad=True)
        return FP

    def send_line(self, obj) -> None:
        self.asked.append(obj)
        header, self.data = self.answer(obj)
        self.past = self.more if obj.get("what") == "bytes" else b""
        self.lines.append(header)

    def read_line(self) -> dict:
        if not self.lines:
            raise StreamError("closed")
        return self.lines.pop(0)

    def read_into(self, view) -> int:
        if not self.data:
            raise StreamError("closed")
        n = min(len(view), self.piece, len(self.data))
        view[:n] = self.data[:n]
        self.data = self.data[n:]
        if not self.data:
            self.data, self.past = self.past, b""
        return n

    def read_exactly(self, view) -> None:
        got = 0
        while got < len(view):
            got += self.read_into(view[got:])

    def extra(self) -> bool:
        return bool(self.data)

    def cut(self, why: str) -> None:
        self.cuts.append(why)

    def close(self) -> None:
        pass


def _incoming(test: TestCase, entry: Entry) -> tuple[Incoming, str]:
    folder = test.mktemp()
    os.makedirs(folder)
    final = os.path.join(folder, "a.bin")
    inc = Incoming(1, Offer("o1", "a.bin", (entry,), 4000), "bob_1", "bob", FP, "127.0.0.1",
                   "accepted", finals=[final], parts=[final + ".part"], entry_done=[False])
    return inc, final


def _receive(inc: Incoming, owner: _Owner, hashes: bytes, data: bytes) -> None:
    """A Receive run to its end against a sender that answers with ``hashes`` and ``data``."""

    def answer(request):
        blob = hashes if request["what"] == "chunks" else data[request["from"]:]
        return {"length": len(blob)}, blob

    job = Receive(inc, owner, _Reactor(), None)
    job._dial = lambda: _Channel(answer)  # type: ignore[method-assign]
    job.run()


class Receiving(TestCase):
    def setUp(self) -> None:
        self.src = self.mktemp()
        self.data = _file(self.src, 2 * CHUNK_BYTES + 500)
        self.hashed = hash_file(self.src, "a.bin")
        self.inc, self.final = _incoming(self, self.hashed.entry)
        self.owner = _Owner()

    def run_job(self, data: bytes | None = None, hashes: bytes | None = None, **kw) -> _Channel:
        data = self.data if data is None else data
        hashes = self.hashed.hashes if hashes is None else hashes

        def answer(request):
            if request["what"] == "chunks":
                return {"length": len(hashes)}, hashes
            rest = data[request["from"]:]
            return {"length": len(rest)}, rest

        channel = _Channel(answer, **kw)
        job = Receive(self.inc, self.owner, _Reactor(), None)
        job._dial = lambda: channel  # type: ignore[method-assign]
        job.run()
        return channel

    def test_a_whole_file_is_checked_and_renamed(self) -> None:
        channel = self.run_job()
        self.assertEqual(channel.asked[-1]["from"], 0)
        self.assertEqual((self.owner.done, self.owner.stops), (1, []))
        with open(self.final, "rb") as f:
            self.assertEqual(f.read(), self.data)
        self.assertFalse(os.path.exists(self.final + ".part"))
        self.assertEqual(self.inc.entry_done, [True])

    def test_many_small_pieces_make_the_file(self) -> None:
        self.run_job(piece=1000)  # 1000 B: over 1000 reads a chunk
        self.assertEqual(self.owner.done, 1)
        with open(self.final, "rb") as f:
            self.assertEqual(f.read(), self.data)

    def test_a_resume_asks_from_the_chunk_the_part_ends_in(self) -> None:
        with open(self.final + ".part", "wb") as f:
            f.write(self.data[:CHUNK_BYTES + 77])
        channel = self.run_job()
        self.assertEqual(channel.asked[-1]["from"], CHUNK_BYTES)
        with open(self.final, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), self.hashed.entry.sha256)

    def test_a_bad_chunk_is_not_kept_and_cuts_the_sender(self) -> None:
        bad = bytearray(self.data)
        bad[CHUNK_BYTES + 3] ^= 1
        self.run_job(bytes(bad))
        [(why, is_bad)] = self.owner.stops
        self.assertTrue(is_bad)
        self.assertIn("chunk 2 of a.bin did not match its hash", why)
        self.assertEqual(os.path.getsize(self.final + ".part"), CHUNK_BYTES)
        self.assertFalse(os.path.exists(self.final))

    def test_a_wrong_hash_list_cuts_the_sender(self) -> None:
        self.run_job(hashes=b"\0" * len(self.hashed.hashes))
        self.assertTrue(self.owner.stops[0][1])
        self.assertIn("bad hash list", self.owner.stops[0][0])

    def test_more_than_offered_is_cut_off(self) -> None:
        self.run_job(more=b"abc")
        [(why, is_bad)] = self.owner.stops
        self.assertTrue(is_bad)
        self.assertIn("more than it offered", why)
        self.assertFalse(os.path.exists(self.final))

    def test_a_wrong_length_or_a_refusal(self) -> None:
        def answer(request):
            return {"length": 5}, b"abcde"

        job = Receive(self.inc, self.owner, _Reactor(), None)
        job._dial = lambda: _Channel(answer)  # type: ignore[method-assign]
        job.run()
        self.assertEqual(self.owner.stops[-1][1], True)
        self.assertIn("not the 96 asked", self.owner.stops[-1][0])
        job = Receive(self.inc, self.owner, _Reactor(), None)
        job._dial = lambda: _Channel(lambda r: ({"error": "no such offer"}, b""))  # type: ignore[method-assign]
        job.run()
        self.assertEqual(self.owner.stops[-1], ("bob refused: no such offer", False))

    def test_the_offerers_key_only(self) -> None:
        self.inc.fp = "00" * 32
        self.run_job()
        [(why, is_bad)] = self.owner.stops
        self.assertTrue(is_bad)
        self.assertIn("a certificate we don't expect", why)
        self.assertFalse(os.path.exists(self.final + ".part"))

    def test_a_cancel_says_nothing_more(self) -> None:
        job = Receive(self.inc, self.owner, _Reactor(), None)
        job.cut("you cancelled it")
        job._dial = lambda: _Channel(lambda r: ({"error": "x"}, b""))  # type: ignore[method-assign]
        job.run()
        self.assertEqual((self.owner.stops, self.owner.done), ([], 0))


class WholeFile(TestCase):
    def test_chunks_that_match_but_a_whole_hash_that_does_not_are_not_kept(self) -> None:
        src = self.mktemp()
        data = _file(src, CHUNK_BYTES + 10)
        hashed = hash_file(src, "a.bin")
        entry = Entry("a.bin", hashed.entry.size, "0" * 64, hashed.entry.root)
        inc, final = _incoming(self, entry)
        owner = _Owner()

        _receive(inc, owner, hashed.hashes, data)
        self.assertEqual(owner.done, 0)
        self.assertIn("does not match its SHA-256", owner.stops[0][0])
        self.assertFalse(os.path.exists(final))


class _Files:
    """The transfers, as a sending connection sees them."""

    def __init__(self, identity, known: str, path: str = "", rate: float = 0.0) -> None:
        self.identity, self.known, self.rate, self.path = identity, known, rate, path
        self.asked: list = []
        self.progress: list[int] = []
        self.unserved_ = 0

    def fp_known(self, fp: str) -> bool:
        return fp == self.known

    def serve(self, fp, request):
        self.asked.append(request)
        if request.get("what") == "bytes":
            return open(self.path, "rb"), (request["from"], os.path.getsize(self.path)
                                           - request["from"])
        return b"hashes", None

    def sent(self, fp, offer_id, entry, upto) -> None:
        self.progress.append(upto)

    def unserved(self, fp, offer_id) -> None:
        self.unserved_ += 1


class _Requests(_Channel):
    """The receiver's end as the sending connection sees it: the requests, then closed."""

    def __init__(self, requests: list[dict], fail_after: int | None = None) -> None:
        super().__init__(lambda r: ({}, b""))
        self.requests = requests
        self.out = bytearray()
        self.fail_after = fail_after

    def read_line(self) -> dict:
        if not self.requests:
            raise StreamError("closed")
        return self.requests.pop(0)

    def send_line(self, obj) -> None:
        self.out += json.dumps(obj).encode() + b"\n"

    def sendall(self, data) -> None:
        self.out += data
        if self.fail_after is not None and len(self.out) > self.fail_after:
            raise StreamError("closed")


class Sending(TestCase):
    def setUp(self) -> None:
        self.path = self.mktemp()
        self.data = _file(self.path, 3 * (1 << 20) + 5)

    def serve(self, files: _Files, channel: _Requests) -> Served:
        served = Served(files, _Reactor(), channel, "127.0.0.1:1", set())  # type: ignore[arg-type]
        served.run()
        return served

    def test_a_known_receiver_gets_what_it_asks(self) -> None:
        files = _Files(None, FP, self.path)
        channel = _Requests([{"offer": "o1", "entry": 0, "what": "chunks"},
                             {"offer": "o1", "entry": 0, "what": "bytes", "from": 100}])
        self.serve(files, channel)
        self.assertEqual(len(files.asked), 2)
        header = b'{"length": %d}\n' % (len(self.data) - 100)
        self.assertEqual(bytes(channel.out), b'{"length": 6}\nhashes' + header
                         + self.data[100:])
        self.assertEqual(files.progress[-1], len(self.data))
        self.assertEqual(files.unserved_, 0)

    def test_an_unknown_key_is_not_served(self) -> None:
        files = _Files(None, "00" * 32, self.path)
        channel = _Requests([{"offer": "o1", "entry": 0, "what": "chunks"}])
        self.serve(files, channel)
        self.assertEqual((files.asked, bytes(channel.out)), ([], b""))

    def test_a_connection_lost_mid_file_is_told(self) -> None:
        files = _Files(None, FP, self.path)
        channel = _Requests([{"offer": "o1", "entry": 0, "what": "bytes", "from": 0}],
                            fail_after=1 << 20)
        self.serve(files, channel)
        self.assertEqual(files.unserved_, 1)

    def test_the_sender_keeps_to_its_rate(self) -> None:
        files = _Files(None, FP, self.path, rate=8 << 20)  # 3 MB at 8 MB/s: 0.25 s or so
        channel = _Requests([{"offer": "o1", "entry": 0, "what": "bytes", "from": 0}])
        began = time.monotonic()
        self.serve(files, channel)
        self.assertGreaterEqual(time.monotonic() - began, 0.2)
        self.assertGreater(len(channel.out), len(self.data))


class RealTLS(TestCase):
    """Two Channels over a socket pair, each in its thread: mutual TLS, the keys checked."""

    def setUp(self) -> None:
        self.a, self.b = Identity.generate(), Identity.generate()

    def pair(self, a_expects: str, b_expects: str) -> tuple[list, list, Channel, Channel]:
        sa, sb = socket.socketpair()
        ca, cb = Channel(sa, self.a, server=True), Channel(sb, self.b, server=False)
        results: tuple[list, list] = ([], [])

        def side(ch: Channel, expects: str, out: list) -> None:
            try:
                out.append(ch.handshake(lambda fp: fp == expects))
                ch.send_line({"hello": expects[:4]})
                out.append(ch.read_line())
            except StreamError as e:
                out.append(e)
                ch.cut("failed")

        threads = [threading.Thread(target=side, args=(ca, a_expects, results[0])),
                   threading.Thread(target=side, args=(cb, b_expects, results[1]))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        ca.close()
        cb.close()
        return results[0], results[1], ca, cb

    def test_both_keys_checked(self) -> None:
        a, b, _, _ = self.pair(self.b.fingerprint, self.a.fingerprint)
        self.assertEqual(a[0], self.b.fingerprint)
        self.assertEqual(b[0], self.a.fingerprint)
        self.assertEqual(a[1], {"hello": self.a.fingerprint[:4]})

    def test_a_key_not_expected_is_refused(self) -> None:
        a, b, _, _ = self.pair("00" * 32, self.a.fingerprint)
        self.assertIsInstance(a[0], StreamError)
        self.assertTrue(a[0].bad)
        self.assertIn("don't expect", a[0].why)
        self.assertIsInstance(b[-1], StreamError)  # cut: the receiver is told nothing

    def test_a_silent_connection_times_out_and_a_cut_wakes_a_read(self) -> None:
        self.patch(stream, "STREAM_TIMEOUT", 0.3)
        sa, sb = socket.socketpair()
        ch = Channel(sa, self.a, server=True)
        said: list = []

        def handshake() -> None:
            try:
                ch.handshake(lambda fp: True)  # the other end says nothing
            except StreamError as e:
                said.append(e.why)

        t = threading.Thread(target=handshake)
        t.start()
        t.join(5)
        if t.is_alive():  # no timeout: ended by hand, and failed
            ch.cut("the test gave up")
            t.join(5)
        self.assertEqual(len(said), 1)
        self.assertIn("silent", said[0])
        ch.close()
        self.patch(stream, "STREAM_TIMEOUT", 30.0)
        sa, sb2 = socket.socketpair()
        ch = Channel(sa, self.a, server=True)
        threading.Timer(0.2, ch.cut, ("you cancelled it",)).start()
        with self.assertRaises(StreamError) as e:
            ch.handshake(lambda fp: True)
        self.assertEqual(e.exception.why, "you cancelled it")
        ch.close()
        sb.close()
        sb2.close()

    def test_a_long_line_is_cut(self) -> None:
        ch = Channel(socket.socket(), self.a, server=True)

        class Conn:
            calls = 0

            def recv(self, n):
                self.calls += 1
                if self.calls > 20:  # the guard gone: ends, not a bad line
                    raise SSL.ZeroReturnError()
                return b"x" * n

        ch.conn = Conn()  # type: ignore[assignment]
        with self.assertRaises(StreamError) as e:
            ch.read_line()
        self.assertTrue(e.exception.bad)
        ch.close()


class Bounds(TestCase):
    def test_transfer_connections_are_bounded(self) -> None:
        reactor = _Reactor()
        class Open:
            def cut(self, why: str) -> None:
                cuts.append(why)

        cuts: list[str] = []
        registry: set = set(Open() for _ in range(stream.MAX_STREAMS))
        acceptor = Acceptor(_Files(Identity.generate(), ""), reactor, "127.0.0.1",
                            registry)  # type: ignore[arg-type]
        acceptor.start()
        client = socket.create_connection(("127.0.0.1", acceptor.port), timeout=5)
        time.sleep(0.1)
        acceptor.doRead()
        self.assertEqual(len(registry), stream.MAX_STREAMS)  # nobody new
        self.assertEqual(client.recv(10), b"")  # closed at once
        client.close()
        acceptor.stop()
        self.assertEqual(reactor.readers, [])
        self.assertEqual(len(cuts), stream.MAX_STREAMS)  # stopping cuts them all

    def test_the_writer_holds_a_few_chunks_at_most(self) -> None:
        job = Receive(_incoming(self, Entry("a.bin", 10, "0" * 64, "0" * 64))[0], _Owner(),
                      _Reactor(), None)
        path = self.mktemp()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT)
        writer = _Writer(job, fd, hashlib.sha256(), "a.bin", path)
        held = [writer.buffer() for _ in range(WRITE_BUFFERS)]
        got: list = []
        t = threading.Thread(target=lambda: got.append(writer.buffer()))
        t.start()
        t.join(0.3)
        self.assertEqual(got, [])  # no more buffers than WRITE_BUFFERS
        writer.put(held[0], 0, 10)
        t.join(5)
        self.assertEqual(len(got), 1)
        writer.finish()
        os.close(fd)
        self.assertEqual(os.path.getsize(path), 10)


class DirectWrites(TestCase):
    def test_a_file_system_that_refuses_them_gets_the_file_as_usual(self) -> None:
        from p2pchat.files import receive

        src = self.mktemp()
        data = _file(src, 3 * CHUNK_BYTES)
        hashed = hash_file(src, "a.bin")
        inc, final = _incoming(self, hashed.entry)
        opened: list[int] = []
        paths: list[str] = []

        def refusing(path: str) -> int:  # a descriptor that fails every write
            paths.append(path)
            opened.append(os.open(path, os.O_RDONLY))
            return opened[-1]

        self.patch(receive, "_open_direct", refusing)
        owner = _Owner()

        _receive(inc, owner, hashed.hashes, data)
        self.assertEqual((owner.done, owner.stops), (1, []))
        self.assertEqual(paths, [final + ".part"])
        with open(final, "rb") as f:
            self.assertEqual(f.read(), data)

    def test_whole_chunks_go_past_the_page_cache_where_they_can(self) -> None:
        from p2pchat.files import receive

        src = self.mktemp()
        data = _file(src, 2 * CHUNK_BYTES + 10)
        hashed = hash_file(src, "a.bin")
        inc, final = _incoming(self, hashed.entry)
        direct: list[int] = []
        real = receive._Writer._direct

        def counted(writer, chunk, pos):
            n = real(writer, chunk, pos)
            direct.append(n)
            return n

        self.patch(receive._Writer, "_direct", counted)
        owner = _Owner()

        _receive(inc, owner, hashed.hashes, data)
        self.assertEqual(owner.done, 1)
        with open(final, "rb") as f:
            self.assertEqual(f.read(), data)
        fd = receive._open_direct(final)
        if fd is None:
            raise SkipTest("no direct writes on this file system")
        os.close(fd)
        self.assertEqual(direct, [CHUNK_BYTES, CHUNK_BYTES, 0])  # the last, 10 B, as usual


class Priority(TestCase):
    def test_a_transfer_thread_yields_to_the_chat(self) -> None:
        import sys

        if not sys.platform.startswith("linux"):
            raise SkipTest("per-thread nice values are Linux's")
        seen: list[int] = []

        def thread() -> None:
            stream.behind_the_chat()
            seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

        t = threading.Thread(target=thread)
        t.start()
        t.join(5)
        mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        self.assertEqual(seen, [min(19, mine + stream.TRANSFER_NICE)])
        self.assertGreater(stream.TRANSFER_NICE, 0)


class Crashes(TestCase):
    def test_a_bug_in_a_transfer_thread_is_a_log_line_and_a_stop(self) -> None:
        src = self.mktemp()
        _file(src, 10)
        hashed = hash_file(src, "a.bin")
        inc, final = _incoming(self, hashed.entry)
        owner = _Owner()

        def answer(*request):
            raise RuntimeError("a bug")

        job = Receive(inc, owner, _Reactor(), None)
        job._dial = lambda: _Channel(answer)  # type: ignore[method-assign]
        job.run()
        self.assertEqual(owner.stops, [("an error (logged)", False)])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        files = _Files(None, FP, src)
        channel = _Requests([{"offer": "o1", "entry": 0, "what": "chunks"}])
        files.serve = answer  # type: ignore[method-assign,assignment]
        Served(files, _Reactor(), channel, "127.0.0.1:1", set()).run()  # type: ignore[arg-type]
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
