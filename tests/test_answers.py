"""A newcomer to a room past a full mesh (neighbours.py): its first beacon is answered only by
the few peers whose neighbour it will be and which it dials (every peer of a room of 100
answered every newcomer, each answer heard and most of them checked by all 100), and it
chooses its neighbours from the whole room all the same: from the member lines its first
link hands it, not only from the few beacons it heard."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from p2pchat.neighbours import HEARD_OF_FOR, ring_wanted
from p2pchat.peers import should_dial
from p2pchat.presence import CHOOSE_AFTER
from p2pchat.wire import encode_beacon, parse_beacon
from tests.fakes import FakeAnnouncer, FakeDialer
from tests.test_neighbours import Room


def newcomer_room(n: int, cap: int) -> tuple[Room, str]:
    """A room of ``n - 1`` settled peers, and the nick of the one not there yet: the one of
    smallest peer id, so it dials every other (each would answer it, were it a full mesh)."""
    room = Room(n, cap)
    nodes = room.sim.nodes
    newcomer = min(room.nicks, key=lambda nick: nodes[nick].peer_id)
    room.present = [nick for nick in room.nicks if nick != newcomer]
    room.settle(4)
    return room, newcomer


class Answers(TestCase):
    def test_only_its_future_neighbours_answer_a_newcomer(self) -> None:
        room, newcomer = newcomer_room(31, 4)
        nodes = room.sim.nodes
        x = nodes[newcomer]
        announcers = {nick: FakeAnnouncer() for nick in room.present}
        for nick, announcer in announcers.items():
            nodes[nick].announcer = announcer  # type: ignore[assignment]
        first = parse_beacon(encode_beacon(x.beacon("announce")))
        host = "10.0.0.%d" % room.nicks.index(newcomer)
        for nick in room.present:
            nodes[nick].beacon_heard(first, host)
        answered = {nick for nick, a in announcers.items() if a.replies}
        wanting = {nick for nick in room.present
                   if nodes[nick].neighbours.wants(x.peer_id)
                   and should_dial(x.peer_id, nodes[nick].peer_id)}
        self.assertEqual(answered, wanting)
        self.assertGreaterEqual(len(answered), 2)  # its ring neighbours (both larger ids)
        self.assertLessEqual(len(answered), 4)  # --links 4: not the 30 it dials
        everyone = [nodes[nick].peer_id for nick in room.nicks]
        self.assertEqual({nodes[nick].peer_id for nick in answered},
                         ring_wanted(x.peer_id, everyone, 4))

    def test_a_full_mesh_answers_every_newcomer_that_dials_it(self) -> None:
        room, newcomer = newcomer_room(8, 4)  # up to FULL_MESH_UP_TO: a full mesh
        nodes = room.sim.nodes
        announcers = {nick: FakeAnnouncer() for nick in room.present}
        for nick, announcer in announcers.items():
            nodes[nick].announcer = announcer  # type: ignore[assignment]
        first = parse_beacon(encode_beacon(nodes[newcomer].beacon("announce")))
        for nick in room.present:
            nodes[nick].beacon_heard(first, "10.0.0.99")
        self.assertEqual({n for n, a in announcers.items() if a.replies}, set(room.present))

    def test_a_newcomer_chooses_from_the_member_lines_of_its_first_link(self) -> None:
        room, newcomer = newcomer_room(31, 4)
        sim, nodes = room.sim, room.sim.nodes
        x = nodes[newcomer]
        x.neighbours.listen_first()  # it starts now
        everyone = [nodes[nick].peer_id for nick in room.nicks]
        right = ring_wanted(x.peer_id, everyone, 4)
        answering = [nick for nick in room.present if nodes[nick].peer_id in right]
        others = [nick for nick in room.present if nick not in answering][:5]
        # the beacons it heard: its future neighbours' answers, and a few announces
        for nick in answering + others:
            x.beacon_heard(parse_beacon(encode_beacon(nodes[nick].beacon("announce"))),
                           "10.0.0.%d" % room.nicks.index(nick))
        self.assertEqual(len(x.peers), len(answering) + len(others))
        self.assertNotEqual(x.neighbours.wanted(fresh=True), right)  # chosen from those alone
        sim.link(newcomer, answering[0])  # its first link hands it the room's member lines
        self.assertEqual(x.neighbours.wanted(fresh=True), right)
        self.assertTrue(x.neighbours.capped())
        # past HEARD_OF_FOR the beacons alone tell the room (they all came by then)
        sim.clock.advance(HEARD_OF_FOR)
        self.assertEqual(x.neighbours.wanted(fresh=True),
                         ring_wanted(x.peer_id, [i.peer_id for i in x.peers], 4))


class TLSSoon(TestCase):
    def test_the_first_peer_heard_brings_the_tls_libraries_in(self) -> None:
        """A link is coming: its TLS libraries are imported while we listen, not at its
        STARTTLS (latetls.soon; the real import starts only on the real reactor)."""
        from p2pchat import latetls

        asked: list[object] = []
        self.patch(latetls, "soon", asked.append)
        room = Room(3, 4)
        nodes = room.sim.nodes
        a, b = nodes["p0"], nodes["p1"]
        a.beacon_heard(parse_beacon(encode_beacon(b.beacon("announce"))), "10.0.0.1")
        self.assertEqual(asked, [a.clock])
        a.beacon_heard(parse_beacon(encode_beacon(b.beacon("announce"))), "10.0.0.1")
        self.assertEqual(asked, [a.clock])  # a peer known already asks nothing more


class BothEnds(TestCase):
    """A neighbour counts as linked to a line's author only if both member lines say so: the
    author leaves a link it prunes out of its line DRAIN_FOR before closing it, while the other
    end's line may list it for LARGE_LINKS_GAP more (e2e: a room of 16 lost a line so)."""

    def test_forward_to_believes_a_link_only_from_both_ends(self) -> None:
        from p2pchat.gossip import AuthorId, HanderId, Heard, Neighbour, forward_to

        line = Heard(AuthorId("a"), 5, "general", HanderId("h"), 1)
        stale = Neighbour(HanderId("b"), True, frozenset(), frozenset({"a"}))
        self.assertEqual(forward_to(line, [stale]), [])  # its line alone: as before
        self.assertEqual(forward_to(line, [stale], author_links=frozenset({"x"})), ["b"])
        self.assertEqual(forward_to(line, [stale], author_links=frozenset({"b"})), [])

    def test_a_pruned_link_s_other_end_gets_the_author_s_lines_relayed(self) -> None:
        room = Room(3, 4)
        sim, nodes = room.sim, room.sim.nodes
        a, b, c = (nodes[n] for n in room.nicks)
        for x, y in (("p0", "p1"), ("p1", "p2"), ("p0", "p2")):
            sim.link(x, y)
        sim.tick(12)  # member lines: each lists the other two
        reach = c.forwarder.reached.of
        self.assertIn(b.peer_id, reach[a.peer_id].links)
        self.assertEqual(c.forwarder._lacking(a.peer_id), ())  # b has a's lines from a
        # a drains its link with b (left out of a's line); b's line still lists a
        reach[a.peer_id].links = frozenset({c.peer_id})
        c.forwarder._generation += 1
        self.assertEqual(c.forwarder._lacking(a.peer_id), (b.peer_id,))
        self.assertIn(a.peer_id, reach[b.peer_id].links)


class HeardTogether(TestCase):
    """A starting peer reads the beacons that came while it started in one turn (some 450 in
    a room of 100): its choice of neighbours is made once for them, at the turn's end, not
    again for each newcomer among them (70-77 ms of CPU in that one turn, before)."""

    def setUp(self) -> None:
        from p2pchat import neighbours

        self.calls = 0
        real = neighbours.ring_wanted

        def counted(*args: object, **kwargs: object) -> set[str]:
            self.calls += 1
            return real(*args, **kwargs)  # type: ignore[arg-type]

        self.patch(neighbours, "ring_wanted", counted)

    def hear_all(self, together: bool) -> tuple[Room, str, FakeDialer, FakeAnnouncer]:
        room, newcomer = newcomer_room(31, 4)
        x = room.sim.nodes[newcomer]
        x.dialer, x.announcer = FakeDialer(), FakeAnnouncer()  # type: ignore[assignment]
        self.calls = 0
        for nick in room.present:
            beacon = parse_beacon(encode_beacon(room.sim.nodes[nick].beacon("announce")))
            x.beacon_heard(beacon, "10.0.0.%d" % room.nicks.index(nick), together=together)
        return room, newcomer, x.dialer, x.announcer  # type: ignore[return-value]

    def test_the_choice_is_made_once_for_a_turn_of_beacons(self) -> None:
        room, newcomer, dialer, _ = self.hear_all(together=True)
        x = room.sim.nodes[newcomer]
        self.assertEqual(len(x.peers), 30)
        self.assertLessEqual(self.calls, CHOOSE_AFTER + 1)  # one by one: about 30
        held = dict(dialer.wanted)
        room.sim.clock.advance(0)  # the turn's end
        self.assertLessEqual(self.calls, CHOOSE_AFTER + 2)
        self.assertGreater(len(dialer.wanted), len(held))  # the held ones dialed now
        # the held ones dialed are the whole room's choice, and all of it is dialed (the
        # first few, heard before the hold, were dialed at once, as one by one)
        chosen = {info.peer_id for info in x.peers if should_dial(x.peer_id, info.peer_id)
                  and x.neighbours.dial_now(info.peer_id)}
        self.assertLessEqual(set(dialer.wanted) - set(held), chosen)
        self.assertLessEqual(chosen, set(dialer.wanted))
        self.hear_all(together=False)  # one by one: the choice made again for each newcomer
        self.assertGreater(self.calls, 2 * CHOOSE_AFTER)

    def test_a_few_beacons_are_acted_on_at_once(self) -> None:
        room, newcomer = newcomer_room(31, 4)
        x = room.sim.nodes[newcomer]
        x.dialer = FakeDialer()  # type: ignore[assignment]
        ring = sorted(room.present, key=lambda n: room.sim.nodes[n].peer_id)[:CHOOSE_AFTER]
        for nick in ring:
            beacon = parse_beacon(encode_beacon(room.sim.nodes[nick].beacon("announce")))
            x.beacon_heard(beacon, "10.0.0.%d" % room.nicks.index(nick), together=True)
        self.assertTrue(x.dialer.wanted)  # type: ignore[attr-defined]  # no turn's end needed
