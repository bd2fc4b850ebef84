"""The file transfers are made at their first use (files/later.py): an idle peer holds
neither their code nor their port; an offer from a link, a verb, or transfers kept from an
earlier run make them, and the file port opens with them."""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from p2pchat.files.later import FilesLater, FilesLaterService
from p2pchat.files.offers import CAP_FILES, FILE, offer_metadata
from p2pchat.node import Node
from p2pchat.wire import CAP_CATCHUP, SYNC, Message
from tests.fakes import FakeLink
from tests.test_files import BOB, FP, _offer
from tests.support import ROOT, child_env



class Reactor:
    """What the file port asks of a reactor: to read its socket."""

    def __init__(self) -> None:
        self.readers: list[object] = []

    def addReader(self, reader: object) -> None:
        self.readers.append(reader)

    def removeReader(self, reader: object) -> None:
        self.readers.remove(reader)


class Later(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(10_000)
        self.node = Node("mmm", self.clock, peer_id="mmm_1")
        self.files = self.node.files
        self.data = self.mktemp()
        os.makedirs(self.data)

    def configure(self) -> None:
        self.files.configure(self.mktemp(), self.data, 1000, self.clock, "127.0.0.1")

    def test_not_made_at_start_nor_at_a_link(self) -> None:
        self.assertIsInstance(self.files, FilesLater)
        self.configure()
        link = FakeLink(BOB, "bob", caps=("p2pchat-py/1", CAP_FILES))
        link.fp = FP
        self.assertTrue(self.node.link_ready(link))
        self.assertEqual(self.files.transfers(), [])
        self.assertFalse(self.files.made())

    def test_an_offer_from_a_link_makes_them(self) -> None:
        self.configure()
        link = FakeLink(BOB, "bob", caps=("p2pchat-py/1", CAP_FILES))
        link.fp = FP
        self.assertTrue(self.node.link_ready(link))
        offer = _offer(made=self.clock.seconds())
        self.node.message_received(link, Message(id="o1", type=FILE, sender_id=BOB,
                                                 username="bob",
                                                 metadata=offer_metadata(offer)))
        self.assertTrue(self.files.made())
        self.assertEqual([v.name for v in self.files.transfers()], [offer.name])

    def test_transfers_kept_from_an_earlier_run_are_made_at_start(self) -> None:
        os.makedirs(os.path.join(self.data, "files"))
        with open(os.path.join(self.data, "files", "transfers.json"), "w") as f:
            f.write('{"incoming": [], "outgoing": [], "next": 3}')
        self.configure()
        self.assertTrue(self.files.made())

    def test_the_file_port_opens_with_them(self) -> None:
        reactor = Reactor()
        self.files.configure(self.mktemp(), self.data, 1000, reactor, "127.0.0.1")
        service = FilesLaterService(self.files, reactor, "127.0.0.1")
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(reactor.readers, [])
        self.assertEqual(self.files.accept(None).__class__.__name__, "Refused")  # a verb
        self.assertEqual(len(reactor.readers), 1)
        self.assertGreater(self.files.port, 0)
        service.stopService()
        self.assertEqual(reactor.readers, [])


def test_an_idle_peer_imports_no_transfer_code() -> None:
    """The assembly as twistd makes it: no transfer module, nor their port, is imported."""
    code = ("import sys\nimport p2pchat.service, p2pchat.lines\n"
            "print(sorted(n for n in sys.modules if n.startswith('p2pchat.files.')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=child_env(), cwd=str(ROOT), timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["['p2pchat.files.describe',", "'p2pchat.files.later',",
                                   "'p2pchat.files.terms']"], done.stdout  # not even offers.py


class Sealing(TestCase):
    def test_made_with_its_store_at_the_first_link(self) -> None:
        from p2pchat.identity import Identity
        from p2pchat.sealing import Sealing as Real

        clock = Clock()
        clock.advance(10_000)
        node = Node("mmm", clock, identity=Identity.generate())
        path = os.path.join(self.mktemp(), "sealed.sqlite3")
        os.makedirs(os.path.dirname(path))
        node.sealing.open_store(path)
        self.assertFalse(node.sealing.made())
        self.assertFalse(os.path.exists(path))  # not even opened yet
        link = FakeLink(BOB, "bob", caps=("p2pchat-py/1",))
        link.fp = FP
        self.assertTrue(node.link_ready(link))
        self.assertTrue(node.sealing.made())
        self.assertIsInstance(node.sealing.real, Real)
        self.assertTrue(os.path.exists(path))
        self.assertEqual(len(node.sealing.held), 0)  # the real one's, read through


class CatchUp(TestCase):
    """The catch-up (syncing.py) is made at the first link: a node alone does without it,
    and leaving before any link has nothing to stop."""

    def test_made_at_the_first_link_and_it_works(self) -> None:
        from p2pchat.identity import Identity
        from p2pchat.syncing import CatchUp as Real

        clock = Clock()
        clock.advance(10_000)
        node = Node("mmm", clock, identity=Identity.generate())
        node.say_goodbye()  # leaving alone: nothing of the catch-up is made for it
        self.assertFalse(node.catchup.made())  # type: ignore[union-attr]
        node.leaving = False
        link = FakeLink(BOB, "bob", caps=("p2pchat-py/1", CAP_CATCHUP))
        link.fp = FP
        link.catchup = True  # type: ignore[attr-defined]  # as a PeerSession says it
        self.assertTrue(node.link_ready(link))
        self.assertIsInstance(node.catchup, Real)  # the stand-in stepped aside
        self.assertIn(SYNC, [m.type for m in link.sent])  # told how far we have its lines
