"""Rate-limited logging: a flood of bad packets can't flood the log (issue 15.8)."""

from __future__ import annotations

import dataclasses

from twisted.internet.task import Clock
from twisted.logger import Logger, LogLevel, globalLogPublisher
from twisted.trial.unittest import TestCase

from p2pchat import wire
from p2pchat.discovery import BeaconProtocol
from p2pchat.identity import Identity
from p2pchat.node import Node
from p2pchat.ratelog import LOGGED_PER_INTERVAL, SUMMARY_INTERVAL, RateLog


class Captured(TestCase):
    def setUp(self) -> None:
        self.lines: list[dict] = []

        def keep(event: dict) -> None:
            if str(event.get("log_namespace", "")).startswith("p2pchat"):
                self.lines.append(event)

        globalLogPublisher.addObserver(keep)
        self.addCleanup(globalLogPublisher.removeObserver, keep)


class RateLogTest(Captured):
    def test_first_few_then_a_summary(self) -> None:
        clock = Clock()
        limited = RateLog(clock)
        log = Logger(namespace="p2pchat.test")
        logged = sum(limited.emit(log, "x", LogLevel.info, "bad {n}", n=n) for n in range(1000))
        self.assertEqual(logged, LOGGED_PER_INTERVAL)
        limited.emit(log, "y", LogLevel.info, "other kind")  # counted apart
        self.assertEqual(len(self.lines), LOGGED_PER_INTERVAL + 1)
        clock.advance(SUMMARY_INTERVAL)
        limited.flush()
        self.assertEqual(len(self.lines), LOGGED_PER_INTERVAL + 2)
        self.assertEqual((self.lines[-1]["n"], self.lines[-1]["kind"]),
                         (1000 - LOGGED_PER_INTERVAL, "x"))
        # a new interval logs again
        self.assertTrue(limited.emit(log, "x", LogLevel.info, "bad again"))


class BeaconFlood(Captured):
    def test_100000_bad_beacons_make_few_log_lines(self) -> None:
        clock = Clock()
        clock.advance(10_000)
        node = Node("me", clock, identity=Identity.generate())
        beacons = BeaconProtocol(node, "239.255.1.1", 9999, None, clock)
        mallory = Node("mallory", clock, identity=Identity.generate())
        mallory.port = 8000  # (port 0 makes a beacon that does not parse: no signature checked)
        rate = 77_000.0
        for n in range(100_000):
            if n % 2:
                data = b'{"type":"announce","peer_id":'  # not JSON
            else:  # a fresh signed beacon whose signature is wrong
                if n % 10_000 == 0:
                    forged = dataclasses.replace(mallory.beacon("announce"), sig="A" * 88)
                data = wire.encode_beacon(forged)
            beacons.datagramReceived(data, ("10.6.6.6", 9999))
            clock.advance(1 / rate)
            if n % 77_000 == 0:
                node.sweep()
        clock.advance(SUMMARY_INTERVAL)
        node.sweep()
        # per kind: 5 lines per 10 s and one summary (bad datagram, bad signature, budget)
        self.assertLessEqual(len(self.lines), 3 * (LOGGED_PER_INTERVAL + 1) + 2)
        summed = sum(e["n"] for e in self.lines if "kind" in e and "n" in e)
        self.assertGreater(summed, 99_000)  # counted, not lost
        self.assertEqual(len(node.peers), 0)


class LineFlood(Captured):
    """A linked peer that repeats bad lines can't flood the log either: each per-line log
    site of the node (hearing.py, syncing.py, node.py) is rate-limited."""

    def test_bad_lines_from_a_link_make_few_log_lines(self) -> None:
        from p2pchat.wire import CAP_CATCHUP, CAP_OURS, CAP_ROOMS, Message

        from tests.fakes import FakeLink

        clock = Clock()
        clock.advance(10_000)
        node = Node("me", clock)
        link = FakeLink("zed_1", "zed", caps=(CAP_OURS, CAP_CATCHUP, CAP_ROOMS),
                        now=clock.seconds())
        self.assertTrue(node.link_ready(link))
        bad = [
            lambda n: Message(id=f"o{n}", type="chat", sender_id="other_2", content="hi"),
            lambda n: Message(id=f"f{n}", type="frob", sender_id="zed_1"),
            lambda n: Message(id=f"g{n}", type="file", sender_id="zed_1",
                              metadata={"op": "offer"}),
            lambda n: Message(id=f"r{n}", type="rooms", sender_id="zed_1",
                              metadata={"rooms": "not a list"}),
            lambda n: Message(id=f"s{n}", type="ack", sender_id="zed_1",
                              metadata={"ack": "not a number"}),
            lambda n: Message(id=f"p{n}", type="private", sender_id="zed_1", content="hi",
                              metadata={"to": "someone_else"}),
        ]
        for n in range(2000):
            for make in bad:
                node.message_received(link, make(n))
        texts = ("sent a line as", "not known here", "bad rooms line", "bad {kind} from",
                 "private line not for us", "a file line from")
        for text in texts:
            logged = [e for e in self.lines if text in str(e.get("log_format", ""))]
            self.assertTrue(logged, text)  # the site logs at all
            self.assertLessEqual(len(logged), LOGGED_PER_INTERVAL, text)


class HotDebugLines(Captured):
    """A debug line on a hot path is made only under --debug (logs.debugging): without it
    the Logger call alone built its event for a filter to drop, 10,000 times in a room of
    100 forming."""

    def test_first_heard_only_when_debugging(self) -> None:
        from p2pchat import forwarding, logs

        self.addCleanup(logs.configure, logs._settings["path"], bool(logs._settings["debug"]))
        logs.configure(None, False)
        forwarding._first_heard("abcd", "efgh", 2)
        self.assertEqual(self.lines, [])
        logs.configure(None, True)
        forwarding._first_heard("abcd", "efgh", 2)
        self.assertEqual([e["log_level"] for e in self.lines], [LogLevel.debug])
