"""Relaying through a partial mesh (issue 17): the forwarding decision (pure), the forward log,
member lines, and real Nodes linked in a chain and a ring in one process (tests/meshsim.py):
every line reaches everyone exactly once, in order, under its author's verified nick; a peer
reached only through others is listed so and shown gone when no path is left."""

from __future__ import annotations

from collections import Counter

from twisted.trial.unittest import TestCase

from p2pchat import events, wire
from p2pchat.catchup import MAX_OTHERS, parse_sync
from p2pchat.gossip import (GONE_AFTER, JOIN_GRACE, JOIN_WAIT, MAX_HOPS, AuthorId,
                            ForwardLog, HanderId, Heard, Member, Neighbour, Reached,
                            forward_to, hops_of, parse_member)
from p2pchat.identity import Identity
from p2pchat.relay import MEMBER, RELAY, check_relayed, sign_line
from p2pchat.wire import Message, WireError
from bench.meshsim import Sim

A, B, C, D = (HanderId(x) for x in ("a", "b", "c", "d"))


def n(pid: str, rooms: tuple[str, ...] = (), links: tuple[str, ...] = (),
      gossip: bool = True) -> Neighbour:
    return Neighbour(HanderId(pid), gossip, frozenset({"general", *rooms}), frozenset(links))


def line(author: str = "a", hander: str = "a", room: str = "general", hops: int = 0) -> Heard:
    return Heard(AuthorId(author), 7, room, HanderId(hander), hops)


class Deciding(TestCase):
    def test_to_every_other_gossip_neighbour_but_hander_and_author(self) -> None:
        got = forward_to(line("a", "b", hops=1), [n("a"), n("b"), n("c"), n("d")])
        self.assertEqual(got, ["c", "d"])

    def test_never_to_a_peer_without_the_cap(self) -> None:
        self.assertEqual(forward_to(line(), [n("c", gossip=False), n("d")]), ["d"])

    def test_a_room_line_only_to_members(self) -> None:
        got = forward_to(line(room="ops"), [n("c", rooms=("ops",)), n("d")])
        self.assertEqual(got, ["c"])

    def test_not_to_a_peer_linked_to_its_author(self) -> None:
        # a full mesh forwards nothing: the author wrote to each of them itself
        got = forward_to(line(), [n("c", links=("a",)), n("d", links=("x",))])
        self.assertEqual(got, ["d"])

    def test_not_to_a_peer_that_handed_it_to_us_too(self) -> None:
        self.assertEqual(forward_to(line(), [n("c"), n("d")], had_by=frozenset({"c"})), ["d"])

    def test_hop_limit(self) -> None:
        self.assertEqual(forward_to(line(hops=MAX_HOPS - 1), [n("c")]), ["c"])
        self.assertEqual(forward_to(line(hops=MAX_HOPS), [n("c")]), [])

    def test_hop_counts_read(self) -> None:
        self.assertIsNone(hops_of({}))
        self.assertEqual(hops_of({"hops": 3}), 3)
        for bad in (-1, MAX_HOPS + 1, "3", True, 2.5):
            self.assertEqual(hops_of({"hops": bad}), MAX_HOPS)


class Log(TestCase):
    def test_cursors_and_bounds(self) -> None:
        log = ForwardLog(max_lines=3)
        log.start("c")
        for seq in range(1, 6):
            log.append((AuthorId("a"), seq), b"x%d\n" % seq, {"c"} if seq != 4 else {"d"})
        due, missed = log.due("c")
        self.assertEqual(([e.key[1] for e in due], missed), ([3, 5], 2))
        self.assertEqual(len(log), 3)

    def test_bounded_by_bytes(self) -> None:
        log = ForwardLog(max_bytes=100)
        for seq in range(50):
            log.append((AuthorId("a"), seq), b"y" * 30, {"c"})
        self.assertLessEqual(len(log), 3)

    def test_a_line_handed_to_us_again_is_not_written_back(self) -> None:
        log = ForwardLog()
        log.start("c")
        log.append((AuthorId("a"), 1), b"x\n", {"c", "d"})
        log.had_by((AuthorId("a"), 1), "c")
        self.assertEqual(log.due("c")[0], [])


class Members(TestCase):
    def member(self, identity: Identity, seq: int, **meta) -> tuple[Message, bytes]:
        metadata = {"event": "alive", "rooms": ["ops"], "links": ["b"]}
        metadata.update(meta)
        msg = Message("m%d" % seq, MEMBER, identity.peer_id, "alice", "", 1700000000.0, seq,
                      "general", metadata)
        msg.metadata["sig"] = sign_line(identity, msg)  # type: ignore[index]
        return msg, wire.encode_message(msg)[:-1]

    def test_a_member_line_is_signed_over_its_rooms_and_links(self) -> None:
        alice = Identity.generate()
        msg, raw = self.member(alice, 3)
        checked = check_relayed(raw, alice.public_key_b64())
        self.assertEqual(parse_member(checked.msg).rooms, frozenset({"general", "ops"}))
        for forged in (raw.replace(b'"ops"', b'"hax"'), raw.replace(b'["b"]', b'["z"]'),
                       raw.replace(b'"alive"', b'"bye"')):
            with self.assertRaises(WireError):
                check_relayed(forged, alice.public_key_b64())

    def test_malformed_member_lines_refused(self) -> None:
        alice = Identity.generate()
        for meta in ({"links": "b"}, {"links": [1]}, {"links": ["x"] * 300}, {"event": 5},
                     {"rooms": ["NOT A ROOM"]}):
            msg, _ = self.member(alice, 3, **meta)
            with self.assertRaises(WireError):
                parse_member(msg)

    def test_reached_tells_each_change_once(self) -> None:
        r = Reached()
        a = AuthorId("a")
        m = Member("alice", frozenset({"general"}), frozenset(), "alive")
        self.assertEqual(r.heard(a, 1, m, "", B, 0.0, False), [])  # told once it waited
        self.assertEqual(r.due(JOIN_WAIT - 0.1, lambda _: False), [])
        self.assertEqual([c.kind for c in r.due(JOIN_WAIT, lambda _: False)], ["joined"])
        self.assertEqual(r.due(JOIN_WAIT + 1, lambda _: False), [])  # told once
        self.assertEqual(r.heard(a, 1, m, "", C, 0.0, False), [])  # the same one again
        self.assertEqual(r.heard(a, 2, m, "", C, 5.0, False), [])  # nothing new
        renamed = Member("alicia", frozenset({"general", "ops"}), frozenset(), "alive")
        self.assertEqual([c.kind for c in r.heard(a, 4, renamed, "", C, 6.0, False)],
                         ["nick", "rooms"])
        self.assertEqual(r.heard(a, 3, m, "", C, 7.0, False), [])  # older: changes nothing
        self.assertEqual(r.sweep(6.0 + GONE_AFTER), [])
        self.assertEqual([c.kind for c in r.sweep(6.1 + GONE_AFTER)], ["gone"])
        self.assertEqual(r.sweep(100.0), [])  # told once

    def test_reached_is_bounded(self) -> None:
        r = Reached(max_authors=5)
        m = Member("x", frozenset({"general"}), frozenset(), "alive")
        gone = []
        for i in range(20):
            gone += [c.author for c in r.heard(AuthorId(f"p{i}"), 1, m, "", B, 0.0, False)
                     if c.kind == "gone"]
            r.due(JOIN_WAIT, lambda _: False)  # each shown
        self.assertEqual(len(r.of), 5)
        self.assertEqual(gone, [f"p{i}" for i in range(15)])  # no longer listed: told gone


# --- real nodes, simulated links --------------------------------------------------------------


def chain(nicks: list[str], ring: bool = False) -> Sim:
    sim = Sim(nicks)
    for left, right in zip(nicks, nicks[1:] + (nicks[:1] if ring else [])):
        sim.link(left, right)
    sim.tick(5)  # member lines (neighbour lists) go round; joins through others told
    return sim


def received(sim: Sim, nick: str) -> Counter[str]:
    return Counter(sim.said(nick))


class Topologies(TestCase):
    def everyone_gets_everything_once(self, sim: Sim, nicks: list[str]) -> None:
        for nick in nicks:
            for k in range(3):
                sim.nodes[nick].say(f"{nick}-{k}")
        sim.run()
        for nick in nicks:
            expected = [f"{o}: {o}-{k}" for o in nicks if o != nick for k in range(3)]
            got = received(sim, nick)
            self.assertEqual(sorted(got.elements()), sorted(expected), nick)
            for o in nicks:  # in its author's order
                mine = [x for x in sim.said(nick) if x.startswith(f"{o}: ")]
                self.assertEqual(mine, sorted(mine))

    def test_chain_of_5(self) -> None:
        nicks = ["n0", "n1", "n2", "n3", "n4"]
        self.everyone_gets_everything_once(chain(nicks), nicks)

    def test_ring_of_5(self) -> None:
        nicks = ["n0", "n1", "n2", "n3", "n4"]
        self.everyone_gets_everything_once(chain(nicks, ring=True), nicks)

    def test_full_mesh_forwards_nothing(self) -> None:
        nicks = ["a", "b", "c", "d"]
        sim = Sim(nicks)
        for i, x in enumerate(nicks):
            for y in nicks[i + 1:]:
                sim.link(x, y)
        sim.tick(2)
        before = sum(len(node.forwarder.log) for node in sim.nodes.values())
        sim.nodes["a"].say("hello")
        sim.run()
        self.assertEqual(sum(len(node.forwarder.log) for node in sim.nodes.values()), before)
        for nick in "bcd":
            self.assertEqual(sim.said(nick), ["a: hello"])

    def test_room_lines_only_through_members(self) -> None:
        sim = chain(["a", "b", "c"])
        sim.nodes["a"].join_room("ops")
        sim.nodes["c"].join_room("ops")
        sim.run()
        sim.nodes["a"].say("secret", room="ops")
        sim.nodes["a"].say("open")
        sim.run()
        self.assertEqual(sim.said("c"), ["a: open"])  # b is not in #ops: it carries nothing
        self.assertIn(("ops", ["c", "a"]), sim.nodes["c"].room_list())  # a listed in #ops
        sim.nodes["b"].join_room("ops")
        sim.run()
        sim.nodes["a"].say("now", room="ops")
        sim.run()
        self.assertEqual(sim.said("c"), ["a: open", "a: now"])

    def test_me_and_nick_changes_travel(self) -> None:
        sim = chain(["a", "b", "c"])
        sim.nodes["a"].act("waves")
        sim.nodes["a"].set_nick("alicia")
        sim.run()
        sim.nodes["a"].say("again")
        sim.run()
        lines = [e for e in sim.heard["c"] if isinstance(e, events.ChatLine)]
        self.assertEqual([(e.nick, e.text, e.action) for e in lines],
                         [("a", "waves", True), ("alicia", "again", False)])
        renames = [(e.old, e.new) for e in sim.heard["c"] if isinstance(e, events.NickChanged)]
        self.assertEqual(renames, [("a", "alicia")])

    def test_relayed_peers_listed_and_gone_within_30_s(self) -> None:
        sim = chain(["a", "b", "c"])
        joined = [e.nick for e in sim.heard["c"] if isinstance(e, events.PeerJoined)]
        self.assertEqual(sorted(joined), ["a", "b"])  # a once, relayed
        rows = {r.nick: (r.state, r.address) for r in sim.nodes["c"].users()}
        self.assertEqual(rows["a"], ("relayed", "via b"))
        self.assertEqual(rows["b"][0], "connected")
        sim.cut("a", "b")
        gone_at = sim.clock.seconds()
        for _ in range(30):
            sim.tick(1)
            if any(isinstance(e, events.PeerLeft) and e.nick == "a" for e in sim.heard["c"]):
                break
        self.assertLessEqual(sim.clock.seconds() - gone_at, 30.0)
        left = [e for e in sim.heard["c"] if isinstance(e, events.PeerLeft)]
        self.assertEqual([(e.nick, e.reason) for e in left], [("a", "no longer reached")])
        self.assertNotIn("a", {r.nick for r in sim.nodes["c"].users()})
        sim.tick(40)  # told once
        self.assertEqual(len([e for e in sim.heard["c"] if isinstance(e, events.PeerLeft)]), 1)

    def test_catch_up_through_a_neighbour_after_it_was_down(self) -> None:
        sim = chain(["a", "b", "c"])
        sim.nodes["a"].say("before")
        sim.run()
        sim.cut("a", "b")
        sim.nodes["a"].say("while cut")
        sim.nodes["c"].say("from c while cut")
        sim.run()
        sim.link("a", "b")  # b gets a's line by a's own catch-up and forwards it to c
        sim.tick(1)
        self.assertEqual(sim.said("c"), ["a: before", "a: while cut"])
        self.assertEqual(sim.said("a"), ["c: from c while cut"])  # handed on by b

    def test_a_line_caught_up_on_is_not_forwarded_to_a_neighbour_that_has_it(self) -> None:
        """w was away while a spoke to k and i; a left. w catches up from both: neither
        gets a's lines forwarded back (their syncs said how far they have a: forward_to's
        had_by), so a day of catch-up is not checked again by every neighbour."""
        sim = Sim(["a", "k", "i", "w"])
        for x, y in (("a", "k"), ("a", "i"), ("k", "i"), ("w", "k"), ("w", "i")):
            sim.link(x, y)
        sim.tick(2)
        sim.cut("w", "k")
        sim.cut("w", "i")
        sim.tick(1)
        for k in range(5):
            sim.nodes["a"].say(f"x{k}")
        sim.run()
        sim.cut("a", "k")
        sim.cut("a", "i")
        sim.tick(int(GONE_AFTER) + 2)
        # i's hand-on comes after k's (a real peer's goes in steps, so they interleave)
        sim.nodes["i"].catchup.relay_to = lambda link, others: None  # type: ignore
        sim.link("w", "i")
        sim.link("w", "k")
        sim.tick(2)
        self.assertEqual(sorted(sim.said("w")), [f"a: x{k}" for k in range(5)])
        w = sim.nodes["w"]
        self.assertEqual([e.key for e in w.forwarder.log.entries
                          if e.key[0] == sim.nodes["a"].peer_id], [])

    def test_a_forged_relayed_line_is_dropped_and_logged(self) -> None:
        sim = chain(["a", "b", "c"])
        b, c = sim.nodes["b"], sim.nodes["c"]
        w = sim.wires[frozenset(("b", "c"))][0]  # b's end
        msg = b.sender.message("chat", "i am a", sequenced=True)
        forged = wire.encode_message(Message(msg.id, "chat", sim.nodes["a"].peer_id, "a",
                                             "i am a", msg.timestamp, 99, "general",
                                             dict(msg.metadata or {})))[:-1]
        relay = b.sender.message(RELAY, "", metadata={
            "lines": [forged.decode()], "keys": {sim.nodes["a"].peer_id:
                                                 sim.nodes["a"].identity.public_key_b64()},
            "hops": 1})
        from twisted.logger import globalLogPublisher
        logged: list[dict] = []
        globalLogPublisher.addObserver(logged.append)
        try:
            w.send(relay)
            sim.run()
        finally:
            globalLogPublisher.removeObserver(logged.append)
        self.assertNotIn("a: i am a", sim.said("c"))
        self.assertTrue(any("refused" in str(e.get("log_format", "")) for e in logged))
        self.assertEqual(len(c.forwarder.log), 0)

    def test_catch_up_after_the_only_path_was_gone(self) -> None:
        sim = chain(["a", "b", "c"])
        sim.nodes["c"].say("first")
        sim.run()
        sim.cut("b", "c")
        sim.cut("a", "b")
        sim.tick(int(GONE_AFTER) + 2)  # c is gone for a
        self.assertTrue(any(isinstance(e, events.PeerLeft) and e.nick == "c"
                            for e in sim.heard["a"]))
        sim.nodes["c"].say("while gone")
        sim.link("b", "c")  # b gets it from c itself...
        sim.link("a", "b")  # ...and a, linking later, by b's catch-up
        sim.tick(1)
        self.assertEqual(sim.said("a"), ["c: first", "c: while gone"])


def test_the_gossip_bench_delivers_everything_once() -> None:
    from bench import gossip as bench_gossip
    result = bench_gossip.run(5, 10)
    for shape in ("full", "chain", "ring"):
        assert result[shape]["deliveries"] == result[shape]["expected"] == 40, result[shape]
    assert result["full"]["forwarded"] == 0
    assert result["chain"]["copies_per_delivery"] == 1.0
    assert "ratio to the full mesh" in bench_gossip.render(result)


class Marks(TestCase):
    def test_a_peer_reached_through_others_is_not_waited_for(self) -> None:
        sim = Sim(["a", "b", "c"])
        for x, y in (("a", "b"), ("b", "c"), ("a", "c")):
            sim.link(x, y)
        sim.tick(2)
        sim.cut("a", "c")
        # its beacons still come (no route for TCP, say): it is away for a, not gone
        sim.nodes["a"].away[sim.nodes["c"].peer_id] = "c"
        sim.tick(12)  # c's member lines now come to a through b
        rows = {r.nick: r.state for r in sim.nodes["a"].users()}
        self.assertEqual(rows["c"], "relayed")
        sim.nodes["a"].say("hello")
        sim.run()
        self.assertEqual(sim.said("c"), ["a: hello"])
        self.assertTrue(any(isinstance(e, events.Delivered) for e in sim.heard["a"]))

    def test_a_goodbye_travels_and_is_told_once(self) -> None:
        sim = chain(["a", "b", "c"])
        sim.nodes["a"].say_goodbye()
        sim.run()
        left = [(e.nick, e.reason) for e in sim.heard["c"] if isinstance(e, events.PeerLeft)]
        self.assertEqual(left, [("a", None)])
        self.assertNotIn("a", {r.nick for r in sim.nodes["c"].users()})
        sim.tick(30)
        self.assertEqual(len([e for e in sim.heard["c"] if isinstance(e, events.PeerLeft)]), 1)

    def test_the_hop_limit_in_a_long_chain(self) -> None:
        nicks = [f"n{i}" for i in range(MAX_HOPS + 3)]  # n0 .. n18
        sim = chain(nicks)
        sim.nodes["n0"].say("far")
        sim.run()
        self.assertEqual(sim.said(f"n{MAX_HOPS + 1}"), ["n0: far"])  # 17 links away
        self.assertEqual(sim.said(f"n{MAX_HOPS + 2}"), [])  # forwarded 16 times: no more


class Joins(TestCase):
    def test_a_join_waits_for_our_own_link(self) -> None:
        r = Reached()
        m = Member("alice", frozenset({"general"}), frozenset(), "alive")
        never = lambda _: False  # noqa: E731
        # its own link comes within JOIN_WAIT: its join through others is never told
        self.assertEqual(r.heard(AuthorId("a"), 1, m, "", B, 0.0, False), [])
        self.assertFalse(r.linked("a"))
        self.assertEqual(r.due(JOIN_GRACE + 1, never), [])
        # we hear its beacons (a link is coming): it waits JOIN_GRACE, then told
        r.heard(AuthorId("x"), 1, m, "", B, 0.0, False)
        self.assertEqual(r.due(JOIN_WAIT, lambda _: True), [])
        self.assertEqual([c.kind for c in r.due(JOIN_GRACE, lambda _: True)], ["joined"])

    def test_a_forming_full_mesh_shows_each_join_once_by_its_own_link(self) -> None:
        nicks = ["a", "b", "c", "d"]
        sim = Sim(nicks)
        sim.link("a", "b")
        sim.link("a", "c")  # c is first reached by b through a...
        sim.tick(1)
        sim.link("b", "c")  # ...then linked
        sim.tick(15)
        joins = [(e.nick, e.address) for e in sim.heard["b"] if isinstance(e, events.PeerJoined)]
        self.assertEqual(sorted(n for n, _ in joins), ["a", "c"])
        self.assertFalse(any(a.startswith("via") for _, a in joins))



def member_lines_handed(sim: Sim, to: str) -> list[tuple[str, str, bool]]:
    """Watch the member lines handed on (in relay lines) to ``to``, as they come: (hander,
    author nick, whether ``to`` had that very line already: a copy read for nothing)."""
    got: list[tuple[str, str, bool]] = []
    node = sim.nodes[to]
    nicks = {n.peer_id: nick for nick, n in sim.nodes.items()}
    real = node.message_received

    def watch(link, msg, raw):  # type: ignore[no-untyped-def]
        if msg.type == RELAY:
            for text in (msg.metadata or {}).get("lines", []):
                line = wire.parse_message(text.encode())
                if line.type == MEMBER:
                    had = (line.sender_id, line.sequence) in node.room.seqs
                    got.append((nicks[link.peer_id], nicks[line.sender_id], had))
        return real(link, msg, raw)

    node.message_received = watch  # type: ignore[method-assign]
    return got


class MembersAtLinkUp(TestCase):
    """At link-up a neighbour hands on the member lines of the peers it reaches, but only those
    the newcomer's sync says it lacks (``members``): in a forming room of 100 each link-up
    handed on all of them, some 575 a peer, about 100 of them news."""

    def room(self) -> Sim:
        sim = Sim(["a", "b", "c", "d"])
        sim.link("a", "b")
        sim.link("b", "c")
        sim.tick(5)
        return sim

    def test_no_member_line_it_has_is_handed_on(self) -> None:
        sim = self.room()
        got = member_lines_handed(sim, "d")
        sim.link("d", "b")
        self.assertEqual(sorted(got), [("b", "a", False), ("b", "c", False)])
        del got[:]
        sim.link("d", "c")  # c reaches a and b, and d's sync says it has both
        self.assertEqual([g for g in got if g[2]], [])
        sim.tick(5)
        self.assertEqual(sorted(u.nick for u in sim.nodes["d"].users()), ["a", "b", "c"])

    def test_a_newcomer_gets_them_without_waiting_for_its_sync(self) -> None:
        """b holds no member line of d's: d is new, and lacks them all, so they go at
        link-up, not a round trip later (a second on a saturated machine); c, which has
        heard of d through b, waits for d's sync to say which it lacks."""
        sim = self.room()
        got = member_lines_handed(sim, "d")
        d_id = sim.nodes["d"].peer_id
        for nick in ("b", "c"):  # d's syncs never arrive
            node = sim.nodes[nick]
            real = node.message_received
            node.message_received = (  # type: ignore[method-assign]
                lambda link, msg, raw, real=real: None if (
                    msg.type == wire.SYNC and link.peer_id == d_id) else real(link, msg, raw))
        sim.link("d", "b")
        self.assertEqual(sorted(got), [("b", "a", False), ("b", "c", False)])
        sim.link("d", "c")
        self.assertEqual([g for g in got if g[0] == "c"], [])

    def test_a_newer_member_line_still_goes(self) -> None:
        sim = self.room()
        sim.link("d", "b")
        sim.tick(1)
        sim.cut("d", "b")
        sim.nodes["a"].join_room("ops")  # a's member line changes; d (cut off) lacks it
        sim.tick(2)
        got = member_lines_handed(sim, "d")
        sim.link("d", "c")
        self.assertEqual(got, [("c", "a", False)])  # not b's: d has that one
        a = sim.nodes["a"].peer_id
        self.assertIn("ops", sim.nodes["d"].rooms.rooms_of_peer(a))

    def test_a_peer_whose_sync_does_not_say_gets_them_all(self) -> None:
        sim = self.room()
        sim.link("d", "b")
        sim.tick(1)
        got = member_lines_handed(sim, "d")
        d = sim.nodes["d"]
        d.forwarder.members.versions = lambda: None  # type: ignore
        sim.link("d", "c")  # as an older peer of ours: no "members" in its sync
        self.assertEqual(sorted(got), [("c", "a", True), ("c", "b", True)])

    def test_the_members_of_a_sync_are_checked(self) -> None:
        for members in ("x", {"p": -1}, {"p": "1"}, {"x" * 200: 1},
                        {f"p{i}": 1 for i in range(MAX_OTHERS + 1)}):
            msg = Message("s", wire.SYNC, "p", "p", "", 1700000000.0, 0, "general",
                          {"sent": 0, "have": None, "members": members})
            with self.assertRaises(WireError):
                parse_sync(msg)
        ok = Message("s", wire.SYNC, "p", "p", "", 1700000000.0, 0, "general",
                     {"sent": 0, "have": None, "members": {"q": 4}})
        self.assertEqual(parse_sync(ok).members, {"q": 4})
        ok.metadata = {"sent": 0, "have": None}
        self.assertIsNone(parse_sync(ok).members)
