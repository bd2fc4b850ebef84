"""The wire format: chat lines (TCP) and beacons (UDP), their limits, parsing and encoding.

Pure code: bytes in, values out.  Every limit the program enforces on what it receives or sends
is defined here, once, so the README, the edges and the tests all speak of the same numbers.
Part 1 of PROTOCOL.md is followed exactly; our extensions ride in keys a base peer ignores
(``caps``), as Part 2 asks.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Annotated, Any, Callable

# --- limits (documented in README.rst, "Guarantees and limits") -----------------------------

#: A TCP line longer than this (without its newline) closes the connection.
MAX_LINE_BYTES = 64 * 1024
#: A datagram longer than this is not a beacon (the reference reads at most 1024 bytes).
MAX_DATAGRAM_BYTES = 1024
#: Nicks: 1 to 20 characters, no white space (the reference allows at most 20).
MAX_NICK_CHARS = 20
#: The most a user may say in one line, in UTF-8 bytes (keeps a line far under MAX_LINE_BYTES).
MAX_SAY_BYTES = 4000
#: Ids (peer ids, message ids, room ids) longer than this are refused.
MAX_ID_CHARS = 128
#: Names received from the network longer than this are refused (base peers don't validate).
MAX_NAME_CHARS = 64
#: At most this many capability strings in one object.
MAX_CAPS = 32
#: A beacon whose timestamp is older than this (seconds) is ignored, as the reference does.
MAX_BEACON_AGE = 30.0
#: Sequence numbers are unsigned 64-bit in the reference.
MAX_SEQUENCE = 2**64 - 1

DEFAULT_ROOM = "general"

CHAT = "chat"
JOIN = "join"
LEAVE = "leave"
HEARTBEAT = "heartbeat"
#: Part 2 types, sent only to peers that announced CAP_CATCHUP (see catchup.py).
SYNC = "sync"
ACK = "ack"

ANNOUNCE = "announce"
PING = "ping"
PONG = "pong"
BEACON_TYPES = frozenset({ANNOUNCE, PING, PONG, LEAVE})

#: Capabilities we announce.  ``p2pchat-py`` says "this peer is ours": it sends heartbeats, so
#: silence on its connection means trouble.
CAP_OURS = "p2pchat-py/1"
#: ``catchup/1``: understands ``sync`` and ``ack`` and resends what a peer missed.
CAP_CATCHUP = "catchup/1"
#: ``tls/1``: upgrades the connection to mutually authenticated TLS (``starttls``) and signs
#: its beacons; announces its key fingerprint in ``fp``.
CAP_TLS = "tls/1"
#: The listener's answer to a join that offered TLS: the TLS handshake follows this line.
STARTTLS = "starttls"
#: ``rooms/1``: rooms beyond ``general`` and private messages.  ``rooms`` says which rooms the
#: sender is in (metadata.rooms); ``private`` is a line for one peer (metadata.to).
CAP_ROOMS = "rooms/1"
ROOMS = "rooms"
PRIVATE = "private"
#: Room names: 1 to 32 of a-z, 0-9, '-', '_'; a peer is in at most MAX_ROOMS rooms.
MAX_ROOM_CHARS = 32
MAX_ROOMS = 32
#: A SHA-256 fingerprint in hex.
FINGERPRINT_CHARS = 64
#: ``typing/1``: ``typing`` lines, "I am typing in this room" (``room_id``) or "to you"
#: (``metadata.to``, a private talk); never stored, sequenced or caught up (activity.py).
CAP_TYPING = "typing/1"
TYPING = "typing"
#: ``away/1``: ``away`` lines, the sender's away text in ``content`` ("" = back); one is
#: sent when a link comes up while we are away, so a newcomer learns it; never stored.
CAP_AWAY = "away/1"
AWAY = "away"
#: An away text longer than this (characters) is cut, ours and a peer's.
MAX_AWAY_CHARS = 200


class WireError(ValueError):
    """A line or datagram that is not a valid message; the text says why, for the log."""


# --- time -----------------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


#: Unix seconds of recent minutes ("2026-11-25T11:55" -> seconds), so a burst of lines does
#: not build a datetime each; cleared when it holds MINUTES_KEPT of them.
_minutes: dict[str, float] = {}
MINUTES_KEPT = 64


def parse_time(text: str) -> float:
    """RFC 3339 text (up to 9 fractional digits, any offset) to Unix seconds."""
    if len(text) == 27 and text[26] == "Z" and text[16] == ":" and text[19] == ".":
        # What our peers write: a minute seen before, then "SS.ffffff".
        minute = _minutes.get(text[:16])
        tail = text[17:26]
        if (minute is not None and tail.isascii() and tail[:2].isdigit()
                and tail[3:].isdigit() and tail[:2] < "60"):
            return minute + float(tail)
    match = _RFC3339.match(text)
    if match is None:
        raise WireError(f"timestamp is not RFC 3339: {text[:40]!r}")
    date, clock, fraction, offset = match.groups()
    if offset in ("Z", "z"):
        offset = "+00:00"
    try:
        whole = datetime.fromisoformat(f"{date}T{clock}{offset}")
    except ValueError as e:
        raise WireError(f"timestamp out of range: {text[:40]!r}") from e
    if offset == "+00:00" and text[10] == "T":
        if len(_minutes) >= MINUTES_KEPT:
            _minutes.clear()
        _minutes[text[:16]] = whole.timestamp() - whole.second
    return whole.timestamp() + (float(fraction) if fraction else 0.0)


#: The last second formatted: (whole seconds, "YYYY-MM-DDTHH:MM:SS"), as lines come in bursts.
_last_second: list = [None, ""]


#: The last moment formatted and its text: a line we say is stamped twice, for its
#: signature and its bytes (saying.py).
_last_stamp: list = [None, ""]


def format_time(when: float) -> str:
    """Unix seconds to RFC 3339 in UTC with microseconds, as Go's time package reads it.
    Rounds to the microsecond as ``datetime.fromtimestamp`` does (half to even)."""
    if when == _last_stamp[0]:
        return _last_stamp[1]  # type: ignore[no-any-return]
    second = int(when)
    if when >= 0:
        micro = round((when - second) * 1e6)
        if micro < 1_000_000:
            if _last_second[0] != second:
                _last_second[0] = second
                _last_second[1] = datetime.fromtimestamp(second, timezone.utc).strftime(
                    "%Y-%m-%dT%H:%M:%S")
            text = f"{_last_second[1]}.{micro:06d}Z"
            _last_stamp[0], _last_stamp[1] = when, text
            return text
    moment = datetime.fromtimestamp(when, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


#: Random bytes for message ids, drawn from the system's source in blocks (one system call
#: per 512 ids instead of one per line).
_id_pool: list[str] = []
#: A message id of ours starts with the time, in ID_TIME_STEPS steps a second (5 hex digits:
#: it wraps every 18 hours); the other 11 digits (44 bits) are random.
ID_TIME_STEPS = 16
_ID_RANDOM_HEX = 11


def new_message_id() -> str:
    """16 lowercase hex digits, like the reference.  Unpredictable (44 random bits: a peer
    that could guess our next id could send a line with it first, and ours would be dropped
    as a duplicate), and ordered by time (the first 5 digits): every peer keeps its history
    keyed by message id, and a B-tree over random keys has each line written to its own page
    of the index (a commit of a burst rewrites hundreds of them: most of what saving a line
    cost on a peer with a long history), while ids said about the same time sort together.
    Two of our ids collide only if said in the same 1/16 s and then with odds of one in
    2**44 per pair."""
    if not _id_pool:
        block = secrets.token_hex(8 * 512)
        _id_pool.extend(block[i:i + _ID_RANDOM_HEX] for i in range(0, len(block), 16))
    return f"{int(time.time() * ID_TIME_STEPS) & 0xFFFFF:05x}{_id_pool.pop()}"


def new_peer_id(nick: str) -> str:
    """A peer id for this run: the nick (as the reference does) and 8 random hex digits."""
    return f"{nick}_{secrets.token_hex(4)}"


# --- validation helpers ---------------------------------------------------------------------


def nick_problem(nick: str) -> str | None:
    """Why ``nick`` can't be a nick, or None if it can.  Shared by the options and /nick."""
    if not nick:
        return "a nick needs at least one character"
    if len(nick) > MAX_NICK_CHARS:
        return f"a nick has at most {MAX_NICK_CHARS} characters (that one has {len(nick)})"
    if any(ch.isspace() for ch in nick):
        return "a nick can't contain spaces"
    if any(unicodedata.category(ch)[0] == "C" for ch in nick):
        return "a nick can't contain control characters"
    return None


def room_problem(name: str) -> str | None:
    """Why ``name`` can't be a room name (without its '#'), or None."""
    if not name:
        return "a room needs a name, as in /join #ops"
    if len(name) > MAX_ROOM_CHARS:
        return f"a room name has at most {MAX_ROOM_CHARS} characters"
    if any(ch not in "abcdefghijklmnopqrstuvwxyz0123456789-_" for ch in name):
        return "a room name is made of a-z, 0-9, '-' and '_'"
    return None


#: Bidi embeddings, overrides and isolates (LRE RLE PDF LRO RLO, LRI RLI FSI PDI): they
#: reorder the text after them on screen (and the rest of the terminal line), so received
#: text can't use them.  The plain marks (LRM, RLM, ALM) only nudge neighbours and are kept.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text: str) -> str:
    """Text safe to put on a terminal: C0 and C1 controls (escape sequences, NUL, bells) and
    bidi overrides are replaced by U+FFFD, tabs and other spaces become spaces, line and
    paragraph separators too.  Everything else is kept, joiners and variation selectors
    included (``👨\u200d👩\u200d👧`` is one family, ``❤\ufe0f`` red): they only shape
    the glyphs beside them.  Used on every received text before it is shown."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable() or ch == " ":
            out.append(ch)
            continue
        category = unicodedata.category(ch)
        if ch == "\t" or category in ("Zs", "Zl", "Zp"):
            out.append(" ")
        elif category in ("Cc", "Cs") or ch in BIDI_CONTROLS:
            out.append("\ufffd")
        else:
            out.append(ch)  # format characters (joiners, marks), unassigned, private use
    return "".join(out)


def printable_name(text: str) -> str:
    """A received name (a nick) to show: stricter than ``printable``, every character that is
    not visible by itself (joiners and other format characters too) is U+FFFD, so that
    ``bob\u200d`` can't pass for ``bob``."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else "\ufffd" for ch in text)


def _string(obj: dict[str, Any], key: str, limit: int, required: bool = False) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise WireError(f"missing {key!r}")
        return ""
    if not isinstance(value, str):
        raise WireError(f"{key!r} is not a string")
    if required and not value:
        raise WireError(f"{key!r} is empty")
    if len(value) > limit:
        raise WireError(f"{key!r} is longer than {limit} characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise WireError(f"{key!r} holds a lone surrogate") from None
    return value


def _number(obj: dict[str, Any], key: str, low: int, high: int, default: int | None) -> int:
    value = obj.get(key)
    if value is None:
        if default is None:
            raise WireError(f"missing {key!r}")
        return default
    # JSON numbers like 3.0 are accepted as integers, as Go's decoder does; bools are not numbers.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WireError(f"{key!r} is not a number")
    if isinstance(value, float):
        if not value.is_integer():
            raise WireError(f"{key!r} is not a whole number")
        value = int(value)
    if not low <= value <= high:
        raise WireError(f"{key!r} is out of range")
    return value


def _caps(obj: dict[str, Any]) -> tuple[str, ...]:
    value = obj.get("caps")
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_CAPS:
        raise WireError("'caps' is not a short list")
    if not all(isinstance(c, str) and 0 < len(c) <= MAX_ID_CHARS for c in value):
        raise WireError("'caps' holds something other than short strings")
    return tuple(value)


def _load_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise WireError(f"{what} is not valid UTF-8 (byte {e.start})") from None
    try:
        obj = json.loads(text)
    except RecursionError:
        raise WireError(f"{what} is nested too deeply") from None
    except ValueError as e:
        raise WireError(f"{what} is not JSON ({getattr(e, 'msg', str(e))[:80]})") from None
    if not isinstance(obj, dict):
        raise WireError(f"{what} is not a JSON object")
    return obj


def _encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# --- chat lines -----------------------------------------------------------------------------


@dataclass(slots=True)
class Message:
    """One chat line on the wire, as the base protocol defines it, plus our ``caps``.

    Treated as immutable once made (not ``frozen``: a frozen dataclass costs a microsecond
    more to build, on every line received)."""

    id: str
    type: str
    sender_id: str
    username: str = ""
    content: str = ""
    timestamp: float | None = None
    sequence: int = 0
    room_id: str = DEFAULT_ROOM
    metadata: dict[str, Any] | None = None
    caps: tuple[str, ...] = field(default=())
    #: the sender's key fingerprint (on joins and starttls of peers with CAP_TLS)
    fp: str = ""


class _NotYet(Exception):
    """Stands for msgspec's DecodeError until the codec is loaded (never raised)."""


def _load_codec() -> None:
    """msgspec (about 1 MB with what it imports: ``decimal``, ``typing_extensions``) is
    imported at the first line decoded or encoded, or with the TLS libraries at the first
    link (latetls.py), not at start: an idle peer alone does without it.  Binds the decoder,
    the encoder and the decode error in place of their stand-ins, so after the first call
    the hot path is what it was.

    The lengths a well-formed line's fields have are checked by msgspec as it decodes (in C;
    a field outside them sends the line the long way, which refuses it with the reason).  A
    chat line as msgspec decodes it: unknown keys are skipped, as by the reference; every
    field may be absent or null; ``parse_message`` checks the rest of what it holds.  A
    line's time is read by msgspec in C too (RFC 3339 with an offset; rounded to the
    microsecond): a third of ``parse_time``'s cost.  A time msgspec refuses goes the long
    way, which reads it as msgspec does where msgspec can (``_line_time``), else as
    ``parse_time`` does."""
    global _decode_line, _decode_stamp, _encode_json, _DecodeError
    import msgspec

    ident = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
    name = Annotated[str, msgspec.Meta(max_length=MAX_NAME_CHARS)]
    room = Annotated[str, msgspec.Meta(max_length=MAX_ID_CHARS)]
    content = Annotated[str, msgspec.Meta(max_length=MAX_LINE_BYTES)]
    caps = Annotated[list[ident], msgspec.Meta(max_length=MAX_CAPS)]  # type: ignore[valid-type]
    stamp = Annotated[datetime, msgspec.Meta(tz=True)]
    line = msgspec.defstruct("_Line", [
        ("id", ident | None, None), ("type", ident | None, None),
        ("sender_id", ident | None, None), ("username", name | None, None),
        ("content", content | None, None), ("timestamp", stamp | None, None),
        ("sequence", int | None, None), ("room_id", room | None, None),
        ("metadata", dict[str, Any] | None, None), ("caps", caps | None, None),
        ("fp", str | None, None)], module=__name__)
    _decode_line = msgspec.json.Decoder(line).decode
    _decode_stamp = msgspec.json.Decoder(stamp).decode
    _encode_json = msgspec.json.Encoder().encode
    _DecodeError = msgspec.DecodeError  # ValidationError too


def _first_decode(line: bytes) -> Any:
    _load_codec()
    return _decode_line(line)


def _first_stamp(text: bytes) -> Any:
    _load_codec()
    return _decode_stamp(text)


def _first_encode(obj: Any) -> bytes:
    _load_codec()
    return _encode_json(obj)


_decode_line: Callable[[bytes], Any] = _first_decode
_decode_stamp: Callable[[bytes], Any] = _first_stamp
_encode_json: Callable[[Any], bytes] = _first_encode
_DecodeError: type[Exception] = _NotYet


def _line_time(text: str) -> float:
    """A chat line's time the long way: as msgspec reads it (so both ways agree), or as
    ``parse_time`` does what msgspec refuses."""
    if text.isascii() and '"' not in text and "\\" not in text:
        try:
            return float(_decode_stamp(f'"{text}"'.encode()).timestamp())
        except (_DecodeError, OverflowError, ValueError):
            pass
    return parse_time(text)



def parse_message(line: bytes) -> Message:
    """A received line (without its newline) to a Message; WireError says what is wrong.

    msgspec decodes the line and checks the kind of each field at once (about a tenth of
    ``json.loads``); a quick look then accepts what a well-formed line holds (short ASCII ids
    and names, a sequence in range).  Anything else (a null, a number written 3.0, invalid
    JSON, a long id) goes the long way (``_parse_checked``), which accepts or refuses it with
    the reason; both ways agree on every value (tests/test_wire.py)."""
    if len(line) > MAX_LINE_BYTES:
        raise WireError(f"line is longer than {MAX_LINE_BYTES} bytes")
    try:
        f = _decode_line(line)
    except _DecodeError:  # ValidationError too
        return _parse_checked(line)
    kind = f.type
    ident = f.id
    sender = f.sender_id
    username = f.username or ""
    content = f.content or ""
    room = f.room_id
    sequence = f.sequence
    fp = f.fp
    # (the lengths: checked by msgspec, _load_codec)
    if not (kind is not None and ident is not None and sender is not None
            and kind.isascii() and ident.isascii() and sender.isascii() and username.isascii()
            and (sequence is None or 0 <= sequence <= MAX_SEQUENCE)
            and (room is None or room.isascii())
            and (not fp or (len(fp) == FINGERPRINT_CHARS and not fp.strip(_HEX)))):
        return _parse_checked(line)
    if not content.isascii():
        _string({"content": content}, "content", MAX_LINE_BYTES)  # a lone surrogate
    stamp = f.timestamp
    # Message(...) with its fields set here, a third less than its __init__ (test_wire.py)
    msg = _new_message(Message)
    msg.id = ident
    msg.type = kind
    msg.sender_id = sender
    msg.username = username
    msg.content = content
    msg.timestamp = stamp.timestamp() if stamp else None
    msg.sequence = sequence or 0
    msg.room_id = room or DEFAULT_ROOM
    msg.metadata = f.metadata or None
    msg.caps = tuple(f.caps) if f.caps else ()
    msg.fp = fp or ""
    return msg


_HEX = "0123456789abcdef"
#: makes a Message without its __init__ (parse_message sets every field)
_new_message = object.__new__


def _parse_checked(line: bytes) -> Message:
    """``parse_message`` the long way: every field through its full check."""
    obj = _load_object(line, "line")
    msg_type = _string(obj, "type", MAX_ID_CHARS, required=True)
    ident = _string(obj, "id", MAX_ID_CHARS, required=True)
    sender = _string(obj, "sender_id", MAX_ID_CHARS, required=True)
    username = _string(obj, "username", MAX_NAME_CHARS)
    content = _string(obj, "content", MAX_LINE_BYTES)
    stamp = obj.get("timestamp")
    if stamp is not None and stamp.__class__ is not str:
        raise WireError("'timestamp' is not a string")
    sequence = _number(obj, "sequence", 0, MAX_SEQUENCE, default=0)
    room = _string(obj, "room_id", MAX_ID_CHARS) or DEFAULT_ROOM
    metadata = obj.get("metadata")
    if metadata is not None and metadata.__class__ is not dict:
        raise WireError("'metadata' is not an object")
    return Message(ident, msg_type, sender, username, content,
                   _line_time(stamp) if stamp else None, sequence, room, metadata or None,
                   _caps(obj) if "caps" in obj else (),
                   _fingerprint(obj) if "fp" in obj else "")


def _fingerprint(obj: dict[str, Any]) -> str:
    fp = _string(obj, "fp", FINGERPRINT_CHARS)
    if fp and (len(fp) != FINGERPRINT_CHARS or any(c not in "0123456789abcdef" for c in fp)):
        raise WireError("'fp' is not a SHA-256 fingerprint in lowercase hex")
    return fp


def encode_message(msg: Message) -> bytes:
    """A Message to one line, newline included, in the key order the reference writes."""
    obj: dict[str, Any] = {
        "id": msg.id,
        "type": msg.type,
        "sender_id": msg.sender_id,
        "username": msg.username,
        "content": msg.content,
        # Go's decoder needs a valid time here; the zero time stands for "none".
        "timestamp": format_time(msg.timestamp) if msg.timestamp is not None
        else "0001-01-01T00:00:00Z",
        "sequence": msg.sequence,
        "room_id": msg.room_id,
    }
    if msg.metadata:
        obj["metadata"] = msg.metadata
    if msg.caps:
        obj["caps"] = list(msg.caps)
    if msg.fp:
        obj["fp"] = msg.fp
    return _encode_json(obj) + b"\n"


# --- beacons --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Beacon:
    """One discovery datagram."""

    type: str
    peer_id: str
    username: str
    port: int
    timestamp: float
    address: str = ""
    sequence: int = 0
    caps: tuple[str, ...] = field(default=())
    #: signed beacons (CAP_TLS): key fingerprint, public key and signature (base64)
    fp: str = ""
    pk: str = ""
    sig: str = ""
    #: the timestamp as it was written (what a signature covers)
    stamp: str = ""


def parse_beacon(data: bytes) -> Beacon:
    """A received datagram to a Beacon; WireError says why it is not one.  Freshness is the
    receiver's call (see ``is_fresh``), since it needs the clock."""
    if len(data) > MAX_DATAGRAM_BYTES:
        raise WireError(f"datagram is longer than {MAX_DATAGRAM_BYTES} bytes")
    obj = _load_object(data, "datagram")
    kind = _string(obj, "type", MAX_ID_CHARS, required=True)
    if kind not in BEACON_TYPES:
        raise WireError(f"unknown beacon type {kind[:20]!r}")
    stamp = _string(obj, "timestamp", 64, required=True)
    return Beacon(
        type=kind,
        peer_id=_string(obj, "peer_id", MAX_ID_CHARS, required=True),
        username=_string(obj, "username", MAX_NAME_CHARS),
        port=_number(obj, "port", 1, 65535, default=None),
        timestamp=parse_time(stamp),
        address=_string(obj, "address", MAX_NAME_CHARS),
        sequence=_number(obj, "sequence", 0, MAX_SEQUENCE, default=0),
        caps=_caps(obj),
        fp=_fingerprint(obj),
        pk=_string(obj, "pk", 64),
        sig=_string(obj, "sig", 128),
        stamp=stamp,
    )


def is_fresh(beacon: Beacon, now: float) -> bool:
    """False for a beacon more than MAX_BEACON_AGE seconds old (a replay or a stuck clock)."""
    return now - beacon.timestamp <= MAX_BEACON_AGE


def encode_beacon(beacon: Beacon) -> bytes:
    """A Beacon to one datagram, in the key order the reference writes."""
    obj: dict[str, Any] = {
        "type": beacon.type,
        "peer_id": beacon.peer_id,
        "username": beacon.username,
        "address": beacon.address,
        "port": beacon.port,
        "timestamp": format_time(beacon.timestamp),
        "sequence": beacon.sequence,
    }
    if beacon.caps:
        obj["caps"] = list(beacon.caps)
    for key in ("fp", "pk", "sig"):
        if getattr(beacon, key):
            obj[key] = getattr(beacon, key)
    data = _encode(obj)
    if len(data) > MAX_DATAGRAM_BYTES:
        raise WireError(f"beacon would be longer than {MAX_DATAGRAM_BYTES} bytes")
    return data
