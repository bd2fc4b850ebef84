"""Signed lines kept small in the history file: a year of history (a million lines) in at most
400 bytes a line of 100 characters, indexes included.

A line of one of our peers is kept with its signed bytes, to hand on to a peer that missed it
(relay.py): about 390 bytes of JSON for 100 characters said, most of it repeating what the
row's columns hold already (id, author, nick, room, time, sequence).  Packed, the row keeps
the text said in its ``text`` column (where /search and /history read it) and in ``raw`` only
what the columns lack: the 64 bytes of the signature, and the author's own nick and time text
when they differ from the columns'.  ``unpack`` gives back the very same bytes: a line is
packed only if unpacking it gives its bytes back byte for byte (else it stays as it came),
so what is handed on is still exactly what its author signed and wrote.  A run-signed line
(runsig.py) keeps its run's signature, its index and its run's count, not its Merkle path
(up to 64 bytes more): the path is rebuilt from the run's other rows when the line is handed
on (runpaths.py).  Pure code.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from p2pchat.wire import CHAT, WireError, format_time, parse_message, printable

#: The first byte of a packed ``raw`` (a line as it came starts with ``{``).
PACKED = b"\x01"
#: ... of a packed run-signed line (runsig.py): after the signature (its run's), its index
#: and its run's count (one byte each).  No path: it is rebuilt from the run's other rows when
#: the line is handed on (runpaths.py), so a run-signed line costs 2 bytes more than one
#: signed alone, not 2 + 3 + 16 a node.
PACKED_RUN = b"\x02"
SIGNATURE_BYTES = 64
#: The keys of a line that can be packed, in the order our peers write them (wire.py).
_KEYS = ["id", "type", "sender_id", "username", "content", "timestamp", "sequence", "room_id",
         "metadata"]


def is_packed(raw: bytes | None) -> bool:
    return raw is not None and raw[:1] in (PACKED, PACKED_RUN)


def pack(raw: bytes, room: str, sender_id: str, nick: str, when: float,
         seq: int) -> tuple[str, bytes] | None:
    """(the text said, the packed bytes) of a signed room line whose row holds ``room``,
    ``sender_id``, ``nick``, ``when`` and ``seq``; None when it can't be packed (any other
    shape, or bytes that would not come back the same)."""
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict) or list(obj) != _KEYS or obj["type"] != CHAT:
        return None
    meta, content, username, stamp = (obj["metadata"], obj["content"], obj["username"],
                                      obj["timestamp"])
    if not (isinstance(meta, dict) and list(meta) in (["sig"], _RUN_KEYS)
            and isinstance(meta["sig"], str) and isinstance(content, str)
            and isinstance(username, str) and isinstance(stamp, str)):
        return None
    try:
        signature = base64.b64decode(meta["sig"], validate=True)
        run, path = _run_bytes(meta) if len(meta) > 1 else (b"", b"")
    except (binascii.Error, ValueError, TypeError, OverflowError):
        return None
    if len(signature) != SIGNATURE_BYTES:
        return None
    extra = [username if username != nick else None,
             stamp if stamp != format_time(when) else None]
    packed = ((PACKED_RUN if run else PACKED) + signature + run
              + (json.dumps(extra).encode() if extra != [None, None] else b""))
    try:
        again = unpack(obj["id"], room, sender_id, nick, content, when, seq, packed, path)
    except (ValueError, TypeError):
        return None
    return (content, packed) if again == raw else None


_RUN_KEYS = ["sig", "run", "path"]


def _run_bytes(meta: dict[str, Any]) -> tuple[bytes, bytes]:
    """A run-signed line's place, packed (ValueError if it doesn't fit a byte), and its path."""
    index, count = meta["run"]
    return bytes([index, count]), base64.b64decode(meta["path"], validate=True)


def run_place(packed: bytes) -> tuple[bytes, int, int] | None:
    """A packed run-signed line's signature, index and count (None for any other form)."""
    if packed[:1] != PACKED_RUN or len(packed) < 3 + SIGNATURE_BYTES:
        return None
    rest = 1 + SIGNATURE_BYTES
    return packed[1:rest], packed[rest], packed[rest + 1]


def unpack(message_id: str, room: str, sender_id: str, nick: str, text: str, when: float,
           seq: int, packed: bytes, path: bytes = b"") -> bytes:
    """The line's bytes as its author wrote them (``pack`` made sure they come back); of a
    run-signed line, with its ``path`` (the nodes, as ``runpaths`` rebuilds them)."""
    return encode(unpacked(message_id, room, sender_id, nick, text, when, seq, packed, path))


def encode(obj: dict[str, Any]) -> bytes:
    """A line (as ``unpacked`` gives it) as its author's peer wrote it (wire.py)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def unpacked(message_id: str, room: str, sender_id: str, nick: str, text: str, when: float,
             seq: int, packed: bytes, path: bytes = b"") -> dict[str, Any]:
    """The line as its author wrote it, as a dict (its keys in their order), to ``encode``;
    a run-signed line's ``metadata.path`` is ``path`` (base64)."""
    signature = packed[1:1 + SIGNATURE_BYTES]
    meta: dict[str, Any] = {"sig": base64.b64encode(signature).decode("ascii")}
    rest = 1 + SIGNATURE_BYTES
    if packed[:1] == PACKED_RUN:
        index, count = packed[rest:rest + 2]
        meta["run"] = [index, count]
        meta["path"] = base64.b64encode(path).decode("ascii")
        rest += 2
    username, stamp = json.loads(packed[rest:]) if len(packed) > rest else (None, None)
    obj: dict[str, Any] = {
        "id": message_id, "type": CHAT, "sender_id": sender_id,
        "username": nick if username is None else username, "content": text,
        "timestamp": format_time(when) if stamp is None else stamp, "sequence": seq,
        "room_id": room,
        "metadata": meta,
    }
    return obj


def shown(text: str, raw: bytes | None) -> str:
    """The text shown for a row: its ``text``; of a packed line (packing.py) the text
    said, made printable; of a line kept as its bytes only, read from them."""
    if raw is None:
        return text
    if is_packed(raw):
        return printable(text)
    return text or _text_of(raw)


def _text_of(raw: bytes | None) -> str:
    """The text shown for a line kept as its bytes only (a line to hand on)."""
    if raw is None:
        return ""
    try:
        msg = parse_message(bytes(raw).rstrip(b"\n"))
    except WireError:
        return ""
    action = (msg.metadata or {}).get("action")
    return printable(action if isinstance(action, str) and action else msg.content)
