"""What is kept of transfers: the offers to us and ours, as records, saved in the data dir
(``files/transfers.json``, and our chunk-hash lists beside it) so that both survive a restart
of either side; and each record as the row a face shows (``interfaces.TransferView``)."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from p2pchat import datadir
from p2pchat.files.offers import (  # noqa: F401 (FILES_DIR, KEPT_NAME: their old home)
    FILES_DIR,
    KEPT_NAME,
    LEAF_HASHES,
    LEAF_SHA256,
    Offer,
    OfferError,
    chunk_root,
    offer_metadata,
    parse_offer,
)
from p2pchat.interfaces import TransferView

if TYPE_CHECKING:
    from p2pchat.files.receive import Receive

log = Logger()

#: States of an offer to us, and of each receiver of ours, that are still open (they count
#: against the bounds and are taken up again after a restart).
OPEN_IN = frozenset({"offered", "accepted", "receiving", "paused"})
OPEN_OUT = frozenset({"offered", "accepted", "sending"})


@dataclass
class Incoming:
    """An offer to us: from whom (its chat link's key ``fp`` and ``host``, where its file port
    is), where its files go (``finals``) and their ``.part`` files while they come."""

    number: int
    offer: Offer
    peer_id: str
    nick: str
    fp: str
    host: str
    state: str = "offered"
    made: float = 0.0  # when it came (its age counts from here, our clock)
    finals: list[str] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    entry_done: list[bool] = field(default_factory=list)
    why: str = ""
    dest: str = ""  # the file, or the folder, it lands in
    # not kept: the running receive, how much is had, the rate
    job: Receive | None = None
    have: int = 0
    rate: float = 0.0
    mark: tuple[float, int] = (0.0, 0)
    retries: int = 0
    started: bool = False  # "started" told for this connection (after the partial's check)

    def had(self) -> int:
        """Bytes had: the files done, and the current one so far."""
        done = sum(e.size for e, ok in zip(self.offer.entries, self.entry_done) if ok)
        if self.job is not None and self.job.entry >= 0 and not self.entry_done[self.job.entry]:
            done += self.job.written
        return done


@dataclass
class Receiver:
    """One peer an offer of ours went to."""

    nick: str
    fp: str
    state: str = "offered"
    sent: int = 0
    why: str = ""


@dataclass
class Outgoing:
    """An offer of ours: the files it sends (``sources``, their mtimes when hashed, their
    chunk hashes: ``hashes`` of the offer's kind, ``more`` of another kind, for a room's
    peers that don't take it) and to whom."""

    number: int
    offer: Offer
    label: str  # "bob" or "#room"
    sources: list[str]
    mtimes: list[float]
    hashes: list[bytes]
    receivers: dict[str, Receiver] = field(default_factory=dict)
    cancelled: bool = False
    rate: float = 0.0
    mark: tuple[float, int] = (0.0, 0)
    more: dict[str, list[bytes]] = field(default_factory=dict)

    def leaves(self, kind: str) -> list[bytes] | None:
        """The chunk hashes of ``kind`` of each file, or None if we have none of that kind."""
        return self.hashes if kind == self.offer.chunks else self.more.get(kind)

    def offer_of(self, kind: str) -> Offer | None:
        """The offer as said to a peer that takes chunk hashes of ``kind``: its roots of
        those (same id, files and whole-file SHA-256s), or None if we have none of them."""
        if kind == self.offer.chunks:
            return self.offer
        blobs = self.more.get(kind)
        if blobs is None:
            return None
        entries = tuple(replace(e, root=chunk_root(b))
                        for e, b in zip(self.offer.entries, blobs))
        return replace(self.offer, entries=entries, chunks=kind)

    @property
    def state(self) -> str:
        states = [r.state for r in self.receivers.values()]
        if self.cancelled:
            return "cancelled"
        for s in ("sending", "accepted", "offered", "done", "failed", "rejected"):
            if s in states:
                return s
        return "cancelled"

    def sent(self) -> int:
        return max((r.sent for r in self.receivers.values()), default=0)


def view_in(inc: Incoming) -> TransferView:
    return TransferView(inc.number, True, inc.nick, inc.offer.name, inc.offer.size, inc.had(),
                        inc.offer.sha256, inc.state, len(inc.offer.entries),
                        inc.rate if inc.state == "receiving" else 0.0, inc.why, inc.dest)


def view_out(out: Outgoing) -> TransferView:
    why = "; ".join(f"{r.nick}: {r.why}" for r in out.receivers.values() if r.why)
    return TransferView(out.number, False, out.label, out.offer.name, out.offer.size,
                        out.sent(), out.offer.sha256, out.state, len(out.offer.entries),
                        out.rate if out.state == "sending" else 0.0, why)


# --- on disk -----------------------------------------------------------------------------------


def _offer_in(obj: Any) -> Offer:
    return parse_offer(obj, max_size=1 << 62)


def dump(incoming: list[Incoming], outgoing: list[Outgoing], next_number: int
         ) -> dict[str, Any]:
    return {
        "next": next_number,
        "in": [{"number": i.number, "offer": offer_metadata(i.offer), "peer_id": i.peer_id,
                "nick": i.nick, "fp": i.fp, "host": i.host,
                "state": "paused" if i.state == "receiving" else i.state, "made": i.made,
                "finals": i.finals, "parts": i.parts, "done": i.entry_done, "why": i.why,
                "dest": i.dest} for i in incoming],
        "out": [{"number": o.number, "offer": offer_metadata(o.offer), "label": o.label,
                 "sources": o.sources, "mtimes": o.mtimes, "cancelled": o.cancelled,
                 "more": sorted(o.more),
                 "receivers": {pid: {"nick": r.nick, "fp": r.fp, "state":
                                     "accepted" if r.state == "sending" else r.state,
                                     "sent": r.sent, "why": r.why}
                               for pid, r in o.receivers.items()}} for o in outgoing],
    }


class Kept:
    """The transfers file and the hash lists of our offers, in ``data_dir/files``."""

    def __init__(self, data_dir: str | None) -> None:
        self.folder = os.path.join(data_dir, FILES_DIR) if data_dir else None
        self._lock = threading.Lock()
        self._written = 0  # the newest state written

    def _hashes_path(self, offer_id: str, i: int, kind: str = LEAF_SHA256) -> str:
        """``ID-I.hashes`` (SHA-256 chunk hashes, as ``files/1`` kept them), ``ID-I.blake3``."""
        assert self.folder is not None
        ext = "hashes" if kind == LEAF_SHA256 else kind
        return os.path.join(self.folder, f"{offer_id}-{i}.{ext}")

    def save(self, state: dict[str, Any], seq: int = 0) -> None:
        """Write the state (in a thread, or at stop in the reactor: one at a time, and never
        an older state, numbered ``seq``, over a newer one)."""
        if self.folder is None:
            return
        with self._lock:
            if seq and seq <= self._written:
                return
            self._write(state)
            self._written = max(self._written, seq)

    def _write(self, state: dict[str, Any]) -> None:
        assert self.folder is not None
        path = os.path.join(self.folder, KEPT_NAME)
        try:
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            with os.fdopen(datadir.open_private(path + ".new"), "w") as f:
                f.truncate()
                json.dump(state, f)
            os.replace(path + ".new", path)
        except OSError as e:
            log.warn("can't save the transfers to {path}: {why}", path=path, why=e.strerror)

    def save_hashes(self, out: Outgoing) -> None:
        if self.folder is None:
            return
        try:
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            for kind, blobs in [(out.offer.chunks, out.hashes), *out.more.items()]:
                for i, blob in enumerate(blobs):
                    with os.fdopen(datadir.open_private(
                            self._hashes_path(out.offer.id, i, kind)), "wb") as f:
                        f.truncate()
                        f.write(blob)
        except OSError as e:
            log.warn("can't save the hashes of {name}: {why}", name=out.offer.name,
                     why=e.strerror)

    def drop_hashes(self, out: Outgoing) -> None:
        if self.folder is None:
            return
        for kind in LEAF_HASHES:
            for i in range(len(out.offer.entries)):
                try:
                    os.unlink(self._hashes_path(out.offer.id, i, kind))
                except OSError:
                    pass

    def load(self) -> tuple[list[Incoming], list[Outgoing], int]:
        """What was kept; a damaged file is logged and left (renamed ``.bad``)."""
        if self.folder is None:
            return [], [], 1
        path = os.path.join(self.folder, KEPT_NAME)
        try:
            with open(path, encoding="utf-8") as f:
                state = json.load(f)
            return self._read(state)
        except FileNotFoundError:
            return [], [], 1
        except (OSError, ValueError, KeyError, TypeError, OfferError) as e:
            log.warn("the transfers file {path} can't be read ({why}): set aside as .bad",
                     path=path, why=str(e))
            try:
                os.replace(path, path + ".bad")
            except OSError:
                pass
            return [], [], 1

    def _read(self, state: dict[str, Any]) -> tuple[list[Incoming], list[Outgoing], int]:
        incoming = [Incoming(int(i["number"]), _offer_in(i["offer"]), str(i["peer_id"]),
                             str(i["nick"]), str(i["fp"]), str(i["host"]), str(i["state"]),
                             float(i["made"]), list(i["finals"]), list(i["parts"]),
                             [bool(x) for x in i["done"]], str(i["why"]), str(i["dest"]))
                    for i in state["in"]]
        outgoing = []
        for o in state["out"]:
            offer = _offer_in(o["offer"])
            hashes = self._read_hashes(offer, offer.chunks)
            more = {kind: self._read_hashes(offer, kind) for kind in o.get("more", [])
                    if kind in LEAF_HASHES and kind != offer.chunks}
            receivers = {pid: Receiver(str(r["nick"]), str(r["fp"]), str(r["state"]),
                                       int(r["sent"]), str(r["why"]))
                         for pid, r in o["receivers"].items()}
            outgoing.append(Outgoing(int(o["number"]), offer, str(o["label"]),
                                     list(o["sources"]), [float(m) for m in o["mtimes"]],
                                     hashes, receivers, bool(o["cancelled"]), more=more))
        return incoming, outgoing, int(state["next"])

    def _read_hashes(self, offer: Offer, kind: str) -> list[bytes]:
        hashes = []
        for n in range(len(offer.entries)):
            try:
                with open(self._hashes_path(offer.id, n, kind), "rb") as f:
                    hashes.append(f.read())
            except OSError:
                hashes.append(b"")  # served as a wrong list: the receiver refuses it
        return hashes
