"""Our message ids: 16 lowercase hex digits like the reference's, 44 random bits, and ordered
by the time they were made (wire.new_message_id), so a history keyed by id writes a burst's
lines to a few pages of its index instead of one page each."""

from __future__ import annotations

import sqlite3
import string
from unittest import mock

from twisted.trial.unittest import TestCase

from p2pchat import wire


class Ids(TestCase):
    def test_the_shape_of_the_reference(self) -> None:
        for _ in range(1000):
            ident = wire.new_message_id()
            self.assertEqual(len(ident), 16)
            self.assertTrue(set(ident) <= set(string.hexdigits.lower()[:16]), ident)

    def test_ordered_by_time_in_steps_of_a_sixteenth_of_a_second(self) -> None:
        made = []
        for n in range(200):
            with mock.patch.object(wire.time, "time", return_value=1_796_000_000.0 + n / 8):
                made.append(wire.new_message_id())
        self.assertEqual(made, sorted(made))
        self.assertEqual(len(set(made)), len(made))

    def test_random_within_a_step(self) -> None:
        with mock.patch.object(wire.time, "time", return_value=1_796_000_000.0):
            made = [wire.new_message_id() for _ in range(2000)]
        self.assertEqual(len({m[:5] for m in made}), 1)  # one step: one prefix
        self.assertEqual(len(set(made)), len(made))
        self.assertNotEqual(made, sorted(made))  # not a counter: the rest is random
        self.assertGreater(len({m[5] for m in made}), 12)

    def test_a_burst_lands_on_few_pages_of_an_index_by_id(self) -> None:
        """What the order is for: a burst of ids made one after another, inserted into a
        table keyed by id that already holds random ones, touches few of its pages."""
        db = sqlite3.connect(":memory:")
        db.execute("create table t (id text primary key)")
        with mock.patch.object(wire.time, "time", return_value=1_796_000_000.0):
            old = [(wire.secrets.token_hex(8),) for _ in range(20_000)]
        db.executemany("insert into t values (?)", old)
        burst = [(wire.new_message_id(),) for _ in range(500)]
        db.executemany("insert into t values (?)", burst)
        ids = [row[0] for row in db.execute("select id from t order by id")]
        places = sorted(ids.index(b[0]) for b in burst)
        self.assertLess(places[-1] - places[0], 600)  # together, among 20,500
