"""One signature for a run of lines said at once (a paste, a script's burst), instead of one
per line: cap ``runsig/1`` (PROTOCOL.md Part 2, additive and negotiated).

Signing a line costs about 20 us here, nearly half of what saying it costs.  A run of up to
RUN_MAX_LINES lines of one room is signed once, over the root of a Merkle tree whose leaves
are the lines' signed payloads (relay.line_payload), and each line carries what a checker
needs to check it ALONE (a relayed line travels alone, and one of a run may be missed): the
run's signature in ``sig``, its place ``run: [index, count]`` and its Merkle path ``path``
(base64 of up to MAX_PATH_NODES nodes of NODE_BYTES).  The tree is RFC 9162's (a lone last
node goes up as it is), with its domain separation: a leaf is H(0x00 || payload), a node
H(0x01 || left || right).  The signature is over RUN_DOMAIN, the count and the root, which no
line payload (a JSON array, ``[``...) can ever be, so a run signature is never taken for a
line's, nor the other way round.

The nodes are truncated to 128 bits.  What protects a line against a relaying peer (who has
the genuine run, but not the author's key) is second-preimage resistance: to slip a line of
its own into a genuine run it must find a payload whose leaf (or a subtree) hashes to a node
the author's tree already holds: 2^128 work for BLAKE2b-128.  Collisions (2^64) would only
help the author, who can sign whatever it likes anyway.

Only our peers that announce the cap ever see a run-signed line: the sender signs per line
(as before, byte for byte) when any link that gets the run lacks it, a link that lacks it and
is written from the sent log later gets the line signed anew per line (sending.py), and a
run-signed line is never handed on (catch-up, forwarding) to a peer that lacks it.  Pure code.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
from typing import Any

from nacl.exceptions import BadSignatureError

from p2pchat import latesodium
from p2pchat.wire import WireError

CAP_RUNSIG = "runsig/1"
#: At most this many lines share one signature (so a line's path stays at most
#: MAX_PATH_NODES nodes: 64 bytes, 88 characters of base64).
RUN_MAX_LINES = 16
#: A Merkle node: BLAKE2b truncated to 128 bits (second-preimage resistance is what counts).
NODE_BYTES = 16
#: The longest path a run of RUN_MAX_LINES lines needs (ceil(log2(RUN_MAX_LINES))).
MAX_PATH_NODES = (RUN_MAX_LINES - 1).bit_length()
#: What a run signature is over: this, the count (one byte) and the root.
RUN_DOMAIN = b"p2pchat run/1\n"
#: Run signatures found good (or bad) kept, so a run's lines cost one check, not one each.
RUNS_CHECKED_KEPT = 1024
_LEAF, _NODE = b"\x00", b"\x01"


_blake2b = hashlib.blake2b


#: The leaf's and the node's hash with their domain byte already in: a copy of one is a third
#: cheaper than a new hash, and spares the copy of the bytes the domain byte is put before.
_LEAF_HASH = _blake2b(_LEAF, digest_size=NODE_BYTES)
_NODE_HASH = _blake2b(_NODE, digest_size=NODE_BYTES)


def leaf(payload: bytes) -> bytes:
    """H(0x00 || payload)."""
    h = _LEAF_HASH.copy()
    h.update(payload)
    return h.digest()


def _node(left: bytes, right: bytes) -> bytes:
    """H(0x01 || left || right)."""
    h = _NODE_HASH.copy()
    h.update(left + right)
    return h.digest()


def _tree(leaves: list[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """The root of ``leaves`` (RFC 9162's MTH) and each leaf's path, nearest node first.
    Built bottom up, pairing nodes and carrying a lone last one up as it is: the same tree as
    the RFC's split at the largest power of two (tests/test_runsig.py checks every path with
    the RFC's inclusion check), in a third of the recursive build's time."""
    paths: list[list[bytes]] = [[] for _ in leaves]
    level, under = leaves, [[i] for i in range(len(leaves))]
    while len(level) > 1:
        up, up_under = [], []
        for j in range(0, len(level) - 1, 2):
            left, right = level[j], level[j + 1]
            for i in under[j]:
                paths[i].append(right)
            for i in under[j + 1]:
                paths[i].append(left)
            up.append(_node(left, right))
            up_under.append(under[j] + under[j + 1])
        if len(level) & 1:
            up.append(level[-1])
            up_under.append(under[-1])
        level, under = up, up_under
    return level[0], paths


def run_message(count: int, root: bytes) -> bytes:
    """What the author signs for a run of ``count`` lines with that root."""
    return RUN_DOMAIN + bytes([count]) + root


def sign_run(sign: Any, payloads: list[bytes]) -> list[dict[str, Any]]:
    """Each line's metadata (its run's signature, its place, its path) for a run of 2 to
    RUN_MAX_LINES payloads; ``sign``: Identity.sign (bytes to base64)."""
    signature, paths = signed_paths(sign, payloads)
    count = len(paths)
    return [{"sig": signature, "run": [index, count], "path": path}
            for index, path in enumerate(paths)]


def signed_paths(sign: Any, payloads: list[bytes]) -> tuple[str, list[str]]:
    """A run's signature and each line's path (base64), for a run of 2 to RUN_MAX_LINES
    payloads (``sign_run``'s parts, for saying.py, which writes their metadata itself)."""
    count = len(payloads)
    if not 2 <= count <= RUN_MAX_LINES:
        raise ValueError(f"a run is 2 to {RUN_MAX_LINES} lines, not {count}")
    root, paths = _tree([leaf(p) for p in payloads])
    b64 = base64.b64encode
    return sign(run_message(count, root)), [b64(b"".join(path)).decode("ascii") for path in paths]


def is_run(meta: dict[str, Any] | None) -> bool:
    """Whether a line's metadata is of the run form."""
    return meta is not None and "run" in meta


def is_run_raw(raw: bytes) -> bool:
    """The same, of a line's bytes (a quote inside any text is written escaped, so only a
    metadata key reads so)."""
    return b'"run":[' in raw


def root_of(payload: bytes, index: int, count: int, path: list[bytes]) -> bytes:
    """The root a line's payload, place and path lead to (RFC 9162's inclusion check); a
    WireError if the path does not fit the place."""
    fn, sn, node = index, count - 1, leaf(payload)
    for sibling in path:
        if sn == 0:
            raise WireError("its run path is longer than its place needs")
        if fn & 1 or fn == sn:
            node = _node(sibling, node)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            node = _node(node, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise WireError("its run path is shorter than its place needs")
    return node


def place_of(meta: dict[str, Any]) -> tuple[int, int, list[bytes]]:
    """A run-signed line's index, count and path, checked against the limits; WireError
    says what is wrong."""
    place, text = meta.get("run"), meta.get("path")
    # (a tuple: one of our own lines as the sent log keeps it, saying.py; JSON gives lists)
    if not (isinstance(place, (list, tuple)) and len(place) == 2
            and all(n.__class__ is int for n in place)):
        raise WireError("its run place is not [index, count]")
    index, count = place
    if not 2 <= count <= RUN_MAX_LINES:
        raise WireError(f"its run is not of 2 to {RUN_MAX_LINES} lines")
    if not 0 <= index < count:
        raise WireError("its run index is outside its run")
    if not isinstance(text, str):
        raise WireError("its run path is missing")
    if len(text) > (MAX_PATH_NODES * NODE_BYTES + 2) // 3 * 4:
        raise WireError(f"its run path is longer than {MAX_PATH_NODES} nodes")
    try:
        nodes = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise WireError("its run path is not base64") from None
    if len(nodes) % NODE_BYTES:
        raise WireError("its run path is not whole nodes")
    return index, count, [nodes[i:i + NODE_BYTES] for i in range(0, len(nodes), NODE_BYTES)]


def verify(key: bytes, signature: bytes, payload: bytes) -> bool:
    """Whether ``signature`` is ``key``'s over ``payload``: by libsodium (PyNaCl), in about
    half the time of OpenSSL's (``cryptography``) here, which a day of catch-up pays 100,000
    times.  (libsodium is the stricter: it refuses non-canonical signatures, which no
    author of ours makes.  Loaded at the first check: latesodium.py.)"""
    if len(signature) != 64:
        return False
    try:
        latesodium.sign_open(signature + payload, key)
    except BadSignatureError:
        return False
    return True


@functools.lru_cache(maxsize=RUNS_CHECKED_KEPT)
def _run_signed(key: bytes, signature: bytes, message: bytes) -> bool:
    """``verify`` of a run's ``message``: checked once per run (the other lines of the run
    find it here)."""
    return verify(key, signature, message)


def check_run(key: bytes, signature: bytes, payload: bytes, meta: dict[str, Any]) -> None:
    """Whether a run-signed line's ``payload`` is its author's (``key``): its path leads to
    a root its author signed; WireError says why not."""
    index, count, path = place_of(meta)
    root = root_of(payload, index, count, path)
    if not _run_signed(key, signature, run_message(count, root)):
        raise WireError("its author's run signature does not match")
