"""The console face without a terminal: widgets rendered to canvases at fixed sizes, keys fed
to the top widget, a real Node on a fake clock with fake links, and the service on a
MemoryReactorClock with a fake screen (so trial sees no dirty reactor)."""

from __future__ import annotations

import time

import urwid
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest
from urwid.display.common import BaseScreen
from urwid.str_util import calc_width
from urwid.util import LayeredAttr

from p2pchat import events
from p2pchat.console import ConsoleFace, ConsoleService
from p2pchat.console import format as fmt
from p2pchat.console.app import SIDEBAR_MIN_COLS, SIDEBAR_WIDTH
from p2pchat.console import widgets
from p2pchat.console.widgets import INPUT_ROWS, PeerList, StatusBar
from p2pchat.node import PeerView, Node
from p2pchat.wire import CHAT, MAX_SAY_BYTES, Message
from tests.fakes import FakeLink

NOW = 1_700_000_000.0
SIZE = (80, 24)
#: Where the text column starts: time (8), a space, the nick column, a space.
TEXT_COL = fmt.TIME_WIDTH + 1 + fmt.NICK_WIDTH + 1


class Harness:
    """A ConsoleFace on a real Node (nick alice) with a fake clock."""

    def __init__(self, nick: str = "alice", log_path: str | None = "/data/p2pchat.log") -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.node = Node(nick, self.clock, peer_id=f"{nick}_0000")
        self.node.port = 8123
        self.quits: list[int] = []
        self.bells: list[int] = []
        self.face = ConsoleFace(self.node, on_quit=lambda: self.quits.append(1),
                                bell=lambda: self.bells.append(1), log_path=log_path)
        self.face.attach()
        self.face.clear()

    def link(self, nick: str) -> FakeLink:
        link = FakeLink(f"{nick}_0001", nick, now=NOW)
        self.node.link_ready(link)
        return link

    def hear(self, link: FakeLink, text: str, action: str | None = None) -> None:
        """A chat line from ``link``, through the node as the mesh would deliver it."""
        self.node.message_received(link, Message(
            id=f"m{len(link.sent)}{text[:4]}{time.monotonic_ns()}", type=CHAT,
            sender_id=link.peer_id, username=link.username, content=text,
            timestamp=self.clock.seconds(), metadata={"action": action} if action else None))

    def keys(self, *keys: str, size: tuple[int, int] = SIZE) -> None:
        """Named keys ("enter", "ctrl a", "page up"), each pressed once."""
        for key in keys:
            self.face.widget.keypress(size, key)

    def type(self, text: str) -> None:
        for ch in text:
            self.face.widget.keypress(SIZE, ch)

    def enter(self, text: str) -> None:
        self.type(text)
        self.face.widget.keypress(SIZE, "enter")

    def render(self, size: tuple[int, int] = SIZE) -> urwid.Canvas:
        return self.face.widget.render(size, focus=True)

    def lines(self, size: tuple[int, int] = SIZE) -> list[str]:
        return screen_lines(self.render(size))

    def text(self, size: tuple[int, int] = SIZE) -> str:
        return "\n".join(self.lines(size))


def screen_lines(canvas: urwid.Canvas) -> list[str]:
    return [row.decode("utf-8") for row in canvas.text]


def attr_at(canvas: urwid.Canvas, needle: str, nth: int = 0):
    """The attribute the canvas draws the first character of ``needle`` with (its nth
    occurrence, row by row)."""
    seen = 0
    for row in canvas.content():
        runs = [(attr, data.decode("utf-8")) for attr, _cs, data in row]
        joined = "".join(text for _a, text in runs)
        start = joined.find(needle)
        while start >= 0:
            if seen == nth:
                pos = 0
                for attr, text in runs:
                    if pos <= start < pos + len(text):
                        # An attribute inside an AttrMap comes layered: keep the innermost.
                        return attr.layers[0] if isinstance(attr, LayeredAttr) else attr
                    pos += len(text)
            seen += 1
            start = joined.find(needle, start + 1)
    raise AssertionError(f"{needle!r} not on the screen")


def row_with(lines: list[str], needle: str) -> int:
    for i, line in enumerate(lines):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in:\n" + "\n".join(lines))


def display_col(line: str, needle: str) -> int:
    """The terminal column (wide characters count two) where ``needle`` starts."""
    index = line.index(needle)
    return calc_width(line, 0, index)


# --- format --------------------------------------------------------------------------------


class FormatTests(unittest.TestCase):
    def test_nick_color_is_stable_and_spread(self) -> None:
        self.assertEqual(fmt.nick_attr("alice"), fmt.nick_attr("alice"))
        names = {name for name, *_ in fmt.PALETTE}
        attrs = {fmt.nick_attr(f"user{i}") for i in range(40)}
        self.assertTrue(attrs <= names)
        self.assertGreaterEqual(len(attrs), 8)

    def test_mentions_are_whole_words(self) -> None:
        self.assertTrue(fmt.mentions("alice: hi", "alice"))
        self.assertTrue(fmt.mentions("hi ALICE!", "alice"))
        self.assertTrue(fmt.mentions("ping [bot]", "[bot]"))
        self.assertFalse(fmt.mentions("malice aforethought", "alice"))
        self.assertFalse(fmt.mentions("alices", "alice"))

    def test_fit_counts_wide_characters(self) -> None:
        self.assertEqual(fmt.fit("bob", 12), "bob")
        cut = fmt.fit("日本語のニックネーム", 12)
        self.assertTrue(cut.endswith("…"))
        self.assertLessEqual(calc_width(cut, 0, len(cut)), 12)


# --- the message pane --------------------------------------------------------------------


class MessageTests(unittest.TestCase):
    def setUp(self) -> None:
        self.h = Harness()
        self.bob = self.h.link("bob")

    def test_chat_line_layout_and_colors(self) -> None:
        self.h.hear(self.bob, "hello there")
        canvas = self.h.render()
        lines = screen_lines(canvas)
        line = lines[row_with(lines, "hello there")]
        self.assertEqual(line[:8], time.strftime("%H:%M:%S", time.localtime(NOW)))
        # The nick ends right before the text column; the text starts at it.
        self.assertEqual(line.index("bob") + 3, TEXT_COL - 1)
        self.assertEqual(line.index("hello there"), TEXT_COL)
        self.assertEqual(attr_at(canvas, "bob hello"), fmt.nick_attr("bob"))
        self.assertEqual(attr_at(canvas, "hello there"), "text")
        self.assertEqual(attr_at(canvas, line[:8]), "time")

    def test_own_lines_are_set_apart(self) -> None:
        self.h.enter("my own words")
        canvas = self.h.render()
        self.assertEqual(attr_at(canvas, "alice my own"), "own_nick")
        self.assertEqual(attr_at(canvas, "my own words"), "own_text")
        self.assertEqual([m.content for m in self.bob.sent if m.type == CHAT], ["my own words"])

    def test_notices_are_dimmed(self) -> None:
        carol = self.h.link("carol")
        self.h.node.message_received(carol, Message(id="n1", type="join", sender_id=carol.peer_id,
                                                    username="caroline", timestamp=NOW))
        self.h.face.on_event(events.PeerLeft(NOW, "bob", self.bob.peer_id, "connection lost"))
        canvas = self.h.render()
        text = "\n".join(screen_lines(canvas))
        self.assertIn("--> carol joined (127.0.0.1)", text)
        self.assertIn("-- carol is now known as caroline", text)
        self.assertIn("<-- bob left (connection lost)", text)
        self.assertEqual(attr_at(canvas, "-->"), "notice")
        self.assertEqual(attr_at(canvas, " joined"), "notice")
        self.assertEqual(attr_at(canvas, " is now known"), "notice")
        self.assertEqual(attr_at(canvas, " left (conn"), "notice")

    def test_long_lines_wrap_under_the_text_column(self) -> None:
        words = " ".join(f"word{i}" for i in range(40))
        self.h.hear(self.bob, words)
        lines = self.h.lines()
        first = row_with(lines, "word0 ")
        following = [ln for ln in lines[first + 1:first + 4]]
        for line in following:
            self.assertEqual(line[:TEXT_COL], " " * TEXT_COL)
            self.assertRegex(line[TEXT_COL:], r"^word\d+")

    def test_wide_characters_align(self) -> None:
        self.h.hear(self.bob, "日本語のテキスト😀 " * 8)
        self.h.hear(self.h.link("碁盤の目"), "中文 emoji 🎉🎉 end")
        width = SIZE[0] - SIDEBAR_WIDTH - 2
        for line in self.h.lines()[:-2]:
            self.assertEqual(calc_width(line, 0, len(line)), SIZE[0], line)
            self.assertEqual(display_col(line, "│"), width, line)
        lines = self.h.lines()
        row = lines[row_with(lines, "中文")]
        self.assertEqual(display_col(row, "中文"), TEXT_COL)
        self.assertEqual(display_col(row, "碁盤の目") + 8, TEXT_COL - 1)

    def test_action_is_shown_as_star_nick(self) -> None:
        self.h.hear(self.bob, "* bob waves", action="waves")
        self.assertIn("* bob waves", self.h.text())

    def test_mention_is_highlighted_and_rings(self) -> None:
        self.h.hear(self.bob, "hey alice, look")
        self.h.hear(self.bob, "no mention of malice here")
        canvas = self.h.render()
        self.assertEqual(attr_at(canvas, "hey alice"), "mention")
        self.assertEqual(attr_at(canvas, "no mention"), "text")
        self.assertEqual(self.h.bells, [1])

    def test_own_line_naming_you_does_not_ring(self) -> None:
        self.h.enter("alice talks to herself")
        self.assertEqual(self.h.bells, [])

    def test_undelivered_mark_and_notice(self) -> None:
        self.h.node.link_lost(self.bob, "gone")
        self.h.enter("anyone here?")
        canvas = self.h.render()
        text = "\n".join(screen_lines(canvas))
        self.assertIn("anyone here? (not delivered)", text)
        self.assertEqual(attr_at(canvas, "(not delivered)"), "undelivered")
        self.assertIn("! no peer is connected", text)
        self.assertEqual(attr_at(canvas, "no peer is connected"), "error")
        (message_id,) = self.h.face.undelivered
        self.h.face.delivered(message_id)
        self.assertNotIn("(not delivered)", self.h.text())
        self.assertIn("anyone here?", self.h.text())

    def test_delivered_event_clears_the_mark(self) -> None:
        delivered = getattr(events, "Delivered", None)
        if delivered is None:
            raise unittest.SkipTest("the node has no Delivered event yet")
        self.h.node.link_lost(self.bob, "gone")
        self.h.enter("said while alone")
        (message_id,) = self.h.face.undelivered
        self.h.face.on_event(delivered(NOW, message_id))
        self.assertIn("said while alone", self.h.text())
        self.assertNotIn("(not delivered)", self.h.text())
        self.assertEqual(self.h.face.undelivered, {})

    def test_delivered_line_has_no_mark(self) -> None:
        self.h.enter("heard by bob")
        self.assertNotIn("not delivered", self.h.text())


# --- sidebar and status bar --------------------------------------------------------------


class SidebarTests(unittest.TestCase):
    def test_peer_states(self) -> None:
        peers = PeerList()
        peers.update([
            PeerView("bob", "b", "connected", "127.0.0.1:1", True),
            PeerView("carol", "c", "connecting", "127.0.0.1:2", True),
            PeerView("dave", "d", "stale", "127.0.0.1:3", False),
        ])
        canvas = peers.render((SIDEBAR_WIDTH, 6))
        lines = screen_lines(canvas)
        self.assertEqual(lines[0].rstrip(), "peers 1/3")
        self.assertEqual(lines[1].rstrip(), "●  bob")
        self.assertEqual(lines[2].rstrip(), "○  carol")
        self.assertEqual(lines[3].rstrip(), "?  dave")
        self.assertEqual(attr_at(canvas, "●"), "peer_connected")
        self.assertEqual(attr_at(canvas, "bob"), fmt.nick_attr("bob"))
        self.assertEqual(attr_at(canvas, "○"), "peer_connecting")
        self.assertEqual(attr_at(canvas, "dave"), "peer_stale")

    def test_long_nick_is_cut(self) -> None:
        peers = PeerList()
        peers.update([PeerView("a" * 20, "x", "connected", "h:1", True)])
        line = screen_lines(peers.render((SIDEBAR_WIDTH, 3)))[1]
        self.assertEqual(calc_width(line, 0, len(line)), SIDEBAR_WIDTH)
        self.assertTrue(line.rstrip().endswith("…"))

    def test_face_sidebar_follows_the_node(self) -> None:
        h = Harness()
        self.assertIn("nobody yet", h.text())
        h.link("bob")
        text = h.text()
        self.assertIn("●  bob", text)
        self.assertIn("peers 1/1", text)

    def test_narrow_terminal_drops_the_sidebar(self) -> None:
        h = Harness()
        h.link("bob")
        narrow = (SIDEBAR_MIN_COLS - 1, 12)
        self.assertNotIn("│", "\n".join(h.lines(narrow)[:-2]))
        self.assertIn("│", "\n".join(h.lines(SIZE)[:-2]))


class StatusBarTests(unittest.TestCase):
    def test_fields(self) -> None:
        bar = StatusBar()
        bar.update("alice", "#general", 8123, 2, 3)
        canvas = bar.render((80,))
        (line,) = screen_lines(canvas)
        self.assertIn("alice │ #general │ port 8123 │ peers 2/3", line)
        self.assertNotIn("new", line)
        self.assertEqual(attr_at(canvas, "alice"), "status_nick")
        self.assertEqual(attr_at(canvas, "#general"), "status")

    def test_unread_and_over_limit(self) -> None:
        bar = StatusBar()
        bar.update("alice", "#general", 8123, 0, 0, unread=4, over=(4100, 4000))
        canvas = bar.render((100,))
        (line,) = screen_lines(canvas)
        self.assertTrue(line.rstrip().endswith("4 new ↓"))
        self.assertIn("4100/4000 bytes", line)
        self.assertEqual(attr_at(canvas, "4 new"), "status_unread")
        self.assertEqual(attr_at(canvas, "4100/"), "status_over")

    def test_face_status_line(self) -> None:
        h = Harness()
        lines = h.lines()
        self.assertIn("alice │ #general │ port 8123 │ peers 0/0", lines[-2])
        self.assertTrue(lines[-1].startswith("> "))


# --- commands ----------------------------------------------------------------------------


class CommandTests(unittest.TestCase):
    def setUp(self) -> None:
        self.h = Harness()

    def test_help_lists_commands_keys_and_log(self) -> None:
        self.h.enter("/help")
        rows = self.h.face.messages.rows_text()
        text = "\n".join(rows)
        for word in ("/help", "/users /who", "/nick NAME", "/me ACTION", "/clear",
                     "/quit /q /exit", "PgUp / PgDn", "Ctrl-C", "Tab",
                     "log file: /data/p2pchat.log"):
            self.assertIn(word, text)

    def test_help_without_log_file(self) -> None:
        h = Harness(log_path=None)
        h.enter("/help")
        self.assertIn("--logfile", "\n".join(h.face.messages.rows_text()))

    def test_users_and_who(self) -> None:
        self.h.link("bob")
        self.h.face.clear()
        self.h.enter("/users")
        self.h.enter("/who")
        rows = self.h.face.messages.rows_text()
        self.assertEqual(sum("1 connected, 1 known; you are alice" in r for r in rows), 2)
        self.assertEqual(sum("bob" in r and "connected" in r for r in rows), 2)

    def test_nick(self) -> None:
        self.h.enter("/nick carol")
        self.assertEqual(self.h.node.nick, "carol")
        text = self.h.text()
        self.assertIn("-- you are now known as carol", text)
        self.assertIn(" carol │ #general", text)

    def test_nick_refused_says_why(self) -> None:
        self.h.enter("/nick " + "x" * 21)
        canvas = self.h.render()
        self.assertIn("! nick not changed: a nick has at most 20 characters",
                      self.h.face.messages.rows_text()[-1])
        self.assertEqual(attr_at(canvas, "nick not changed"), "error")
        self.assertEqual(self.h.node.nick, "alice")

    def test_nick_usage(self) -> None:
        self.h.enter("/nick")
        self.assertIn("usage: /nick NAME", self.h.text())

    def test_me(self) -> None:
        bob = self.h.link("bob")
        self.h.enter("/me waves")
        self.assertIn("* alice waves", self.h.text())
        (msg,) = [m for m in bob.sent if m.type == CHAT]
        self.assertEqual(msg.content, "* alice waves")  # what a base peer shows
        self.assertEqual(msg.metadata, {"action": "waves"})

    def test_clear(self) -> None:
        self.h.enter("something")
        self.assertIn("something", self.h.text())
        self.h.enter("/clear")
        self.assertEqual(self.h.face.messages.rows_text(), [])
        self.assertNotIn("something", self.h.text())

    def test_quit_and_aliases(self) -> None:
        for word in ("/quit", "/q", "/exit"):
            h = Harness()
            h.enter(word)
            self.assertEqual(h.quits, [1], word)
            h.enter("/quit")
            self.assertEqual(h.quits, [1], "quit runs once")

    def test_ctrl_c_quits(self) -> None:
        self.h.keys("ctrl c")
        self.assertEqual(self.h.quits, [1])

    def test_unknown_command(self) -> None:
        self.h.enter("/frobnicate now")
        canvas = self.h.render()
        self.assertIn("! unknown command /frobnicate; /help lists the commands",
                      self.h.face.messages.rows_text()[-1])
        self.assertEqual(attr_at(canvas, "unknown command"), "error")
        # The refused line stays in the input, to be fixed.
        self.assertEqual(self.h.face.input.edit_text, "/frobnicate now")

    def test_over_limit_refused_and_kept(self) -> None:
        bob = self.h.link("bob")
        text = "x" * (MAX_SAY_BYTES + 1)
        self.h.face.input.set_edit_text(text)
        self.h.face.refresh_status()
        lines = self.h.lines()
        status = lines[row_with(lines, "#general")]
        self.assertIn(f"{MAX_SAY_BYTES + 1}/{MAX_SAY_BYTES} bytes", status)
        # The input shows at most INPUT_ROWS rows: the messages keep the screen.
        self.assertEqual(len(lines) - row_with(lines, "#general") - 1, INPUT_ROWS)
        self.h.keys("enter")
        self.assertIn(f"that line is {MAX_SAY_BYTES + 1} bytes; the limit is {MAX_SAY_BYTES}",
                      self.h.face.messages.rows_text()[-1])
        self.assertEqual([m for m in bob.sent if m.type == CHAT], [])
        self.assertEqual(self.h.face.input.edit_text, text)

    def test_wide_text_limit_counts_bytes(self) -> None:
        self.h.face.input.set_edit_text("日" * (MAX_SAY_BYTES // 3 + 1))
        self.h.keys("enter")
        self.assertIn("the limit is", self.h.face.messages.rows_text()[-1])

    def test_empty_input_ignored(self) -> None:
        bob = self.h.link("bob")
        self.h.face.clear()
        self.h.keys("enter")
        self.h.enter("   ")
        self.assertEqual(self.h.face.messages.rows_text(), [])
        self.assertEqual(bob.sent, [])

    def test_double_slash_says_slash(self) -> None:
        bob = self.h.link("bob")
        self.h.enter("//shrug")
        self.assertEqual([m.content for m in bob.sent if m.type == CHAT], ["/shrug"])

    def test_failure_is_logged_and_shown(self) -> None:
        def boom(*args: object, **kwargs: object) -> None:
            raise RuntimeError("boom")

        self.h.node.say = boom
        self.h.enter("hello")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertIn("that failed; the log has the details",
                      self.h.face.messages.rows_text()[-1])
        self.assertEqual(self.h.face.input.edit_text, "hello")  # not lost


# --- keys --------------------------------------------------------------------------------


class KeyTests(unittest.TestCase):
    def setUp(self) -> None:
        self.h = Harness()
        self.input = self.h.face.input

    def test_line_editing_keys(self) -> None:
        self.h.type("hello world")
        self.h.keys("ctrl a")
        self.assertEqual(self.input.edit_pos, 0)
        self.h.keys("ctrl e")
        self.assertEqual(self.input.edit_pos, 11)
        self.h.keys("home")
        self.assertEqual(self.input.edit_pos, 0)
        self.h.keys("end", "ctrl w")
        self.assertEqual(self.input.edit_text, "hello ")
        self.h.type("there")
        self.h.keys("left", "left", "ctrl k")
        self.assertEqual(self.input.edit_text, "hello the")
        self.h.keys("ctrl u")
        self.assertEqual(self.input.edit_text, "")
        self.h.keys("ctrl y")  # consecutive kills (Ctrl-K, Ctrl-U) yank back as one
        self.assertEqual(self.input.edit_text, "hello there")

    def test_cursor_is_drawn_in_the_input(self) -> None:
        self.h.type("abc")
        canvas = self.h.render()
        self.assertEqual(canvas.cursor, (5, SIZE[1] - 1))

    def test_history(self) -> None:
        for line in ("first", "second", "third"):
            self.h.enter(line)
        self.h.type("draft")
        self.h.keys("up")
        self.assertEqual(self.input.edit_text, "third")
        self.h.keys("up", "up")
        self.assertEqual(self.input.edit_text, "first")
        self.h.keys("up")
        self.assertEqual(self.input.edit_text, "first")
        self.h.keys("down")
        self.assertEqual(self.input.edit_text, "second")
        self.h.keys("down", "down")
        self.assertEqual(self.input.edit_text, "draft")
        self.assertEqual(self.input.edit_pos, 5)

    def test_refused_line_is_in_history_too(self) -> None:
        self.h.enter("/nosuch")
        self.input.set_edit_text("")
        self.h.keys("up")
        self.assertEqual(self.input.edit_text, "/nosuch")

    def test_tab_completes_nick_at_line_start(self) -> None:
        self.h.link("bob")
        self.h.type("b")
        self.h.keys("tab")
        self.assertEqual(self.input.edit_text, "bob: ")
        self.assertEqual(self.input.edit_pos, 5)

    def test_tab_completes_mid_line_and_cycles(self) -> None:
        self.h.link("Bobby")
        self.h.link("bob")
        self.h.type("hi bo")
        self.h.keys("tab")
        self.assertEqual(self.input.edit_text, "hi bob ")
        self.h.keys("tab")
        self.assertEqual(self.input.edit_text, "hi Bobby ")
        self.h.keys("tab")
        self.assertEqual(self.input.edit_text, "hi bo")

    def test_tab_without_match_does_nothing(self) -> None:
        self.h.link("bob")
        self.h.type("zz")
        self.h.keys("tab")
        self.assertEqual(self.input.edit_text, "zz")
        self.h.type("x")
        self.assertEqual(self.input.edit_text, "zzx")

    def test_own_nick_not_completed(self) -> None:
        self.h.type("al")
        self.h.keys("tab")
        self.assertEqual(self.input.edit_text, "al")


class ScrollTests(unittest.TestCase):
    def setUp(self) -> None:
        self.h = Harness()
        self.bob = self.h.link("bob")
        for i in range(60):
            self.h.hear(self.bob, f"line {i}")
        self.size = (80, 12)

    def test_follows_new_lines(self) -> None:
        text = self.h.text(self.size)
        self.assertIn("line 59", text)
        self.h.hear(self.bob, "line 60")
        self.assertIn("line 60", self.h.text(self.size))

    def test_page_up_shows_older_and_counts_new(self) -> None:
        self.h.render(self.size)
        self.h.keys("page up", size=self.size)
        text = self.h.text(self.size)
        self.assertNotIn("line 59", text)
        self.assertIn("line 45", text)
        self.h.hear(self.bob, "new one")
        self.h.hear(self.bob, "new two")
        lines = self.h.lines(self.size)
        self.assertNotIn("new two", "\n".join(lines))
        self.assertIn("2 new ↓", lines[-2])
        for _ in range(5):
            self.h.keys("page down", size=self.size)
            self.h.render(self.size)
        lines = self.h.lines(self.size)
        self.assertIn("new two", "\n".join(lines))
        self.assertNotIn("new ↓", lines[-2])
        self.h.hear(self.bob, "following again")
        self.assertIn("following again", self.h.text(self.size))

    def test_mouse_wheel_scrolls(self) -> None:
        self.h.render(self.size)
        widget = self.h.face.widget
        self.assertTrue(widget.mouse_event(self.size, "mouse press", 4, 10, 3, True))
        text = self.h.text(self.size)
        self.assertNotIn("line 59", text)
        self.assertIn("line 56", text)
        widget.mouse_event(self.size, "mouse press", 5, 10, 3, True)
        self.assertIn("line 59", self.h.text(self.size))
        self.assertTrue(self.h.face.messages.following)

    def test_sending_returns_to_the_bottom(self) -> None:
        self.h.render(self.size)
        self.h.keys("page up", size=self.size)
        self.h.hear(self.bob, "unseen")
        self.h.enter("my reply")
        lines = self.h.lines(self.size)
        self.assertIn("my reply", "\n".join(lines))
        self.assertNotIn("new ↓", lines[-2])

    def test_scrollback_is_bounded(self) -> None:
        self.patch(widgets, "SCROLLBACK_ROWS", 10)
        for i in range(15):
            self.h.hear(self.bob, f"bounded {i}")
        rows = self.h.face.messages.rows_text()
        self.assertEqual(len(rows), 10)
        self.assertIn("bounded 14", rows[-1])
        self.assertIn("bounded 14", self.h.text(self.size))

    def test_clear_then_render(self) -> None:
        self.h.enter("/clear")
        lines = self.h.lines(self.size)
        self.assertNotIn("line", "\n".join(lines[:-2]))

    def test_resize_redraws(self) -> None:
        for size in ((120, 30), (40, 8), (80, 24), (SIDEBAR_MIN_COLS, 5)):
            lines = self.h.lines(size)
            self.assertEqual(len(lines), size[1])
            self.assertTrue(all(calc_width(ln, 0, len(ln)) == size[0] for ln in lines))
            self.assertIn("line 59", "\n".join(lines))


# --- the service on a fake screen --------------------------------------------------------


class FakeScreen(BaseScreen):
    """Just enough of a screen for MainLoop: records draws and what is written."""

    def __init__(self, size: tuple[int, int] = SIZE) -> None:
        super().__init__()
        self.size = size
        self.draws: list[list[str]] = []
        self.written: list[str] = []
        self.hooked = False

    def get_cols_rows(self) -> tuple[int, int]:
        return self.size

    def draw_screen(self, size, canvas) -> None:
        self.draws.append(screen_lines(canvas))

    def hook_event_loop(self, event_loop, callback) -> None:
        self.hooked = True

    def unhook_event_loop(self, event_loop) -> None:
        self.hooked = False

    def write(self, data: str) -> None:
        self.written.append(data)

    def flush(self) -> None:
        pass


class ServiceTests(unittest.TestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.reactor.advance(NOW)
        self.node = Node("alice", self.reactor, peer_id="alice_0000")
        self.screen = FakeScreen()
        self.service = ConsoleService(self.node, self.reactor, "/tmp/x", screen=self.screen)
        self.service.startService()
        self.addCleanup(self._stop)

    def _stop(self) -> None:
        if self.service.running:
            self.service.stopService()

    def test_starts_and_draws(self) -> None:
        self.assertTrue(self.screen.started)
        self.assertTrue(self.screen.hooked)
        self.reactor.advance(0.01)
        self.assertTrue(self.screen.draws)
        self.assertIn("you are alice", "\n".join(self.screen.draws[-1]))

    def test_network_events_redraw_once_per_turn(self) -> None:
        self.reactor.advance(0.01)
        before = len(self.screen.draws)
        link = FakeLink("bob_0001", "bob", now=NOW)
        self.node.link_ready(link)
        for i in range(5):
            self.node.message_received(link, Message(id=f"id{i}", type=CHAT,
                                                     sender_id=link.peer_id, username="bob",
                                                     content=f"msg {i}", timestamp=NOW))
        self.reactor.advance(0)
        self.assertEqual(len(self.screen.draws), before + 1)
        self.assertIn("msg 4", "\n".join(self.screen.draws[-1]))

    def test_mention_rings_the_terminal_bell(self) -> None:
        link = FakeLink("bob_0001", "bob", now=NOW)
        self.node.link_ready(link)
        self.node.message_received(link, Message(id="x", type=CHAT, sender_id=link.peer_id,
                                                 username="bob", content="alice?", timestamp=NOW))
        self.assertIn("\a", self.screen.written)

    def test_ctrl_c_stops_the_reactor(self) -> None:
        self.reactor.running = True
        self.service.loop.process_input(["ctrl c"])
        self.assertTrue(self.reactor.hasStopped)

    def test_stop_restores_and_unsubscribes(self) -> None:
        self.service.stopService()
        self.assertFalse(self.screen.started)
        self.assertFalse(self.screen.hooked)
        self.assertEqual(self.node._observers, [])
        draws = len(self.screen.draws)
        self.node._emit(events.Notice(NOW, "late"))
        self.reactor.advance(1)
        self.assertEqual(len(self.screen.draws), draws)
        self.assertEqual([c for c in self.reactor.getDelayedCalls() if c.active()
                          and "refresh" in repr(c.func)], [])

    def test_stale_peers_refresh_without_events(self) -> None:
        self.node.users = lambda: [PeerView("bob", "b", "stale", "h:1", True)]
        self.reactor.advance(3)
        self.assertIn("?  bob", "\n".join(self.screen.draws[-1]))
