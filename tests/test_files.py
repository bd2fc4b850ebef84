"""File transfer, without processes: hostile names, resume ranges, hash checks, the offer
bounds and age, the receiving side's checks (a bad chunk, more than offered), the sending
side's (who may fetch what), and the faces' commands."""

from __future__ import annotations

import hashlib
import json
import os

from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase

from p2pchat import events
from p2pchat.files import offers
from p2pchat.files.describe import Steps, event_text, files_table, status_text
from p2pchat.files.hashing import check_prefix, hash_file
from p2pchat.files.kept import Outgoing, Receiver
from p2pchat.files.offers import (
    CAP_FILES,
    CHUNK_BYTES,
    FILE,
    Entry,
    Offer,
    OfferError,
    check_hash_list,
    kept_bytes,
    offer_metadata,
    parse_offer,
    parse_size,
    resume_from,
    safe_name,
    safe_parts,
    unique_name,
)
from p2pchat.identity import peer_id_for
from p2pchat.interfaces import Done, Refused, TransferView
from p2pchat.node import Node
from p2pchat.wire import Message
from tests.fakechat import FakeChat
from tests.fakes import FakeLink, RecordingFace

FP = "ab" * 32
BOB = peer_id_for(FP)


class Names(TestCase):
    def test_hostile_names_become_safe_base_names(self) -> None:
        cases = {
            "../../etc/passwd": "passwd",
            "..\\..\\windows\\system32\\x.dll": "x.dll",
            "..": "file",
            ".": "file",
            "": "file",
            " . ": "file",
            "/": "file",
            ".bashrc": "bashrc",
            "notes.txt. . ": "notes.txt",
            "a\x1b[31mred\x07.txt": "a[31mred.txt",
            "\u202egnp.exe": "gnp.exe",
            "tab\there": "tabhere",
            'a<b>c:d"e|f?g*h': "a_b_c_d_e_f_g_h",
            "CON": "_CON",
            "nul.txt": "_nul.txt",
            "Lpt1.tar.gz": "_Lpt1.tar.gz",
            "console.txt": "console.txt",
            "ok name (2).pdf": "ok name (2).pdf",
        }
        for given, wanted in cases.items():
            self.assertEqual(safe_name(given), wanted, repr(given))

    def test_long_names_are_cut_keeping_the_extension(self) -> None:
        name = safe_name("é" * 300 + ".jpeg")
        self.assertLessEqual(len(name.encode("utf-8")), offers.MAX_NAME_BYTES)
        self.assertTrue(name.endswith("é.jpeg"), name)

    def test_folder_paths_never_climb_out(self) -> None:
        self.assertEqual(safe_parts("a/../../b/./c.txt"), ["a", "b", "c.txt"])
        self.assertEqual(safe_parts("/etc/shadow"), ["etc", "shadow"])
        self.assertEqual(safe_parts("../.."), ["file"])
        self.assertEqual(safe_parts("x\\..\\y"), ["x", "y"])

    def test_a_name_taken_gets_a_number(self) -> None:
        taken = {"a.txt", "a (1).txt", "b", "c.tar.gz"}
        self.assertEqual(unique_name("a.txt", taken.__contains__), "a (2).txt")
        self.assertEqual(unique_name("b", taken.__contains__), "b (1)")
        self.assertEqual(unique_name("new.txt", taken.__contains__), "new.txt")
        self.assertEqual(unique_name("c.tar.gz", taken.__contains__), "c.tar (1).gz")

    def test_sizes(self) -> None:
        self.assertEqual(parse_size("4G"), 4 << 30)
        self.assertEqual(parse_size("500M"), 500 << 20)
        self.assertEqual(parse_size("1.5k"), 1536)
        self.assertEqual(parse_size("1048576"), 1 << 20)
        self.assertEqual(parse_size("2GiB"), 2 << 30)
        for bad in ("", "x", "-1", "0", "4Q"):
            self.assertRaises(ValueError, parse_size, bad)


class Ranges(TestCase):
    def test_resume_starts_at_the_chunk_the_partial_file_ends_in(self) -> None:
        size = 5 * CHUNK_BYTES + 10
        self.assertEqual(resume_from(0, size), 0)
        self.assertEqual(resume_from(CHUNK_BYTES - 1, size), 0)
        self.assertEqual(resume_from(CHUNK_BYTES, size), CHUNK_BYTES)
        self.assertEqual(resume_from(2 * CHUNK_BYTES + 7, size), 2 * CHUNK_BYTES)
        self.assertEqual(resume_from(size, size), size)
        self.assertEqual(resume_from(size + 1, size), 0)  # longer than the file: start over

    def test_the_kept_bytes_stop_at_the_first_bad_chunk(self) -> None:
        self.assertEqual(kept_bytes([]), 0)
        self.assertEqual(kept_bytes([True, True]), 2 * CHUNK_BYTES)
        self.assertEqual(kept_bytes([True, False, True]), CHUNK_BYTES)
        self.assertEqual(kept_bytes([False]), 0)


def _file(path: str, size: int) -> bytes:
    data = bytes((i * 7 + i // 4096) % 256 for i in range(size))
    with open(path, "wb") as f:
        f.write(data)
    return data


class Hashes(TestCase):
    def test_a_file_and_its_chunk_list(self) -> None:
        path = self.mktemp()
        data = _file(path, 2 * CHUNK_BYTES + 100)
        hashed = hash_file(path, "x.bin")
        self.assertEqual(hashed.entry.sha256, hashlib.sha256(data).hexdigest())
        self.assertEqual(len(hashed.hashes), 3 * 32)
        self.assertEqual(check_hash_list(hashed.hashes, hashed.entry)[2],
                         hashlib.sha256(data[2 * CHUNK_BYTES:]).digest())

    def test_a_hash_list_that_is_not_the_offers_is_refused(self) -> None:
        path = self.mktemp()
        _file(path, CHUNK_BYTES + 1)
        hashed = hash_file(path, "x.bin")
        wrong = bytes([hashed.hashes[0] ^ 1]) + hashed.hashes[1:]
        self.assertRaises(OfferError, check_hash_list, wrong, hashed.entry)
        self.assertRaises(OfferError, check_hash_list, hashed.hashes[:32], hashed.entry)
        self.assertRaises(OfferError, check_hash_list, hashed.hashes + b"x" * 32, hashed.entry)

    def test_a_partial_file_is_cut_after_its_last_good_chunk(self) -> None:
        src, part = self.mktemp(), self.mktemp()
        data = _file(src, 4 * CHUNK_BYTES)
        hashes = check_hash_list(hash_file(src, "x").hashes, hash_file(src, "x").entry)
        damaged = bytearray(data[:3 * CHUNK_BYTES + 5])
        damaged[CHUNK_BYTES + 10] ^= 0xFF  # in the second chunk
        with open(part, "wb") as f:
            f.write(damaged)
        prefix = check_prefix(part, len(data), hashes)
        self.assertEqual(prefix.length, CHUNK_BYTES)
        self.assertEqual(os.path.getsize(part), CHUNK_BYTES)
        self.assertEqual(prefix.whole.digest(), hashlib.sha256(data[:CHUNK_BYTES]).digest())

    def test_a_good_partial_file_keeps_its_whole_chunks(self) -> None:
        src, part = self.mktemp(), self.mktemp()
        data = _file(src, 3 * CHUNK_BYTES)
        hashes = check_hash_list(hash_file(src, "x").hashes, hash_file(src, "x").entry)
        with open(part, "wb") as f:
            f.write(data[:2 * CHUNK_BYTES + 99])
        self.assertEqual(check_prefix(part, len(data), hashes).length, 2 * CHUNK_BYTES)
        self.assertEqual(check_prefix(self.mktemp(), len(data), hashes).length, 0)


def _entry(size: int = 10) -> Entry:
    return Entry("a.txt", size, "0" * 64, "1" * 64)


def _offer(**kw) -> Offer:
    base = dict(id="abc123", name="a.txt", entries=(_entry(),), port=4000, made=1000.0)
    base.update(kw)
    return Offer(**base)  # type: ignore[arg-type]


class OfferLines(TestCase):
    def test_an_offer_goes_and_comes_back(self) -> None:
        offer = _offer(entries=(_entry(5), Entry("d/b.txt", 7, "2" * 64, "3" * 64)),
                       folder=True, name="d")
        self.assertEqual(parse_offer(json.loads(json.dumps(offer_metadata(offer))), 100), offer)

    def test_bad_offers_are_refused(self) -> None:
        good = offer_metadata(_offer())
        bad = [
            {"port": 0}, {"port": "80"}, {"offer": "../x"}, {"offer": ""}, {"name": ""},
            {"entries": []}, {"entries": [["a", -1, "0" * 64, "1" * 64]]},
            {"entries": [["a", 1, "0" * 63, "1" * 64]]}, {"entries": [["a", 1, "G" * 64,
                                                                       "1" * 64]]},
            {"entries": [["a", 1, "0" * 64]]}, {"entries": "x"},
            {"entries": [["a", 101, "0" * 64, "1" * 64]]},  # over max_size
        ]
        for change in bad:
            meta = dict(good, **change)
            self.assertRaises(OfferError, parse_offer, meta, 100)

    def test_an_offer_holds_a_bounded_number_of_files(self) -> None:
        most = [["a", 1, "0" * 64, "1" * 64]] * offers.MAX_FOLDER_FILES
        meta = dict(offer_metadata(_offer()), entries=most)
        self.assertEqual(len(parse_offer(meta, 1 << 30).entries), offers.MAX_FOLDER_FILES)
        meta["entries"] = most + most[:1]
        self.assertRaises(OfferError, parse_offer, meta, 1 << 30)


class NodeSetup(TestCase):
    """The node's Transfers with a fake link (no sockets: no identity, so nothing dials)."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(10_000)
        self.node = Node("mmm", self.clock, peer_id="mmm_1")
        self.events: list = []
        self.node.subscribe(self.events.append)
        self.down = self.mktemp()
        self.files = self.node.files
        self.files.configure(self.down, self.mktemp(), 1000, self.clock, None)
        self.link = FakeLink(BOB, "bob", caps=("p2pchat-py/1", CAP_FILES))
        self.link.fp = FP
        self.assertTrue(self.node.link_ready(self.link))
        self.link.sent.clear()

    def offer_line(self, offer: Offer, sender: str = BOB) -> None:
        self.node.message_received(self.link, Message(
            id=offer.id + "m", type=FILE, sender_id=sender, username="bob",
            metadata=offer_metadata(offer)))

    def answers(self) -> list[tuple[str, str]]:
        return [((m.metadata or {}).get("op"), (m.metadata or {}).get("why", ""))
                for m in self.link.sent if m.type == FILE]

    def offered(self) -> list[TransferView]:
        return [e.view for e in self.events
                if isinstance(e, events.TransferChanged) and e.what == "offered"]


class NodeFiles(NodeSetup):
    """Offers to us: shown, bounded, aged, placed, answered."""

    def test_an_offer_is_shown_with_the_command_to_take_it(self) -> None:
        self.offer_line(_offer())
        [view] = self.offered()
        self.assertEqual((view.peer, view.name, view.size, view.state), ("bob", "a.txt", 10,
                                                                         "offered"))
        self.assertIn("/accept 1", event_text(view, "offered") or "")
        self.offer_line(_offer())  # the same offer again (a link back up): not a new one
        self.assertEqual(len(self.offered()), 1)

    def test_our_own_reject_is_told_once_by_its_answer_but_the_peers_cancel_is_told(self
                                                                                 ) -> None:
        self.offer_line(_offer())
        self.assertEqual(self.files.reject(1).text, "rejected [1] a.txt")
        [closed] = [e for e in self.events if isinstance(e, events.TransferChanged)
                    and e.what == "rejected"]
        self.assertIsNone(event_text(closed.view, "rejected"))
        self.offer_line(_offer(id="o2"))
        self.node.message_received(self.link, Message(
            id="c9", type=FILE, sender_id=BOB, metadata={"op": "cancel", "offer": "o2"}))
        [gone] = [e for e in self.events if isinstance(e, events.TransferChanged)
                  and e.what == "cancelled"]
        self.assertEqual(event_text(gone.view, "cancelled"),
                         "file [2] a.txt from bob: cancelled: bob cancelled it")

    def test_each_step_of_a_transfer_is_logged_but_not_its_progress(self) -> None:
        from twisted.logger import Logger, formatEvent

        from p2pchat.files import transfers
        logged: list[dict] = []
        self.patch(transfers, "log", Logger(observer=logged.append))
        self.offer_line(_offer())
        self.files.reject(1)
        texts = [formatEvent(e) for e in logged]
        self.assertEqual(len(texts), 2, texts)
        self.assertIn("bob offers a.txt", texts[0])
        self.assertEqual(texts[1], "file [1] a.txt: rejected")

    def test_offers_are_bounded_per_peer(self) -> None:
        for i in range(offers.MAX_OFFERS_PER_PEER + 3):
            self.offer_line(_offer(id=f"o{i}"))
        self.assertEqual(len(self.offered()), offers.MAX_OFFERS_PER_PEER)
        self.assertEqual(len([a for a in self.answers() if a[0] == "reject"]), 3)
        told = [e for e in self.events if isinstance(e, events.Notice)
                and "offers from bob refused" in e.text]
        self.assertEqual(len(told), 1)  # once, not once per offer of a flood

    def test_offers_are_bounded_in_all(self) -> None:
        self.patch(offers, "MAX_OFFERS_HELD", 4)
        for i in range(6):
            self.offer_line(_offer(id=f"o{i}"))
        self.assertEqual(len(self.offered()), 4)

    def test_an_offer_over_the_size_limit_is_refused(self) -> None:
        self.offer_line(_offer(entries=(_entry(1001),)))
        self.assertEqual(self.offered(), [])
        self.assertEqual(self.answers()[0][0], "reject")
        self.assertIn("--max-file-size", self.answers()[0][1])

    def test_a_line_from_a_peer_without_the_cap_is_ignored(self) -> None:
        plain = FakeLink(peer_id_for("cd" * 32), "eve", caps=("p2pchat-py/1",))
        plain.fp = "cd" * 32
        self.assertTrue(self.node.link_ready(plain))
        self.node.message_received(plain, Message(id="x", type=FILE, sender_id=plain.peer_id,
                                                  metadata=offer_metadata(_offer())))
        self.assertEqual(self.offered(), [])

    def test_old_offers_are_forgotten(self) -> None:
        self.offer_line(_offer())
        self.clock.advance(offers.OFFER_MAX_AGE + 1)
        self.assertEqual(self.files.transfers(), [])

    def test_accept_places_the_file_under_a_name_not_taken(self) -> None:
        os.makedirs(self.down)
        with open(os.path.join(self.down, "a.txt"), "w") as f:
            f.write("mine")
        self.offer_line(_offer())
        done = self.files.accept(None)
        self.assertIsInstance(done, Done)
        [inc] = self.files.incoming
        self.assertEqual(inc.finals, [os.path.join(self.down, "a (1).txt")])
        self.assertEqual(inc.parts, [os.path.join(self.down, "a (1).txt.part")])
        self.assertIn(("accept", ""), self.answers())
        with open(os.path.join(self.down, "a.txt")) as f:
            self.assertEqual(f.read(), "mine")

    def test_a_folder_lands_in_its_own_folder(self) -> None:
        self.offer_line(_offer(name="../pics", folder=True, entries=(
            Entry("../../x.jpg", 1, "0" * 64, "1" * 64), Entry("a/CON", 1, "0" * 64, "1" * 64),
            Entry("a/./CON", 1, "0" * 64, "1" * 64))))
        self.files.accept(None)
        [inc] = self.files.incoming
        top = os.path.join(self.down, "pics")
        self.assertEqual(inc.finals, [os.path.join(top, "x.jpg"), os.path.join(top, "a", "_CON"),
                                      os.path.join(top, "a", "_CON (1)")])

    def test_accept_needs_the_free_space(self) -> None:
        import shutil

        class Usage:
            free = 10

        self.patch(shutil, "disk_usage", lambda path: Usage)
        self.offer_line(_offer())
        refused = self.files.accept(1)
        self.assertIsInstance(refused, Refused)
        self.assertIn("free space", refused.why)  # type: ignore[union-attr]
        self.assertEqual(self.files.incoming[0].state, "offered")

    def test_reject_and_cancel_tell_the_sender(self) -> None:
        self.offer_line(_offer(id="o1"))
        self.offer_line(_offer(id="o2"))
        self.assertIsInstance(self.files.reject(1), Done)
        self.files.accept(2)
        self.assertIsInstance(self.files.cancel(2), Done)
        self.assertEqual([a[0] for a in self.answers()], ["reject", "accept", "cancel"])
        self.assertIsInstance(self.files.accept(1), Refused)  # rejected: can't take it now

    def test_state_survives_a_restart(self) -> None:
        self.offer_line(_offer())
        self.files.accept(1)
        again = Node("mmm", self.clock, peer_id="mmm_1")
        again.files.configure(self.down, self.files.kept.folder and os.path.dirname(
            self.files.kept.folder), 1000, self.clock, None)
        [inc] = again.files.incoming
        self.assertEqual((inc.offer.id, inc.state, inc.fp), ("abc123", "accepted", FP))


class Serving(TestCase):
    """Who may fetch what from our offers."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.node = Node("mmm", self.clock, peer_id="mmm_1")
        self.files = self.node.files
        self.path = self.mktemp()
        data = _file(self.path, 3000)
        hashed = hash_file(self.path, "a.bin")
        offer = Offer("o1", "a.bin", (hashed.entry,), 4000)
        self.out = Outgoing(1, offer, "bob", [self.path], [hashed.mtime], [hashed.hashes],
                            {"bob_1": Receiver("bob", FP)})
        self.files.outgoing.append(self.out)
        self.data = data

    def test_the_receiver_gets_the_hash_list_and_the_range(self) -> None:
        self.assertTrue(self.files.fp_known(FP))
        blob, none = self.files.serve(FP, {"offer": "o1", "entry": 0, "what": "chunks"})  # type: ignore[misc]
        self.assertEqual(blob, self.out.hashes[0])
        f, span = self.files.serve(FP, {"offer": "o1", "entry": 0, "what": "bytes",  # type: ignore[misc]
                                        "from": 1000})
        self.assertEqual(span, (1000, 2000))
        f.close()

    def test_another_key_or_range_or_a_changed_file_is_refused(self) -> None:
        self.assertFalse(self.files.fp_known("cd" * 32))
        asks = [("cd" * 32, {"offer": "o1", "entry": 0, "what": "chunks"}),
                (FP, {"offer": "o2", "entry": 0, "what": "chunks"}),
                (FP, {"offer": "o1", "entry": 1, "what": "chunks"}),
                (FP, {"offer": "o1", "entry": True, "what": "chunks"}),
                (FP, {"offer": "o1", "entry": 0, "what": "bytes", "from": 3001}),
                (FP, {"offer": "o1", "entry": 0, "what": "bytes", "from": -1})]
        for fp, ask in asks:
            self.assertIsInstance(self.files.serve(fp, ask), str, ask)
        with open(self.path, "r+b") as f:
            f.write(b"X")
        os.utime(self.path, (1, 1))
        self.assertIn("changed", str(self.files.serve(FP, {"offer": "o1", "entry": 0,
                                                           "what": "bytes", "from": 0})))

    def test_a_connection_gone_mid_file_leaves_the_receiver_waiting(self) -> None:
        f, span = self.files.serve(FP, {"offer": "o1", "entry": 0, "what": "bytes",  # type: ignore[misc]
                                        "from": 0})
        f.close()
        self.assertEqual(self.out.state, "sending")
        self.files.unserved(FP, "o1")
        self.assertEqual(self.out.state, "accepted")

    def test_a_cancel_cuts_the_connection_sending_it(self) -> None:
        class Sending:
            fp, sending = FP, True
            cuts: list[str] = []

            def cut(self, why: str) -> None:
                self.cuts.append(why)

        other = Sending()
        other.fp = "cd" * 32
        mine = Sending()
        mine.cuts = []
        other.cuts = []
        self.files.serving.update({mine, other})  # type: ignore[arg-type]
        self.files.cancel(1)
        self.assertEqual((mine.cuts, other.cuts), (["cancelled"], []))

    def test_a_rejected_or_cancelled_offer_is_not_served(self) -> None:
        self.out.receivers["bob_1"].state = "rejected"
        self.assertIsInstance(self.files.serve(FP, {"offer": "o1", "entry": 0,
                                                    "what": "chunks"}), str)
        self.out.receivers["bob_1"].state = "offered"
        self.out.cancelled = True
        self.assertIsInstance(self.files.serve(FP, {"offer": "o1", "entry": 0,
                                                    "what": "chunks"}), str)


class _Owner:
    def __init__(self) -> None:
        self.stops: list[tuple[str, bool]] = []
        self.done = 0

    def progress(self, inc, n) -> None:
        pass

    def received(self, inc) -> None:
        self.done += 1

    def stopped(self, inc, why, bad) -> None:
        self.stops.append((why, bad))


class _Link:
    """What a Receive asks of its connection, recorded; the test answers."""

    def __init__(self) -> None:
        self.asked: list = []
        self.cuts: list[str] = []
        self.transport = StringTransport()

    def ask(self, request, expect, sink, end, refused) -> None:
        self.asked.append((request, expect, sink, end, refused))

    def cut(self, why: str) -> None:
        self.cuts.append(why)


def _view(**kw) -> TransferView:
    base = dict(number=3, incoming=True, peer="bob", name="a.bin", size=1000, done=0,
                sha256="f" * 64, state="offered")
    base.update(kw)
    return TransferView(**base)  # type: ignore[arg-type]


class Faces(TestCase):
    def test_the_line_face_prints_progress_every_ten_percent_at_most(self) -> None:
        steps = Steps()
        shown = [steps.show(_view(done=d, state="receiving"), "progress")
                 for d in (10, 50, 99, 100, 150, 310, 320, 900)]
        self.assertEqual(shown, [True, False, False, True, False, True, False, True])
        self.assertTrue(steps.show(_view(done=1000, state="done"), "done"))

    def test_files_table_and_status(self) -> None:
        rows = [_view(), _view(number=4, incoming=False, state="sending", done=500, rate=100.0)]
        table = "\n".join(files_table(rows))
        self.assertIn("[3] in  from bob", table)
        self.assertIn("50%", table)
        self.assertIn("↑a.bin █████░░░░░ 50% 100 B/s", status_text(rows))
        just = [_view(state="receiving", done=220, rate=0.0)]  # no rate measured yet
        self.assertEqual(status_text(just), "↓a.bin ██░░░░░░░░ 22%")

    def test_commands_reach_the_files(self) -> None:
        chat = FakeChat()
        face = RecordingFace(chat)
        face.handle_input("/send bob /tmp/some file.txt")
        face.handle_input("/accept")
        face.handle_input("/accept 4")
        face.handle_input("/reject 2")
        face.handle_input("/cancel 7")
        face.handle_input("/cancel x")
        face.handle_input("/files")
        self.assertEqual([c for c in chat.calls if c[0] in ("send", "accept", "reject",
                                                              "cancel")],
                         [("send", "bob", "/tmp/some file.txt"), ("accept", None),
                          ("accept", 4), ("reject", 2), ("cancel", 7)])


class Console(TestCase):
    def test_a_running_transfer_is_in_the_status_line_not_the_scrollback(self) -> None:
        from tests.test_console import ChatHarness

        h = ChatHarness()
        view = _view(state="receiving", done=420, rate=2048.0)
        h.chat.files.rows = [view]
        before = len(h.face.messages.rows_text())
        for what in ("started", "progress", "progress"):
            h.chat.emit(events.TransferChanged(h.clock.seconds(), view, what))
        self.assertEqual(len(h.face.messages.rows_text()), before)
        status = h.lines()[-2]
        self.assertIn("↓a.bin ████░░░░░░ 42% 2.0 KB/s 0:00", status)
        h.chat.emit(events.TransferChanged(h.clock.seconds(), _view(state="done", done=1000,
                                                                    path="/d/a.bin"), "done"))
        self.assertIn("saved as /d/a.bin", h.face.messages.rows_text()[-1])


class Irc(TestCase):
    def test_offers_are_notices_and_the_service_takes_the_commands(self) -> None:
        from tests.test_irc import IrcTestCase

        case = IrcTestCase("setUp")
        case.setUp()
        self.addCleanup(case.tearDown)
        client = case.client()
        client.lines()
        view = _view()
        case.node.emit(events.TransferChanged(1.0, view, "offered"))
        case.node.emit(events.TransferChanged(1.0, _view(state="receiving", done=500),
                                              "progress"))
        [notice] = client.lines()
        self.assertIn("bob offers a.bin (1000 B, sha256 ffffffffffff): /msg *p2pchat accept 3",
                      notice)
        client.send("PRIVMSG *p2pchat :accept 3", "PRIVMSG *p2pchat :files", "FILES")
        self.assertEqual(client.lines(), [
            ":*p2pchat!p2pchat@p2pchat PRIVMSG alice :no offer [3] to you; /files lists them",
            ":*p2pchat!p2pchat@p2pchat PRIVMSG alice :no file transfers (/send NICK PATH "
            "offers one)",
            ":p2pchat NOTICE alice :no file transfers (/send NICK PATH offers one)"])


class Folders(TestCase):
    def test_a_folder_of_too_many_files_is_refused(self) -> None:
        from p2pchat.files.ours import _listed

        top = self.mktemp()
        os.makedirs(os.path.join(top, "sub"))
        for i in range(offers.MAX_FOLDER_FILES + 1):
            with open(os.path.join(top, "sub", f"{i}.txt"), "w") as f:
                f.write("x")
        found = _listed(top)
        self.assertIsInstance(found, Refused)
        os.unlink(os.path.join(top, "sub", "0.txt"))
        os.symlink("/etc/passwd", os.path.join(top, "link"))
        name, folder, files = _listed(top)  # type: ignore[misc]
        self.assertEqual((folder, len(files)), (True, offers.MAX_FOLDER_FILES))
        self.assertNotIn("link", [rel for _, rel in files])


class SendTargets(TestCase):
    """Whom /send can offer to, and what it says when it can't."""

    def setUp(self) -> None:
        from p2pchat.identity import Identity

        self.clock = Clock()
        self.node = Node("mmm", self.clock, identity=Identity.generate())
        self.node.files.configure(self.mktemp(), None, 1000, self.clock, None)
        self.node.files.port = 4000
        self.path = self.mktemp()
        with open(self.path, "w") as f:
            f.write("hello")

    def answer(self, target: str, path: str = "") -> str:
        got: list = []
        self.node.files.send(target, path or self.path).addCallback(got.append)
        [outcome] = got
        return outcome.why if isinstance(outcome, Refused) else "DONE " + outcome.text

    def link(self, nick: str, caps: tuple[str, ...], address: str = "127.0.0.1:5555"):
        fp = hashlib.sha256(nick.encode()).hexdigest()
        link = FakeLink(peer_id_for(fp), nick, caps=("p2pchat-py/1", "rooms/1") + caps)
        link.fp, link.address = fp, address
        self.assertTrue(self.node.link_ready(link))
        return link

    def test_who_can_take_files(self) -> None:
        self.link("base", ())
        self.link("far", (CAP_FILES,), address="abcdefghij.onion:80")
        self.assertIn("no peer called nobody", self.answer("nobody"))
        self.assertIn("base can't take files", self.answer("base"))
        self.assertIn("far is not on a direct link: it can't be reached for files yet",
                      self.answer("far"))
        self.assertIn("you are not in #ops", self.answer("#ops"))
        self.assertIn("nobody linked in #general can take files", self.answer("#general"))
        self.link("bob", (CAP_FILES,))
        self.assertIn("no file or folder", self.answer("bob", "/nonexistent/x"))
        self.node.files.max_size = 4
        self.assertIn("over the limit of 4 B (--max-file-size)", self.answer("bob"))

    def test_an_offer_goes_to_a_peer_that_takes_files(self) -> None:
        bob = self.link("bob", (CAP_FILES,))
        self.node.files.in_thread = lambda f, *a: succeed(f(*a))
        self.assertIn("DONE offered", self.answer("bob"))
        [line] = [m for m in bob.sent if m.type == FILE]
        self.assertEqual(line.metadata["op"], "offer")
        self.assertEqual(line.metadata["entries"][0][1], 5)
        self.assertEqual(line.metadata["port"], 4000)

    def test_a_room_offer_goes_to_each_member_that_takes_files(self) -> None:
        bob, carol = self.link("bob", (CAP_FILES,)), self.link("carol", (CAP_FILES,))
        base = self.link("base", ())
        self.node.files.in_thread = lambda f, *a: succeed(f(*a))
        for link in (bob, carol, base):
            self.node.message_received(link, Message(
                id=f"r{link.username}", type="rooms", sender_id=link.peer_id,
                metadata={"rooms": []}))
        self.assertIn("DONE offered", self.answer("#general"))
        for link in (bob, carol):
            [line] = [m for m in link.sent if m.type == FILE]
            self.assertEqual(line.metadata["room"], "general")
        self.assertEqual([m for m in base.sent if m.type == FILE], [])
        [out] = self.node.files.outgoing
        self.assertEqual(sorted(r.nick for r in out.receivers.values()), ["bob", "carol"])
        self.assertEqual(out.label, "#general")


class Answers(NodeSetup):
    """What the other side's answers do."""

    def test_a_cancel_from_the_offerer_stops_the_transfer_and_drops_the_part(self) -> None:
        self.offer_line(_offer())
        self.files.accept(1)
        [inc] = self.files.incoming
        with open(inc.parts[0], "wb") as f:
            f.write(b"half")
        self.node.message_received(self.link, Message(
            id="c1", type=FILE, sender_id=BOB, metadata={"op": "cancel", "offer": "abc123"}))
        self.assertEqual((inc.state, inc.why), ("cancelled", "bob cancelled it"))
        self.assertFalse(os.path.exists(inc.parts[0]))

    def test_another_peer_cant_cancel_an_offer_to_us(self) -> None:
        eve = FakeLink(peer_id_for("ee" * 32), "eve", caps=("p2pchat-py/1", CAP_FILES))
        eve.fp = "ee" * 32
        self.assertTrue(self.node.link_ready(eve))
        self.offer_line(_offer())
        self.files.accept(1)
        self.node.message_received(eve, Message(
            id="c2", type=FILE, sender_id=eve.peer_id,
            metadata={"op": "cancel", "offer": "abc123"}))
        self.assertEqual(self.files.incoming[0].state, "accepted")

    def test_answers_to_our_offer_change_its_receivers_state(self) -> None:
        offer = _offer(id="ours1")
        out = Outgoing(7, offer, "bob", ["/nonexistent"], [0.0], [b""],
                       {BOB: Receiver("bob", FP)})
        self.files.outgoing.append(out)
        for op, state in (("accept", "accepted"), ("failed", "failed"), ("done", "done"),
                          ("reject", "done")):  # done is final: a later reject changes nothing
            self.node.message_received(self.link, Message(
                id=f"a{op}", type=FILE, sender_id=BOB,
                metadata={"op": op, "offer": "ours1", "why": "\x1b[31mred"}))
            self.assertEqual(out.receivers[BOB].state, state, op)
        self.assertEqual(out.receivers[BOB].sent, offer.size)
        self.assertNotIn("\x1b", out.receivers[BOB].why)

    def test_each_answer_to_a_room_offer_says_which_member_gave_it(self) -> None:
        out = Outgoing(8, _offer(id="room1"), "#general", ["/nonexistent"], [0.0], [b""],
                       {BOB: Receiver("bob", FP), "carol_1": Receiver("carol", "cc" * 32)})
        self.files.outgoing.append(out)
        self.node.message_received(self.link, Message(
            id="arej", type=FILE, sender_id=BOB,
            metadata={"op": "reject", "offer": "room1", "why": "no room on my disk"}))
        [view] = [e.view for e in self.events
                  if isinstance(e, events.TransferChanged) and e.what == "rejected"]
        self.assertEqual(event_text(view, "rejected"),
                         f"file [8] {out.offer.name} to bob in #general: rejected: "
                         "no room on my disk")


class Keeping(TestCase):
    def test_an_older_state_is_never_written_over_a_newer(self) -> None:
        from p2pchat.files.kept import KEPT_NAME, Kept

        data_dir = self.mktemp()
        kept = Kept(data_dir)
        kept.save({"next": 2, "in": [], "out": []}, 2)
        kept.save({"next": 1, "in": [], "out": []}, 1)  # a thread's write, come late
        with open(os.path.join(data_dir, "files", KEPT_NAME)) as f:
            self.assertEqual(json.load(f)["next"], 2)
        self.assertEqual(kept.load()[2], 2)

    def test_saves_go_to_the_thread_in_order(self) -> None:
        clock = Clock()
        node = Node("mmm", clock, peer_id="mmm_1")
        data_dir = self.mktemp()
        node.files.configure(self.mktemp(), data_dir, 1000, clock, None)
        ran: list = []
        node.files.in_thread = lambda f, *a: (ran.append(a[1]), succeed(f(*a)))[1]
        node.files.save_in_thread = True
        node.files.next_number = 5
        node.files.save()
        node.files.next_number = 6
        node.files.save()
        self.assertEqual(ran, [1, 2])
        self.assertEqual(node.files.kept.load()[2], 6)
