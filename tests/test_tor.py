"""Friends over Tor (issue 18, items 2 and 3), on a private Tor network built by the test
(tests/tornet.py: 3 authorities, 4 relays, a client Tor, all on 127.0.0.1 inside a
loopback-only namespace; one network for the module).

Two peers in that namespace on different multicast groups (the LAN never joins them): alice
uses the client Tor through ``--tor-control``, bob launches a Tor of his own with ``--tor``
and the network's torrc lines (``--torrc``).  alice ``/invite``s; an invite with another key
is refused with a clear message, and one with another secret is refused by alice's onion
listener; the real one links them (verified against the key); they chat both ways; each
restarts in turn and the link comes back by itself.

Needs root, ``ip netns``, ``tor`` and ``tor-gencert``; skips with the reason otherwise.
"""

from __future__ import annotations

import re
import time

import pytest

from p2pchat.invite import parse_invite
from tests.netns import NsPeer, _LOOPBACKS, peer_argv
from tests.support import fresh_multicast
from tests.tornet import TorNet, unavailable

TOKEN = re.compile(r"(p2pchat:1/\S+)")
#: how long a peer may take to have its onion service up (a Tor of its own: bootstrap too)
ONION_UP = 120.0
LINK_TIMEOUT = 90.0


@pytest.fixture(scope="module")
def tornet(tmp_path_factory):
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    net = TorNet(tmp_path_factory.mktemp("tornet"))
    net.start()
    try:
        net.client()
        yield net
    finally:
        net.stop()
        assert net.gone(), "the Tor network's namespace was left behind"
        assert net.ns not in _LOOPBACKS


class Peers:
    def __init__(self, net: TorNet, tmp_path) -> None:
        self.net = net
        self.tmp = tmp_path
        self.torrc = tmp_path / "bob.torrc"
        self.torrc.write_text(net.client_torrc())
        self.running: list[NsPeer] = []

    def start(self, nick: str, multicast: tuple[str, int] | None = None,
              tor: bool = True) -> NsPeer:
        """alice uses the client Tor (--tor-control), the others a Tor of their own (--tor);
        ``tor`` False: none (a LAN peer)."""
        data_dir = self.tmp / nick
        data_dir.mkdir(mode=0o700, exist_ok=True)
        client = self.net.clients[0]
        how = (["--tor-control", f"tcp:127.0.0.1:{client.control}"] if nick == "alice"
               else ["--tor", "--torrc", str(self.torrc)]) if tor else []
        assert self.net.ns is not None
        argv = self.net.ns.argv(*peer_argv(nick, multicast or fresh_multicast(),
                                           str(data_dir), "127.0.0.1", *how))
        peer = NsPeer(nick, argv, str(data_dir))
        self.running.append(peer)
        if tor:
            peer.wait_for(lambda ls: any("onion service is up" in x for x in ls), ONION_UP)
        return peer

    def stop(self, peer: NsPeer) -> None:
        peer.send("/quit")
        try:
            peer.proc.wait(20)
        finally:
            peer.stop()

    def stop_all(self) -> None:
        for peer in self.running:
            peer.stop()


@pytest.fixture
def peers(tornet, tmp_path):
    made = Peers(tornet, tmp_path)
    try:
        yield made
    finally:
        made.stop_all()


def shown(peer: NsPeer, text: str, timeout: float, start: int = 0) -> str:
    lines = peer.wait_for(lambda ls: any(text in x for x in ls), timeout, start)
    return next(x for x in lines if text in x)


def chat(sender: NsPeer, receiver: NsPeer, text: str, timeout: float = LINK_TIMEOUT) -> None:
    mark = receiver.mark()
    sender.send(text)
    shown(receiver, f"<{sender.nick}> {text}", timeout, mark)


def linked(peer: NsPeer, what: str, timeout: float = LINK_TIMEOUT) -> None:
    """Until /contacts on ``peer`` shows a line with ``what`` that is linked."""
    deadline = time.monotonic() + timeout
    while True:
        mark = peer.mark()
        peer.send("/contacts")
        lines = peer.wait_for(lambda ls: any(" Tor: " in x for x in ls), 10.0, mark)
        if any(what in x and ": linked" in x for x in lines):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{peer.nick}: {what} not linked in {timeout:.0f} s\n"
                                 + "\n".join(lines) + "\n" + peer.report())
        time.sleep(1.0)


def test_invite_connect_chat_and_restarts(peers) -> None:
    alice = peers.start("alice")
    bob = peers.start("bob")
    mark = alice.mark()
    alice.send("/invite")
    token = TOKEN.search(shown(alice, "p2pchat:1/", 10.0, mark)).group(1)
    invite = parse_invite(token)

    # Another key than the invite's: refused, clearly, and not dialed again.
    wrong_key = token.replace(invite.fp, "ab" * 32)
    mark = bob.mark()
    bob.send(f"/connect {wrong_key}")
    refusal = shown(bob, "showed the key", LINK_TIMEOUT, mark)
    assert "refused" in refusal and invite.host in refusal, refusal

    # The right key but another secret (a leaked address): alice's listener refuses it.
    wrong_secret = token.replace(invite.secret, "a" * 32)
    mark = bob.mark()
    bob.send(f"/connect {wrong_secret}")
    shown(bob, "refused the link: no invite of ours", LINK_TIMEOUT, mark)
    assert not any("bob" in x and "joined" in x for x in alice.drain()), alice.report()

    # The real invite: linked, verified against its key; chat both ways.
    bob.send(f"/connect {token}")
    linked(bob, invite.host)
    chat(bob, alice, "hello through the onion")
    chat(alice, bob, "hello back through Tor")

    # bob (the one who dialed, with a Tor of his own) restarts: he redials from his kept
    # contacts, and what alice said meanwhile reaches him by catch-up.
    peers.stop(bob)
    alice.send("said while bob restarted")
    bob = peers.start("bob")
    linked(bob, invite.host)
    shown(bob, "<alice> said while bob restarted", LINK_TIMEOUT)
    chat(bob, alice, "bob is back")

    # alice restarts (her onion comes back at the same address, from its kept key): bob's
    # link comes back by itself.
    peers.stop(alice)
    alice = peers.start("alice")
    linked(bob, invite.host)
    chat(alice, bob, "alice is back")
    chat(bob, alice, "and bob hears her")


def test_one_room_across_the_lan_and_tor(peers) -> None:
    """carol is on alice's LAN (one multicast group), bob reaches alice over Tor only: alice
    has both in her room, and what was said while bob was away reaches him by catch-up over
    his Tor link.  Lines between bob and carol go through alice (gossip.py): bob has no
    link to carol, carol none to bob."""
    lan = fresh_multicast()
    alice = peers.start("alice", lan)
    carol = peers.start("carol", lan, tor=False)
    shown(alice, "* carol joined", LINK_TIMEOUT)
    bob = peers.start("bob")
    mark = alice.mark()
    alice.send("/invite")
    token = TOKEN.search(shown(alice, "p2pchat:1/", 10.0, mark)).group(1)
    bob.send(f"/connect {token}")
    linked(bob, parse_invite(token).host)
    chat(carol, alice, "carol on the LAN")
    chat(bob, alice, "bob over Tor")
    chat(alice, bob, "alice to both")
    shown(carol, "<alice> alice to both", LINK_TIMEOUT)

    peers.stop(bob)
    alice.send("while bob was away")
    bob = peers.start("bob")
    shown(bob, "<alice> while bob was away", LINK_TIMEOUT)

    chat(bob, carol, "bob to carol through alice")
    chat(carol, bob, "carol to bob through alice")
