"""Our own lines' sent log (catchup.SentLog on disk) kept in their history rows: one row a
line said, not two.

A line we say is a row of ``lines`` (``own = 1``, as every line shown is) that also holds
its sequence and the bytes we wrote (``seq``, ``raw``): what a restart reloads to resend
(``load``), bounded as the log is (``--catchup-lines`` at load, ``--catchup-age``: older
rows lose their bytes, ``forget``).  A burst of 5,000 lines said was 10,000 rows (a row in
``lines`` and one in a ``sent`` table), so the oldest were made rows on the path
(jotting.BEHIND_MAX_ROWS); now it is 5,000.  The history's own limits (count, age, bytes:
retention.py) never take a line still in the sent log (retention.SENT_LOG_SPARED): it is resent
after a restart as before, whatever ``--history-*`` says.  A file of an older version has its
``sent`` table's rows moved into their lines' rows once (a line the history no longer had
gets its row back), and a jot record of such a version (its ``sent`` rows) is read the same
way.  Our own rows are never handed on for us (``Store.relayable_after``) nor packed: they
are resent from the sent log, as before.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any, Iterable

from twisted.logger import Logger

from p2pchat.interfaces import private_key
from p2pchat.jotting import Writes
from p2pchat.retention import SEQ_SHIFT
from p2pchat.wire import PRIVATE, Message, WireError, encode_message, parse_message

log = Logger()

#: ``settings`` key: our peer id, whose rows hold the sent log (written when it changes).
OWN_KEY = "own_id"
#: A line we said, with its sent log: a new row, or the row the history already has (of a
#: file of an older version) given its sequence and bytes.
ADD_SAID = ("insert into lines values (?,?,?,?,?,?,?,?,?,?,?) on conflict(id) do update "
            "set seq = excluded.seq, raw = excluded.raw")
#: The statement of an older version's sent log, as its jot records name it (never run:
#: ``upgraded`` reads those rows as ADD_SAID's).
OLD_SENT = "insert or replace into sent values (?, ?, ?)"
#: Our rows in the sent log, through ``lines_to_hand_on`` (sender_id, seq; raw not null).
_OURS = "sender_id = ? and raw is not null and seq is not null and own = 1"


def said_row(msg: Message, data: bytes, when: float | None = None) -> tuple[Any, ...]:
    """The row of a line we said (``data``: its bytes as written), as the history keeps it
    (a private line in its conversation, an action as its text), with its sent log."""
    meta = msg.metadata or {}
    action = meta.get("action")
    room = msg.room_id
    if msg.type == PRIVATE and isinstance(meta.get("to"), str):
        room = private_key(meta["to"])
    is_action = isinstance(action, str) and bool(action)
    seq = msg.sequence - SEQ_SHIFT if msg.sequence is not None else None
    return (msg.id, room, msg.sender_id, msg.username, action if is_action else msg.content,
            int(is_action), 1, (msg.timestamp or 0.0) if when is None else when, seq, data, None)


def rows_of_old(rows: Iterable[tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], str | None]:
    """An older version's sent log rows (sequence, time, bytes) as ADD_SAID's, and whose they
    are (the newest's author); a row that can't be read is dropped, logged."""
    out: list[tuple[Any, ...]] = []
    own: tuple[int, str] | None = None
    for seq, when, line in rows:
        try:
            msg = parse_message(bytes(line).rstrip(b"\n"))
        except (WireError, TypeError) as e:
            log.warn("a saved line could not be read back: {why}", why=str(e))
            continue
        out.append(said_row(msg, bytes(line), when))
        if own is None or (seq or 0) >= own[0]:
            own = (seq or 0, msg.sender_id)
    return out, None if own is None else own[1]


def upgraded(left: list[Writes]) -> tuple[list[Writes], str | None]:
    """Jot records a killed run left: an older version's sent log rows read as ADD_SAID's;
    and the author of those (None: there were none)."""
    own = None
    for pending, _high, settings in left:
        old = pending.pop(OLD_SENT, None)
        if old:
            rows, own = rows_of_old(old)
            pending.setdefault(ADD_SAID, []).extend(rows)
            if own is not None:
                settings[OWN_KEY] = own
    return left, own


def upgrade(db: sqlite3.Connection) -> str | None:
    """An older file's ``sent`` table moved into its lines' rows (in the caller's
    transaction) and dropped; returns our peer id found there (None: the table was empty)."""
    rows, own = rows_of_old(db.execute("select seq, ts, line from sent order by seq"))
    db.executemany(ADD_SAID, rows)
    db.execute("drop table sent")
    if own is not None:
        db.execute("insert or replace into settings values (?, ?)", (OWN_KEY, own))
    return own


def load(db: sqlite3.Connection, own: str | None, max_lines: int,
         since: float) -> list[Message]:
    """Our own lines said at ``since`` or later, the last ``max_lines``, oldest first."""
    if own is None:
        return []
    rows = db.execute(f"select raw from lines where {_OURS} and ts >= ? order by seq desc "
                      "limit ?", (own, since, max_lines)).fetchall()
    out = []
    for (data,) in reversed(rows):
        try:
            out.append(parse_message(bytes(data).rstrip(b"\n")))
        except WireError as e:
            log.warn("a saved line could not be read back: {why}", why=str(e))
    return out


def forget(db: sqlite3.Connection, own: str | None, before: float,
           limit: int | None = None) -> int:
    """Our lines said before ``before`` leave the sent log (their bytes go; the history row
    stays): all of them, or the first ``limit`` by sequence that are.  A row whose text is
    empty keeps its bytes (what /search indexed it by).  Returns how many left it."""
    if own is None:
        return 0
    if limit is None:
        return db.execute(f"update lines set seq = null, raw = null where {_OURS} and ts < ? "
                          "and text != ''", (own, before)).rowcount
    return db.execute(
        "update lines set seq = null, raw = null where rowid in (select rowid from lines "
        f"where {_OURS} order by seq limit ?) and ts < ? and text != ''",
        (own, limit, before)).rowcount


class SaidRows:
    """The sent log's part of ``store.Store`` (its base class, as jotting.Jotted and
    retention.Retention are), apart so each stays small: it queues on the Store's writes."""

    _db: sqlite3.Connection
    _pending: dict[str, list[Any]]
    _settings: dict[str, str]
    _written: int
    index: Any
    #: our peer id: whose rows hold the sent log
    _own_id: str | None
    #: the id of the line ``save_sent`` last queued, whose ``remember`` adds no second row
    _sent_id: str
    #: the Store's statement of a new line
    _add_line: str

    if TYPE_CHECKING:  # the Store's (this class comes first among its bases)
        def _jot(self, retry: bool = False) -> None: ...

        def _soon(self) -> None: ...

        def flush(self) -> None: ...

    def save_sent(self, msg: Message, data: bytes | None = None) -> None:
        """A line we said, in the sent log (to resend after a restart): its history row, with
        its sequence and bytes; the ``remember`` of it that follows adds no second row."""
        data = data or encode_message(msg)
        self._pending.setdefault(ADD_SAID, []).append(said_row(msg, data))
        self._sent_id = msg.id
        self._written += len(msg.content) + len(data) + 100
        self._own(msg.sender_id)
        self._settings["last_sequence"] = str(msg.sequence)
        self._soon()

    def save_said(self, said: list[tuple[Message, bytes]]) -> None:
        """A run of our own room lines said at once (saying.py), with their bytes: each kept
        as ``save_sent`` keeps it (its history row holds its sent log: one row a line), in
        one call."""
        if not said:
            return
        lines = self._pending.setdefault(self._add_line, [])
        written = 0
        for msg, data in said:
            text = msg.content
            written += len(text) + len(data) + 100
            lines.append((msg.id, msg.room_id, msg.sender_id, msg.username, text, 0, 1,
                          msg.timestamp or 0.0, msg.sequence - SEQ_SHIFT, data, None))
        self._written += written
        self._own(said[0][0].sender_id)
        self._settings["last_sequence"] = str(said[-1][0].sequence)
        self._jot()
        self._soon()

    def _own(self, sender_id: str) -> None:
        if sender_id != self._own_id:
            self._own_id = sender_id
            self._settings[OWN_KEY] = sender_id

    def load_sent(self, max_lines: int, max_age: float, now: float) -> list[Message]:
        """Our own lines still young enough to resend, oldest first."""
        self.flush()
        return load(self._db, self._own_id, max_lines, now - max_age)

    def _forget_sent(self, before: float, limit: int | None = None) -> None:
        """Our lines said before ``before`` leave the sent log (retention.py)."""
        forget(self._db, self._own_id, before, limit)

    def _upgrade_sent(self, layout: int) -> str | None:
        """An older file kept our sent log in a table of its own: its rows join their lines'
        rows, indexed for /search where they are new, and the file is of ``layout`` then.
        Returns our peer id."""
        own = None
        with self._db:
            self._db.execute("begin")
            if self._db.execute("select 1 from sqlite_master where type = 'table' "
                                "and name = 'sent'").fetchone() is not None:
                before = self._db.execute("select max(rowid) from lines").fetchone()[0] or 0
                own = upgrade(self._db)
                self.index.add_new(before)
            self._db.execute(f"pragma user_version={layout}")
        return own

    def _replayable(self, left: list[Writes]) -> list[Writes]:
        """A killed run's jot records, an older version's sent log rows read as ours now."""
        left, own = upgraded(left)
        if own is not None:
            self._own_id = own
        return left
