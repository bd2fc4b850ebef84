"""A day of catch-up (issue 21, item 5): relayed lines checked in bounded steps with reading
paused past a mark, hand-on bounded by --catchup-lines, a big catch-up summed up in the line
face and the console, and a real one (two processes, 2,000 lines) had exactly once.  The
figures (time, duplicates, reactor holds) are in ``bench.day``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase

from p2pchat import checking, events
from p2pchat.catching_up import CATCH_UP_QUIET, CATCH_UP_SHOWN, CATCH_UP_TAIL
from p2pchat.interfaces import StoredLine
from p2pchat.lines import LineFace
from p2pchat.node import Node
from p2pchat.store import Store
from p2pchat.turn import Turn
from tests.fakechat import FakeChat
from tests.support import ROOT, child_env
from tests.test_console import ChatHarness
from tests.test_history_limits import ROGUE_CAPS, Reads, plant, sync


class SlowClock:
    """The timer of the checks' turn (turn.py): each line's check takes 4 ms of it."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


class Wire:
    """A link's wire that records its pauses (as PeerProtocol's producer methods)."""

    def __init__(self) -> None:
        self.paused = 0
        self.resumed = 0
        self.connected = True

    def pauseProducing(self) -> None:
        self.paused += 1

    def resumeProducing(self) -> None:
        self.resumed += 1


class Link:
    def __init__(self) -> None:
        self.wire = Wire()


class CheckingInSteps(TestCase):
    def setUp(self) -> None:
        self.time = SlowClock()
        self.clock = Clock()
        self.checked: list[bytes] = []
        self.resumed: list[int] = []
        self.left: list[int] = []
        self.checks = self.checking(0.01)  # a turn of 10 ms: 3 lines

    def checking(self, seconds: float) -> checking.RelayChecks:
        turn = Turn(self.clock, seconds, timer=self.time.perf_counter)
        return checking.RelayChecks(self.clock, self.check, turn=turn)

    def check(self, link: Link, raw: bytes, key: str) -> None:
        self.checked.append(raw)
        self.time.now += 0.004
        self.resumed.append(link.wire.resumed)
        self.left.append(self.checks.waiting())

    def test_a_big_hand_on_is_checked_a_step_a_turn_and_reading_pauses(self) -> None:
        link = Link()
        lines = [(f"line {n}".encode(), "KEY") for n in range(checking.RELAY_CHECK_HIGH + 100)]
        self.checks.add(link, lines[:50])
        self.assertEqual(len(self.checked), 3)  # the first step at once: 10 ms of checks
        self.checks.add(link, lines[50:])
        self.assertEqual(len(self.checked), 3)  # the rest waits for the next turns
        self.assertEqual((link.wire.paused, link.wire.resumed), (1, 0))
        self.clock.advance(0)  # (a Clock runs the steps each schedules for "now" too)
        self.assertEqual(link.wire.resumed, 1)  # reading again under the low mark...
        resumed_at = self.resumed.index(1)
        self.assertLessEqual(self.left[resumed_at], checking.RELAY_CHECK_LOW)  # ...not before
        self.assertGreater(self.left[resumed_at - 3], checking.RELAY_CHECK_LOW - 3)
        self.assertEqual(self.checked, [raw for raw, _ in lines])  # all, once, in order
        self.assertGreaterEqual(self.checks.steps, len(lines) // 3)  # 3 a step (10 ms)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_a_short_hand_on_is_checked_there_and_then(self) -> None:
        self.checks = self.checking(1.0)
        self.checks.add(Link(), [(b"one", "K"), (b"two", "K")])
        self.assertEqual(self.checked, [b"one", b"two"])
        self.clock.advance(0)  # (the end of the turn: no step is left waiting)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_the_relay_lines_of_one_read_share_one_step(self) -> None:
        """A read brings many relay lines, each short enough to check at once: together they
        get one step's budget (10 ms, 3 lines here), not one each (a doRead held 40-77 ms in
        a day of catch-up), and the rest is checked in the next turns."""
        link = Link()
        for n in range(10):  # ten relay lines of two lines each, in one read
            self.checks.add(link, [(b"a%d" % n, "K"), (b"b%d" % n, "K")])
        self.assertEqual(len(self.checked), 3)
        self.clock.advance(0)
        self.assertEqual(self.checked, [b"%s%d" % (x, n) for n in range(10) for x in (b"a", b"b")])
        self.assertEqual(self.clock.getDelayedCalls(), [])


class HandOnLimit(TestCase):
    def test_an_absent_authors_lines_are_handed_on_up_to_the_catch_up_lines(self) -> None:
        clock = Clock()
        clock.advance(1_000_000)
        path = self.mktemp()
        os.makedirs(path)
        store = Store(os.path.join(path, "h.sqlite3"))
        self.addCleanup(store.close)
        node = Node("keeper", clock, store=store, log_lines=30)
        authors = plant(store, authors=2, lines=100, size=50, when=clock.seconds())
        peer = Reads("back_1", "back", caps=ROGUE_CAPS)
        node.link_ready(peer)
        node.message_received(peer, sync("back_1", {a: 0 for a in authors}))
        for _ in range(50):
            clock.advance(0)
        self.assertEqual([peer.relay_lines_of(a) for a in authors], [30, 30])


def replayed(chat: FakeChat, n: int, nick: str, room: str = "general") -> events.ChatLine:
    line = events.ChatLine(chat.now() - 3600 + n, nick, f"caught line {n}", f"{nick}_1",
                           f"c{n:05d}", room=room, replayed=True)
    chat.lines.append(StoredLine(line.message_id, room, line.sender_id, nick, line.text, False,
                                 False, line.when))
    return line


class LineFaceSummary(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.chat = FakeChat(clock=self.clock)
        self.face = LineFace(self.chat, on_quit=lambda: None, clock=self.clock)
        self.transport = StringTransport()
        self.face.makeConnection(self.transport)
        self.transport.clear()

    def out(self) -> list[str]:
        lines = self.transport.value().decode("utf-8").splitlines()
        self.transport.clear()
        return lines

    def test_a_big_catch_up_is_summed_up_not_poured_out(self) -> None:
        count = CATCH_UP_SHOWN + 100
        for n in range(count):
            self.chat.emit(replayed(self.chat, n, ("alice", "bob", "carol")[n % 3]))
            if n == 50:  # a live line meanwhile is shown at once
                self.chat.emit(events.ChatLine(self.clock.seconds(), "dave", "hello now",
                                               "dave_1", "live1"))
        shown = self.out()
        self.assertEqual(len(shown), CATCH_UP_SHOWN + 1)
        self.assertTrue(shown[0].endswith("<alice> caught line 0"))
        self.assertTrue(shown[51].endswith("<dave> hello now"))
        self.assertTrue(shown[-1].endswith(f"caught line {CATCH_UP_SHOWN - 1}"))
        self.clock.advance(CATCH_UP_QUIET)
        summary = self.out()
        self.assertTrue(summary[0].endswith(
            f"- caught up {count} lines in #general from alice, bob and carol; the last "
            f"{CATCH_UP_TAIL}:"), summary[0])
        self.assertEqual(len(summary), CATCH_UP_TAIL + 2)
        self.assertTrue(summary[-2].endswith(f"[history] <carol> caught line {count - 1}"))
        self.assertTrue(summary[-1].endswith("- end of history"))
        self.clock.advance(10)
        self.assertEqual(self.out(), [])

    def test_a_short_catch_up_looks_as_it_always_did(self) -> None:
        for n in range(5):
            self.chat.emit(replayed(self.chat, n, "alice", room="ops"))
        self.clock.advance(CATCH_UP_QUIET * 2)
        shown = self.out()
        self.assertEqual(len(shown), 5)
        self.assertTrue(all("[#ops] <alice> caught line" in line for line in shown))

    def test_each_conversation_has_its_summary_and_the_face_going_stops_it(self) -> None:
        count = 2 * CATCH_UP_SHOWN + 100
        for n in range(count):
            self.chat.emit(replayed(self.chat, n, "alice", room=("ops", "dev")[n % 2]))
        self.clock.advance(CATCH_UP_QUIET)
        said = [line for line in self.out() if "caught up" in line]
        self.assertEqual(len(said), 2)
        self.assertIn(f"caught up {count // 2} lines in #ops from alice", said[0])
        for n in range(count, count + CATCH_UP_SHOWN + 10):
            self.chat.emit(replayed(self.chat, n, "alice", room="ops"))
        self.face.connectionLost()
        self.clock.advance(CATCH_UP_QUIET)
        self.assertFalse([line for line in self.out() if "caught up" in line])
        self.assertEqual(self.clock.getDelayedCalls(), [])

class ConsoleSummary(TestCase):
    def test_the_pane_is_filled_from_the_history_after_a_summary(self) -> None:
        h = ChatHarness()
        count = CATCH_UP_SHOWN + 600
        for n in range(count):
            h.chat.emit(replayed(h.chat, n, ("alice", "bob")[n % 2]))
        rows = h.face.messages.rows_text()
        self.assertEqual(len([r for r in rows if "caught line" in r]), CATCH_UP_SHOWN)
        h.clock.advance(CATCH_UP_QUIET)
        rows = h.face.messages.rows_text()
        title = [r for r in rows if "caught up" in r]
        self.assertEqual(len(title), 1)
        self.assertIn(f"caught up {count} lines in #general from alice and bob; the last 500",
                      title[0])
        after = rows[rows.index(title[0]) + 1:]
        self.assertIn(f"caught line {count - 500}", after[0])
        self.assertTrue(any(f"caught line {count - 1}" in r for r in after[-3:]))
        h.face.detach()
        self.assertEqual(h.clock.getDelayedCalls(), [])


class RealCatchUp(TestCase):
    """``python -m bench --only year,day`` at a small size: two real peers on loopback (a
    private multicast group), one handing on 2,000 signed lines of three absent authors in two
    rooms to the other, which comes back; and a year's file of 3,000 lines, opened by a real
    peer.  No timing asserted: the figures are the bench's."""

    timeout = 300

    def test_every_line_exactly_once_and_the_year_figures(self) -> None:
        proc = subprocess.run([sys.executable, "-m", "bench", "--only", "year,day",
                               "--year-lines", "3000", "--year-starts", "1", "--day-lines",
                               "2000", "--timeout-scale", "3", "--json", "--quiet"],
                              cwd=str(ROOT), env=child_env(), capture_output=True, timeout=280)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode()[-2000:])
        result = json.loads(proc.stdout)
        day = result["day"]
        self.assertEqual(day["status"], "ok", day)
        self.assertEqual((day["has"], day["shown"], day["duplicates"]), (2000, 2000, 0))
        self.assertEqual(sorted(day["by_room"]), ["#dev", "#general"])
        self.assertIsNotNone(day["worst_hold_ms"]["away"])
        year = result["year"]
        self.assertEqual(year["lines"], 3000)
        self.assertIn("slower", year["start_s"], year)
        self.assertGreater(year["bytes_per_line"], 0)
