"""Sealed private lines (sealed.py), for the node: sealing a private line to a peer that is
away, handing our items to the peers of ours that link (carriers), carrying others' items
(carrier.py, kept by sealstore.py), opening what is sealed to us, and the receipts back.

This is the second half of "delivered when they are back" (absent.py): the line waits in our
sent log for its recipient to link with us, and, sealed, with every carrier we meet, so it
reaches her also when we are gone.  Whichever way she gets it first, she shows it once (a
signed line is known by its author and sequence: room.py), and whichever way we hear of it
first (her ack, or her receipt by any path) tells us "delivered", once.

Who goes where (two hops, no flooding): our own items go to every carrier that links while
they wait; a carrier hands what it holds only to the item's addressee, when it links; a
receipt goes from the recipient to the author if linked, else to all her carriers, which
drop the line it answers and hand the receipt to the author when it links.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger, LogLevel

from p2pchat import events
from p2pchat.absent import HELD_LINES, RECENT_PEERS
from p2pchat.carrier import SEALED_AGE, SEALED_BURST, SEALED_RATE, Bag, Opened
from p2pchat.clocks import log_limited
from p2pchat.flow import TokenBucket
from p2pchat.interfaces import private_key
from p2pchat.sealed import LINE, RECEIPT, SEALED, Item, Sealer, check_time, parse_item, verify
from p2pchat.sealstore import HELD, OWN, SealStore
from p2pchat.wire import Message, WireError, encode_message

if TYPE_CHECKING:
    from p2pchat.node import Node
    from p2pchat.session import PeerSession

log = Logger()

#: The most characters of a line a "delivered" notice quotes (for a line said in an earlier
#: run, or out of the sent log by now: no face remembers it).
NOTICE_TEXT = 60


@dataclass(frozen=True)
class Note:
    """What we keep, with one of our sealed lines, to tell it delivered: its message id and
    sequence, the recipient's nick, its text, and whether it was said in an earlier run."""

    message_id: str
    seq: int
    nick: str
    text: str
    earlier: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"msg": self.message_id, "seq": self.seq, "nick": self.nick, "text": self.text}


class Sealing:
    """The sealed lines of one node (``node``); nothing without an identity."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.sealer = Sealer(node.identity) if node.identity is not None else None
        #: items held for others; our own; the ids of the sealed lines we opened
        self.held = Bag()
        self.own = Bag(per_peer=HELD_LINES)
        self.opened = Opened()
        #: the sealed lines whose receipts we carried (a line handed to us again is not held)
        self.answered = Opened()
        self.notes: dict[str, Note] = {}
        #: the keys of peers linked in this run (besides the pins), bounded
        self.keys: dict[str, str] = {}
        self.store = SealStore(None)
        #: how many items each linked peer may still hand us (SEALED_RATE)
        self._rates: dict[str, TokenBucket] = {}
        #: items still to write to a peer that was slow to read: its link, and the items
        self._queues: dict[str, tuple[PeerSession, list[Item]]] = {}

    def open_store(self, path: str | None) -> None:
        """Keep the items in ``path`` (the data dir's SEALED_NAME), and take back those kept."""
        self.store = SealStore(path)
        items, opened = self.store.load()
        for bag, item, note in items:
            if bag == OWN:
                seq = note.get("seq") if note is not None else None
                if self.own.add(item, item.ts).held and note is not None and isinstance(seq, int):
                    self.notes[item.id] = Note(str(note.get("msg", "")), seq,
                                               str(note.get("nick", "")),
                                               str(note.get("text", "")), earlier=True)
            else:
                self.held.add(item, item.ts)
        for item_id, ts in opened.items():
            self.opened.add(item_id, ts)
        self._expire(self.node.clock.seconds())

    def _expire(self, now: float) -> None:
        old = self.held.expire(now) + self.own.expire(now)
        for item in old:
            self.notes.pop(item.id, None)
        self.store.delete(old)
        self.store.forget_opened(self.opened.expire(now))
        self.answered.expire(now)

    def key_of(self, peer_id: str) -> str | None:
        return self.keys.get(peer_id) or self.node.trust.pins.public_key(peer_id)

    # --- ours ---------------------------------------------------------------------------

    def kept(self, msg: Message, nick: str, text: str) -> None:
        """Our private line ``msg`` is kept for its absent addressee (absent.py): seal it to
        her key too, and hand it to the carriers linked now (and later, as they link)."""
        node = self.node
        to = str((msg.metadata or {}).get("to", ""))
        pk = self.key_of(to)
        if self.sealer is None or not pk:
            log.info("no key known for {peer}: its private line waits in our sent log only",
                     peer=to)
            return
        now = node.clock.seconds()
        try:
            item = self.sealer.seal(encode_message(msg).rstrip(b"\n"), to, pk, now)
        except WireError as e:
            log.warn("a private line to {peer} was not sealed: {why}", peer=to, why=str(e))
            return
        note = Note(msg.id, msg.sequence, nick, text)
        if not self._keep_own(item, now, note):
            return
        carriers = [link for link in node.links.values() if link.sealed]
        for link in carriers:
            self._write(link, [item])
        log.info("a private line to {peer} sealed, handed to {n} carrier(s)", peer=to,
                 n=len(carriers))

    def _keep_own(self, item: Item, now: float, note: Note | None = None) -> bool:
        taken = self.own.add(item, now)
        for old in taken.dropped:
            self.notes.pop(old.id, None)
        self.store.delete(taken.dropped)
        if not taken.held:
            log.warn("sealed item for {peer} not kept: {why}", peer=item.to, why=taken.why)
            return False
        if note is not None:
            self.notes[item.id] = note
        self.store.put(OWN, item, note.to_json() if note is not None else None)
        return True

    def acked(self, peer_id: str, have: int) -> None:
        """``peer_id`` acked our lines up to ``have``: our sealed lines to it among them are
        delivered (told here only for an earlier run's: this run's are told by the ack)."""
        done = [item for item in self.own.for_peer(peer_id) if item.kind == LINE
                and item.id in self.notes and self.notes[item.id].seq <= have]
        for item in done:
            self._delivered(item, peer_id, by_ack=True)

    def _delivered(self, item: Item, peer_id: str, by_ack: bool = False) -> None:
        node = self.node
        self.own.drop(item.id)
        self.store.delete([item])
        note = self.notes.pop(item.id, None)
        if note is None:
            return
        if by_ack and not note.earlier:
            return  # the ack told it (syncing.py)
        message_id = None if note.earlier else node.delivery.received(note.seq, peer_id)
        if message_id is not None:
            node.emit(events.Delivered(node.clock.seconds(), message_id))
        else:  # said in an earlier run, or its mark went with the sent log: no face knows it
            text = note.text if len(note.text) <= NOTICE_TEXT else note.text[:NOTICE_TEXT] + "…"
            node.notice(f"delivered to {note.nick}: {text}")

    # --- links ----------------------------------------------------------------------------

    def linked(self, link: PeerSession) -> None:
        """A peer of ours linked: hand it our waiting items (it carries them, or they are
        its own) and what we carry for it."""
        if self.sealer is None or not link.sealed:
            return
        if link.pk:
            self.keys.pop(link.peer_id, None)
            self.keys[link.peer_id] = link.pk
            while len(self.keys) > RECENT_PEERS:
                del self.keys[next(iter(self.keys))]
        self._rates.pop(link.peer_id, None)
        self._rates[link.peer_id] = TokenBucket(SEALED_RATE, SEALED_BURST,
                                                self.node.clock.seconds())
        while len(self._rates) > RECENT_PEERS:
            del self._rates[next(iter(self._rates))]
        self._expire(self.node.clock.seconds())
        self._queues.pop(link.peer_id, None)
        self._write(link, self.own.all() + self.held.for_peer(link.peer_id))

    def _write(self, link: PeerSession, items: list[Item]) -> None:
        queued = self._queues.get(link.peer_id)
        if queued is not None and queued[0] is link:
            queued[1].extend(items)
        else:
            self._queues[link.peer_id] = (link, list(items))
        self.pump(link)

    def pump(self, link: PeerSession) -> None:
        """Write what waits for ``link``, while its peer reads (``link_writable`` calls it
        again).  A receipt written to its addressee is done with."""
        node = self.node
        queued = self._queues.get(link.peer_id)
        if queued is None or queued[0] is not link:
            return
        items = queued[1]
        while items:
            if node.links.get(link.peer_id) is not link:
                del self._queues[link.peer_id]
                return
            if link.backed_up:
                return
            item = items.pop(0)
            link.send(node.sender.message(SEALED, "", metadata=item.metadata()))
            if item.kind == RECEIPT and item.to == link.peer_id:
                done = self.own.drop(item.id) or self.held.drop(item.id)
                if done is not None:
                    self.store.delete([done])
        del self._queues[link.peer_id]

    # --- what others hand us --------------------------------------------------------------

    def line(self, link: PeerSession, msg: Message) -> None:
        """A ``sealed`` line from ``link``: an item to open, a receipt for us, or one to
        carry; refused (and logged) unless its author's signature checks out."""
        node = self.node
        if self.sealer is None or not link.sealed:
            log_limited(node.clock, log, "sealed unannounced", LogLevel.debug,
                        "{peer} sent a sealed item without announcing it: ignored",
                        peer=link.peer_id)
            return
        now = node.clock.seconds()
        rate = self._rates.get(link.peer_id)
        if rate is None or not rate.take(now):
            log_limited(node.clock, log, "sealed too fast", LogLevel.warn,
                        "{peer} hands us sealed items too fast: the extra ones ignored",
                        peer=link.peer_id)
            return
        try:
            item = parse_item(msg.metadata)
            fp = verify(item)
            check_time(item, now, SEALED_AGE)
        except WireError as e:
            log_limited(node.clock, log, "sealed refused", LogLevel.warn,
                        "a sealed item {peer} handed us was refused: {why}", peer=link.peer_id,
                        why=str(e))
            return
        if item.author == node.peer_id:
            return  # our own, handed back
        if item.to != node.peer_id:
            self._carry(item, now)
        elif item.kind == LINE:
            self._open(link, item, fp, now)
        else:
            line = self.own.get(item.body)
            if line is not None and line.kind == LINE and line.to == item.author:
                log.info("{peer} has our sealed line {id} (its receipt came by {via})",
                         peer=item.author, id=line.id, via=link.peer_id)
                self._delivered(line, item.author)

    def _carry(self, item: Item, now: float) -> None:
        node = self.node
        to = node.links.get(item.to)
        if item.kind == RECEIPT:
            answered = self.held.answered(item)
            if answered is not None:
                self.store.delete([answered])
            self.answered.add(item.body, item.ts)
            if to is not None and to.sealed:
                self._write(to, [item])  # handed on at once: not held
                return
        elif item.id in self.answered:
            return  # its recipient has it
        if item.id in self.held:
            return  # its author hands it to each carrier at each link: held already
        taken = self.held.add(item, now)
        self.store.delete(taken.dropped)
        if not taken.held:
            log_limited(node.clock, log, "sealed not carried", LogLevel.info,
                        "a sealed item for {peer} not carried: {why}", peer=item.to,
                        why=taken.why)
            return
        self.store.put(HELD, item)
        log_limited(node.clock, log, "sealed carried", LogLevel.info,
                    "carrying a sealed {kind} of {author} for {peer}", kind=item.kind,
                    author=item.author, peer=item.to)
        if to is not None and to.sealed:
            self._write(to, [item])

    def _open(self, link: PeerSession, item: Item, fp: str, now: float) -> None:
        node = self.node
        assert self.sealer is not None
        if node.leaving:
            return  # our face is gone: it stays with its carriers, for when we are back
        if item.id in self.opened:
            log_limited(node.clock, log, "sealed replay", LogLevel.warn,
                        "the sealed line {id} of {author} came again (by {peer}): a replay, "
                        "not shown again", id=item.id, author=item.author, peer=link.peer_id)
            self._write(link, [self.sealer.receipt(item, now)])  # so that carrier drops it
            return
        try:
            line, _ = self.sealer.open(item)
        except WireError as e:
            log_limited(node.clock, log, "sealed refused", LogLevel.warn,
                        "a sealed line of {author} handed on by {peer} was refused: {why}",
                        author=item.author, peer=link.peer_id, why=str(e))
            return
        self.store.forget_opened(self.opened.add(item.id, item.ts))
        self.store.opened(item.id, item.ts)
        self._answer(item, now)
        if not node.room.accept(line, advance=False):
            return  # had it already (its author's catch-up came first)
        log.info("opened a sealed line of {author} handed on by {peer}", author=item.author,
                 peer=link.peer_id)
        nick = node.trust.display(line.username or line.sender_id, fp)
        node.hearing.show_line(line, nick, private_key(line.sender_id), nick, now,
                               replayed=True)

    def _answer(self, item: Item, now: float) -> None:
        """Our receipt for ``item``: to its author if linked, else kept and given to every
        carrier linked now (and to the author when it links)."""
        assert self.sealer is not None
        receipt = self.sealer.receipt(item, now)
        author = self.node.links.get(item.author)
        if author is None or not author.sealed:
            if not self._keep_own(receipt, now):
                return
        for link in list(self.node.links.values()):
            if link.sealed:
                self._write(link, [receipt])
