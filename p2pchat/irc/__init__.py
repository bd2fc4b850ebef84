"""The IRC face (``--irc HOST:PORT``): a small local IRC server; its clients are faces of a peer.

Any IRC client (irssi, weechat, HexChat) connects to it.  Each room is a channel (``general`` is
``#general``, ``ops`` is ``#ops``): peers in it are channel members, their lines are PRIVMSGs to
it, and what the client says there is said to the room.  JOIN and PART of a room are the peer's
``/join`` and ``/part``.  A PRIVMSG to a nick is a private message; private lines received come
as PRIVMSGs to our nick.  The IRC nick *is* the peer's nick: a client is given it at
registration, whatever nick it asked for, and renames the peer only by a NICK command after.

Several clients may attach at once.  They share one peer, so they share its rooms: a JOIN or
PART by one (or by the console) is seen by all.  Each client sees what the others said, in
rooms and privately; IRC servers don't echo a client's own lines back to it, so neither do we,
unless it asked for IRCv3's echo-message (caps.py has the capabilities offered).

The face talks to the chat only through ``interfaces.IChat``.  Its modules, from the bottom:

- ``names``: nicks, masks and channels (pure), and the ``Roster``: one unique IRC nick per
  linked peer;
- ``text``: IRC lines as text (the 512-byte line, cleaning, cutting long lines);
- ``caps``: the IRCv3 capabilities offered, their negotiation, and the tags they add;
- ``lockout``: wrong passwords by host (pure);
- ``lan``: what the clients of one peer share (the chat, the roster, who left);
- ``client``: one connection on ``LineReceiver``: framing, flood (``flow.TokenBucket``),
  back-pressure (``flow.Backpressure``), liveness, the lines it is sent;
- the command handlers by concern: ``register`` (CAP, PASS, NICK, USER, PING...),
  ``channels`` (JOIN, PART, NAMES, TOPIC, MODE, LIST), ``playback`` (history on JOIN,
  CHATHISTORY), ``queries`` (WHO, WHOIS, ISON,
  USERHOST), ``talk`` (PRIVMSG, NOTICE, TAGMSG), ``own_commands`` (``/msg *p2pchat``, IGNORE);
  ``dispatch`` puts them in one table;
- ``fanout``: ``IrcFactory``, the clients of one peer and the node's events shown to them;
- ``service``: ``IrcService``, the listener and the shutdown (``flow.close_within``).

What other code (service.py, the tests) uses is re-exported here, and so are the ``--irc``
address parser and bind rule, which live in ``options.py`` with every other option.
"""

from __future__ import annotations

from p2pchat.irc.channels import NO_TOPIC, TOPIC
from p2pchat.irc.playback import CHATHISTORY_LIMIT, CHATHISTORY_WINDOW, HISTORY_PLAYBACK
from p2pchat.irc.client import (FLOOD_BURST, FLOOD_RATE, MAX_OUTBOX_BYTES, PING_INTERVAL,
                                PRE_REGISTRATION, REGISTRATION_TIMEOUT, IrcClientProtocol)
from p2pchat.irc.fanout import MAX_UNREGISTERED, IrcFactory
from p2pchat.irc.lan import MAX_TARGETS, Lan
from p2pchat.irc.lockout import (MAX_GUESSING_HOSTS, PASSWORD_LOCKOUT, PASSWORD_TRIES,
                                 PASSWORD_WINDOW, Lockout)
from p2pchat.irc.names import (CHANNEL, FLAG_SUFFIX, MAX_USER_CHARS, NICK_SUFFIX, NOT_HASH,
                               SELF_HOST, Member, Roster, channel, channel_room, irc_fold,
                               irc_host, irc_nick, irc_nick_problem, irc_user, is_channel)
from p2pchat.irc.own_commands import SERVICE_HELP, SERVICE_MASK, SERVICE_NICK
from p2pchat.irc.register import MAX_IRC_CLIENTS
from p2pchat.irc.service import CLOSE_TIMEOUT, DEFAULT_IRC_PORT, IrcService
from p2pchat.irc.text import MAX_IRC_LINE_BYTES, SERVER_NAME, split_text
from p2pchat.addresses import LOOPBACK, check_irc_bind, is_loopback, parse_irc_address
from p2pchat.wire import MAX_NICK_CHARS

__all__ = [
    "CHANNEL", "CHATHISTORY_LIMIT", "CHATHISTORY_WINDOW", "CLOSE_TIMEOUT", "DEFAULT_IRC_PORT", "FLAG_SUFFIX", "FLOOD_BURST", "FLOOD_RATE",
    "HISTORY_PLAYBACK", "IrcClientProtocol", "IrcFactory", "IrcService", "Lan", "LOOPBACK",
    "Lockout", "MAX_GUESSING_HOSTS", "MAX_IRC_CLIENTS", "MAX_IRC_LINE_BYTES", "MAX_NICK_CHARS",
    "MAX_OUTBOX_BYTES", "MAX_TARGETS", "MAX_UNREGISTERED", "MAX_USER_CHARS", "Member",
    "NICK_SUFFIX", "NOT_HASH", "NO_TOPIC", "PASSWORD_LOCKOUT", "PASSWORD_TRIES",
    "PASSWORD_WINDOW", "PING_INTERVAL", "PRE_REGISTRATION", "REGISTRATION_TIMEOUT", "Roster",
    "SELF_HOST", "SERVER_NAME", "SERVICE_HELP", "SERVICE_MASK", "SERVICE_NICK", "TOPIC",
    "channel", "channel_room", "check_irc_bind", "irc_fold", "irc_host", "irc_nick",
    "irc_nick_problem", "irc_user", "is_channel", "is_loopback", "parse_irc_address",
    "split_text",
]
