"""Discovery: beacons over UDP multicast.  We announce at start and every few seconds, answer a
newcomer's first announce at once (rate-limited) so it learns of us within a moment, and send a
``leave`` datagram when we stop cleanly.

A peer on several LANs (wired and Wi-Fi, two subnets) joins the group on every interface and
sends each beacon out of each (one membership and one datagram per interface, the same beacon,
so a peer hearing it twice takes the first and drops the second as a replay), so it links both
sides and carries lines between them (gossip.py).  ``--interface`` names the interfaces to use;
without it, every interface that is up, takes multicast and has an IPv4 address other than
loopback's (none found: the system's choice, as before)."""

from __future__ import annotations

import fcntl
import random
import socket
import struct
from typing import Any, cast

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from p2pchat import ratelog
from p2pchat.node import Node
from p2pchat.beaconbatch import BeaconBatch
from p2pchat.beaconread import read_beacon
from p2pchat.wire import ANNOUNCE, LEAVE, WireError, encode_beacon

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

_SIOCGIFFLAGS = 0x8913
_SIOCGIFADDR = 0x8915
_IFF_UP, _IFF_LOOPBACK, _IFF_MULTICAST = 0x1, 0x8, 0x1000


def multicast_interfaces() -> list[str]:
    """The IPv4 addresses of this host's interfaces that are up and take multicast, loopback
    left out (Linux: SIOCGIFFLAGS/SIOCGIFADDR); [] when none, or when they can't be read."""
    found: list[str] = []
    try:
        names = [name for _, name in socket.if_nameindex()]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for name in names:
                packed = struct.pack("256s", name.encode()[:15])
                try:
                    flags = struct.unpack("H", fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS,
                                                           packed)[16:18])[0]
                    if not flags & _IFF_UP or flags & _IFF_LOOPBACK or not flags & _IFF_MULTICAST:
                        continue
                    addr = socket.inet_ntoa(fcntl.ioctl(s.fileno(), _SIOCGIFADDR,
                                                        packed)[20:24])
                except OSError:
                    continue  # no IPv4 address on it
                if not addr.startswith("127.") and addr not in found:
                    found.append(addr)
    except OSError:
        return []
    return found


class BeaconProtocol(DatagramProtocol):
    """Sends and hears beacons for one node on one multicast group."""

    noisy = False
    # Any: mypy can't call a zope interface's methods (IUDPTransport, IReactorTime) without
    # the mypy-zope plugin
    transport: Any

    def __init__(self, node: Node, group: str, port: int, interface: str | None,
                 clock: IReactorTime, rng: random.Random | None = None,
                 interfaces: list[str] | None = None) -> None:
        """``interfaces``: the addresses to join and send on (``interface`` alone: that one;
        neither: every multicast interface found when we start)."""
        self.node = node
        self.group = group
        self.port = port
        self.interface = interface
        self.interfaces: list[str] = list(interfaces or ([interface] if interface else []))
        self.clock: Any = cast(Any, clock)
        self._rng = rng or random.Random()
        self._last_sent = float("-inf")
        self._reply: Any = None  # the DelayedCall of a reply
        self._ticker: LoopingCall | None = None
        self.batch: BeaconBatch | None = None  # beacons read together in a large room
        self.joined: defer.Deferred = defer.Deferred()

    def startProtocol(self) -> None:
        self.transport.setTTL(1)
        self.transport.setLoopbackMode(1)
        if not self.interfaces:
            self.interfaces = multicast_interfaces()
        d: defer.Deferred[Any] = defer.succeed(None)
        if len(self.interfaces) == 1:
            d.addCallback(lambda _: self.transport.setOutgoingInterface(self.interfaces[0]))
        # One membership per interface (none known: the system's choice of one).
        for iface in self.interfaces or [""]:
            d.addCallback(self._join_on, iface)
        d.addCallbacks(self._joined, self._join_failed)

    def _join_on(self, _: object, iface: str) -> Any:
        return self.transport.joinGroup(self.group, iface)

    def _joined(self, _: object) -> None:
        log.info("listening for peers on {group}:{port} on {ifaces}", group=self.group,
                 port=self.port, ifaces=", ".join(self.interfaces) or "the default interface")
        self._ticker = LoopingCall(self._tick)
        self._ticker.clock = self.clock
        self._ticker.start(ANNOUNCE_INTERVAL, now=True)
        if hasattr(self.transport, "doRead"):
            self.batch = BeaconBatch(self.transport, lambda: len(self.node.peers), self.clock)
            self.batch.start()
        self.joined.callback(None)

    def _join_failed(self, failure: Failure) -> None:
        log.error("can't join multicast group {group} on {iface}: {why}; peers won't find us",
                  group=self.group, iface=", ".join(self.interfaces) or "the default interface",
                  why=failure.getErrorMessage())
        self.joined.errback(failure)

    def _tick(self) -> None:
        self.announce()

    def stopProtocol(self) -> None:
        if self._ticker is not None and self._ticker.running:
            self._ticker.stop()
        if self.batch is not None:
            self.batch.stop()
        if self._reply is not None and self._reply.active():
            self._reply.cancel()

    def _send(self, kind: str) -> None:
        if self.transport is None:
            return
        try:
            data = encode_beacon(self.node.beacon(kind))
            if len(self.interfaces) <= 1:
                self.transport.write(data, (self.group, self.port))
            else:  # the same beacon out of each interface
                for iface in self.interfaces:
                    self._send_on(iface)
                    self.transport.write(data, (self.group, self.port))
        except (OSError, WireError) as e:
            ratelog.limiter(self.clock).emit(log, "beacon not sent", LogLevel.warn,
                                             "can't send a beacon: {why}", why=str(e))
            return
        self._last_sent = self.clock.seconds()

    def _send_on(self, iface: str) -> None:
        """The next datagram leaves by ``iface`` (IP_MULTICAST_IF, set at once on the socket;
        a transport without one, in tests, is told through setOutgoingInterface)."""
        sock = getattr(self.transport, "socket", None)
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(iface))
        else:
            self.transport.setOutgoingInterface(iface)

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
        if self.batch is not None:
            self.batch.heard += 1
        try:
            beacon = read_beacon(data)
        except WireError as e:
            ratelog.limiter(self.clock).emit(log, "bad datagram", LogLevel.info,
                                             "datagram from {host} ignored: {why}", host=host,
                                             why=str(e))
            return
        self.node.beacon_heard(beacon, host, together=True)
