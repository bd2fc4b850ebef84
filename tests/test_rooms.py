"""Rooms and private messages: who gets which line (no sockets: two-way fake links)."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from p2pchat import events, wire
from p2pchat.face import describe_rooms
from p2pchat.interfaces import Done, Refused, Said
from p2pchat.node import CAPS, Node
from p2pchat.rooms import Rooms, room_name, rooms_of
from p2pchat.wire import Message, WireError

from tests.fakes import RecordingFace, FakeLink, refusal


class Names(TestCase):
    def test_room_names(self) -> None:
        self.assertEqual(room_name(" #Ops "), ("ops", None))
        self.assertIn("a-z", room_name("#no spaces")[1])
        self.assertIn("at most", room_name("#" + "x" * 40)[1])
        self.assertIn("needs a name", room_name("#")[1])

    def test_rooms_line(self) -> None:
        msg = Message(id="r", type="rooms", sender_id="p", metadata={"rooms": ["ops", "dev"]})
        self.assertEqual(rooms_of(msg), frozenset({"general", "ops", "dev"}))
        for bad in ({"rooms": "ops"}, {"rooms": ["Bad Name"]}, {"rooms": ["x"] * 40}, None):
            self.assertRaises(WireError, rooms_of,
                              Message(id="r", type="rooms", sender_id="p", metadata=bad))

    def test_membership(self) -> None:
        rooms = Rooms(["ops"])
        self.assertEqual(rooms.joined, ["general", "ops"])
        self.assertFalse(rooms.part("general"))
        self.assertEqual(rooms.set_peer("b", frozenset({"general", "ops"})), ({"ops"}, set()))
        self.assertTrue(rooms.peer_in("b", "ops") and rooms.peer_in("x", "general"))
        self.assertFalse(rooms.peer_in("x", "ops"))


class Mesh:
    """Nodes joined pairwise by FakeLinks; ``pump`` delivers what is queued, in order."""

    def __init__(self, clock: Clock, *names: str) -> None:
        self.nodes = {n: Node(n, clock, peer_id=f"{n}_1") for n in names}
        self.seen: dict[str, list] = {n: [] for n in names}
        self.queue: list = []
        self.wire_log: dict[tuple[str, str], list[Message]] = {}
        for name, node in self.nodes.items():
            node.subscribe(self.seen[name].append)
        names = list(names)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                self._connect(a, b)
        self.pump()

    def _connect(self, a: str, b: str) -> None:
        na, nb = self.nodes[a], self.nodes[b]
        ab = FakeLink(nb.peer_id, b, dialer_id=na.peer_id, caps=CAPS)
        ba = FakeLink(na.peer_id, a, dialer_id=na.peer_id, caps=CAPS)
        for link, src, dst, there in ((ab, a, b, ba), (ba, b, a, ab)):
            link.send = self._sender(src, dst, there)
        na.link_ready(ab)
        nb.link_ready(ba)

    def _sender(self, src: str, dst: str, there: FakeLink):
        def send(msg: Message) -> None:
            self.wire_log.setdefault((src, dst), []).append(msg)
            self.queue.append((self.nodes[dst], there, wire.encode_message(msg)[:-1]))
        return send

    def pump(self) -> None:
        while self.queue:
            node, there, data = self.queue.pop(0)
            node.message_received(there, wire.parse_message(data))

    def heard(self, name: str) -> list[tuple[str, str, str]]:
        return [(e.room, e.nick, e.text) for e in self.seen[name]
                if isinstance(e, events.ChatLine) and not e.own]

    def carried(self, src: str, dst: str, text: str) -> bool:
        return any(m.content == text for m in self.wire_log.get((src, dst), []))


class RoomTraffic(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(50)
        self.mesh = Mesh(self.clock, "alice", "bob", "carol")
        self.a, self.b, self.c = (self.mesh.nodes[n] for n in ("alice", "bob", "carol"))

    def test_a_room_line_reaches_its_members_only(self) -> None:
        self.assertEqual(self.a.join_room("#ops"), Done())
        self.assertEqual(self.b.join_room("ops"), Done())
        self.mesh.pump()
        self.a.say("deploy at noon", room="ops")
        self.mesh.pump()
        self.assertEqual(self.mesh.heard("bob"), [("ops", "alice", "deploy at noon")])
        self.assertEqual(self.mesh.heard("carol"), [])
        self.assertFalse(self.mesh.carried("alice", "carol", "deploy at noon"))  # never sent
        joins = [(e.room, e.nick) for e in self.mesh.seen["alice"]
                 if isinstance(e, events.RoomChanged) and not e.own]
        self.assertEqual(joins, [("ops", "bob")])
        self.assertEqual(dict(self.a.room_list())["ops"], ["alice", "bob"])
        self.assertEqual(self.c.say("hi", room="ops"), Refused("you are not in #ops"))

    def test_part_stops_the_lines(self) -> None:
        self.a.join_room("ops")
        self.b.join_room("ops")
        self.mesh.pump()
        self.assertEqual(self.b.part_room("#ops"), Done())
        self.mesh.pump()
        self.a.say("anyone?", room="ops")
        self.mesh.pump()
        self.assertEqual(self.mesh.heard("bob"), [])
        self.assertIn("can't be left", refusal(self.a.part_room("general")))

    def test_a_private_line_reaches_its_target_only(self) -> None:
        sent = self.a.say_private("carol", "just for you")
        self.assertIsInstance(sent, Said)
        self.assertEqual(sent.waits_for, "")
        self.mesh.pump()
        self.assertEqual(self.mesh.heard("carol"), [("@alice_1", "alice", "just for you")])
        private = [e for e in self.mesh.seen["carol"] if isinstance(e, events.ChatLine)][0]
        self.assertEqual(private.private, "alice")
        self.assertEqual(self.mesh.heard("bob"), [])
        self.assertFalse(self.mesh.carried("alice", "bob", "just for you"))
        own = [e for e in self.mesh.seen["alice"] if isinstance(e, events.ChatLine)][0]
        self.assertEqual((own.room, own.private), ("@carol_1", "carol"))
        self.assertIn("no peer called nobody", refusal(self.a.say_private("nobody", "hello?")))

    def test_private_lines_not_for_us_are_dropped(self) -> None:
        link = self.b.links["alice_1"].wire
        forged = Message(id="x", type="private", sender_id="alice_1", username="alice",
                         content="for carol", sequence=5, metadata={"to": "carol_1"})
        self.b.message_received(link, forged)
        self.assertEqual(self.mesh.heard("bob"), [])

    def test_base_peer_gets_general_only_and_no_private(self) -> None:
        base = FakeLink("gopher_417", "gopher", caps=())
        self.a.link_ready(base)
        self.a.join_room("ops")
        self.a.say("room line", room="ops")
        self.a.say("general line")
        self.assertEqual([m.content for m in base.sent if m.type == "chat"], ["general line"])
        self.assertEqual([m.type for m in base.sent if m.type in ("rooms", "sync")], [])
        self.assertIn("base peer", refusal(self.a.say_private("gopher", "psst")))


class FaceCommands(TestCase):
    """The room commands as every face runs them."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.mesh = Mesh(self.clock, "alice", "bob")
        self.face = RecordingFace(self.mesh.nodes["alice"])

    def test_join_talk_part(self) -> None:
        self.face.handle_input("/join #ops")
        self.assertEqual(self.face.room, "ops")
        self.face.handle_input("hello ops")
        own = [e for e in self.mesh.seen["alice"] if isinstance(e, events.ChatLine)][-1]
        self.assertEqual((own.room, own.text), ("ops", "hello ops"))
        self.face.handle_input("/rooms")
        self.assertIn("* #ops", "\n".join(self.face.info))
        self.face.handle_input("/part")
        self.assertEqual(self.face.room, "general")
        self.face.handle_input("/join #Bad Room")
        self.assertIn("a-z", self.face.errors[-1])
        self.face.handle_input("/msg bob")
        self.assertIn("usage", self.face.errors[-1])
        self.face.handle_input("/msg bob hi there")
        self.mesh.pump()
        self.assertEqual(self.mesh.heard("bob"), [("@alice_1", "alice", "hi there")])
        self.face.handle_input("/query bob")
        self.assertEqual(self.face.room, "@bob_1")
        self.face.handle_input("now privately")
        self.mesh.pump()
        self.assertEqual(self.mesh.heard("bob")[-1], ("@alice_1", "alice", "now privately"))
        self.face.handle_input("/part")
        self.assertEqual(self.face.room, "general")
        self.face.handle_input("back in general")
        self.face.handle_input("/history 5")
        self.assertIn("history of #general, last 1 lines:", self.face.info)
        self.assertIn("<alice> back in general", self.face.info[-2])

    def test_describe_rooms(self) -> None:
        text = describe_rooms([("general", ["a", "b"]), ("ops", ["a"])], "ops")
        self.assertEqual(text[1].split()[:3], ["*", "#ops", "1"])


