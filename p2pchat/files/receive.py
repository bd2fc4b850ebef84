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

from twisted.internet.defer import Deferred
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
        self.chunk: Any = None
        self.pos = 0  # where the next byte goes in the current file
        self.over = False  # stopped: nothing more is done

    # --- from the connection ------------------------------------------------------------------

    def proven(self, link: FetchProtocol) -> None:
        self.link = link
        self._next()

    def lost(self, link: FetchProtocol, why: str) -> None:
        self._close_file()
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
        self.owner.progress(self.inc, 0)  # what is had now (done is read from the files)
        try:
            self.file = open(part, "r+b" if os.path.exists(part) else "w+b")
            self.file.seek(self.pos)
        except OSError as e:
            self._stop(f"can't write {part}: {e.strerror}", bad=False)
            return
        self.chunk = hashlib.sha256()
        if self.pos >= entry.size:
            self._file_end()
            return
        assert self.link is not None
        self.link.ask({"offer": self.inc.offer.id, "entry": self.entry, "what": "bytes",
                       "from": self.pos}, entry.size - self.pos, self._data, self._file_end,
                      self._refused)

    def _data(self, data: bytes) -> None:
        size = self.inc.offer.entries[self.entry].size
        view = memoryview(data)
        while view:
            room = CHUNK_BYTES - self.pos % CHUNK_BYTES
            piece, view = view[:room], view[room:]
            try:
                assert self.file is not None
                self.file.write(piece)
            except OSError as e:
                self._stop(f"can't write {self.inc.parts[self.entry]}: {e.strerror}",
                           bad=False)
                return
            self.whole.update(piece)
            self.chunk.update(piece)
            self.pos += len(piece)
            if self.pos % CHUNK_BYTES == 0 or self.pos == size:
                index = (self.pos - 1) // CHUNK_BYTES
                if self.chunk.digest() != self.hashes[index]:
                    self._bad_chunk(index)
                    return
                self.chunk = hashlib.sha256()
        self.owner.progress(self.inc, len(data))

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
        self._close_file()
        if self.link is not None:
            self.link.cut(why)
        self.owner.stopped(self.inc, why, bad)
