"""The room: which messages were already seen (dedup), and what each sender's sequence is at.
Pure code.  (What was said is kept by history.py.)"""

from __future__ import annotations

from collections import OrderedDict

from p2pchat.seen import SeenSet
from p2pchat.wire import CHAT, PRIVATE, Message

#: How many message ids are remembered for dropping duplicates.
MAX_SEEN_IDS = 10_000


class Room:
    """One room's state.  ``accept`` is the single gate every received or said line passes."""

    def __init__(self, seen_limit: int = MAX_SEEN_IDS) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.seen_limit = seen_limit
        #: the highest sequence number seen from each sender
        self.high_water: dict[str, int] = {}
        #: the sequences seen of each author of signed lines (kept on disk with a store)
        self.seqs = SeenSet()

    def accept(self, msg: Message, advance: bool = True) -> bool:
        """True the first time a line comes by, False for a duplicate.  ``advance``: the
        line counts for how far we have its sender (not for relayed lines).

        A signed line (of one of our peers, whose sequences continue across its runs) is
        known by its author and sequence, for good (seen.py); the others by their id, among
        the last ``seen_limit`` (a base peer numbers its lines from 1 again each run)."""
        if msg.id in self._seen:
            return False
        if (msg.sequence and msg.type in (CHAT, PRIVATE) and msg.metadata
                and msg.metadata.get("sig") and not self.seqs.add(msg.sender_id, msg.sequence)):
            return False
        self.mark_seen(msg.id)
        if (advance and msg.type in (CHAT, PRIVATE)
                and msg.sequence > self.high_water.get(msg.sender_id, 0)):
            self.high_water[msg.sender_id] = msg.sequence
        return True

    def mark_seen(self, message_id: str) -> None:
        self._seen[message_id] = None
        if len(self._seen) > self.seen_limit:
            self._seen.popitem(last=False)
