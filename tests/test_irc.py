"""The IRC face, one client at a time over StringTransport, against a real Node on task.Clock
(peers are fake links fed to the node, as the mesh would)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial import unittest
from twisted.words.protocols import irc as twirc

from p2pchat import events, irc
from p2pchat.irc import lockout
from p2pchat.identity import Pins, peer_id_for
from p2pchat.trust import Trust
from p2pchat.interfaces import Done, Said
from p2pchat.node import FLAP_WINDOW, Node, PeerView
from p2pchat.errors import StartError
from p2pchat.wire import (CAP_CATCHUP, CAP_OURS, CAP_ROOMS, CHAT, JOIN, LEAVE, MAX_ROOMS,
                          MAX_SAY_BYTES, PRIVATE, ROOMS, Message, new_message_id)
from tests.fakes import FakeLink

START = 1_700_000_000.0


class Client:
    """One IRC client attached over a StringTransport."""

    _ports = itertools.count(50000)

    def __init__(self, factory: irc.IrcFactory, host: str = "127.0.0.1") -> None:
        address = IPv4Address("TCP", host, next(self._ports))
        self.proto = factory.buildProtocol(address)
        self.transport = StringTransport(peerAddress=address)
        self.proto.makeConnection(self.transport)

    def send(self, *lines: str | bytes) -> None:
        for line in lines:
            data = line if isinstance(line, bytes) else line.encode("utf-8") + b"\r\n"
            self.proto.dataReceived(data)

    def lines(self) -> list[str]:
        """What the server wrote since last asked, one str per line."""
        data = self.transport.value()
        self.transport.clear()
        assert data == b"" or data.endswith(b"\r\n"), data
        return [raw.decode("utf-8") for raw in data.split(b"\r\n")[:-1]]

    def parsed(self) -> list[tuple[str, str, list[str]]]:
        return [twirc.parsemsg(line) for line in self.lines()]

    def commands(self) -> list[str]:
        return [command for _, command, _ in self.parsed()]

    def register(self, nick: str = "alice", password: str | None = None) -> list[str]:
        if password is not None:
            self.send(f"PASS {password}")
        self.send(f"NICK {nick}", f"USER {nick} 0 * :Real Name")
        return self.lines()

    @property
    def gone(self) -> bool:
        return self.transport.disconnecting


class IrcTestCase(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.node = Node("alice", self.clock, peer_id="alice_00000001")
        self.factory = self.make_factory()
        self._ids = itertools.count(1)

    def make_factory(self, password: str | None = None) -> irc.IrcFactory:
        factory = irc.IrcFactory(self.node, self.clock, password)
        factory.attach()
        self.addCleanup(factory.detach)
        return factory

    def client(self, register: bool = True, nick: str = "alice") -> Client:
        client = Client(self.factory)
        if register:
            client.register(nick)
        return client

    # --- the LAN side, as the mesh would drive the node ------------------------------------

    def link(self, peer_id: str, nick: str, address: str = "10.0.0.5:40000",
             ours: bool = True) -> FakeLink:
        """A peer links: one of ours (speaking rooms and private lines) or a base peer."""
        link = FakeLink(peer_id, nick, caps=(CAP_OURS, CAP_ROOMS) if ours else ())
        link.address = address
        self.assertTrue(self.node.link_ready(link))
        return link

    def hear(self, link: FakeLink, kind: str, content: str = "", username: str | None = None,
             metadata: dict | None = None, room: str = "general") -> None:
        self.node.message_received(link, Message(
            id=new_message_id(), type=kind, sender_id=link.peer_id,
            username=username if username is not None else link.username, content=content,
            timestamp=self.clock.seconds(), sequence=next(self._ids), metadata=metadata,
            room_id=room))

    def rooms(self, link: FakeLink, *rooms: str) -> None:
        """The peer says which rooms it is in (besides general)."""
        self.hear(link, ROOMS, metadata={"rooms": list(rooms)})

    def private(self, link: FakeLink, text: str, action: bool = False) -> None:
        """The peer says a line to us alone."""
        metadata = {"to": self.node.peer_id, **({"action": text} if action else {})}
        self.hear(link, PRIVATE, f"* {link.username} {text}" if action else text,
                  metadata=metadata)

    def chats(self, link: FakeLink) -> list[Message]:
        return [m for m in link.sent if m.type == CHAT]

    def privates(self, link: FakeLink) -> list[Message]:
        return [m for m in link.sent if m.type == PRIVATE]

    def rooms_sent(self, link: FakeLink) -> list[str]:
        """The rooms our last rooms line to ``link`` said we are in."""
        return [m for m in link.sent if m.type == ROOMS][-1].metadata["rooms"]


class RegistrationTests(IrcTestCase):
    def test_welcome_motd_and_join(self) -> None:
        client = self.client(register=False)
        lines = client.register("alice")
        commands = [twirc.parsemsg(line)[1] for line in lines]
        self.assertEqual(commands, ["001", "002", "003", "004", "005", "375", "372", "372", "372",
                                    "372", "372", "376", "JOIN", "332", "353", "366"])
        self.assertIn("alice!alice_00000001@local", lines[0])
        self.assertTrue(lines[0].startswith(":p2pchat 001 alice :"))
        self.assertIn("CASEMAPPING=ascii", lines[4])
        self.assertIn("/msg *p2pchat help", lines[10])
        self.assertEqual(lines[12], ":alice!alice_00000001@local JOIN #general")
        self.assertTrue(client.proto.registered and client.proto.in_general)

    def test_registering_with_another_nick_never_renames_the_peer(self) -> None:
        """The client is given the peer's nick (001 to it, then a NICK from the nick it asked
        for); the LAN sees no rename.  Only a NICK after registration renames the peer."""
        bob = self.link("bob_1", "bob")
        renames: list[str] = []
        set_nick = self.node.set_nick
        self.node.set_nick = lambda nick: renames.append(nick) or set_nick(nick)  # type: ignore
        client = self.client(register=False)
        lines = client.register("carol")
        self.assertEqual(renames, [])
        self.assertEqual(self.node.nick, "alice")
        self.assertEqual([m for m in bob.sent if m.type == JOIN], [])
        self.assertTrue(lines[0].startswith(":p2pchat 001 alice :"), lines[0])
        self.assertIn("alice!alice_00000001@local", lines[0])
        self.assertEqual(lines[5], ":carol!alice_00000001@local NICK :alice")
        notices = [line for line in lines if " NOTICE alice :" in line]
        self.assertEqual(len(notices), 1)
        self.assertIn("/nick carol renames the peer", notices[0])
        self.assertIn(":alice!alice_00000001@local JOIN #general", lines)
        client.send("NICK carol")  # on purpose: now the peer is renamed
        self.assertEqual(renames, ["carol"])
        self.assertEqual([m.username for m in bob.sent if m.type == JOIN], ["carol"])
        self.assertEqual(client.lines(), [":alice!alice_00000001@local NICK :carol"])

    def test_registering_with_the_peers_nick_sends_no_nick_line(self) -> None:
        lines = self.client(register=False).register("alice")
        commands = [twirc.parsemsg(line)[1] for line in lines]
        self.assertEqual(commands[:6], ["001", "002", "003", "004", "005", "375"])
        self.assertNotIn("NICK", commands)
        self.assertNotIn("NOTICE", commands)

    def test_user_before_nick_and_pass_order_dont_matter(self) -> None:
        client = self.client(register=False)
        client.send("USER x 0 * :x")
        self.assertEqual(client.lines(), [])
        client.send("NICK alice")
        self.assertEqual(client.commands()[0], "001")

    def test_cap_negotiation_holds_registration_until_cap_end(self) -> None:
        client = self.client(register=False)
        client.send("CAP LS 302", "NICK alice", "USER a 0 * :a")
        self.assertEqual(client.commands(), ["CAP"])  # the caps offered: test_irc_v3.py
        client.send("CAP REQ :no-such-cap")
        self.assertEqual(client.lines(), [":p2pchat CAP * NAK :no-such-cap"])
        client.send("CAP END")
        self.assertEqual(client.commands()[0], "001")
        client.send("CAP BOGUS")
        self.assertEqual(client.commands(), ["410"])

    def test_commands_before_registration_get_451(self) -> None:
        client = self.client(register=False)
        client.send("JOIN #general", "PRIVMSG #general :hi", "FROB x")
        self.assertEqual(client.commands(), ["451", "451", "451"])
        self.assertEqual(self.node.history("general"), [])

    def test_registering_twice_gets_462(self) -> None:
        client = self.client()
        client.send("USER a 0 * :a", "PASS x")
        self.assertEqual(client.commands(), ["462", "462"])

    def test_need_more_params(self) -> None:
        client = self.client(register=False)
        client.send("USER", "PASS")
        self.assertEqual(client.commands(), ["461", "461"])

    def test_registration_timeout_disconnects(self) -> None:
        self.assertLessEqual(irc.REGISTRATION_TIMEOUT, 10)
        client = self.client(register=False)
        self.clock.advance(irc.REGISTRATION_TIMEOUT - 0.5)
        self.assertFalse(client.gone)
        self.clock.advance(0.5)
        self.assertIn("ERROR :Closing link: not registered", client.lines()[-1])
        self.assertTrue(client.gone)
        self.assertEqual(self.factory.waiting(), [])

    def test_registered_client_is_not_timed_out(self) -> None:
        client = self.client()
        self.clock.advance(irc.REGISTRATION_TIMEOUT)
        self.assertFalse(client.gone)

    def test_too_many_clients(self) -> None:
        """The cap on registered clients is checked at registration; connections waiting
        to register don't count against it."""
        idle = [self.client(register=False) for _ in range(irc.MAX_UNREGISTERED - 1)]
        clients = [self.client() for _ in range(irc.MAX_IRC_CLIENTS)]
        self.assertFalse(any(c.gone for c in clients + idle))
        self.assertTrue(all(c.proto.registered for c in clients))
        extra = self.client(register=False)
        self.assertFalse(extra.gone)  # waiting to register is counted apart
        self.assertEqual(extra.register("alice"),
                         [f"ERROR :Closing link: too many IRC clients "
                          f"(at most {irc.MAX_IRC_CLIENTS})"])
        self.assertTrue(extra.gone)
        self.assertFalse(extra.proto.registered)
        clients[0].send("QUIT")  # one goes: there is room again
        self.assertEqual(self.client(register=False).register("alice")[0].split()[1], "001")

    def test_unregistered_connections_cant_lock_out_a_client(self) -> None:
        """40 connections that never register: at most MAX_UNREGISTERED stay (the oldest go),
        and a client that registers still gets in; then the rest time out."""
        idle = [self.client(register=False) for _ in range(40)]
        self.assertEqual(sum(not c.gone for c in idle), irc.MAX_UNREGISTERED)
        self.assertTrue(all(c.gone for c in idle[:-irc.MAX_UNREGISTERED]))
        self.assertIn("too many connections waiting to register", idle[0].lines()[-1])
        real = self.client(register=False)
        self.assertEqual(real.register("alice")[0].split()[1], "001")
        self.assertTrue(real.proto.registered)
        self.assertEqual(sum(not c.gone for c in idle), irc.MAX_UNREGISTERED - 1)
        self.clock.advance(irc.REGISTRATION_TIMEOUT)
        self.assertTrue(all(c.gone for c in idle))
        self.assertFalse(real.gone)
        self.assertEqual(self.factory.registered_count(), 1)


class PasswordTests(IrcTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.factory = self.make_factory(password="s3cret")

    def test_right_password(self) -> None:
        client = self.client(register=False)
        self.assertEqual(twirc.parsemsg(client.register("carol", password="s3cret")[0])[1],
                         "001")
        self.assertEqual(self.node.nick, "alice")  # the client is given the peer's nick

    def test_nothing_about_the_lan_before_pass(self) -> None:
        """NICK of a LAN peer's nick before PASS is only checked for its form: no 433, no
        mask, nothing naming a peer."""
        self.link("bob_1", "bob")
        client = self.client(register=False)
        client.send("NICK bob", "NICK BOB", "CAP LS", "CAP END", "PING x", "NICK b@d")
        lines = client.lines()
        self.assertEqual([twirc.parsemsg(line)[1] for line in lines], ["CAP", "PONG", "432"])
        self.assertFalse(any("bob_1" in line or "LAN" in line for line in lines), lines)
        client.send("WHOIS bob", "NAMES #general", "WHO *", "ISON bob", "LIST")
        self.assertEqual(client.commands(), ["451"] * 5)
        client.send("PASS s3cret", "USER b 0 * :b")
        self.assertEqual(client.commands()[:6], ["001", "002", "003", "004", "005", "NICK"])
        self.assertEqual(self.node.nick, "alice")

    def test_nothing_about_the_lan_without_the_password(self) -> None:
        self.link("bob_1", "bob")
        client = self.client(register=False)
        lines = client.register("bob")
        self.assertEqual([twirc.parsemsg(line)[1] for line in lines], ["464", "ERROR"])
        self.assertFalse(any("bob_1" in line or "in use" in line for line in lines), lines)

    def test_missing_password_refused_before_anything_happens(self) -> None:
        client = self.client(register=False)
        lines = client.register("carol")
        self.assertEqual([twirc.parsemsg(line)[1] for line in lines], ["464", "ERROR"])
        self.assertTrue(client.gone)
        self.assertEqual(self.node.nick, "alice")  # no rename for a stranger

    def test_wrong_password(self) -> None:
        client = self.client(register=False)
        lines = client.register("carol", password="guess")
        self.assertEqual(twirc.parsemsg(lines[0])[1], "464")
        self.assertTrue(client.gone)
        self.assertEqual(self.node.nick, "alice")


class GuessingTests(IrcTestCase):
    """Each connection gets one PASS try; connections after one another from one host get
    PASSWORD_TRIES wrong ones within PASSWORD_WINDOW, then are closed at once for
    PASSWORD_LOCKOUT seconds, logged once."""

    def setUp(self) -> None:
        super().setUp()
        self.factory = self.make_factory(password="s3cret")
        self.logged: list[str] = []

        def observe(event: dict) -> None:
            if "wrong passwords from" in event.get("log_format", ""):
                self.logged.append(event["host"])

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def guess(self, password: str = "guess", host: str = "127.0.0.1") -> Client:
        """One connection, one PASS try; its replies' commands in ``client.replies``."""
        client = Client(self.factory, host)
        client.replies = [twirc.parsemsg(line)[1]  # type: ignore[attr-defined]
                          for line in client.register("carol", password=password)]
        return client

    def test_wrong_passwords_in_a_row_lock_the_host_out(self) -> None:
        for _ in range(irc.PASSWORD_TRIES):
            client = self.guess()
            self.assertEqual(client.replies, ["464", "ERROR"])
            self.assertTrue(client.gone)
        # Now even the right password is refused at once: nothing read, one ERROR line.
        for _ in range(3):
            client = Client(self.factory)
            self.assertTrue(client.gone)
            lines = client.lines()
            self.assertEqual(len(lines), 1)
            self.assertTrue(lines[0].startswith("ERROR :Closing link: too many wrong passwords "
                                                "from 127.0.0.1; try again in 60 s"), lines)
            client.register("carol", password="s3cret")
            self.assertFalse(client.proto.registered)
            self.assertEqual(client.lines(), [])
        self.assertEqual(self.logged, ["127.0.0.1"])  # one log line, not one per connection
        self.assertEqual(self.factory.waiting(), [])
        # Another host is not locked out; after the lockout this one may try again.
        self.assertEqual(self.guess("s3cret", host="127.0.0.2").replies[0], "001")
        self.clock.advance(irc.PASSWORD_LOCKOUT)
        client = self.guess("s3cret")
        self.assertTrue(client.proto.registered)

    def test_wrong_passwords_spread_out_are_no_lockout(self) -> None:
        for _ in range(3 * irc.PASSWORD_TRIES):
            self.guess()
            self.clock.advance(irc.PASSWORD_WINDOW / (irc.PASSWORD_TRIES - 1) + 0.5)
        self.assertTrue(self.guess("s3cret").proto.registered)
        self.assertEqual(self.logged, [])

    def test_the_hosts_remembered_are_bounded(self) -> None:
        self.patch(lockout, "MAX_GUESSING_HOSTS", 3)
        for n in range(10):
            for _ in range(irc.PASSWORD_TRIES - 1 if n % 2 else irc.PASSWORD_TRIES):
                self.guess(host=f"10.0.0.{n}")
        self.assertLessEqual(len(self.factory.lockout._wrong), 3)
        self.assertLessEqual(len(self.factory.lockout._locked), 3)
        self.assertTrue(Client(self.factory, "10.0.0.8").gone)  # the newest still locked


class PingTests(IrcTestCase):
    def test_client_ping_gets_pong(self) -> None:
        client = self.client()
        client.send("PING :abc 123", "PING")
        self.assertEqual(client.lines(), [":p2pchat PONG p2pchat :abc 123",
                                          ":p2pchat 409 alice :No origin specified"])

    def test_server_pings_an_idle_client_and_drops_a_silent_one(self) -> None:
        client = self.client()
        self.clock.advance(irc.PING_INTERVAL)
        self.assertEqual(client.lines(), ["PING :p2pchat"])
        self.clock.advance(irc.PING_INTERVAL)
        self.assertIn("Ping timeout", client.lines()[-1])
        self.assertTrue(client.gone)

    def test_a_client_that_answers_stays(self) -> None:
        client = self.client()
        for _ in range(5):
            self.clock.advance(irc.PING_INTERVAL)
            client.send("PONG :p2pchat")
        self.assertFalse(client.gone)


class NickTests(IrcTestCase):
    def test_nick_change_is_a_lan_nick_change_seen_by_every_client(self) -> None:
        bob = self.link("bob_1", "bob")
        first, second = self.client(), self.client()
        first.lines(), second.lines()
        first.send("NICK carol")
        self.assertEqual(self.node.nick, "carol")
        self.assertEqual(bob.sent[-1].type, JOIN)
        self.assertEqual(bob.sent[-1].username, "carol")
        for client in (first, second):
            self.assertEqual(client.lines(), [":alice!alice_00000001@local NICK :carol"])
        first.send("PING x")
        self.assertEqual(first.lines(), [":p2pchat PONG p2pchat :x"])
        first.send("NICK carol")  # no change: silence, as ircds do
        self.assertEqual(first.lines(), [])

    def test_bad_nicks_get_432_with_the_reason(self) -> None:
        client = self.client()
        client.lines()
        client.send("NICK :two words", "NICK 1abc", "NICK " + "x" * 21, "NICK a@b")
        replies = client.parsed()
        self.assertEqual([r[1] for r in replies], ["432"] * 4)
        self.assertIn("spaces", replies[0][2][-1])
        self.assertIn("start with '1'", replies[1][2][-1])
        self.assertIn("at most 20 characters", replies[2][2][-1])
        self.assertIn("'@'", replies[3][2][-1])
        self.assertEqual(self.node.nick, "alice")

    def test_no_nick_gets_431(self) -> None:
        client = self.client()
        client.lines()
        client.send("NICK")
        self.assertEqual(client.commands(), ["431"])

    def test_a_peers_nick_gets_433(self) -> None:
        self.link("bob_1", "bob")
        client = self.client()
        client.lines()
        client.send("NICK BOB")
        reply = client.parsed()[0]
        self.assertEqual(reply[1], "433")
        self.assertIn("bob!bob_1@10.0.0.5", reply[2][-1])
        self.assertEqual(self.node.nick, "alice")

    def test_a_peers_nick_at_registration_is_no_433(self) -> None:
        """The 14.11 case: a client asking for a nick a peer has is not told 433 (so it
        doesn't try ``bob_``, renaming us): it is given the peer's nick."""
        self.link("bob_1", "bob")
        client = self.client(register=False)
        client.send("NICK bob", "USER b 0 * :b")
        replies = client.parsed()
        self.assertNotIn("433", [r[1] for r in replies])
        self.assertEqual(replies[0][1:3], ("001", ["alice", replies[0][2][-1]]))
        self.assertEqual(replies[5][0::2], ("bob!alice_00000001@local", ["alice"]))
        self.assertEqual(self.node.nick, "alice")

    def test_case_change_of_our_own_nick(self) -> None:
        client = self.client()
        client.lines()
        client.send("NICK Alice")
        self.assertEqual(client.lines(), [":alice!alice_00000001@local NICK :Alice"])
        self.assertEqual(self.node.nick, "Alice")


class PeerTests(IrcTestCase):
    """Peers arriving, talking, renaming and leaving, as the client sees them."""

    def test_join_chat_action_rename_leave(self) -> None:
        client = self.client()
        client.lines()
        bob = self.link("bob_1", "bob")
        self.hear(bob, CHAT, "hello there")
        self.hear(bob, CHAT, "* bob waves", metadata={"action": "waves"})
        self.hear(bob, JOIN, username="rob")
        self.hear(bob, CHAT, "as rob")
        self.hear(bob, LEAVE)
        self.assertEqual(client.lines(), [
            ":bob!bob_1@10.0.0.5 JOIN #general",
            ":bob!bob_1@10.0.0.5 PRIVMSG #general :hello there",
            ":bob!bob_1@10.0.0.5 PRIVMSG #general :\x01ACTION waves\x01",
            ":bob!bob_1@10.0.0.5 NICK :rob",
            ":rob!bob_1@10.0.0.5 PRIVMSG #general :as rob",
            ":rob!bob_1@10.0.0.5 QUIT :left the chat",
        ])

    def test_lost_link_is_a_quit_with_the_reason(self) -> None:
        client = self.client()
        bob = self.link("bob_1", "bob")
        client.lines()
        self.clock.advance(FLAP_WINDOW)  # a link that lived that long is shown gone at once
        self.node.link_lost(bob, "reset")
        self.assertEqual(client.lines(), [":bob!bob_1@10.0.0.5 QUIT :connection lost"])

    def test_peers_linked_before_the_service_started_are_members(self) -> None:
        self.link("bob_1", "bob")
        self.factory = self.make_factory()
        lines = self.client(register=False).register("alice")
        names = [p for _, c, p in (twirc.parsemsg(x) for x in lines) if c == "353"]
        self.assertEqual(names, [["alice", "=", "#general", "alice bob"]])

    def test_names_who_whois_list_and_topic(self) -> None:
        self.link("bob_1", "bob", ours=False)
        self.link("carol_2", "carol", address="10.0.0.6:41000")
        client = self.client()
        client.lines()
        client.send("NAMES #general")
        self.assertEqual(client.lines(), [":p2pchat 353 alice = #general :alice bob carol",
                                          ":p2pchat 366 alice #general :End of /NAMES list"])
        client.send("WHO #general")
        who = client.parsed()
        self.assertEqual([w[1] for w in who], ["352", "352", "352", "315"])
        self.assertEqual(who[1][2][:7], ["alice", "#general", "bob_1", "10.0.0.5", "p2pchat",
                                         "bob", "H"])
        self.assertIn("a base peer", who[1][2][-1])
        self.assertNotIn("base peer", who[2][2][-1])
        client.send("WHO carol")
        self.assertEqual([w[1] for w in client.parsed()], ["352", "315"])
        client.send("WHOIS bob", "WHOIS nobody")
        self.assertEqual(client.commands(), ["311", "319", "312", "318", "401", "318"])
        client.send("LIST")
        self.assertEqual([line.split(" :")[0] for line in client.lines()],
                         [":p2pchat 321 alice Channel", ":p2pchat 322 alice #general 3",
                          ":p2pchat 323 alice"])
        client.send("TOPIC #general")
        self.assertEqual(client.lines(), [f":p2pchat 332 alice #general :{irc.TOPIC}"])
        client.send("TOPIC #general :new topic", "TOPIC", "TOPIC #x")
        self.assertEqual(client.commands(), ["482", "461", "403", "NOTICE"])
        client.send("ISON bob nobody carol", "USERHOST bob")
        self.assertEqual(client.lines(), [":p2pchat 303 alice :bob carol",
                                          ":p2pchat 302 alice :bob=+bob_1@10.0.0.5"])

    def test_two_peers_with_one_nick_get_distinct_irc_nicks(self) -> None:
        client = self.client()
        client.lines()
        first = self.link("bob_1", "bob")
        second = self.link("bob_2", "bob", address="10.0.0.7:40000")
        self.hear(second, CHAT, "me too")
        self.assertEqual(client.lines(), [":bob!bob_1@10.0.0.5 JOIN #general",
                                          ":bob|2!bob_2@10.0.0.7 JOIN #general",
                                          ":bob|2!bob_2@10.0.0.7 PRIVMSG #general :me too"])
        self.hear(first, LEAVE)  # the second keeps its nick: no renames behind anyone's back
        self.hear(second, CHAT, "still me")
        self.assertEqual(client.lines()[-1], ":bob|2!bob_2@10.0.0.7 PRIVMSG #general :still me")

    def test_a_peer_with_our_nick_or_an_illegal_one_is_renamed_for_irc(self) -> None:
        client = self.client()
        client.lines()
        self.link("other_1", "alice")
        self.link("weird_1", "9 lives!@x")
        lines = client.lines()
        self.assertEqual(lines[0], ":alice|other!other_1@10.0.0.5 JOIN #general")
        self.assertIn("Another peer uses your nick alice: shown here as alice|other", lines[1])
        self.assertEqual(lines[2:], [":_9_lives__x!weird_1@10.0.0.5 JOIN #general"])

    def test_taking_a_peers_nick_from_another_face_moves_the_peer_aside(self) -> None:
        client = self.client()
        self.link("bob_1", "bob")
        client.lines()
        self.assertEqual(self.node.set_nick("bob"), Done())  # as the console's /nick would
        lines = client.lines()
        self.assertEqual(lines[:2], [":bob!bob_1@10.0.0.5 NICK :bob|other",
                                     ":alice!alice_00000001@local NICK :bob"])
        self.assertIn("uses your nick bob: shown here as bob|other", lines[2])
        self.assertEqual(len(lines), 3)

    def test_ids_and_addresses_are_cleaned_for_the_hostmask(self) -> None:
        client = self.client()
        client.lines()
        self.link("we ird@id!x", "zed", address="::1:5000")
        self.assertEqual(client.lines(), [":zed!we_ird_id_x@0::1 JOIN #general"])

    def test_a_long_peer_line_is_split_to_fit_512_bytes(self) -> None:
        client = self.client()
        bob = self.link("bob_1", "bob")
        client.lines()
        words = " ".join(f"wörd{i}" for i in range(700))[:MAX_SAY_BYTES // 2]
        self.hear(bob, CHAT, words)
        lines = client.lines()
        self.assertGreater(len(lines), 1)
        for line in lines:
            self.assertLessEqual(len(line.encode("utf-8")) + 2, irc.MAX_IRC_LINE_BYTES)
        texts = [twirc.parsemsg(line)[2][1] for line in lines]
        self.assertEqual(" ".join(texts), words)


class SayTests(IrcTestCase):
    def test_privmsg_is_said_and_shown_to_the_other_clients_only(self) -> None:
        bob = self.link("bob_1", "bob")
        speaker, watcher = self.client(), self.client()
        speaker.lines(), watcher.lines()
        speaker.send("PRIVMSG #general :hello \x02world\x02")
        speaker.send("PRIVMSG #General :\x01ACTION waves\x01")
        self.assertEqual([(m.content, m.metadata) for m in self.chats(bob)],
                         [("hello world", None), ("* alice waves", {"action": "waves"})])
        self.assertEqual(speaker.lines(), [])
        self.assertEqual(watcher.lines(), [
            ":alice!alice_00000001@local PRIVMSG #general :hello world",
            ":alice!alice_00000001@local PRIVMSG #general :\x01ACTION waves\x01",
        ])

    def test_lines_said_in_another_face_reach_irc(self) -> None:
        client = self.client()
        self.link("bob_1", "bob")
        client.lines()
        self.node.say("from the console\r\nQUIT :injected")
        self.assertEqual(client.lines(), [
            ":alice!alice_00000001@local PRIVMSG #general :from the console  QUIT :injected"])

    def test_saying_to_nobody_brings_the_nodes_notice(self) -> None:
        self.notices: list[events.Notice] = []
        self.node.subscribe(lambda e: self.notices.append(e) if isinstance(e, events.Notice)
                            else None)
        speaker, watcher = self.client(), self.client()
        speaker.lines(), watcher.lines()
        speaker.send("PRIVMSG #general :anyone?")
        notices = [n for n in self.notices if n.error]
        self.assertTrue(notices)  # whatever the node says, every client hears it
        expected = f":p2pchat NOTICE alice :! {notices[-1].text}"
        self.assertEqual(speaker.lines(), [expected])
        self.assertEqual(watcher.lines()[-1], expected)

    def test_message_errors(self) -> None:
        self.link("bob_1", "bob")
        client = self.client()
        client.lines()
        client.send("PRIVMSG", "PRIVMSG #general", "PRIVMSG #general :", "PRIVMSG #rust :hi",
                    "PRIVMSG #no!pe :hi", "PRIVMSG &local :hi", "PRIVMSG nobody :hi")
        self.assertEqual(client.commands(), ["411", "412", "412", "404", "479", "403", "NOTICE",
                                             "401"])

    def test_notice_never_gets_an_error_and_ctcp_replies_are_dropped(self) -> None:
        bob = self.link("bob_1", "bob")
        client = self.client()
        client.lines()
        client.send("NOTICE nobody :x", "NOTICE #rust :x", "NOTICE bob :x", "NOTICE",
                    "NOTICE #general :\x01VERSION irssi\x01", "PRIVMSG #general :\x01VERSION\x01",
                    "NOTICE #general :a notice")
        self.assertEqual(client.lines(), [])
        self.assertEqual([m.content for m in self.chats(bob)], ["a notice"])

    def test_too_many_targets(self) -> None:
        client = self.client()
        client.lines()
        targets = ",".join(f"#r{i}" for i in range(irc.MAX_TARGETS + 3))
        client.send(f"PART {targets}")
        self.assertEqual(client.commands(), ["407"] + ["442"] * irc.MAX_TARGETS)
        client.send(f"JOIN {targets}")
        self.assertEqual(client.commands(),
                         ["407"] + ["JOIN", "353", "366"] * irc.MAX_TARGETS)
        self.assertEqual(len(self.node.rooms.joined), 1 + irc.MAX_TARGETS)


class FlaggingNode(Node):
    """A node that flags the peers it is told to (as the trust code would flag another key
    using our nick, or a nick's unpinned key), shown ``nick?`` as the other faces show it;
    so these tests don't depend on how the node decides."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flag: set[str] = set()

    def users(self) -> list[PeerView]:
        return [replace(v, flagged=True, nick=v.nick + "?") if v.peer_id in self.flag else v
                for v in super().users()]


class FlagTests(IrcTestCase):
    """A peer the node flags, and any other peer using our own nick, is shown with
    FLAG_SUFFIX; another using our nick brings one warning per client."""

    def setUp(self) -> None:
        super().setUp()
        self.node = FlaggingNode("alice", self.clock, peer_id="alice_00000001")
        self.node.flag.add("other_1")
        self.factory = self.make_factory()

    def warnings(self, lines: list[str]) -> list[str]:
        return [line for line in lines if "uses your nick" in line]

    def test_another_key_with_our_nick_is_marked_and_warned_once(self) -> None:
        client = self.client()
        client.lines()
        other = self.link("other_1", "alice")
        lines = client.lines()
        self.assertEqual(lines[0], f":alice{irc.FLAG_SUFFIX}!other_1@10.0.0.5 JOIN #general")
        self.assertEqual(len(self.warnings(lines)), 1)
        self.assertIn(f"shown here as alice{irc.FLAG_SUFFIX}", lines[1])
        self.assertIn("not the one pinned", lines[1])
        self.assertIn("It is not you", lines[1])
        # More events (a line from it, another peer, a peer list change): no new warning.
        self.hear(other, CHAT, "hi, I am alice")
        self.link("bob_1", "bob")
        self.factory.on_event(events.PeersChanged(self.clock.seconds()))
        lines = client.lines()
        self.assertEqual(self.warnings(lines), [])
        self.assertIn(f":alice{irc.FLAG_SUFFIX}!other_1@10.0.0.5 PRIVMSG #general :"
                      "hi, I am alice", lines)
        # A client attaching later is warned once too, at registration.
        later = self.client(register=False)
        self.assertEqual(len(self.warnings(later.register("alice"))), 1)
        self.factory.on_event(events.PeersChanged(self.clock.seconds()))
        self.assertEqual(self.warnings(later.lines()), [])
        # Our own lines still come from our own nick; a /msg to the marked nick reaches it.
        later.send(f"PRIVMSG alice{irc.FLAG_SUFFIX} :who are you?")
        self.assertEqual([m.content for m in self.privates(other)], ["who are you?"])

    def test_a_peer_taking_our_nick_later_is_warned_of(self) -> None:
        client = self.client()
        other = self.link("other_1", "zed")
        client.lines()
        self.hear(other, JOIN, username="alice")
        lines = client.lines()
        self.assertEqual(lines[0], f":zed{irc.FLAG_SUFFIX}!other_1@10.0.0.5 NICK "
                         f":alice{irc.FLAG_SUFFIX}")
        self.assertEqual(len(self.warnings(lines)), 1)

    def test_a_flagged_peer_with_another_nick_is_marked_not_warned(self) -> None:
        client = self.client()
        client.lines()
        self.link("other_1", "carol")
        lines = client.lines()
        self.assertEqual(lines, [f":carol{irc.FLAG_SUFFIX}!other_1@10.0.0.5 JOIN #general"])

    def test_a_pinned_nick_with_another_key_through_the_real_trust_code(self) -> None:
        """The node's own flagging (a pin for carol, another key): ``carol|other``; /trust
        in another face unflags it, and IRC shows the rename."""
        pins = Pins(None)
        pins.pin("carol", "cd" * 32)
        self.node = Node("alice", self.clock, peer_id="alice_00000001", trust=Trust(pins))
        self.factory = self.make_factory()
        client = self.client()
        client.lines()
        fp = "ab" * 32
        carol = FakeLink(peer_id_for(fp), "carol", caps=(CAP_OURS, CAP_ROOMS))
        carol.fp, carol.address = fp, "10.0.0.9:40000"
        self.assertTrue(self.node.link_ready(carol))
        mask = f"carol{irc.FLAG_SUFFIX}!{carol.peer_id}@10.0.0.9"
        self.assertIn(f":{mask} JOIN #general", client.lines())
        self.node.trust_peer("carol?")
        self.assertIn(f":{mask} NICK :carol", client.lines())


class ChannelTests(IrcTestCase):
    def test_channel_names_that_cant_be_rooms(self) -> None:
        client = self.client()
        client.lines()
        client.send("JOIN #no!pe", "JOIN #" + "x" * 33, "JOIN ##ops", "JOIN &local", "PART +x")
        replies = client.parsed()
        # 479 with the reason (irssi shows its text); 403 and a notice (irssi shows 403 with
        # its own words only).
        self.assertEqual([r[1] for r in replies], ["479"] * 3 + ["403", "NOTICE"] * 2)
        self.assertEqual(replies[0][2], ["alice", "#no!pe",
                                         "a room name is made of a-z, 0-9, '-' and '_'; "
                                         "for example #ops or #team-2"])
        self.assertIn("at most 32 characters", replies[1][2][-1])
        self.assertEqual(replies[3][2], ["alice", "&local", irc.NOT_HASH])
        self.assertEqual(replies[4][2], ["alice", f"&local: {irc.NOT_HASH}"])
        self.assertEqual(self.node.rooms.joined, ["general"])
        client.send("JOIN", "PART")
        self.assertEqual(client.commands(), ["461", "461"])

    def test_part_and_rejoin(self) -> None:
        bob = self.link("bob_1", "bob")
        client = self.client()
        client.lines()
        client.send("PART #general :brb")
        self.assertEqual(client.lines(), [":alice!alice_00000001@local PART #general :brb"])
        self.hear(bob, CHAT, "unseen")
        client.send("PRIVMSG #general :hi", "PART #general")
        self.assertEqual(client.commands(), ["404", "442"])
        self.assertEqual(self.chats(bob), [])
        self.assertIs(self.node.links["bob_1"].wire, bob)  # still on the LAN
        client.send("JOIN #general")
        lines = client.lines()
        self.assertEqual([twirc.parsemsg(x)[1] for x in lines],
                         ["JOIN", "332", "353", "366", "PRIVMSG"])
        # what was said meanwhile is played back, its time in front, as bouncers do
        self.assertRegex(lines[-1], r"^:bob!\S+ PRIVMSG #general :\[\d\d:\d\d\] unseen$")
        client.send("JOIN 0")
        self.assertEqual(client.commands(), ["PART"])

    def test_modes(self) -> None:
        client = self.client()
        client.lines()
        client.send("MODE #general", "MODE #general b", "MODE #general +o bob", "MODE alice",
                    "MODE alice +i", "MODE bob", "MODE #rust", "MODE")
        self.assertEqual(client.commands(), ["324", "368", "482", "221", "221", "502", "403",
                                             "NOTICE", "461"])

    def test_motd_away_and_unknown(self) -> None:
        client = self.client()
        client.lines()
        client.send("MOTD", "AWAY :lunch", "AWAY", "FROB a b")
        self.assertEqual(client.commands(), ["375", "372", "372", "372", "372", "372", "376",
                                             "306", "305", "421"])

    def test_quit_detaches_the_client_only(self) -> None:
        bob = self.link("bob_1", "bob")
        client, other = self.client(), self.client()
        other.lines()
        client.lines()
        client.send("QUIT :bye now")
        self.assertEqual(client.lines(), ["ERROR :Closing link: Quit: bye now"])
        self.assertTrue(client.gone)
        client.proto.connectionLost(None)
        self.assertNotIn(client.proto, self.factory.clients)
        self.assertIsNone(bob.closed)
        self.assertEqual(other.lines(), [])  # the peer is still here: nothing to tell


class RoomTests(IrcTestCase):
    """Rooms as channels: JOIN/PART are the peer's /join and /part, seen by every client."""

    ME = "alice!alice_00000001@local"
    BOB = "bob!bob_1@10.0.0.5"

    def test_join_is_the_peers_join_and_every_client_sees_it(self) -> None:
        bob = self.link("bob_1", "bob")
        self.rooms(bob, "ops")
        first, second = self.client(), self.client()
        first.lines(), second.lines()
        first.send("JOIN #Ops")
        self.assertEqual(self.node.rooms.joined, ["general", "ops"])
        self.assertEqual(self.rooms_sent(bob), ["ops"])  # the LAN is told
        expected = [f":{self.ME} JOIN #ops",  # no topic line: rooms have none
                    ":p2pchat 353 alice = #ops :alice bob",
                    ":p2pchat 366 alice #ops :End of /NAMES list"]
        self.assertEqual(first.lines(), expected)
        self.assertEqual(second.lines(), expected)
        first.send("JOIN #ops")  # already in it: nothing, as ircds do
        self.assertEqual(first.lines(), [])
        first.send("TOPIC #ops")  # asked: 331
        self.assertEqual(first.lines(), [f":p2pchat 331 alice #ops :{irc.NO_TOPIC}"])

    def test_part_is_the_peers_part_with_the_reason_for_every_client(self) -> None:
        bob = self.link("bob_1", "bob")
        self.assertEqual(self.node.join_room("ops"), Done())
        first, second = self.client(), self.client()
        first.lines(), second.lines()
        first.send("PART #ops :see you")
        self.assertEqual(self.node.rooms.joined, ["general"])
        self.assertEqual(self.rooms_sent(bob), [])
        for client in (first, second):
            self.assertEqual(client.lines(), [f":{self.ME} PART #ops :see you"])
        first.send("PART #ops", "PART #dev", "PRIVMSG #ops :hi")
        self.assertEqual(first.commands(), ["442", "442", "404"])
        self.assertEqual(self.chats(bob), [])

    def test_join_and_part_from_another_face(self) -> None:
        client = self.client()
        client.lines()
        self.assertEqual(self.node.join_room("dev"), Done())  # as the console's /join would
        self.assertEqual(client.commands(), ["JOIN", "353", "366"])
        self.assertEqual(self.node.part_room("dev"), Done())
        self.assertEqual(client.lines(), [f":{self.ME} PART #dev"])

    def test_peers_joining_and_leaving_our_rooms(self) -> None:
        client = self.client()
        client.send("JOIN #ops")
        bob = self.link("bob_1", "bob")
        client.lines()
        self.rooms(bob, "ops", "dev")  # dev: we are not in it, nothing to show
        self.assertEqual(client.lines(), [f":{self.BOB} JOIN #ops"])
        self.rooms(bob, "dev")
        self.assertEqual(client.lines(), [f":{self.BOB} PART #ops"])
        self.rooms(bob, "ops")
        self.hear(bob, LEAVE)  # one QUIT takes it out of every channel
        self.assertEqual(client.lines(), [f":{self.BOB} JOIN #ops",
                                          f":{self.BOB} QUIT :left the chat"])

    def test_lines_of_a_room_both_ways(self) -> None:
        bob = self.link("bob_1", "bob")
        self.rooms(bob, "ops")
        speaker, watcher = self.client(), self.client()
        speaker.send("JOIN #ops")
        speaker.lines(), watcher.lines()
        self.hear(bob, CHAT, "ops only", room="ops")
        self.hear(bob, CHAT, "* bob nods", metadata={"action": "nods"}, room="ops")
        self.hear(bob, CHAT, "not ours", room="dev")  # a room we are not in: dropped
        for client in (speaker, watcher):
            self.assertEqual(client.lines(), [f":{self.BOB} PRIVMSG #ops :ops only",
                                              f":{self.BOB} PRIVMSG #ops :\x01ACTION nods\x01"])
        speaker.send("PRIVMSG #OPS :hello ops", "PRIVMSG #ops :\x01ACTION waves\x01")
        self.assertEqual([(m.room_id, m.content, m.metadata) for m in self.chats(bob)],
                         [("ops", "hello ops", None),
                          ("ops", "* alice waves", {"action": "waves"})])
        self.assertEqual(speaker.lines(), [])  # no echo to the speaker
        self.assertEqual(watcher.lines(), [f":{self.ME} PRIVMSG #ops :hello ops",
                                           f":{self.ME} PRIVMSG #ops :\x01ACTION waves\x01"])
        self.node.say("from the console", room="ops")
        self.assertEqual(speaker.lines(), [f":{self.ME} PRIVMSG #ops :from the console"])

    def test_a_room_line_is_not_shown_in_general(self) -> None:
        bob = self.link("bob_1", "bob")
        self.rooms(bob, "ops")
        client = self.client()
        client.send("JOIN #ops", "PART #general")
        client.lines()
        self.hear(bob, CHAT, "in general")
        self.hear(bob, CHAT, "in ops", room="ops")
        self.assertEqual(client.lines(), [f":{self.BOB} PRIVMSG #ops :in ops"])

    def test_a_client_attaching_later_is_joined_to_every_room(self) -> None:
        bob = self.link("bob_1", "bob")
        self.rooms(bob, "ops")
        self.node.join_room("ops")
        self.node.join_room("dev")
        lines = self.client(register=False).register("alice")
        replies = [twirc.parsemsg(line) for line in lines]
        commands = [c for _, c, _ in replies]
        self.assertEqual(commands[commands.index("376") + 1:],
                         ["JOIN", "332", "353", "366", "JOIN", "353", "366",
                          "JOIN", "353", "366"])
        self.assertEqual([p[-2:] for _, c, p in replies if c == "353"],
                         [["#general", "alice bob"], ["#ops", "alice bob"], ["#dev", "alice"]])

    def test_a_peer_back_after_a_lost_link_is_back_in_its_rooms(self) -> None:
        bob = self.link("bob_1", "bob")
        self.rooms(bob, "ops")
        client = self.client()
        client.send("JOIN #ops")
        client.lines()
        self.clock.advance(FLAP_WINDOW)
        self.node.link_lost(bob, "reset")
        self.assertEqual(client.lines(), [f":{self.BOB} QUIT :connection lost"])
        again = self.link("bob_1", "bob")
        self.rooms(again, "ops")  # the same rooms: the node tells nothing more
        self.assertEqual(client.lines(), [f":{self.BOB} JOIN #general",
                                          f":{self.BOB} JOIN #ops"])
        client.send("NAMES #ops")
        self.assertEqual(client.lines()[0], ":p2pchat 353 alice = #ops :alice bob")

    def test_list_names_who_whois_topic_and_mode_of_rooms(self) -> None:
        bob = self.link("bob_1", "bob")
        self.link("carol_2", "carol", address="10.0.0.6:41000")
        self.rooms(bob, "ops", "dev")
        self.node.join_room("ops")
        client = self.client()
        client.lines()
        client.send("LIST")
        self.assertEqual(client.lines(), [
            ":p2pchat 321 alice Channel :Users  Name",
            f":p2pchat 322 alice #general 3 :{irc.TOPIC}",
            ":p2pchat 322 alice #ops 2 :in it: alice, bob",
            ":p2pchat 322 alice #dev 1 :in it: bob",
            ":p2pchat 323 alice :End of /LIST"])
        client.send("LIST #dev,#nosuch")
        self.assertEqual(client.commands(), ["321", "322", "323"])
        client.send("NAMES #dev", "NAMES #nosuch", "NAMES")
        self.assertEqual(client.lines(), [
            ":p2pchat 353 alice = #dev :bob", ":p2pchat 366 alice #dev :End of /NAMES list",
            ":p2pchat 366 alice #nosuch :End of /NAMES list",
            ":p2pchat 353 alice = #general :alice bob carol",
            ":p2pchat 366 alice #general :End of /NAMES list",
            ":p2pchat 353 alice = #ops :alice bob", ":p2pchat 366 alice #ops :End of /NAMES list"])
        client.send("WHO #ops")
        who = client.parsed()
        self.assertEqual([(w[1], w[2][1], w[2][5]) for w in who[:2]],
                         [("352", "#ops", "alice"), ("352", "#ops", "bob")])
        self.assertEqual(who[2][1:], ("315", ["alice", "#ops", "End of /WHO list"]))
        client.send("WHOIS bob", "WHOIS alice", "WHOIS carol")
        channels = [p[-1] for _, c, p in client.parsed() if c == "319"]
        self.assertEqual(channels, ["#general #dev #ops", "#general #ops", "#general"])
        client.send("TOPIC #ops", "TOPIC #dev", "TOPIC #ops :new", "TOPIC #nosuch")
        self.assertEqual(client.commands(), ["331", "331", "482", "403", "NOTICE"])
        client.send("MODE #ops", "MODE #ops b", "MODE #nosuch", "MODE #Bad!")
        self.assertEqual(client.commands(), ["324", "368", "403", "NOTICE", "479"])

    def test_too_many_rooms_gets_405(self) -> None:
        client = self.client()
        for i in range(MAX_ROOMS - 1):
            self.assertEqual(self.node.join_room(f"r{i}"), Done())
        client.lines()
        client.send("JOIN #one-more")
        replies = client.parsed()
        self.assertEqual([r[1] for r in replies], ["405", "NOTICE"])
        self.assertIn(f"{MAX_ROOMS} rooms already", replies[0][2][-1])

    def test_join_0_leaves_every_room(self) -> None:
        self.node.join_room("ops")
        first, second = self.client(), self.client()
        first.lines(), second.lines()
        first.send("JOIN 0")
        self.assertEqual(first.lines(), [f":{self.ME} PART #general", f":{self.ME} PART #ops"])
        self.assertEqual(second.lines(), [f":{self.ME} PART #ops"])  # it still shows #general
        self.assertEqual(self.node.rooms.joined, ["general"])


class PrivateTests(IrcTestCase):
    """PRIVMSG to a nick is a private line; private lines come as PRIVMSG to our nick."""

    ME = "alice!alice_00000001@local"
    BOB = "bob!bob_1@10.0.0.5"

    def test_privmsg_to_a_nick_is_said_to_that_peer_alone(self) -> None:
        bob = self.link("bob_1", "bob")
        carol = self.link("carol_2", "carol", address="10.0.0.6:41000")
        speaker, watcher = self.client(), self.client()
        speaker.lines(), watcher.lines()
        speaker.send("PRIVMSG BOB :psst \x02there\x02", "PRIVMSG bob :\x01ACTION winks\x01")
        self.assertEqual([(m.content, m.metadata) for m in self.privates(bob)],
                         [("psst there", {"to": "bob_1"}),
                          ("* alice winks", {"to": "bob_1", "action": "winks"})])
        self.assertEqual(self.privates(carol) + self.chats(carol), [])
        self.assertEqual(speaker.lines(), [])  # no echo to the speaker
        # The other client sees it as bouncers show it: from us, to bob (its query with bob).
        self.assertEqual(watcher.lines(), [f":{self.ME} PRIVMSG bob :psst there",
                                           f":{self.ME} PRIVMSG bob :\x01ACTION winks\x01"])

    def test_private_lines_received_come_to_our_nick(self) -> None:
        bob = self.link("bob_1", "bob")
        first, second = self.client(), self.client()
        second.send("PART #general")  # private lines are not in a channel: still shown
        first.lines(), second.lines()
        self.private(bob, "just for you")
        self.private(bob, "whispers", action=True)
        for client in (first, second):
            self.assertEqual(client.lines(), [
                f":{self.BOB} PRIVMSG alice :just for you",
                f":{self.BOB} PRIVMSG alice :\x01ACTION whispers\x01"])

    def test_private_lines_said_in_another_face(self) -> None:
        self.link("bob_1", "bob")
        client = self.client()
        client.lines()
        self.assertIsInstance(self.node.say_private("bob", "from the console"), Said)
        self.assertEqual(client.lines(), [f":{self.ME} PRIVMSG bob :from the console"])

    def test_the_irc_nick_picks_the_peer_when_nicks_clash(self) -> None:
        first = self.link("bob_1", "bob")
        second = self.link("bob_2", "bob", address="10.0.0.7:40000")
        client = self.client()
        client.lines()
        client.send("PRIVMSG bob|2 :to the second bob")
        self.assertEqual(self.privates(first), [])
        self.assertEqual([m.content for m in self.privates(second)], ["to the second bob"])
        self.private(second, "back")
        self.assertEqual(client.lines(), [":bob|2!bob_2@10.0.0.7 PRIVMSG alice :back"])

    def test_a_base_peer_cant_get_private_lines(self) -> None:
        bob = self.link("bob_1", "bob", ours=False)
        client = self.client()
        client.lines()
        client.send("PRIVMSG bob :psst", "NOTICE bob :psst")
        replies = client.parsed()
        self.assertEqual([r[1] for r in replies], ["NOTICE"])  # the NOTICE gets no answer
        self.assertIn("bob is a base peer: it can't receive private messages", replies[0][2][-1])
        self.assertEqual([m for m in bob.sent if m.type in (CHAT, PRIVATE)], [])

    def test_no_such_nick_and_ourselves(self) -> None:
        bob = self.link("bob_1", "bob")
        client = self.client()
        client.lines()
        client.send("PRIVMSG nobody :hi", "PRIVMSG Alice :note to self", "NOTICE bob :a notice")
        self.assertEqual(client.lines(), [":p2pchat 401 alice nobody :No such nick",
                                          f":{self.ME} PRIVMSG alice :note to self"])
        self.assertEqual([m.content for m in self.privates(bob)], ["a notice"])

    def test_a_private_line_from_a_renamed_peer(self) -> None:
        bob = self.link("bob_1", "bob")
        client = self.client()
        client.lines()
        self.hear(bob, JOIN, username="rob")
        self.private(bob, "it's rob now")
        self.assertEqual(client.lines(), [f":{self.BOB} NICK :rob",
                                          ":rob!bob_1@10.0.0.5 PRIVMSG alice :it's rob now"])
        client.send("PRIVMSG rob :hi rob")
        self.assertEqual([m.content for m in self.privates(bob)], ["hi rob"])


class AwayTests(IrcTestCase):
    """PRIVMSG to a peer that is away (not linked now, but the node knows it): the line is
    kept and sent when the peer is back, as in every face; a nick never seen gets 401."""

    ME = "alice!alice_00000001@local"
    KEPT = "bob is away: the line is kept and sent when bob is back"

    def ours(self, peer_id: str, nick: str, address: str = "10.0.0.5:40000") -> FakeLink:
        """A peer of ours that catches up (so the node remembers it while it is away)."""
        link = FakeLink(peer_id, nick, caps=(CAP_OURS, CAP_ROOMS, CAP_CATCHUP))
        link.address = address
        self.assertTrue(self.node.link_ready(link))
        return link

    def lose(self, link: FakeLink) -> None:
        """The link drops after a while (not a flap): the peer leaves IRC (a QUIT)."""
        self.clock.advance(FLAP_WINDOW + 1)
        self.node.link_lost(link, "connection lost")
        self.assertIsNone(self.factory.roster.peer(link.peer_id))

    def notices(self, lines: list[str]) -> list[str]:
        return [twirc.parsemsg(line)[2][-1] for line in lines
                if twirc.parsemsg(line)[1] == "NOTICE"]

    def test_a_line_to_a_peer_that_left_is_kept_and_the_client_told_once(self) -> None:
        bob = self.ours("bob_1", "bob")
        speaker, watcher = self.client(), self.client()
        self.lose(bob)
        speaker.lines(), watcher.lines()
        speaker.send("PRIVMSG bob :are you there?", "PRIVMSG Bob :\x01ACTION waits\x01")
        lines = speaker.lines()
        self.assertEqual(lines, [f":p2pchat NOTICE alice :{self.KEPT}"])  # once, no 401
        self.assertEqual(self.node.delivery.private_waiting("bob_1"), 2)
        # The other client sees the lines (from us to bob) and the node's notice, once.
        watched = watcher.lines()
        self.assertEqual([line for line in watched if " PRIVMSG " in line],
                         [f":{self.ME} PRIVMSG bob :are you there?",
                          f":{self.ME} PRIVMSG bob :\x01ACTION waits\x01"])
        self.assertEqual(self.notices(watched), [self.KEPT])
        # bob is back (catch-up writes it the kept lines: test_away, test_irc_integration),
        # then away again: the client is told anew.
        again = self.ours("bob_1", "bob")
        speaker.lines()
        self.lose(again)
        speaker.lines()
        speaker.send("PRIVMSG bob :gone again?")
        self.assertEqual(self.notices(speaker.lines()), [self.KEPT])

    def test_a_second_client_is_told_too(self) -> None:
        """The node tells once per absence (to every client attached then); a client that
        attached later is told on its own first kept line."""
        bob = self.ours("bob_1", "bob")
        first = self.client()
        self.lose(bob)
        first.send("PRIVMSG bob :one")
        self.assertEqual(self.notices(first.lines())[-1:], [self.KEPT])
        late = self.client()
        late.lines()
        late.send("PRIVMSG bob :two", "PRIVMSG bob :three")
        self.assertEqual(late.lines(), [f":p2pchat NOTICE alice :{self.KEPT}"])
        self.assertEqual(self.node.delivery.private_waiting("bob_1"), 3)

    def test_the_irc_nick_of_a_peer_that_left_still_names_it(self) -> None:
        """A query window keeps the nick the peer was shown as (``bob|2``)."""
        self.ours("bob_1", "bob")
        second = self.ours("bob_2", "bob", address="10.0.0.7:40000")
        client, watcher = self.client(), self.client()
        self.lose(second)
        client.lines(), watcher.lines()
        client.send("PRIVMSG BOB|2 :for the second bob")
        self.assertEqual(self.notices(client.lines()), [self.KEPT])
        # The other client's query with bob|2 gets it (not one with bob, the first bob).
        self.assertEqual([line for line in watcher.lines() if " PRIVMSG " in line],
                         [f":{self.ME} PRIVMSG bob|2 :for the second bob"])
        self.assertEqual(self.node.delivery.private_waiting("bob_2"), 1)
        self.assertEqual(self.node.delivery.private_waiting("bob_1"), 0)

    def test_a_pinned_peer_never_seen_in_this_run_is_away(self) -> None:
        pins = Pins(None)
        pins.pin("dave", "ab" * 32)
        self.node = Node("alice", self.clock, peer_id="alice_00000001", trust=Trust(pins))
        self.factory = self.make_factory()
        client = self.client()
        client.lines()
        client.send("PRIVMSG dave :when you are back")
        self.assertEqual(client.lines(), [":p2pchat NOTICE alice :dave is away: the line is "
                                          "kept and sent when dave is back"])
        self.assertEqual(self.node.delivery.private_waiting(peer_id_for("ab" * 32)), 1)

    def test_a_nick_never_seen_and_a_base_peer_that_left_get_401(self) -> None:
        base = self.link("carl_1", "carl", ours=False)
        client = self.client()
        self.hear(base, LEAVE)
        self.node.links[base.peer_id].said_leave = True
        self.node.link_lost(base, "it left")
        self.assertIsNone(self.factory.roster.find("carl"))
        client.lines()
        client.send("PRIVMSG nobody :hi", "PRIVMSG carl :hi", "NOTICE nobody :hi")
        self.assertEqual(client.lines(), [":p2pchat 401 alice nobody :No such nick",
                                          ":p2pchat 401 alice carl :No such nick"])
        self.assertEqual([line for line in self.node.store.lines  # type: ignore[attr-defined]
                          if line.room.startswith("@")], [])


class IgnoreTests(IrcTestCase):
    """The node's /ignore, for IRC clients (whose own /ignore is local): ``/msg *p2pchat
    ignore NICK`` (answered from *p2pchat) or ``/quote IGNORE NICK`` (answered in notices)."""

    BOT = ":*p2pchat!p2pchat@p2pchat PRIVMSG alice :"

    def test_an_ignored_peers_lines_dont_reach_irc_clients(self) -> None:
        bob = self.link("bob_1", "bob")
        carol = self.link("carol_2", "carol", address="10.0.0.6:41000")
        client, other = self.client(), self.client()
        client.lines(), other.lines()
        client.send("PRIVMSG *p2pchat :ignore bob")
        self.assertEqual(client.lines(),
                         [self.BOT + "ignoring bob (its peer id bob_1): its lines are not shown"])
        self.assertEqual(other.lines(), [])
        self.hear(bob, CHAT, "in the room")
        self.private(bob, "privately")
        self.hear(carol, CHAT, "carol speaks")
        for each in (client, other):
            self.assertEqual(each.lines(),
                             [":carol!carol_2@10.0.0.6 PRIVMSG #general :carol speaks"])
        # Nor in the history played back on joining.
        client.send("PART #general", "JOIN #general")
        played = [line for line in client.lines() if "PRIVMSG #general" in line]
        self.assertEqual(len(played), 1)
        self.assertIn("carol speaks", played[0])
        client.send("PRIVMSG *P2PCHAT :ignore")
        self.assertEqual(client.lines(), [self.BOT + "ignored: 1",
                                          self.BOT + f"  {'bob':<21} no key, peer id bob_1"])
        client.send("PRIVMSG *p2pchat :unignore bob")
        self.assertEqual(client.lines(), [self.BOT + "no longer ignoring bob"])
        self.hear(bob, CHAT, "heard again")
        self.assertEqual(client.lines(), [":bob!bob_1@10.0.0.5 PRIVMSG #general :heard again"])

    def test_quote_ignore_and_unignore(self) -> None:
        self.link("bob_1", "bob")
        client = self.client()
        client.lines()
        client.send("IGNORE bob", "IGNORE", "IGNORE bob", "UNIGNORE", "UNIGNORE bob",
                    "UNIGNORE bob")
        self.assertEqual(client.lines(), [
            ":p2pchat NOTICE alice :ignoring bob (its peer id bob_1): its lines are not shown",
            ":p2pchat NOTICE alice :ignored: 1",
            f":p2pchat NOTICE alice :  {'bob':<21} no key, peer id bob_1",
            ":p2pchat NOTICE alice :bob is already ignored",
            ":p2pchat 461 alice UNIGNORE :Not enough parameters",
            ":p2pchat NOTICE alice :no longer ignoring bob",
            ":p2pchat NOTICE alice :bob is not ignored; /ignore lists who is"])
        self.assertEqual(len(self.node.ignores), 0)

    def test_the_irc_nick_names_the_peer_to_ignore(self) -> None:
        first = self.link("bob_1", "bob")
        second = self.link("bob_2", "bob", address="10.0.0.7:40000")
        client = self.client()
        client.lines()
        client.send("PRIVMSG *p2pchat :ignore BOB|2")
        self.assertEqual(client.lines(),
                         [self.BOT + "ignoring bob (its peer id bob_2): its lines are not shown"])
        self.assertNotIn("bob_1", self.node.ignores)
        self.hear(second, CHAT, "second")
        self.hear(first, CHAT, "first")
        self.assertEqual(client.lines(), [":bob!bob_1@10.0.0.5 PRIVMSG #general :first"])
        client.send("PRIVMSG *p2pchat :ignore nobody")
        self.assertEqual(client.lines(),
                         [self.BOT + "no linked peer is shown as nobody; /users lists them"])

    def test_help_unknown_and_notices_to_the_service(self) -> None:
        client = self.client()
        client.lines()
        client.send("PRIVMSG *p2pchat :help", "PRIVMSG *p2pchat :frob x",
                    "PRIVMSG *p2pchat :unignore", "NOTICE *p2pchat :ignore")
        lines = client.lines()
        self.assertEqual(lines[:len(irc.SERVICE_HELP)],
                         [self.BOT + line for line in irc.SERVICE_HELP])
        self.assertEqual(lines[len(irc.SERVICE_HELP):], [
            self.BOT + "unknown: frob; commands: ignore [NICK], unignore NICK, search WORDS, "
            "connect, disconnect, contacts, invite, help",
            self.BOT + "unignore NICK: whose lines to show again"])  # the NOTICE: nothing


class BadInputTests(IrcTestCase):
    """Nothing a client sends crashes anything; the right numeric or a disconnect."""

    def setUp(self) -> None:
        super().setUp()
        self.errors: list[dict] = []

        def watch(event: dict) -> None:
            if event.get("log_level") in (LogLevel.error, LogLevel.critical):
                self.errors.append(event)

        globalLogPublisher.addObserver(watch)
        self.addCleanup(globalLogPublisher.removeObserver, watch)

    def tearDown(self) -> None:
        self.assertEqual(self.errors, [])

    def test_a_line_over_512_bytes_gets_417_and_the_client_goes_on(self) -> None:
        bob = self.link("bob_1", "bob")
        client = self.client()
        client.lines()
        client.send("PRIVMSG #general :" + "x" * 500)
        self.assertEqual(client.commands(), ["417"])
        client.send("PRIVMSG #general :" + "x" * (510 - len("PRIVMSG #general :")))
        self.assertEqual(client.lines(), [])  # exactly 512 with CR LF: fine
        self.assertEqual(len(self.chats(bob)), 1)

    def test_lines_after_an_over_long_one_in_the_same_read_are_read(self) -> None:
        """LineReceiver drops the rest of its buffer after an over-long line; a client that
        sends several lines at once must still get an answer to each of the others."""
        client = self.client()
        client.lines()
        client.send(b"PRIVMSG #general :" + b"x" * 600 + b"\r\nPING :a\r\n" + b"y" * 700
                    + b"\nPING :b\r\nPING :c\r\n")
        too_long = (f":p2pchat 417 alice :Input line was too long (the limit is "
                    f"{irc.MAX_IRC_LINE_BYTES} bytes with CR LF); it was ignored")
        self.assertEqual(client.lines(), [too_long, ":p2pchat PONG p2pchat :a", too_long,
                                          ":p2pchat PONG p2pchat :b", ":p2pchat PONG p2pchat :c"])

    def test_an_unterminated_flood_of_bytes_is_refused_once(self) -> None:
        client = self.client()
        client.lines()
        for _ in range(10):
            client.send(b"y" * 1000)
        client.send(b"tail of it\r\nPING :ok\r\n")
        self.assertEqual(client.commands(), ["417", "PONG"])
        self.assertLess(len(client.proto._buffer), irc.MAX_IRC_LINE_BYTES)

    def test_garbage_lines(self) -> None:
        client = self.client()
        client.lines()
        client.send(":prefixonly", ":p  ", "   ", "\x00\x00", "@tag=1 PING :t", b"\xff\xfe\r\n",
                    "\x01\x02", "__class__", "irc_PING x")
        self.assertEqual(client.commands(), ["PONG", "421", "421", "421", "421"])
        self.assertFalse(client.gone)

    def test_bytes_split_anywhere_and_latin1(self) -> None:
        bob = self.link("bob_1", "bob")
        client = self.client()
        data = "PRIVMSG #general :héllo wörld\r\n".encode("utf-8")
        for i in range(len(data)):
            client.proto.dataReceived(data[i:i + 1])
        client.send("PRIVMSG #general :café".encode("latin-1") + b"\n")  # and LF only
        self.assertEqual([m.content for m in self.chats(bob)], ["héllo wörld", "café"])

    def test_flood_disconnects(self) -> None:
        client = self.client()
        client.lines()
        client.send(b"PING x\r\n" * (irc.FLOOD_BURST + 5))
        lines = client.lines()
        self.assertEqual(lines[-1], "ERROR :Closing link: Excess Flood")
        self.assertTrue(client.gone)
        self.assertLessEqual(lines.count(":p2pchat PONG p2pchat :x"), irc.FLOOD_BURST)

    def test_a_steady_pace_is_not_a_flood(self) -> None:
        client = self.client()
        for _ in range(irc.FLOOD_BURST * 3):
            client.send("PING x")
            self.clock.advance(1 / irc.FLOOD_RATE)
        self.assertFalse(client.gone)

    def test_a_client_that_stops_reading_is_dropped(self) -> None:
        bob = self.link("bob_1", "bob")
        client = self.client()
        # As the transport does when its buffer fills: pause the producer registered with it.
        client.transport.producer.pauseProducing()
        for _ in range(irc.MAX_OUTBOX_BYTES // 400 + 10):
            self.hear(bob, CHAT, "z" * 400)
        self.assertTrue(client.transport.disconnected)
        client.transport.producer.resumeProducing()


class HelperTests(unittest.TestCase):
    def test_parse_irc_address(self) -> None:
        self.assertEqual(irc.parse_irc_address("127.0.0.1:6667"), ("127.0.0.1", 6667))
        self.assertEqual(irc.parse_irc_address("6668"), ("127.0.0.1", 6668))
        self.assertEqual(irc.parse_irc_address("localhost:7000"), ("127.0.0.1", 7000))
        self.assertEqual(irc.parse_irc_address("[::1]:6667"), ("::1", 6667))
        self.assertEqual(irc.parse_irc_address("0.0.0.0:6667"), ("0.0.0.0", 6667))
        for bad, words in [("", "HOST:PORT"), ("host:6667", "IP address"),
                           ("127.0.0.1:x", "number"), ("127.0.0.1:0", "1 to 65535"),
                           ("127.0.0.1:70000", "1 to 65535"), (":6667", "HOST:PORT"),
                           ("[::1]6667", "IPv6")]:
            with self.assertRaises(ValueError) as caught:
                irc.parse_irc_address(bad)
            self.assertIn(words, str(caught.exception))

    def test_check_irc_bind(self) -> None:
        self.assertIsNone(irc.check_irc_bind("127.0.0.1", None))
        self.assertIsNone(irc.check_irc_bind("::1", None))
        with self.assertRaises(ValueError) as caught:
            irc.check_irc_bind("0.0.0.0", None)
        self.assertIn("--irc-password", str(caught.exception))
        self.assertIn("plain text", irc.check_irc_bind("192.168.1.4", "pw"))

    def test_irc_nick(self) -> None:
        self.assertEqual(irc.irc_nick("bob"), "bob")
        self.assertEqual(irc.irc_nick("b.o b"), "b_o_b")
        self.assertEqual(irc.irc_nick("#x"), "_#x")
        self.assertEqual(irc.irc_nick(""), "_")
        self.assertEqual(len(irc.irc_nick("x" * 64)), 20)
        self.assertEqual(irc.irc_nick("zoë"), "zoë")

    def test_split_text(self) -> None:
        self.assertEqual(irc.split_text("", 10), [""])
        self.assertEqual(irc.split_text("aaa bbb ccc", 7), ["aaa bbb", "ccc"])
        self.assertEqual(irc.split_text("ééééé", 4), ["éé", "éé", "é"])
        self.assertEqual(irc.split_text("日本", 1), ["日", "本"])

    def test_roster_suffixes_are_case_blind_and_stable(self) -> None:
        roster = irc.Roster("me_1", "alice")
        self.assertEqual(roster.add("b1", "Bob", "1.2.3.4:5").nick, "Bob")
        self.assertEqual(roster.add("b2", "bob", "1.2.3.4:6").nick, "bob|2")
        self.assertIsNone(roster.add("b2", "bob", "1.2.3.4:6"))
        self.assertEqual(roster.rename_peer("b2", "bob"), None)
        old, new = roster.rename_peer("b1", "robert")
        self.assertEqual((old.nick, new.nick), ("Bob", "robert"))
        self.assertIs(roster.find("ROBERT"), roster.peer("b1"))
        self.assertIs(roster.find("ALICE"), roster.me)
        self.assertIsNone(roster.holder("alice"))

    def test_roster_marks_flagged_and_same_nick_peers_within_nicklen(self) -> None:
        roster = irc.Roster("me_1", "alice")
        self.assertEqual(roster.add("c1", "carol?", "1.2.3.4:5", flagged=True).nick,
                         "carol|other")
        self.assertEqual(roster.add("c2", "carol", "1.2.3.4:6").nick, "carol")
        self.assertEqual(roster.add("a1", "ALICE", "1.2.3.4:7").nick, "ALICE|other")
        self.assertEqual([m.peer_id for m in roster.using_my_nick()], ["a1"])
        long = "x" * irc.MAX_NICK_CHARS
        self.assertEqual(roster.add("x1", long, "1.2.3.4:8").nick, long)
        self.assertEqual(roster.add("x2", long, "1.2.3.4:9").nick, long[:-2] + "|2")
        flagged = roster.add("x3", long + "?", "1.2.3.4:10", flagged=True).nick
        self.assertEqual(flagged, long[:-len(irc.FLAG_SUFFIX)] + irc.FLAG_SUFFIX)
        again = roster.add("x4", long + "?", "1.2.3.4:11", flagged=True).nick
        self.assertTrue(again.endswith(irc.FLAG_SUFFIX + "|2"), again)
        self.assertTrue(all(len(m.nick) <= irc.MAX_NICK_CHARS for m in roster.members()))
        old, new = roster.rename_peer("c1", "carol", flagged=False)  # after /trust
        self.assertEqual((old.nick, new.nick), ("carol|other", "carol|2"))


class ServiceTests(unittest.TestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.node = Node("alice", self.reactor)

    def test_listens_on_loopback_by_default(self) -> None:
        service = irc.IrcService(self.node, self.reactor, port=6667)
        service.startService()
        port, factory, _, interface = self.reactor.tcpServers[0]
        self.assertEqual((port, interface), (6667, "127.0.0.1"))
        self.assertIs(factory, service.factory)
        self.addCleanup(service.stopService)

    def test_non_loopback_without_password_refused(self) -> None:
        service = irc.IrcService(self.node, self.reactor, host="0.0.0.0", port=6667)
        with self.assertRaises(StartError) as caught:
            service.startService()
        self.assertIn("--irc-password", str(caught.exception))
        self.assertEqual(self.reactor.tcpServers, [])

    def test_non_loopback_with_password_warns(self) -> None:
        warnings: list[str] = []

        def watch(event: dict) -> None:
            if event.get("log_level") == LogLevel.warn:
                warnings.append(event.get("text", ""))

        globalLogPublisher.addObserver(watch)
        self.addCleanup(globalLogPublisher.removeObserver, watch)
        service = irc.IrcService(self.node, self.reactor, host="0.0.0.0", port=6667,
                                 password="pw")
        service.startService()
        self.addCleanup(service.stopService)
        self.assertTrue(any("plain text" in w for w in warnings))
        self.assertEqual(self.reactor.tcpServers[0][3], "0.0.0.0")

    def test_stop_says_goodbye_to_clients(self) -> None:
        service = irc.IrcService(self.node, self.reactor, port=6667)
        service.startService()
        client = Client(service.factory)
        client.register("alice")
        done = service.stopService()
        self.assertEqual(client.lines()[-1], "ERROR :Closing link: the peer is shutting down")
        self.assertTrue(client.gone)
        client.proto.connectionLost(None)
        self.successResultOf(done)
        self.assertNotIn(service.factory.on_event, self.node._observers)

    def test_stop_cuts_a_client_that_does_not_go_within_the_deadline(self) -> None:
        service = irc.IrcService(self.node, self.reactor, port=6667)
        service.startService()
        slow, quick = Client(service.factory), Client(service.factory)
        slow.register("alice")
        quick.register("alice")
        done = service.stopService()
        quick.proto.connectionLost(None)
        self.reactor.advance(irc.CLOSE_TIMEOUT - 0.1)
        self.assertFalse(slow.transport.disconnected)  # still given its time to take ERROR
        self.assertNoResult(done)
        self.reactor.advance(0.1)
        self.assertTrue(slow.transport.disconnected)  # cut (aborted)
        slow.proto.connectionLost(None)
        self.successResultOf(done)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
