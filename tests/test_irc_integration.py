"""The IRC face end to end: real peers on loopback in this reactor, a twisted.words IRCClient
attached to one of them over TCP, and the line face of the others."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.testing import StringTransport
from twisted.protocols.basic import LineReceiver
from twisted.words.protocols import irc as twirc

from p2pchat.identity import Identity
from p2pchat.irc import CHANNEL, IrcService
from p2pchat.irc.caps import server_time
from p2pchat.lines import LineFace
from p2pchat.store import Store
from tests.support import LOOPBACK, InProcessPeer, fresh_multicast, wait_for


class RecordingClient(twirc.IRCClient):
    """An IRC client (as irssi would be) that writes down what it is told."""

    heartbeatInterval = None  # the server pings us; no timer of ours left behind

    def __init__(self, nickname: str) -> None:
        self.nickname = nickname
        self.seen: list[tuple[Any, ...]] = []
        self.gone: defer.Deferred[None] = defer.Deferred()

    def joined(self, channel: str) -> None:
        self.seen.append(("joined", channel))

    def privmsg(self, user: str, channel: str, message: str) -> None:
        self.seen.append(("privmsg", user, channel, message))

    def action(self, user: str, channel: str, data: str) -> None:
        self.seen.append(("action", user, channel, data))

    def userJoined(self, user: str, channel: str) -> None:
        self.seen.append(("join", user, channel))

    def left(self, channel: str) -> None:
        self.seen.append(("left", channel))

    def userLeft(self, user: str, channel: str) -> None:
        self.seen.append(("part", user, channel))

    def userQuit(self, user: str, quitMessage: str) -> None:
        self.seen.append(("quit", user, quitMessage))

    def userRenamed(self, oldname: str, newname: str) -> None:
        self.seen.append(("renamed", oldname, newname))

    def nickChanged(self, nick: str) -> None:
        super().nickChanged(nick)
        self.seen.append(("nick", nick))

    def noticed(self, user: str, channel: str, message: str) -> None:
        self.seen.append(("notice", user, channel, message))

    def irc_ERR_NOSUCHNICK(self, prefix: str, params: list[str]) -> None:
        self.seen.append(("401", params[1]))

    def irc_RPL_NAMREPLY(self, prefix: str, params: list[str]) -> None:
        self.seen.append(("names", params[-1]))

    def connectionLost(self, reason: Any = None) -> None:
        super().connectionLost(reason)
        if not self.gone.called:
            self.gone.callback(None)


class LinePeer:
    """A peer with the plain line face attached to a StringTransport instead of stdio."""

    def __init__(self, nick: str, multicast: tuple[str, int],
                 identity: Identity | None = None, store: Store | None = None) -> None:
        self.peer = InProcessPeer(nick, multicast, identity=identity, store=store)
        self.face = LineFace(self.peer.node, on_quit=lambda: None)
        self.screen = StringTransport()

    async def start(self) -> None:
        await self.peer.start()
        self.face.makeConnection(self.screen)

    def type(self, text: str) -> None:
        self.face.dataReceived(text.encode("utf-8") + b"\n")

    def shows(self, text: str) -> bool:
        return text in self.screen.value().decode("utf-8")

    async def stop(self) -> None:
        self.peer.node.unsubscribe(self.face.on_event)
        await self.peer.stop()


def linked(a: InProcessPeer, b: InProcessPeer) -> bool:
    return b.node.peer_id in a.node.links and a.node.peer_id in b.node.links


async def _tear_down(client, running: list, ircd) -> None:
    """Detach the IRC client, then stop what was started, last first."""
    if client is not None and client.transport is not None and not client.gone.called:
        client.transport.loseConnection()
        await client.gone
    for thing in reversed(running):
        if thing is ircd:
            await ircd.stopService()
        else:
            await thing.stop()


@pytest_twisted.ensureDeferred
async def test_irc_client_and_line_faces_talk_both_ways() -> None:
    multicast = fresh_multicast()
    alice = InProcessPeer("alice", multicast)
    bob = LinePeer("bob", multicast)
    carol = LinePeer("carol", multicast)
    ircd = IrcService(alice.node, reactor, LOOPBACK, 0)
    client: RecordingClient | None = None
    running: list[Any] = []
    try:
        await alice.start()
        running.append(alice)
        ircd.startService()
        running.append(ircd)
        client = RecordingClient("alice")
        await connectProtocol(TCP4ClientEndpoint(reactor, LOOPBACK, ircd.port), client)
        await wait_for(lambda: ("joined", CHANNEL) in client.seen)
        assert ("names", "alice") in client.seen

        # A peer arrives: a JOIN for the IRC client; the IRC-faced peer joins for the other.
        await bob.start()
        running.append(bob)
        await wait_for(lambda: linked(alice, bob.peer))
        await wait_for(lambda: ("join", "bob", CHANNEL) in client.seen)
        await wait_for(lambda: bob.shows("* alice joined"))

        # Lines and actions, IRC -> LAN.
        client.say(CHANNEL, "hello from irssi")
        client.describe(CHANNEL, "waves")
        await wait_for(lambda: bob.shows("<alice> hello from irssi"))
        await wait_for(lambda: bob.shows("* alice waves"))

        # Lines and actions, LAN -> IRC.
        bob.type("hi from the line face")
        bob.type("/me nods")
        bob_mask = f"bob!{bob.peer.node.peer_id}@127.0.0.1"
        await wait_for(lambda: ("privmsg", bob_mask, CHANNEL, "hi from the line face")
                       in client.seen)
        await wait_for(lambda: ("action", bob_mask, CHANNEL, "nods") in client.seen)

        # Nick changes both ways.
        client.setNick("alicia")
        await wait_for(lambda: ("nick", "alicia") in client.seen)
        assert alice.node.nick == "alicia"
        await wait_for(lambda: bob.shows("* alice is now known as alicia"))
        bob.type("/nick robert")
        await wait_for(lambda: ("renamed", "bob", "robert") in client.seen)

        # A second peer arrives and leaves: JOIN then QUIT on IRC.
        await carol.start()
        running.append(carol)
        await wait_for(lambda: ("join", "carol", CHANNEL) in client.seen)
        await wait_for(lambda: carol.shows("* alicia joined"))
        running.remove(carol)
        await carol.stop()
        await wait_for(lambda: ("quit", "carol", "left the chat") in client.seen)

        # The IRC-faced peer leaves: the line face sees it go; the IRC client is told.
        running.remove(ircd)
        await ircd.stopService()
        await client.gone
        running.remove(alice)
        await alice.stop()
        await wait_for(lambda: bob.shows("* alicia left"))
    finally:
        await _tear_down(client, running, ircd)


@pytest_twisted.ensureDeferred
async def test_two_irc_clients_share_the_room() -> None:
    multicast = fresh_multicast()
    alice = InProcessPeer("alice", multicast)
    bob = LinePeer("bob", multicast)
    ircd = IrcService(alice.node, reactor, LOOPBACK, 0)
    clients: list[RecordingClient] = []
    try:
        await alice.start()
        ircd.startService()
        await bob.start()
        await wait_for(lambda: linked(alice, bob.peer))
        for _ in range(2):
            client = RecordingClient("alice")
            clients.append(client)
            await connectProtocol(TCP4ClientEndpoint(reactor, LOOPBACK, ircd.port), client)
        await wait_for(lambda: all(("joined", CHANNEL) in c.seen for c in clients))
        first, second = clients
        first.say(CHANNEL, "said by the first")
        await wait_for(lambda: bob.shows("<alice> said by the first"))
        mask = f"alice!{alice.node.peer_id}@local"
        await wait_for(lambda: ("privmsg", mask, CHANNEL, "said by the first") in second.seen)
        assert not any(e[0] == "privmsg" for e in first.seen)  # no echo to the speaker
    finally:
        for client in clients:
            if client.transport is not None and not client.gone.called:
                client.transport.loseConnection()
                await client.gone
        await ircd.stopService()
        await bob.stop()
        await alice.stop()


@pytest_twisted.ensureDeferred
async def test_rooms_and_private_messages_both_ways() -> None:
    """An IRC client on alice joins #ops, bob's node joins ops: lines flow both ways in #ops;
    a PRIVMSG to bob reaches bob alone, privately, and bob's private line reaches the client."""
    multicast = fresh_multicast()
    alice = InProcessPeer("alice", multicast)
    bob = LinePeer("bob", multicast)
    carol = LinePeer("carol", multicast)  # in general only: hears nothing of #ops nor privates
    ircd = IrcService(alice.node, reactor, LOOPBACK, 0)
    client: RecordingClient | None = None
    running: list[Any] = []
    try:
        for peer in (alice, bob, carol):
            await peer.start()
            running.append(peer)
        ircd.startService()
        running.append(ircd)
        await wait_for(lambda: linked(alice, bob.peer) and linked(alice, carol.peer)
                       and linked(bob.peer, carol.peer))
        client = RecordingClient("alice")
        await connectProtocol(TCP4ClientEndpoint(reactor, LOOPBACK, ircd.port), client)
        await wait_for(lambda: ("joined", CHANNEL) in client.seen)

        # The IRC client joins #ops: the peer joins the room, and bob's node hears of it.
        client.join("#ops")
        await wait_for(lambda: ("joined", "#ops") in client.seen)
        assert "ops" in alice.node.rooms.joined
        bob.type("/join ops")
        await wait_for(lambda: ("join", "bob", "#ops") in client.seen)
        await wait_for(lambda: "alice" in dict(bob.peer.node.room_list()).get("ops", []))

        # Lines in #ops, both ways; carol (not in ops) hears neither.
        client.say("#ops", "hello ops from irssi")
        await wait_for(lambda: bob.shows("[#ops] <alice> hello ops from irssi"))
        bob.type("hello back in ops")  # bob's line face now talks in #ops
        bob_mask = f"bob!{bob.peer.node.peer_id}@127.0.0.1"
        await wait_for(lambda: ("privmsg", bob_mask, "#ops", "hello back in ops") in client.seen)

        # Private lines, both ways.
        client.msg("bob", "psst, bob")
        await wait_for(lambda: bob.shows("[private] <alice> psst, bob"))
        bob.type("/msg alice secret answer")
        await wait_for(lambda: ("privmsg", bob_mask, "alice", "secret answer") in client.seen)
        assert not carol.shows("psst") and not carol.shows("[#ops]")
        assert not any(e[0] == "privmsg" and e[2] == CHANNEL for e in client.seen)

        # bob leaves #ops: a PART for the client; the client leaves: the peer leaves.
        bob.type("/part ops")
        await wait_for(lambda: ("part", "bob", "#ops") in client.seen)
        client.leave("#ops")
        await wait_for(lambda: ("left", "#ops") in client.seen)
        assert alice.node.rooms.joined == ["general"]
    finally:
        await _tear_down(client, running, ircd)


@pytest_twisted.ensureDeferred
async def test_a_client_with_a_peers_nick_is_given_ours_and_renames_nobody() -> None:
    """The 14.11 case end to end: an IRC client on alice asks for the nick bob, which bob has
    on the LAN.  It is not told 433 (so it doesn't fall back to bob_ and rename alice): it is
    told its nick is alice, and bob sees no rename."""
    multicast = fresh_multicast()
    alice = InProcessPeer("alice", multicast)
    bob = LinePeer("bob", multicast)
    ircd = IrcService(alice.node, reactor, LOOPBACK, 0)
    client: RecordingClient | None = None
    running: list[Any] = []
    try:
        for peer in (alice, bob):
            await peer.start()
            running.append(peer)
        ircd.startService()
        running.append(ircd)
        await wait_for(lambda: linked(alice, bob.peer))
        await wait_for(lambda: bob.shows("* alice joined"))
        client = RecordingClient("bob")
        await connectProtocol(TCP4ClientEndpoint(reactor, LOOPBACK, ircd.port), client)
        await wait_for(lambda: ("joined", CHANNEL) in client.seen)
        assert ("nick", "alice") in client.seen
        assert client.nickname == "alice"
        assert alice.node.nick == "alice"
        client.say(CHANNEL, "who am I")
        await wait_for(lambda: bob.shows("<alice> who am I"))
        assert not bob.shows("known as")
    finally:
        await _tear_down(client, running, ircd)


@pytest_twisted.ensureDeferred
async def test_a_private_line_to_a_peer_that_quit_is_delivered_when_it_is_back(
        tmp_path) -> None:
    """Issue 14 in the IRC face: bob quits; the IRC client's /msg bob is kept (a NOTICE says
    so, no 401), and bob, back with its key and its history (how far it has alice's lines),
    is shown it; a nick never seen still gets 401."""
    multicast = fresh_multicast()
    bob_key = Identity.generate()
    bob_history = str(tmp_path / "bob-history.sqlite3")
    alice = InProcessPeer("alice", multicast, identity=Identity.generate())
    bob = LinePeer("bob", multicast, identity=bob_key, store=Store(bob_history))
    ircd = IrcService(alice.node, reactor, LOOPBACK, 0)
    client: RecordingClient | None = None
    running: list[Any] = []
    try:
        for peer in (alice, bob):
            await peer.start()
            running.append(peer)
        ircd.startService()
        running.append(ircd)
        await wait_for(lambda: linked(alice, bob.peer))
        client = RecordingClient("alice")
        await connectProtocol(TCP4ClientEndpoint(reactor, LOOPBACK, ircd.port), client)
        await wait_for(lambda: ("joined", CHANNEL) in client.seen)
        client.msg("bob", "before you go")
        await wait_for(lambda: bob.shows("[private] <alice> before you go"))

        running.remove(bob)
        await bob.stop()
        await wait_for(lambda: any(e[:2] == ("quit", "bob") for e in client.seen))
        client.msg("bob", "while you were out")
        kept = "bob is away: the line is kept and sent when bob is back"
        await wait_for(lambda: any(e[0] == "notice" and e[3] == kept for e in client.seen))
        client.sendLine("PRIVMSG nobody :hello?")
        await wait_for(lambda: ("401", "nobody") in client.seen)

        again = LinePeer("bob", multicast, identity=bob_key, store=Store(bob_history))
        await again.start()
        running.append(again)
        await wait_for(lambda: again.shows("[private] <alice> while you were out"))
        await wait_for(lambda: ("join", "bob", CHANNEL) in client.seen)
        assert [e for e in client.seen if e[0] == "401"] == [("401", "nobody")]
    finally:
        await _tear_down(client, running, ircd)


class RawClient(LineReceiver):
    """A raw IRC client that sends what it is told and writes down every line it gets."""

    delimiter = b"\r\n"

    def __init__(self) -> None:
        self.got: list[str] = []
        self.gone: defer.Deferred[None] = defer.Deferred()

    def lineReceived(self, line: bytes) -> None:
        self.got.append(line.decode("utf-8"))

    def send(self, *lines: str) -> None:
        for line in lines:
            self.sendLine(line.encode("utf-8"))

    def connectionLost(self, reason: Any = None) -> None:
        if not self.gone.called:
            self.gone.callback(None)


@pytest_twisted.ensureDeferred
async def test_an_ircv3_client_gets_times_ids_batches_and_chathistory_from_disk(
        tmp_path) -> None:
    """CAP LS 302, every cap asked for, history from the SQLite file played in a batch with
    its original times, CHATHISTORY answered from it, and the client's own line echoed."""
    multicast = fresh_multicast()
    store = Store(str(tmp_path / "alice-history.sqlite3"))
    alice = InProcessPeer("alice", multicast, store=store)
    bob = LinePeer("bob", multicast)
    ircd = IrcService(alice.node, reactor, LOOPBACK, 0)
    client = RawClient()
    running: list[Any] = []
    try:
        await alice.start()
        running.append(alice)
        await bob.start()
        running.append(bob)
        await wait_for(lambda: linked(alice, bob.peer))
        for i in range(3):
            bob.type(f"line {i}")
        await wait_for(lambda: len(alice.node.history("general", 10)) == 3)
        said = alice.node.history("general", 10)
        ircd.startService()
        running.append(ircd)
        await connectProtocol(TCP4ClientEndpoint(reactor, LOOPBACK, ircd.port), client)
        client.send("CAP LS 302", "NICK alice", "USER alice 0 * :a")
        await wait_for(lambda: any(" CAP * LS " in line for line in client.got))
        client.send("CAP REQ :batch draft/chathistory echo-message message-tags server-time",
                    "CAP END")
        await wait_for(lambda: any(line.endswith(" BATCH -p2p1") for line in client.got))
        played = [line for line in client.got if " PRIVMSG #general " in line]
        assert played == [f"@time={server_time(line.when)};msgid={line.id};batch=p2p1 "
                          f":bob!{bob.peer.node.peer_id}@history PRIVMSG #general :{line.text}"
                          for line in said]
        client.got.clear()
        client.send("CHATHISTORY BEFORE #general msgid=" + said[2].id + " 5")
        await wait_for(lambda: any(line.endswith(" BATCH -p2p2") for line in client.got))
        assert [line.rsplit(" :", 1)[1] for line in client.got if " PRIVMSG " in line] == [
            "line 0", "line 1"]
        client.got.clear()
        client.send("PRIVMSG #general :echoed")
        await wait_for(lambda: bob.shows("<alice> echoed"))
        await wait_for(lambda: any(line.endswith("PRIVMSG #general :echoed")
                                   for line in client.got))
        (echo,) = client.got
        assert echo.startswith("@time=") and ";msgid=" in echo
    finally:
        if client.transport is not None and not client.gone.called:
            client.transport.loseConnection()
            await client.gone
        for thing in reversed(running):
            if thing is ircd:
                await ircd.stopService()
            else:
                await thing.stop()
