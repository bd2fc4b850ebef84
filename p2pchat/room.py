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

    def accept_own(self, msgs: list[Message]) -> None:
        """Our own new signed lines of one run said at once (saying.py), in order, each taken
        as ``accept`` takes it (a duplicate, which a new line never is, is skipped), with
        the bookkeeping done once for the run: their sequences follow one another, so each
        extends the author's last range in place (seen.py's ``run``), and the seen ids are
        trimmed and the high-water mark raised once."""
        if not msgs:
            return
        seen, seqs = self._seen, self.seqs
        author = msgs[0].sender_id
        starts, ends = seqs.run(author)
        top = high = self.high_water.get(author, 0)
        changed = False
        for msg in msgs:
            message_id, seq = msg.id, msg.sequence
            if message_id in seen or msg.sender_id != author:
                self.accept(msg)  # (never for a new line of ours: the long way)
                continue
            if starts and seq == ends[-1] + 1:
                ends[-1] = seq  # the usual case: the next of a run (seen.py's add, in place)
                changed = True
            elif not seqs.add(author, seq):
                continue
            seen[message_id] = None
            if seq > top:
                top = seq
        if changed:
            seqs.changed(author)
        while len(seen) > self.seen_limit:
            seen.popitem(last=False)
        if top > high:
            self.high_water[author] = top

    def mark_seen(self, message_id: str) -> None:
        self._seen[message_id] = None
        if len(self._seen) > self.seen_limit:
            self._seen.popitem(last=False)
