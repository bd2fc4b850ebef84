"""Invites: the one token a friend pastes into ``/connect`` to reach us over Tor.  Pure: the
format is defined here once, text in, value out, ValueError saying what is wrong.

    p2pchat:1/<onion address>.onion:<port>/<key fingerprint>/<secret>

- ``1``: the version of the format (a newer one is refused by name, not misread);
- the v3 onion address (56 base32 characters, its checksum checked) and the virtual port;
- the SHA-256 fingerprint (64 hex) of the inviter's key: the first link is verified against
  it, so the first contact is not trusted on first use;
- a secret (32 base32 characters, 160 random bits) that the inviter's onion listener checks,
  so an address that leaks does not let strangers in.  The first peer that links with it
  binds it to its key: from then on only that key may use it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass

from p2pchat.addresses import parse_port

SCHEME = "p2pchat:"
#: The invite format this code writes and reads.
VERSION = 1
#: A longer token is refused before it is looked at (a real one is ~180 characters).
MAX_INVITE_CHARS = 256
ONION_SUFFIX = ".onion"
#: A v3 onion address without ``.onion``: 56 base32 characters.
ONION_CHARS = 56
SECRET_CHARS = 32
FINGERPRINT_CHARS = 64
_BASE32 = frozenset("abcdefghijklmnopqrstuvwxyz234567")
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Invite:
    """What an invite carries (``address`` without ``.onion``)."""

    address: str
    port: int
    fp: str
    secret: str

    @property
    def host(self) -> str:
        return self.address + ONION_SUFFIX

    def token(self) -> str:
        return f"{SCHEME}{VERSION}/{self.host}:{self.port}/{self.fp}/{self.secret}"


def new_secret() -> str:
    """A fresh invite secret: 160 random bits, base32."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii").lower()


def is_invite(text: str) -> bool:
    """Whether the user gave an invite (rather than HOST:PORT)."""
    return text.strip().lower().startswith(SCHEME)


def _shown(text: str) -> str:
    """A piece of a hostile token, cut short (shown with ``!r``, which escapes the rest)."""
    return text[:24] + ("..." if len(text) > 24 else "")


def onion_problem(address: str) -> str | None:
    """Why ``address`` (56 characters, no ``.onion``) is not a v3 onion address, or None."""
    if len(address) != ONION_CHARS or not set(address) <= _BASE32:
        return f"{_shown(address)!r} is not a v3 onion address (56 letters and digits 2-7)"
    raw = base64.b32decode(address.upper())
    key, checksum, version = raw[:32], raw[32:34], raw[34:]
    if version != b"\x03":
        return f"{_shown(address)}.onion is not a version 3 onion address"
    if hashlib.sha3_256(b".onion checksum" + key + version).digest()[:2] != checksum:
        return f"{_shown(address)}.onion has a bad checksum (a typo?)"
    return None


def parse_invite(text: str) -> Invite:
    """An invite token to its fields; ValueError says what is wrong with it (and never
    echoes more than a short, printable piece of it)."""
    text = text.strip()
    if len(text) > MAX_INVITE_CHARS:
        raise ValueError(f"that invite is {len(text)} characters; a real one is under "
                         f"{MAX_INVITE_CHARS}")
    if not text.lower().startswith(SCHEME):
        raise ValueError(f"an invite starts with {SCHEME}")
    version, _, rest = text[len(SCHEME):].partition("/")
    if not (version.isascii() and version.isdigit()):
        raise ValueError(f"the invite's version {_shown(version)!r} is not a number")
    if int(version) != VERSION:
        raise ValueError(f"the invite is of version {int(version)}, this p2pchat reads "
                         f"version {VERSION}" + (" (it was made by a newer p2pchat)"
                                                 if int(version) > VERSION else ""))
    parts = rest.split("/")
    if len(parts) != 3:
        raise ValueError("an invite is p2pchat:1/ADDRESS.onion:PORT/FINGERPRINT/SECRET")
    where, fp, secret = parts[0].lower(), parts[1].lower(), parts[2].lower()
    host, sep, port_text = where.rpartition(":")
    if not sep or not host.endswith(ONION_SUFFIX):
        raise ValueError(f"the invite's address {_shown(where)!r} is not ADDRESS.onion:PORT")
    address = host[:-len(ONION_SUFFIX)]
    problem = onion_problem(address)
    if problem:
        raise ValueError(f"the invite's address: {problem}")
    if not (port_text.isascii() and port_text.isdigit()):
        raise ValueError(f"the invite's port {_shown(port_text)!r} is not a number")
    port = parse_port(port_text, "the invite's port")
    if len(fp) != FINGERPRINT_CHARS or not set(fp) <= _HEX:
        raise ValueError("the invite's key fingerprint is not 64 hex digits")
    if len(secret) != SECRET_CHARS or not set(secret) <= _BASE32:
        raise ValueError("the invite's secret is not 32 letters and digits 2-7")
    return Invite(address, port, fp, secret)
