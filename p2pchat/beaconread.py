"""Reading a beacon the quick way: in a room of 100 an idle peer hears about 20 a second, and
``wire.parse_beacon`` (``json.loads`` and a check per field in Python, about 13 us) was most of
what it did with them.  msgspec decodes a datagram into a typed struct and checks the lengths
in C (about 3 us); a short look then accepts what a well-formed beacon holds, and anything
else (a null, a number written 3.0, a non-ASCII name, invalid JSON, a long field) goes the long
way, ``wire.parse_beacon``, which accepts or refuses it with the reason.  Both ways give the
same Beacon for every datagram (tests/test_beaconread.py).

msgspec is used once something else has imported it (the TLS libraries at the first link,
latetls.py, or the first chat line): a peer alone, which hears only its own beacons, does
without it (it is about 1 MB)."""

from __future__ import annotations

import sys
from typing import Annotated, Any, Callable

from p2pchat.wire import (BEACON_TYPES, FINGERPRINT_CHARS, MAX_CAPS, MAX_DATAGRAM_BYTES,
                          MAX_ID_CHARS, MAX_NAME_CHARS, MAX_SEQUENCE, Beacon, parse_beacon,
                          parse_time)

_HEX = "0123456789abcdef"

#: The quick decoder once msgspec is imported (None before), and msgspec's error.
_decode: Callable[[bytes], Any] | None = None
_errors: tuple[type[BaseException], ...] = ()


def _bind() -> bool:
    """Builds the decoder if msgspec is already imported; False if it is not (yet)."""
    global _decode, _errors
    msgspec = sys.modules.get("msgspec")
    if msgspec is None or _initializing(msgspec) or _initializing(
            sys.modules.get("msgspec.json")):
        return False
    ident = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
    name = Annotated[str, msgspec.Meta(max_length=MAX_NAME_CHARS)]
    caps = Annotated[list[ident], msgspec.Meta(max_length=MAX_CAPS)]  # type: ignore[valid-type]
    beacon = msgspec.defstruct("_Beacon", [
        ("type", ident | None, None), ("peer_id", ident | None, None),
        ("username", name | None, None), ("port", int | None, None),
        ("timestamp", Annotated[str, msgspec.Meta(max_length=64)] | None, None),
        ("address", name | None, None), ("sequence", int | None, None),
        ("caps", caps | None, None), ("fp", str | None, None),
        ("pk", Annotated[str, msgspec.Meta(max_length=64)] | None, None),
        ("sig", Annotated[str, msgspec.Meta(max_length=128)] | None, None)],
        module=__name__)
    _decode = msgspec.json.Decoder(beacon).decode
    _errors = (msgspec.DecodeError,)  # ValidationError too
    return True


def _initializing(module: Any) -> bool:
    """Whether ``module`` is not (yet) fully imported: absent, or being imported in another
    thread (latetls.preload imports msgspec beside the TLS libraries; a module is in
    sys.modules from the start of its import, and binding the decoder then failed on a half-
    made module, each beacon of a room of 100 dropped with a traceback till it was in)."""
    return module is None or bool(getattr(getattr(module, "__spec__", None), "_initializing",
                                          False))


def read_beacon(data: bytes) -> Beacon:
    """A received datagram to a Beacon, as ``wire.parse_beacon`` gives it (WireError says why
    it is not one), the quick way when the datagram is a well-formed beacon."""
    if _decode is None and not _bind():
        return parse_beacon(data)
    assert _decode is not None
    if len(data) > MAX_DATAGRAM_BYTES:
        return parse_beacon(data)  # refused, with the reason
    try:
        f = _decode(data)
    except _errors:
        return parse_beacon(data)
    kind, peer, username, port, stamp = f.type, f.peer_id, f.username or "", f.port, f.timestamp
    address, sequence, caps, fp = f.address or "", f.sequence, f.caps, f.fp or ""
    pk, sig = f.pk or "", f.sig or ""
    if not (kind in BEACON_TYPES and peer is not None and stamp and port is not None
            and 1 <= port <= 65535 and (sequence is None or 0 <= sequence <= MAX_SEQUENCE)
            and peer.isascii() and username.isascii() and stamp.isascii()
            and address.isascii() and pk.isascii() and sig.isascii()
            and (not fp or (len(fp) == FINGERPRINT_CHARS and not fp.strip(_HEX)))):
        return parse_beacon(data)
    return Beacon(type=kind, peer_id=peer, username=username, port=port,
                  timestamp=parse_time(stamp), address=address, sequence=sequence or 0,
                  caps=tuple(caps) if caps else (), fp=fp, pk=pk, sig=sig, stamp=stamp)
