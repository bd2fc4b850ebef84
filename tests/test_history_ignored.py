"""``/history N`` shows N lines even when an ignored peer said the last ones.

The ignored lines were dropped after the last N were read, so with mallory's three lines
last, ``/history 2`` said "no history for #general" and ``/history 5`` showed two lines.
"""

from __future__ import annotations

import os

from p2pchat.node import Node
from p2pchat.store import Store
from p2pchat.trust import Trust

from tests.test_nicks import NickTest, chat


class HistoryOfIgnored(NickTest):
    def test_history_counts_only_lines_shown(self) -> None:
        store = Store(os.path.join(self.mktemp() + "-history.sqlite3"))
        self.addCleanup(store.close)
        node = Node("alice", self.clock, identity=self.me, trust=Trust(self.pins), store=store)
        self.node = node
        bob, mallory = self.link("bob", 51), self.link("mallory", 52)
        for n in range(3):
            node.message_received(bob, chat(bob, f"bob {n}", f"b{n}"))
        for n in range(3):
            node.message_received(mallory, chat(mallory, f"spam {n}", f"m{n}"))
        node.ignore("mallory")
        self.assertEqual([line.text for line in node.history("general", 2)],
                         ["bob 1", "bob 2"])
        self.assertEqual([line.text for line in node.history("general", 5)],
                         ["bob 0", "bob 1", "bob 2"])
