"""Registration and the connection's upkeep: CAP, PASS, NICK, USER, then the welcome, the MOTD
and every room the peer is in; PING, PONG, QUIT, AWAY.

The IRC nick *is* the peer's nick: a client is given it at registration, whatever nick it
asked for (connecting never renames the peer), and renames the peer only by a NICK command
after.  A password (``--irc-password``) is checked once per connection; wrong ones count
towards the host's lockout (lockout.py).
"""

from __future__ import annotations

import hmac

from twisted.logger import Logger
from twisted.words.protocols import irc

from p2pchat import __version__
from p2pchat.irc.caps import CHATHISTORY, negotiate
from p2pchat.irc.channels import enter
from p2pchat.irc.playback import CHATHISTORY_LIMIT
from p2pchat.irc.client import Handler, IrcClientProtocol
from p2pchat.irc.lan import refusal
from p2pchat.irc.names import CHANNEL, irc_nick_problem
from p2pchat.irc.own_commands import SERVICE_NICK
from p2pchat.irc.text import SERVER_NAME
from p2pchat.wire import MAX_NICK_CHARS

log = Logger()

#: Most IRC clients registered with one peer at once; one more is told so at registration
#: and disconnected.
MAX_IRC_CLIENTS = 16


def cap(client: IrcClientProtocol, params: list[str]) -> None:
    """IRCv3 capability negotiation (caps.py); CAP END lets a held registration go on."""
    if negotiate(client, params):
        try_register(client)


def password(client: IrcClientProtocol, params: list[str]) -> None:
    if client.registered:
        client.numeric(irc.ERR_ALREADYREGISTRED, text="You may not reregister")
    elif not params:
        client.numeric(irc.ERR_NEEDMOREPARAMS, "PASS", text="Not enough parameters")
    else:
        client.password = params[0]


def user(client: IrcClientProtocol, params: list[str]) -> None:
    if client.registered:
        client.numeric(irc.ERR_ALREADYREGISTRED, text="You may not reregister")
    elif not params or not params[0]:
        client.numeric(irc.ERR_NEEDMOREPARAMS, "USER", text="Not enough parameters")
    else:
        client.user_given = True
        try_register(client)


def nick(client: IrcClientProtocol, params: list[str]) -> None:
    """Before registration: the nick is only checked for its form and kept (the client is
    given the peer's nick at registration, whatever it asked: connecting never renames the
    peer, and nothing about the LAN is answered to a client that has not registered).
    After: a nick change of the peer on the LAN, on purpose."""
    if not params or not params[0]:
        client.numeric(irc.ERR_NONICKNAMEGIVEN, text="No nickname given")
        return
    wanted = params[0]
    problem = irc_nick_problem(wanted)
    if problem:
        client.numeric(irc.ERR_ERRONEUSNICKNAME, wanted[:MAX_NICK_CHARS * 2],
                       text=f"Erroneous nickname: {problem}")
        return
    if not client.registered:
        client.wanted_nick = wanted
        try_register(client)
        return
    lan = client.lan
    holder = lan.roster.holder(wanted)
    if holder is not None:
        client.numeric(irc.ERR_NICKNAMEINUSE, wanted,
                       text=f"Nickname is already in use by a peer on the LAN ({holder.mask})")
        return
    if wanted == lan.node.nick:
        return
    problem = refusal(lan.run_verb(client, lan.node.set_nick, wanted))
    if problem:
        client.numeric(irc.ERR_ERRONEUSNICKNAME, wanted, text=f"Erroneous nickname: {problem}")
    # else: the node's NickChanged event tells every client, this one included.


def try_register(client: IrcClientProtocol) -> None:
    """Registration is done once NICK and USER came (and CAP END, if CAP LS did): the
    password is checked, the client counted, then welcomed into every room of the peer."""
    if (client.registered or client.negotiating or not client.user_given
            or not client.wanted_nick):
        return
    lan = client.lan
    if lan.password and not hmac.compare_digest((client.password or "").encode("utf-8"),
                                                lan.password.encode("utf-8")):
        log.warn("IRC client {peer} gave a wrong password", peer=client.describe())
        lan.lockout.wrong_password(client.host(), client.clock.seconds())
        client.numeric(irc.ERR_PASSWDMISMATCH, text="Password incorrect")
        client.close("bad password")
        return
    if client.factory.registered_count() >= MAX_IRC_CLIENTS:
        log.warn("IRC client {peer} refused: {n} already attached", peer=client.describe(),
                 n=MAX_IRC_CLIENTS)
        client.close(f"too many IRC clients (at most {MAX_IRC_CLIENTS})")
        return
    client.registration_done()
    log.info("IRC client {peer} registered as {nick}", peer=client.describe(), nick=client.nick)
    me = lan.roster.me
    asked = client.wanted_nick
    _welcome(client)
    if asked != me.nick:
        # The client is told its nick is the peer's (001 said so; this NICK is for clients
        # that keep the nick they asked for); the LAN sees no rename.
        client.send("NICK", text=me.nick, prefix=f"{asked}!{me.user}@{me.host}")
    motd(client, [])
    if asked != me.nick:
        client.server_notice(f"You are {me.nick}: an IRC client shows the peer's nick, and "
                             f"connecting never renames the peer. /nick {asked} renames the "
                             "peer on the LAN.")
    client.warn_of_nick_users(lan.roster.using_my_nick())
    client.in_general = True
    for room in client.shown_rooms():  # every room the peer is in, not only #general
        enter(client, room)


def _welcome(client: IrcClientProtocol) -> None:
    lan = client.lan
    me = lan.roster.me
    client.numeric(irc.RPL_WELCOME, text=f"Welcome to the p2pchat LAN, {me.mask}")
    client.numeric(irc.RPL_YOURHOST,
                   text=f"Your host is {SERVER_NAME}, running p2pchat {__version__}")
    client.numeric(irc.RPL_CREATED, text=f"This server was created {lan.started}")
    client.numeric(irc.RPL_MYINFO, SERVER_NAME, __version__, "i", "nt")
    tokens = lan.isupport()
    if CHATHISTORY in client.caps:  # only then: a client without caps sees 005 as before
        tokens += [f"CHATHISTORY={CHATHISTORY_LIMIT}", "MSGREFTYPES=timestamp,msgid"]
    client.numeric(irc.RPL_ISUPPORT, *tokens, text="are supported by this server")


def motd(client: IrcClientProtocol, params: list[str]) -> None:
    node = client.lan.node
    lines = [
        f"This is the p2pchat peer {node.nick} ({node.peer_id}).",
        f"{CHANNEL} is the LAN room: every peer on this network is in it.",
        "/join #room joins a room (or makes it), /part #room leaves it; /msg NICK is private.",
        "QUIT detaches this client; the peer keeps running.",
        f"/msg {SERVICE_NICK} help: p2pchat's own commands (search, send and accept files,"
        " invites, ignore and more).",
    ]
    client.numeric(irc.RPL_MOTDSTART, text=f"- {SERVER_NAME} Message of the day -")
    for line in lines:
        client.numeric(irc.RPL_MOTD, text=f"- {line}")
    client.numeric(irc.RPL_ENDOFMOTD, text="End of /MOTD command")


def ping(client: IrcClientProtocol, params: list[str]) -> None:
    if not params:
        client.numeric(irc.ERR_NOORIGIN, text="No origin specified")
    else:
        client.send("PONG", SERVER_NAME, text=params[0])


def pong(client: IrcClientProtocol, params: list[str]) -> None:
    """Nothing to do: any line counts as a sign of life (the client's flood check)."""


def quit_(client: IrcClientProtocol, params: list[str]) -> None:
    client.close(f"Quit: {params[0]}" if params else "Quit")


def away(client: IrcClientProtocol, params: list[str]) -> None:
    """AWAY TEXT marks us away (to every peer, as /away does), AWAY alone brings us back."""
    client.lan.node.set_away(params[0] if params else "")
    if params and params[0].strip():
        client.numeric(irc.RPL_NOWAWAY, text="You have been marked as being away")
    else:
        client.numeric(irc.RPL_UNAWAY, text="You are no longer marked as being away")


COMMANDS: dict[str, Handler] = {
    "CAP": cap, "PASS": password, "USER": user, "NICK": nick, "MOTD": motd, "PING": ping,
    "PONG": pong, "QUIT": quit_, "AWAY": away,
}
