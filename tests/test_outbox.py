"""outbox.py: our lines on their way out; the delivery marks are bounded by the sent log."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from p2pchat.catchup import Delivery
from p2pchat.node import CAPS, Node
from p2pchat.outbox import LONELY_GRACE, Outbox
from p2pchat.wire import Message

from tests.fakes import FakeLink


def line(seq: int, when: float = 0.0) -> Message:
    return Message(id=f"m{seq}", type="chat", sender_id="me_1", content=str(seq),
                   sequence=seq, timestamp=when)


class ForgetThrough(TestCase):
    def test_lines_that_left_the_log_stop_waiting(self) -> None:
        d = Delivery()
        for seq in range(1, 6):
            d.expect(seq, f"m{seq}", {"x"}, private=seq % 2 == 0)
        d.forget_through(3)
        self.assertEqual(len(d), 2)
        self.assertEqual(d.private_waiting("x"), 1)  # m4 only: m2 is gone
        self.assertEqual(d.acked("x", 5), ["m4", "m5"])

    def test_the_marks_of_a_peer_that_never_acks_are_bounded_by_the_log(self) -> None:
        clock = Clock()
        node = Node("me", clock, peer_id="me_1", log_lines=10)
        silent = FakeLink("zed_1", "zed", caps=CAPS)  # catches up, never acks
        self.assertTrue(node.link_ready(silent))
        for i in range(50):
            node.say(f"line {i}")
        self.assertLessEqual(len(node.delivery), 10)
        self.assertLessEqual(len(node.outbox.log), 10)


class Outboxes(TestCase):
    def test_a_link_is_given_only_what_it_lacks_and_told_of_lines_too_old(self) -> None:
        box = Outbox(100, log_lines=3)
        for seq in range(101, 106):
            self.assertEqual(box.number(), seq)
            box.append(line(seq), now=0.0)
        lines, missing = box.due(103)
        self.assertEqual(([m.sequence for m, _ in lines], missing), ([104, 105], False))
        lines, missing = box.due(100)
        self.assertEqual(([m.sequence for m, _ in lines], missing), ([103, 104, 105], True))

    def test_a_newcomer_starts_before_the_lines_said_alone(self) -> None:
        box = Outbox(100)
        for seq, when in ((101, 0.0), (102, 50.0)):
            msg = line(box.number(), when)
            box.append(msg, when)
            box.said_alone(msg, when)
        self.assertEqual(box.sync_start("new_1", None, 102, now=60.0), 100)
        self.assertEqual(box.delivery.acked("new_1", 102), ["m101", "m102"])
        # later than the grace for the first: only the second is given
        self.assertEqual(box.sync_start("late_1", None, 102, now=LONELY_GRACE + 10), 101)
        # one that says what it has starts there
        self.assertEqual(box.sync_start("old_1", 101, 102, now=60.0), 101)
