"""Relayed catch-up: handing on other authors' lines to a peer that missed them while it was
away, when the authors themselves are gone (PROTOCOL.md Part 2, "Relayed messages").

Lines of our peers carry their author's Ed25519 signature (``metadata.sig``) over the fields
a reader sees.  A relayed line travels unchanged, as its original bytes, inside a ``relay``
line of its own, with the author's public key; the receiver shows it only if the key is the
one the author's peer id is derived from and the signature checks out, so a relaying peer
can't put words in anyone's mouth.  Lines of base peers (unsigned) and private lines are never
relayed.  Pure code.
"""

from __future__ import annotations

import base64
import functools
import json
from dataclasses import dataclass
from typing import Any, Callable

from p2pchat.identity import Identity, peer_id_for, raw_fingerprint
from p2pchat.runsig import check_run
from p2pchat.runsig import verify as _verify
from p2pchat.wire import (CHAT, DEFAULT_ROOM, MAX_LINE_BYTES, Message, WireError, format_time,
                          parse_message)

#: ``relay/1``: signs its lines, and hands on (and takes) other authors' signed lines.
CAP_RELAY = "relay/1"
RELAY = "relay"
#: At most this many lines of one author are handed on per (re)connection, by default: the
#: node gives its ``--catchup-lines`` (catchup.LOG_LINES), what it would resend of its own.
RELAY_MAX_LINES = 50_000
#: A signed, sequenced statement of its author's nick, rooms and links (gossip.py), relayed
#: like a room line.
MEMBER = "member"
#: The kinds of signed lines that may be relayed.
RELAYED_KINDS = frozenset({CHAT, MEMBER})
#: A relay line carries lines up to this many bytes in all (a line must stay under 64 KiB).
RELAY_BATCH_BYTES = MAX_LINE_BYTES // 2
#: Handing on goes in steps of at most this many lines (one query each), and at most this many
#: bytes are written to one link in one reactor turn; it goes on (next turn, or once the peer
#: reads again) only while the link is not backed up, as our own lines do.
RELAY_STEP_LINES = 32
RELAY_TURN_BYTES = 256 * 1024
RELAY_TURN_SECONDS = 0.02
#: A peer's ``sync`` lines are answered at most SYNC_BURST in a row, and then SYNC_BURST per
#: SYNC_WINDOW seconds (a token bucket per link); the rest are ignored (and logged, not more
#: than once per window).  A sync asks for our whole history of up to MAX_OTHERS authors.
SYNC_BURST = 3
SYNC_WINDOW = 10.0
#: Authors' keys whose fingerprint and peer id are kept worked out (``_author_key``).
RELAY_KEYS_KEPT = 256


def _first_encode(fields: list[Any]) -> bytes:
    """The first payload signed or checked: msgspec's encoder bound in ``_encode_list``
    (imported then, not at start: wire.py ``_load_codec``)."""
    global _encode_list
    import msgspec

    _encode_list = msgspec.json.Encoder().encode
    return _encode_list(fields)


_encode_list: Callable[[Any], bytes] = _first_encode


def _payload(fields: list[Any]) -> bytes:
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _member_fields(kind: Any, meta: dict[str, Any]) -> list[Any]:
    """A member line's statement is signed too (its rooms, links and event)."""
    if kind != MEMBER:
        return []
    return [meta.get("rooms"), meta.get("links"), meta.get("event")]


def line_payload(msg: Message) -> bytes:
    """What an author signs: every field a reader of the line sees.  Strings and whole
    numbers only, which msgspec writes byte for byte as ``_payload`` (json) does, in a tenth
    of the time (tests/test_relay.py); a checker reads them back with ``_raw_payload``."""
    meta = msg.metadata or {}
    stamp = format_time(msg.timestamp) if msg.timestamp is not None else ""
    return _encode_list([msg.id, msg.type, msg.sender_id, msg.username, msg.content, stamp,
                     msg.sequence, msg.room_id, str(meta.get("to", "")),
                     str(meta.get("action", ""))] + _member_fields(msg.type, meta))


def _raw_payload(obj: dict[str, Any]) -> bytes:
    """The same fields, read from the line as its author wrote it (the timestamp as text)."""
    meta = obj.get("metadata") or {}
    return _payload([obj.get("id"), obj.get("type"), obj.get("sender_id"),
                     obj.get("username", ""), obj.get("content", ""), obj.get("timestamp", ""),
                     obj.get("sequence", 0), obj.get("room_id") or DEFAULT_ROOM,
                     str(meta.get("to", "")), str(meta.get("action", ""))]
                    + _member_fields(obj.get("type"), meta))


def sign_line(identity: Identity, msg: Message) -> str:
    return identity.sign(line_payload(msg))


@dataclass(frozen=True)
class Relayed:
    """A relayed line that checked out: the message, its author's fingerprint, its bytes."""

    msg: Message
    fp: str
    raw: bytes


@functools.lru_cache(maxsize=RELAY_KEYS_KEPT)
def _author_key(public_key_b64: str) -> tuple[bytes, str, str]:
    """An author's key as given (base64) to its raw bytes, fingerprint and peer id: worked
    out once per key, not once per line (a catch-up brings thousands by a few authors)."""
    raw = base64.b64decode(public_key_b64, validate=True)
    fp = raw_fingerprint(raw)
    return raw, fp, peer_id_for(fp)


def check_relayed(raw: bytes, public_key_b64: str, msg: Message | None = None) -> Relayed:
    """A relayed line and its author's key to a verified message; WireError says why not.
    ``msg``: the line already parsed (a receiver looks whether it had it before checking)."""
    if msg is None:
        msg = parse_message(raw)
    if msg.type not in RELAYED_KINDS:
        raise WireError("only room lines and member lines are relayed")
    meta = msg.metadata or {}
    try:
        key, fp, author = _author_key(public_key_b64)
        signature = base64.b64decode(str(meta.get("sig", "")), validate=True)
    except (ValueError, TypeError):
        raise WireError("relayed line without a usable key or signature") from None
    if author != msg.sender_id:
        raise WireError("the key given is not its author's")
    payload = _raw_payload(_read_line(raw))
    if "run" in meta:  # one signature for its run (runsig.py), checked once per run
        check_run(key, signature, payload, meta)
    elif not _verify(key, signature, payload):
        raise WireError("its author's signature does not match")
    return Relayed(msg, fp, raw)


def relay_lines(batches: list[tuple[bytes, str, str]]) -> list[dict[str, Any]]:
    """(raw line, author id, author key) to the metadata of relay lines, each under the size
    bound."""
    out: list[dict[str, Any]] = []
    lines: list[str] = []
    keys: dict[str, str] = {}
    size = 0
    for raw, author, key in batches:
        text = raw.decode("utf-8")
        if lines and size + len(raw) + len(key) > RELAY_BATCH_BYTES:
            out.append({"lines": lines, "keys": keys})
            lines, keys, size = [], {}, 0
        lines.append(text)
        keys[author] = key
        size += len(raw) + len(key) + 8
    if lines:
        out.append({"lines": lines, "keys": keys})
    return out


def relay_batches(rows: list[tuple[int, bytes, str, str]]
                  ) -> list[tuple[dict[str, Any], int, int]]:
    """(sequence, raw line, author id, author key), oldest first, to relay lines: each one's
    metadata, the sequence of its last line and how many lines it carries."""
    out = []
    start = 0
    for metadata in relay_lines([(raw, author, key) for _, raw, author, key in rows]):
        count = len(metadata["lines"])
        out.append((metadata, rows[start + count - 1][0], count))
        start += count
    return out


class HandOn:
    """What one link is still to be handed on: for each absent author it asked about, the
    sequence after which it lacks that author's lines and how many more it may get.  One per
    link: a new sync replaces it (it never adds up), so memory is bounded by MAX_OTHERS
    authors per link, and bytes wait in the store, not in a transport buffer."""

    def __init__(self, now: float) -> None:
        self.pending: dict[str, list[int]] = {}  # author -> [after, lines left]
        self.rooms: list[str] = []
        self.since = 0.0
        self.sent = 0  # lines handed on since the last sync
        self.scheduled = False  # a next step waits for the next reactor turn
        self._tokens = float(SYNC_BURST)
        self._tokens_at = now
        self._refused_at: float | None = None

    def allow_sync(self, now: float) -> bool:
        """Whether to answer one more sync now (a token bucket: SYNC_BURST per SYNC_WINDOW)."""
        self._tokens = min(float(SYNC_BURST), self._tokens + (now - self._tokens_at)
                           * SYNC_BURST / SYNC_WINDOW)
        self._tokens_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def should_log_refusal(self, now: float) -> bool:
        """Once per SYNC_WINDOW at most: so a flood of syncs is not a flood of log lines."""
        if self._refused_at is None or now - self._refused_at >= SYNC_WINDOW:
            self._refused_at = now
            return True
        return False

    def replace(self, wanted: dict[str, int], rooms: list[str], since: float,
                max_lines: int = RELAY_MAX_LINES) -> None:
        self.pending = {author: [have, max_lines] for author, have in wanted.items()}
        self.rooms = rooms
        self.since = since
        self.sent = 0


@functools.lru_cache(maxsize=None)
def _readers() -> tuple[Callable[[str], Any], Callable[[bytes], Any],
                        tuple[type[BaseException], ...]]:
    """msgspec's readers of a relayed line: its author and sequence only (most relayed lines
    are copies dropped there, ``relayed_of``: ``json.loads`` of the whole line was most of
    their cost, a room of 100 forming hands each peer some 12 copies of each member line),
    and the whole line (what its signature covers: about 3x json's).  Built at the first
    relay line (msgspec comes with the TLS libraries, at the first link)."""
    import msgspec

    head = msgspec.defstruct("_RelayedHead", [("sender_id", Any, None), ("sequence", Any, None)],
                             module=__name__)
    return (msgspec.json.Decoder(head).decode, msgspec.json.Decoder().decode,
            (msgspec.DecodeError,))


def _read_line(raw: bytes) -> Any:
    """A relayed line as written, as ``json.loads`` reads it (msgspec's reading, or json's
    where msgspec's stricter one refuses it: an integer past 64 bits)."""
    _, read, errors = _readers()
    try:
        return read(raw)
    except errors:
        return json.loads(raw)


def relayed_of(msg: Message, seen: Callable[[str, int], bool] | None = None
               ) -> list[tuple[bytes, str]]:
    """A relay line's (raw line, author key) pairs; WireError if it is malformed.  ``seen``
    (author, sequence): a line we have already is left out here, before it waits for its
    check and is parsed again (a forming room of 100 brings each member line about 13
    times, one of them new)."""
    meta = msg.metadata or {}
    lines, keys = meta.get("lines"), meta.get("keys")
    if not isinstance(lines, list) or not isinstance(keys, dict):
        raise WireError("a relay line needs 'lines' and 'keys'")
    read, _, errors = _readers()
    out = []
    for text in lines[:RELAY_MAX_LINES]:
        if not isinstance(text, str):
            raise WireError("a relayed line is not a string")
        try:
            head = read(text)
        except errors:
            raise WireError("a relayed line is not a JSON object") from None
        author = head.sender_id
        key = keys.get(author) if isinstance(author, str) else None
        if not isinstance(key, str):
            raise WireError("a relayed line has no key for its author")
        seq = head.sequence
        if (seen is not None and type(seq) is int and seq > 0 and seen(author, seq)):
            continue
        out.append((text.encode("utf-8"), key))
    return out


#: What an author signed, read from its line as written (sealed.py checks a sealed line's).
raw_payload = _raw_payload
