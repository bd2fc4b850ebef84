"""Static peers, invites and contacts without a network (issue 18): invite parsing against
hostile strings, static peer addresses, the contacts file and its limits, the invite gate of
the onion listener, the handshake of onion links (TLS from the first byte), endpoint
building, the keeper's verbs and redials, and that beacons never carry the onion address."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat

import pytest
from hypothesis import given, settings, strategies as st
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from p2pchat import contacts as contacts_mod
from p2pchat import handshake as hs
from p2pchat.contacts import (
    INVITE_MAX_AGE,
    MAX_CONTACTS,
    MAX_INVITES,
    ONION,
    PEER,
    Book,
    Contact,
    parse_peer_address,
)
from p2pchat.handshake import Handshake, Stage
from p2pchat.identity import Identity, peer_id_for
from p2pchat.invite import MAX_INVITE_CHARS, Invite, new_secret, parse_invite
from p2pchat.keeper import LinkKeeper
from p2pchat.handshake import INVITE_KEY
from p2pchat.dial import DialState
from p2pchat.node import Node
from p2pchat.onion import Onion, _NoTor, _OnionDial, read_torrc
from p2pchat.reach import TCPPeerEndpoint
from p2pchat.wire import CAP_OURS, CAP_TLS, JOIN, STARTTLS, Message, encode_beacon

FP = "ab" * 32
OTHER_FP = "cd" * 32


def onion_address(seed: bytes = b"k") -> str:
    """A valid v3 onion address (56 characters, no .onion) for a made-up key."""
    key = hashlib.sha256(seed).digest()
    checksum = hashlib.sha3_256(b".onion checksum" + key + b"\x03").digest()[:2]
    return base64.b32encode(key + checksum + b"\x03").decode().lower()


def token(**change: object) -> str:
    fields = {"address": onion_address(), "port": 7467, "fp": FP, "secret": new_secret()}
    fields.update(change)
    return Invite(**fields).token()  # type: ignore[arg-type]


# --- invites ------------------------------------------------------------------------------


class InviteParsing(TestCase):
    def test_an_invite_reads_back_as_written(self) -> None:
        invite = Invite(onion_address(), 7467, FP, new_secret())
        self.assertEqual(parse_invite(invite.token()), invite)
        self.assertEqual(parse_invite("  " + invite.token().upper() + "\n"), invite)
        self.assertTrue(invite.token().startswith("p2pchat:1/"))

    def test_hostile_and_broken_invites_are_refused_with_a_reason(self) -> None:
        good = token()
        address = onion_address()
        flipped = ("b" if address[5] != "b" else "c").join([address[:5], address[6:]])
        cases = {
            "x" * (MAX_INVITE_CHARS + 1): "characters",
            "http://example.com/": "starts with p2pchat:",
            good.replace("p2pchat:1/", "p2pchat:2/"): "newer p2pchat",
            good.replace("p2pchat:1/", "p2pchat:x/"): "not a number",
            good.replace("p2pchat:1/", "p2pchat:\u0661/"): "not a number",
            good + "/extra": "ADDRESS.onion:PORT/FINGERPRINT/SECRET",
            good.replace(".onion:7467", ".onion"): "not ADDRESS.onion:PORT",
            good.replace(".onion:7467", ".com:7467"): "not ADDRESS.onion:PORT",
            good.replace(address, flipped): "checksum",
            good.replace(address, address[:-1]): "not a v3 onion address",
            good.replace(":7467/", ":0/"): "from 1 to 65535",
            good.replace(":7467/", ":70000/"): "from 1 to 65535",
            good.replace(":7467/", ":+80/"): "not a number",
            good.replace(FP, FP[:-2]): "64 hex",
            good.replace(FP, "zz" * 32): "64 hex",
            good[:-1] + "!": "secret",
            good[:-1]: "secret",
        }
        for text, why in cases.items():
            with self.assertRaises(ValueError, msg=text) as caught:
                parse_invite(text)
            self.assertIn(why, str(caught.exception), text)

    def test_a_refusal_never_echoes_control_characters(self) -> None:
        evil = token().replace(".onion:7467", "\x1b[2J\n\r.onion:7467")
        with self.assertRaises(ValueError) as caught:
            parse_invite(evil)
        self.assertFalse(any(ord(ch) < 32 or ch == "\x7f" for ch in str(caught.exception)))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400) | st.text(alphabet="p2pchat:/1.onionabcdef234567", max_size=300))
def test_any_text_is_an_invite_or_a_short_printable_refusal(text: str) -> None:
    try:
        parse_invite(text)
    except ValueError as e:
        why = str(e)
        assert len(why) < 300 and why.isprintable()


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=120))
def test_any_invite_prefix_text_is_parsed_or_refused(tail: str) -> None:
    try:
        parse_invite("p2pchat:1/" + tail)
    except ValueError as e:
        assert str(e).isprintable()


# --- static peer addresses -------------------------------------------------------------


class PeerAddresses(TestCase):
    def test_addresses_and_names(self) -> None:
        self.assertEqual(parse_peer_address("10.8.0.2:8080"), ("10.8.0.2", 8080))
        self.assertEqual(parse_peer_address("[fd00::1]:9000"), ("fd00::1", 9000))
        self.assertEqual(parse_peer_address("Peer-2.VPN.example:80"), ("peer-2.vpn.example", 80))

    def test_bad_addresses_say_why(self) -> None:
        for text, why in {"10.8.0.2": "HOST:PORT", ":80": "HOST:PORT",
                          "10.8.0.2:0": "from 1", "host:x": "must be a number",
                          "a b:80": "not an IPv4 address or a host name",
                          "-a:80": "host name", "[::1:80": "[IPv6]:PORT",
                          "[zz]:80": "not an IPv6", "x" * 300 + ":80": "host name",
                          "abc.onion:80": "reached by an invite",
                          "h\u00e9:80": "host name"}.items():
            with self.assertRaises(ValueError, msg=text) as caught:
                parse_peer_address(text)
            self.assertIn(why, str(caught.exception), text)


# --- the contacts file ---------------------------------------------------------------------


class ContactsFile(TestCase):
    def path(self) -> str:
        return os.path.join(self.mktemp(), contacts_mod.CONTACTS_NAME)

    def test_kept_across_loads_privately(self) -> None:
        path = self.path()
        os.makedirs(os.path.dirname(path))
        book = Book(path)
        self.assertIsNone(book.add(Contact(PEER, "10.0.0.2", 8080)))
        book.give("s" * 32, 100.0)
        again = Book(path)
        self.assertEqual(again.contacts, [Contact(PEER, "10.0.0.2", 8080)])
        self.assertEqual(again.given[0].secret, "s" * 32)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)

    def test_a_broken_file_is_read_as_far_as_it_makes_sense(self) -> None:
        path = self.path()
        os.makedirs(os.path.dirname(path))
        with open(path, "w") as f:
            json.dump({"contacts": [{"kind": PEER, "host": "h", "port": "80"}, 7,
                                    {"kind": PEER, "host": "h", "port": 80, "junk": 1}]}, f)
        self.assertEqual(Book(path).contacts, [Contact(PEER, "h", 80)])
        with open(path, "w") as f:
            f.write("{not json")
        self.assertEqual(Book(path).contacts, [])

    def test_contacts_are_bounded(self) -> None:
        book = Book(None)
        for i in range(MAX_CONTACTS):
            self.assertIsNone(book.add(Contact(PEER, f"10.0.{i // 250}.{i % 250}", 80)))
        self.assertIn("/disconnect", book.add(Contact(PEER, "10.9.9.9", 80)) or "")
        # the same address again replaces, even when full
        self.assertIsNone(book.add(Contact(PEER, "10.0.0.0", 80, nick="new")))
        self.assertEqual(book.find_contact("new"), Contact(PEER, "10.0.0.0", 80, nick="new"))

    def test_an_invite_lets_in_its_first_key_only(self) -> None:
        book = Book(None)
        secret = book.give(new_secret(), 1000.0).secret
        self.assertIn("no invite", book.admission("", FP, 1001.0) or "")
        self.assertIn("no invite", book.admission(new_secret(), FP, 1001.0) or "")
        self.assertIsNone(book.admission(secret, FP, 1001.0))
        self.assertIn("another peer", book.admission(secret, OTHER_FP, 1002.0) or "")
        self.assertIsNone(book.admission(secret, FP, 1001.0 + 10 * INVITE_MAX_AGE))

    def test_an_unused_invite_expires(self) -> None:
        book = Book(None)
        secret = book.give(new_secret(), 1000.0).secret
        self.assertIn("too old", book.admission(secret, FP, 1001.0 + INVITE_MAX_AGE) or "")

    def test_unused_invites_are_bounded_oldest_first(self) -> None:
        book = Book(None)
        first = book.give(new_secret(), 0.0).secret
        used = book.give(new_secret(), 1.0).secret
        book.admission(used, FP, 2.0)
        for i in range(MAX_INVITES):
            book.give(new_secret(), 3.0 + i)
        self.assertEqual(sum(1 for g in book.given if not g.fp), MAX_INVITES)
        self.assertIn("no invite", book.admission(first, OTHER_FP, 50.0) or "")
        self.assertIsNone(book.admission(used, FP, 50.0))


# --- the handshake of onion links ------------------------------------------------------


def msg(type: str = JOIN, sender: str = "zed_1", fp: str = FP,
        caps: tuple[str, ...] = (CAP_OURS, CAP_TLS)) -> Message:
    return Message(id="m1", type=type, sender_id=sender, username="zed", fp=fp, caps=caps)


class OnionHandshake(TestCase):
    def test_listener_takes_a_join_whose_key_tls_proved(self) -> None:
        h = Handshake(outgoing=False, have_key=True, tls_first=True)
        self.assertEqual(h.connected(), [hs.ArmTimer(h.timeout_after)])
        self.assertEqual(h.tls_done(FP), [])  # before the join: kept
        acts = h.receive(msg())
        self.assertEqual(acts[-1], hs.Offer("zed_1", "zed", FP))
        self.assertEqual(h.offered(None), [hs.SendStartTLS(), hs.Proven(FP), hs.GoLive()])

    def test_listener_refuses_a_join_claiming_another_key(self) -> None:
        h = Handshake(outgoing=False, have_key=True, tls_first=True)
        h.connected()
        h.tls_done(OTHER_FP)
        h.receive(msg())
        acts = h.offered(None)
        self.assertIn(hs.Drop(abort=True), acts)
        self.assertEqual(h.wrong_fp, OTHER_FP)
        self.assertIs(h.stage, Stage.REFUSED)

    def test_listener_refuses_a_join_without_a_key(self) -> None:
        h = Handshake(outgoing=False, have_key=True, tls_first=True)
        h.tls_done(FP)
        h.receive(msg(fp="", caps=(CAP_OURS,)))
        self.assertIn(hs.Drop(abort=True), h.offered(None))

    def test_the_listener_gate_refuses_before_the_node_is_asked(self) -> None:
        asked: list[tuple[str, str]] = []

        def admit(join: Message, fp: str) -> str | None:
            asked.append((join.sender_id, fp))
            return None if join.sender_id == "zed_1" else "no invite of ours"

        h = Handshake(outgoing=False, have_key=True, tls_first=True, admit=admit)
        h.tls_done(FP)
        self.assertEqual(h.receive(msg(sender="eve_2"))[-1], hs.Refuse("no invite of ours"))
        self.assertIs(h.stage, Stage.REFUSED)
        h = Handshake(outgoing=False, have_key=True, tls_first=True, admit=admit)
        h.tls_done(FP)
        self.assertEqual(h.receive(msg())[-1], hs.Offer("zed_1", "zed", FP))
        self.assertEqual(asked, [("eve_2", FP), ("zed_1", FP)])

    def test_dialer_sends_its_join_only_to_the_expected_key(self) -> None:
        h = Handshake(outgoing=True, have_key=True, peer_id="zed_1", caps=(CAP_TLS,),
                      expect_fp=FP, tls_first=True, learn=True)
        self.assertEqual(h.connected(), [hs.ArmTimer(h.timeout_after)])
        self.assertEqual(h.tls_done(FP), [hs.SendJoin()])
        acts = h.receive(msg(type=STARTTLS))
        self.assertEqual(acts, [hs.Learn("zed_1", "zed", (CAP_OURS, CAP_TLS)), hs.Proven(FP),
                                hs.GoLive()])

    def test_dialer_refuses_another_key_before_saying_anything(self) -> None:
        h = Handshake(outgoing=True, have_key=True, peer_id="zed_1", caps=(CAP_TLS,),
                      expect_fp=FP, tls_first=True)
        h.connected()
        acts = h.tls_done(OTHER_FP)
        self.assertNotIn(hs.SendJoin(), acts)
        self.assertIn(hs.Drop(abort=True), acts)
        self.assertEqual(h.wrong_fp, OTHER_FP)

    def test_dialer_refuses_a_starttls_from_another_peer(self) -> None:
        h = Handshake(outgoing=True, have_key=True, peer_id="zed_1", caps=(CAP_TLS,),
                      expect_fp=FP, tls_first=True, learn=True)
        h.tls_done(FP)
        self.assertIn(hs.Drop(abort=True), h.receive(msg(type=STARTTLS, sender="eve_2")))

    def test_a_static_peer_dialer_learns_who_answered(self) -> None:
        h = Handshake(outgoing=True, have_key=True, caps=(CAP_TLS,))
        self.assertEqual(h.connected(), [hs.SendJoin(), hs.ArmTimer(h.timeout_after)])
        acts = h.receive(msg(type=STARTTLS))
        self.assertEqual(acts, [hs.Learn("zed_1", "zed", (CAP_OURS, CAP_TLS)),
                                hs.StartTLS(server=False)])
        self.assertEqual(h.tls_done(FP), [hs.Proven(FP), hs.GoLive()])


# --- endpoints, the keeper -------------------------------------------------------------


class FakeTor:
    def __init__(self) -> None:
        self.streams: list[tuple[str, int, object]] = []
        self.signals: list[str] = []
        self.protocol = self

    def stream_via(self, host: str, port: int, tls: object = False) -> object:
        self.streams.append((host, port, tls))
        return _NoTor("fake")

    def signal(self, name: str) -> None:
        self.signals.append(name)


class Keeping(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.identity = Identity.load_or_create(self.mktemp())
        self.node = Node("alice", self.clock, identity=self.identity)
        self.onion = Onion(self.clock, self.mktemp(), self.identity, None, lambda t, e: None)  # type: ignore[arg-type]
        self.keeper = LinkKeeper(self.node, self.clock, Book(None), "10.0.0.1", self.onion)
        self.node.reach = self.keeper

    def test_endpoints_for_static_peers_and_onions(self) -> None:
        ep = self.keeper._endpoint(self.keeper._info(Contact(PEER, "10.0.0.2", 8080)))
        self.assertIsInstance(ep, TCPPeerEndpoint)
        assert isinstance(ep, TCPPeerEndpoint)
        self.assertEqual((ep.host, ep.port, ep.bind_host), ("10.0.0.2", 8080, "10.0.0.1"))
        onion = Contact(ONION, onion_address() + ".onion", 7467, fp=FP)
        ep = self.keeper._endpoint(self.keeper._info(onion))
        self.assertIsInstance(ep, _NoTor)  # Tor not up: the dial fails at once
        failure = self.failureResultOf(ep.connect(None))
        self.assertIn("Tor is not up", failure.getErrorMessage())
        tor = self.onion.tor = FakeTor()
        ep = self.keeper._endpoint(self.keeper._info(onion))
        self.assertIsInstance(ep, _OnionDial)
        self.assertEqual(tor.streams[0][:2], (onion.host, 7467))
        self.failureResultOf(ep.connect(None))
        self.assertEqual(tor.signals, ["NEWNYM"])  # a failed onion dial refreshes Tor

    def test_tor_going_away_is_told_and_dials_fail_at_once(self) -> None:
        told: list[tuple[str, bool]] = []
        self.onion.notice = lambda text, error: told.append((text, error))
        self.onion.tor = FakeTor()
        self.onion._gone(None)
        self.assertEqual(told, [("Tor went away: no onion service nor onion links until "
                                 "p2pchat restarts", True)])
        self.assertIn("lost", "\n".join(self.keeper.contacts()))
        self.assertIsInstance(self.onion.endpoint("x.onion", 1), _NoTor)
        self.onion._stopping = True
        self.onion._gone(None)  # at our own stop: nothing told
        self.assertEqual(len(told), 1)

    def test_without_tor_an_onion_dial_fails_and_invites_are_refused(self) -> None:
        keeper = LinkKeeper(self.node, self.clock, Book(None))
        ep = keeper._endpoint(keeper._info(Contact(ONION, "x.onion", 1)))
        self.assertIn("--tor", self.failureResultOf(ep.connect(None)).getErrorMessage())
        self.assertIn("needs Tor", keeper.connect(token()).why)  # type: ignore[union-attr]
        self.assertIn("needs Tor", keeper.invite().why)  # type: ignore[union-attr]

    def test_connect_keeps_and_dials_and_disconnect_forgets(self) -> None:
        dials: list[str] = []
        self.keeper.dialer._endpoint = lambda info: (dials.append(info.host), _NoTor("x"))[1]
        self.keeper.start()
        done = self.keeper.connect("10.0.0.2:8080")
        self.assertIn("kept", done.text)  # type: ignore[union-attr]
        self.assertEqual(dials, ["10.0.0.2"])
        self.assertIs(self.keeper.dialer.state("peer:10.0.0.2:8080"), DialState.WAITING)
        self.assertIn("10.0.0.2:8080 ?: waiting", "\n".join(self.keeper.contacts()))
        self.clock.advance(1.0)  # the discovered peers' backoff: a quick first retry
        self.assertEqual(dials, ["10.0.0.2", "10.0.0.2"])
        self.assertIn("must be a number", self.keeper.connect("10.0.0.2:x").why)  # type: ignore[union-attr]
        self.assertIn("no static peer", self.keeper.disconnect("nobody").why)  # type: ignore[union-attr]
        self.assertIn("forgot", self.keeper.disconnect("10.0.0.2:8080").text)  # type: ignore[union-attr]
        self.assertIsNone(self.keeper.dialer.state("peer:10.0.0.2:8080"))
        self.clock.advance(60)
        self.assertEqual(len(dials), 2)

    def test_an_invite_is_made_once_tor_is_ready_and_is_our_own(self) -> None:
        self.assertIn("not ready", self.keeper.invite().why)  # type: ignore[union-attr]
        self.onion.host = onion_address() + ".onion"
        text = self.keeper.invite().text  # type: ignore[union-attr]
        invite = parse_invite(text.rpartition(" ")[2])
        self.assertEqual((invite.fp, invite.host), (self.identity.fingerprint, self.onion.host))
        self.assertEqual([g.secret for g in self.keeper.book.given], [invite.secret])
        self.assertIn("your own invite",
                      self.keeper.connect(invite.token()).why)  # type: ignore[union-attr]

    def test_connect_invite_keeps_the_key_and_id(self) -> None:
        self.keeper.dialer._endpoint = lambda info: _NoTor("x")
        text = token()
        self.assertIn("is checked", self.keeper.connect(text).text)  # type: ignore[union-attr]
        c = self.keeper.book.contacts[0]
        self.assertEqual((c.kind, c.fp, c.peer_id, c.secret),
                         (ONION, FP, peer_id_for(FP), parse_invite(text).secret))

    def test_the_onion_gate(self) -> None:
        secret = self.keeper.book.give(new_secret(), self.clock.seconds()).secret
        join = Message(id="m", type=JOIN, sender_id="bob_1", username="bob",
                       metadata={INVITE_KEY: secret})
        self.assertIn("no invite", self.keeper.admit(Message(
            id="m", type=JOIN, sender_id="x", username="x"), FP) or "")
        self.assertIn("no invite", self.keeper.admit(Message(
            id="m", type=JOIN, sender_id="x", username="x", metadata={INVITE_KEY: 7}), FP)
            or "")
        self.assertIsNone(self.keeper.admit(join, FP))
        self.assertIn("another peer", self.keeper.admit(join, OTHER_FP) or "")
        self.assertIn("invite used by bob", "\n".join(self.keeper.contacts()))
        self.assertIn("forgot", self.keeper.disconnect("bob").text)  # type: ignore[union-attr]
        self.assertIn("no invite", self.keeper.admit(join, FP) or "")

    def test_beacons_never_carry_the_onion(self) -> None:
        self.onion.host = onion_address() + ".onion"
        self.keeper.connect(token())
        for kind in ("announce", "ping", "leave"):
            data = encode_beacon(self.node.beacon(kind))
            self.assertNotIn(b".onion", data)
            self.assertNotIn(onion_address()[:20].encode(), data)


class TorrcFile(TestCase):
    def test_lines_and_errors(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("# a comment\n\nTestingTorNetwork 1\nDirAuthority a b c\n__Owning x\n")
        self.assertEqual(read_torrc(path), [("TestingTorNetwork", "1"),
                                            ("DirAuthority", "a b c"), ("__Owning", "x")])
        with open(path, "w") as f:
            f.write("Bad;Key 1\n")
        with self.assertRaises(ValueError):
            read_torrc(path)
        with self.assertRaises(ValueError):
            read_torrc(path + ".missing")


# --- the faces -----------------------------------------------------------------------------


class Faces(TestCase):
    def test_the_line_and_console_commands_reach_ireach(self) -> None:
        from p2pchat.interfaces import Refused
        from tests.fakechat import FakeChat
        from tests.fakes import RecordingFace

        chat = FakeChat()
        face = RecordingFace(chat)
        face.handle_input("/connect 10.0.0.2:8080")
        face.handle_input("/contacts")
        face.handle_input("/invite")
        chat.reach.answer = Refused("no such contact")
        face.handle_input("/disconnect bob")
        face.handle_input("/connect")
        self.assertEqual(chat.reach.calls, [("connect", "10.0.0.2:8080"), ("contacts", ""),
                                            ("invite", ""), ("disconnect", "bob")])
        self.assertEqual(face.info, ["done", "no static peers nor contacts", "done"])
        self.assertEqual(face.errors, ["no such contact",
                                       "usage: /connect HOST:PORT|INVITE"])


class IrcReach(TestCase):
    def test_the_service_nick_takes_the_commands_irc_clients_keep(self) -> None:
        from tests.test_irc import IrcTestCase

        case = IrcTestCase()
        case.setUp()
        try:
            keeper = LinkKeeper(case.node, case.clock, Book(None))
            keeper.dialer._endpoint = lambda info: _NoTor("x")
            case.node.reach = keeper
            client = case.client()
            client.lines()
            bot = ":*p2pchat!p2pchat@p2pchat PRIVMSG alice :"
            client.send("PRIVMSG *p2pchat :connect 10.0.0.2:8080")
            self.assertIn("10.0.0.2:8080: dialing it directly", client.lines()[0])
            client.send("PRIVMSG *p2pchat :contacts")
            listed = client.lines()
            self.assertEqual(listed[0], bot + "static peers and contacts:")
            self.assertIn("static 10.0.0.2:8080", listed[1])
            client.send("PRIVMSG *p2pchat :invite", "PRIVMSG *p2pchat :connect")
            self.assertEqual(client.lines(), [
                bot + "/invite needs Tor: start p2pchat with --tor or --tor-control ENDPOINT",
                bot + "connect HOST:PORT|INVITE: whom"])
            client.send("PRIVMSG *p2pchat :disconnect 10.0.0.2:8080")
            self.assertIn("forgot 10.0.0.2:8080", client.lines()[0])
        finally:
            case.doCleanups()


class KeptPeers(TestCase):
    def test_a_kept_peer_whose_link_goes_is_away_not_gone(self) -> None:
        from p2pchat.node import CAPS
        from tests.fakes import FakeLink

        for kept in ("static", "invited", ""):
            node = Node("alice", Clock(), peer_id="alice_1")
            book = Book(None)
            if kept == "static":
                book.add(Contact(PEER, "10.0.0.2", 8080, peer_id="zed_1"))
            elif kept == "invited":
                given = book.give(new_secret(), 0.0)
                given.fp, given.peer_id = FP, "zed_1"
            node.reach = LinkKeeper(node, Clock(), book)
            link = FakeLink("zed_1", "zed", caps=CAPS)
            self.assertTrue(node.link_ready(link))
            node.link_lost(link, "gone")
            # not announced by beacons: only a kept peer's lines still wait for it
            self.assertEqual("zed_1" in node.away, bool(kept), kept)


class ConsoleReach(TestCase):
    def test_the_console_runs_them_and_shows_the_answers(self) -> None:
        from p2pchat.interfaces import Refused
        from tests.test_console import ChatHarness

        h = ChatHarness()
        h.chat.reach.listed = ["static peers and contacts:", "  static 10.0.0.2:8080 bob: linked"]
        h.enter("/contacts")
        h.chat.reach.answer = Refused("/invite needs Tor")
        h.enter("/invite")
        rows = "\n".join(h.face.messages.rows_text())
        self.assertIn("static 10.0.0.2:8080 bob: linked", rows)
        self.assertIn("/invite needs Tor", rows)
        h.enter("/help")
        rows = "\n".join(h.face.messages.rows_text())
        for word in ("/connect HOST:PORT|INVITE", "/disconnect NAME|ADDRESS", "/contacts",
                     "/invite"):
            self.assertIn(word, rows)
