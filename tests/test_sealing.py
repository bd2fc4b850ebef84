"""Sealed private lines between nodes (sealing.py): a line to an absent peer is sealed and
carried, shown once by its recipient whatever way it comes, told delivered once; tampered and
replayed items refused; carriers keep items across restarts and never the plaintext; base and
plain links never see any of it.  Nodes are linked by fake links and a task.Clock."""

from __future__ import annotations

import dataclasses

from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from p2pchat import events, sealing, wire
from p2pchat.identity import Identity
from p2pchat.node import Node
from p2pchat.sealed import LINE, RECEIPT, SEALED, Sealer
from p2pchat.wire import Message
from tests.fakes import FakeLink

SECRET = "the parcel is under the third stone"


class Net:
    """Nodes with keys, linked in pairs by fake links; ``flush`` carries what they write."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.links: dict[tuple[str, str], FakeLink] = {}  # (a, b): a's link to b
        self.nodes: dict[str, Node] = {}

    def node(self, nick: str, identity: Identity | None = None, sealed: str | None = None
             ) -> Node:
        node = Node(nick, self.clock, identity=identity or Identity.generate())
        node.sealing.open_store(sealed)
        node.events = []  # type: ignore[attr-defined]
        node.subscribe(node.events.append)  # type: ignore[attr-defined]
        self.nodes[node.peer_id] = node
        return node

    @staticmethod
    def view(of: Node, now: float, **kw: object) -> FakeLink:
        link = FakeLink(of.peer_id, of.nick, caps=of.caps, now=now)
        link.fp, link.pk, link.tls = (of.identity.fingerprint, of.identity.public_key_b64(),
                                      "TLSv1.3")
        for name, value in kw.items():
            setattr(link, name, value)
        return link

    def link(self, a: Node, b: Node) -> None:
        now = self.clock.seconds()
        ab, ba = self.view(b, now), self.view(a, now)
        assert a.link_ready(ab) and b.link_ready(ba)
        self.links[a.peer_id, b.peer_id], self.links[b.peer_id, a.peer_id] = ab, ba
        self.nodes[a.peer_id], self.nodes[b.peer_id] = a, b
        self.flush()

    def unlink(self, a: Node, b: Node) -> None:
        self.flush()
        a.link_lost(self.links.pop((a.peer_id, b.peer_id)), "gone")
        b.link_lost(self.links.pop((b.peer_id, a.peer_id)), "gone")

    def flush(self) -> None:
        for _ in range(50):
            moved = False
            for (a, b), link in list(self.links.items()):
                sent, link.sent = link.sent, []
                back = self.links.get((b, a))
                for msg in sent:
                    moved = True
                    if back is not None:
                        self.nodes[b].message_received(back, msg, wire.encode_message(msg)[:-1])
            self.clock.advance(0.1)  # acks
            if not moved:
                return
        raise AssertionError("the nodes never stopped writing")


def sealed_to(link: FakeLink) -> list[Message]:
    return [m for m in link.sent if m.type == SEALED]


def shown(node: Node, text: str = SECRET) -> list[events.ChatLine]:
    return [e for e in node.events  # type: ignore[attr-defined]
            if isinstance(e, events.ChatLine) and e.text == text and not e.own]


def delivered(node: Node) -> list[str]:
    return [e.message_id for e in node.events  # type: ignore[attr-defined]
            if isinstance(e, events.Delivered)]


class SealedTest(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.net = Net(self.clock)
        self.logged: list[str] = []
        observer = lambda event: self.logged.append(formatEvent(event))  # noqa: E731
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        self.carol_id = Identity.generate()
        self.alice = self.net.node("alice")
        self.bob = self.net.node("bob")
        self.carol = self.net.node("carol", self.carol_id)
        for a, b in ((self.alice, self.bob), (self.alice, self.carol), (self.bob, self.carol)):
            self.net.link(a, b)
        self.net.unlink(self.alice, self.carol)  # carol is away ...
        self.net.unlink(self.bob, self.carol)

    def say_to_carol(self, text: str = SECRET) -> str:
        result = self.alice.chat.say_private("carol", text)
        self.assertEqual(getattr(result, "waits_for", ""), "carol")
        self.net.flush()
        return result.msg.id  # type: ignore[union-attr]

    def test_carried_by_bob_shown_once_and_told_delivered_once(self) -> None:
        message_id = self.say_to_carol()
        self.assertEqual([i.kind for i in self.bob.sealing.held.all()], [LINE])
        self.net.unlink(self.alice, self.bob)
        self.net.link(self.bob, self.carol)
        self.assertEqual(len(shown(self.carol)), 1)
        line = shown(self.carol)[0]
        self.assertEqual((line.nick, line.sender_id, line.room, line.private),
                         ("alice", self.alice.peer_id, f"@{self.alice.peer_id}", "alice"))
        # carol's receipt made bob drop the line; he holds the receipt for alice
        self.assertEqual([i.kind for i in self.bob.sealing.held.all()], [RECEIPT])
        self.assertEqual(delivered(self.alice), [])
        self.net.link(self.alice, self.bob)
        self.assertEqual(delivered(self.alice), [message_id])
        self.assertEqual(len(self.bob.sealing.held), 0)  # handed to alice: done
        self.assertEqual(len(self.alice.sealing.own), 0)
        # alice and carol meet: alice's catch-up resends the line, carol's ack covers it
        self.net.link(self.alice, self.carol)
        self.assertEqual((len(shown(self.carol)), delivered(self.alice)), (1, [message_id]))
        self.assertEqual(len(self.carol.sealing.own), 0)  # her receipt went to alice

    def test_delivered_by_the_ack_when_carol_comes_to_alice_first(self) -> None:
        message_id = self.say_to_carol()
        self.net.link(self.alice, self.carol)  # catch-up, and the sealed item too
        self.net.link(self.bob, self.carol)
        self.assertEqual((len(shown(self.carol)), delivered(self.alice)), (1, [message_id]))
        self.assertEqual(len(self.alice.sealing.own), 0)

    def replay_item(self) -> Message:
        """The sealed line bob hands carol, as a line (to hand her again)."""
        item = self.bob.sealing.held.all()[0]
        self.assertEqual(item.kind, LINE)
        return Message(id="again", type=SEALED, sender_id=self.bob.peer_id,
                       metadata=item.metadata())

    def test_the_same_item_again_is_a_replay_not_shown_nor_answered_to_all(self) -> None:
        self.say_to_carol()
        replay = self.replay_item()
        self.net.unlink(self.alice, self.bob)
        self.net.link(self.bob, self.carol)
        self.assertEqual(len(shown(self.carol)), 1)
        own = len(self.carol.sealing.own)
        to_bob = self.net.links[self.carol.peer_id, self.bob.peer_id]
        self.carol.message_received(to_bob, replay)
        self.assertEqual(len(shown(self.carol)), 1)
        self.assertEqual(len(self.carol.sealing.own), own)  # no new receipt kept for alice
        self.assertEqual([m.metadata["kind"] for m in sealed_to(to_bob)], [RECEIPT])
        self.assertTrue(any("a replay" in line for line in self.logged), self.logged)

    def test_a_replay_is_refused_after_a_restart_too(self) -> None:
        path = self.mktemp()
        carol = self.net.node("carol", self.carol_id, sealed=path)  # carol with a data dir
        self.say_to_carol()
        replay = self.replay_item()
        self.net.unlink(self.alice, self.bob)
        self.net.link(self.bob, carol)
        self.assertEqual(len(shown(carol)), 1)
        self.net.unlink(self.bob, carol)
        carol.sealing.store.close()
        # carol restarts with the same sealed file but nothing else (a new history)
        again = self.net.node("carol", self.carol_id, sealed=path)
        self.net.link(self.bob, again)
        again.message_received(self.net.links[again.peer_id, self.bob.peer_id], replay)
        self.assertEqual(shown(again), [])
        self.assertTrue(any("a replay" in line for line in self.logged))

    def test_a_tampered_item_is_refused_by_carriers_and_by_its_recipient(self) -> None:
        self.say_to_carol()
        item = self.bob.sealing.held.all()[0]
        body = item.body[:20] + ("A" if item.body[20] != "A" else "B") + item.body[21:]
        tampered = Message(id="t", type=SEALED, sender_id=self.bob.peer_id,
                           metadata=dataclasses.replace(item, body=body).metadata())
        dave = self.net.node("dave")
        self.net.link(self.bob, dave)
        self.net.flush()
        self.assertEqual(len(dave.sealing.held), 0)
        dave.message_received(self.net.links[dave.peer_id, self.bob.peer_id], tampered)
        self.assertEqual(len(dave.sealing.held), 0)  # a carrier does not hold it
        self.net.link(self.bob, self.carol)
        to_bob = self.net.links[self.carol.peer_id, self.bob.peer_id]
        self.carol.message_received(to_bob, tampered)
        self.assertEqual(len(shown(self.carol)), 1)  # the true one, from bob; not this
        self.assertEqual(len([line for line in self.logged if "was refused" in line]), 2)

    def test_a_carrier_keeps_items_across_its_restart_and_never_the_plaintext(self) -> None:
        path = self.mktemp()
        bob_id = Identity.generate()
        bob = self.net.node("bob", bob_id, sealed=path)
        self.net.link(self.alice, bob)
        self.say_to_carol()
        self.assertEqual(len(bob.sealing.held), 1)
        self.net.unlink(self.alice, bob)
        bob.sealing.store.close()
        again = self.net.node("bob", bob_id, sealed=path)
        self.assertEqual([i.kind for i in again.sealing.held.all()], [LINE])
        self.net.link(again, self.carol)
        self.assertEqual(len(shown(self.carol)), 1)
        self.assertEqual([i.kind for i in again.sealing.held.all()], [RECEIPT])
        with open(path, "rb") as f:
            data = f.read()
        self.assertNotIn(SECRET.encode(), data)
        self.assertNotIn(SECRET, "\n".join(self.logged))

    def test_expired_items_are_dropped_at_the_next_link(self) -> None:
        self.say_to_carol()
        self.assertEqual(len(self.bob.sealing.held), 1)
        self.clock.advance(self.bob.sealing.held.max_age + 1)
        self.net.unlink(self.alice, self.bob)
        self.net.link(self.bob, self.carol)
        self.assertEqual((len(self.bob.sealing.held), shown(self.carol)), (0, []))

    def test_base_and_plain_links_never_get_sealed_items(self) -> None:
        now = self.clock.seconds()
        base = FakeLink("gopher_1", "gopher", caps=(), now=now)
        mallory = Identity.generate()
        # claims every cap of ours without proving a key (no TLS): a base peer to us
        plain = FakeLink(mallory.peer_id, "mallory", caps=self.alice.caps, now=now)
        self.assertTrue(self.alice.link_ready(base))
        self.assertTrue(self.alice.link_ready(plain))
        self.say_to_carol()
        self.assertEqual(len(self.bob.sealing.held), 1)  # a carrier got it
        self.assertEqual((sealed_to(base), sealed_to(plain)), ([], []))
        item = Sealer(mallory).seal(b"{}", self.carol.peer_id, self.carol_id.public_key_b64(),
                                    self.clock.seconds())
        self.alice.message_received(plain, Message(id="p", type=SEALED, sender_id=plain.peer_id,
                                                   metadata=item.metadata()))
        self.assertEqual(len(self.alice.sealing.held), 0)  # nor taken from them
        self.alice.message_received(self.net.links[self.alice.peer_id, self.bob.peer_id],
                                    Message(id="q", type=SEALED, sender_id=self.bob.peer_id,
                                            metadata=item.metadata()))
        self.assertEqual(len(self.alice.sealing.held), 1)  # from a peer of ours, carried

    def test_without_a_known_key_the_line_waits_in_the_sent_log_only(self) -> None:
        self.alice.trust.pins.forget("carol")
        self.alice.sealing.keys.clear()
        self.say_to_carol()
        self.assertEqual(len(self.bob.sealing.held), 0)
        self.net.link(self.alice, self.carol)
        self.assertEqual(len(shown(self.carol)), 1)  # by catch-up, as before

    def test_an_item_too_old_is_not_shown_when_handed_late(self) -> None:
        self.say_to_carol()
        late = self.replay_item()
        self.clock.advance(self.bob.sealing.held.max_age + 1)
        self.net.unlink(self.alice, self.bob)
        self.net.link(self.bob, self.carol)  # bob dropped it: expired
        self.carol.message_received(self.net.links[self.carol.peer_id, self.bob.peer_id], late)
        self.assertEqual(shown(self.carol), [])
        self.assertTrue(any("older than sealed lines are kept" in line
                            for line in self.logged))

    def test_a_carrier_that_passed_the_receipt_on_does_not_take_the_line_again(self) -> None:
        self.say_to_carol()
        again = self.replay_item()
        self.net.unlink(self.alice, self.bob)
        self.net.link(self.bob, self.carol)
        self.net.unlink(self.bob, self.carol)
        self.net.link(self.alice, self.bob)  # the receipt goes to alice, the line comes again
        self.assertEqual(len(self.bob.sealing.held), 0)
        self.bob.message_received(self.net.links[self.bob.peer_id, self.alice.peer_id], again)
        self.assertEqual(len(self.bob.sealing.held), 0)

    def test_a_line_said_before_the_authors_restart_is_told_delivered_once(self) -> None:
        path = self.mktemp()
        alice_id = Identity.generate()
        alice = self.net.node("alice", alice_id, sealed=path)
        for other in (self.bob, self.carol):
            self.net.link(alice, other)
        self.net.unlink(alice, self.carol)
        self.assertEqual(getattr(alice.chat.say_private("carol", SECRET), "waits_for"), "carol")
        self.net.unlink(alice, self.bob)
        alice.sealing.store.close()
        self.net.link(self.bob, self.carol)
        self.assertEqual(len(shown(self.carol)), 1)
        again = self.net.node("alice", alice_id, sealed=path)  # alice back, a new run
        self.assertEqual(len(again.sealing.own), 1)
        self.net.link(again, self.bob)  # bob hands her carol's receipt
        self.net.link(again, self.carol)  # carol too: her own copy of it
        told = [e.text for e in again.events  # type: ignore[attr-defined]
                if isinstance(e, events.Notice) and "delivered" in e.text]
        self.assertEqual(told, [f"delivered to carol: {SECRET}"])
        self.assertEqual(len(again.sealing.own), 0)

    def test_an_ack_tells_an_earlier_runs_sealed_line_delivered(self) -> None:
        path = self.mktemp()
        alice_id = Identity.generate()
        alice = self.net.node("alice", alice_id, sealed=path)
        self.net.link(alice, self.carol)
        self.net.unlink(alice, self.carol)
        said = alice.chat.say_private("carol", SECRET)
        alice.sealing.store.close()
        again = self.net.node("alice", alice_id, sealed=path)
        again.sealing.acked(self.carol.peer_id, said.msg.sequence - 1)  # type: ignore[union-attr]
        self.assertEqual(len(again.sealing.own), 1)  # not that far
        again.sealing.acked(self.carol.peer_id, said.msg.sequence)  # type: ignore[union-attr]
        self.assertEqual(len(again.sealing.own), 0)
        self.assertEqual([e.text for e in again.events  # type: ignore[attr-defined]
                          if isinstance(e, events.Notice) and "delivered" in e.text],
                         [f"delivered to carol: {SECRET}"])

    def test_a_leaving_peer_opens_nothing(self) -> None:
        self.say_to_carol()
        item = self.replay_item()
        self.net.unlink(self.alice, self.bob)
        self.net.link(self.bob, self.carol)
        self.carol.say_goodbye()
        self.carol.sealing.opened = type(self.carol.sealing.opened)()  # as if never opened
        self.carol.message_received(self.net.links[self.carol.peer_id, self.bob.peer_id], item)
        self.assertEqual(len(self.carol.sealing.opened), 0)

    def test_items_handed_too_fast_are_ignored(self) -> None:
        self.patch(sealing, "SEALED_BURST", 3)
        dave = self.net.node("dave")
        self.net.link(self.bob, dave)
        mallory = Identity.generate()  # items for her, by her: carried by dave
        link = self.net.links[dave.peer_id, self.bob.peer_id]
        for n in range(5):
            item = Sealer(mallory).seal(b"{}", mallory.peer_id, mallory.public_key_b64(),
                                        self.clock.seconds())
            dave.message_received(link, Message(id=f"f{n}", type=SEALED,
                                                sender_id=self.bob.peer_id,
                                                metadata=item.metadata()))
        self.assertEqual(len(dave.sealing.held), 3)
        self.assertTrue(any("too fast" in line for line in self.logged))
        self.clock.advance(1.0)  # 100 a second again
        dave.message_received(link, Message(id="later", type=SEALED, sender_id=self.bob.peer_id,
                                            metadata=Sealer(mallory).seal(
                                                b"{}", mallory.peer_id,
                                                mallory.public_key_b64(),
                                                self.clock.seconds()).metadata()))
        self.assertEqual(len(dave.sealing.held), 4)

    def test_a_sealed_file_that_cant_be_used_keeps_items_in_memory(self) -> None:
        dave = self.net.node("dave", sealed=self.mktemp() + "/no/such/dir/sealed.sqlite3")
        self.net.link(self.alice, dave)  # (the store is opened with the sealing: firstuse.py)
        self.assertTrue(any("held in memory only" in line for line in self.logged))
        self.say_to_carol()
        self.assertEqual(len(dave.sealing.held), 1)

    def test_a_receipt_after_the_line_left_the_sent_log_is_still_told(self) -> None:
        self.say_to_carol()
        self.alice.delivery.forget_through(self.alice.outbox.sequence)  # the log let it go
        self.net.link(self.bob, self.carol)  # alice still linked with bob: receipt at once
        self.assertEqual(delivered(self.alice), [])
        self.assertEqual([e.text for e in self.alice.events  # type: ignore[attr-defined]
                          if isinstance(e, events.Notice) and "delivered" in e.text],
                         [f"delivered to carol: {SECRET}"])
