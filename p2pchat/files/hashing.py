"""Hashing files, in a thread: a 4 GiB file takes seconds, and the reactor must not wait
(``deferToThread``; hashlib lets go of the GIL on large updates).  These functions block."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

from p2pchat.files.offers import CHUNK_BYTES, Entry, chunk_root, kept_bytes, whole_chunks

#: Bytes read at once while hashing.
READ_BYTES = CHUNK_BYTES


@dataclass
class Hashed:
    """A file hashed for an offer: its entry, its chunk hashes, and the size and mtime it had
    (a file changed since is not sent)."""

    entry: Entry
    hashes: bytes
    mtime: float


def hash_file(path: str, rel: str) -> Hashed:
    """SHA-256 of the whole file and of each chunk (blocking: run in a thread)."""
    whole = hashlib.sha256()
    chunks = bytearray()
    size = 0
    with open(path, "rb") as f:
        stat = os.fstat(f.fileno())
        while True:
            block = f.read(READ_BYTES)
            if not block:
                break
            whole.update(block)
            chunks += hashlib.sha256(block).digest()
            size += len(block)
    hashes = bytes(chunks)
    return Hashed(Entry(rel, size, whole.hexdigest(), chunk_root(hashes)), hashes,
                  stat.st_mtime)


@dataclass
class Prefix:
    """What of a partial file can be kept: ``length`` bytes, and the running SHA-256 over them
    (the rest of the file is added to it as it comes)."""

    length: int
    whole: Any


def check_prefix(path: str, size: int, hashes: list[bytes]) -> Prefix:
    """Read a partial file, check each whole chunk against its hash, cut the file after the
    last good one (a bad chunk and what follows are fetched again), and hash what is kept
    (blocking: run in a thread).  A missing file is an empty prefix."""
    whole = hashlib.sha256()
    try:
        have = os.path.getsize(path)
    except OSError:
        return Prefix(0, whole)
    count = whole_chunks(min(have, size), size)
    matches: list[bool] = []
    with open(path, "rb") as f:
        for i in range(count):
            block = f.read(CHUNK_BYTES)
            ok = i < len(hashes) and hashlib.sha256(block).digest() == hashes[i]
            matches.append(ok)
            if not ok:
                break
            whole.update(block)
    keep = min(kept_bytes(matches), size)
    if keep != have:
        with open(path, "r+b") as f:
            f.truncate(keep)
    return Prefix(keep, whole)
