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

    def test_send_says_it_hashes_only_when_it_does(self) -> None:
        from twisted.internet.defer import Deferred

        from p2pchat.interfaces import Done, Refused
        self.said()
        self.chat.files.answer = Refused("no file or folder /nope")
        self.face.lineReceived(b"/send bob /nope")
        out = self.said()
        self.assertIn("no file or folder /nope", out)
        self.assertNotIn("hashing", out)
        later: Deferred = Deferred()
        self.chat.files.send = lambda target, path: later  # type: ignore[method-assign]
        self.face.lineReceived(b"/send bob /big.iso")
        self.assertIn("hashing /big.iso to offer it ...", self.said())
        later.callback(Done("offered big.iso"))
        self.assertIn("offered big.iso", self.said())


class BurstTests(unittest.TestCase):
    def test_a_burst_on_stdin_is_taken_in_steps(self) -> None:
        """Thousands of lines written at once are said LINES_PER_TURN per reactor turn (each
        is signed, saved and sent), not in one callback that holds the reactor."""
        from p2pchat.lines import LINES_PER_TURN

        chat, turns = FakeChat(), []  # what waits for the next reactor turn
        face = LineFace(chat, on_quit=lambda: None, call_soon=turns.append)
        face.makeConnection(StringTransport())
        count = LINES_PER_TURN * 2 + 7
        face.dataReceived(b"".join(b"line %d\n" % i for i in range(count)))
        self.assertEqual(len(chat.said), LINES_PER_TURN)
        turns.pop(0)()
        self.assertEqual(len(chat.said), LINES_PER_TURN * 2)
        turns.pop(0)()
        self.assertEqual(turns, [])
        self.assertEqual([text for _, text, _ in chat.said], [f"line {i}" for i in range(count)])
