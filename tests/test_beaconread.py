"""The quick beacon reader (beaconread.py) gives what wire.parse_beacon gives, for beacons
well formed and not."""

from __future__ import annotations

import json
import sys
from unittest import mock

import msgspec  # noqa: F401  (imported, as after the first link: the quick way is taken)
from twisted.trial import unittest

from p2pchat import beaconread, identity, wire
from p2pchat.wire import Beacon, WireError, encode_beacon

GOOD = Beacon(type="announce", peer_id="abcdefghijklmnop", username="c17", port=40000,
              timestamp=1764600000.25, address="0.0.0.0:40000",
              caps=("tls", "gossip"), fp="ab" * 32, pk="A" * 44, sig="B" * 88)


def _same(case: unittest.TestCase, data: bytes) -> None:
    try:
        want: Beacon | str = wire.parse_beacon(data)
    except WireError as e:
        want = str(e)
    try:
        got: Beacon | str = beaconread.read_beacon(data)
    except WireError as e:
        got = str(e)
    case.assertEqual(got, want, data)


class ReadBeaconTests(unittest.TestCase):
    def test_well_formed_is_read_without_the_long_way(self) -> None:
        data = encode_beacon(GOOD)
        with mock.patch.object(beaconread, "parse_beacon", side_effect=AssertionError):
            got = beaconread.read_beacon(data)
        self.assertEqual(got, wire.parse_beacon(data))
        self.assertEqual(got.stamp, json.loads(data)["timestamp"])

    def test_both_ways_agree(self) -> None:
        base = json.loads(encode_beacon(GOOD))
        variants: list[bytes] = [encode_beacon(GOOD), b"", b"[]", b"{", b"null", b"\xff",
                                 b"x" * 2000]
        changes: list[dict] = [
            {"port": 3.0}, {"port": 0}, {"port": 70000}, {"port": True}, {"port": None},
            {"type": "bogus"}, {"type": None}, {"peer_id": ""}, {"peer_id": "p" * 200},
            {"username": "\u00e9t\u00e9"}, {"username": "n" * 65}, {"username": None},
            {"timestamp": "yesterday"}, {"timestamp": ""}, {"timestamp": "t" * 70},
            {"sequence": -1}, {"sequence": 2**64}, {"sequence": None}, {"caps": "tls"},
            {"caps": [1]}, {"caps": [""]}, {"caps": ["c"] * 33}, {"caps": None},
            {"fp": "AB" * 32}, {"fp": "ab"}, {"fp": ""}, {"pk": "k" * 65}, {"sig": 5},
            {"sig": "s" * 129}, {"address": 7}, {"extra": [1, 2]},
        ]
        for change in changes:
            variants.append(json.dumps({**base, **change}).encode())
        for key in base:
            variants.append(json.dumps({k: v for k, v in base.items() if k != key}).encode())
        self.assertGreater(len(variants), 40)
        for data in variants:
            _same(self, data)

    def test_without_msgspec_the_long_way(self) -> None:
        """A peer alone has not imported msgspec: the reader does not import it."""
        self.patch(beaconread, "_decode", None)
        with mock.patch.dict(sys.modules, {"msgspec": None}):
            del sys.modules["msgspec"]
            with mock.patch.object(beaconread, "parse_beacon",
                                   wraps=wire.parse_beacon) as long_way:
                beaconread.read_beacon(encode_beacon(GOOD))
            self.assertEqual(long_way.call_count, 1)
            self.assertNotIn("msgspec", sys.modules)


    def test_msgspec_being_imported_in_a_thread_the_long_way(self) -> None:
        """latetls.preload imports msgspec in a thread while beacons come: a module half
        made (in sys.modules from the start of its import) is not bound; no traceback, the
        beacon is read the long way, and the quick way is bound once it is in."""
        import types

        self.patch(beaconread, "_decode", None)
        half = types.ModuleType("msgspec")
        half.__spec__ = types.SimpleNamespace(_initializing=True)  # type: ignore[assignment]
        with mock.patch.dict(sys.modules, {"msgspec": half}):
            with mock.patch.object(beaconread, "parse_beacon",
                                   wraps=wire.parse_beacon) as long_way:
                got = beaconread.read_beacon(encode_beacon(GOOD))
            self.assertEqual(long_way.call_count, 1)
        self.assertEqual(got, wire.parse_beacon(encode_beacon(GOOD)))
        self.assertIsNone(beaconread._decode)
        beaconread.read_beacon(encode_beacon(GOOD))
        self.assertIsNotNone(beaconread._decode)  # msgspec whole: bound now


class PeerIdTests(unittest.TestCase):
    def test_peer_id_kept(self) -> None:
        """The id of a fingerprint heard before is not worked out again."""
        fp = "cd" * 32
        first = identity.peer_id_for(fp)
        with mock.patch.object(identity, "short_form", side_effect=AssertionError):
            self.assertEqual(identity.peer_id_for(fp), first)


class HeardTests(unittest.TestCase):
    def test_discovery_reads_the_quick_way(self) -> None:
        """A datagram heard goes to the node as the Beacon read the quick way, never through
        json.loads (the cost of an idle peer in a room of 100)."""
        from twisted.internet import task

        from p2pchat.discovery import BeaconProtocol

        heard: list[tuple[Beacon, str]] = []
        node = mock.Mock()
        node.beacon_heard = lambda b, host, together=False: heard.append((b, host))
        proto = BeaconProtocol(node, "239.255.1.2", 4567, None, task.Clock())
        with mock.patch.object(wire.json, "loads", side_effect=AssertionError):
            proto.datagramReceived(encode_beacon(GOOD), ("127.0.0.1", 4567))
        self.assertEqual(heard, [(wire.parse_beacon(encode_beacon(GOOD)), "127.0.0.1")])
