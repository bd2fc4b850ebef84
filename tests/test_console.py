"""The console face without a terminal: widgets rendered to canvases at fixed sizes, keys fed
to the top widget, a real Node on a fake clock with fake links, and the service on a
MemoryReactorClock with a fake screen (so trial sees no dirty reactor)."""

from __future__ import annotations

from p2pchat.wire import Beacon

import time
from dataclasses import replace

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
from p2pchat.console import app, keys, paste
from p2pchat.console.complete import candidates
from p2pchat.console.paste import PasteGate
from p2pchat.console.widgets import INPUT_ROWS, PeerList, StatusBar
from p2pchat.node import CAPS, PeerView, Node
from p2pchat.store import Store, StoredLine
from p2pchat.wire import ACK, CHAT, DEFAULT_ROOM, MAX_SAY_BYTES, PRIVATE, ROOMS, SYNC, Message
from tests.fakechat import FakeChat
from tests.fakes import FakeLink

NOW = 1_700_000_000.0
SIZE = (80, 24)
#: Where the text column starts: time (8), a space, the nick column, a space.
TEXT_COL = fmt.TIME_WIDTH + 1 + fmt.NICK_WIDTH + 1


class Harness:
    """A ConsoleFace on a real Node (nick alice) with a fake clock; ``store``: history on
    disk (``clear``: the pane is emptied after the greeting, as most tests want)."""

    def __init__(self, nick: str = "alice", log_path: str | None = "/data/p2pchat.log",
                 store: Store | None = None, clear: bool = True) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.node = Node(nick, self.clock, peer_id=f"{nick}_0000", store=store)
        self.node.port = 8123
        self.quits: list[int] = []
        self.bells: list[int] = []
        self.face = ConsoleFace(self.node, on_quit=lambda: self.quits.append(1), clock=self.clock,
                                bell=lambda: self.bells.append(1), log_path=log_path)
        self.face.attach()
        if clear:
            self.face.clear()

    def link(self, nick: str) -> FakeLink:
        """A base-protocol-only link (no rooms, no acks)."""
        link = FakeLink(f"{nick}_0001", nick, now=NOW)
        self.node.link_ready(link)
        return link

    def peer(self, nick: str, rooms: tuple[str, ...] = ()) -> FakeLink:
        """A link to a peer of ours (rooms, private lines, acks), synced, in ``rooms``."""
        link = FakeLink(f"{nick}_0001", nick, caps=CAPS, now=NOW)
        self.node.link_ready(link)
        self.node.message_received(link, Message(id=f"s{nick}", type=SYNC,
                                                 sender_id=link.peer_id, username=nick,
                                                 metadata={"sent": 0, "have": None}))
        if rooms:
            self.rooms(link, *rooms)
        return link

    def rooms(self, link: FakeLink, *rooms: str) -> None:
        """``link``'s peer says it is in ``rooms`` now."""
        self.node.message_received(link, Message(id=f"r{time.monotonic_ns()}", type=ROOMS,
                                                 sender_id=link.peer_id,
                                                 username=link.username,
                                                 metadata={"rooms": list(rooms)}))

    def hear(self, link: FakeLink, text: str, action: str | None = None,
             room: str = "general") -> None:
        """A chat line from ``link``, through the node as the mesh would deliver it."""
        self.node.message_received(link, Message(
            id=f"m{len(link.sent)}{text[:4]}{time.monotonic_ns()}", type=CHAT,
            sender_id=link.peer_id, username=link.username, content=text,
            timestamp=self.clock.seconds(), room_id=room,
            metadata={"action": action} if action else None))

    def hear_private(self, link: FakeLink, text: str) -> None:
        """A private line from ``link`` to us."""
        self.node.message_received(link, Message(
            id=f"p{text[:4]}{time.monotonic_ns()}", type=PRIVATE, sender_id=link.peer_id,
            username=link.username, content=text, timestamp=self.clock.seconds(),
            metadata={"to": self.node.peer_id}))

    def pane(self, key: str) -> list[str]:
        """The rows of a conversation's pane, as plain text."""
        conv = self.face.find(key)
        assert conv is not None, f"no conversation {key}"
        return conv.pane.rows_text()

    def sidebar(self, size: tuple[int, int] = SIZE) -> list[str]:
        """The sidebar's column of the screen (without the messages and the bottom rows)."""
        start = size[0] - SIDEBAR_WIDTH
        return [line[line.index("│") + 2:].rstrip() if "│" in line else ""
                for line in self.lines(size)[:-2]] if start > 0 else []

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


class ChatHarness(Harness):
    """A ConsoleFace on a FakeChat (no node: what the chat says is set by the test), with the
    same helpers as ``Harness``; its peers are ``PeerView`` rows."""

    def __init__(self, nick: str = "alice", log_path: str | None = "/data/p2pchat.log",
                 clear: bool = True) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.chat = FakeChat(nick, f"{nick}_0000", clock=self.clock)
        self.quits: list[int] = []
        self.bells: list[int] = []
        self.face = ConsoleFace(self.chat, on_quit=lambda: self.quits.append(1), clock=self.clock,
                                bell=lambda: self.bells.append(1), log_path=log_path)
        self.face.attach()
        if clear:
            self.face.clear()

    def link(self, nick: str) -> PeerView:  # type: ignore[override]
        """A base peer (no rooms, no private lines, a plain link)."""
        return self.chat.link(nick, ours=False, encrypted=False)

    def peer(self, nick: str, rooms: tuple[str, ...] = ()) -> PeerView:  # type: ignore[override]
        """A peer of ours (rooms, private lines), on a plain link as Harness's are."""
        return self.chat.link(nick, rooms, encrypted=False)

    def rooms(self, peer: PeerView, *rooms: str) -> None:  # type: ignore[override]
        """``peer`` says it is in ``rooms`` now: told as the node tells it."""
        now = {DEFAULT_ROOM, *rooms}
        before = set(self.chat.rooms_of(peer.peer_id))
        self.chat.peers = [replace(p, rooms=tuple(sorted(now))) if p.peer_id == peer.peer_id
                           else p for p in self.chat.peers]
        for room in sorted(now ^ before):
            if room in self.chat.rooms:
                self.chat.emit(events.RoomChanged(NOW, room, peer.nick, peer.peer_id,
                                                  joined=room in now))
        self.chat.emit(events.PeersChanged(NOW))

    def hear(self, peer: PeerView, text: str, action: str | None = None,  # type: ignore[override]
             room: str = "general") -> None:
        self.chat.hear(peer, action if action else text, room=room, action=bool(action))

    def hear_private(self, peer: PeerView, text: str) -> None:  # type: ignore[override]
        self.chat.hear(peer, text, room="@")


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


def conv_line(label: str, count: str = "") -> str:
    """A row of the conversation list as drawn: the name left, the unread count right."""
    return label.ljust(SIDEBAR_WIDTH - len(count)) + count


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
        # The same entries in every process (a salted hash() would give others, run to run).
        self.assertEqual((fmt.nick_attr("alice"), fmt.nick_attr("bob")), ("nick7", "nick6"))
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
    """Rows as the console draws them, on a FakeChat."""

    def setUp(self) -> None:
        self.h = ChatHarness()
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
        self.assertEqual(self.h.chat.said, [("general", "my own words", False)])

    def test_notices_are_dimmed(self) -> None:
        carol = self.h.link("carol")
        self.h.chat.emit(events.NickChanged(NOW, "carol", "caroline", carol.peer_id))
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
        following = lines[first + 1:first + 4]
        self.assertEqual(len(following), 3)  # 40 words take more than four rows
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
        self.h = Harness()  # the notice is the node's
        self.bob = self.h.link("bob")
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
        self.h.chat.unlink(self.bob)
        self.h.enter("said while alone")
        (message_id,) = self.h.face.undelivered
        self.h.face.on_event(events.Delivered(NOW, message_id))
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
        self.assertEqual(lines[1].rstrip(), "●   bob plain")
        self.assertEqual(lines[2].rstrip(), "○   carol")
        self.assertEqual(lines[3].rstrip(), "?   dave base")
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
        self.assertIn("●   bob plain", text)
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
        h = ChatHarness()
        lines = h.lines()
        self.assertIn("alice │ #general │ port 8123 │ peers 0/0", lines[-2])
        self.assertTrue(lines[-1].startswith("> "))


# --- commands ----------------------------------------------------------------------------


class CommandTests(unittest.TestCase):
    """The commands as the console runs them, on a FakeChat (what the node does with them:
    test_node, test_rooms, test_nicks)."""

    def setUp(self) -> None:
        self.h = ChatHarness()

    def test_help_lists_commands_keys_and_log(self) -> None:
        self.h.enter("/help")
        rows = self.h.face.messages.rows_text()
        text = "\n".join(rows)
        for word in ("/help", "/users /who", "/nick NAME", "/me ACTION", "/clear",
                     "/quit /q /exit", "PgUp / PgDn", "Ctrl-C", "Tab",
                     "log file: /data/p2pchat.log"):
            self.assertIn(word, text)

    def test_help_without_log_file(self) -> None:
        h = ChatHarness(log_path=None)
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
        self.assertEqual(self.h.chat.nick, "carol")
        text = self.h.text()
        self.assertIn("-- you are now known as carol", text)
        self.assertIn(" carol │ #general", text)

    def test_nick_refused_says_why(self) -> None:
        self.h.enter("/nick " + "x" * 21)
        canvas = self.h.render()
        self.assertIn("! nick not changed: a nick has at most 20 characters",
                      self.h.face.messages.rows_text()[-1])
        self.assertEqual(attr_at(canvas, "nick not changed"), "error")
        self.assertEqual(self.h.chat.nick, "alice")

    def test_nick_usage(self) -> None:
        self.h.enter("/nick")
        self.assertIn("usage: /nick NAME", self.h.text())

    def test_me(self) -> None:
        self.h = Harness()  # what a base peer is sent: the real node
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
            h = ChatHarness()
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
        # The refused line leaves the input (Up brings it back to fix it): what is typed
        # next is a line of its own, not glued onto it.
        self.assertEqual(self.h.face.input.edit_text, "")
        self.h.link("bob")
        self.h.enter("hello")
        self.assertEqual(self.h.chat.said, [("general", "hello", False)])
        self.h.keys("up", "up")
        self.assertEqual(self.h.face.input.edit_text, "/frobnicate now")

    def test_over_limit_refused_and_kept(self) -> None:
        self.h.link("bob")
        text = "x" * (MAX_SAY_BYTES + 1)
        self.h.face.input.set_edit_text(text)
        self.h.face.refresh_status()
        lines = self.h.lines()
        status = lines[row_with(lines, "port 8123")]
        self.assertIn(f"{MAX_SAY_BYTES + 1}/{MAX_SAY_BYTES} bytes", status)
        # The input shows at most INPUT_ROWS rows: the messages keep the screen.
        self.assertEqual(len(lines) - row_with(lines, "port 8123") - 1, INPUT_ROWS)
        self.h.keys("enter")
        self.assertIn(f"that line is {MAX_SAY_BYTES + 1} bytes; the limit is {MAX_SAY_BYTES}",
                      self.h.face.messages.rows_text()[-1])
        self.assertEqual(self.h.chat.said, [])
        self.assertEqual(self.h.face.input.edit_text, "")
        self.h.keys("up")
        self.assertEqual(self.h.face.input.edit_text, text)

    def test_wide_text_limit_counts_bytes(self) -> None:
        self.h.face.input.set_edit_text("日" * (MAX_SAY_BYTES // 3 + 1))
        self.h.keys("enter")
        self.assertIn("the limit is", self.h.face.messages.rows_text()[-1])

    def test_empty_input_ignored(self) -> None:
        self.h.link("bob")
        self.h.face.clear()
        self.h.keys("enter")
        self.h.enter("   ")
        self.assertEqual(self.h.face.messages.rows_text(), [])
        self.assertEqual(self.h.chat.calls, [])

    def test_double_slash_says_slash(self) -> None:
        self.h.link("bob")
        self.h.enter("//shrug")
        self.assertEqual(self.h.chat.said, [("general", "/shrug", False)])

    def test_failure_is_logged_and_shown(self) -> None:
        def boom(*args: object, **kwargs: object) -> None:
            raise RuntimeError("boom")

        self.h.chat.say = boom  # type: ignore[method-assign]
        self.h.enter("hello")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertIn("that failed; the log has the details",
                      self.h.face.messages.rows_text()[-1])
        self.assertEqual(self.h.face.input.edit_text, "hello")  # not lost


# --- keys --------------------------------------------------------------------------------


class KeyTests(unittest.TestCase):
    def setUp(self) -> None:
        self.h = ChatHarness()
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
        self.h = ChatHarness()
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


# --- conversations -----------------------------------------------------------------------


class ConversationTests(unittest.TestCase):
    """Conversations as the console shows them, on a FakeChat."""

    def setUp(self) -> None:
        self.h = ChatHarness()
        self.bob = self.h.peer("bob", rooms=("ops",))
        self.carol = self.h.peer("carol")

    def status(self, size: tuple[int, int] = SIZE) -> str:
        return self.h.lines(size)[-2]

    def test_join_a_room_you_are_in_switches_to_it(self) -> None:
        self.h.enter("/join #ops")
        self.h.keys("meta 1")
        self.h.enter("/join ops")
        self.assertEqual(self.h.face.room, "ops")
        self.assertEqual(len(self.h.face.conversations), 2)
        self.assertNotIn("already", self.h.text())

    def test_unread_counts_and_mention_mark(self) -> None:
        self.h.enter("/join #ops")
        self.h.hear(self.carol, "in general")
        self.h.hear(self.carol, "more in general")
        self.assertIn(conv_line("1 #general", "2"), self.h.sidebar())
        canvas = self.h.render()
        self.assertEqual(attr_at(canvas, "1 #general"), "conv_unread")
        self.assertTrue(self.status().rstrip().endswith("2 unread in 1"))
        self.assertEqual(attr_at(canvas, "2 unread in 1"), "status_act")
        self.assertEqual(self.h.bells, [])
        # Not on the screen: #ops is shown.
        self.assertNotIn("in general", "\n".join(self.h.lines()[:-2]))
        self.h.hear(self.carol, "alice: look at this")
        self.assertIn(conv_line("1 #general", "3!"), self.h.sidebar())
        canvas = self.h.render()
        self.assertEqual(attr_at(canvas, "1 #general"), "conv_mention")
        self.assertEqual(attr_at(canvas, "3 unread in 1"), "status_mention")
        self.assertEqual(self.h.bells, [1])
        # Alt-1 shows #general: the lines are there, the counts are gone.
        self.h.keys("meta 1")
        self.assertEqual(self.h.face.room, "general")
        text = self.h.text()
        for line in ("in general", "more in general", "alice: look at this"):
            self.assertIn(line, text)
        self.assertIn("1 #general", self.h.sidebar())
        self.assertNotIn("unread", self.status())
        self.assertEqual(attr_at(self.h.render(), "1 #general"), "conv_current")

    def test_ctrl_n_ctrl_p_and_numbers(self) -> None:
        self.h.enter("/join #ops")
        self.h.hear_private(self.carol, "hi")
        self.h.enter("/join #dev")
        # In the order opened: numbers don't shift when a room comes after a private talk.
        keys = [c.key for c in self.h.face.conversations]
        self.assertEqual(keys, ["general", "ops", "@carol_0001", "dev"])
        self.assertEqual(self.h.face.room, "dev")
        seen = []
        for _ in range(4):
            self.h.keys("ctrl n")
            seen.append(self.h.face.room)
        self.assertEqual(seen, ["general", "ops", "@carol_0001", "dev"])
        self.h.keys("ctrl p", "ctrl p")
        self.assertEqual(self.h.face.room, "ops")
        self.h.keys("ctrl p", "ctrl p")
        self.assertEqual(self.h.face.room, "dev")
        self.h.keys("meta 2")
        self.assertEqual(self.h.face.room, "ops")
        self.h.keys("meta 9")  # no ninth conversation: nothing happens
        self.assertEqual(self.h.face.room, "ops")
        self.assertEqual(self.h.face.input.edit_text, "")  # the keys typed nothing

    def test_alt_a_goes_to_activity_mentions_first(self) -> None:
        self.h.enter("/join #ops")
        self.h.enter("/join #dev")
        self.h.hear(self.carol, "plain news")
        self.h.hear(self.bob, "alice, ops needs you", room="ops")
        self.h.keys("meta a")
        self.assertEqual(self.h.face.room, "ops")
        self.h.keys("meta a")
        self.assertEqual(self.h.face.room, "general")
        self.h.keys("meta a")  # nothing unread: stays
        self.assertEqual(self.h.face.room, "general")

    def test_line_in_a_room_goes_to_its_pane(self) -> None:
        self.h.enter("/join #ops")
        self.h.keys("meta 1")
        self.h.hear(self.bob, "deploy at three", room="ops")
        self.assertNotIn("deploy", "\n".join(self.h.pane("general")))
        self.assertIn("bob deploy at three", "\n".join(self.h.pane("ops")))
        self.assertIn(conv_line("2 #ops", "1"), self.h.sidebar())
        self.h.keys("meta 2")
        self.assertIn("bob deploy at three", self.h.text())

    def test_msg_to_nobody(self) -> None:
        self.h.enter("/msg dave hello")
        self.assertIn("! no peer called dave", self.h.text())
        self.assertEqual(len(self.h.face.conversations), 1)

    def test_part_closes_a_private_talk(self) -> None:
        self.h.enter("/query carol")
        self.h.enter("/part")
        self.assertEqual(self.h.face.room, "general")
        self.assertIsNone(self.h.face.find("@carol_0001"))

    def test_members_of_the_room_first(self) -> None:
        self.h.enter("/join #ops")
        side = self.h.sidebar()
        start = side.index("peers 2/2")
        self.assertEqual(side[start + 1:start + 5],
                         ["in #ops: 1", "●   bob plain", "elsewhere:", "●   carol plain"])
        self.h.keys("meta 1")
        side = self.h.sidebar()
        start = side.index("peers 2/2")
        self.assertEqual(side[start + 1:start + 3], ["●   bob plain", "●   carol plain"])

    def test_narrow_terminal_keeps_the_counts_in_the_status_bar(self) -> None:
        self.h.enter("/join #ops")
        self.h.hear(self.carol, "hello")
        narrow = (SIDEBAR_MIN_COLS - 1, 10)
        lines = self.h.lines(narrow)
        self.assertNotIn("│ 1 #general", "\n".join(lines))
        self.assertIn("#ops", lines[-2])
        self.assertIn("1 unread in 1", lines[-2])

    def test_many_conversations_fit(self) -> None:
        for i in range(12):
            self.h.enter(f"/join #room{i}")
        for size in ((80, 24), (80, 8), (60, 5), (120, 40)):
            lines = self.h.lines(size)
            self.assertEqual(len(lines), size[1])
            self.assertTrue(all(calc_width(ln, 0, len(ln)) == size[0] for ln in lines))
        # The current one (the 13th, past Alt-9: shown with a dot) stays in view.
        self.assertIn("· #room11", "\n".join(self.h.sidebar((80, 24))))


class ConversationNodeTests(unittest.TestCase):
    """Conversations with what the real node sends where (rooms, private lines, their
    acks)."""

    def setUp(self) -> None:
        self.h = Harness()
        self.bob = self.h.peer("bob", rooms=("ops",))
        self.carol = self.h.peer("carol")

    def status(self, size: tuple[int, int] = SIZE) -> str:
        return self.h.lines(size)[-2]

    def test_join_opens_and_shows_the_room(self) -> None:
        self.h.enter("/join #ops")
        self.assertEqual(self.h.face.room, "ops")
        self.assertEqual(self.h.sidebar()[:3], ["conversations", "1 #general", "2 #ops"])
        canvas = self.h.render()
        self.assertEqual(attr_at(canvas, "2 #ops"), "conv_current")
        self.assertEqual(attr_at(canvas, "1 #general"), "conv")
        self.assertIn("alice │ #ops │ port 8123", self.status())
        ops = "\n".join(self.h.pane("ops"))
        self.assertIn("--> you joined #ops", ops)
        self.assertIn("- also here: bob", ops)
        self.assertNotIn("you joined", "\n".join(self.h.pane("general")))
        # What you type now goes to #ops only.
        self.h.enter("ops only")
        self.assertEqual([(m.room_id, m.content) for m in self.bob.sent if m.type == CHAT],
                         [("ops", "ops only")])
        self.assertEqual([m for m in self.carol.sent if m.type == CHAT], [])
        self.assertIn("alice ops only", self.h.text())

    def test_private_line_opens_a_conversation_without_switching(self) -> None:
        self.h.hear_private(self.carol, "psst, lunch?")
        self.assertEqual(self.h.face.room, "general")
        self.assertIn(conv_line("2 carol", "1!"), self.h.sidebar())
        self.assertEqual(self.h.bells, [1])  # a private line is worth a bell
        self.assertNotIn("psst", self.h.text())
        self.assertIn("1 unread in 2", self.status())
        self.h.hear_private(self.carol, "or later?")
        self.assertIn(conv_line("2 carol", "2!"), self.h.sidebar())
        self.h.keys("meta 2")
        self.assertIn("alice │ carol │", self.status())
        text = self.h.text()
        self.assertIn("carol psst, lunch?", text)
        self.assertIn("carol or later?", text)
        # Typing here says privately to carol.
        self.h.enter("sure, 12:30")
        (msg,) = [m for m in self.carol.sent if m.type == PRIVATE]
        self.assertEqual((msg.content, msg.metadata["to"]), ("sure, 12:30", "carol_0001"))
        self.assertEqual([m for m in self.bob.sent if m.type in (CHAT, PRIVATE)], [])
        self.assertIn("alice sure, 12:30", self.h.text())

    def test_msg_opens_the_talk_and_stays(self) -> None:
        self.h.enter("/msg carol are you there?")
        (msg,) = [m for m in self.carol.sent if m.type == PRIVATE]
        self.assertEqual(msg.content, "are you there?")
        self.assertEqual(self.h.face.room, "general")
        # Echoed where you are, with the key to the talk; the line itself is in the talk.
        self.assertIn("→ to carol: are you there? (Alt-2)", self.h.text())
        self.assertIn("alice are you there?", "\n".join(self.h.pane("@carol_0001")))
        self.assertIn("2 carol", self.h.sidebar())  # your own line is not unread
        self.assertNotIn("unread", self.status())

    def test_query_switches(self) -> None:
        self.h.enter("/query carol")
        self.assertEqual(self.h.face.room, "@carol_0001")
        self.assertEqual(self.h.face.input.edit_text, "")
        self.h.keys("meta 1")
        self.h.enter("/query carol hello you")
        self.assertEqual(self.h.face.room, "@carol_0001")
        self.assertEqual([m.content for m in self.carol.sent if m.type == PRIVATE],
                         ["hello you"])
        self.assertEqual(len(self.h.face.conversations), 2)
        self.h.face.input.set_edit_text("/query carol " + "x" * (MAX_SAY_BYTES + 1))
        self.h.keys("enter")
        self.assertIn("the limit is", self.h.face.messages.rows_text()[-1])
        self.assertEqual(len([m for m in self.carol.sent if m.type == PRIVATE]), 1)
        self.h.keys("up")
        self.assertTrue(self.h.face.input.edit_text.startswith("/query carol xxx"))
        self.h.face.input.set_edit_text("")
        self.h.enter("/query carol //shrug")
        self.assertEqual([m.content for m in self.carol.sent if m.type == PRIVATE][-1], "//shrug")
        self.h.enter("/query zed")
        self.assertIn("! no peer called zed", self.h.text())
        self.assertEqual(self.h.face.input.edit_text, "")

    def test_part_leaves_the_room_and_shows_general(self) -> None:
        self.h.enter("/join #ops")
        self.h.enter("/part")
        self.assertEqual(self.h.face.room, "general")
        self.assertIsNone(self.h.face.find("ops"))
        self.assertNotIn("#ops", "\n".join(self.h.sidebar()))
        self.assertIn("<-- you left #ops", self.h.text())
        self.assertNotIn("ops", self.h.node.rooms.joined)

    def test_others_joining_and_leaving_a_room(self) -> None:
        self.h.enter("/join #ops")
        self.h.rooms(self.carol, "ops")
        self.assertIn("--> carol joined #ops", self.h.text())
        self.h.rooms(self.carol)
        self.assertIn("<-- carol left #ops", self.h.text())
        # A peer that quits is shown leaving in #general and in the rooms it was in.
        self.h.node.message_received(self.bob, Message(id="bye", type="leave",
                                                       sender_id=self.bob.peer_id,
                                                       username="bob"))
        self.assertIn("<-- bob left", "\n".join(self.h.pane("ops")))
        self.assertIn("<-- bob left", "\n".join(self.h.pane("general")))

    def test_nick_change_shown_in_the_talk(self) -> None:
        self.h.hear_private(self.carol, "hi")
        self.h.node.message_received(self.carol, Message(id="n", type="join",
                                                         sender_id=self.carol.peer_id,
                                                         username="caroline"))
        self.assertIn("-- carol is now known as caroline",
                      "\n".join(self.h.pane("@carol_0001")))
        self.assertIn("2 caroline", "\n".join(self.h.sidebar()))


class HistoryTests(unittest.TestCase):
    def setUp(self) -> None:
        self.store = Store(self.mktemp() + ".sqlite3")
        self.addCleanup(self.store.close)

    def said(self, room: str, nick: str, text: str, ago: float, own: bool = False) -> None:
        self.store.remember(StoredLine(f"h{room}{ago}", room, f"{nick}_0001", nick, text,
                                       False, own, NOW - ago))

    def test_start_shows_general_history_set_apart(self) -> None:
        self.said("general", "bob", "yesterday's news", 300)
        self.said("general", "alice", "my old line", 200, own=True)
        self.said("ops", "bob", "not in general", 100)
        h = Harness(store=self.store, clear=False)
        rows = h.face.messages.rows_text()
        self.assertEqual(rows[0], "— history of #general —")
        self.assertIn("bob yesterday's news", rows[1])
        self.assertIn("alice my old line", rows[2])
        self.assertEqual(rows[3], "— now —")
        self.assertIn("you are alice", rows[4])
        self.assertNotIn("not in general", "\n".join(rows))
        canvas = h.render()
        lines = screen_lines(canvas)
        self.assertRegex(lines[0], r"^─+ history of #general ─+ │")
        self.assertRegex(lines[3], r"^─+ now ─+ │")
        self.assertEqual(attr_at(canvas, "yesterday's news"), "history")
        self.assertEqual(attr_at(canvas, "bob yesterday"), "history")
        self.assertEqual(attr_at(canvas, "my old line"), "history")
        self.assertEqual(attr_at(canvas, "history of"), "separator")

    def test_history_of_another_day_names_it(self) -> None:
        self.said("general", "bob", "long ago", 3 * 86400)
        self.said("general", "bob", "today", 60)
        h = Harness(store=self.store, clear=False)
        rows = h.face.messages.rows_text()
        day = fmt.day_text(NOW - 3 * 86400)
        self.assertEqual(rows[0], f"— history of #general, from {day} —")
        self.assertEqual(rows[2], f"— {fmt.day_text(NOW - 60)} —")

    def test_no_history_no_separators(self) -> None:
        h = Harness(store=self.store, clear=False)
        self.assertNotIn("history", "\n".join(h.face.messages.rows_text()))

    def test_rooms_kept_from_the_last_run_are_open_with_history(self) -> None:
        self.store.set_rooms(["ops"])
        self.said("ops", "bob", "ops from before", 100)
        h = Harness(store=self.store, clear=False)
        self.assertEqual([c.key for c in h.face.conversations], ["general", "ops"])
        self.assertEqual(h.face.room, "general")
        self.assertEqual(h.pane("ops")[0], "— history of #ops —")
        self.assertIn("bob ops from before", h.pane("ops")[1])

    def test_opening_a_conversation_shows_its_history_once(self) -> None:
        self.said("ops", "bob", "ops from before", 100)
        self.said("@carol_0001", "carol", "private from before", 50)
        h = Harness(store=self.store)
        carol = h.peer("carol")
        h.enter("/join #ops")
        ops = h.pane("ops")
        self.assertEqual(ops[0], "— history of #ops —")
        self.assertIn("bob ops from before", ops[1])
        self.assertEqual(ops[2], "— now —")
        self.assertIn("you joined #ops", ops[3])
        h.hear_private(carol, "new and private")
        talk = h.pane("@carol_0001")
        self.assertEqual(talk[0], "— history of carol —")
        self.assertIn("private from before", talk[1])
        self.assertEqual(talk[2], "— now —")
        self.assertIn("carol new and private", talk[3])
        self.assertEqual(sum("new and private" in row for row in talk), 1)

    def test_history_command_shows_more(self) -> None:
        for i in range(5):
            self.said("general", "bob", f"old {i}", 100 - i)
        h = Harness(store=self.store)
        h.enter("/history 2")
        rows = h.face.messages.rows_text()
        self.assertEqual(rows[0], "— history of #general, last 2 lines —")
        self.assertIn("bob old 3", rows[1])
        self.assertIn("bob old 4", rows[2])
        self.assertEqual(rows[3], "— end of history —")
        h.enter("/history 1")
        self.assertIn("last 1 line —", h.face.messages.rows_text()[-3])
        self.assertEqual(attr_at(h.render(), "old 4"), "history")

    def test_history_command_in_a_room_without_any(self) -> None:
        h = Harness(store=self.store)
        h.enter("/join #empty")
        h.face.clear()
        h.enter("/history")
        self.assertTrue(h.face.messages.rows_text()[-1].endswith(" - no history for #empty"))


class DeliveryTests(unittest.TestCase):
    def setUp(self) -> None:
        self.h = Harness()
        self.bob = self.h.peer("bob")

    def ack(self, have: int) -> None:
        self.h.node.message_received(self.bob, Message(id=f"a{have}", type=ACK,
                                                       sender_id=self.bob.peer_id,
                                                       username="bob",
                                                       metadata={"have": have}))

    def test_pending_mark_until_acknowledged(self) -> None:
        self.h.enter("are you getting this?")
        canvas = self.h.render()
        lines = screen_lines(canvas)
        row = lines[row_with(lines, "are you getting this?")]
        self.assertIn(f"are you getting this? {fmt.PENDING}", row)
        self.assertEqual(attr_at(canvas, fmt.PENDING), "pending")
        self.assertNotIn("not delivered", self.h.text())
        (msg,) = [m for m in self.bob.sent if m.type == CHAT]
        self.ack(msg.sequence)
        self.assertNotIn(fmt.PENDING, self.h.text())
        self.assertIn("are you getting this?", self.h.text())
        self.assertEqual(self.h.face.undelivered, {})

    def test_pending_in_another_conversation_clears_too(self) -> None:
        self.h.enter("/msg bob private words")
        self.assertIn(fmt.PENDING, "\n".join(self.h.pane("@bob_0001")))
        (msg,) = [m for m in self.bob.sent if m.type == PRIVATE]
        self.ack(msg.sequence)
        self.assertNotIn(fmt.PENDING, "\n".join(self.h.pane("@bob_0001")))

    def test_said_while_bob_is_away_then_delivered(self) -> None:
        # bob still announces itself: a dropped link means away, not gone
        self.h.node.peers.heard(Beacon(type="announce", peer_id=self.bob.peer_id,
                                       username="bob", port=8002, timestamp=NOW),
                                "127.0.0.1", self.h.node.clock.seconds())
        self.h.node.link_lost(self.bob, "gone")
        self.h.enter("said while away")
        text = self.h.text()
        self.assertIn("said while away (not delivered)", text)
        self.assertIn("delivered when they are back", text)
        (message_id,) = self.h.face.undelivered
        self.h.face.on_event(events.Delivered(NOW, message_id))
        self.assertNotIn("(not delivered)", self.h.text())


class UndeliveredCapTests(unittest.TestCase):
    """The marks kept to clear are bounded: nobody may ever ack a line said to no one."""

    def test_the_oldest_marks_are_let_go(self) -> None:
        self.patch(app, "UNDELIVERED_KEPT", 3)
        h = ChatHarness()
        for i in range(5):
            h.face.on_event(events.ChatLine(NOW, "alice", f"alone {i}", "alice_0000", f"u{i}",
                                            own=True, sent_to=0))
        self.assertEqual(list(h.face.undelivered), ["u2", "u3", "u4"])
        h.face.on_event(events.Delivered(NOW, "u0"))  # let go: its mark stays
        h.face.on_event(events.Delivered(NOW, "u4"))
        rows = h.face.messages.rows_text()
        self.assertIn("alone 0 (not delivered)", rows[0])
        self.assertNotIn("(not delivered)", rows[-1])
        self.assertEqual(list(h.face.undelivered), ["u2", "u3"])


class AwayTalkTests(unittest.TestCase):
    """Private talk with a peer that quit: kept lines, their marks, the talk opened again."""

    def setUp(self) -> None:
        self.h = Harness()
        self.bob = self.h.peer("bob")
        self.h.node.message_received(self.bob, Message(id="bye", type="leave",
                                                       sender_id=self.bob.peer_id,
                                                       username="bob"))
        self.h.node.link_lost(self.bob, "it left")

    def test_query_an_away_peer_keeps_the_line_pending(self) -> None:
        self.h.enter("/query bob see you later")
        self.assertEqual(self.h.face.room, "@bob_0001")
        text = self.h.text()
        self.assertIn(f"see you later {fmt.PENDING}", text)
        self.assertNotIn("not delivered", text)
        self.assertIn("- bob is away: the line is kept and", text)
        self.assertEqual(self.h.face.label(self.h.face.current), "bob")
        self.assertNotIn("bob_0001", text)  # named, never a raw id
        (message_id,) = self.h.face.undelivered
        # bob is back and acks (its catch-up got it): the mark goes
        back = FakeLink("bob_0001", "bob", caps=CAPS, now=NOW)
        self.h.node.link_ready(back)
        self.h.node.message_received(back, Message(id="sb", type=SYNC, sender_id="bob_0001",
                                                   username="bob",
                                                   metadata={"sent": 0, "have": 0}))
        (msg,) = [m for m in back.sent if m.type == PRIVATE]
        self.assertEqual((msg.id, msg.content), (message_id, "see you later"))
        self.h.node.message_received(back, Message(id="ab", type=ACK, sender_id="bob_0001",
                                                   username="bob",
                                                   metadata={"have": msg.sequence}))
        self.assertNotIn(fmt.PENDING, self.h.text())
        self.assertEqual(self.h.face.undelivered, {})

    def test_query_a_peer_never_seen(self) -> None:
        self.h.enter("/query zed")
        self.assertIn("! no peer called zed", self.h.text())
        self.assertEqual(len(self.h.face.conversations), 1)

    def test_a_private_line_reopens_a_closed_talk(self) -> None:
        back = self.h.peer("bob")
        self.h.hear_private(back, "first")
        self.h.keys("meta 2")
        self.h.enter("/part")  # closed
        self.assertIsNone(self.h.face.find("@bob_0001"))
        self.h.hear_private(back, "while you were away")  # as catch-up delivers it
        conv = self.h.face.find("@bob_0001")
        self.assertIsNotNone(conv)
        self.assertEqual((conv.unread, conv.mention), (1, True))
        pane = "\n".join(self.h.pane("@bob_0001"))
        self.assertIn("while you were away", pane)
        self.assertEqual(pane.count("while you were away"), 1)
        (row,) = [r for r in self.h.sidebar() if r.startswith("2 bob")]
        self.assertTrue(row.endswith("1!"), row)


class PeerMarkTests(unittest.TestCase):
    def test_encryption_marks(self) -> None:
        peers = PeerList()
        peers.update([
            PeerView("bob", "b", "connected", "h:1", True, encrypted=True),
            PeerView("carol?", "c", "connected", "h:2", True, encrypted=True, flagged=True),
            PeerView("dave", "d", "connected", "h:3", True),
            PeerView("gopher", "g", "connected", "h:4", False),
            PeerView("erin", "e", "connecting", "h:5", True),
        ])
        canvas = peers.render((SIDEBAR_WIDTH, 7))
        lines = [ln.rstrip() for ln in screen_lines(canvas)]
        self.assertEqual(lines[1:6], ["●🔒 bob", "●🔒 carol?", "●   dave plain",
                                      "●   gopher base", "○   erin"])
        self.assertEqual(attr_at(canvas, "carol?"), "peer_flagged")
        self.assertEqual(attr_at(canvas, "bob"), fmt.nick_attr("bob"))
        self.assertEqual(attr_at(canvas, " plain"), "peer_note")
        self.assertEqual(attr_at(canvas, " base"), "peer_note")
        for line in screen_lines(canvas):
            self.assertEqual(calc_width(line, 0, len(line)), SIDEBAR_WIDTH)

    def test_lock_keeps_the_columns(self) -> None:
        h = Harness()
        h.face.peers.update([PeerView("bob", "b", "connected", "h:1", True, encrypted=True)])
        for line in h.lines():
            self.assertEqual(calc_width(line, 0, len(line)), SIZE[0], line)
        self.assertIn("●🔒 bob", "\n".join(h.sidebar()))


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
        #: what the screen calls with each read of keys (MainLoop's input path)
        self.callback = callback

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
        self.service = ConsoleService(self.node, self.reactor, "/tmp/x", self.reactor.stop,
                                      screen=self.screen)
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
        self.assertIn("?   bob", "\n".join(self.screen.draws[-1]))


# --- long input, pastes ------------------------------------------------------------------

#: The longest one read of keys (or one redraw) may take here.  The target is 50 ms and is
#: met with room on a quiet machine (a few ms per read; 21-28 ms gaps measured on a real pty
#: during a 20,000-character paste), but tests run beside other work (CI, a busy laptop), so
#: the bound is looser: it still fails the old console by far (its Edit took 14.7 s over the
#: first 2,000 keys) without flaking on a loaded machine.
CALLBACK_BUDGET = 0.25


class LongInputTests(unittest.TestCase):
    """Typing or pasting a very long line costs a pass over what came in, not a layout of the
    whole line per key: the reactor keeps turning (issue 14.2)."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.reactor.advance(NOW)
        self.node = Node("alice", self.reactor, peer_id="alice_0000")
        self.screen = FakeScreen((100, 30))
        self.service = ConsoleService(self.node, self.reactor, "/tmp/x", self.reactor.stop,
                                      screen=self.screen)
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.bob = FakeLink("bob_0001", "bob", now=NOW)
        self.node.link_ready(self.bob)

    def read(self, keys: list[str]) -> float:
        """One read of keys, as the screen hands it to urwid; the seconds it took."""
        start = time.monotonic()
        self.screen.callback(keys, [])
        return time.monotonic() - start

    def draw(self) -> float:
        start = time.monotonic()
        self.service.loop.draw_screen()
        return time.monotonic() - start

    def test_20000_keys_in_one_read(self) -> None:
        # A warm-up read of 2000 keys first: the old Edit took seconds over it, so a
        # regression fails here rather than hanging on 20,000.
        self.assertLess(self.read(["w"] * 2000), CALLBACK_BUDGET)
        self.service.face.input.set_edit_text("")
        took = self.read(["x"] * 20_000)
        self.assertLess(took, CALLBACK_BUDGET)
        self.assertEqual(self.service.face.input.edit_text, "x" * 20_000)
        self.assertLess(self.draw(), CALLBACK_BUDGET)
        # The end of the line is what is shown, with the cursor after it; the status bar
        # says it is too long.
        last = self.screen.draws[-1]
        self.assertTrue(last[-1].rstrip().endswith("x"), last[-1])
        self.assertIn("20000/4000 bytes: too long", "\n".join(last))
        # Editing it stays cheap: keys one read each, a redraw after each.
        for key in ("left", "home", "y", "end", "backspace", "ctrl w", "up"):
            self.assertLess(self.read([key]), CALLBACK_BUDGET, key)
            self.assertLess(self.draw(), CALLBACK_BUDGET, key)

    def test_typing_20000_keys_one_read_each(self) -> None:
        worst = 0.0
        for i in range(20_000):
            worst = max(worst, self.read(["x"]))
            if worst > CALLBACK_BUDGET:
                self.fail(f"key {i} took {worst:.3f} s")
            if i % 2000 == 0:
                worst = max(worst, self.draw())
        self.assertLess(worst, CALLBACK_BUDGET)
        self.read(["enter"])
        self.assertIn("that line is 20000 bytes; the limit is 4000, not sent",
                      "\n".join(self.service.face.messages.rows_text()))
        self.assertEqual([m for m in self.bob.sent if m.type == CHAT], [])
        self.assertEqual(self.service.face.input.edit_text, "")

    def test_a_pasted_line_of_20000_characters(self) -> None:
        took = self.read([paste.BEGIN] + ["z"] * 20_000 + [paste.END])
        self.assertLess(took, CALLBACK_BUDGET)
        self.assertEqual(self.service.face.input.edit_text, "z" * 20_000)
        self.assertLess(self.draw(), CALLBACK_BUDGET)

    def test_input_line_is_bounded(self) -> None:
        from p2pchat.console import input_line
        self.patch(input_line, "INPUT_MAX_CHARS", 100)
        self.read(["a"] * 150)
        self.assertEqual(self.service.face.input.edit_text, "a" * 100)
        self.assertIn("the input line holds at most", self.service.face.messages.rows_text()[-1])


class InputLineTests(unittest.TestCase):
    """The windowed drawing: only the rows around the cursor, at most INPUT_ROWS."""

    def setUp(self) -> None:
        self.h = ChatHarness()
        self.input = self.h.face.input

    def input_rows(self, size: tuple[int, int] = SIZE) -> list[str]:
        lines = self.h.lines(size)
        return lines[row_with(lines, "alice │") + 1:]

    def test_short_line_one_row(self) -> None:
        self.h.type("hello")
        self.assertEqual(self.input_rows(), ["> hello".ljust(80)])

    def test_long_line_grows_then_scrolls_with_the_cursor(self) -> None:
        text = "".join(f"{i:04d}" for i in range(200))  # 800 characters, 10 rows of 80
        self.input.insert(text)
        rows = self.input_rows()
        self.assertEqual(len(rows), INPUT_ROWS)
        self.assertTrue(rows[-1].rstrip().endswith("0199"), rows)
        canvas = self.h.render()
        self.assertEqual(canvas.cursor[1], SIZE[1] - 1)
        self.h.keys("home")
        rows = self.input_rows()
        self.assertTrue(rows[0].startswith("> 00000001"), rows)
        self.assertEqual(self.h.render().cursor, (2, SIZE[1] - INPUT_ROWS))
        self.h.keys("end")
        self.assertTrue(self.input_rows()[-1].rstrip().endswith("0199"))

    def test_wide_characters_keep_the_width(self) -> None:
        self.input.insert("日本語😀" * 100)
        for size in (SIZE, (41, 12), (20, 10)):
            for line in self.input_rows(size):
                self.assertEqual(calc_width(line, 0, len(line)), size[0], line)
            self.h.keys("home")
            for line in self.input_rows(size):
                self.assertEqual(calc_width(line, 0, len(line)), size[0], line)
            self.h.keys("end")

    def test_full_row_puts_the_cursor_on_the_next(self) -> None:
        self.input.insert("x" * (SIZE[0] - 2))
        rows = self.input_rows()
        self.assertEqual(len(rows), 2)
        self.assertEqual(self.h.render().cursor, (0, SIZE[1] - 1))

    def test_undo_and_kill(self) -> None:
        self.input.insert("one two three")
        self.h.keys("meta b", "meta backspace")
        self.assertEqual(self.input.edit_text, "one three")
        self.h.keys("ctrl _")
        self.assertEqual(self.input.edit_text, "one two three")
        self.h.keys("meta d")
        self.assertEqual(self.input.edit_text, "one two ")
        self.h.keys("ctrl y")
        self.assertEqual(self.input.edit_text, "one two three")


class PasteGateTests(unittest.TestCase):
    """The state machine alone."""

    def setUp(self) -> None:
        self.gate = PasteGate()

    def pasted(self, text: str) -> list:
        keys = [paste.BEGIN] + ["enter" if ch == "\n" else ch for ch in text] + [paste.END]
        return self.gate.feed(keys)

    def test_one_line_is_inserted(self) -> None:
        self.assertEqual(self.pasted("hello there\n"), [("insert", "hello there")])
        self.assertFalse(self.gate.asking)

    def test_lines_are_asked_about_then_sent(self) -> None:
        self.assertEqual(self.pasted("one\n/quit\n\nthree"), [("ask", 3)])
        self.assertTrue(self.gate.asking)
        # Modal: typing, Enter, Ctrl-P mean nothing now; Ctrl-C and PgUp still work.
        self.assertEqual(self.gate.feed(["x"]), [])
        self.assertEqual(self.gate.feed(["enter"]), [])
        self.assertEqual(self.gate.feed(["ctrl p"]), [])
        self.assertEqual(self.gate.feed(["page up"]), [("keys", ["page up"])])
        self.assertEqual(self.gate.feed(["ctrl y"]), [("send", ["one", "/quit", "three"])])
        self.assertFalse(self.gate.asking)
        self.assertEqual(self.gate.feed(["x"]), [("keys", ["x"])])

    def test_no_drops(self) -> None:
        self.pasted("a\nb")
        self.assertEqual(self.gate.feed(["ctrl n"]), [("drop", 2)])
        self.assertFalse(self.gate.asking)
        self.pasted("a\nb")
        self.assertEqual(self.gate.feed(["esc"]), [("drop", 2)])

    def test_paste_split_over_reads(self) -> None:
        self.assertEqual(self.gate.feed(["a", paste.BEGIN, "b", "enter"]), [("keys", ["a"])])
        self.assertTrue(self.gate.collecting)
        self.assertEqual(self.gate.feed(["c", "tab", "d"]), [])
        self.assertEqual(self.gate.feed([paste.END, "e"]), [("ask", 2), ])
        self.assertEqual(self.gate.lines(), ["b", "c" + paste.PASTE_TAB + "d"])

    def test_unbracketed_burst_is_a_paste(self) -> None:
        keys = list("line one") + ["enter"] + list("/quit") + ["enter"]
        self.assertEqual(self.gate.feed(keys), [("ask", 2)])
        # More of it in the next read joins what is asked about.
        self.assertEqual(self.gate.feed(list("more") + ["enter"] + list("last")),
                         [("ask", 4)])
        self.assertEqual(self.gate.feed(["ctrl y"]),
                         [("send", ["line one", "/quit", "more", "last"])])

    def test_typed_line_with_enter_last_is_typing(self) -> None:
        self.assertEqual(self.gate.feed(["h", "i", "enter"]), [("keys", ["h", "i", "enter"])])
        self.assertEqual(self.gate.feed(["up", "enter", "x"]), [("keys", ["up", "enter", "x"])])

    def test_paste_is_bounded(self) -> None:
        self.patch(paste, "PASTE_MAX_CHARS", 10)
        self.assertEqual(self.pasted("x" * 25), [("cut", 15), ("insert", "x" * 10)])

    def test_end_that_never_comes(self) -> None:
        self.gate.feed([paste.BEGIN, "a", "enter", "b"])
        self.assertEqual(self.gate.end(), [("ask", 2)])
        self.assertFalse(self.gate.collecting)


class PasteTests(unittest.TestCase):
    """Pastes through the face: the question on the screen, the lines said as text."""

    def setUp(self) -> None:
        self.h = ChatHarness()
        self.bob = self.h.link("bob")
        self.block = "first line\n/quit\n/nick mallory\n  indented\nlast one\n"

    def paste(self, text: str) -> None:
        keys = [paste.BEGIN] + ["enter" if ch == "\n" else ch for ch in text] + [paste.END]
        self.h.face.take_keys(keys, SIZE)

    def said(self) -> list[str]:
        return [text for room, text, action in self.h.chat.said if room == "general"]

    def test_yes_sends_every_line_as_text(self) -> None:
        self.h.type("draft")
        self.paste(self.block)
        canvas = self.h.render()
        lines = screen_lines(canvas)
        self.assertEqual(lines[-1].rstrip(), "Paste 5 lines? [ctrl-y] Yes [ctrl-n] No")
        self.assertEqual(attr_at(canvas, "Paste 5"), "paste_prompt")
        self.assertEqual(self.said(), [])
        self.h.keys("ctrl y")
        self.h.clock.advance(0)
        self.assertEqual(self.said(), ["first line", "/quit", "/nick mallory", "  indented",
                                       "last one"])
        self.assertEqual(self.h.quits, [])
        self.assertEqual(self.h.chat.nick, "alice")
        self.assertEqual(self.h.face.input.edit_text, "draft")  # what was typed stays
        self.assertTrue(self.h.lines()[-1].startswith("> draft"))
        # Ctrl-Y means yank again.
        self.h.keys("ctrl w", "ctrl y")
        self.assertEqual(self.h.face.input.edit_text, "draft")

    def test_no_drops_it(self) -> None:
        self.paste(self.block)
        self.h.keys("ctrl n")
        self.h.clock.advance(1)
        self.assertEqual(self.said(), [])
        self.assertEqual(self.h.face.room, "general")  # Ctrl-N did not switch conversations
        self.assertIn("paste of 5 lines dropped", self.h.face.messages.rows_text()[-1])
        self.assertTrue(self.h.lines()[-1].startswith("> "))

    def test_long_paste_is_said_over_several_turns(self) -> None:
        self.patch(keys, "PASTE_LINES_PER_TURN", 2)
        self.paste(self.block)
        self.h.keys("ctrl y")
        self.assertEqual(len(self.said()), 2)  # the rest in later reactor turns
        self.assertEqual(len(self.h.clock.getDelayedCalls()), 1)
        self.h.clock.advance(0)
        self.assertEqual(len(self.said()), 5)
        self.assertEqual(self.h.clock.getDelayedCalls(), [])

    def test_a_paste_is_said_in_runs(self) -> None:
        """The lines of a turn go to ``say_lines`` together (one signature per run where the
        links take it: runsig.py), not one ``say`` each."""
        runs: list[list[str]] = []
        say_lines = self.h.chat.say_lines

        def recorded(texts: list[str], room: str = "general") -> list:
            runs.append(list(texts))
            return say_lines(texts, room)
        self.patch(self.h.chat, "say_lines", recorded)
        self.paste(self.block)
        self.h.keys("ctrl y")
        self.h.clock.advance(0)
        self.assertEqual([len(run) for run in runs], [5])
        self.assertEqual(len(self.said()), 5)

    def test_lines_past_the_limit_are_not_sent(self) -> None:
        self.patch(keys, "PASTE_MAX_LINES", 3)
        self.paste(self.block)
        self.assertIn("(the first 3 only)", self.h.lines()[-1])
        self.h.keys("ctrl y")
        self.h.clock.advance(0)
        self.assertEqual(len(self.said()), 3)
        self.assertIn("only the first 3 of 5 lines are sent",
                      "\n".join(self.h.face.messages.rows_text()))

    def test_a_line_too_long_in_a_paste_is_refused_alone(self) -> None:
        self.paste("short\n" + "x" * (MAX_SAY_BYTES + 1) + "\nafter\n")
        self.h.keys("ctrl y")
        self.h.clock.advance(0)
        self.assertEqual(self.said(), ["short", "after"])
        self.assertIn("that line is 4001 bytes", "\n".join(self.h.face.messages.rows_text()))

    def test_missing_end_marker(self) -> None:
        self.h.face.take_keys([paste.BEGIN] + list("one") + ["enter"] + list("two"), SIZE)
        self.h.clock.advance(app.PASTE_END_WAIT + 0.1)
        self.assertIn("Paste 2 lines?", self.h.lines()[-1])


class CompleteTests(unittest.TestCase):
    commands = ("join", "query", "quit", "nick", "part")
    rooms = ("general", "ops", "Offtopic")
    nicks = ("bob", "Bobby", "carol")

    def complete(self, text: str, pos: int | None = None) -> list[tuple[str, int]]:
        return candidates(text, len(text) if pos is None else pos, self.commands,
                          self.rooms, self.nicks)

    def test_commands_at_the_start(self) -> None:
        self.assertEqual(self.complete("/j"), [("/join ", 6)])
        self.assertEqual([t for t, _ in self.complete("/q")], ["/query ", "/quit "])
        self.assertEqual(self.complete("say /j"), [])  # not a command mid-line
        self.assertEqual(self.complete("//j"), [])

    def test_rooms_anywhere(self) -> None:
        self.assertEqual(self.complete("#o"), [("#Offtopic ", 10), ("#ops ", 5)])
        self.assertEqual(self.complete("/join #op"), [("/join #ops ", 11)])
        self.assertEqual(self.complete("see #g later", 6), [("see #general later", 12)])

    def test_nicks(self) -> None:
        self.assertEqual(self.complete("c"), [("carol: ", 7)])
        self.assertEqual([t for t, _ in self.complete("hi bo")], ["hi bob ", "hi Bobby "])
        self.assertEqual(self.complete("/msg ca"), [("/msg carol ", 11)])
        self.assertEqual(self.complete("x"), [])
        self.assertEqual(self.complete("hi "), [])

    def test_in_the_face_tab_cycles_and_shift_tab_goes_back(self) -> None:
        h = ChatHarness()
        h.enter("/join #ops")
        h.enter("/join #offtopic")
        h.type("/j")
        h.keys("tab")
        self.assertEqual(h.face.input.edit_text, "/join ")
        h.type("#o")
        h.keys("tab")
        self.assertEqual(h.face.input.edit_text, "/join #offtopic ")
        h.keys("tab")
        self.assertEqual(h.face.input.edit_text, "/join #ops ")
        h.keys("shift tab")
        self.assertEqual(h.face.input.edit_text, "/join #offtopic ")
        h.keys("tab", "tab")
        self.assertEqual(h.face.input.edit_text, "/join #o")


class NarrowTests(unittest.TestCase):
    def test_text_shows_at_20_columns_and_less(self) -> None:
        h = ChatHarness()
        bob = h.link("bartholomew")
        h.hear(bob, "hello narrow world")
        for cols in (40, 30, 20, 12):
            lines = h.lines((cols, 10))
            text = "\n".join(lines)
            self.assertIn("hello", text, text)
            for line in lines:
                self.assertEqual(calc_width(line, 0, len(line)), cols, line)
        lines = h.lines((20, 10))
        self.assertNotIn(fmt.clock_text(NOW)[:5], "\n".join(lines[:-2]))  # the time went
        self.assertIn("barth… hello", "\n".join(lines))  # the nick column narrowed
        self.assertIn(fmt.clock_text(NOW), h.text((80, 10)))


class PartTests(unittest.TestCase):
    def test_part_of_a_private_talk_goes_back_to_where_you_were(self) -> None:
        h = ChatHarness()
        h.peer("carol")
        h.enter("/join #ops")
        h.enter("/query carol")
        self.assertIn("talking privately with carol (/part to end)",
                      h.face.messages.rows_text()[-1])
        h.enter("/part")
        self.assertEqual(h.face.room, "ops")
        self.assertIsNone(h.face.find("@carol_0001"))
        # Where you were is gone meanwhile: #general.
        h.enter("/query carol")
        h.keys("meta 2")
        h.enter("/part")  # leaves #ops
        h.keys("meta 2")
        self.assertEqual(h.face.room, "@carol_0001")
        h.enter("/part")
        self.assertEqual(h.face.room, "general")


class ScrollbackBudgetTests(unittest.TestCase):
    """All the conversations together hold at most SCROLLBACK_BYTES (issue 15.2)."""

    def test_flood_over_many_conversations_is_bounded(self) -> None:
        self.patch(widgets, "SCROLLBACK_BYTES", 200_000)
        h = ChatHarness()
        links = [h.peer(f"peer{i}") for i in range(8)]
        text = "y" * 1000
        for n in range(60):
            for link in links:
                h.hear_private(link, f"{n:03d} {text}")
                h.hear(link, f"{n:03d} {text}")
        budget = h.face.scrollback
        total = sum(w.cost for c in h.face.conversations for w in c.pane.walker)
        self.assertEqual(total, budget.used)
        self.assertLessEqual(budget.used, 200_000)
        self.assertGreater(budget.used, 150_000)
        # The oldest went first: each conversation keeps its newest lines.
        for conv in h.face.conversations:
            rows = conv.pane.rows_text()
            self.assertTrue(rows, conv.key)
            self.assertIn("059 yyy", rows[-1])
            self.assertNotIn("000 yyy", "\n".join(rows))

    def test_closing_and_clearing_give_back(self) -> None:
        h = ChatHarness()
        carol = h.peer("carol")
        for i in range(10):
            h.hear_private(carol, f"line {i}")
        before = h.face.scrollback.used
        h.keys("meta 2")
        h.enter("/part")
        self.assertLess(h.face.scrollback.used, before)
        h.face.clear()
        self.assertEqual(h.face.scrollback.used, 0)
        self.assertEqual(h.face.scrollback.rows, 0)


class PlainMarkTests(unittest.TestCase):
    """The status bar names the linked peers that read us in the clear (issue 15)."""

    def test_plain_peers_in_the_status_bar(self) -> None:
        h = Harness()
        status = h.lines()[-2]
        self.assertNotIn("plain", status)
        secure = FakeLink("dave_0001", "dave", caps=CAPS, now=NOW)
        secure.fp = "ab" * 32
        h.node.link_ready(secure)
        self.assertNotIn("plain", h.lines()[-2])
        h.link("gopher")  # a base peer: #general in plaintext
        canvas = h.render()
        status = screen_lines(canvas)[-2]
        self.assertIn("plain: gopher", status)
        self.assertNotIn("dave", status)
        self.assertEqual(attr_at(canvas, "plain: gopher"), "status_plain")
        for nick in ("erin", "frank", "grace"):
            h.link(nick)
        self.assertIn("plain: erin, frank, gopher +1", h.lines((120, 24))[-2])


class InputLineDrawingProperties(unittest.TestCase):
    """Whatever the text, width and cursor: rows of exactly the width, at most INPUT_ROWS,
    and the cursor always drawn on a cell of the row it is in."""

    def test_any_text_width_and_cursor(self) -> None:
        from hypothesis import given, settings, strategies as st

        from p2pchat.console.input_line import InputLine

        chars = st.sampled_from(list("ab c") + ["日", "😀", "é", "\u0301"])

        @settings(max_examples=300, deadline=None)
        @given(st.lists(chars, max_size=600), st.integers(4, 90), st.data())
        def check(text: list[str], cols: int, data) -> None:
            line = InputLine(lambda t: True, lambda t, p: [])
            line.insert("".join(text))
            for _ in range(3):
                line.set_edit_pos(data.draw(st.integers(0, len(line.edit_text))))
                canvas = line.render((cols,), focus=True)
                rows = [r.decode("utf-8") for r in canvas.text]
                self.assertLessEqual(len(rows), INPUT_ROWS)
                self.assertEqual(len(rows), line.rows((cols,), True))
                for row in rows:
                    self.assertEqual(calc_width(row, 0, len(row)), cols, row)
                self.assertIsNotNone(canvas.cursor)
                x, y = canvas.cursor
                self.assertLess(x, cols)
                self.assertLess(y, len(rows))

        check()
