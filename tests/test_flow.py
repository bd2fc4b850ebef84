"""flow.py: the token bucket, back-pressure and closing within a deadline."""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial import unittest

from p2pchat.flow import Backpressure, TokenBucket, close_within


class TokenBucketTests(unittest.TestCase):
    def test_take_refuses_past_the_burst_and_refills_at_the_rate(self) -> None:
        bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
        self.assertEqual([bucket.take(0.0) for _ in range(4)], [True, True, True, False])
        self.assertFalse(bucket.take(0.4))  # 0.8 of a token
        self.assertTrue(bucket.take(0.5))   # 1 token after 0.5 s at 2/s
        self.assertFalse(bucket.take(0.5))

    def test_refill_never_exceeds_the_burst(self) -> None:
        bucket = TokenBucket(rate=10.0, burst=2, now=0.0)
        bucket.refill(1000.0)
        self.assertEqual(bucket.tokens, 2.0)

    def test_spend_goes_into_debt_and_delay_says_how_long(self) -> None:
        bucket = TokenBucket(rate=4.0, burst=1, now=0.0)
        self.assertEqual(bucket.spend(0.0, 3), -2.0)
        self.assertEqual(bucket.delay(), 0.5)
        bucket.refill(0.5)
        self.assertEqual(bucket.delay(), 0.0)

    def test_a_clock_going_back_takes_nothing(self) -> None:
        bucket = TokenBucket(rate=1.0, burst=1, now=10.0)
        self.assertTrue(bucket.take(10.0))
        self.assertFalse(bucket.take(5.0))


class BackpressureTests(unittest.TestCase):
    def test_a_stall_fires_only_after_its_time_paused(self) -> None:
        clock, stalled, resumed = Clock(), [], []
        bp = Backpressure(clock, on_resume=lambda: resumed.append(1), stall_after=30.0,
                          on_stall=lambda: stalled.append(1))
        bp.pauseProducing()
        clock.advance(29)
        bp.resumeProducing()
        clock.advance(5)
        self.assertEqual((stalled, resumed), ([], [1]))
        bp.pauseProducing()
        bp.pauseProducing()  # paused twice: one timer
        clock.advance(30)
        self.assertEqual(stalled, [1])

    def test_written_counts_only_while_paused_up_to_the_cap(self) -> None:
        bp = Backpressure(Clock(), max_backlog=10)
        self.assertTrue(bp.written(100))  # not paused: not counted
        bp.pauseProducing()
        self.assertTrue(bp.written(10))
        self.assertFalse(bp.written(1))
        bp.resumeProducing()
        self.assertEqual(bp.backlog, 0)

    def test_stop_cancels_the_stall(self) -> None:
        clock, stalled = Clock(), []
        bp = Backpressure(clock, stall_after=1.0, on_stall=lambda: stalled.append(1))
        bp.pauseProducing()
        bp.stopProducing()
        clock.advance(2)
        self.assertEqual(stalled, [])


class CloseWithinTests(unittest.TestCase):
    def test_cut_after_the_deadline_if_something_is_still_open(self) -> None:
        clock, cut = Clock(), []
        first, second = defer.Deferred(), defer.Deferred()
        done = close_within(clock, 2.0, [first, second], lambda: cut.append(1))
        first.callback(None)
        clock.advance(1.9)
        self.assertEqual(cut, [])
        self.assertNoResult(done)
        clock.advance(0.1)
        self.assertEqual(cut, [1])
        second.callback(None)
        self.successResultOf(done)

    def test_no_cut_when_all_closed_in_time(self) -> None:
        clock, cut = Clock(), []
        closed = defer.Deferred()
        done = close_within(clock, 2.0, [closed], lambda: cut.append(1))
        closed.errback(ConnectionError("gone"))  # a close that fails counts as closed
        self.successResultOf(done)
        clock.advance(5)
        self.assertEqual(cut, [])
        self.assertEqual(clock.getDelayedCalls(), [])
