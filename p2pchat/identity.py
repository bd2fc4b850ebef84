"""Who we are, and whom we trust: a key pair and a self-signed certificate kept in the data dir
(the certificate's fingerprint is the identity, as Syncthing's device IDs), pins of the keys
first seen for each nick (trust on first use), beacon signatures, and the TLS contexts that
check a peer's certificate against the fingerprint it announced.

No hand-made cryptography: keys and signatures are libsodium's (PyNaCl), certificates
``cryptography``'s, TLS pyOpenSSL's through Twisted, the last two imported at the first TLS
context only (latetls.py), libsodium at its first use: a peer alone works out its public key
and signs its beacons by the OpenSSL Python already holds (latesodium.py).  So the key is
kept as libsodium takes it (seed and public key), and its file is the one DER layout of an
Ed25519 key in PKCS #8 (RFC 8410), byte for byte what ``cryptography`` writes
(tests/test_latetls.py checks both ways; tests/test_latesodium.py that OpenSSL's signatures
and public keys are libsodium's).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from nacl.exceptions import BadSignatureError as _BadSignature
from twisted.internet.interfaces import IOpenSSLContextFactory
from twisted.logger import Logger
from zope.interface import implementer

from p2pchat import latesodium
from p2pchat.keyfile import KEY_BYTES, key_pem, raw_fingerprint, seed_from_pem

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from OpenSSL import SSL

log = Logger()

KEY_NAME = "identity.key"
CERT_NAME = "identity.crt"
PINS_NAME = "pins.json"
#: Pins kept at most (a pin is a nick and a fingerprint).
MAX_PINS = 10_000
#: First-use pins one key can hold: its newest nicks (a rename past this drops its oldest).
MAX_PINS_PER_KEY = 3
#: A full pin table drops a key's first-use pins to make room only if that key has not been
#: seen for this long (seconds); else nicks that can't be pinned are shown flagged.
PIN_IDLE_EVICT = 30 * 24 * 3600.0
#: How often (seconds) seeing a pinned key again is written down (its "seen" time).
PIN_TOUCH_EVERY = 3600.0

def spki_fingerprint(public_key: ed25519.Ed25519PublicKey) -> str:
    """``raw_fingerprint`` of a ``cryptography`` key."""
    from cryptography.hazmat.primitives import serialization

    return raw_fingerprint(public_key.public_bytes(serialization.Encoding.Raw,
                                                   serialization.PublicFormat.Raw))


def short_form(fingerprint: str) -> str:
    """The human form of a fingerprint: 16 base32 characters in four groups (ABCD-EFGH-...)."""
    raw = base64.b32encode(bytes.fromhex(fingerprint)[:10]).decode("ascii")
    return "-".join(raw[i:i + 4] for i in range(0, 16, 4))


#: Fingerprints whose peer id is kept (``peer_id_for``): a room's worth, and more.
PEER_IDS_KEPT = 1024


@functools.lru_cache(maxsize=PEER_IDS_KEPT)
def peer_id_for(fingerprint: str) -> str:
    """Our peers' ids are derived from their fingerprint, so an id can't be claimed by another
    key: lowercase short form without dashes.  Kept for the last PEER_IDS_KEPT fingerprints:
    every signed beacon heard asks (in a room of 100, 20 a second, 4 us each)."""
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
    """Our key (its seed and public key, as libsodium takes them), and our certificate: read
    from ``cert_path`` or made (and written there) when the first TLS context needs it."""

    seed: bytes
    public: bytes
    #: where the certificate is kept; None: made in memory only
    cert_path: str | None = None
    _cert: x509.Certificate | None = field(default=None, init=False, repr=False, compare=False)
    _contexts: dict[bool, SSL.Context] = field(default_factory=dict, init=False, repr=False,
                                               compare=False)

    @classmethod
    def from_seed(cls, seed: bytes, cert_path: str | None = None) -> Identity:
        return cls(seed, latesodium.public_key(seed), cert_path)

    @functools.cached_property
    def fingerprint(self) -> str:
        return raw_fingerprint(self.public)

    @property
    def short(self) -> str:
        return short_form(self.fingerprint)

    @property
    def peer_id(self) -> str:
        return peer_id_for(self.fingerprint)

    def public_key_b64(self) -> str:
        return base64.b64encode(self.public).decode("ascii")

    def sign(self, data: bytes) -> str:
        """Ed25519 over ``data``, in base64, by libsodium (about two thirds of OpenSSL's time
        here; Ed25519 signatures are deterministic: OpenSSL makes the very same bytes)."""
        signed = latesodium.sodium().crypto_sign(data, self.seed + self.public)
        return base64.b64encode(signed[:64]).decode("ascii")

    def sign_seldom(self, data: bytes) -> str:
        """``sign`` for what is signed seldom (a beacon): done without loading libsodium
        while a peer is alone (latesodium.py); the same signature."""
        signed = latesodium.sign_seldom(data, self.seed, self.public)
        return base64.b64encode(signed).decode("ascii")

    @property
    def key(self) -> ed25519.Ed25519PrivateKey:
        """The key as a ``cryptography`` object (TLS contexts, certificates, tests)."""
        from cryptography.hazmat.primitives.asymmetric import ed25519

        return ed25519.Ed25519PrivateKey.from_private_bytes(self.seed)

    @property
    def cert(self) -> x509.Certificate:
        """Our self-signed certificate: the one kept at ``cert_path`` if it is of our key,
        else a new one (written there)."""
        if self._cert is None:
            self._cert = self._read_cert() or self._make_cert()
        return self._cert

    @classmethod
    def generate(cls) -> Identity:
        return cls.from_seed(os.urandom(KEY_BYTES))  # as libsodium's keypair: a random seed

    @classmethod
    def load_or_create(cls, data_dir: str) -> Identity:
        """Our identity from the data dir, its key made on first run (files mode 0600; the
        certificate is made at the first TLS link, from the key)."""
        key_path = os.path.join(data_dir, KEY_NAME)
        cert_path = os.path.join(data_dir, CERT_NAME)
        if os.path.exists(key_path):
            with open(key_path, "rb") as f:
                pem = f.read()
            try:
                return cls.from_seed(seed_from_pem(pem), cert_path)
            except ValueError as e:
                raise ValueError(f"{key_path} is not an Ed25519 key ({e})") from None
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
        made = cls.generate()
        made.cert_path = cert_path
        _write_private(key_path, key_pem(made.seed))
        log.info("made a new identity {short} in {dir}", short=made.short, dir=data_dir)
        return made

    def _read_cert(self) -> x509.Certificate | None:
        if not self.cert_path or not os.path.exists(self.cert_path):
            return None
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        try:
            with open(self.cert_path, "rb") as f:
                cert = x509.load_pem_x509_certificate(f.read())
            theirs = cert.public_key().public_bytes(serialization.Encoding.Raw,
                                                    serialization.PublicFormat.Raw)
        except (OSError, ValueError, TypeError) as e:
            log.warn("can't use the certificate in {path} ({why}): making a new one",
                     path=self.cert_path, why=str(e))
            return None
        if theirs != self.public:
            log.warn("the certificate in {path} is not of our key: making a new one",
                     path=self.cert_path)
            return None
        return cert

    def _make_cert(self) -> x509.Certificate:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.x509.oid import NameOID

        key = self.key
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "p2pchat peer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder()
                .subject_name(name).issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=365 * 30))
                .sign(key, None))
        if self.cert_path:
            try:
                _write_private(self.cert_path, cert.public_bytes(serialization.Encoding.PEM))
            except OSError as e:
                log.error("can't save our certificate in {path}: {why}", path=self.cert_path,
                          why=str(e))
        return cert

    def tls_context(self, server: bool) -> SSL.Context:
        """One context per side, made once and never changed after (pyOpenSSL refuses changes
        to a context in use): our certificate, TLS 1.2 at least (1.3 where both have it), and
        the peer's certificate required but accepted here whatever it is: it is checked
        against the pinned fingerprint once the handshake is done
        (``certificate_fingerprint``), as there is no CA to check it against."""
        if server not in self._contexts:
            self._contexts[server] = self._make_context(server)
        return self._contexts[server]

    def _make_context(self, server: bool) -> SSL.Context:
        from OpenSSL import SSL

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


def _certificate_key(cert: Any) -> bytes | None:
    """The Ed25519 key (raw) of a peer's certificate (a pyOpenSSL X509 or a ``cryptography``
    one), or None (no certificate, or another kind of key).  Asked once a TLS handshake is
    done: the TLS libraries are loaded by then."""
    if cert is None:
        return None
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    if hasattr(cert, "to_cryptography"):
        cert = cert.to_cryptography()
    key = cert.public_key()
    if not isinstance(key, ed25519.Ed25519PublicKey):
        return None
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def certificate_fingerprint(cert: Any) -> str | None:
    """The SPKI fingerprint of a peer's certificate (a pyOpenSSL X509 or a cryptography one)."""
    raw = _certificate_key(cert)
    return raw_fingerprint(raw) if raw is not None else None


def certificate_public_key(cert: Any) -> str:
    """The Ed25519 public key of a peer's certificate, base64 (raw bytes), or ""."""
    raw = _certificate_key(cert)
    return base64.b64encode(raw).decode("ascii") if raw is not None else ""


# --- beacon signatures ----------------------------------------------------------------------


def key_matches(public_key_b64: str, fingerprint: str) -> bool:
    """Whether ``public_key_b64`` (an Ed25519 key, raw, base64) is the key of
    ``fingerprint``."""
    try:
        return raw_fingerprint(base64.b64decode(public_key_b64, validate=True)) == fingerprint
    except (ValueError, TypeError):
        return False


def beacon_payload(kind: str, peer_id: str, username: str, port: int, timestamp: str,
                   fingerprint: str) -> bytes:
    """The bytes a beacon signature covers: every field a receiver acts on."""
    return json.dumps([kind, peer_id, username, port, timestamp, fingerprint],
                      separators=(",", ":"), ensure_ascii=False).encode("utf-8")


#: Beacon keys whose fingerprint is kept worked out (``_beacon_key``): a room's worth and more;
#: a flood of made-up keys only turns it over (each then costs what it would uncached).
BEACON_KEYS_KEPT = 1024


@functools.lru_cache(maxsize=BEACON_KEYS_KEPT)
def _beacon_key(public_key_b64: str) -> tuple[bytes, str]:
    """A beacon's key (base64) to its raw bytes and fingerprint, worked out once per key, not
    once per beacon.  ValueError/TypeError for a bad key."""
    raw = base64.b64decode(public_key_b64, validate=True)
    return raw, raw_fingerprint(raw)


def verify_beacon(public_key_b64: str, signature_b64: str, payload: bytes,
                  fingerprint: str) -> bool:
    """True if the key matches the fingerprint and signed the payload (by libsodium: about
    half of OpenSSL's time here; runsig.verify says more)."""
    try:
        raw, fp = _beacon_key(public_key_b64)
        signature = base64.b64decode(signature_b64, validate=True)
    except (ValueError, TypeError):
        return False
    if fp != fingerprint or len(signature) != 64:
        return False
    try:
        latesodium.sign_open(signature + payload, raw)
    except _BadSignature:
        return False
    return True


# --- pins -----------------------------------------------------------------------------------

#: New pins are written to the data dir at most this long (seconds) after the first of them
#: (one write for all the pins of a room of 100 forming in those seconds: each write is the
#: whole table; at 0.5 s they were 3% of the CPU the room spent after its last peer was up).
PINS_SAVE_DELAY = 2.0


@dataclass
class Pin:
    """One pinned nick: the key, when that key was last seen with the nick (wall clock), and
    whether the user pinned it (/trust) rather than first use."""

    fp: str
    seen: float
    trusted: bool = False
    #: the key itself (Ed25519, base64), once seen: what a sealed line is sealed to
    #: (sealed.py); "" in pins made before keys were kept, until the key is seen again
    pk: str = ""


class Pins:
    """Trust on first use: the fingerprint first seen for each nick, kept in the data dir.

    Bounded so that no peer can switch trust on first use off by filling the table: one key
    keeps at most ``MAX_PINS_PER_KEY`` first-use pins (its newest nicks; renaming past that
    drops its own oldest pin, never another key's), a nick pinned to a key is never given to
    another key except by the user (/trust), and a full table (``MAX_PINS``) makes room only by
    dropping the first-use pins of the key seen least recently, if that key has not been seen
    for ``PIN_IDLE_EVICT``.  Until then ``full`` is true and nicks that could not be pinned are
    shown flagged (``trust.py``): a full table never means "trust anyone".

    With ``call_soon`` (``reactor.callLater(PINS_SAVE_DELAY, f)``) the file is written once for
    all the pins of a moment (a peer joining a mesh of 50 pins 49 keys in a second); without
    it, at every change.  ``flush`` writes what is pending (the service calls it at exit)."""

    def __init__(self, path: str | None,
                 call_soon: Callable[[Callable[[], None]], object] | None = None,
                 now: Callable[[], float] = time.time, max_pins: int = MAX_PINS) -> None:
        self.path = path
        self.max_pins = max_pins
        self._by_nick: dict[str, Pin] = {}
        #: each key's first-use pins, oldest first
        self._auto: dict[str, list[str]] = {}
        self._call_soon = call_soon
        self._now = now
        self._dirty = False
        #: a pin was refused for want of room (and nothing could be dropped)
        self._refused = False
        #: no first-use pin can be dropped to make room before this time
        self._no_room_until = 0.0
        if path and os.path.exists(path):
            self._read(path)

    def _read(self, path: str) -> None:
        try:
            with open(path, encoding="utf-8") as f:
                data = dict(json.load(f))
        except (OSError, ValueError, TypeError) as e:
            log.error("can't read the pins in {path} ({why}): starting with none",
                      path=path, why=str(e))
            return
        now = self._now()
        entries = []
        for nick, value in data.items():
            if isinstance(value, str):  # the first format: nick -> fingerprint
                entries.append((str(nick), Pin(value, now)))
            elif isinstance(value, dict) and isinstance(value.get("fp"), str):
                seen = value.get("seen")
                seen = float(seen) if isinstance(seen, (int, float)) else now
                pk = value.get("pk")
                pk = pk if isinstance(pk, str) and key_matches(pk, value["fp"]) else ""
                entries.append((str(nick), Pin(value["fp"], seen, value.get("trusted") is True,
                                               pk)))
        entries.sort(key=lambda e: (e[1].seen))
        for nick, pin in entries:
            self._add(nick, pin)
        if len(self._by_nick) < len(entries):
            log.warn("{n} of the pins in {path} were over the limits and are dropped",
                     n=len(entries) - len(self._by_nick), path=path)
            self._save()

    def get(self, nick: str) -> str | None:
        pin = self._by_nick.get(nick)
        return pin.fp if pin is not None else None

    def public_key(self, peer_id: str) -> str | None:
        """The key (base64) of the pinned peer with this peer id, if it was seen since keys
        are kept (a scan: asked once per private line sealed, not per line)."""
        for pin in self._by_nick.values():
            if pin.pk and peer_id_for(pin.fp) == peer_id:
                return pin.pk
        return None

    def is_trusted(self, nick: str) -> bool:
        pin = self._by_nick.get(nick)
        return pin is not None and pin.trusted

    @property
    def full(self) -> bool:
        """True when a nick could not be pinned for want of room, and still can't be."""
        return self._refused and len(self._by_nick) >= self.max_pins

    def pin(self, nick: str, fingerprint: str, trusted: bool = False, pk: str = "") -> bool:
        """Pin ``fingerprint`` for ``nick``; True if it is pinned now.  On first use
        (``trusted`` False) a nick pinned to another key is never taken over; ``trusted`` (the
        user's /trust) replaces it and is never dropped to make room.  ``pk``: the key
        itself, kept only if it is the one the fingerprint is of."""
        pk = pk if pk and key_matches(pk, fingerprint) else ""
        old = self._by_nick.get(nick)
        if old is not None and old.fp == fingerprint:
            if trusted and not old.trusted:
                self._drop(nick)
                self._add(nick, Pin(fingerprint, self._now(), True, pk or old.pk))
                self._save()
            elif pk and not old.pk:
                old.pk = pk
                self._save()
            return True
        if old is not None and not trusted:
            return False
        if old is not None:
            self._drop(nick)
        if not trusted:
            mine = self._auto.get(fingerprint, [])
            while len(mine) >= MAX_PINS_PER_KEY:
                log.info("{key} has {n} nicks pinned: its oldest, {nick}, is dropped",
                         key=short_form(fingerprint), n=len(mine), nick=mine[0])
                self._drop(mine[0])
        if len(self._by_nick) >= self.max_pins and not self._make_room():
            if not self._refused:
                log.warn("{n} pins kept and none can be dropped: {nick} not pinned, and nicks "
                         "not pinned are shown flagged", n=self.max_pins, nick=nick)
            self._refused = True
            return False
        self._add(nick, Pin(fingerprint, self._now(), trusted, pk))
        self._save()
        return True

    def touch(self, nick: str, fingerprint: str, pk: str = "") -> None:
        """The key pinned for ``nick`` was seen using it (so its pins are kept longest); a
        pin made before keys were kept takes the key ``pk`` now (if it is that key)."""
        pin = self._by_nick.get(nick)
        now = self._now()
        if pin is None or pin.fp != fingerprint:
            return
        if pk and not pin.pk and key_matches(pk, fingerprint):
            pin.pk = pk
            self._save()
        if now - pin.seen >= PIN_TOUCH_EVERY:
            pin.seen = now
            self._save()

    def forget(self, nick: str) -> bool:
        if nick not in self._by_nick:
            return False
        self._drop(nick)
        self._save()
        return True

    def __len__(self) -> int:
        return len(self._by_nick)

    def _add(self, nick: str, pin: Pin) -> None:
        """Put a pin in, within the bounds (for loading: the caller checked them)."""
        if nick in self._by_nick:
            self._drop(nick)
        if not pin.trusted:
            mine = self._auto.setdefault(pin.fp, [])
            while len(mine) >= MAX_PINS_PER_KEY:
                self._drop(mine[0])
        if len(self._by_nick) >= self.max_pins:
            return
        self._by_nick[nick] = pin
        if not pin.trusted:
            self._auto.setdefault(pin.fp, []).append(nick)

    def _drop(self, nick: str) -> None:
        pin = self._by_nick.pop(nick)
        mine = self._auto.get(pin.fp)
        if mine is not None and nick in mine:
            mine.remove(nick)
            if not mine:
                del self._auto[pin.fp]

    def _make_room(self) -> bool:
        """Drop the first-use pins of the key seen least recently, if it has not been seen for
        ``PIN_IDLE_EVICT``; False if no key qualifies.  Pins made by /trust are never dropped.
        (A scan of the table, at most once per ``PIN_IDLE_EVICT`` while nothing qualifies.)"""
        now = self._now()
        if now < self._no_room_until:
            return False
        oldest, oldest_seen = None, now
        for fp, nicks in self._auto.items():
            seen = max(self._by_nick[n].seen for n in nicks)
            if seen < oldest_seen:
                oldest, oldest_seen = fp, seen
        if oldest is None or now - oldest_seen < PIN_IDLE_EVICT:
            self._no_room_until = oldest_seen + PIN_IDLE_EVICT
            return False
        log.info("pin table full: the pins of {key}, not seen for {d:.0f} days, are dropped",
                 key=short_form(oldest), d=(now - oldest_seen) / 86400)
        for nick in list(self._auto[oldest]):
            self._drop(nick)
        self._refused = False
        return True

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
        if not self.path:
            return  # a table in memory only (tests, no data dir)
        table = {nick: {"fp": pin.fp, "seen": round(pin.seen, 3), "trusted": pin.trusted,
                        **({"pk": pin.pk} if pin.pk else {})}
                 for nick, pin in self._by_nick.items()}
        data = json.dumps(table, indent=1, sort_keys=True).encode("utf-8")
        try:
            _write_private(self.path, data)
        except OSError as e:
            log.error("can't save the pins in {path}: {why}", path=self.path, why=str(e))
