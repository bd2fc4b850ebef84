"""Hashing files, in a thread: a 4 GiB file takes seconds, and the reactor must not wait
(``deferToThread``; hashlib and blake3 let go of the GIL on large updates).  These functions
block.

The whole file's hash is SHA-256 always; the chunk hashes are SHA-256 or BLAKE3 (the offer's
``chunks``, offers.LEAF_HASHES): BLAKE3 takes a third of SHA-256's CPU, and a receiver checks
every chunk as it comes."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from p2pchat.files.offers import (
    CHUNK_BYTES,
    LEAF_BLAKE3,
    LEAF_SHA256,
    Entry,
    chunk_root,
    kept_bytes,
    whole_chunks,
)

#: Bytes read at once while hashing.
READ_BYTES = CHUNK_BYTES

Buffer = bytes | bytearray | memoryview


def _sha256(block: Buffer) -> bytes:
    return hashlib.sha256(block).digest()


def _blake3(block: Buffer) -> bytes:
    import blake3  # at the first BLAKE3 chunk, not at start: an idle peer doesn't need it

    return blake3.blake3(block).digest()


_LEAVES: dict[str, Callable[[Buffer], bytes]] = {LEAF_SHA256: _sha256, LEAF_BLAKE3: _blake3}


def leaf_hash(kind: str) -> Callable[[Buffer], bytes]:
    """The function that hashes one chunk for chunk hashes of ``kind`` (32 bytes)."""
    return _LEAVES[kind]


@dataclass
class Hashed:
    """A file hashed for an offer: its entry (its root that of the first kind asked), its
    chunk hashes (``hashes``, of that kind; ``leaves``: of every kind asked), and the size and
    mtime it had (a file changed since is not sent)."""

    entry: Entry
    hashes: bytes
    mtime: float
    leaves: dict[str, bytes] = field(default_factory=dict)


def hash_file(path: str, rel: str, kinds: Sequence[str] = (LEAF_SHA256,)) -> Hashed:
    """SHA-256 of the whole file and the chunk hashes of each of ``kinds``, in one read
    (blocking: run in a thread)."""
    whole = hashlib.sha256()
    leaves = {kind: (leaf_hash(kind), bytearray()) for kind in kinds}
    size = 0
    with open(path, "rb") as f:
        stat = os.fstat(f.fileno())
        while True:
            block = f.read(READ_BYTES)
            if not block:
                break
            whole.update(block)
            for fn, out in leaves.values():
                out += fn(block)
            size += len(block)
    done = {kind: bytes(out) for kind, (_, out) in leaves.items()}
    first = done[kinds[0]]
    return Hashed(Entry(rel, size, whole.hexdigest(), chunk_root(first)), first, stat.st_mtime,
                  done)


@dataclass
class Prefix:
    """What of a partial file can be kept: ``length`` bytes, and the running SHA-256 over them
    (the rest of the file is added to it as it comes)."""

    length: int
    whole: Any


def check_prefix(path: str, size: int, hashes: list[bytes], kind: str = LEAF_SHA256
                 ) -> Prefix:
    """Read a partial file, check each whole chunk against its hash (of ``kind``: the offer's
    chunk hash), cut the file after the last good one (a bad chunk and what follows are
    fetched again), and hash what is kept (blocking: run in a thread).  A missing file is an
    empty prefix."""
    whole = hashlib.sha256()
    leaf = leaf_hash(kind)
    try:
        have = os.path.getsize(path)
    except OSError:
        return Prefix(0, whole)
    count = whole_chunks(min(have, size), size)
    matches: list[bool] = []
    with open(path, "rb") as f:
        for i in range(count):
            block = f.read(CHUNK_BYTES)
            ok = i < len(hashes) and leaf(block) == hashes[i]
            matches.append(ok)
            if not ok:
                break
            whole.update(block)
    keep = min(kept_bytes(matches), size)
    if keep != have:
        with open(path, "r+b") as f:
            f.truncate(keep)
    return Prefix(keep, whole)
