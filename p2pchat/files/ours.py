"""Our side of file offers: /send (what is sent, to whom, hashed in a thread, offered) and
serving the transfer connections of the peers we offered to (stream.Serving): each request is
checked against the offer (whose, which file, what range, unchanged since it was hashed).

A mixin of ``transfers.Transfers``, apart so that each class stays small."""

from __future__ import annotations

import ipaddress
import os
from typing import IO, TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from p2pchat.files.hashing import Hashed, hash_file
from p2pchat.files.kept import OPEN_OUT, Outgoing, Receiver, view_out
from p2pchat.files.offers import (
    CAP_FILES,
    CAP_FILES_BLAKE3,
    LEAF_BLAKE3,
    LEAF_HASHES,
    LEAF_SHA256,
    MAX_FOLDER_FILES,
    MAX_OFFERS_SENT,
    Offer,
    human_size,
    new_offer_id,
    offer_fits,
)
from p2pchat.files.stream import Served
from p2pchat.interfaces import Done, Outcome, Refused, TransferView
from p2pchat.rooms import room_name

#: Progress events at most this often (seconds) per transfer (both sides).
PROGRESS_EVERY = 1.0

if TYPE_CHECKING:
    from p2pchat.identity import Identity
    from p2pchat.node import Node
    from p2pchat.session import PeerSession

def speaks_files(link: PeerSession) -> bool:
    """A peer of ours that proved its key and takes files."""
    return bool(link.fp) and CAP_FILES in link.wire.caps


def chunk_kind(link: PeerSession) -> str:
    """The chunk hashes a peer of ours takes: BLAKE3 if it announced ``files/2``."""
    return LEAF_BLAKE3 if CAP_FILES_BLAKE3 in link.wire.caps else LEAF_SHA256


def kinds_for(links: list[PeerSession]) -> list[str]:
    """The chunk hashes an offer to ``links`` is hashed with, the offer's own first: BLAKE3
    when any of them takes it, and SHA-256 too when any does not (a room of both kinds: each
    peer is offered its own, hashed in the same read of the file)."""
    wanted = {chunk_kind(lk) for lk in links}
    return [k for k in (LEAF_BLAKE3, LEAF_SHA256) if k in wanted] or [LEAF_SHA256]


def _host(address: str) -> str:
    """The host of a link's address ``host:port`` if it is an IP address ("" if not: a peer
    reached some other way, which we can't dial for files yet)."""
    host = address.rsplit(":", 1)[0].strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return ""
    return host


class OurOffers:
    """The sending side of ``Transfers``."""

    node: Node
    reactor: Any
    port: int
    max_size: int
    outgoing: list[Outgoing]
    in_thread: Any
    serving: set[Served]
    kept: Any

    @property
    def identity(self) -> Identity | None:
        return self.node.identity

    def _line(self, link: PeerSession, op: str, offer: Offer, why: str = "") -> None:
        raise NotImplementedError

    def _number(self) -> int:
        raise NotImplementedError

    def save(self) -> None:
        raise NotImplementedError

    def _emit(self, view: TransferView, what: str) -> None:
        raise NotImplementedError

    def send(self, target: str, path: str) -> Deferred[Outcome]:
        if self.reactor is None or not self.port or self.identity is None:
            return succeed(Refused("file transfer is not running here (no file port)"))
        links = self._targets(target)
        if isinstance(links, Refused):
            return succeed(links)
        if sum(1 for o in self.outgoing if o.state in OPEN_OUT) >= MAX_OFFERS_SENT:
            return succeed(Refused(f"{MAX_OFFERS_SENT} offers of yours are open already"))
        found = _listed(os.path.abspath(os.path.expanduser(path)))
        if isinstance(found, Refused):
            return succeed(found)
        name, folder, files = found
        total = sum(os.path.getsize(p) for p, _ in files)
        if total > self.max_size:  # refused before hashing it all, and again after
            return succeed(_too_big(name, total, self.max_size))
        kinds = kinds_for(links)
        d = self.in_thread(lambda: [hash_file(p, rel, kinds) for p, rel in files])

        def hashed(done: list[Hashed]) -> Outcome:
            return self._offer(target, links, name, folder, [p for p, _ in files], done)

        def failed(f: Failure) -> Outcome:
            return Refused(f"can't read {path}: {f.getErrorMessage()}")

        return d.addCallbacks(hashed, failed)

    def _targets(self, target: str) -> list[PeerSession] | Refused:
        node = self.node
        if target.startswith("#"):
            room, problem = room_name(target)
            if problem:
                return Refused(problem)
            if room not in node.rooms.joined:
                return Refused(f"you are not in #{room}")
            links = [node.links[p] for p in node.chat.members(room) if p in node.links]
            links = [lk for lk in links if speaks_files(lk) and _host(lk.address)]
            return links or Refused(f"nobody linked in #{room} can take files")
        found = node.chat.addressee(target)
        if isinstance(found, Refused):
            return found
        link = node.links.get(found[0])
        if link is None:
            return Refused(f"{found[1]} is not linked now: files go to a linked peer")
        if not speaks_files(link):
            return Refused(f"{found[1]} can't take files (a base peer, or a link without "
                           "encryption)")
        if not _host(link.address):
            return Refused(f"{found[1]} is not on a direct link: it can't be reached for "
                           "files yet")
        return [link]

    def _offer(self, target: str, links: list[PeerSession], name: str, folder: bool,
               sources: list[str], done: list[Hashed]) -> Outcome:
        kinds = list(done[0].leaves) if done else [LEAF_SHA256]
        offer = Offer(new_offer_id(), name, tuple(h.entry for h in done), self.port, folder,
                      target[1:] if target.startswith("#") else "", self.node.clock.seconds(),
                      kinds[0])
        if offer.size > self.max_size:
            return _too_big(name, offer.size, self.max_size)
        if not offer_fits(offer):
            return Refused(f"{name}: its names are too long for one offer line")
        out = Outgoing(self._number(), offer, target if target.startswith("#") else
                       self.node.nick_of(links[0]), sources, [h.mtime for h in done],
                       [h.hashes for h in done],
                       more={k: [h.leaves[k] for h in done] for k in kinds[1:]})
        for link in links:
            if link.peer_id in self.node.links:
                out.receivers[link.peer_id] = Receiver(self.node.nick_of(link), link.fp)
                self.offer_to(link, out)
        self.outgoing.append(out)
        self.kept.save_hashes(out)
        self.save()
        self._emit(view_out(out), "offered")
        return Done(f"offered {name} ({human_size(offer.size)}, sha256 "
                    f"{offer.sha256[:12]}) to {out.label}; /files shows how it goes")

    def offer_to(self, link: PeerSession, out: Outgoing) -> None:
        """The offer line to ``link``, with the chunk hashes it takes (BLAKE3 or SHA-256), or
        if we have none of those (it no longer takes BLAKE3: an older version now), its
        offer failed with that said (offer the file again)."""
        offer = out.offer_of(chunk_kind(link)) or out.offer_of(LEAF_SHA256)
        if offer is not None:
            self._line(link, "offer", offer)
            return
        r = out.receivers.get(link.peer_id)
        if r is not None:
            r.state, r.why = "failed", "it no longer takes BLAKE3 chunk hashes: send it again"

    # --- the sending side (stream.Serving) ----------------------------------------------------

    def fp_known(self, fp: str) -> bool:
        return any(r.fp == fp and r.state in OPEN_OUT | {"failed"}
                   for o in self.outgoing if not o.cancelled for r in o.receivers.values())

    def serve(self, fp: str, request: dict[str, Any]
              ) -> tuple[bytes, None] | tuple[IO[bytes], tuple[int, int]] | str:
        """A receiver's request: the hash list or the bytes it asks for, or why not."""
        out = next((o for o in self.outgoing if o.offer.id == request.get("offer")), None)
        r = next((r for r in out.receivers.values() if r.fp == fp), None) if out else None
        if out is None or r is None or out.cancelled:
            return "no such offer to you"
        if r.state not in OPEN_OUT | {"failed"}:
            return f"that offer is {r.state}"
        i = request.get("entry")
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(out.sources):
            return "no such file in that offer"
        entry = out.offer.entries[i]
        if request.get("what") == "chunks":
            kind = request.get("hash", LEAF_SHA256)
            leaves = out.leaves(kind) if kind in LEAF_HASHES else None
            if leaves is None:
                return f"no {str(kind)[:20]} chunk hashes for that offer"
            return leaves[i], None
        start = request.get("from")
        if not isinstance(start, int) or isinstance(start, bool) or not 0 <= start <= entry.size:
            return "asked from outside the file"
        try:
            f = open(out.sources[i], "rb")
            stat = os.fstat(f.fileno())
        except OSError as e:
            return f"can't read it: {e.strerror}"
        if stat.st_size != entry.size or stat.st_mtime != out.mtimes[i]:
            f.close()
            return "the file changed since it was offered"
        if r.state != "sending":
            r.state = "sending"
            out.mark = (self.node.clock.seconds(), out.sent())
            self._emit(view_out(out), "started")
        return f, (start, entry.size - start)

    def sent(self, fp: str, offer_id: str, entry: int, upto: int) -> None:
        for out in self.outgoing:
            if out.offer.id == offer_id:
                for r in out.receivers.values():
                    if r.fp == fp:
                        r.sent = sum(e.size for e in out.offer.entries[:entry]) + upto
                now = self.node.clock.seconds()
                at, had = out.mark
                if now - at >= PROGRESS_EVERY:
                    out.rate, out.mark = (out.sent() - had) / (now - at), (now, out.sent())
                    self._emit(view_out(out), "progress")
                return

    def unserved(self, fp: str, offer_id: str) -> None:
        """A receiver's connection closed mid-file: it waits (it resumes when it dials)."""
        for out in self.outgoing:
            if out.offer.id == offer_id:
                for r in out.receivers.values():
                    if r.fp == fp and r.state == "sending":
                        r.state = "accepted"
                        out.rate = 0.0
                        self._emit(view_out(out), "paused")
                return

    def _cut_serving(self, fp: str) -> None:
        for served in list(self.serving):
            if served.fp == fp and served.sending:
                served.cut("cancelled")


def _too_big(name: str, size: int, limit: int) -> Refused:
    return Refused(f"{name} is {human_size(size)}: over the limit of {human_size(limit)} "
                   "(--max-file-size)")


def _listed(path: str) -> tuple[str, bool, list[tuple[str, str]]] | Refused:
    """What /send PATH sends: (name, folder?, [(file, path in the offer)]), or why not.  A
    folder's regular files, its tree kept, symbolic links left out."""
    if os.path.isfile(path):
        return os.path.basename(path), False, [(path, os.path.basename(path))]
    if not os.path.isdir(path):
        return Refused(f"no file or folder {path}")
    files: list[tuple[str, str]] = []
    for top, dirs, names in os.walk(path):
        dirs.sort()
        for name in sorted(names):
            full = os.path.join(top, name)
            if os.path.isfile(full) and not os.path.islink(full):
                files.append((full, os.path.relpath(full, path).replace(os.sep, "/")))
            if len(files) > MAX_FOLDER_FILES:
                return Refused(f"{path} holds over {MAX_FOLDER_FILES} files: send an archive")
    if not files:
        return Refused(f"{path} holds no files")
    return os.path.basename(path.rstrip(os.sep)) or "folder", True, files

