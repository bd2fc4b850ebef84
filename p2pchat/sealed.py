"""Private lines sealed for an absent recipient, carried by others (README "Sealed private
lines, carried by others").  Pure code: plain values in, plain values out.

On the wire an item is one line of type ``sealed`` (sent only to peers that announced
``sealed/1``, which a peer with a key does), its fields in ``metadata``: ``kind`` ("line" or
"receipt"), ``id``, ``to``, ``from`` (the author's peer id), ``pk`` (the author's Ed25519 key,
base64), ``ts`` (seconds), ``body`` (the ciphertext, base64; for a receipt the id of the item
it answers) and ``sig`` (the author's signature over all of them, ``Item.payload``).  The
line's own ``sender_id`` is the peer that hands it on: who wrote an item and who handed it to
us are never confused.

A private line to a peer that is not linked now is kept in our sent log (absent.py) and, when
we know the peer's key, also *sealed*: the author's whole signed line, encrypted to the
recipient with libsodium's sealed box (X25519 from her Ed25519 key, through PyNaCl), in an
*item* that carries the item id, the recipient's and the author's peer ids, the author's
public key, the time and the ciphertext, all signed by the author.  Any peer of ours may
carry items for others (carrier.py): it can check who wrote one and to whom, but it can
neither read nor alter it.  The recipient opens it, checks both signatures (the item's, and
the line's own inside it), shows it once, and answers with a *receipt*: a small item of the
same shape addressed to the author, whose body is the id of the item it answers; carriers
that see the receipt drop the item and carry the receipt back.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from nacl.exceptions import CryptoError

from p2pchat.identity import Identity, peer_id_for, spki_fingerprint
from p2pchat.relay import raw_payload
from p2pchat.sealterms import CAP_SEALED, SEALED  # noqa: F401 (re-exported)
from p2pchat.wire import (MAX_ID_CHARS, PRIVATE, Message, WireError, new_message_id,
                          parse_message)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from nacl.public import PrivateKey

#: The two kinds of item: a sealed private line, and the receipt for one.
LINE = "line"
RECEIPT = "receipt"
#: Most characters of an item's body (a sealed line's ciphertext, base64): a private line is
#: at most MAX_SAY_BYTES of text, so this is room enough, and an item stays well under a line.
MAX_BODY_CHARS = 24 * 1024
#: An item dated more than this many seconds ahead of our clock is refused.
MAX_SKEW = 300.0
_KEY_CHARS = 44  # an Ed25519 public key, base64
_SIG_CHARS = 88  # an Ed25519 signature, base64


@dataclass(frozen=True)
class Item:
    """One sealed line or receipt, as it travels and as carriers hold it."""

    kind: str
    id: str
    to: str
    author: str
    pk: str
    ts: float
    body: str
    sig: str = ""

    def payload(self) -> bytes:
        """What the author signs: every field of the item."""
        return json.dumps([SEALED, self.kind, self.id, self.to, self.author, self.pk, self.ts,
                           self.body], separators=(",", ":")).encode("utf-8")

    def metadata(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "to": self.to, "from": self.author,
                "pk": self.pk, "ts": self.ts, "body": self.body, "sig": self.sig}

    @property
    def size(self) -> int:
        """Roughly the bytes it takes (what carriers count against their byte quota)."""
        return len(self.body) + 256


def _text(meta: dict[str, Any], name: str, most: int) -> str:
    value = meta.get(name)
    if not isinstance(value, str) or not value or len(value) > most:
        raise WireError(f"a sealed item's '{name}' is missing or too long")
    return value


def parse_item(meta: dict[str, Any] | None) -> Item:
    """A ``sealed`` line's metadata to an Item (its signature not checked yet: ``verify``)."""
    meta = meta or {}
    kind = meta.get("kind")
    if kind not in (LINE, RECEIPT):
        raise WireError("a sealed item is neither a line nor a receipt")
    ts = meta.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
        raise WireError("a sealed item's 'ts' is not a time")
    body_most = MAX_BODY_CHARS if kind == LINE else MAX_ID_CHARS
    return Item(str(kind), _text(meta, "id", MAX_ID_CHARS), _text(meta, "to", MAX_ID_CHARS),
                _text(meta, "from", MAX_ID_CHARS), _text(meta, "pk", _KEY_CHARS), float(ts),
                _text(meta, "body", body_most), _text(meta, "sig", _SIG_CHARS))


def _public_key(pk: str) -> ed25519.Ed25519PublicKey:
    """The key ``pk`` (base64) as ``cryptography`` takes it (imported at the first sealed item,
    not at start: latetls.py)."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    try:
        return ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(pk, validate=True))
    except (ValueError, TypeError, binascii.Error):
        raise WireError("not an Ed25519 public key") from None


def key_gives(pk: str, peer_id: str) -> bool:
    """Whether the public key ``pk`` (base64) is the one ``peer_id`` is derived from."""
    try:
        return peer_id_for(spki_fingerprint(_public_key(pk))) == peer_id
    except WireError:
        return False


def verify(item: Item) -> str:
    """Check an item's signature against its author's key (the one its author's peer id
    comes from); returns the author's fingerprint, or WireError says why not."""
    key = _public_key(item.pk)
    fp = spki_fingerprint(key)
    if peer_id_for(fp) != item.author:
        raise WireError("the key given is not its author's")
    try:
        key.verify(base64.b64decode(item.sig, validate=True), item.payload())
    except (_invalid_signature(), ValueError, binascii.Error):
        raise WireError("its author's signature does not match") from None
    return fp


def _invalid_signature() -> type[Exception]:
    """``cryptography``'s bad-signature error (imported where a check failed, not at start)."""
    from cryptography.exceptions import InvalidSignature

    return InvalidSignature


def check_time(item: Item, now: float, max_age: float) -> None:
    """WireError when an item is too old to carry or show, or dated in the future."""
    if item.ts > now + MAX_SKEW:
        raise WireError("it is dated in the future")
    if now - item.ts > max_age:
        raise WireError("it is older than sealed lines are kept")


def _signed(identity: Identity, kind: str, to: str, body: str, now: float) -> Item:
    item = Item(kind, new_message_id(), to, identity.peer_id, identity.public_key_b64(),
                round(now, 3), body)
    return replace(item, sig=identity.sign(item.payload()))


class Sealer:
    """Sealing to others and opening what was sealed to us, with our identity (its X25519
    key, converted from our Ed25519 one, made once)."""

    def __init__(self, identity: Identity) -> None:
        # (PyNaCl's boxes imported here: a Sealer is made with the node's sealing, at its
        # first link, firstuse.py)
        from nacl.signing import SigningKey

        self.identity = identity
        self._box_key: PrivateKey = SigningKey(identity.seed).to_curve25519_private_key()

    def seal(self, line: bytes, to: str, to_pk: str, now: float) -> Item:
        """Our signed private line ``line`` (its bytes as sent) sealed for the peer ``to``,
        whose Ed25519 key is ``to_pk``; WireError if that key is not the one ``to`` comes
        from (a line is never sealed to the wrong key)."""
        if not key_gives(to_pk, to):
            raise WireError("the key is not the recipient's")
        from nacl.public import SealedBox
        from nacl.signing import VerifyKey

        box_to = VerifyKey(base64.b64decode(to_pk)).to_curve25519_public_key()
        body = base64.b64encode(SealedBox(box_to).encrypt(line)).decode("ascii")
        if len(body) > MAX_BODY_CHARS:
            raise WireError("the line is too long to seal")
        return _signed(self.identity, LINE, to, body, now)

    def receipt(self, item: Item, now: float) -> Item:
        """Our signed receipt for ``item``, addressed to its author."""
        return _signed(self.identity, RECEIPT, item.author, item.id, now)

    def open(self, item: Item) -> tuple[Message, bytes]:
        """A sealed line to us (its item's signature checked already) to the private line
        inside and its bytes; WireError when it can't be opened or the line is not the
        item author's own signed private line to us."""
        if item.kind != LINE or item.to != self.identity.peer_id:
            raise WireError("it is not a sealed line to us")
        from nacl.public import SealedBox

        try:
            raw = SealedBox(self._box_key).decrypt(base64.b64decode(item.body, validate=True))
        except (CryptoError, ValueError, binascii.Error):
            raise WireError("it can't be opened with our key") from None
        msg = parse_message(raw)
        if msg.type != PRIVATE or msg.sender_id != item.author:
            raise WireError("the line inside is not a private line of its author")
        if (msg.metadata or {}).get("to") != self.identity.peer_id:
            raise WireError("the line inside is not to us")
        try:
            signature = base64.b64decode(str((msg.metadata or {}).get("sig", "")),
                                         validate=True)
            _public_key(item.pk).verify(signature, raw_payload(json.loads(raw)))
        except (_invalid_signature(), ValueError, binascii.Error):
            raise WireError("the line inside is not signed by its author") from None
        return msg, raw
