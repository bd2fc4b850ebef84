"""Which sequences of each author we have seen: the dedup key of signed lines (issue 15.3).

An author numbers all its lines with one counter (every room, private lines too), and signs the
number with the line, so (author, sequence) names a line for good, whatever its id and however
many other lines passed since.  We keep, per author, the set of sequences seen as sorted
disjoint ranges: not one high-water mark, since a line of a room we are not in leaves a gap, and
a late relayed (or sealed) line can rightly come below the highest seen.

Bounds: at most MAX_RANGES ranges per author.  Past that the two lowest ranges are merged (the
gap between them counts as seen): the *floor* below which everything counts as seen rises, so
only a line more than MAX_RANGES gaps late is lost, never a replay shown.  At most MAX_AUTHORS
authors are kept in memory (least recently seen out first); the others wait on disk (the
store), read back when one of them speaks again.  Pure code but for the optional ``backing``.
"""

from __future__ import annotations

import bisect
import json
from collections import OrderedDict
from typing import Protocol

#: Ranges kept per author (past it, the two lowest are merged).
MAX_RANGES = 64
#: Authors kept in memory (the rest are read back from disk when they speak).
MAX_AUTHORS = 10_000


class Backing(Protocol):
    """Where the sets of authors live between runs and out of memory (store.Store)."""

    def seen_text(self, author: str) -> str | None: ...

    def seen_changed(self, author: str, source: SeenSet | str) -> None: ...


class SeenSet:
    """Per author, the sequences seen, as sorted disjoint inclusive ranges."""

    def __init__(self, backing: Backing | None = None, max_ranges: int = MAX_RANGES,
                 max_authors: int = MAX_AUTHORS) -> None:
        self.backing = backing
        self.max_ranges = max_ranges
        self.max_authors = max_authors
        #: author -> (starts, ends): ends[i] >= starts[i], ends[i] + 1 < starts[i + 1]
        self._sets: OrderedDict[str, tuple[list[int], list[int]]] = OrderedDict()

    def _of(self, author: str) -> tuple[list[int], list[int]]:
        ranges = self._sets.get(author)
        if ranges is not None:
            self._sets.move_to_end(author)
            return ranges
        ranges = ([], [])
        text = self.backing.seen_text(author) if self.backing is not None else None
        if text:
            ranges = _parse(text)
        self._sets[author] = ranges
        if len(self._sets) > self.max_authors:
            old, old_ranges = self._sets.popitem(last=False)
            if self.backing is not None:
                self.backing.seen_changed(old, _dump(old_ranges))
        return ranges

    def __contains__(self, key: tuple[str, int]) -> bool:
        author, seq = key
        starts, ends = self._of(author)
        i = bisect.bisect_right(starts, seq) - 1
        return i >= 0 and ends[i] >= seq

    def add(self, author: str, seq: int) -> bool:
        """Count ``seq`` of ``author`` as seen: True if it was not yet."""
        starts, ends = self._of(author)
        i = bisect.bisect_right(starts, seq) - 1
        if i >= 0 and ends[i] >= seq:
            return False
        joins_left = i >= 0 and ends[i] + 1 == seq
        joins_right = i + 1 < len(starts) and starts[i + 1] == seq + 1
        if joins_left and joins_right:
            ends[i] = ends[i + 1]
            del starts[i + 1], ends[i + 1]
        elif joins_left:
            ends[i] = seq
        elif joins_right:
            starts[i + 1] = seq
        else:
            starts.insert(i + 1, seq)
            ends.insert(i + 1, seq)
            if len(starts) > self.max_ranges:  # the floor rises: the lowest gap is filled
                ends[0] = ends[1]
                del starts[1], ends[1]
        if self.backing is not None:
            self.backing.seen_changed(author, self)
        return True

    def run(self, author: str) -> tuple[list[int], list[int]]:
        """``author``'s (starts, ends), for a caller taking a run of its lines at once
        (reading.py): it may extend the last range in place by the next sequence
        (``ends[-1] = ends[-1] + 1``), ``add`` the others, then tell ``changed`` once."""
        return self._of(author)

    def changed(self, author: str) -> None:
        """``author``'s set was changed in place (``run``): the backing is told, once."""
        if self.backing is not None:
            self.backing.seen_changed(author, self)

    def ranges(self, author: str) -> list[tuple[int, int]]:
        starts, ends = self._of(author)
        return list(zip(starts, ends))

    def dump(self, author: str) -> str | None:
        """The author's set as text (None if it is not in memory: it was written then)."""
        ranges = self._sets.get(author)
        return None if ranges is None else _dump(ranges)


#: json.dumps with separators makes a new encoder each call; written on every read of a
#: link's lines (a tuple is written as a list: the same text)
_encode = json.JSONEncoder(separators=(",", ":")).encode


def _dump(ranges: tuple[list[int], list[int]]) -> str:
    return _encode(list(zip(*ranges)))


def _parse(text: str) -> tuple[list[int], list[int]]:
    """A set as written by ``_dump``; anything else (a damaged row) reads as empty."""
    try:
        pairs = json.loads(text)
        starts: list[int] = []
        ends: list[int] = []
        for lo, hi in pairs:
            if not (isinstance(lo, int) and isinstance(hi, int) and lo <= hi
                    and (not ends or lo > ends[-1] + 1)):
                return [], []
            starts.append(lo)
            ends.append(hi)
        return starts, ends
    except (ValueError, TypeError):
        return [], []
