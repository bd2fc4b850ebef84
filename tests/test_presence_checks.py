"""A peer's unchanged beacons are believed without their signature check for a while
(presence._unchanged): a linked or proven one's for slots.RECHECK_AFTER, anyone's for
slots.UNPROVEN_RECHECK_AFTER; whatever differs is still checked."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

from twisted.trial.unittest import TestCase

from p2pchat import presence, wire
from p2pchat.discovery import ANNOUNCE_INTERVAL
from p2pchat.slots import RECHECK_AFTER, UNPROVEN_RECHECK_AFTER
from tests import test_security

HOST = "10.0.0.2"  # where test_security.SignedBeacons.hear says bob's beacons come from


class UncheckedBeacons(TestCase):
    hear = test_security.SignedBeacons.hear

    def setUp(self) -> None:
        # me, bob (port 8081), the clock
        test_security.SignedBeacons.setUp(self)  # type: ignore[arg-type]
        self.checks = 0
        real = presence.verify_beacon

        def counted(*args: object) -> bool:
            self.checks += 1
            return real(*args)  # type: ignore[arg-type]

        self.patch(presence, "verify_beacon", counted)

    def link(self, fp: str | None = None) -> None:
        """bob linked over TLS that proved ``fp`` (his key unless told)."""
        self.me.links[self.bob.peer_id] = SimpleNamespace(  # type: ignore[assignment]
            fp=self.bob.identity.fingerprint if fp is None else fp, ours=True,
            last_heard=self.clock.seconds(), said_leave=False, dialer_id=self.me.peer_id,
            address=f"{HOST}:8081")

    def forged(self, **changes: object) -> wire.Beacon:
        """bob's first beacon with a fresh stamp and ``changes``: its signature no longer
        matches (what anyone on the LAN can send)."""
        changes.setdefault("timestamp", self.clock.seconds())
        return dataclasses.replace(self.first, **changes)  # type: ignore[arg-type]

    def start(self, fp: str | None = None) -> None:
        self.first = self.bob.beacon("announce")
        self.hear(self.first)
        self.link(fp)
        self.assertEqual(self.checks, 1)

    def announces_for(self, window: float) -> None:
        """bob's beacons every ANNOUNCE_INTERVAL for three ``window``s: each believed, and
        checked once per ``window``, not each."""
        for _ in range(int(3 * window / ANNOUNCE_INTERVAL)):
            self.clock.advance(ANNOUNCE_INTERVAL)
            self.hear(self.bob.beacon("announce"))
        self.assertEqual(self.me.peers.get(self.bob.peer_id).last_seen, self.clock.seconds())
        self.assertLessEqual(self.checks, 1 + 3 + 1)
        self.assertGreaterEqual(self.checks, 1 + 2)

    def test_a_linked_peers_unchanged_beacons_are_checked_once_a_while(self) -> None:
        self.start()
        self.announces_for(RECHECK_AFTER)

    def test_unlinked_or_unproven_peers_beacons_are_checked_more_often(self) -> None:
        """Once per UNPROVEN_RECHECK_AFTER (a room forming checked nearly every beacon it
        heard), not once per RECHECK_AFTER; and a forged unchanged one past that is refused."""
        self.start(fp="")  # a link whose TLS proved no key
        self.announces_for(UNPROVEN_RECHECK_AFTER)
        del self.me.links[self.bob.peer_id]
        checks = self.checks
        self.clock.advance(UNPROVEN_RECHECK_AFTER)
        self.hear(self.bob.beacon("announce"))
        self.assertEqual(self.checks, checks + 1)
        # a forged one for a peer with no link, past the window, is refused
        self.clock.advance(UNPROVEN_RECHECK_AFTER)
        seen = self.me.peers.get(self.bob.peer_id).last_seen
        self.hear(self.forged())
        self.assertEqual(self.checks, checks + 2)
        self.assertEqual(self.me.peers.get(self.bob.peer_id).last_seen, seen)

    def test_within_the_window_a_forged_one_only_says_still_there(self) -> None:
        self.start(fp="")
        del self.me.links[self.bob.peer_id]
        self.clock.advance(1)
        self.hear(self.forged(timestamp=self.clock.seconds() + 1000))
        self.assertEqual(self.checks, 1)
        info = self.me.peers.get(self.bob.peer_id)
        self.assertEqual(info.last_seen, self.clock.seconds())
        self.assertEqual(info.last_stamp, self.first.timestamp)  # its stamp not taken

    def test_whatever_differs_is_checked(self) -> None:
        self.start()
        for changes, host in (({"port": 6666}, HOST), ({"username": "mallory"}, HOST),
                              ({"caps": ("p2pchat",)}, HOST), ({}, "10.6.6.6")):
            self.clock.advance(1)
            self.hear(self.forged(**changes), host=host)
            info = self.me.peers.get(self.bob.peer_id)
            self.assertEqual((info.host, info.port, info.username, info.caps),
                             (HOST, 8081, "bob", self.first.caps), (changes, host))
        self.assertEqual(self.checks, 1 + 4)
        self.clock.advance(1)
        self.hear(self.forged(type="leave"))  # a leave is checked too (and its link is up)
        self.assertEqual(self.checks, 1 + 5)
        self.assertIn(self.bob.peer_id, self.me.peers)

    def test_an_unchecked_beacon_cant_hold_back_the_next_real_one(self) -> None:
        self.start()
        self.hear(self.forged(timestamp=self.clock.seconds() + 1000))  # believed, unchecked
        self.assertEqual(self.checks, 1)
        self.clock.advance(ANNOUNCE_INTERVAL)
        self.bob.port = 8082  # bob's own next beacon (moved port: checked) is not a "replay"
        self.hear(self.bob.beacon("announce"))
        self.assertEqual(self.checks, 2)
        self.assertEqual(self.me.peers.get(self.bob.peer_id).port, 8082)

    def test_past_recheck_after_a_forged_unchanged_beacon_is_refused(self) -> None:
        self.start()
        self.clock.advance(RECHECK_AFTER)
        seen = self.me.peers.get(self.bob.peer_id).last_seen
        self.hear(self.forged())
        self.assertEqual(self.checks, 2)
        self.assertEqual(self.me.peers.get(self.bob.peer_id).last_seen, seen)
