"""Notifications (issue 20, item 2): the escape sequences each --notify choice writes (also
through tmux), the rules (mention, private, highlight; on screen or not, focused or not),
nothing for replayed lines, /mute and /dnd, highlight words kept across restarts,
notify-send absent = nothing, and text from the network that can't inject escapes."""

from __future__ import annotations

import os
import stat
import time

from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest
from twisted.python import usage

from p2pchat import notify
from p2pchat.console import ConsoleService
from p2pchat.node import Node
from p2pchat.notify import (
    Desktop,
    Highlights,
    Notifier,
    NotifyConfig,
    clean,
    parse_outputs,
    sequences,
)
from p2pchat.options import Options
from p2pchat.wire import CHAT, PRIVATE, Message
from tests.fakes import FakeLink
from tests.test_console import NOW, FakeScreen, Harness

HOSTILE = "hi\x1b]777;notify;pwned;x\x07\x1b\\\x9b31m\x1bP\x07;tail\u202e\x00"


class SequenceTests(unittest.TestCase):
    """The bytes written for each choice, exactly."""

    def test_each_output(self) -> None:
        self.assertEqual(sequences(["bell"], "bob in #ops", "hi"), "\a")
        self.assertEqual(sequences(["osc777"], "bob in #ops", "hi"),
                         "\x1b]777;notify;bob in #ops;hi\a")
        self.assertEqual(sequences(["osc9"], "bob in #ops", "hi"), "\x1b]9;bob in #ops: hi\a")
        self.assertEqual(sequences(["osc99"], "bob in #ops", "hi"),
                         "\x1b]99;;bob in #ops: hi\x1b\\")
        self.assertEqual(sequences(["desktop"], "bob", "hi"), "")
        self.assertEqual(sequences(["osc9"], "bob", ""), "\x1b]9;bob\a")  # --notify-hide-text

    def test_several_in_the_order_given(self) -> None:
        self.assertEqual(sequences(["osc9", "bell"], "bob", "hi"), "\x1b]9;bob: hi\a\a")

    def test_inside_tmux_passthrough_with_escs_doubled(self) -> None:
        self.assertEqual(sequences(["osc777"], "bob", "hi", tmux=True),
                         "\x1bPtmux;\x1b\x1b]777;notify;bob;hi\a\x1b\\")
        self.assertEqual(sequences(["osc9"], "bob", "hi", tmux=True),
                         "\x1bPtmux;\x1b\x1b]9;bob: hi\a\x1b\\")
        self.assertEqual(sequences(["osc99"], "bob", "hi", tmux=True),
                         "\x1bPtmux;\x1b\x1b]99;;bob: hi\x1b\x1b\\\x1b\\")
        self.assertEqual(sequences(["bell"], "bob", "hi", tmux=True), "\a")  # tmux passes it

    def test_outputs_option(self) -> None:
        self.assertEqual(parse_outputs("bell, OSC777,bell,desktop"),
                         ("bell", "osc777", "desktop"))
        for bad in ("", " , ", "bell,growl"):
            with self.assertRaises(ValueError):
                parse_outputs(bad)
        options = Options()
        options.parseOptions(["--username", "carol", "--notify", "osc9,bell",
                              "--notify-hide-text"])
        self.assertEqual(options["notify"], ("osc9", "bell"))
        self.assertTrue(options["notify-hide-text"])
        options = Options()
        options.parseOptions(["--username", "carol"])
        self.assertEqual(options["notify"], ("bell",))
        self.assertRaises(usage.UsageError, Options().parseOptions,
                          ["--username", "carol", "--notify", "bel"])


class CleanTests(unittest.TestCase):
    """Hostile text can't end the sequence early or start one of its own."""

    def test_no_controls_left(self) -> None:
        text = clean(HOSTILE, 200)
        for bad in ("\x1b", "\a", "\x9b", "\x00", ";", "\u202e", "\ufffd"):
            self.assertNotIn(bad, text)
        self.assertTrue(all(ch.isprintable() for ch in text))
        self.assertTrue(text.startswith("hi]777,notify,pwned,x"))

    def test_bounded(self) -> None:
        self.assertEqual(len(clean("x" * 10_000, notify.MAX_BODY_CHARS)),
                         notify.MAX_BODY_CHARS)
        self.assertTrue(clean("x" * 10_000, 10).endswith("…"))

    def test_hostile_line_writes_one_sequence_only(self) -> None:
        title, body = Notifier().texts(text=HOSTILE, nick="bo\x1b]b", where="#general")
        written = sequences(["osc777"], title, body)
        self.assertEqual(written.count("\x1b"), 1)
        self.assertEqual(written.count("\a"), 1)
        self.assertTrue(written.endswith("\a"))
        self.assertEqual(written.count(";"), 3)  # 777 ; notify ; title ; body


class RuleTests(unittest.TestCase):
    def reason(self, n: Notifier, text: str, **kw) -> str | None:
        args = dict(text=text, nick="bob", me="alice", room="general", private=False)
        args.update(kw)
        return n.reason(**args)

    def test_what_is_worth_it(self) -> None:
        n = Notifier()
        n.highlights.add("deploy")
        self.assertEqual(self.reason(n, "ALICE: look"), "mention")
        self.assertIsNone(self.reason(n, "malice aforethought"))  # word-bounded
        self.assertEqual(self.reason(n, "hi", private=True, room="@bob_1"), "private")
        self.assertEqual(self.reason(n, "the Deploy is done"), "highlight")
        self.assertIsNone(self.reason(n, "redeployed"))
        self.assertIsNone(self.reason(n, "just chatting"))
        self.assertIsNone(self.reason(n, "alice!", own=True))
        self.assertIsNone(self.reason(n, "alice!", replayed=True))

    def test_on_screen_and_focus(self) -> None:
        n = Notifier()
        # The terminal never said: a mention on screen still rings (as always), nothing else.
        self.assertEqual(self.reason(n, "alice?", on_screen=True), "mention")
        self.assertIsNone(self.reason(n, "hi", private=True, on_screen=True))
        n.focused = True
        self.assertIsNone(self.reason(n, "alice?", on_screen=True))
        self.assertEqual(self.reason(n, "alice?"), "mention")  # not on screen
        n.focused = False
        self.assertEqual(self.reason(n, "alice?", on_screen=True), "mention")
        self.assertEqual(self.reason(n, "hi", private=True, on_screen=True), "private")

    def test_mute_and_dnd(self) -> None:
        n = Notifier()
        n.muted.add("#ops")
        self.assertIsNone(self.reason(n, "alice?", room="ops"))
        self.assertEqual(self.reason(n, "alice?", room="general"), "mention")
        n.muted.add("bob")
        self.assertIsNone(self.reason(n, "hi", private=True, room="@bob_1", nick="Bob"))
        n.muted.clear()
        n.dnd = True
        self.assertIsNone(self.reason(n, "alice?"))
        self.assertIsNone(self.reason(n, "hi", private=True, room="@bob_1"))

    def test_hide_text(self) -> None:
        n = Notifier(NotifyConfig(hide_text=True))
        self.assertEqual(n.texts(text="secret plans", nick="bob", where="#ops"),
                         ("bob in #ops", ""))
        self.assertEqual(Notifier().texts(text="plans", nick="bob", where=""), ("bob", "plans"))


class HighlightTests(unittest.TestCase):
    def test_kept_across_restarts_private_and_atomic(self) -> None:
        folder = self.mktemp()
        os.makedirs(folder)
        path = os.path.join(folder, notify.HIGHLIGHTS_NAME)
        kept = Highlights(path)
        kept.add("deploy")
        kept.add("Outage")
        kept.remove("deploy")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual([f for f in os.listdir(folder) if f.startswith(".tmp")], [])
        again = Highlights(path)
        self.assertEqual(again.words, ["Outage"])
        self.assertEqual(again.find("an OUTAGE!"), "Outage")

    def test_bounded_and_checked(self) -> None:
        words = Highlights(None)
        for i in range(notify.MAX_HIGHLIGHTS):
            words.add(f"w{i}")
        self.assertIn("already", words.add("one-more"))
        self.assertEqual(len(words.words), notify.MAX_HIGHLIGHTS)
        self.assertIn("is a highlight word already", _twice("x"))
        self.assertIn("one word", Highlights(None).add("two words"))
        self.assertIn("control", Highlights(None).add("a\x1bb"))
        self.assertIn("at most", Highlights(None).add("x" * (notify.MAX_HIGHLIGHT_CHARS + 1)))

    def test_a_bad_or_huge_file_is_not_trusted(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('{"words": ["ok", 3, "a\\u001bb", "OK"] }')
        self.assertEqual(Highlights(path).words, ["ok"])
        with open(path, "w") as f:
            f.write('{"words": [' + ",".join(f'"w{i}"' for i in range(5000)) + "]}")
        self.assertEqual(len(Highlights(path).words), notify.MAX_HIGHLIGHTS)
        with open(path, "w") as f:
            f.write("not json")
        self.assertEqual(Highlights(path).words, [])


def _twice(word: str) -> str:
    words = Highlights(None)
    words.add(word)
    return words.add(word.upper())


class FakeSpawner:
    def __init__(self, fail: bool = False) -> None:
        self.spawned: list[tuple[str, list[str]]] = []
        self.protocols: list = []
        self.fail = fail

    def spawnProcess(self, protocol, path, args, env=None) -> None:
        if self.fail:
            raise OSError("no such file")
        self.spawned.append((path, args))
        self.protocols.append(protocol)


class DesktopTests(unittest.TestCase):
    def test_no_session_or_no_notify_send_is_silent(self) -> None:
        spawner = FakeSpawner()
        for env, found in (({}, ["/usr/bin/notify-send"]), ({"DISPLAY": ":0"}, [])):
            desktop = Desktop(spawner, env, find=lambda name, found=found: found)
            desktop.send("bob", "hi")
            self.assertIsNone(desktop.path)
        self.assertEqual(spawner.spawned, [])

    def test_spawns_with_arguments_never_a_shell_and_bounded(self) -> None:
        spawner = FakeSpawner()
        desktop = Desktop(spawner, {"WAYLAND_DISPLAY": "wayland-0"},
                          find=lambda name: ["/usr/bin/notify-send"])
        desktop.send("bob in #ops", "-u critical")
        self.assertEqual(spawner.spawned, [("/usr/bin/notify-send",
                                            ["/usr/bin/notify-send", "--app-name=p2pchat",
                                             "--", "bob in #ops", "-u critical"])])
        for _ in range(notify.MAX_DESKTOP_RUNNING * 3):
            desktop.send("bob", "again")
        self.assertEqual(len(spawner.spawned), notify.MAX_DESKTOP_RUNNING)
        spawner.protocols[0].processEnded(None)
        desktop.send("bob", "once more")
        self.assertEqual(len(spawner.spawned), notify.MAX_DESKTOP_RUNNING + 1)

    def test_spawn_failure_is_a_log_line_not_an_error(self) -> None:
        desktop = Desktop(FakeSpawner(fail=True), {"DISPLAY": ":0"},
                          find=lambda name: ["/usr/bin/notify-send"])
        desktop.send("bob", "hi")  # no exception
        self.assertIsNone(desktop.path)


class ConsoleTests(unittest.TestCase):
    """The console's rules through a real node: replayed lines, /mute, /dnd, /highlight."""

    def setUp(self) -> None:
        self.alerts: list[tuple[str, str]] = []
        self.h = Harness()
        self.h.face.alerts.send = lambda title, body: self.alerts.append((title, body))

    def info(self) -> str:
        return "\n".join(self.h.lines())

    def test_catch_up_lines_are_not_notified(self) -> None:
        bob = self.h.peer("bob")
        # Resent by catch-up: said before this link was up.
        self.h.node.message_received(bob, Message(
            id="old1", type=PRIVATE, sender_id=bob.peer_id, username="bob",
            content="alice, while you were away", timestamp=NOW - 600, sequence=1,
            metadata={"to": self.h.node.peer_id}))
        self.assertIn("while you were away", "\n".join(self.h.pane("@bob_0001")))
        self.assertEqual(self.alerts, [])
        self.h.hear_private(bob, "and now, live")
        self.assertEqual(self.alerts, [("bob", "and now, live")])

    def test_a_base_peer_with_a_slow_clock_is_live(self) -> None:
        carol = self.h.link("carol")  # no catch-up: nothing it sends is resent
        self.h.node.message_received(carol, Message(
            id="c1", type=CHAT, sender_id=carol.peer_id, username="carol",
            content="alice?", timestamp=NOW - 600, room_id="general"))
        self.assertEqual(len(self.alerts), 1)

    def test_mention_in_another_room_and_mute(self) -> None:
        bob = self.h.peer("bob", rooms=("general", "ops"))
        self.h.enter("/join #ops")
        self.h.hear(bob, "alice: in general")
        self.assertEqual(self.alerts, [("bob in #general", "alice: in general")])
        self.h.enter("/mute #general")
        self.assertIn("#general muted", self.info())
        self.h.hear(bob, "alice: again")
        self.assertEqual(len(self.alerts), 1)
        self.h.enter("/unmute #general")
        self.h.hear(bob, "alice: third")
        self.assertEqual(len(self.alerts), 2)
        self.h.enter("/mute bob")
        self.h.hear_private(bob, "psst")
        self.assertEqual(len(self.alerts), 2)
        self.h.enter("/unmute bob")
        self.h.hear_private(bob, "psst")
        self.assertEqual(len(self.alerts), 3)

    def test_mute_alone_mutes_the_conversation_shown(self) -> None:
        bob = self.h.peer("bob", rooms=("general",))
        self.h.enter("/mute")
        self.h.hear(bob, "alice?")
        self.assertEqual(self.alerts, [])
        self.h.enter("/unmute")
        self.h.hear(bob, "alice?")
        self.assertEqual(len(self.alerts), 1)

    def test_mutes_are_bounded(self) -> None:
        from p2pchat.console.alerts import MAX_MUTED

        for i in range(MAX_MUTED):
            self.h.face.alerts.command("mute", f"nick{i}", "general", "#general")
        self.assertIn("muted already", self.h.face.alerts.command("mute", "one", "general",
                                                                  "#general")[0])
        self.assertEqual(len(self.h.face.alerts.notifier.muted), MAX_MUTED)

    def test_dnd_toggles(self) -> None:
        bob = self.h.peer("bob")
        self.h.enter("/dnd")
        self.assertIn("do not disturb", self.info())
        self.h.hear_private(bob, "psst")
        self.h.hear(bob, "alice!")
        self.assertEqual(self.alerts, [])
        self.h.enter("/dnd")
        self.h.hear_private(bob, "psst")
        self.assertEqual(len(self.alerts), 1)

    def test_highlight_commands(self) -> None:
        bob = self.h.peer("bob", rooms=("general",))
        self.h.enter("/highlight")
        self.assertIn("no highlight words", self.info())
        self.h.enter("/highlight add deploy")
        self.h.enter("/highlight")
        self.assertIn("highlight words: deploy", self.info())
        self.h.enter("/join #ops")
        self.h.hear(bob, "the deploy broke")
        self.assertEqual(self.alerts, [("bob in #general", "the deploy broke")])
        self.h.enter("/highlight del deploy")
        self.h.hear(bob, "the deploy broke again")
        self.assertEqual(len(self.alerts), 1)
        self.h.enter("/highlight frob")
        self.assertIn("usage: /highlight", self.info())


class ServiceTests(unittest.TestCase):
    """What the terminal gets, focus reports included."""

    def start(self, outputs: tuple[str, ...], env: dict[str, str]) -> None:
        self.reactor = MemoryReactorClock()
        self.reactor.advance(NOW)
        self.node = Node("alice", self.reactor, peer_id="alice_0000")
        self.screen = FakeScreen()
        self.service = ConsoleService(self.node, self.reactor, "/tmp/x", self.reactor.stop,
                                      screen=self.screen, notify=NotifyConfig(outputs),
                                      env=env)
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.link = FakeLink("bob_0001", "bob", now=NOW)
        self.node.link_ready(self.link)

    def hear(self, text: str) -> None:
        self.node.message_received(self.link, Message(
            id=f"m{time.monotonic_ns()}", type=CHAT, sender_id=self.link.peer_id,
            username="bob", content=text, timestamp=NOW, room_id="general"))

    def test_osc777_in_tmux_and_the_bell(self) -> None:
        self.start(("osc777", "bell"), {"TMUX": "/tmp/tmux-0/default,1,0"})
        self.hear("alice: \x1b]0;evil\x07 look")
        self.assertEqual(self.screen.written[-1],
                         "\x1bPtmux;\x1b\x1b]777;notify;bob in #general;alice: ]0,evil look\a"
                         "\x1b\\\a")

    def test_focus_reports(self) -> None:
        self.start(("osc9",), {})
        self.screen.callback(["focus in"], [])
        self.hear("alice: on screen, focused")
        self.assertEqual(self.screen.written, [])
        self.screen.callback(["focus out"], [])
        self.hear("alice: away")
        self.assertEqual(self.screen.written, ["\x1b]9;bob in #general: alice: away\a"])
        self.assertEqual(self.service.face.input.edit_text, "")  # not typed

    def test_desktop_without_notify_send_is_silent(self) -> None:
        self.start(("desktop",), {})  # no session at all
        self.hear("alice?")
        self.assertEqual(self.screen.written, [])
        self.assertIsNone(self.service.desktop.path)



class OtherFaceTests(unittest.TestCase):
    def test_the_line_face_says_they_are_the_consoles(self) -> None:
        from twisted.internet.testing import StringTransport

        from p2pchat.lines import LineFace
        from tests.fakechat import FakeChat

        face = LineFace(FakeChat(), on_quit=lambda: None)
        transport = StringTransport()
        face.makeConnection(transport)
        for command in (b"/dnd", b"/mute #ops", b"/unmute", b"/highlight add x"):
            transport.clear()
            face.lineReceived(command)
            self.assertIn("is for the console", transport.value().decode("utf-8"))
