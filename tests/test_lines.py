"""The line face without a terminal: a LineFace on a StringTransport and a real Node."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from p2pchat.lines import LineFace
from p2pchat.node import CAPS, Node
from p2pchat.wire import SYNC, Message
from tests.fakes import FakeLink


class WordingTests(unittest.TestCase):
    def setUp(self) -> None:
        clock = Clock()
        clock.advance(1_700_000_000)
        self.node = Node("alice", clock, peer_id="alice_0000")
        self.face = LineFace(self.node, on_quit=lambda: None)
        self.transport = StringTransport()
        self.face.makeConnection(self.transport)
        link = FakeLink("bob_0001", "bob", caps=CAPS)
        self.node.link_ready(link)
        self.node.message_received(link, Message(id="s", type=SYNC, sender_id=link.peer_id,
                                                 username="bob",
                                                 metadata={"sent": 0, "have": None}))

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
