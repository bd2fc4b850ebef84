"""The sealed items a peer holds (carrier.py), kept in the data dir so they outlive a restart:
one small SQLite file of its own, apart from the history, holding the items as they travel
(ciphertext, never a plaintext line of others) and the ids of the sealed lines opened here.

Each change is one statement, committed at once (WAL, ``synchronous=NORMAL``: a few tens of
microseconds, bounded by the carrier's quotas).  If the file can't be used, the items are
held in memory only, and the log says why once.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from twisted.logger import Logger

from p2pchat.sealed import Item, parse_item
from p2pchat.sealterms import SEALED_NAME  # noqa: F401 (re-exported)
from p2pchat.wire import WireError

log = Logger()

#: Which bag an item is in: held for others, or our own (a line waiting for its receipt, a
#: receipt waiting to be handed on).
HELD = "held"
OWN = "own"

_SCHEMA = """
create table if not exists items (id text primary key, bag text not null, data text not null,
                                  note text);
create table if not exists opened (id text primary key, ts real not null);
"""


class SealStore:
    """The file; ``None`` as a path keeps nothing (a node without a data dir)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        if path is None:
            return
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("pragma journal_mode=wal")
            self._db.execute("pragma synchronous=normal")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as e:
            self._failed(e)

    def _failed(self, e: Exception) -> None:
        log.error("sealed items can't be kept in {path} ({why}): held in memory only",
                  path=self.path, why=str(e))
        if self._db is not None:
            self._db.close()
        self._db = None

    def _run(self, sql: str, args: tuple[Any, ...]) -> None:
        if self._db is None:
            return
        try:
            self._db.execute(sql, args)
        except sqlite3.Error as e:
            self._failed(e)

    def load(self) -> tuple[list[tuple[str, Item, dict[str, Any] | None]], dict[str, float]]:
        """(bag, item, note) of every item kept, and the opened ids with their items' time."""
        if self._db is None:
            return [], {}
        try:
            rows = self._db.execute("select bag, data, note from items order by rowid").fetchall()
            opened = dict(self._db.execute("select id, ts from opened order by rowid"))
        except sqlite3.Error as e:
            self._failed(e)
            return [], {}
        items = []
        for bag, data, note in rows:
            try:
                item = parse_item(json.loads(data))
                kept = json.loads(note) if note else None
            except (WireError, ValueError, TypeError) as e:
                log.warn("a kept sealed item could not be read back: {why}", why=str(e))
                continue
            items.append((str(bag), item, kept if isinstance(kept, dict) else None))
        return items, opened

    def put(self, bag: str, item: Item, note: dict[str, Any] | None = None) -> None:
        self._run("insert or replace into items (id, bag, data, note) values (?, ?, ?, ?)",
                  (item.id, bag, json.dumps(item.metadata()),
                   json.dumps(note) if note is not None else None))

    def delete(self, items: list[Item]) -> None:
        for item in items:
            self._run("delete from items where id = ?", (item.id,))

    def opened(self, item_id: str, ts: float) -> None:
        self._run("insert or replace into opened (id, ts) values (?, ?)", (item_id, ts))

    def forget_opened(self, ids: list[str]) -> None:
        for item_id in ids:
            self._run("delete from opened where id = ?", (item_id,))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
