"""The peer table's liveness rules, the dial rule and backoff, under a plain clock value."""

from __future__ import annotations

import random

from twisted.trial.unittest import TestCase

from p2pchat.peers import Backoff, Heard, Liveness, PeerTable, should_dial
from p2pchat.wire import Beacon


def beacon(peer_id: str = "bob_1", kind: str = "announce", port: int = 8081,
           name: str = "bob") -> Beacon:
    return Beacon(type=kind, peer_id=peer_id, username=name, port=port, timestamp=0.0)


class DialRule(TestCase):
    def test_smaller_dials(self) -> None:
        self.assertTrue(should_dial("alice_1", "bob_1"))
        self.assertFalse(should_dial("bob_1", "alice_1"))
        self.assertFalse(should_dial("same", "same"))

    def test_byte_order_not_locale(self) -> None:
        # "B" (0x42) sorts before "a" (0x61) in byte order.
        self.assertTrue(should_dial("Bob", "alice"))
        # UTF-8 bytes: "é" (0xC3 0xA9) sorts after "z".
        self.assertTrue(should_dial("z", "é"))


class Liveness_(TestCase):
    def test_alive_stale_gone(self) -> None:
        table = PeerTable()
        self.assertIs(table.heard(beacon(), "127.0.0.1", now=100.0), Heard.NEW)
        peer = table.get("bob_1")
        self.assertIs(peer.liveness(109.9), Liveness.ALIVE)
        self.assertIs(peer.liveness(110.0), Liveness.STALE)
        self.assertIs(peer.liveness(129.9), Liveness.STALE)
        self.assertIs(peer.liveness(130.0), Liveness.GONE)
        self.assertEqual(table.sweep(129.0), [])
        self.assertEqual([p.peer_id for p in table.sweep(130.0)], ["bob_1"])
        self.assertNotIn("bob_1", table)

    def test_refresh_and_move(self) -> None:
        table = PeerTable()
        table.heard(beacon(), "127.0.0.1", now=0.0)
        self.assertIs(table.heard(beacon(), "127.0.0.1", now=20.0), Heard.REFRESHED)
        self.assertIs(table.get("bob_1").liveness(25.0), Liveness.ALIVE)
        self.assertIs(table.heard(beacon(port=9000), "127.0.0.1", now=21.0), Heard.MOVED)
        self.assertEqual(table.get("bob_1").port, 9000)

    def test_pong_only_refreshes(self) -> None:
        table = PeerTable()
        self.assertIs(table.heard(beacon(kind="pong"), "127.0.0.1", now=0.0), Heard.IGNORED)
        self.assertEqual(len(table), 0)
        self.assertIs(table.heard(beacon(kind="ping"), "127.0.0.1", now=0.0), Heard.NEW)

    def test_bounded(self) -> None:
        table = PeerTable(limit=3)
        for i in range(3):
            table.heard(beacon(f"p{i}"), "127.0.0.1", now=0.0)
        self.assertIs(table.heard(beacon("p99"), "127.0.0.1", now=0.0), Heard.FULL)
        self.assertEqual(len(table), 3)
        # known peers still refresh when full
        self.assertIs(table.heard(beacon("p1"), "127.0.0.1", now=1.0), Heard.REFRESHED)

    def test_evict_address(self) -> None:
        table = PeerTable()
        table.heard(beacon("old_1", port=8080), "10.0.0.2", now=0.0)
        signer = Beacon(type="announce", peer_id="signer", username="s", port=8081,
                        timestamp=0.0, fp="ab" * 32)
        table.heard(signer, "10.0.0.2", now=0.0)
        self.assertEqual([p.peer_id for p in table.evict_address("new_1", "10.0.0.2", 8080)],
                         ["old_1"])
        # a peer that signs is evicted only by a signed beacon
        self.assertEqual(table.evict_address("new_2", "10.0.0.2", 8081), [])
        self.assertEqual([p.peer_id for p in table.evict_address("new_2", "10.0.0.2", 8081,
                                                                signed=True)], ["signer"])

    def test_left(self) -> None:
        table = PeerTable()
        table.heard(beacon(), "127.0.0.1", now=0.0)
        self.assertEqual(table.left("bob_1").username, "bob")
        self.assertIsNone(table.left("bob_1"))


class Backoff_(TestCase):
    def test_doubles_to_cap_with_bounded_jitter(self) -> None:
        backoff = Backoff(first=0.25, cap=30.0, jitter=0.25, rng=random.Random(7))
        delays = [backoff.next_delay() for _ in range(12)]
        bases = [min(30.0, 0.25 * 2**i) for i in range(12)]
        for delay, base in zip(delays, bases):
            self.assertTrue(base * 0.75 <= delay <= base * 1.25, (delay, base))
        self.assertNotEqual(len(set(delays)), 1)

    def test_no_overflow_after_many_failures(self) -> None:
        backoff = Backoff(first=0.25, cap=30.0, jitter=0.0)
        for _ in range(5000):
            delay = backoff.next_delay()
        self.assertEqual(delay, 30.0)

    def test_reset(self) -> None:
        backoff = Backoff(first=1.0, jitter=0.0)
        backoff.next_delay()
        backoff.next_delay()
        backoff.reset()
        self.assertEqual(backoff.next_delay(), 1.0)
