"""The history's upkeep (retention.py) does nothing while nothing is written: an idle peer ran
its deletes, a count and four pragmas every second.  It runs again at the next write, and at
least every QUIET_UPKEEP_INTERVAL so lines still age out."""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from bench.store import lines_in
from p2pchat.retention import QUIET_UPKEEP_INTERVAL
from p2pchat.store import Store, StoredLine


class CountingDb:
    """The store's connection, counting the statements run on it."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.statements = 0

    def execute(self, sql: str, *args: Any) -> Any:
        self.statements += 1
        return self.db.execute(sql, *args)

    def executemany(self, sql: str, rows: Any) -> Any:
        self.statements += 1
        return self.db.executemany(sql, rows)

    def executescript(self, sql: str) -> Any:
        self.statements += 1
        return self.db.executescript(sql)

    def __enter__(self) -> Any:
        return self.db.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return self.db.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


class QuietUpkeep(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        folder = self.mktemp()
        os.makedirs(folder)
        self.store = Store(os.path.join(folder, "h.sqlite3"),
                           call_soon=lambda f: self.clock.callLater(0.05, f),
                           max_age=3600.0)
        self.addCleanup(self.store.close)
        self.db = self.store._db = CountingDb(self.store._db)  # type: ignore[assignment]

    def say(self, text: str, when: float | None = None) -> None:
        self.store.remember(StoredLine(f"id-{text}", "general", "bob_1", "bob", text, False,
                                       False, self.clock.seconds() if when is None else when))
        self.clock.advance(0.05)

    def upkeep(self, seconds: float = 1.0) -> int:
        """One upkeep ``seconds`` on; the statements it ran."""
        self.clock.advance(seconds)
        before = self.db.statements
        self.store.upkeep(self.clock.seconds())
        return self.db.statements - before

    def test_nothing_written_nothing_done(self) -> None:
        self.say("hello")
        self.assertGreater(self.upkeep(), 0)  # after a write: the whole upkeep
        for _ in range(3):  # until one finds nothing to do (packing, the log written back)
            self.upkeep()
        self.assertEqual([self.upkeep() for _ in range(5)], [0] * 5)
        self.say("again")
        self.assertGreater(self.upkeep(), 0)

    def test_lines_still_age_out_with_nothing_written(self) -> None:
        self.say("old")
        self.say("new")
        for _ in range(4):
            self.upkeep()
        self.assertEqual(self.upkeep(), 0)
        self.clock.advance(3600.0 - 30)  # "old" and "new" are past the hour now
        self.assertEqual(lines_in(self.store), 2)
        self.assertGreater(self.upkeep(QUIET_UPKEEP_INTERVAL), 0)
        self.assertEqual(lines_in(self.store), 0)
