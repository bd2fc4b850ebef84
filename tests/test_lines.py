"""The line face without a terminal: a LineFace on a StringTransport and a FakeChat."""

from __future__ import annotations

from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from p2pchat.lines import LineFace
from tests.fakechat import FakeChat


class WordingTests(unittest.TestCase):
    def setUp(self) -> None:
        self.chat = FakeChat()
        self.face = LineFace(self.chat, on_quit=lambda: None)
        self.transport = StringTransport()
        self.face.makeConnection(self.transport)
        self.chat.link("bob")

    def said(self) -> str:
        out = self.transport.value().decode("utf-8")
        self.transport.clear()
        return out

    def test_private_talk_reads_as_one(self) -> None:
        self.said()
        self.face.lineReceived(b"/query bob")
        out = self.said()
        self.assertIn("talking privately with bob (/part to end)", out)
        self.assertNotIn("now talking in bob", out)
        self.face.lineReceived(b"/join #ops")
        self.assertIn("now talking in #ops", self.said())

    def test_a_peer_reached_through_others_says_through_whom(self) -> None:
        from p2pchat import events
        self.said()
        self.chat.emit(events.PeerJoined(0.0, "carol", "carol_1", "via bob"))
        self.chat.emit(events.PeerJoined(0.0, "dave", "dave_1", "10.0.0.4:8080"))
        out = self.said()
        self.assertIn("* carol joined (via bob)", out)
        self.assertIn("* dave joined\n", out.replace("\r\n", "\n"))
