"""Beacons read together in a large room: each datagram heard was a wake-up of the whole peer
(epoll, Twisted's reactor turn, a cold cache on a busy machine; about 0.35 ms of CPU each on
the 2-core bench machine, where the parse itself is 3 us), and in a room of 100 an idle peer
hears about 20 a second, most of what it spends.  Past a full mesh (more than
``neighbours.FULL_MESH_UP_TO`` peers known, their number unchanged for SETTLED_AFTER) the
multicast socket is not watched: what waits on
it is read once every DRAIN_EVERY seconds, in one turn.  So a beacon is believed up to
DRAIN_EVERY late (nothing here is that tight: a peer is overdue after 2 missed beacons, 10 s,
and forgotten after 30 s); what we send is not touched (Part 1: our announce every 5 s).

A drain that read DRAIN_BURST datagrams or more (a room starting, a storm of answers, a flood)
puts the socket back under watch, one wake-up per datagram as in a small room, until a second
with fewer: the socket's buffer (about 200 KB on Linux, some 400 beacons) never fills while
we wait."""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.task import LoopingCall

from p2pchat.neighbours import FULL_MESH_UP_TO

#: Seconds between reads of the waiting beacons while they are read together.
DRAIN_EVERY = 1.0
#: A second with this many datagrams heard goes back to one read per datagram.
DRAIN_BURST = 64
#: Read together only once the number of peers known has not changed for this long: while a
#: room forms (peers joining, answers, dials) each beacon is read as it comes, as before.
SETTLED_AFTER = 10.0


class BeaconBatch:
    """Switches a multicast port between one read per datagram and a read per DRAIN_EVERY,
    by the room's size (``room_size``) and the datagrams heard in the last second."""

    def __init__(self, port: Any, room_size: Callable[[], int], clock: Any) -> None:
        self.port = port  # a udp.Port: stopReading, startReading, doRead
        self.room_size = room_size
        self.batched = False
        self.heard = 0  # datagrams since the last tick
        self.clock = clock
        self._size = -1  # the room's size at the last tick, and since when
        self._since = 0.0
        self._loop = LoopingCall(self._tick)
        self._loop.clock = clock

    def start(self) -> None:
        self._loop.start(DRAIN_EVERY, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def _tick(self) -> None:
        if self.batched:
            self.port.doRead()  # reads what waits, to EAGAIN (or maxThroughput)
        heard, self.heard = self.heard, 0
        size, now = self.room_size(), self.clock.seconds()
        if size != self._size:
            self._size, self._since = size, now
        batched = (size > FULL_MESH_UP_TO and heard < DRAIN_BURST
                   and now - self._since >= SETTLED_AFTER)
        if batched and not self.batched:
            self.port.stopReading()
        elif self.batched and not batched:
            self.port.startReading()
        self.batched = batched
