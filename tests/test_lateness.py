"""The stall probe (lateness.py): how late its 10 ms timer runs, reported in the log."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from p2pchat import lateness
from p2pchat.lateness import PROBE_EVERY, REPORT_EVERY, StallProbe


class Probe(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.logged: list[dict] = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)
        self.cpu_used = 0.0
        self.probe = StallProbe(self.clock, cpu=lambda: self.cpu_used)
        self.probe.start()
        self.addCleanup(self.probe.stop)

    def reports(self) -> list[float]:
        return [e["ms"] for e in self.logged if "stall probe" in e.get("log_format", "")]

    def test_a_held_reactor_is_measured_and_reported(self) -> None:
        for _ in range(20):
            self.clock.advance(PROBE_EVERY)
        self.assertLess(self.probe.worst, 1e-9)
        self.cpu_used += 0.2
        self.clock.advance(0.2)  # a callback held the reactor 200 ms
        self.assertAlmostEqual(self.probe.worst, 0.19, places=3)
        self.assertAlmostEqual(self.probe.worst_cpu, 0.2, places=3)
        self.clock.advance(0.5)  # then the process waited 500 ms for a core: late, no CPU
        self.assertAlmostEqual(self.probe.worst, 0.49, places=3)
        self.assertAlmostEqual(self.probe.worst_cpu, 0.2, places=3)
        self.clock.pump([PROBE_EVERY] * int(REPORT_EVERY / PROBE_EVERY))
        self.assertEqual(len(self.reports()), 1)
        self.assertAlmostEqual(self.reports()[0], 490.0, places=0)
        self.assertAlmostEqual(self.logged[-1]["cpu_ms"], 200.0, places=0)
        self.assertLess(self.probe.worst, 1e-9)  # a new stretch
        self.clock.pump([PROBE_EVERY] * int(REPORT_EVERY / PROBE_EVERY + 1))
        self.assertEqual(len(self.reports()), 2)
        self.assertLess(self.reports()[1], 1e-6)
        self.assertAlmostEqual(self.probe.worst_ever, 0.49, places=3)

    def test_only_the_bench_turns_it_on(self) -> None:
        self.assertFalse(lateness.wanted({}))
        self.assertFalse(lateness.wanted({lateness.PROBE_ENV: ""}))
        self.assertTrue(lateness.wanted({lateness.PROBE_ENV: "1"}))
