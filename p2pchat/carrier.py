"""What a peer holds of sealed items (sealed.py), for others and its own, and which it opened:
the bounds in one place.  Pure code: plain values and a clock value.

A carrier holds items for any recipient, at most SEALED_PER_PEER for one recipient (past it a
new item for that recipient is refused: the first ones still go), SEALED_TOTAL items and
SEALED_TOTAL_BYTES in all (past it, the oldest item of the recipient with the most items makes
room: a flood of items for one peer only crowds out that peer's), and none older than
SEALED_AGE.  Our own items (our sealed lines waiting for a receipt, our receipts waiting to
be handed on) are held apart, in a bag of their own with the same bounds, so no peer's items
crowd ours out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from p2pchat.sealed import LINE, Item

#: Most items held for one recipient.
SEALED_PER_PEER = 50
#: Most items held in all, and most bytes.
SEALED_TOTAL = 1000
SEALED_TOTAL_BYTES = 4 * 1024 * 1024
#: Items older than this (seconds) are dropped, and refused when they come.
SEALED_AGE = 7 * 24 * 3600.0
#: Sealed items taken from one link: SEALED_RATE a second after a burst of SEALED_BURST (each
#: costs a signature check; a link-up hands at most our own and a carrier's items for us, which
#: the burst covers).  Past it they are ignored (and logged): their author hands them again.
SEALED_RATE = 100.0
SEALED_BURST = 2 * SEALED_TOTAL
#: Most ids of opened items remembered (to refuse replays); each is kept SEALED_AGE at most.
OPENED_MAX = 10_000


@dataclass(frozen=True)
class Taken:
    """What ``Bag.add`` did: whether it holds the item now (else ``why`` not), and which
    items it dropped to make room."""

    held: bool
    why: str = ""
    dropped: list[Item] = field(default_factory=list)


class Bag:
    """Items held, bounded per recipient, in total and by age; oldest first."""

    def __init__(self, per_peer: int = SEALED_PER_PEER, total: int = SEALED_TOTAL,
                 total_bytes: int = SEALED_TOTAL_BYTES, max_age: float = SEALED_AGE) -> None:
        self.per_peer = per_peer
        self.total = total
        self.total_bytes = total_bytes
        self.max_age = max_age
        self._items: dict[str, Item] = {}
        self._by_to: dict[str, list[str]] = {}
        self.bytes = 0

    def add(self, item: Item, now: float) -> Taken:
        if item.id in self._items:
            return Taken(False, "it is held already")
        if now - item.ts > self.max_age:
            return Taken(False, "it is too old")
        if len(self._by_to.get(item.to, ())) >= self.per_peer:
            return Taken(False, f"{self.per_peer} items are held for its recipient already")
        if item.size > self.total_bytes:
            return Taken(False, "it is too big")
        dropped = []
        while len(self._items) >= self.total or self.bytes + item.size > self.total_bytes:
            dropped.append(self._remove(self._crowded()))
        self._items[item.id] = item
        self._by_to.setdefault(item.to, []).append(item.id)
        self.bytes += item.size
        return Taken(True, "", dropped)

    def _crowded(self) -> str:
        """The oldest item of the recipient with the most items held."""
        most = max(self._by_to.values(), key=len)
        return most[0]

    def _remove(self, item_id: str) -> Item:
        item = self._items.pop(item_id)
        mine = self._by_to[item.to]
        mine.remove(item_id)
        if not mine:
            del self._by_to[item.to]
        self.bytes -= item.size
        return item

    def get(self, item_id: str) -> Item | None:
        return self._items.get(item_id)

    def drop(self, item_id: str) -> Item | None:
        return self._remove(item_id) if item_id in self._items else None

    def answered(self, receipt: Item) -> Item | None:
        """Drop the sealed line ``receipt`` answers, if held and the receipt is its
        recipient's (no one else can clear another's line); returns it."""
        item = self._items.get(receipt.body)
        if item is None or item.kind != LINE or item.to != receipt.author:
            return None
        return self._remove(item.id)

    def for_peer(self, peer_id: str) -> list[Item]:
        """The items addressed to ``peer_id``, oldest first."""
        return [self._items[i] for i in self._by_to.get(peer_id, ())]

    def all(self) -> list[Item]:
        return list(self._items.values())

    def expire(self, now: float) -> list[Item]:
        """Drop (and return) the items older than ``max_age``."""
        old = [i for i, item in self._items.items() if now - item.ts > self.max_age]
        return [self._remove(i) for i in old]

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items


class Opened:
    """The ids of the sealed lines opened here, with their items' time: one that comes again
    is a replay, refused.  An id is kept as long as its item could still be carried
    (SEALED_AGE: older items are refused anyway), and at most ``limit`` ids."""

    def __init__(self, limit: int = OPENED_MAX, max_age: float = SEALED_AGE) -> None:
        self.limit = limit
        self.max_age = max_age
        self._ids: dict[str, float] = {}

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._ids

    def add(self, item_id: str, ts: float) -> list[str]:
        """Remember ``item_id``; returns the ids forgotten to stay within ``limit``."""
        self._ids[item_id] = ts
        forgotten = []
        while len(self._ids) > self.limit:
            oldest = next(iter(self._ids))
            del self._ids[oldest]
            forgotten.append(oldest)
        return forgotten

    def expire(self, now: float) -> list[str]:
        old = [i for i, ts in self._ids.items() if now - ts > self.max_age]
        for i in old:
            del self._ids[i]
        return old

    def __len__(self) -> int:
        return len(self._ids)
