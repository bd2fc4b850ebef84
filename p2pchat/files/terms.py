"""The words of file transfers that a peer needs before any file comes or goes: the caps
and the line type it announces and dispatches on, the files it keeps them in, the
``--max-file-size`` default and parser, and how sizes and hashes are shown.  The rest of
offers.py (the offers themselves, their limits and names) comes with the first file line or
transfer (files/later.py), so a peer alone does without it (tests/test_latetls.py,
LATE_MODULES).  offers.py re-exports these.  Pure."""

from __future__ import annotations

#: ``files/1``: takes ``file`` lines (offers and their answers) and transfer connections.
#: Only peers that proved their key (a TLS link) get one: never a base peer.
CAP_FILES = "files/1"
#: The folder in the data dir where the transfers are kept (kept.py), and their file in it:
#: where an earlier run left transfers, they are made at start (later.py).
FILES_DIR = "files"
KEPT_NAME = "transfers.json"
#: The line type; ``metadata.op`` says which: offer, accept, reject, cancel, done, failed.
FILE = "file"
#: ``files/2`` (announced with ``files/1``): takes offers whose chunk hashes are BLAKE3 (a
#: third of SHA-256's CPU, which was the largest part of a receiver's); the whole file's
#: hash stays SHA-256.  A peer without it is offered SHA-256 chunk hashes, as before.
CAP_FILES_BLAKE3 = "files/2"

#: The default of --max-file-size: offers larger than this (all entries) are refused.
MAX_FILE_SIZE = 4 << 30


def short_hash(sha: str) -> str:
    return sha[:12]


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str, option: str = "--max-file-size") -> int:
    """``4G``, ``500M``, ``64k`` or a number of bytes (binary units); ValueError says why."""
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    unit = t[-1:] if t[-1:] in _UNITS and t[-1:] else ""
    number = t[:-1] if unit else t
    try:
        value = float(number) * _UNITS[unit]
    except ValueError:
        raise ValueError(f"{option} must be a size such as 4G, 500M or 1048576, "
                         f"not {text!r}") from None
    if not 0 < value <= 1 << 50:
        raise ValueError(f"{option} must be more than 0 and at most 1P, not {text}")
    return int(value)
