"""libsodium (PyNaCl's bindings, cffi and the library: about 1.1 MB of an idle peer's RSS)
loaded at its first need, not at start.

A peer alone needs its key for two things only: its public key, worked out once from the
seed, and its beacons' signatures, one every few seconds.  Both are done here by the OpenSSL
``libcrypto`` the interpreter already holds (``ssl`` and ``hashlib`` link it), reached
through ``ctypes`` (already imported by Twisted and settling.py), so nothing is loaded for
them.  Ed25519 signatures are deterministic (RFC 8032): OpenSSL's are libsodium's byte for
byte (tests/test_latesodium.py checks it over random keys and messages).

Everything else goes through libsodium, imported by ``sodium()`` at its first use (a few
ms): checking a signature (a peer's beacon heard, a line, a run), signing a line said
(identity.Identity.sign, the say path, where libsodium is the faster), and the first link,
whose libraries latetls.preload imports in a thread.  Where OpenSSL's Ed25519 can't be found
(a Python whose ``_hashlib`` holds OpenSSL linked in statically, or an OpenSSL before 1.1.1)
libsodium does those two as well, as before.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

#: PyNaCl's module of bindings: what an idle peer alone does without (latetls.LATE_MODULES).
_BINDINGS = "nacl.bindings"
#: OpenSSL's id of Ed25519 (NID_ED25519, EVP_PKEY_ED25519), fixed since 1.1.1.
_ED25519 = 1087
KEY_BYTES = 32
SIGNATURE_BYTES = 64
#: Keys OpenSSL keeps made to sign with (a peer signs with one; tests with a few).
KEYS_KEPT = 8


#: PyNaCl's bindings once imported all through (by ``sodium``); None: not yet.
_sodium: ModuleType | None = None


def sodium() -> ModuleType:
    """PyNaCl's bindings, imported at the first call.  Never taken from ``sys.modules`` as
    it is: the first link imports them in a thread (latetls.preload), and a module being
    imported is there half made; the import waits for that thread to finish it."""
    global _sodium
    if _sodium is None:
        _sodium = importlib.import_module(_BINDINGS)
    return _sodium


def sign_open(signed: bytes, key: bytes) -> bytes:
    """libsodium's ``crypto_sign_open`` (signature + message): raises
    ``nacl.exceptions.BadSignatureError`` for a bad signature."""
    return sodium().crypto_sign_open(signed, key)  # type: ignore[no-any-return]


class _LibCrypto:
    """OpenSSL's EVP calls for Ed25519, through ctypes; ``None`` from ``find`` where missing."""

    EVP_PKEY_new_raw_private_key: Any
    EVP_PKEY_get_raw_public_key: Any
    EVP_PKEY_free: Any
    EVP_MD_CTX_new: Any
    EVP_MD_CTX_free: Any
    EVP_DigestSignInit: Any
    EVP_DigestSign: Any

    def __init__(self, lib: Any) -> None:
        import ctypes

        self.c = ctypes
        p, size, n = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
        for name, res, args in (
                ("EVP_PKEY_new_raw_private_key", p, [n, p, ctypes.c_char_p, size]),
                ("EVP_PKEY_get_raw_public_key", n, [p, ctypes.c_char_p, ctypes.POINTER(size)]),
                ("EVP_PKEY_free", None, [p]),
                ("EVP_MD_CTX_new", p, []),
                ("EVP_MD_CTX_free", None, [p]),
                ("EVP_DigestSignInit", n, [p, p, p, p, p]),
                ("EVP_DigestSign", n, [p, ctypes.c_char_p, ctypes.POINTER(size),
                                       ctypes.c_char_p, size])):
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
            setattr(self, name, fn)
        #: keys as OpenSSL holds them, by seed, to sign with (a peer has one; at most
        #: KEYS_KEPT, the oldest freed first)
        self._keys: dict[bytes, int] = {}

    @classmethod
    def find(cls) -> _LibCrypto | None:
        try:
            import ctypes

            import _hashlib

            return cls(ctypes.CDLL(_hashlib.__file__))  # its libcrypto's symbols, by dlsym
        except (ImportError, OSError, AttributeError, TypeError):
            return None

    def _new_key(self, seed: bytes) -> int:
        key = self.EVP_PKEY_new_raw_private_key(_ED25519, None, seed, len(seed))
        if not key:
            raise ValueError("OpenSSL refused the Ed25519 seed")
        return key  # type: ignore[no-any-return]

    def _key(self, seed: bytes) -> int:
        key = self._keys.get(seed)
        if key is None:
            while len(self._keys) >= KEYS_KEPT:
                self.EVP_PKEY_free(self._keys.pop(next(iter(self._keys))))
            key = self._keys[seed] = self._new_key(seed)
        return key

    def public_key(self, seed: bytes) -> bytes:
        key = self._new_key(seed)
        try:
            out = self.c.create_string_buffer(KEY_BYTES)
            size = self.c.c_size_t(KEY_BYTES)
            if self.EVP_PKEY_get_raw_public_key(key, out, self.c.byref(size)) != 1 \
                    or size.value != KEY_BYTES:
                raise ValueError("OpenSSL gave no Ed25519 public key")
            return out.raw
        finally:
            self.EVP_PKEY_free(key)

    def sign(self, data: bytes, seed: bytes) -> bytes:
        ctx = self.EVP_MD_CTX_new()
        if not ctx:
            raise MemoryError("OpenSSL: no digest context")
        try:
            out = self.c.create_string_buffer(SIGNATURE_BYTES)
            size = self.c.c_size_t(SIGNATURE_BYTES)
            if self.EVP_DigestSignInit(ctx, None, None, None, self._key(seed)) != 1 \
                    or self.EVP_DigestSign(ctx, out, self.c.byref(size), data, len(data)) != 1 \
                    or size.value != SIGNATURE_BYTES:
                raise ValueError("OpenSSL failed to sign")
            return out.raw
        finally:
            self.EVP_MD_CTX_free(ctx)


_libcrypto: _LibCrypto | None = None
_looked = False  # for _libcrypto


def _openssl() -> _LibCrypto | None:
    """OpenSSL's Ed25519, while libsodium is not loaded (None: use libsodium)."""
    global _libcrypto, _looked
    if _sodium is not None:  # loaded anyway: it is the faster
        return None
    if not _looked:
        _libcrypto, _looked = _LibCrypto.find(), True
    return _libcrypto


def public_key(seed: bytes) -> bytes:
    """The Ed25519 public key of ``seed`` (32 bytes)."""
    if len(seed) != KEY_BYTES:
        raise ValueError(f"an Ed25519 seed is {KEY_BYTES} bytes, not {len(seed)}")
    crypto = _openssl()
    if crypto is not None:
        return crypto.public_key(seed)
    public, _ = sodium().crypto_sign_seed_keypair(seed)
    return public  # type: ignore[no-any-return]


def sign_seldom(data: bytes, seed: bytes, public: bytes) -> bytes:
    """Ed25519 over ``data`` (64 bytes) for what is signed seldom (a beacon): by OpenSSL
    while libsodium is not loaded, else by libsodium; the same bytes either way."""
    crypto = _openssl()
    if crypto is not None:
        return crypto.sign(data, seed)
    return sodium().crypto_sign(data, seed + public)[:SIGNATURE_BYTES]  # type: ignore[no-any-return]
