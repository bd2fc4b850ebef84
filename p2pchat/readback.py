"""Reading history back for the faces: a room's last lines (``/history``, the console, the
IRC playback) and the lines around a moment (``/context``), a part of ``store.Store`` (its
base class, as ``jotting.Jotted`` is), apart so each stays small.

Lines jotted down but not yet made rows are read where they wait (the jot's records and the
queue), not made rows first: a burst's thousands wait behind it for a lull (lull.py), and
making them all rows would hold the reactor 50 ms.  What a read returns is the same before
and after they are rows: the file's rows and the waiting lines merged by time, then in the
order they were kept (the file's first, as their rowids will be), the first of each id only.
"""

from __future__ import annotations

from typing import Any, Sequence

from p2pchat.interfaces import StoredLine
from p2pchat.jotting import Jotter
from p2pchat.packing import shown
from p2pchat.saidrows import ADD_SAID

#: how a line is added (the store's statement: a waiting line is a row of it)
ADD_LINE = "insert or ignore into lines values (?,?,?,?,?,?,?,?,?,?,?)"


class ReadBack:
    """``recent`` and ``around`` over the Store's file (``_db``) and what waits to be rows
    (``jotter.behind``, ``_pending``)."""

    _db: Any
    jotter: Jotter
    _pending: dict[str, list[Any]]

    def recent(self, room: str, count: int, skip: Sequence[str] = ()) -> list[StoredLine]:
        """The last ``count`` lines of a room, oldest first; none of the authors in ``skip``
        (the ignored: left out in the query, so they don't use up the count).  Lines jotted
        but not yet rows are read where they wait (``_behind``), not made rows first: a
        burst's thousands waiting behind it (lull.py) would hold the reactor."""
        unless = f"and sender_id not in ({','.join('?' * len(skip))}) " if skip else ""
        rows = self._db.execute(
            f"select {_READ} from lines "
            f"where room = ? {unless}order by ts desc, rowid desc limit ?",
            (room, *skip, count)).fetchall()
        return _lines(_merged(rows, self._behind(room, skip))[-count:] if count > 0 else [])

    def around(self, room: str, when: float, count: int,
               skip: Sequence[str] = ()) -> list[StoredLine]:
        """/context: up to ``count`` lines of a room said before ``when`` and up to
        ``count + 1`` from ``when`` on (the line at ``when`` and those after), oldest first;
        none of the authors in ``skip``.  Two bounded reads over ``lines_by_room``, and the
        lines waiting to be rows (as ``recent``)."""
        unless = f"and sender_id not in ({','.join('?' * len(skip))}) " if skip else ""
        count = max(0, count)
        before = self._db.execute(
            f"select {_READ} from lines where room = ? and ts < ? {unless}"
            "order by ts desc, rowid desc limit ?", (room, when, *skip, count)).fetchall()
        after = self._db.execute(
            f"select {_READ} from lines where room = ? and ts >= ? {unless}"
            "order by ts, rowid limit ?", (room, when, *skip, count + 1)).fetchall()
        waiting = self._behind(room, skip)
        early = _merged(before, [r for r in waiting if r[7] < when])[-count:] if count else []
        late = _merged(after, [r for r in waiting if r[7] >= when])[:count + 1]
        return _lines(early + late)

    def _behind(self, room: str, skip: Sequence[str]) -> list[tuple]:
        """The lines of ``room`` jotted or queued but not yet rows (none by ``skip``), as
        rows of ``_READ`` in the order they came (their rowid, -1, stands for one above
        every row's: ``_merged`` orders them after), first of each id only, none the file
        has."""
        out: list[tuple] = []
        records = [writes[0] for writes, _rows, _size in self.jotter.behind]
        for pending in (*records, self._pending):
            for sql in (ADD_LINE, ADD_SAID):
                out.extend(row for row in pending.get(sql, ()) if row[1] == room)
        if not out:
            return out
        ignored, seen = set(skip), set()
        kept = []
        for row in out:
            if row[2] in ignored or row[0] in seen:
                continue
            seen.add(row[0])
            kept.append(row)
        had = self._had([r[0] for r in kept])
        return [(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[9], -1)
                for r in kept if r[0] not in had]

    def _had(self, ids: list[str]) -> set[str]:
        """Which of ``ids`` the file has (in chunks: a statement binds at most 999 values)."""
        had: set[str] = set()
        for at in range(0, len(ids), 900):
            chunk = ids[at:at + 900]
            had.update(r[0] for r in self._db.execute(
                f"select id from lines where id in ({','.join('?' * len(chunk))})", chunk))
        return had


#: the columns ``recent`` and ``around`` read (and ``_behind`` makes of waiting lines)
_READ = "id, room, sender_id, nick, text, action, own, ts, raw, rowid"


def _merged(rows: list[tuple], waiting: list[tuple]) -> list[tuple]:
    """The file's ``rows`` and the ``waiting`` lines (``_READ`` rows) oldest first: by time,
    then in the order they were kept (the file's before the waiting, as their rowids will
    be)."""
    ranked = [((r[7], 0, r[9]), r) for r in rows]
    ranked += [((r[7], 1, i), r) for i, r in enumerate(waiting)]
    ranked.sort(key=lambda pair: pair[0])
    return [r for _key, r in ranked]


def _lines(rows: list[tuple]) -> list[StoredLine]:
    return [StoredLine(r[0], r[1], r[2], r[3], shown(r[4], r[8]), bool(r[5]), bool(r[6]), r[7])
            for r in rows]
