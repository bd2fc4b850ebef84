"""Links we keep beyond the LAN: static peers (``--peer``, ``/connect HOST:PORT``) dialed
directly, and onion contacts (``/connect INVITE``) dialed through Tor; the invites we give
(``/invite``) and the gate of our onion listener.  The faces reach it as ``IChat.reach``.

Its links are ordinary peer links (``mesh.PeerProtocol``: the same handshake, keys, catch-up
and relaying as the LAN's); it only decides whom to dial.  It has a ``dial.Dialer`` of its
own, keyed by the contact's address (a static peer's id is not known before its first link),
so dials and redials wait out the same backoff as discovered peers'; it watches the node's
links (``PeersChanged``) to stop dialing a contact that is linked, whoever dialed, and to
redial one whose link went.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Protocol
from twisted.logger import Logger, LogLevel

from p2pchat import events
from p2pchat.clocks import log_limited
from p2pchat.contacts import CONTACTS_NAME, ONION, PEER, Book, Contact, Entry, parse_peer_address
from p2pchat.identity import peer_id_for, short_form
from p2pchat.interfaces import Done, Outcome, Refused
from p2pchat.dial import Dialer
from p2pchat.mesh import PeerProtocol, PeerServerFactory
from p2pchat.node import Node
from p2pchat.peers import PeerInfo
from p2pchat.reach import peer_endpoint
from p2pchat.wire import Message, printable

if TYPE_CHECKING:
    from p2pchat.handshake import Admit
    from p2pchat.invite import Invite
    from p2pchat.onion import Onion

log = Logger()

#: How long shutdown waits for Tor to stop (after the goodbyes).
TOR_STOP_TIMEOUT = 5.0


class LinkKeeper:
    """The static peers and contacts of one node; ``onion`` None: no Tor (static only)."""

    def __init__(self, node: Node, reactor: Any, book: Book, bind_host: str | None = None,
                 onion: Onion | None = None) -> None:
        self.node = node
        self.reactor = reactor
        self.book = book
        self.bind_host = bind_host
        self.onion = onion
        self.dialer = Dialer(node, reactor, reactor, bind_host, endpoint=self._endpoint,
                             make=self._make)
        self._protos: dict[PeerProtocol, Contact] = {}
        #: contact key -> when its link came up (while it is up)
        self._up: dict[str, float] = {}
        #: contact key -> why it is not dialed any more (a wrong key)
        self._refused: dict[str, str] = {}
        #: contact key -> the last refusal told (each told once)
        self._told: dict[str, str] = {}
        self._running = False

    # --- running -------------------------------------------------------------------------

    def start(self) -> None:
        """Dial every kept contact, and follow the node's links from now on."""
        self._running = True
        self.node.subscribe(self._event)
        self._reconcile()

    def stop(self) -> None:
        """We leave: nothing more is dialed."""
        self._running = False
        self.node.unsubscribe(self._event)
        self.dialer.stop()

    def _event(self, event: events.Event) -> None:
        if isinstance(event, events.PeersChanged):
            self._reconcile()

    def _info(self, c: Contact) -> PeerInfo:
        """What the dialer keeps of a contact: known by ``c.key``."""
        return PeerInfo(c.key, c.nick, c.host, c.port, 0.0, fp=c.fp)

    def _endpoint(self, info: PeerInfo) -> Any:
        if info.peer_id.startswith(ONION + ":"):
            if self.onion is None:
                from p2pchat.onion import _NoTor  # (onion.py: only with Tor, or this)

                return _NoTor("no Tor (start p2pchat with --tor or --tor-control)")
            return self.onion.endpoint(info.host, info.port)
        return peer_endpoint(self.reactor, info.host, info.port, self.bind_host)

    def _make(self, info: PeerInfo) -> PeerProtocol:
        c = next((c for c in self.book.contacts if c.key == info.peer_id), None)
        if c is None:  # forgotten while dialing: the protocol is closed at once
            c = Contact(PEER, info.host, info.port)
        # No nick: the listener's starttls line tells its nick and caps (handshake.learn).
        expected = PeerInfo(c.peer_id, "", c.host, c.port, 0.0, caps=self.node.caps, fp=c.fp)
        proto = PeerProtocol(self.node, self.reactor, expected=expected,
                             registry=self.dialer.outgoing, tls_first=c.kind == ONION,
                             invite=c.secret)
        self._protos[proto] = c
        proto.closed.addCallback(lambda _: self._closed(proto, c))
        return proto

    def _closed(self, proto: PeerProtocol, c: Contact) -> None:
        self._protos.pop(proto, None)
        wrong = proto.handshake.wrong_fp
        if wrong and not proto.was_ready and c in self.book.contacts:
            self._refused[c.key] = wrong
            self.dialer.drop(c.key)
            said = "its invite says" if c.kind == ONION else "it had before"
            self.node.notice(
                f"{c.address} showed the key {short_form(wrong) if len(wrong) == 64 else wrong}"
                f", not the {short_form(c.fp)} {said}: refused, not dialed again (check with "
                f"your friend; /disconnect {c.address} forgets it)", error=True)
        elif proto.refused_by and self._told.get(c.key) != proto.refused_by:
            self._told[c.key] = proto.refused_by
            self.node.notice(f"{c.address} refused the link: {proto.refused_by}", error=True)
        self.reactor.callLater(0, self._reconcile)

    def _reconcile(self) -> None:
        """Dial every contact that is not linked; stop dialing those that are."""
        if not self._running or self.node.leaving:
            return
        now = self.reactor.seconds()
        for proto, c in list(self._protos.items()):
            if proto.ready and (c.peer_id, c.fp) != (proto.peer_id, proto.fp):
                c.peer_id, c.fp, c.nick = proto.peer_id, proto.fp, proto.username
                self._told.pop(c.key, None)
                self.book.save()
        for c in self.book.contacts:
            if c.key in self._refused:
                continue
            link = self.node.links.get(c.peer_id) if c.peer_id else None
            if link is not None:
                if c.key not in self._up:
                    self._up[c.key] = link.linked_at
                    self.dialer.connected(c.key)
                if link.username and link.username != c.nick:
                    c.nick = link.username
                    self.book.save()
                continue
            since = self._up.pop(c.key, None)
            if since is not None:
                self.dialer.link_ended(c.key, now - since)
            self.dialer.want(self._info(c))

    # --- the onion listener's gate -------------------------------------------------------

    def admit(self, join: Message, fp: str) -> str | None:
        """Why a join through our onion (TLS proved key ``fp``) is not let in, or None: it
        must show the secret of an invite we gave, unused or used by this same key."""
        from p2pchat.handshake import INVITE_KEY  # (a join came: the link's, imported then)

        secret = (join.metadata or {}).get(INVITE_KEY)
        why = self.book.admission(secret if isinstance(secret, str) else "", fp,
                                  self.reactor.seconds())
        if why is not None:
            log_limited(self.node.clock, log, "onion refused", LogLevel.info,
                        "onion link from {nick} ({peer}) refused: {why}",
                        nick=printable(join.username)[:40], peer=join.sender_id[:40], why=why)
            return why
        given = next(g for g in self.book.given if g.secret == secret)
        if (given.peer_id, given.nick) != (join.sender_id, join.username):
            if not given.peer_id:
                self.node.notice(f"{printable(join.username)} came with your invite (key "
                                 f"{short_form(fp)})")
            given.peer_id, given.nick = join.sender_id, join.username
            self.book.save()
        return None

    # --- IReach ---------------------------------------------------------------------------

    def keeps(self, peer_id: str) -> bool:
        """A static peer or contact (we redial it), or a friend who came with our invite
        (it redials us)."""
        return any(c.peer_id == peer_id for c in self.book.contacts) or any(
            g.peer_id == peer_id for g in self.book.given if g.fp)

    def connect(self, text: str) -> Outcome:
        """/connect HOST:PORT or /connect INVITE: kept, and dialed now."""
        from p2pchat.invite import is_invite, parse_invite  # with the command: a peer alone
        # does without invite.py (tests/test_latetls.py)

        text = text.strip()
        try:
            if is_invite(text):
                return self._connect_invite(parse_invite(text))
            host, port = parse_peer_address(text, "/connect")
        except ValueError as e:
            return Refused(str(e))
        return self._keep(Contact(PEER, host, port),
                          "dialing it directly; kept in the data dir")

    def _connect_invite(self, invite: Invite) -> Outcome:
        if self.onion is None:
            return Refused("/connect INVITE needs Tor: start p2pchat with --tor or "
                           "--tor-control ENDPOINT")
        if self.node.identity is not None and invite.fp == self.node.identity.fingerprint:
            return Refused("that is your own invite: give it to a friend")
        contact = Contact(ONION, invite.host, invite.port, fp=invite.fp,
                          peer_id=peer_id_for(invite.fp), secret=invite.secret)
        return self._keep(contact, f"dialing it through Tor (its key {short_form(invite.fp)}"
                          " is checked); kept in the data dir")

    def _keep(self, contact: Contact, how: str) -> Outcome:
        old = self.book.find_contact(contact.address)
        if old is not None:
            self.dialer.drop(old.key)
        why = self.book.add(contact)
        if why:
            return Refused(why)
        self._refused.pop(contact.key, None)
        self._told.pop(contact.key, None)
        self._reconcile()
        return Done(f"{contact.address}: {how} (/disconnect {contact.address} forgets it)")

    def disconnect(self, text: str) -> Outcome:
        """/disconnect: a contact (by address, nick or id) or a used invite (by nick)."""
        entry: Entry | None = self.book.find_contact(text) or self.book.find_given(text)
        if entry is None:
            return Refused(f"no static peer or contact {printable(text)[:80]}; /contacts "
                           "lists them")
        self.book.remove(entry)
        if isinstance(entry, Contact):
            self.dialer.drop(entry.key)
            self._refused.pop(entry.key, None)
            self._up.pop(entry.key, None)
            what = entry.address
        else:
            what = f"{entry.nick or entry.peer_id}'s invite"
        link = self.node.links.get(entry.peer_id) if entry.peer_id else None
        if link is not None:
            link.close("forgotten (/disconnect)")
        return Done(f"forgot {what}: not dialed nor let in again")

    def invite(self) -> Outcome:
        """/invite: a new secret, kept, in a token with our onion and our key."""
        onion = self.onion
        if onion is None:
            return Refused("/invite needs Tor: start p2pchat with --tor or --tor-control "
                           "ENDPOINT")
        if not onion.host or self.node.identity is None:
            return Refused(f"Tor is not ready yet ({onion.state}); try again in a moment")
        from p2pchat.invite import Invite, new_secret

        given = self.book.give(new_secret(), self.reactor.seconds())
        token = Invite(onion.host[:-len(".onion")], onion.port,
                       self.node.identity.fingerprint, given.secret).token()
        return Done(f"invite for one friend (send it privately; it lets one peer in): {token}")

    def contacts(self) -> list[str]:
        """/contacts: each kept peer with its state, the invites, Tor's state."""
        lines = []
        for c in self.book.contacts:
            lines.append(f"  {'static' if c.kind == PEER else 'onion'} {c.address} "
                         f"{printable(c.nick) or '?'}: {self._state(c)}")
        for g in self.book.given:
            if g.fp:
                linked = "linked" if g.peer_id in self.node.links else "not linked"
                lines.append(f"  invite used by {printable(g.nick) or g.peer_id} (key "
                             f"{short_form(g.fp)}): {linked}")
        unused = sum(1 for g in self.book.given if not g.fp)
        head = ["static peers and contacts:" if lines else "no static peers nor contacts"]
        tail = [f"  {unused} invite(s) given and not used yet"] if unused else []
        onion = self.onion
        tor = (f"Tor: {onion.state}" + (f", our onion {onion.host}" if onion.host else "")
               if onion is not None else "Tor: off (--tor or --tor-control)")
        return head + lines + tail + [tor]

    def _state(self, c: Contact) -> str:
        if c.key in self._refused:
            return f"refused: it showed another key than {short_form(c.fp)}"
        link = self.node.links.get(c.peer_id) if c.peer_id else None
        if link is not None:
            return f"linked ({link.tls or 'plain'})"
        state = self.dialer.state(c.key)
        told = self._told.get(c.key)
        return (state.value if state is not None else "idle") + (
            f" (refused: {told})" if told else "")


class OnionServerFactory(PeerServerFactory):
    """The peers that come through our onion: TLS from the first byte (``onion``'s listener
    wraps this factory), and let in only with an invite of ours (``admit``)."""

    def __init__(self, node: Node, clock: Any, admit: Admit) -> None:
        super().__init__(node, clock)
        self.admit = admit

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        """A gated, TLS-first peer protocol (None past MAX_INBOUND, as the LAN's)."""
        if super().buildProtocol(addr) is None:
            return None
        return PeerProtocol(self.node, self.clock, registry=self.open, tls_first=True,
                            admit=self.admit)


class Reach:
    """What the node's service starts and stops for static peers and Tor: the keeper, and
    our Tor with its onion listener (stopped after the goodbyes, which go over it too)."""

    def __init__(self, keeper: LinkKeeper, server: OnionServerFactory | None) -> None:
        self.keeper = keeper
        self.server = server

    def start(self) -> None:
        """The keeper dials; Tor starts in the background."""
        self.keeper.start()
        if self.keeper.onion is not None:
            self.keeper.onion.start()

    def stop(self) -> None:
        """We leave: nothing more is dialed."""
        self.keeper.stop()

    def connections(self) -> set[PeerProtocol]:
        """Every connection of ours here, to close at shutdown."""
        open_ = set(self.keeper.dialer.outgoing)
        if self.server is not None:
            open_ |= self.server.open
        return open_

    def close(self) -> defer.Deferred[Any]:
        """After the goodbyes: Tor goes, within TOR_STOP_TIMEOUT."""
        onion = self.keeper.onion
        if onion is None:
            return defer.succeed(None)
        d = onion.stop()
        d.addTimeout(TOR_STOP_TIMEOUT, self.keeper.reactor)
        return d.addErrback(lambda _: None)


def build_reach(node: Node, reactor: Any, data_dir: str, peers: list[tuple[str, int]],
                bind_host: str | None, tor: bool, control: str | None,
                torrc: list[tuple[str, str]] | None) -> Reach:
    """The static peers (``--peer``, added to those kept) and, with ``tor`` or ``control``,
    Tor; a StartError if Tor can't be had (no ``tor`` program)."""
    book = Book(os.path.join(data_dir, CONTACTS_NAME))
    for host, port in peers:
        if book.find_contact(f"{host}:{port}") is None:
            why = book.add(Contact(PEER, host, port))
            if why:
                log.warn("--peer {host}:{port} not kept: {why}", host=host, port=port, why=why)
    onion = server = None
    if (tor or control) and node.identity is not None:
        from p2pchat.onion import Onion, tor_binary  # (only with --tor or --tor-control)

        if tor:
            tor_binary()  # a clear StartError now if there is none
        keeper_ref: list[LinkKeeper] = []
        server = OnionServerFactory(node, reactor,
                                    lambda join, fp: keeper_ref[0].admit(join, fp))
        onion = Onion(reactor, data_dir, node.identity, server,
                      lambda text, error: node.notice(text, error), control, torrc)
    keeper = LinkKeeper(node, reactor, book, bind_host, onion)
    if server is not None:
        keeper_ref.append(keeper)
    node.reach = keeper
    return Reach(keeper, server)
