"""NodeService's stop: leave lines first, then every link closed within GOODBYE_TIMEOUT (the
deadline through flow.close_within), so a peer that never reads can't hold up a quit."""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from p2pchat.node import Node
from p2pchat.service import GOODBYE_TIMEOUT, LISTEN_BACKLOG, NodeService


class StuckTransport:
    """A link whose peer never takes our close: only an abort ends it."""

    def __init__(self, proto: StuckLink) -> None:
        self.proto = proto
        self.aborted = False
        self.lost = False

    def loseConnection(self) -> None:
        self.lost = True  # asked politely: nothing happens, the peer does not answer

    def abortConnection(self) -> None:
        self.aborted = True
        self.proto.connected = False
        self.proto.closed.callback(None)


class StuckLink:
    def __init__(self) -> None:
        self.connected = True
        self.closed: defer.Deferred[None] = defer.Deferred()
        self.transport = StuckTransport(self)

    def hang_up(self) -> None:
        """As PeerProtocol.hang_up: asks the transport to close (which never happens)."""
        self.transport.loseConnection()


class Stopping(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.node = Node("alice", self.clock)
        self.service = NodeService(self.node, self.clock, 0, ("239.255.1.1", 30000),
                                   "127.0.0.1")

    def test_a_link_that_does_not_close_is_cut_at_the_deadline(self) -> None:
        link = StuckLink()
        self.service.server.open.add(link)  # type: ignore[arg-type]
        stopped = self.service.stopService()
        self.assertTrue(link.transport.lost)
        self.clock.advance(GOODBYE_TIMEOUT * 0.9)
        self.assertFalse(stopped.called)
        self.assertFalse(link.transport.aborted)
        self.clock.advance(GOODBYE_TIMEOUT * 0.2)
        self.assertTrue(link.transport.aborted)
        self.assertTrue(stopped.called)

    def test_the_listener_queues_a_crowd(self) -> None:
        """A crowd dialing at once must not overflow the kernel's accept queue (Twisted's
        default of 50 dropped SYNs: each dial then waited seconds for TCP to retry)."""
        from twisted.internet.testing import MemoryReactor

        reactor = MemoryReactor()
        service = NodeService(self.node, reactor, 0, ("239.255.1.1", 30000), "127.0.0.1")
        service._listen_tcp()
        self.assertEqual(reactor.tcpServers[0][2], LISTEN_BACKLOG)
        self.assertGreaterEqual(LISTEN_BACKLOG, 256)

    def test_nothing_open_stops_at_once_and_leaves_no_timer(self) -> None:
        stopped = self.service.stopService()
        self.assertTrue(stopped.called)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class StoppingTheReactor(TestCase):
    def test_a_second_stop_is_not_an_error(self) -> None:
        """Two faces (the console and an IRC client's /quit) may both ask: one stop."""
        from twisted.internet import error

        from p2pchat.errors import stop_reactor

        class Reactor:
            stops = 0

            def stop(self) -> None:
                self.stops += 1
                if self.stops > 1:
                    raise error.ReactorNotRunning()

        reactor = Reactor()
        stop_reactor(reactor)
        stop_reactor(reactor)
        self.assertEqual(reactor.stops, 2)
