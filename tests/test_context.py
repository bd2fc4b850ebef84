"""/context N: the lines around a /search result, numbered in the answer, read through
``around`` (the SQLite store, the in-memory history, the chat's bound), in every face."""

from __future__ import annotations

import os
import tempfile

from twisted.trial.unittest import TestCase

from p2pchat.chat import CONTEXT_MAX, Chat
from p2pchat.face import CONTEXT_LINES, CommandFace
from p2pchat.history import MemoryHistory
from p2pchat.interfaces import StoredLine
from p2pchat.store import Store
from tests.fakechat import FakeChat
from tests.test_search import T0, at


def talk(count: int = 30, room: str = "ops") -> list[StoredLine]:
    """``count`` lines ``line 0`` ... a minute apart in ``room``, with #general's in between."""
    out = []
    for n in range(count):
        out.append(at(n, f"line {n}", "bob", room, T0 + 60 * n, sender="b_1"))
        out.append(at(1000 + n, f"elsewhere {n}", "ann", "general", T0 + 60 * n + 1))
    return out


def texts(lines: list[StoredLine]) -> list[str]:
    return [line.text for line in lines]


class _Around:
    """The same reads over each history."""

    def history(self):
        raise NotImplementedError

    def test_before_and_after_by_time(self) -> None:
        h = self.history()
        for line in talk():
            h.remember(line)
        self.assertEqual(texts(h.around("ops", T0 + 60 * 10, 3)),
                         ["line 7", "line 8", "line 9", "line 10", "line 11", "line 12",
                          "line 13"])
        # at the start and the end of a conversation: what there is
        self.assertEqual(texts(h.around("ops", T0, 2)), ["line 0", "line 1", "line 2"])
        self.assertEqual(texts(h.around("ops", T0 + 60 * 29, 2)),
                         ["line 27", "line 28", "line 29"])
        self.assertEqual(h.around("nowhere", T0, 5), [])

    def test_ignored_authors_left_out(self) -> None:
        h = self.history()
        for line in talk(4):
            h.remember(line)
        h.remember(at(99, "from carol", "carol", "ops", T0 + 61, sender="c_1"))
        self.assertIn("from carol", texts(h.around("ops", T0 + 60, 5)))
        self.assertNotIn("from carol", texts(h.around("ops", T0 + 60, 5, skip=["c_1"])))


class StoreAround(_Around, TestCase):
    def history(self) -> Store:
        store = Store(os.path.join(tempfile.mkdtemp(), "history.sqlite3"))
        self.addCleanup(store.close)
        return store


class MemoryAround(_Around, TestCase):
    def history(self) -> MemoryHistory:
        return MemoryHistory()


class _Node:
    def __init__(self, store) -> None:
        from tests.test_search import _Ignores
        self.store = store
        self.ignores = _Ignores()


class ChatAround(TestCase):
    def test_the_count_is_bounded(self) -> None:
        """However many lines a caller asks for, the chat reads at most CONTEXT_MAX each side
        (the read stays short on the reactor)."""
        h = MemoryHistory()
        for line in talk(3 * CONTEXT_MAX, room="general")[::2]:
            h.remember(line)
        chat = Chat(_Node(h))  # type: ignore[arg-type]
        got = chat.around("general", T0 + 60 * CONTEXT_MAX * 1.5, 10 ** 6)
        self.assertEqual(len(got), 2 * CONTEXT_MAX + 1)


class Plain(CommandFace):
    def __init__(self, chat: FakeChat) -> None:
        self.node = chat
        self.info: list[str] = []

    def show_info(self, lines: list[str]) -> None:
        self.info.extend(lines)

    def show_error(self, text: str) -> None:
        self.info.append("ERROR " + text)


class FaceContext(TestCase):
    def face(self) -> Plain:
        chat = FakeChat()
        chat.lines = talk()
        return Plain(chat)

    def test_context_of_a_numbered_result(self) -> None:
        face = self.face()
        face.handle_input("/search line in:#ops")
        self.assertIn("[1] ", face.info[1])  # newest first: line 29
        self.assertTrue(face.info[1].endswith("#ops <bob> line 29"), face.info[1])
        self.assertTrue(face.info[20].startswith("  [20] "), face.info[20])
        self.assertTrue(face.info[20].endswith("line 10"), face.info[20])
        face.info.clear()
        face.room = "general"
        face.handle_input("/context 20")
        self.assertEqual(face.info[0], "context of [20] in #ops")
        shown = face.info[1:-1]
        self.assertEqual(len(shown), 2 * CONTEXT_LINES + 1)
        self.assertTrue(shown[0].endswith("<bob> line 5"), shown)
        self.assertTrue(shown[CONTEXT_LINES].endswith("<bob> line 10"), shown)
        self.assertTrue(shown[-1].endswith("<bob> line 15"), shown)
        self.assertEqual(face.info[-1], "end of context")

    def test_a_bad_number_is_told(self) -> None:
        face = self.face()
        face.handle_input("/context 1")
        self.assertEqual(face.info, ["ERROR /context N: no search results to open "
                                     "(/search WORDS first)"])
        face.handle_input("/search line in:#ops")
        for bad in ("0", "31", "x", "-1", "2.5"):
            face.info.clear()
            face.handle_input(f"/context {bad}")
            self.assertEqual(len(face.info), 1, face.info)
            self.assertIn("ERROR /context N: N is the number of a result of the last "
                          "/search, 1 to 30", face.info[0])
        face.info.clear()
        face.handle_input("/context")
        self.assertEqual(len(face.info), 1)
        self.assertIn("ERROR", face.info[0])
        self.assertNotIn(("around",), [c[:1] for c in face.node.calls])  # type: ignore


class EveryFace(TestCase):
    """The console shows the context set apart in the current pane; the line face too."""

    def test_console_and_line_face(self) -> None:
        from tests.test_faces import Console, Lines

        for face in (Console(), Lines()):
            face.chat.lines = talk(12)
            shown = "\n".join(face.enter("/search line 3 in:#ops"))
            self.assertIn("[1] ", shown)
            shown = "\n".join(face.enter("/context 1"))
            self.assertIn("context of [1] in #ops", shown)
            for n in range(3 - 3, 3 + CONTEXT_LINES + 1):
                self.assertIn(f"line {n}", shown)
            self.assertNotIn("line 9", shown)
            self.assertIn("end of context", shown)
