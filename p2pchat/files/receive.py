"""The receiving side of one transfer over one connection: for each file of the offer not yet
had, fetch its chunk hashes (checked against the offer's root), check what the ``.part`` file
already holds (in a thread; a bad chunk and what follows are dropped), ask for the rest from
the start of the first missing chunk, check each chunk as it completes and the whole file's
SHA-256 at its end, and only then rename the ``.part`` file to its name.

A chunk that does not match its hash cuts the connection: the bytes are not kept, and the
transfer fails with that said (the sender's copy is damaged, or it sent garbage).
"""

from __future__ import annotations

import hashlib
import os
from typing import IO, TYPE_CHECKING, Any, Callable, Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from p2pchat.files.hashing import Prefix, check_prefix
from p2pchat.files.offers import (
    CHUNK_BYTES,
    HASH_BYTES,
    OfferError,
    check_hash_list,
    chunk_count,
    unique_name,
)

if TYPE_CHECKING:
    from p2pchat.files.stream import FetchProtocol
    from p2pchat.files.transfers import Incoming

log = Logger()


#: Chunks waiting for the writer thread past which the connection is paused: memory stays at a
#: few chunks whatever the file's size.
QUEUED_CHUNKS = 4


class Owner(Protocol):
    """What a receive reports to (transfers.Transfers)."""

    def progress(self, inc: Incoming, n: int) -> None: ...

    def received(self, inc: Incoming) -> None: ...

    def stopped(self, inc: Incoming, why: str, bad: bool) -> None: ...


class Receive:
    """One connection's work for the incoming transfer ``inc``."""

    def __init__(self, inc: Incoming, owner: Owner,
                 in_thread: Callable[..., Deferred[Any]]) -> None:
        self.inc = inc
        self.owner = owner
        self.in_thread = in_thread
        self.link: FetchProtocol | None = None
        self.entry = -1
        self.hashes: list[bytes] = []
        self._blob = bytearray()
        self.file: IO[bytes] | None = None
        self.whole: Any = None
        self.pos = 0  # bytes of the current file received (written or waiting to be)
        self.written = 0  # bytes of the current file written and checked
        self.buf: list[bytes] = []  # received, not yet a whole chunk
        self.held = 0  # bytes in buf
        self.at = 0  # the offset in the file of buf's first byte
        self.size = 0  # the current file's
        self.queued = 0  # chunks given to the writer thread, not yet written
        self.paused = False  # the connection paused while the writer catches up
        self.ended = False  # every byte asked for came
        self._tail: Deferred[Any] = succeed(None)  # the writer's queue, one at a time
        self.over = False  # stopped: nothing more is done

    # --- from the connection ------------------------------------------------------------------

    def proven(self, link: FetchProtocol) -> None:
        self.link = link
        self._next()

    def lost(self, link: FetchProtocol, why: str) -> None:
        self._tail.addBoth(lambda _: self._close_file())  # after a write under way
        if not self.over:
            self.over = True
            # cut by us (it sent more than it said, or garbage): failed, not retried
            self.owner.stopped(self.inc, f"the transfer connection closed ({why})",
                               bad=bool(link.why))

    # --- the steps ----------------------------------------------------------------------------

    def _next(self) -> None:
        inc = self.inc
        for i, done in enumerate(inc.entry_done):
            if not done:
                break
        else:
            self.over = True
            if self.link is not None:
                self.link.transport.loseConnection()
            self.owner.received(inc)
            return
        self.entry = i
        entry = inc.offer.entries[i]
        self._blob = bytearray()
        assert self.link is not None
        self.link.ask({"offer": inc.offer.id, "entry": i, "what": "chunks"},
                      chunk_count(entry.size) * HASH_BYTES, self._blob.extend,
                      self._got_hashes, self._refused)

    def _refused(self, why: str) -> None:
        self._stop(f"{self.inc.nick} refused: {why}", bad=False)

    def _got_hashes(self) -> None:
        entry = self.inc.offer.entries[self.entry]
        try:
            self.hashes = check_hash_list(bytes(self._blob), entry)
        except OfferError as e:
            self._stop(f"bad hash list for {entry.path}: {e}", bad=True)
            return
        self._blob = bytearray()
        part = self.inc.parts[self.entry]
        os.makedirs(os.path.dirname(part), exist_ok=True)
        d = self.in_thread(check_prefix, part, entry.size, self.hashes)
        d.addCallbacks(self._checked, self._check_failed)

    def _check_failed(self, failure: Failure) -> None:
        self._stop(f"can't read {self.inc.parts[self.entry]}: {failure.getErrorMessage()}",
                   bad=False)

    def _checked(self, prefix: Prefix) -> None:
        if self.over:
            return
        entry = self.inc.offer.entries[self.entry]
        part = self.inc.parts[self.entry]
        self.whole, self.pos = prefix.whole, prefix.length
        self.written, self.buf, self.held, self.ended = prefix.length, [], 0, False
        self.at = prefix.length  # where buf starts in the file (a chunk's start)
        self.size = entry.size
        self.owner.progress(self.inc, 0)  # what is had now (done is read from the files)
        try:
            self.file = open(part, "r+b" if os.path.exists(part) else "w+b")
            self.file.seek(self.pos)
        except OSError as e:
            self._stop(f"can't write {part}: {e.strerror}", bad=False)
            return
        if self.pos >= entry.size:
            self._file_end()
            return
        assert self.link is not None
        self.link.ask({"offer": self.inc.offer.id, "entry": self.entry, "what": "bytes",
                       "from": self.pos}, entry.size - self.pos, self._data, self._file_end,
                      self._refused)

    def _data(self, data: bytes) -> None:
        """Bytes came (a TLS record, 16 KiB at most): kept as they are until a whole chunk
        (or the file's last) is had, then the pieces go to the writer thread, which joins
        them (a MiB's copy less on the reactor)."""
        self.pos += len(data)
        while data:
            room = CHUNK_BYTES - self.held
            if len(data) > room:
                piece, data = data[:room], data[room:]
            else:
                piece, data = data, b""
            self.buf.append(piece)
            self.held += len(piece)
            if self.held == CHUNK_BYTES or (not data and self.pos == self.size):
                pieces, n = self.buf, self.held
                self.buf, self.held = [], 0
                self._queue(self.at // CHUNK_BYTES, pieces, n)
                self.at += n
        if self.queued > QUEUED_CHUNKS and not self.paused and self.link is not None:
            self.paused = True  # the writer is behind: TCP slows the sender meanwhile
            self.link.transport.pauseProducing()

    def _queue(self, index: int, pieces: list[bytes], n: int) -> None:
        """Write a chunk, add it to the whole file's hash and hash it, in one thread after
        the chunks before it (the reactor only compares the hash)."""
        self.queued += 1
        file, whole = self.file, self.whole

        def work() -> bytes:
            assert file is not None
            chunk = b"".join(pieces)  # here, not on the reactor
            file.write(chunk)
            whole.update(chunk)
            return hashlib.sha256(chunk).digest()

        def run(_: object) -> Deferred[None] | None:
            if self.over:
                self.queued -= 1
                return None
            return self.in_thread(work).addCallbacks(
                self._written, self._write_failed, callbackArgs=(index, n))

        self._tail.addCallback(run)

    def _written(self, digest: bytes, index: int, n: int) -> None:
        """A chunk is on disk (no other write runs now: the next waits for this one)."""
        self.queued -= 1
        if self.over:
            return
        if digest != self.hashes[index]:
            self._bad_chunk(index)
            return
        self.written += n
        self.owner.progress(self.inc, n)
        if self.paused and self.queued <= 1 and self.link is not None:
            self.paused = False
            self.link.transport.resumeProducing()
        if self.ended and self.queued == 0:
            self._whole_file()

    def _write_failed(self, failure: Failure) -> None:
        self.queued -= 1
        self._stop(f"can't write {self.inc.parts[self.entry]}: {failure.getErrorMessage()}",
                   bad=False)

    def _bad_chunk(self, index: int) -> None:
        """A chunk that is not what the offer said: dropped, and the sender cut off."""
        entry = self.inc.offer.entries[self.entry]
        if self.file is not None:
            self.file.truncate(index * CHUNK_BYTES)
        why = (f"chunk {index + 1} of {entry.path} did not match its hash: the sender's "
               "copy is damaged or it sent garbage")
        log.warn("transfer {offer} from {peer}: {why}", offer=self.inc.offer.id,
                 peer=self.inc.peer_id, why=why)
        self._stop(why, bad=True)

    def _file_end(self) -> None:
        """Every byte asked for came; the file is checked once the writer has them all."""
        self.ended = True
        if self.queued == 0:
            self._whole_file()

    def _whole_file(self) -> None:
        entry = self.inc.offer.entries[self.entry]
        self._close_file()
        if self.whole.hexdigest() != entry.sha256:
            self._stop(f"{entry.path} does not match its SHA-256: not kept", bad=True)
            return
        part, final = self.inc.parts[self.entry], self.inc.finals[self.entry]
        if os.path.exists(final):  # made meanwhile by someone else: never overwritten
            folder, name = os.path.split(final)
            final = os.path.join(folder, unique_name(name, lambda n: os.path.exists(
                os.path.join(folder, n))))
            self.inc.finals[self.entry] = final
        try:
            os.replace(part, final)
        except OSError as e:
            self._stop(f"can't rename {part}: {e.strerror}", bad=False)
            return
        self.inc.entry_done[self.entry] = True
        self._next()

    def _close_file(self) -> None:
        if self.file is not None:
            try:
                self.file.close()
            except OSError:
                pass
            self.file = None

    def _stop(self, why: str, bad: bool) -> None:
        if self.over:
            return
        self.over = True
        self._tail.addBoth(lambda _: self._close_file())  # after a write under way
        if self.link is not None:
            self.link.cut(why)
        self.owner.stopped(self.inc, why, bad)
