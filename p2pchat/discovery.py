"""Discovery: beacons over UDP multicast.  We announce at start and every few seconds, answer a
newcomer's first announce at once (rate-limited) so it learns of us within a moment, and send a
``leave`` datagram when we stop cleanly."""

from __future__ import annotations

import random
from typing import Any, cast

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from p2pchat import ratelog
from p2pchat.node import Node
from p2pchat.wire import ANNOUNCE, LEAVE, WireError, encode_beacon, parse_beacon

log = Logger()

#: Seconds between our announces (as the reference).
ANNOUNCE_INTERVAL = 5.0
#: At most one extra announce (an answer to newcomers) per this many seconds.
REPLY_GAP = 0.5
#: Answers to a newcomer wait up to this long at random, so a crowd doesn't answer at once.
REPLY_SPREAD = 0.1
#: Bad datagrams, and every other line logged per datagram, are rate-limited by
#: ``ratelog`` (the first 5 of each kind per 10 s, then a count).

DEFAULT_GROUP = "224.0.0.1"
DEFAULT_PORT = 9999


class BeaconProtocol(DatagramProtocol):
    """Sends and hears beacons for one node on one multicast group."""

    noisy = False
    # Any: mypy can't call a zope interface's methods (IUDPTransport, IReactorTime) without
    # the mypy-zope plugin
    transport: Any

    def __init__(self, node: Node, group: str, port: int, interface: str | None,
                 clock: IReactorTime, rng: random.Random | None = None) -> None:
        self.node = node
        self.group = group
        self.port = port
        self.interface = interface
        self.clock: Any = cast(Any, clock)
        self._rng = rng or random.Random()
        self._last_sent = float("-inf")
        self._reply: Any = None  # the DelayedCall of a reply
        self._ticker: LoopingCall | None = None
        self.joined: defer.Deferred = defer.Deferred()

    def startProtocol(self) -> None:
        self.transport.setTTL(1)
        self.transport.setLoopbackMode(1)
        d: defer.Deferred[Any] = defer.succeed(None)
        if self.interface:
            d.addCallback(lambda _: self.transport.setOutgoingInterface(self.interface))
        d.addCallback(lambda _: self.transport.joinGroup(self.group, self.interface or ""))
        d.addCallbacks(self._joined, self._join_failed)

    def _joined(self, _: object) -> None:
        log.info("listening for peers on {group}:{port}", group=self.group, port=self.port)
        self._ticker = LoopingCall(self._tick)
        self._ticker.clock = self.clock
        self._ticker.start(ANNOUNCE_INTERVAL, now=True)
        self.joined.callback(None)

    def _join_failed(self, failure: Failure) -> None:
        log.error("can't join multicast group {group} on {iface}: {why}; peers won't find us",
                  group=self.group, iface=self.interface or "the default interface",
                  why=failure.getErrorMessage())
        self.joined.errback(failure)

    def _tick(self) -> None:
        self.announce()

    def stopProtocol(self) -> None:
        if self._ticker is not None and self._ticker.running:
            self._ticker.stop()
        if self._reply is not None and self._reply.active():
            self._reply.cancel()

    def _send(self, kind: str) -> None:
        if self.transport is None:
            return
        try:
            self.transport.write(encode_beacon(self.node.beacon(kind)), (self.group, self.port))
        except (OSError, WireError) as e:
            ratelog.limiter(self.clock).emit(log, "beacon not sent", LogLevel.warn,
                                             "can't send a beacon: {why}", why=str(e))
            return
        self._last_sent = self.clock.seconds()

    def announce(self) -> None:
        self._send(ANNOUNCE)

    def reply_soon(self) -> None:
        """Announce soon so a newcomer learns of us, at most once per REPLY_GAP."""
        if self._reply is not None and self._reply.active():
            return
        wait = max(0.0, self._last_sent + REPLY_GAP - self.clock.seconds())
        self._reply = self.clock.callLater(wait + self._rng.uniform(0, REPLY_SPREAD),
                                           self.announce)

    def say_leave(self) -> None:
        self._send(LEAVE)

    def datagramReceived(self, data: bytes, addr: tuple[str, int]) -> None:
        host = addr[0]
        try:
            beacon = parse_beacon(data)
        except WireError as e:
            ratelog.limiter(self.clock).emit(log, "bad datagram", LogLevel.info,
                                             "datagram from {host} ignored: {why}", host=host,
                                             why=str(e))
            return
        self.node.beacon_heard(beacon, host)
