"""A room past a full mesh starting together (neighbours.py, ``SETTLE_AFTER``): while the
room a peer knows still grows, only its ring neighbours are dialed and nothing is pruned, so
the long links chosen from a half-known room (wrong by the end, each a handshake, a
catch-up and member lines for all to check) are not made and pruned for nothing.  Real
Nodes in one process (bench/meshsim.py) under one task.Clock, dialed as presence.maybe_dial
dials (the smaller id, when ``dial_now`` says so)."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from p2pchat.neighbours import PRUNE_AFTER, SETTLE_AFTER, ring_of, ring_wanted
from p2pchat.peers import should_dial
from tests.test_neighbours import Room, counting_prunes


class StartingRoom(Room):
    """Peers that come up one by one (as 100 spawned together do on 2 cores), each
    listening first, dialing only what ``dial_now`` allows."""

    def __init__(self, n: int, cap: int) -> None:
        super().__init__(n, cap)
        self.present = []
        self.made: set[frozenset[str]] = set()

    def dial(self) -> None:
        nodes = self.sim.nodes
        for a in self.present:
            for b in self.present:
                na, nb = nodes[a], nodes[b]
                if (a == b or nb.peer_id in na.links or na.peers.get(nb.peer_id) is None
                        or not should_dial(na.peer_id, nb.peer_id)):
                    continue
                if (na.neighbours.dial_now(nb.peer_id)
                        and nb.presence.link_offered(na.peer_id, a, "") is None):
                    self.sim.link(a, b)
                    self.made.add(frozenset((a, b)))

    def step(self) -> None:
        self.sim.clock.advance(0.5)
        self.beacons()
        self.dial()
        self.sim.tick(1)


class Starting(TestCase):
    def test_a_room_starting_together_makes_few_links_for_nothing(self) -> None:
        n, cap = 30, 10
        room = StartingRoom(n, cap)
        pruned = counting_prunes(self)
        for nick in room.nicks:  # one up every step
            room.present.append(nick)
            room.sim.nodes[nick].neighbours.listen_first()
            room.step()
        for _ in range(40):  # PRUNE_AFTER and DRAIN_FOR past the settling, and then some
            room.step()
        ids = [room.sim.nodes[x].peer_id for x in room.nicks]
        wanted = sum(len(ring_wanted(p, ids, cap)) for p in ids) // 2
        # each newcomer steps into the ring between two peers (a ring link each, kept
        # within the cap); with the holds 23-47 more were made and 1-12 pruned over 25 runs
        # (random ids), without them 70-91 more and 21-30 pruned
        self.assertLessEqual(len(room.made) - wanted, n * 2)
        self.assertLessEqual(len(pruned), 16)
        for nick in room.nicks:
            self.assertEqual(room.listed(nick), set(room.nicks) - {nick}, nick)
        room.say_one_each(self)

    def test_a_long_link_waits_for_the_view_to_settle_then_is_dialed(self) -> None:
        room = StartingRoom(16, 4)
        room.present = list(room.nicks)
        room.beacons()  # everyone heard at once: the view just grew

        def long_links(nick: str) -> set[str]:
            node = room.sim.nodes[nick]
            return set(node.neighbours.wanted()) - ring_of(
                node.peer_id, [info.peer_id for info in node.peers])
        nick = next(n for n in room.nicks if long_links(n))  # (random ids)
        node = room.sim.nodes[nick]
        far = next(iter(long_links(nick)))
        ring = next(iter(ring_of(node.peer_id, [info.peer_id for info in node.peers])))
        self.assertTrue(node.neighbours.dial_now(ring))  # the ring at once
        self.assertFalse(node.neighbours.dial_now(far))
        dialed: list[str] = []
        self.patch(node.presence, "maybe_dial", lambda info: dialed.append(info.peer_id))
        room.sim.clock.advance(SETTLE_AFTER)
        self.assertTrue(node.neighbours.dial_now(far))
        node.neighbours.tick()  # the held dial is made now
        self.assertIn(far, dialed)

    def test_nothing_is_pruned_while_the_view_grows(self) -> None:
        """Until it has stood still for PRUNE_AFTER."""
        room = StartingRoom(20, 4)
        room.present = room.nicks[:19]
        room.beacons()
        for i, a in enumerate(room.present):  # every link up: far past the soft bound
            for b in room.present[i + 1:]:
                room.sim.link(a, b)
        node = room.sim.nodes["p0"]
        # every peer reached otherwise too (as the member lines would say, in 30 s)
        self.patch(node.forwarder, "path_to", lambda pid: room.sim.nodes["p1"].peer_id)
        def wait(seconds: float) -> None:
            for _ in range(int(seconds)):  # (beacons and links all along: none probed)
                room.sim.clock.advance(1)
                room.beacons()
                room.sim.run()

        node.neighbours.tick()  # their unwanted time starts
        wait(PRUNE_AFTER + 1)
        room.present = list(room.nicks)  # p19 comes up: the room p0 knows grew
        room.beacons()
        node.neighbours.tick()
        self.assertEqual(node.neighbours.draining, {})
        wait(SETTLE_AFTER)
        node.neighbours.tick()
        self.assertEqual(node.neighbours.draining, {})  # long links dialed, none pruned yet
        wait(PRUNE_AFTER - SETTLE_AFTER)
        node.neighbours.tick()
        self.assertTrue(node.neighbours.draining)  # settled: the excess goes


class Dialing:
    """A dialer whose dials stay under way until the test links them."""

    def __init__(self) -> None:
        self.under_way: list[str] = []

    def want(self, peer: object) -> None:
        pid = getattr(peer, "peer_id")
        if pid not in self.under_way:
            self.under_way.append(pid)

    def drop(self, peer_id: str) -> None:
        pass

    def connected(self, peer_id: str) -> None:
        pass

    def link_ended(self, peer_id: str, lived: float) -> None:
        pass

    def dialing(self) -> int:
        return len(self.under_way)

    def in_flight(self, peer_id: str) -> bool:
        return peer_id in self.under_way


class FirstLink(TestCase):
    def test_a_starting_peer_dials_one_at_a_time_until_its_first_link(self) -> None:
        """Its view grows while its first handshake waits: each ring neighbour of it dialed
        would be a link made for nothing; its first link tells it the room."""
        room = StartingRoom(20, 4)
        me = min(room.nicks, key=lambda n: room.sim.nodes[n].peer_id)  # it dials them all
        node = room.sim.nodes[me]
        dialer = node.dialer = Dialing()  # type: ignore[assignment]
        node.neighbours.listen_first()
        room.present = [me]
        for nick in [n for n in room.nicks if n != me]:  # the room comes up around it
            room.present.append(nick)
            room.beacons()
            room.sim.clock.advance(0.25)
            node.neighbours.tick()
        self.assertEqual(len(dialer.under_way), 1)
        first = next(n for n in room.nicks if room.sim.nodes[n].peer_id == dialer.under_way[0])
        room.sim.link(me, first)
        room.sim.run()
        room.sim.clock.advance(SETTLE_AFTER)
        room.beacons()
        node.neighbours.tick()
        self.assertGreater(len(dialer.under_way), 1)  # its neighbours, now it knows the room
