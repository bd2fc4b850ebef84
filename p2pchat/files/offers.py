"""Offers of files as plain values: what an offer line carries, its limits, the names a
receiver gives the files, and the resume arithmetic.  Pure: no I/O, no reactor.

An offer is a file, or a folder sent with its tree: a list of entries (a relative path, a
size, the SHA-256 of the whole file, and the root of its chunk-hash list).  The chunk hashes
themselves (one per CHUNK_BYTES: SHA-256, or BLAKE3 between peers that both announced
CAP_FILES_BLAKE3; the offer's ``chunks`` names which) are fetched over the transfer connection
and checked against the root: a list for a 4 GiB file (4096 hashes) does not fit in one chat
line.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any, Callable

from p2pchat.files.terms import (  # noqa: F401 (their old home: re-exported)
    CAP_FILES,
    CAP_FILES_BLAKE3,
    FILE,
    FILES_DIR,
    KEPT_NAME,
    MAX_FILE_SIZE,
    human_size,
    parse_size,
    short_hash,
)
from p2pchat.wire import BIDI_CONTROLS, MAX_ID_CHARS, MAX_LINE_BYTES

# --- the negotiated line type -----------------------------------------------------------------

OPS = frozenset({"offer", "accept", "reject", "cancel", "done", "failed"})
#: The chunk hashes an offer can name (its ``chunks``; absent: SHA-256, as ``files/1`` has it).
LEAF_SHA256 = "sha256"
LEAF_BLAKE3 = "blake3"
LEAF_HASHES = (LEAF_SHA256, LEAF_BLAKE3)

# --- limits (documented in README.rst, "Files") -------------------------------------------------

#: The hash list's unit: one SHA-256 per this many bytes; a resume restarts at a chunk start.
CHUNK_BYTES = 1 << 20
HASH_BYTES = 32
#: Most files in one folder offer (the offer is one chat line, under MAX_LINE_BYTES).
MAX_FOLDER_FILES = 128
#: A relative path in a folder offer, and a name, in characters.
MAX_PATH_CHARS = 200
#: A name we write is cut to this many UTF-8 bytes (most file systems allow 255).
MAX_NAME_BYTES = 200
#: Offers to us kept at once (waiting for an answer, or accepted and not finished), and from
#: one peer; past this a new offer is refused (and the sender told).
MAX_OFFERS_HELD = 200
MAX_OFFERS_PER_PEER = 50
#: Our own offers kept at once.
MAX_OFFERS_SENT = 200
#: An offer not finished within this many seconds is forgotten (its partial file deleted).
OFFER_MAX_AGE = 7 * 86400.0
#: Accepting needs the offer's missing bytes plus this much free space in the download dir.
FREE_SPACE_MARGIN = 64 << 20

#: Names Windows reserves (with any extension): a file so named is unusable there.
RESERVED = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                      *(f"lpt{i}" for i in range(10))})
_UNSAFE = frozenset('<>:"|?*\\/')


class OfferError(ValueError):
    """An offer line that is not a valid offer; the text says why, for the log."""


@dataclass(frozen=True)
class Entry:
    """One file of an offer: its path in the offer ("a.txt", or "photos/2024/a.jpg" in a
    folder), its size, its SHA-256 and the root of its chunk-hash list (hex)."""

    path: str
    size: int
    sha256: str
    root: str


@dataclass(frozen=True)
class Offer:
    """An offer: ``name`` is the file's or the folder's name; ``port``: where the offerer
    takes transfer connections; ``room``: the room it was offered in ("" for one peer);
    ``chunks``: the hash of its chunk-hash lists (LEAF_HASHES; the roots are of those)."""

    id: str
    name: str
    entries: tuple[Entry, ...]
    port: int
    folder: bool = False
    room: str = ""
    made: float = 0.0
    chunks: str = LEAF_SHA256

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries)

    @property
    def sha256(self) -> str:
        """The SHA-256 shown with the offer: the file's, or for a folder the hash of its
        entries' hashes and paths (so the short form names the whole tree)."""
        if not self.folder:
            return self.entries[0].sha256
        h = hashlib.sha256()
        for e in self.entries:
            h.update(f"{e.path}\0{e.size}\0{e.sha256}\n".encode("utf-8"))
        return h.hexdigest()


def new_offer_id() -> str:
    return secrets.token_hex(8)


def offer_metadata(offer: Offer) -> dict[str, Any]:
    """The ``metadata`` of an offer line (``chunks`` only when not SHA-256: a ``files/1``
    offer is what it always was)."""
    meta: dict[str, Any] = {
        "op": "offer", "offer": offer.id, "name": offer.name, "folder": offer.folder,
        "room": offer.room, "port": offer.port, "made": offer.made,
        "entries": [[e.path, e.size, e.sha256, e.root] for e in offer.entries]}
    if offer.chunks != LEAF_SHA256:
        meta["chunks"] = offer.chunks
    return meta


def _hex(value: object, what: str) -> str:
    if not (isinstance(value, str) and len(value) == 64
            and all(c in "0123456789abcdef" for c in value)):
        raise OfferError(f"{what} is not a SHA-256 in lowercase hex")
    return value


def _text(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise OfferError(f"{what} is not a name of 1 to {limit} characters")
    return value


def parse_offer(meta: dict[str, Any], max_size: int) -> Offer:
    """An offer line's metadata to an Offer; OfferError says what is wrong (too big included:
    ``max_size`` is the receiver's --max-file-size)."""
    offer_id = _text(meta.get("offer"), "the offer id", MAX_ID_CHARS)
    if not offer_id.isascii() or not offer_id.isalnum():
        raise OfferError("the offer id is not letters and digits")
    name = _text(meta.get("name"), "the name", MAX_PATH_CHARS)
    port, made = meta.get("port"), meta.get("made", 0.0)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise OfferError("the port is not a TCP port")
    if not isinstance(made, (int, float)) or isinstance(made, bool):
        raise OfferError("'made' is not a time")
    room = meta.get("room", "")
    if not isinstance(room, str) or len(room) > MAX_ID_CHARS:
        raise OfferError("the room is not a room name")
    chunks = meta.get("chunks", LEAF_SHA256)
    if chunks not in LEAF_HASHES:
        raise OfferError(f"chunk hashes of a kind we don't know ({str(chunks)[:20]!r})")
    raw = meta.get("entries")
    if not isinstance(raw, list) or not raw:
        raise OfferError("an offer needs at least one file")
    if len(raw) > MAX_FOLDER_FILES:
        raise OfferError(f"an offer holds at most {MAX_FOLDER_FILES} files")
    entries = []
    for item in raw:
        if not isinstance(item, list) or len(item) != 4:
            raise OfferError("an entry is not [path, size, sha256, root]")
        path, size, sha, root = item
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise OfferError("a size is not a whole number of bytes")
        entries.append(Entry(_text(path, "a path", MAX_PATH_CHARS), size,
                             _hex(sha, "a file hash"), _hex(root, "a chunk root")))
    offer = Offer(offer_id, name, tuple(entries), port, bool(meta.get("folder")), room,
                  float(made), str(chunks))
    if offer.size > max_size:
        raise OfferError(f"{offer.size} bytes is over the limit of {max_size} "
                         "(--max-file-size)")
    return offer


def offer_fits(offer: Offer) -> bool:
    """Whether the offer line stays under the line limit (a folder of long names may not)."""
    return len(json.dumps(offer_metadata(offer)).encode("utf-8")) < MAX_LINE_BYTES - 2048


# --- names the receiver writes ------------------------------------------------------------------


def safe_name(text: str) -> str:
    """A name from the network made safe to write in the download dir: its last path part
    only (no ``/`` or ``\\``), no control, format or bidi characters, none of ``<>:"|?*``,
    no leading or trailing dots and spaces (so never ``.`` or ``..``, nor a hidden file), not
    a reserved device name (``CON``, ``nul.txt``: prefixed ``_``), at most MAX_NAME_BYTES."""
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    kept = []
    for ch in unicodedata.normalize("NFC", text):
        if ch in BIDI_CONTROLS or unicodedata.category(ch)[0] in ("C", "Z") and ch != " ":
            continue
        kept.append("_" if ch in _UNSAFE else ch)
    name = "".join(kept).strip(" .")
    if not name:
        return "file"
    if name.split(".", 1)[0].strip().lower() in RESERVED:
        name = "_" + name
    return _cut(name, MAX_NAME_BYTES)


def _cut(name: str, limit: int) -> str:
    """Cut to ``limit`` UTF-8 bytes, keeping a short extension and whole characters."""
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext.encode("utf-8")) > 16:
        stem, ext = name, ""
    room = limit - (len(ext.encode("utf-8")) + 1 if ext else 0)
    cut = stem.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip(" .") or "file"
    return f"{cut}.{ext}" if ext else cut


def safe_parts(path: str) -> list[str]:
    """A relative path in a folder offer to safe parts: each one a ``safe_name``; empty,
    ``.`` and ``..`` parts dropped (so nothing climbs out of the folder)."""
    parts = [p for p in path.replace("\\", "/").split("/") if p.strip(" .")]
    return [safe_name(p) for p in parts] or ["file"]


def unique_name(name: str, taken: Callable[[str], bool]) -> str:
    """``name`` or, if taken (a file, or its ``.part``, is there), ``name (1).ext``,
    ``name (2).ext``, ...: a file is never overwritten."""
    if not taken(name):
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    n = 1
    while True:
        candidate = f"{stem} ({n}).{ext}" if ext else f"{stem} ({n})"
        if not taken(candidate):
            return candidate
        n += 1


# --- hashes and ranges ---------------------------------------------------------------------------


def chunk_count(size: int) -> int:
    return (size + CHUNK_BYTES - 1) // CHUNK_BYTES


def chunk_root(hashes: bytes) -> str:
    """The root an offer carries: the SHA-256 of the chunk hashes one after the other
    (whichever hash they are: the list is small)."""
    return hashlib.sha256(hashes).hexdigest()


def check_hash_list(blob: bytes, entry: Entry) -> list[bytes]:
    """The chunk hashes the sender gave, checked: the right count, and their root the one
    the offer carried.  OfferError if not (the sender is cut off)."""
    count = chunk_count(entry.size)
    if len(blob) != count * HASH_BYTES:
        raise OfferError(f"{len(blob) // HASH_BYTES} chunk hashes, not {count}")
    if chunk_root(blob) != entry.root:
        raise OfferError("the chunk hashes do not match the offer's root")
    return [blob[i:i + HASH_BYTES] for i in range(0, len(blob), HASH_BYTES)]


def kept_bytes(matches: list[bool]) -> int:
    """How much of a partial file to keep: the chunks up to the first that does not match its
    hash (``matches``: one per whole chunk held, in order)."""
    for i, ok in enumerate(matches):
        if not ok:
            return i * CHUNK_BYTES
    return len(matches) * CHUNK_BYTES


def resume_from(have: int, size: int) -> int:
    """Where to ask the sender to start, given ``have`` bytes in the partial file: the start
    of the chunk ``have`` falls in (a partial chunk is fetched again whole, so its hash can be
    checked), never past the file's end; a partial file longer than the file starts over."""
    if have > size:
        return 0
    if have == size:
        return size
    return (have // CHUNK_BYTES) * CHUNK_BYTES


def whole_chunks(have: int, size: int) -> int:
    """How many chunks of a partial file of ``have`` bytes are whole (and so can be checked):
    a chunk is whole when it has CHUNK_BYTES, or reaches the end of the file."""
    if have >= size:
        return chunk_count(size)
    return have // CHUNK_BYTES


def refusal(held: int, from_peer: int) -> str | None:
    """Why an offer can't be kept now (the bounds), or None."""
    if held >= MAX_OFFERS_HELD:
        return f"{MAX_OFFERS_HELD} offers are waiting already"
    if from_peer >= MAX_OFFERS_PER_PEER:
        return f"{MAX_OFFERS_PER_PEER} of your offers are waiting already"
    return None


def expired(made: float, now: float) -> bool:
    return now - made > OFFER_MAX_AGE
