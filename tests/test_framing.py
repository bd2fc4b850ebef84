"""A live link's reads split once (framing.py), with LineReceiver's guarantees kept: order,
the partial last line, the length limit, nothing more once paused or closing."""

from __future__ import annotations

from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase

from p2pchat.framing import LinesPerRead


class Recording(LinesPerRead):
    delimiter = b"\n"
    MAX_LENGTH = 20

    def __init__(self, at_once: bool = True) -> None:
        self.got: list[bytes] = []
        self.too_long: list[bytes] = []
        self.at_once = at_once
        self.pause_after = -1
        self.close_after = -1

    def lines_at_once(self) -> bool:
        return self.at_once

    def lineReceived(self, line: bytes) -> None:
        self.got.append(line)
        if len(self.got) == self.pause_after:
            self.pauseProducing()
        if len(self.got) == self.close_after:
            self.transport.loseConnection()

    def lineLengthExceeded(self, line: bytes) -> None:
        self.too_long.append(line)
        self.transport.loseConnection()


class LinesOfARead(TestCase):
    def make(self, at_once: bool = True) -> Recording:
        proto = Recording(at_once)
        proto.makeConnection(StringTransport())
        return proto

    def test_every_line_in_order_and_the_partial_one_kept(self) -> None:
        proto = self.make()
        proto.dataReceived(b"a\nbb\nccc\nd")
        self.assertEqual(proto.got, [b"a", b"bb", b"ccc"])
        proto.dataReceived(b"d\n\ne\n")
        self.assertEqual(proto.got, [b"a", b"bb", b"ccc", b"dd", b"", b"e"])

    def test_as_line_receiver_does_when_not_at_once(self) -> None:
        for at_once in (True, False):
            proto = self.make(at_once)
            for chunk in (b"x\ny", b"y\nz" * 3, b"\n", b"q\n\nr"):
                proto.dataReceived(chunk)
            self.assertEqual(proto.got, [b"x", b"yy", b"zy", b"zy", b"z", b"q", b""], at_once)

    def test_a_line_too_long_stops_the_read(self) -> None:
        proto = self.make()
        proto.dataReceived(b"ok\n" + b"x" * 21 + b"\nafter\n")
        self.assertEqual(proto.got, [b"ok"])
        self.assertEqual(proto.too_long, [b"x" * 21])

    def test_a_partial_line_too_long(self) -> None:
        proto = self.make()
        proto.dataReceived(b"ok\n" + b"x" * 20)
        self.assertEqual(proto.too_long, [])  # 20 bytes may still be a line
        proto.dataReceived(b"x")
        self.assertEqual(proto.too_long, [b"x" * 21])

    def test_paused_mid_read_the_rest_waits_in_order(self) -> None:
        proto = self.make()
        proto.pause_after = 2
        proto.dataReceived(b"1\n2\n3\n4\n5")
        self.assertEqual(proto.got, [b"1", b"2"])
        proto.dataReceived(b"\n6\n")  # read while paused: kept
        self.assertEqual(proto.got, [b"1", b"2"])
        proto.resumeProducing()
        self.assertEqual(proto.got, [b"1", b"2", b"3", b"4", b"5", b"6"])

    def test_nothing_more_once_closing(self) -> None:
        proto = self.make()
        proto.close_after = 1
        proto.dataReceived(b"1\n2\n3\n")
        self.assertEqual(proto.got, [b"1"])
