"""Our key's file, read and written without ``cryptography`` (imported at the first TLS link
only: latetls.py), and the fingerprint of a key.  Not cryptography: the fixed DER layouts of an
Ed25519 key (RFC 8410), byte for byte what ``cryptography`` writes and reads
(tests/test_latetls.py checks both ways); a key file in any other layout is read by
``cryptography``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

#: The DER of an Ed25519 SubjectPublicKeyInfo before its 32 key bytes (RFC 8410, 4).
_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
#: The DER of an Ed25519 private key in PKCS #8 (v1, no attributes) before its 32-byte seed
#: (RFC 8410, 7): what ``cryptography`` writes for ``PrivateFormat.PKCS8``.
_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
_PEM_BEGIN, _PEM_END = b"-----BEGIN PRIVATE KEY-----", b"-----END PRIVATE KEY-----"
KEY_BYTES = 32


def raw_fingerprint(public: bytes) -> str:
    """SHA-256 of the SubjectPublicKeyInfo (a fixed prefix and the 32 bytes) of the Ed25519
    key ``public``, in hex: the identity of a peer.  ValueError if it is not 32 bytes."""
    if len(public) != KEY_BYTES:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return hashlib.sha256(_SPKI_PREFIX + public).hexdigest()


def key_pem(seed: bytes) -> bytes:
    """The Ed25519 key of ``seed`` as unencrypted PKCS #8 PEM, byte for byte what
    ``cryptography`` writes."""
    body = base64.b64encode(_PKCS8_PREFIX + seed)
    return _PEM_BEGIN + b"\n" + body + b"\n" + _PEM_END + b"\n"


def seed_from_pem(pem: bytes) -> bytes:
    """The 32-byte seed of an Ed25519 private key in PEM; ValueError if it is not one.  The
    layout ``key_pem`` writes is read here; any other (PKCS #8 v2 with the public key, ...)
    by ``cryptography``."""
    lines = pem.strip().splitlines()
    if len(lines) >= 3 and lines[0] == _PEM_BEGIN and lines[-1] == _PEM_END:
        try:
            der = base64.b64decode(b"".join(lines[1:-1]), validate=True)
        except (binascii.Error, ValueError):
            der = b""
        if len(der) == len(_PKCS8_PREFIX) + KEY_BYTES and der.startswith(_PKCS8_PREFIX):
            return der[len(_PKCS8_PREFIX):]
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError("not an Ed25519 key")
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
