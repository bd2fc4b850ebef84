"""The receiving side of one transfer over one connection, in a thread of its own (stream.py
says why): dial the offerer's file port, mutual TLS and its key checked, then for each file of
the offer not yet had, fetch its chunk hashes (checked against the offer's root), check what
the ``.part`` file already holds (a bad chunk and what follows are dropped), ask for the rest
from the start of the first missing chunk, check each chunk as it completes (its hash and the
whole file's SHA-256 from the same buffer, then written), the whole file's SHA-256 at its
end, and only then rename the ``.part`` file to its name.

A chunk that does not match its hash cuts the connection: the bytes are not kept, and the
transfer fails with that said (the sender's copy is damaged, or it sent garbage); so does an
answer of another length than asked, or bytes past its end.  What the reactor owns (the
``Incoming``, the owner) is only touched on the reactor: progress and the end are handed to it
(``callFromThread``), progress a few times a second at most.
"""

from __future__ import annotations

import mmap
import os
import queue
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from p2pchat.files.hashing import check_prefix, leaf_hash
from p2pchat.files.offers import (
    CHUNK_BYTES,
    HASH_BYTES,
    LEAF_SHA256,
    OfferError,
    check_hash_list,
    chunk_count,
    unique_name,
)
from p2pchat.files.stream import (
    REPORT_EVERY,
    Channel,
    StreamError,
    behind_the_chat,
    log_crash,
)

if TYPE_CHECKING:
    from p2pchat.files.transfers import Incoming
    from p2pchat.identity import Identity

#: Seconds a dial of the offerer's file port may take.
DIAL_TIMEOUT = 10.0
#: Chunk buffers a receive holds at most: one being read, the others checked and waiting
#: for the writer thread.
WRITE_BUFFERS = 3
#: Direct writes (``_open_direct``) are of whole blocks at aligned offsets: the file's last
#: chunk, when it is not, is written as usual.
DIRECT_ALIGN = 4096


class Owner(Protocol):
    """What a receive reports to (transfers.Transfers), on the reactor."""

    def progress(self, inc: Incoming, n: int) -> None: ...

    def received(self, inc: Incoming) -> None: ...

    def stopped(self, inc: Incoming, why: str, bad: bool) -> None: ...


class Receive:
    """One connection's work for the incoming transfer ``inc``.  ``entry`` and ``written``
    (the bytes of the current file on disk and checked) are read by the reactor for
    progress; ``over``: it stopped, or was cut by the reactor (nothing more is told)."""

    def __init__(self, inc: Incoming, owner: Owner, reactor: Any, identity: Identity | None,
                 bind: tuple[str, int] | None = None) -> None:
        self.inc = inc
        self.owner = owner
        self.reactor = reactor
        self.identity = identity
        self.bind = bind
        self.channel: Channel | None = None
        self.entry = -1
        self.written = 0
        self.over = False
        self._why = ""
        self.told = 0.0  # when progress was last handed to the reactor
        # What the thread reads of the Incoming, taken on the reactor before it starts.
        self.offer = inc.offer
        self.parts = list(inc.parts)
        self.finals = list(inc.finals)
        self.todo = [i for i, done in enumerate(inc.entry_done) if not done]
        self.host, self.port, self.expect_fp = inc.host, inc.offer.port, inc.fp

    # --- on the reactor -----------------------------------------------------------------------

    def start(self) -> None:
        threading.Thread(target=self.run, name="p2pchat file in", daemon=True).start()

    def cut(self, why: str) -> None:
        """Stop it (cancelled, shutting down): the thread ends at its next read or write."""
        self.over, self._why = True, self._why or why
        if self.channel is not None:
            self.channel.cut(why)

    def _progress(self) -> None:
        if not self.over:
            self.owner.progress(self.inc, 0)

    def _entry_done(self, i: int, final: str) -> None:
        self.inc.finals[i] = final
        self.inc.entry_done[i] = True

    def _ended(self, ok: bool, why: str, bad: bool) -> None:
        if self.over:
            return
        self.over = True
        if ok:
            self.owner.received(self.inc)
        else:
            self.owner.stopped(self.inc, why, bad)

    # --- in the thread ------------------------------------------------------------------------

    def run(self) -> None:
        behind_the_chat()
        ok, why, bad = False, "", False
        try:
            self.fetch(self._dial())
            ok = True
        except StreamError as e:
            why, bad = e.why, e.bad
        except Exception as e:
            why, bad = "an error (logged)", False
            log_crash(self.reactor, "receiving a file", e)
        finally:
            if self.channel is not None:
                self.channel.close()
            self.reactor.callFromThread(self._ended, ok, why, bad)

    def _dial(self) -> Channel:
        assert self.identity is not None
        try:
            sock = socket.create_connection((self.host, self.port), timeout=DIAL_TIMEOUT,
                                            source_address=self.bind)
        except OSError as e:
            raise StreamError(f"can't reach {self.inc.nick}: {e.strerror or e}") from None
        channel = self.channel = Channel(sock, self.identity, server=False)
        if self.over:  # cut while it dialed
            channel.cut(self._why)
        return channel

    def fetch(self, channel: Channel) -> None:
        """Every file not yet had, over ``channel`` (its handshake done here)."""
        try:
            channel.handshake(lambda fp: fp == self.expect_fp)
        except StreamError as e:
            raise StreamError(f"the transfer connection closed ({e.why})", e.bad) from None
        for i in self.todo:
            self._one(channel, i)

    def _answer(self, channel: Channel, expect: int) -> None:
        """The header of an answer: refused, or the length asked."""
        header = channel.read_line()
        if "error" in header:
            raise StreamError(f"{self.inc.nick} refused: {str(header['error'])[:200]}")
        if header.get("length") != expect:
            raise StreamError(f"the transfer connection closed (it offered "
                              f"{header.get('length')!r} bytes, not the {expect} asked)",
                              bad=True)

    def _one(self, channel: Channel, i: int) -> None:
        entry = self.offer.entries[i]
        request = {"offer": self.offer.id, "entry": i}
        kind = self.offer.chunks
        # the kind named only when not SHA-256: a files/1 sender is asked what it always was
        channel.send_line(request | {"what": "chunks"}
                          | ({"hash": kind} if kind != LEAF_SHA256 else {}))
        expect = chunk_count(entry.size) * HASH_BYTES
        self._answer(channel, expect)
        blob = memoryview(bytearray(expect))
        channel.read_exactly(blob)
        try:
            hashes = check_hash_list(bytes(blob), entry)
        except OfferError as e:
            raise StreamError(f"bad hash list for {entry.path}: {e}", bad=True) from None
        part = self.parts[i]
        try:
            os.makedirs(os.path.dirname(part), exist_ok=True)
            prefix = check_prefix(part, entry.size, hashes, kind)
            fd = os.open(part, os.O_WRONLY | os.O_CREAT, 0o666)
        except OSError as e:
            raise StreamError(f"can't write {part}: {e.strerror}") from None
        self.entry, self.written = i, prefix.length
        self.reactor.callFromThread(self._progress)  # where it starts from is known
        try:
            if prefix.length < entry.size:
                channel.send_line(request | {"what": "bytes", "from": prefix.length})
                self._answer(channel, entry.size - prefix.length)
                self._take(channel, fd, prefix.whole, prefix.length, entry.size, hashes,
                           entry.path, part)
        finally:
            os.close(fd)
        if prefix.whole.hexdigest() != entry.sha256:
            raise StreamError(f"{entry.path} does not match its SHA-256: not kept", bad=True)
        if self.over:  # cancelled meanwhile: its .part is gone
            raise StreamError(self._why or "cancelled")
        final = self.finals[i]
        if os.path.exists(final):  # made meanwhile by someone else: never overwritten
            folder, name = os.path.split(final)
            final = os.path.join(folder, unique_name(name, lambda n: os.path.exists(
                os.path.join(folder, n))))
        try:
            os.replace(part, final)
        except OSError as e:
            raise StreamError(f"can't rename {part}: {e.strerror}") from None
        self.reactor.callFromThread(self._entry_done, i, final)

    def _take(self, channel: Channel, fd: int, whole: Any, pos: int, size: int,
              hashes: list[bytes], path: str, part: str) -> None:
        """The file from ``pos`` (a chunk's start) to ``size``: each chunk read whole into a
        buffer and checked against its hash (the offer's kind) here, then added to the whole
        file's SHA-256 and written by the writer thread while the next one comes (both cores
        at work)."""
        leaf = leaf_hash(self.offer.chunks)
        writer = _Writer(self, fd, whole, path, part)
        try:
            while pos < size:
                want = min(CHUNK_BYTES, size - pos)
                buf = writer.buffer()
                channel.read_exactly(buf[:want])
                index = pos // CHUNK_BYTES
                if leaf(buf[:want]) != hashes[index]:
                    writer.finish()
                    os.ftruncate(fd, pos)  # the chunks before it are kept
                    raise StreamError(f"chunk {index + 1} of {path} did not match its hash: "
                                      "the sender's copy is damaged or it sent garbage",
                                      bad=True)
                writer.put(buf, pos, want)
                pos += want
            if channel.extra():
                raise StreamError("the transfer connection closed (it sent more than it "
                                  "offered)", bad=True)
        finally:
            writer.finish()  # what was checked is written (a resume starts after it)


def _open_direct(path: str) -> int | None:
    """The ``.part`` file opened for direct writes (O_DIRECT: no copy into the page cache,
    which was most of the receiver's CPU, and a download does not push the rest out of the
    cache), or None where the system or the file system has no such thing."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return None
    try:
        return os.open(path, os.O_WRONLY | flag)
    except OSError:
        return None


class _Writer:
    """The second thread of a receive: chunks already checked are added to the whole file's
    SHA-256 and written, in order, WRITE_BUFFERS buffers of a chunk at most in flight (flat
    memory: the reading thread waits for a free one)."""

    def __init__(self, job: Receive, fd: int, whole: Any, path: str, part: str) -> None:
        self.job, self.fd, self.whole, self.path = job, fd, whole, path
        self.free: queue.Queue[memoryview] = queue.Queue()
        for _ in range(WRITE_BUFFERS):
            # page-aligned (an anonymous mapping), as direct writes need
            self.free.put(memoryview(mmap.mmap(-1, CHUNK_BYTES)))
        self.work: queue.Queue[tuple[memoryview, int, int] | None] = queue.Queue()
        self.error: BaseException | None = None
        self.direct = _open_direct(part)
        self.thread = threading.Thread(target=self.run, name="p2pchat file write", daemon=True)
        self.thread.start()
        self.done = False

    def buffer(self) -> memoryview:
        """A free buffer (one the writer is done with); its failure, raised here."""
        while True:
            if self.error is not None:
                raise self.error
            try:
                return self.free.get(timeout=1.0)
            except queue.Empty:
                continue

    def put(self, buf: memoryview, pos: int, n: int) -> None:
        self.work.put((buf, pos, n))

    def finish(self) -> None:
        """Everything put is written (or the writer failed: raised)."""
        if not self.done:
            self.done = True
            self.work.put(None)
            self.thread.join()
            if self.direct is not None:
                os.close(self.direct)
                self.direct = None
        if self.error is not None:
            raise self.error

    def _direct(self, chunk: memoryview, pos: int) -> int:
        """A whole chunk written past the page cache where the file system can (bytes
        written; 0: not done so, the caller writes it as usual)."""
        if self.direct is None or len(chunk) % DIRECT_ALIGN or pos % DIRECT_ALIGN:
            return 0
        try:
            return os.pwrite(self.direct, chunk, pos)
        except OSError:  # not for this file system after all: as usual from now on
            os.close(self.direct)
            self.direct = None
            return 0

    def run(self) -> None:
        behind_the_chat()
        job = self.job
        try:
            while (item := self.work.get()) is not None:
                buf, pos, n = item
                chunk = buf[:n]
                self.whole.update(chunk)
                done = self._direct(chunk, pos)
                while done < n:
                    done += os.pwrite(self.fd, chunk[done:], pos + done)
                job.written = pos + n
                now = time.monotonic()
                if now - job.told >= REPORT_EVERY:
                    job.told = now
                    job.reactor.callFromThread(job._progress)
                self.free.put(buf)
        except OSError as e:
            self.error = StreamError(f"can't write {self.path}: {e.strerror}")
        except Exception as e:  # the reading thread raises it, and it is logged there
            self.error = e
