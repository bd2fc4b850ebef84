"""File transfers, as the node's collaborator (``node.files``, an ``interfaces.IFiles``).

The offer and its answers are ``file`` lines (offers.FILE) between our peers over their chat
links, only to peers that announced ``files/1`` and proved their key (never to a base peer).
The bytes go over a transfer connection of their own (stream.py): the receiver dials the
offerer's file port, with the chat's identities, each side checking the other's key against
the one its chat link proved, so a transfer never waits behind chat lines nor delays them.

Resume: an offer's state and the ``.part`` files are kept (kept.py); when a link comes up
the offerer sends its open offers again (with its file port of this run), and a receiver
that had accepted one dials and asks for what it lacks.  A transfer connection that drops
while the link stays is redialed a few times (RETRY_DELAYS).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from typing import TYPE_CHECKING, Any, Callable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThread
from twisted.logger import Logger, LogLevel

from p2pchat import events
from p2pchat.clocks import log_limited
from p2pchat.files.kept import (
    OPEN_IN,
    OPEN_OUT,
    Incoming,
    Kept,
    Outgoing,
    Receiver,
    dump,
    view_in,
    view_out,
)
from p2pchat.files.offers import (
    FILE,
    FREE_SPACE_MARGIN,
    MAX_FILE_SIZE,
    OPS,
    Offer,
    OfferError,
    expired,
    human_size,
    offer_metadata,
    parse_offer,
    refusal,
    safe_name,
    safe_parts,
    unique_name,
)
from p2pchat.files.describe import YOU_CANCELLED, YOU_REJECTED, event_text
from p2pchat.files.receive import Receive
from p2pchat.files.stream import Served
from p2pchat.files.ours import PROGRESS_EVERY, OurOffers, _host, speaks_files
from p2pchat.interfaces import Done, Outcome, Refused, TransferView
from p2pchat.wire import printable

if TYPE_CHECKING:
    from p2pchat.node import Node
    from p2pchat.session import PeerSession

log = Logger()

#: A transfer connection that dropped (the link still up) is dialed again after these
#: delays (seconds); after the last, it waits for the link to come back.
RETRY_DELAYS = (2.0, 5.0, 10.0, 30.0)


class Transfers(OurOffers):
    """The offers to us and ours, and the transfers running."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.download_dir = ""
        self.max_size = MAX_FILE_SIZE
        self.rate = 0.0  # --file-rate
        self.reactor: Any = None
        self.interface: str | None = None
        self.port = 0  # our file port, once listening
        self.kept = Kept(None)
        self.incoming: list[Incoming] = []
        self.outgoing: list[Outgoing] = []
        self.next_number = 1
        self.in_thread: Callable[..., Deferred[Any]] = deferToThread
        #: our transfer connections that send (stream.Served), each in its thread
        self.serving: set[Served] = set()
        #: peers told "offers refused" (the bounds) since their last offer taken
        self.told_full: set[str] = set()
        #: saves: in a thread once the service runs (port.py), one after the other
        self.save_in_thread = False
        self._saves = 0
        self._writes: Deferred[Any] = succeed(None)

    def configure(self, download_dir: str, data_dir: str | None, max_size: int, reactor: Any,
                  interface: str | None, rate: float = 0.0) -> None:
        """Where files land, where the state is kept, the size limit, how fast we send, and
        how to dial."""
        self.download_dir, self.max_size, self.rate = download_dir, max_size, rate
        self.reactor, self.interface = reactor, interface
        self.kept = Kept(data_dir)
        self.incoming, self.outgoing, self.next_number = self.kept.load()
        self._expire()

    # --- the verbs (IFiles) -------------------------------------------------------------------

    def transfers(self) -> list[TransferView]:
        self._expire()
        rows = [view_in(i) for i in self.incoming] + [view_out(o) for o in self.outgoing]
        return sorted(rows, key=lambda v: v.number)

    def accept(self, number: int | None) -> Outcome:
        inc = self._pick(number, ("offered", "failed", "paused"))
        if isinstance(inc, Refused):
            return inc
        need = inc.offer.size - inc.had()
        try:
            os.makedirs(self.download_dir, exist_ok=True)
            free = shutil.disk_usage(self.download_dir).free
        except OSError as e:
            return Refused(f"can't use the download dir {self.download_dir}: {e.strerror}")
        if free < need + FREE_SPACE_MARGIN:
            return Refused(f"not enough free space in {self.download_dir}: "
                           f"{human_size(need)} needed, {human_size(free)} free")
        if not inc.finals:
            self._place(inc)
        inc.state, inc.why, inc.retries = "accepted", "", 0
        link = self.node.links.get(inc.peer_id)
        if link is not None:
            self._line(link, "accept", inc.offer)
        self.save()
        self._emit(view_in(inc), "accepted")
        self._fetch(inc)
        return Done(f"accepted [{inc.number}] {inc.offer.name}: it goes to {inc.dest}")

    def reject(self, number: int | None) -> Outcome:
        inc = self._pick(number, ("offered",))
        if isinstance(inc, Refused):
            return inc
        self._close_in(inc, "rejected", YOU_REJECTED, "reject")
        return Done(f"rejected [{inc.number}] {inc.offer.name}")

    def cancel(self, number: int) -> Outcome:
        for inc in self.incoming:
            if inc.number == number and inc.state in OPEN_IN | {"failed"}:
                self._close_in(inc, "cancelled", YOU_CANCELLED, "cancel")
                return Done(f"cancelled [{number}] {inc.offer.name}")
        for out in self.outgoing:
            if out.number == number and out.state in OPEN_OUT | {"failed"}:
                out.cancelled = True
                for pid, r in out.receivers.items():
                    link = self.node.links.get(pid)
                    if r.state in OPEN_OUT and link is not None:
                        self._line(link, "cancel", out.offer)
                    self._cut_serving(r.fp)
                self.save()
                self._emit(view_out(out), "cancelled")
                return Done(f"cancelled [{number}] {out.offer.name}")
        return Refused(f"no open transfer [{number}]; /files lists them")

    def _pick(self, number: int | None, states: tuple[str, ...]) -> Incoming | Refused:
        if number is None:
            waiting = [i for i in self.incoming if i.state == "offered"]
            return waiting[-1] if waiting else Refused("no offer is waiting; /files lists them")
        for inc in self.incoming:
            if inc.number == number:
                if inc.state in states:
                    return inc
                return Refused(f"[{number}] {inc.offer.name} is {inc.state}")
        return Refused(f"no offer [{number}] to you; /files lists them")

    def _place(self, inc: Incoming) -> None:
        """Where the files land: a safe name in the download dir, never one already there
        (``name (1).ext``); a folder's files under their safe relative paths in it."""
        base = self.download_dir

        def taken_in(folder: str) -> Callable[[str], bool]:
            return lambda n: (os.path.lexists(os.path.join(folder, n))
                              or os.path.lexists(os.path.join(folder, n + ".part")))

        top = unique_name(safe_name(inc.offer.name), taken_in(base))
        inc.dest = os.path.join(base, top)
        inc.finals, inc.parts = [], []
        chosen: set[str] = set()
        for entry in inc.offer.entries:
            if not inc.offer.folder:
                final = inc.dest
            else:
                parts = safe_parts(entry.path)
                folder = os.path.join(inc.dest, *parts[:-1])
                final = os.path.join(folder, unique_name(parts[-1], _not_in(folder, chosen)))
            chosen.add(final)
            inc.finals.append(final)
            inc.parts.append(final + ".part")
        if inc.offer.folder:
            os.makedirs(inc.dest, exist_ok=True)  # holds the name against the next one

    # --- the chat lines -----------------------------------------------------------------------

    def _line(self, link: PeerSession, op: str, offer: Offer, why: str = "") -> None:
        meta: dict[str, Any] = (offer_metadata(offer) if op == "offer"
                                else {"op": op, "offer": offer.id})
        if op == "offer":
            meta["port"] = self.port
        if why:
            meta["why"] = why
        content = (f"offers {offer.name} ({human_size(offer.size)})" if op == "offer"
                   else f"{op} {offer.name}")
        link.send(self.node.sender.message(FILE, content, metadata=meta))

    def line(self, link: PeerSession, msg: Any) -> None:
        """A ``file`` line from a linked peer."""
        meta = msg.metadata or {}
        op = meta.get("op")
        if not speaks_files(link) or op not in OPS:
            log_limited(self.node.clock, log, "file line ignored", LogLevel.info,
                        "a file line from {peer} ignored (op {op!r})", peer=link.peer_id,
                        op=str(op)[:20])
            return
        offer_id = str(meta.get("offer", ""))[:64]
        if op == "offer":
            self._offered(link, meta)
            return
        why = printable(str(meta.get("why", "")))[:200]
        for out in self.outgoing:
            r = out.receivers.get(link.peer_id)
            if out.offer.id == offer_id and r is not None:
                self._answered(out, r, op, why)
                return
        for inc in self.incoming:
            if inc.offer.id == offer_id and inc.peer_id == link.peer_id and op == "cancel":
                if inc.state in OPEN_IN | {"failed"}:
                    self._close_in(inc, "cancelled", f"{inc.nick} cancelled it", None)
                return

    def _answered(self, out: Outgoing, r: Receiver, op: str, why: str) -> None:
        state = {"accept": "accepted", "reject": "rejected", "cancel": "cancelled",
                 "done": "done", "failed": "failed"}[op]
        if r.state in ("done", "rejected", "cancelled") or (op == "accept"
                                                             and r.state == "sending"):
            return
        r.state, r.why = state, why
        if state == "done":
            r.sent = out.offer.size
        if state in ("rejected", "cancelled"):
            self._cut_serving(r.fp)
        self.save()
        view = view_out(out)
        if out.label != r.nick:  # a room offer: each member answers for themselves, so say who
            view = dataclasses.replace(view, peer=f"{r.nick} in {out.label}", why=r.why)
        self._emit(view, state)

    def _offered(self, link: PeerSession, meta: dict[str, Any]) -> None:
        try:
            offer = parse_offer(meta, self.max_size)
        except OfferError as e:
            log_limited(self.node.clock, log, "offer refused", LogLevel.info,
                        "an offer from {peer} refused: {why}", peer=link.peer_id, why=str(e))
            offer_id = str(meta.get("offer", ""))
            if offer_id.isascii() and offer_id.isalnum() and len(offer_id) <= 64:
                self._line(link, "reject", Offer(offer_id, "?", (), 0), str(e))
            return
        for inc in self.incoming:
            if inc.offer.id == offer.id and inc.peer_id == link.peer_id:
                # Offered again (the link is back, or it restarted): its file port of now.
                inc.offer, inc.host = offer, _host(link.address)
                if inc.state in ("accepted", "paused") and inc.job is None:
                    inc.retries = 0
                    self._fetch(inc)
                return
        self._expire()
        held = [i for i in self.incoming if i.state in OPEN_IN]
        why = refusal(len(held), sum(1 for i in held if i.peer_id == link.peer_id))
        if why is not None:
            self._line(link, "reject", offer, why)
            if link.peer_id not in self.told_full:  # once, not once per offer of a flood
                self.told_full.add(link.peer_id)
                self.node.notice(f"offers from {self.node.nick_of(link)} refused: {why}",
                                 error=True)
            return
        self.told_full.discard(link.peer_id)
        inc = Incoming(self._number(), offer, link.peer_id, self.node.nick_of(link), link.fp,
                       _host(link.address), made=self.node.clock.seconds(),
                       entry_done=[False] * len(offer.entries))
        self.incoming.append(inc)
        self.save()
        self._emit(view_in(inc), "offered")

    def linked(self, link: PeerSession) -> None:
        """A link came up: our open offers to it are sent again (with our file port now)."""
        if not speaks_files(link):
            return
        for out in self.outgoing:
            r = out.receivers.get(link.peer_id)
            if r is not None and not out.cancelled and r.state in OPEN_OUT | {"failed"}:
                r.fp = link.fp
                self.offer_to(link, out)

    # --- the receiving side ------------------------------------------------------------------

    def _fetch(self, inc: Incoming) -> None:
        if inc.job is not None or self.reactor is None or self.identity is None:
            return
        if not inc.host:
            self.stopped(inc, "the peer can't be reached for files yet (not a direct link)",
                         bad=False, retry=False)
            return
        inc.state, inc.mark, inc.started = "receiving", (self.node.clock.seconds(), 0), False
        bind = (self.interface, 0) if self.interface else None
        job = inc.job = Receive(inc, self, self.reactor, self.identity, bind)
        job.start()

    def progress(self, inc: Incoming, n: int) -> None:
        now = self.node.clock.seconds()
        if not inc.started:  # the partial file checked: where it starts from is known
            inc.started, inc.mark = True, (now, inc.had())
            self._emit(view_in(inc), "started")
            return
        at, had = inc.mark
        if now - at >= PROGRESS_EVERY:
            have = inc.had()
            inc.rate, inc.mark = (have - had) / (now - at), (now, have)
            self._emit(view_in(inc), "progress")

    def received(self, inc: Incoming) -> None:
        inc.job, inc.state, inc.why = None, "done", ""
        link = self.node.links.get(inc.peer_id)
        if link is not None:
            self._line(link, "done", inc.offer)
        self.save()
        self._emit(view_in(inc), "done")

    def stopped(self, inc: Incoming, why: str, bad: bool, retry: bool = True) -> None:
        inc.job = None
        if inc.state not in ("receiving", "accepted"):
            return  # cancelled or rejected meanwhile
        inc.why = why
        if bad:
            inc.state = "failed"
            link = self.node.links.get(inc.peer_id)
            if link is not None:
                self._line(link, "failed", inc.offer, why)
        else:
            inc.state = "paused"
            if retry and inc.retries < len(RETRY_DELAYS) and self.reactor is not None:
                delay = RETRY_DELAYS[inc.retries]
                inc.retries += 1
                self.reactor.callLater(delay, self._retry, inc)
        self.save()
        self._emit(view_in(inc), "failed" if bad else "paused")

    def _retry(self, inc: Incoming) -> None:
        if inc.state == "paused" and inc.job is None and inc.peer_id in self.node.links:
            self._fetch(inc)

    def _close_in(self, inc: Incoming, state: str, why: str, tell: str | None) -> None:
        job, inc.job = inc.job, None
        inc.state, inc.why = state, why
        if job is not None:
            job.cut(why)
        for part in inc.parts:
            try:
                os.unlink(part)
            except OSError:
                pass
        link = self.node.links.get(inc.peer_id)
        if tell is not None and link is not None:
            self._line(link, tell, inc.offer)
        self.save()
        self._emit(view_in(inc), state)

    # --- upkeep --------------------------------------------------------------------------------

    def stop(self) -> None:
        """At shutdown: the state saved, every transfer connection closed."""
        for inc in self.incoming:
            if inc.job is not None:
                inc.job.cut("shutting down")
        self.save(now=True)
        for served in list(self.serving):
            served.cut("shutting down")

    def _number(self) -> int:
        self.next_number += 1
        return self.next_number - 1

    def _expire(self) -> None:
        """Offers older than OFFER_MAX_AGE are forgotten, their partial files deleted."""
        now = self.node.clock.seconds()
        for inc in [i for i in self.incoming if expired(i.made, now)]:
            if inc.state != "done":
                self._close_in(inc, "expired", "too old", None)
            self.incoming.remove(inc)
        for out in [o for o in self.outgoing if expired(o.offer.made, now)]:
            self.kept.drop_hashes(out)
            self.outgoing.remove(out)

    def save(self, now: bool = False) -> None:
        """Keep the state: encoded and written in a thread once the service runs (at the
        bounds it is megabytes of JSON: tens of ms), in order; ``now``: here, at once."""
        self._saves += 1
        state, seq = dump(self.incoming, self.outgoing, self.next_number), self._saves
        if now or not self.save_in_thread:
            self.kept.save(state, seq)
            return

        def write(_: object) -> Deferred[None]:
            return self.in_thread(self.kept.save, state, seq).addErrback(
                lambda f: log.failure("saving the transfers failed", f))

        self._writes.addCallback(write)

    def _emit(self, view: TransferView, what: str) -> None:
        if what != "progress":  # the log keeps each start (where it resumed), end and failure
            text = event_text(view, what) or f"file [{view.number}] {view.name}: {what}"
            log.info("{text}", text=printable(text))
        self.node.emit(events.TransferChanged(self.node.clock.seconds(), view, what))


def _not_in(folder: str, chosen: set[str]) -> Callable[[str], bool]:
    return lambda n: os.path.join(folder, n) in chosen

