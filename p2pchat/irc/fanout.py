"""All the IRC clients of one peer, and the node's events shown to them.

``IrcFactory`` observes the node once and shows each event to every registered client: a
line said in a room to the clients showing that room, a private line to every client (one
said by another client or face of ours comes as a PRIVMSG from our nick to the other party,
as bouncers show it), peers linking, leaving and renaming as JOIN, QUIT and NICK.  IRC
servers don't echo a client's own lines back to it, so neither do we (``Lan.origin``), but
to a client that asked for IRCv3's echo-message.
"""

from __future__ import annotations

from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import ServerFactory

from p2pchat import events
from p2pchat.files.describe import event_text
from p2pchat.interfaces import IChat
from p2pchat.irc.caps import AWAY_NOTIFY, ECHO_MESSAGE, MESSAGE_TAGS, TYPING_ACTIVE, TYPING_TAG
from p2pchat.irc.caught_up import CaughtUp
from p2pchat.irc.channels import enter
from p2pchat.irc.client import IrcClientProtocol
from p2pchat.irc.dispatch import COMMANDS
from p2pchat.irc.lan import Lan
from p2pchat.irc.lockout import Lockout
from p2pchat.irc.names import Roster, channel
from p2pchat.irc.text import line

#: Most connections waiting to register at once, counted apart from the registered clients:
#: one more closes the oldest waiting one, so connections that never register can't lock
#: a real client out (a client registers in its first lines; a stranger's socket waits).
MAX_UNREGISTERED = 8


class IrcFactory(ServerFactory[IrcClientProtocol]):
    """The clients of one peer (``clients``) and what they share (``lan``)."""

    noisy = False  # no "Starting factory" log lines; IrcService logs where it listens
    commands = COMMANDS

    def __init__(self, node: IChat, clock: IReactorTime, password: str | None = None) -> None:
        self.node = node
        self.lan = Lan(node, clock, password)
        #: the catch-up batches open (caught_up.py)
        self.caught_up = CaughtUp(clock)
        #: every connection, registered or not, oldest first (a dict keeps the order)
        self.clients: dict[IrcClientProtocol, None] = {}
        self._attached = False

    def buildProtocol(self, addr: IAddress | None) -> IrcClientProtocol:
        client = IrcClientProtocol(self)
        client.factory = self
        return client

    @property
    def roster(self) -> Roster:
        return self.lan.roster

    @property
    def lockout(self) -> Lockout:
        return self.lan.lockout

    def attach(self) -> None:
        """Start observing the node; the roster starts from its current links."""
        if self._attached:
            return
        self._attached = True
        self.lan.fill_roster()
        self.node.subscribe(self.on_event)

    def detach(self) -> None:
        self._attached = False
        self.node.unsubscribe(self.on_event)

    # --- the connections --------------------------------------------------------------------

    def client_connected(self, client: IrcClientProtocol) -> None:
        """A new connection.  Those waiting to register are counted apart from the registered
        clients (register.MAX_IRC_CLIENTS, checked at registration): when MAX_UNREGISTERED
        already wait, the oldest of them is closed to make room."""
        waiting = self.waiting()
        if len(waiting) >= MAX_UNREGISTERED:  # close() logs it
            waiting[0].close(f"too many connections waiting to register (at most "
                             f"{MAX_UNREGISTERED}); the oldest is closed")
        self.clients[client] = None

    def client_disconnected(self, client: IrcClientProtocol) -> None:
        self.clients.pop(client, None)
        self.caught_up.forget(client)

    def waiting(self) -> list[IrcClientProtocol]:
        """The connections not registered yet (and not going), oldest first."""
        return [c for c in self.clients if not c.registered and not c.closing]

    def registered_count(self) -> int:
        return sum(1 for c in self.clients if c.registered and not c.closing)

    def _registered(self, room: str | None = None) -> list[IrcClientProtocol]:
        """The clients to show something: registered, not going, and (given ``room``)
        showing that room."""
        return [c for c in self.clients
                if c.registered and not c.closing and (room is None or c.in_channel(room))]

    # --- the node's events ------------------------------------------------------------------

    def on_event(self, event: events.Event) -> None:
        """The node's events, as IRC lines to every registered client."""
        if isinstance(event, (events.PeerJoined, events.PeerLeft, events.NickChanged,
                              events.PeersChanged)):
            self._show_peer_event(event)
            # Then warn of any other peer now using our nick (each client once per peer).
            using = self.lan.roster.using_my_nick()
            for client in self._registered():
                client.warn_of_nick_users(using)
        elif isinstance(event, events.ChatLine):
            self._chat(event)
        elif isinstance(event, events.RoomChanged):
            self._room_changed(event)
        elif isinstance(event, events.Typing):
            self._typing(event)
        elif isinstance(event, events.AwayChanged):
            if not event.own:
                member = self.lan.roster.peer(event.peer_id)
                for client in self._registered():
                    if member is not None and client.has(AWAY_NOTIFY):
                        client.send("AWAY", prefix=member.mask, text=event.text or None)
        elif isinstance(event, events.TransferChanged):
            text = event_text(event.view, event.what)
            if text and event.what != "progress":  # offers and results, not every second
                for client in self._registered():
                    client.server_notice(text.replace("/accept", "/msg *p2pchat accept")
                                         .replace("/reject", "/msg *p2pchat reject"))
        elif isinstance(event, events.Notice):
            if event.topic == events.OWN_NICK:
                return  # each client is warned in IRC's names (warn_of_nick_users)
            if self.lan.origin is not None:
                self.lan.verb_notices.append(event.text)
            for client in self._registered():
                client.server_notice(("! " if event.error else "") + event.text)

    def _show_peer_event(self, event: events.Event) -> None:
        lan = self.lan
        if isinstance(event, events.PeerJoined):
            for client in self.clients:
                client.told_kept.discard(event.peer_id)  # back: told anew when away again
            member = lan.roster.add(event.peer_id, event.nick, event.address,
                                    lan.flagged(event.peer_id))
            if member is not None:
                lan.back(member)
                # A peer back after a lost link is still in the rooms it was in (its next
                # rooms line tells only what changed): show it joining those too.
                mine = lan.my_rooms()
                rooms = [r for r in lan.rooms_of(member) if r in mine]
                for client in self._registered():
                    for room in rooms:
                        if client.in_channel(room):
                            client.show_join(member, room)
        elif isinstance(event, events.PeerLeft):
            member = lan.roster.remove(event.peer_id)
            if member is not None:
                lan.left(member)
                # To every client, also one showing no channel with it: irssi closes the
                # peer's query window's nick with it ("has quit"); others ignore it.
                reason = event.reason or "left the chat"
                for client in self._registered():
                    client.show_quit(member, reason)
        elif isinstance(event, events.NickChanged):
            self._nick_changed(event)
        elif isinstance(event, events.PeersChanged):
            self._flags_changed()

    def _flags_changed(self) -> None:
        """A pin was made or forgotten (``/trust``, ``/forget`` in another face), or the peer
        list changed: a peer whose flag changed is renamed (``carol|other`` to ``carol``)."""
        roster = self.lan.roster
        for view in self.node.users():
            member = roster.peer(view.peer_id)
            if member is None or member.flagged == view.flagged:
                continue
            change = roster.rename_peer(view.peer_id, view.nick, view.flagged)
            if change is not None:
                for client in self._registered():
                    client.show_nick(*change)

    def _chat(self, event: events.ChatLine) -> None:
        lan = self.lan
        me = lan.roster.me
        if event.room.startswith("@"):  # a private line: no channel
            other = lan.sender(event.room[1:], event.private or event.nick)
            for client in self._registered():
                batch = self.caught_up.batch_for(client, event.room, other.nick,
                                                 event.replayed)
                if event.own:
                    # Said by another client or face of ours: shown as bouncers do, from us
                    # to the other party (irssi and weechat put it in that query).
                    command = self._echo(client)
                    if command:
                        client.show_chat(me, other.nick, event.text, event.action,
                                         event.when, event.message_id, batch, command)
                else:
                    client.show_chat(other, me.nick, event.text, event.action, event.when,
                                     event.message_id, batch)
            return
        member = me if event.own else lan.sender(event.sender_id, event.nick)
        for client in self._registered(event.room):
            command = self._echo(client) if event.own else "PRIVMSG"
            batch = self.caught_up.batch_for(client, event.room, channel(event.room),
                                             event.replayed)
            if command:
                client.show_chat(member, channel(event.room), event.text, event.action,
                                 event.when, event.message_id, batch, command)

    def _typing(self, event: events.Typing) -> None:
        """A peer types: ``@+typing=active TAGMSG`` from it, to the clients with
        message-tags that show that channel (or, in a private talk, to our nick)."""
        lan = self.lan
        member = lan.roster.peer(event.peer_id)
        if member is None:
            return
        private = event.room.startswith("@")
        target = lan.roster.me.nick if private else channel(event.room)
        clients = self._registered() if private else self._registered(event.room)
        for client in clients:
            if client.has(MESSAGE_TAGS):
                client.write_line(line("TAGMSG", target, prefix=member.mask),
                                  extra=f"{TYPING_TAG}={TYPING_ACTIVE}")

    def _echo(self, client: IrcClientProtocol) -> str:
        """How our own line is shown to ``client``: "" (not at all) to the client that said
        it, unless it asked for echo-message (then as it said it: PRIVMSG or NOTICE)."""
        if client is not self.lan.origin:
            return "PRIVMSG"
        return self.lan.origin_command if client.has(ECHO_MESSAGE) else ""

    def _room_changed(self, event: events.RoomChanged) -> None:
        lan = self.lan
        if event.own:
            # The peer joined or left a room (from any client or face): every client with it.
            for client in self._registered():
                if event.joined:
                    enter(client, event.room)
                else:
                    client.show_part(lan.roster.me, event.room, lan.part_reason)
            return
        member = lan.roster.peer(event.peer_id)
        if member is None:
            return  # not linked (so not shown anywhere): nothing to tell
        for client in self._registered(event.room):
            if event.joined:
                client.show_join(member, event.room)
            else:
                client.show_part(member, event.room)

    def _nick_changed(self, event: events.NickChanged) -> None:
        roster = self.lan.roster
        if event.own:
            displaced, old, new = roster.rename_me(event.new)
            for client in self._registered():
                for moved in displaced:
                    client.show_nick(*moved)
                if old.nick != new.nick:
                    client.show_nick(old, new)
        else:
            change = roster.rename_peer(event.peer_id, event.new, self.lan.flagged(event.peer_id))
            if change is not None:
                # Every client: its channels with the peer and any query with it follow.
                for client in self._registered():
                    client.show_nick(*change)
