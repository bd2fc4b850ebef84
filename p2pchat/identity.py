"""Who we are, and whom we trust: a key pair and a self-signed certificate kept in the data dir
(the certificate's fingerprint is the identity, as Syncthing's device IDs), pins of the keys
first seen for each nick (trust on first use), beacon signatures, and the TLS contexts that
check a peer's certificate against the fingerprint it announced.

No hand-made cryptography: keys, certificates and signatures come from ``cryptography``; TLS
from pyOpenSSL through Twisted.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from typing import Callable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLContextFactory
from twisted.logger import Logger
from zope.interface import implementer

log = Logger()

KEY_NAME = "identity.key"
CERT_NAME = "identity.crt"
PINS_NAME = "pins.json"
#: Pins kept at most (a pin is a nick and a fingerprint).
MAX_PINS = 10_000


def spki_fingerprint(public_key: ed25519.Ed25519PublicKey) -> str:
    """SHA-256 of the SubjectPublicKeyInfo, in hex: the identity of a peer."""
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def short_form(fingerprint: str) -> str:
    """The human form of a fingerprint: 16 base32 characters in four groups (ABCD-EFGH-...)."""
    raw = base64.b32encode(bytes.fromhex(fingerprint)[:10]).decode("ascii")
    return "-".join(raw[i:i + 4] for i in range(0, 16, 4))


def peer_id_for(fingerprint: str) -> str:
    """Our peers' ids are derived from their fingerprint, so an id can't be claimed by another
    key: lowercase short form without dashes."""
    return short_form(fingerprint).replace("-", "").lower()


def _write_private(path: str, data: bytes) -> None:
    """Write a file readable by its owner only (0600), atomically."""
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@dataclass
class Identity:
    """Our key and certificate."""

    key: ed25519.Ed25519PrivateKey
    cert: x509.Certificate

    @property
    def fingerprint(self) -> str:
        return spki_fingerprint(self.key.public_key())

    @property
    def short(self) -> str:
        return short_form(self.fingerprint)

    @property
    def peer_id(self) -> str:
        return peer_id_for(self.fingerprint)

    def public_key_b64(self) -> str:
        raw = self.key.public_key().public_bytes(serialization.Encoding.Raw,
                                                 serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode("ascii")

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self.key.sign(data)).decode("ascii")

    @classmethod
    def generate(cls) -> Identity:
        key = ed25519.Ed25519PrivateKey.generate()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "p2pchat peer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder()
                .subject_name(name).issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=365 * 30))
                .sign(key, None))
        return cls(key, cert)

    @classmethod
    def load_or_create(cls, data_dir: str) -> Identity:
        """Our identity from the data dir, made on first run (files mode 0600)."""
        key_path = os.path.join(data_dir, KEY_NAME)
        cert_path = os.path.join(data_dir, CERT_NAME)
        if os.path.exists(key_path) and os.path.exists(cert_path):
            with open(key_path, "rb") as f:
                key = serialization.load_pem_private_key(f.read(), password=None)
            with open(cert_path, "rb") as f:
                cert = x509.load_pem_x509_certificate(f.read())
            if not isinstance(key, ed25519.Ed25519PrivateKey):
                raise ValueError(f"{key_path} is not an Ed25519 key")
            return cls(key, cert)
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
        made = cls.generate()
        _write_private(key_path, made.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        _write_private(cert_path, made.cert.public_bytes(serialization.Encoding.PEM))
        log.info("made a new identity {short} in {dir}", short=made.short, dir=data_dir)
        return made

    def tls_context(self, server: bool) -> SSL.Context:
        """One context per side, made once and never changed after (pyOpenSSL refuses changes
        to a context in use): our certificate, TLS 1.2 at least (1.3 where both have it), and
        the peer's certificate required but accepted here whatever it is: it is checked
        against the pinned fingerprint once the handshake is done
        (``certificate_fingerprint``), as there is no CA to check it against."""
        cache = self.__dict__.setdefault("_contexts", {})
        if server not in cache:
            cache[server] = self._make_context(server)
        return cache[server]

    def _make_context(self, server: bool) -> SSL.Context:
        ctx = SSL.Context(SSL.TLS_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
        # An idle link keeps no read/write buffers (tens of KB each): a peer with 50 links
        # stays small.
        ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
        ctx.use_certificate(self.cert)
        ctx.use_privatekey(self.key)
        ctx.check_privatekey()
        ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
                       lambda conn, cert, errno, depth, ok: True)
        if server:
            ctx.set_session_id(b"p2pchat")
        return ctx


@implementer(IOpenSSLContextFactory)
class ContextFactory:
    """What ``transport.startTLS`` takes."""

    def __init__(self, identity: Identity, server: bool) -> None:
        self.identity = identity
        self.server = server

    def getContext(self) -> SSL.Context:
        return self.identity.tls_context(self.server)


def certificate_fingerprint(cert) -> str | None:
    """The SPKI fingerprint of a peer's certificate (a pyOpenSSL X509 or a cryptography one)."""
    if cert is None:
        return None
    if hasattr(cert, "to_cryptography"):
        cert = cert.to_cryptography()
    key = cert.public_key()
    if not isinstance(key, ed25519.Ed25519PublicKey):
        return None
    return spki_fingerprint(key)


def certificate_public_key(cert) -> str:
    """The Ed25519 public key of a peer's certificate, base64 (raw bytes), or ""."""
    if cert is None:
        return ""
    if hasattr(cert, "to_cryptography"):
        cert = cert.to_cryptography()
    key = cert.public_key()
    if not isinstance(key, ed25519.Ed25519PublicKey):
        return ""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


# --- beacon signatures ----------------------------------------------------------------------


def beacon_payload(kind: str, peer_id: str, username: str, port: int, timestamp: str,
                   fingerprint: str) -> bytes:
    """The bytes a beacon signature covers: every field a receiver acts on."""
    return json.dumps([kind, peer_id, username, port, timestamp, fingerprint],
                      separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def verify_beacon(public_key_b64: str, signature_b64: str, payload: bytes,
                  fingerprint: str) -> bool:
    """True if the key matches the fingerprint and signed the payload."""
    try:
        raw = base64.b64decode(public_key_b64, validate=True)
        signature = base64.b64decode(signature_b64, validate=True)
        key = ed25519.Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError):
        return False
    if spki_fingerprint(key) != fingerprint:
        return False
    try:
        key.verify(signature, payload)
    except InvalidSignature:
        return False
    return True


# --- pins -----------------------------------------------------------------------------------

#: New pins are written to the data dir at most this long (seconds) after the first of them.
PINS_SAVE_DELAY = 0.5


class Pins:
    """Trust on first use: the fingerprint first seen for each nick, kept in the data dir.

    With ``call_soon`` (``reactor.callLater(PINS_SAVE_DELAY, f)``) the file is written once for
    all the pins of a moment (a peer joining a mesh of 50 pins 49 keys in a second); without
    it, at every change.  ``flush`` writes what is pending (the service calls it at exit)."""

    def __init__(self, path: str | None,
                 call_soon: Callable[[Callable[[], None]], object] | None = None) -> None:
        self.path = path
        self._by_nick: dict[str, str] = {}
        self._call_soon = call_soon
        self._dirty = False
        if path and os.path.exists(path):
            try:
                with open(path, encoding="utf-8") as f:
                    data = json.load(f)
                self._by_nick = {str(k): str(v) for k, v in dict(data).items()}
            except (OSError, ValueError, TypeError) as e:
                log.error("can't read the pins in {path} ({why}): starting with none",
                          path=path, why=str(e))

    def get(self, nick: str) -> str | None:
        return self._by_nick.get(nick)

    def pin(self, nick: str, fingerprint: str) -> None:
        if len(self._by_nick) >= MAX_PINS and nick not in self._by_nick:
            log.warn("{n} pins kept: {nick} not pinned", n=MAX_PINS, nick=nick)
            return
        self._by_nick[nick] = fingerprint
        self._save()

    def forget(self, nick: str) -> bool:
        if self._by_nick.pop(nick, None) is None:
            return False
        self._save()
        return True

    def __len__(self) -> int:
        return len(self._by_nick)

    def _save(self) -> None:
        if not self.path:
            return
        if self._call_soon is None:
            self._write()
        elif not self._dirty:
            self._dirty = True
            self._call_soon(self.flush)

    def flush(self) -> None:
        if self._dirty:
            self._write()

    def _write(self) -> None:
        self._dirty = False
        data = json.dumps(self._by_nick, indent=1, sort_keys=True).encode("utf-8")
        try:
            _write_private(self.path, data)
        except OSError as e:
            log.error("can't save the pins in {path}: {why}", path=self.path, why=str(e))
