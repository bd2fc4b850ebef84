"""What every face shares (face.py), tested on a FakeChat: one /query, one history block,
one clock text, the same answers in the line face and the console."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from p2pchat.console import ConsoleFace
from p2pchat.console import format as fmt
from p2pchat.face import CommandFace, clock_text
from p2pchat.interfaces import StoredLine
from p2pchat.lines import LineFace, format_event
from p2pchat import events
from tests.fakechat import NOW, FakeChat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Lines:
    """A LineFace on a FakeChat, its output read line by line."""

    def __init__(self) -> None:
        self.chat = FakeChat()
        self.face = LineFace(self.chat, on_quit=lambda: None)
        self.transport = StringTransport()
        self.face.makeConnection(self.transport)
        self.transport.clear()

    def enter(self, text: str) -> list[str]:
        self.face.lineReceived(text.encode("utf-8"))
        out = self.transport.value().decode("utf-8").splitlines()
        self.transport.clear()
        return out


class Console:
    """A ConsoleFace on a FakeChat; what it shows, as text."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.chat = FakeChat(clock=self.clock)
        self.face = ConsoleFace(self.chat, on_quit=lambda: None, clock=self.clock)
        self.face.attach()
        self.face.clear()

    def enter(self, text: str) -> list[str]:
        before = len(self.face.messages.rows_text())
        self.face.submit(text)
        return self.face.messages.rows_text()[before:]


class ClockTextTests(unittest.TestCase):
    def test_every_face_stamps_with_the_same_text(self) -> None:
        want = time.strftime("%H:%M:%S", time.localtime(NOW))
        self.assertEqual(clock_text(NOW), want)
        self.assertEqual(clock_text(NOW + 0.9), want)  # the same second
        self.assertEqual(clock_text(NOW + 1), time.strftime("%H:%M:%S", time.localtime(NOW + 1)))
        line = format_event(events.Notice(NOW, "hi"))
        self.assertEqual(line, f"{want} - hi")
        row = fmt.info_row(NOW, "hi")
        self.assertTrue(row.plain().startswith(want), row.plain())


class QueryTests(unittest.TestCase):
    """/query NICK [TEXT] is one piece of code (CommandFace.query) in both faces."""

    def check(self, face: Lines | Console) -> None:
        bob = face.chat.link("bob")
        face.enter("/query bob hello there")
        self.assertEqual(face.face.room, "@bob_0001")
        self.assertEqual(face.chat.calls[-1], ("say", "hello there", "@bob_0001"))
        face.enter("/query bob //not a command")
        self.assertEqual(face.chat.said[-1], ("@bob_0001", "//not a command", False))
        said = len(face.chat.said)
        out = face.enter("/query zed hi")
        self.assertIn("no peer called zed; /users lists who is here", "\n".join(out))
        self.assertEqual(face.face.room, "@bob_0001")
        self.assertEqual(len(face.chat.said), said)
        face.chat.unlink(bob)
        face.enter("/join #ops")
        face.enter("/query bob")  # away: the talk opens, its lines will be kept
        self.assertEqual(face.face.room, "@bob_0001")
        self.assertEqual(len(face.chat.said), said)

    def test_line_face(self) -> None:
        self.check(Lines())

    def test_console(self) -> None:
        self.check(Console())

    def test_too_long_text_is_refused_before_the_talk_opens(self) -> None:
        for face in (Lines(), Console()):
            face.chat.link("bob")
            out = face.enter("/query bob " + "x" * 5000)
            self.assertIn("the limit is", "\n".join(out))
            self.assertEqual(face.face.room, "general")
            self.assertEqual(face.chat.said, [])


class HistoryTests(unittest.TestCase):
    def setUp(self) -> None:
        self.lines = [StoredLine("h1", "general", "bob_0001", "bob", "older words", False,
                                 False, NOW - 60),
                      StoredLine("h2", "general", "bob_0001", "bob", "waves", True, False,
                                 NOW - 30)]

    def test_line_face_writes_the_lines_as_they_are(self) -> None:
        face = Lines()
        face.chat.lines = list(self.lines)
        out = face.enter("/history")
        stamp = clock_text(NOW - 60)
        self.assertEqual(out[1:3], [f"{stamp} [history] <bob> older words",
                                    f"{clock_text(NOW - 30)} [history] * bob waves"])
        self.assertTrue(out[0].endswith("- history of #general, last 2 lines:"), out[0])
        self.assertTrue(out[3].endswith("- end of history"), out[3])
        self.assertEqual(face.enter("/history 1")[1], f"{clock_text(NOW - 30)} [history] * "
                                                      f"bob waves")

    def test_a_face_that_only_shows_info_gets_them_as_info(self) -> None:
        class Plain(CommandFace):
            def __init__(self, chat: FakeChat) -> None:
                self.node = chat
                self.info: list[str] = []

            def show_info(self, lines: list[str]) -> None:
                self.info.extend(lines)

        chat = FakeChat()
        chat.lines = list(self.lines)
        face = Plain(chat)
        face.handle_input("/history")
        self.assertEqual(len(face.info), 4)
        self.assertIn("[history] <bob> older words", face.info[1])
        face.info.clear()
        chat.lines = []
        face.handle_input("/history")
        self.assertEqual(face.info, ["no history for #general"])


class FakeChatTypeTests(unittest.TestCase):
    def test_fake_chat_is_an_ichat_for_mypy(self) -> None:
        """The faces' tests use nothing the real chat lacks: mypy checks FakeChat against
        interfaces.IChat (the ``_check`` line of tests/fakechat.py)."""
        try:
            import mypy  # noqa: F401
        except ImportError:
            raise unittest.SkipTest("mypy is not installed")
        done = subprocess.run([sys.executable, "-m", "mypy", "--config-file", "mypy.ini",
                               "tests/fakechat.py"], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)


class QuitTests(unittest.TestCase):
    def test_the_line_face_made_by_the_service_stops_the_reactor(self) -> None:
        """The faces import nothing from the assembly: it hands them what /quit does."""
        from twisted.internet.testing import MemoryReactorClock

        from p2pchat.node import Node
        from p2pchat.service import make_face

        reactor = MemoryReactorClock()
        reactor.running = True
        face = make_face("lines", Node("alice", reactor, peer_id="alice_0000"), reactor,
                         "/nonexistent")
        assert face is not None
        face._on_quit()  # type: ignore[attr-defined]
        self.assertTrue(reactor.hasStopped)


class NoSuchPeerTests(unittest.TestCase):
    def test_one_text_whichever_verb(self) -> None:
        """/whois, /trust and /ignore of nobody say the same (interfaces.no_linked_peer);
        /msg and /query of nobody say interfaces.no_peer_called."""
        from p2pchat.interfaces import Refused, no_linked_peer, no_peer_called
        from p2pchat.node import Node

        clock = Clock()
        node = Node("alice", clock, peer_id="alice_0000")
        want = no_linked_peer("zed")
        self.assertEqual(want, Refused("no linked peer is shown as zed; /users lists them"))
        self.assertEqual([node.whois("zed"), node.trust_peer("zed"), node.ignore("zed")],
                         [want] * 3)
        self.assertEqual(node.addressee("zed"), no_peer_called("zed"))
        self.assertEqual(node.say_private("zed", "hi"), no_peer_called("zed"))
        chat = FakeChat()
        self.assertEqual([chat.whois("zed"), chat.trust_peer("zed"), chat.ignore("zed")],
                         [want] * 3)
