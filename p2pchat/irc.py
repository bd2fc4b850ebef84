"""The IRC face (``--irc HOST:PORT``): a small local IRC server; its clients are faces of a peer.

Any IRC client (irssi, weechat, HexChat) connects to it.  Each room is a channel (``general`` is
``#general``, ``ops`` is ``#ops``): peers in it are channel members, their lines are PRIVMSGs to
it, and what the client says there is said to the room.  JOIN and PART of a room are the peer's
``/join`` and ``/part``.  A PRIVMSG to a nick is a private message; private lines received come
as PRIVMSGs to our nick.  The IRC nick *is* the peer's nick: a client is given it at
registration, whatever nick it asked for, and renames the peer only by a NICK command after.

Several clients may attach at once.  They share one peer, so they share its rooms: a JOIN or
PART by one (or by the console) is seen by all.  Only ``#general``, which the peer can't leave,
may be hidden by one client alone (PART) and shown again (JOIN).  Each client sees what the
others said, in rooms and privately (a private line said by another client or face comes as a
PRIVMSG from our nick to the other party, as bouncers show it); IRC servers don't echo a
client's own lines back to it, so neither do we.

Layers, as elsewhere: ``Roster`` (pure) decides which IRC nick stands for which peer;
``IrcClientProtocol`` translates one client's lines into node verbs and events into lines;
``IrcFactory`` observes the node once and fans events out; ``IrcService`` listens.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, TypeVar

from twisted.application.service import Service
from twisted.internet import defer, error
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import ServerFactory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.protocols import irc
from zope.interface import implementer

from p2pchat import __version__, events
from p2pchat.absent import RECENT_PEERS
from p2pchat.errors import StartError
from p2pchat.interfaces import Outcome, Refused, Said
from p2pchat.node import Node, PeerView
from p2pchat.options import LOOPBACK, check_irc_bind, parse_irc_address  # noqa: F401
from p2pchat.rooms import room_name
from p2pchat.wire import DEFAULT_ROOM, MAX_NICK_CHARS, MAX_ROOM_CHARS, MAX_ROOMS, nick_problem

log = Logger()

# --- limits and names (documented in the README's IRC section) ------------------------------

#: An IRC line, CR LF included (RFC 1459/2812).  A longer one is refused with 417 and skipped.
MAX_IRC_LINE_BYTES = 512
#: Most IRC clients registered with one peer at once; one more is told so at registration
#: and disconnected.
MAX_IRC_CLIENTS = 16
#: Most connections waiting to register at once, counted apart from the registered clients:
#: one more closes the oldest waiting one, so connections that never register can't lock
#: a real client out (a client registers in its first lines; a stranger's socket waits).
MAX_UNREGISTERED = 8
#: Flood control, a token bucket per client: this many lines at once, refilled at FLOOD_RATE
#: lines a second.  A client past it is disconnected ("Excess Flood"), as ircds do.
FLOOD_BURST = 40
FLOOD_RATE = 5.0
#: A client that has not registered (NICK and USER, and PASS if needed) within this many
#: seconds is disconnected (clients send those lines at once, so this can be short).
REGISTRATION_TIMEOUT = 10.0
#: A client silent this long is sent a PING; silent twice this long, it is disconnected.
PING_INTERVAL = 120.0
#: Bytes we may write to a client that stopped reading (its socket buffer is full) before we
#: drop it: a stuck client must not make the peer's memory grow without bound.
MAX_OUTBOX_BYTES = 1024 * 1024
#: How long shutdown waits for clients to take their ERROR line before cutting them.
CLOSE_TIMEOUT = 2.0
#: The user part of ``nick!user@host`` (the peer id, cleaned) is cut to this many characters.
MAX_USER_CHARS = 32
#: Lines of a room's history played back to a client that joins it.
HISTORY_PLAYBACK = 20
#: At most this many targets in one PRIVMSG/NOTICE/JOIN/PART (``a,b,c``).
MAX_TARGETS = 8

#: Password guessing: after this many wrong passwords from one host within PASSWORD_WINDOW
#: seconds, every connection from that host is closed at once for PASSWORD_LOCKOUT seconds
#: (one log line says so).  Each connection gets one PASS try; this bounds how fast
#: connections after one another can guess.
PASSWORD_TRIES = 5
PASSWORD_WINDOW = 60.0
PASSWORD_LOCKOUT = 60.0
#: Hosts whose wrong passwords are remembered at most (the oldest is forgotten first).
MAX_GUESSING_HOSTS = 1024

DEFAULT_IRC_PORT = 6667
SERVER_NAME = "p2pchat"
CHANNEL = f"#{DEFAULT_ROOM}"
TOPIC = "the LAN room: everyone running p2pchat on this network is in it"
#: What TOPIC says of the other rooms (331): p2pchat rooms have no topic.
NO_TOPIC = "No topic is set (p2pchat rooms have no topic)"
#: How a second peer with the same nick is shown: ``bob``, ``bob|2``, ``bob|3``...
NICK_SUFFIX = "|"
#: How a flagged peer is shown: one whose key is not the one pinned for its nick (``carol?``
#: in the other faces; ``?`` can't be in an IRC nick), or another peer using our own nick:
#: ``carol|other``, ``alice|other``.
FLAG_SUFFIX = "|other"
#: Our own hostmask's host: this peer, as its IRC clients see it.
SELF_HOST = "local"
#: The service nick (as ZNC's ``*status``): ``/msg *p2pchat ignore bob`` runs p2pchat's own
#: commands that IRC clients keep for themselves (their /ignore is local).  ``*`` can't be in
#: a peer's IRC nick, so no peer can be shown as it.
SERVICE_NICK = "*p2pchat"
SERVICE_MASK = f"{SERVICE_NICK}!p2pchat@{SERVER_NAME}"
#: What ``/msg *p2pchat help`` answers (also ``/quote IGNORE`` and ``/quote UNIGNORE``).
SERVICE_HELP = (
    "p2pchat's commands, as /msg *p2pchat COMMAND (or /quote COMMAND):",
    "  ignore [NICK]   hide NICK's lines from now on (by its key, kept); alone: who is ignored",
    "  unignore NICK   show NICK's lines again",
    "  help            this list",
)

#: Why a channel name that doesn't start with '#' is refused (403).
NOT_HASH = "channels here are rooms, named '#' and the room's name (#general, #ops)"

#: Commands a client may send before it has registered.
PRE_REGISTRATION = frozenset({"PASS", "NICK", "USER", "CAP", "PING", "PONG", "QUIT"})
#: Characters no IRC nick may hold (they delimit prefixes, lists and masks).
_NICK_FORBIDDEN = frozenset(" ,*?!@:.\"'")
#: Characters an IRC nick may not start with (channel prefixes, status prefixes, digits).
_NICK_BAD_FIRST = frozenset("#&+!~%$-0123456789")
#: ERR_INPUTTOOLONG (not in twisted.words' table).
ERR_INPUTTOOLONG = "417"
ERR_INVALIDCAPCMD = "410"
ERR_TOOMANYTARGETS = "407"
#: ERR_BADCHANNAME (not in twisted.words' table): the name can't be a room's.
ERR_BADCHANNAME = "479"


# --- nicks and masks (pure) -----------------------------------------------------------------


def irc_fold(nick: str) -> str:
    """Nicks compare without ASCII case (we announce CASEMAPPING=ascii)."""
    return nick.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def irc_nick(name: str) -> str:
    """A LAN nick (anything printable, up to 64 characters from a base peer) as a legal IRC
    nick: forbidden characters become ``_``, a bad first character gets a ``_`` before it."""
    out = "".join("_" if ch in _NICK_FORBIDDEN or not ch.isprintable() else ch
                  for ch in name[:MAX_NICK_CHARS])
    if not out or out[0] in _NICK_BAD_FIRST:
        out = "_" + out
    return out[:MAX_NICK_CHARS]


def irc_nick_problem(nick: str) -> str | None:
    """Why a client can't take ``nick``: the LAN's rules (wire.nick_problem), then IRC's."""
    problem = nick_problem(nick)
    if problem:
        return problem
    for ch in nick:
        if ch in _NICK_FORBIDDEN:
            return f"an IRC nick can't contain {ch!r}"
    if nick[0] in _NICK_BAD_FIRST:
        return f"an IRC nick can't start with {nick[0]!r}"
    return None


def irc_user(peer_id: str) -> str:
    """A peer id as the user part of a hostmask (only ``[A-Za-z0-9._-]``)."""
    cleaned = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_"
                      for ch in peer_id)
    return cleaned[:MAX_USER_CHARS] or "peer"


def irc_host(address: str) -> str:
    """``host:port`` (as the node reports it) as the host part of a hostmask."""
    host = address.rpartition(":")[0] if address.count(":") >= 1 else address
    host = "".join(ch for ch in host if ch.isascii() and (ch.isalnum() or ch in ".:-"))
    if host.startswith(":"):
        host = "0" + host  # "::1" would read as a trailing parameter in a WHO reply
    return host or "unknown"


def split_text(text: str, budget: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``budget`` UTF-8 bytes, at spaces where it can, so
    a long line from a peer fits IRC's 512-byte lines."""
    pieces = []
    while len(text.encode("utf-8")) > budget:
        cut = len(text.encode("utf-8")[:budget].decode("utf-8", "ignore"))
        space = text.rfind(" ", 0, cut)
        if space > cut // 2:
            cut = space
        cut = max(cut, 1)  # a budget below one character still makes progress
        pieces.append(text[:cut])
        text = text[cut:].lstrip(" ")
    if text or not pieces:
        pieces.append(text)
    return pieces


def _clean(text: str) -> str:
    """No CR, LF or NUL may reach a client inside a parameter (line injection)."""
    return text.replace("\r", " ").replace("\n", " ").replace("\0", " ")


def _middle(param: str) -> str:
    """A middle parameter: one word, not starting with ':' (that would begin the trailing one)."""
    word = _clean(param).replace(" ", "_")
    return word if word and not word.startswith(":") else "*" + word


def channel(room: str) -> str:
    """A room's channel: ``#`` and its name."""
    return f"#{room}"


def channel_room(target: str) -> tuple[str, str | None, str | None]:
    """A channel name as a client typed it (``#Ops``) to (room, error numeric, why): the room
    (case folded by the node's ``room_name``), or the numeric and reason to refuse it with."""
    if not target.startswith("#"):
        return "", irc.ERR_NOSUCHCHANNEL, NOT_HASH
    if target[1:2] == "#":  # "##ops" would be the room "#ops", which can't be
        return "", ERR_BADCHANNAME, "a room name is made of a-z, 0-9, '-' and '_'"
    room, problem = room_name(target[1:])
    if problem:
        return "", ERR_BADCHANNAME, problem
    return room, None, None


def is_channel(target: str) -> bool:
    """Whether a message target names a channel (of any IRC kind) rather than a nick."""
    return target[:1] in "#&+!"


@dataclass(frozen=True)
class Member:
    """One peer (or us) as IRC shows it."""

    nick: str  # unique among members, IRC-legal
    peer_id: str
    user: str
    host: str
    address: str = ""
    #: The peer's LAN nick as the node shows it, less the ``?`` of a flagged one.
    lan_nick: str = ""
    #: The node flags it: its key is not the one pinned for its nick.
    flagged: bool = False

    @property
    def mask(self) -> str:
        return f"{self.nick}!{self.user}@{self.host}"


class Roster:
    """Who is on the LAN (so in #general), as IRC sees it: us, and one unique IRC-legal nick
    per linked peer.  Which rooms each is in, the node knows (``IrcFactory.members``).

    LAN nicks need not be unique (two "bob"s) nor legal IRC nicks, but IRC clients track members
    by nick.  So a peer's IRC nick is its LAN nick cleaned (``irc_nick``); if that is taken, the
    first free of ``bob|2``, ``bob|3``...  A flagged peer, and any peer using our own nick, is
    shown with FLAG_SUFFIX (``alice|other``), so our nick is always ours and an impostor is
    marked.  A peer holding the nick we take is renamed out of the way (and so marked).
    Assigned nicks stay put while the peer stays, so nobody is renamed because someone else
    left.
    """

    def __init__(self, peer_id: str, nick: str) -> None:
        self.me = Member(irc_nick(nick), peer_id, irc_user(peer_id), SELF_HOST)
        self._peers: dict[str, Member] = {}

    def peers(self) -> list[Member]:
        return sorted(self._peers.values(), key=lambda m: irc_fold(m.nick))

    def members(self) -> list[Member]:
        return [self.me, *self.peers()]

    def peer(self, peer_id: str) -> Member | None:
        return self._peers.get(peer_id)

    def find(self, nick: str) -> Member | None:
        """The member shown as ``nick`` (any case), us included."""
        folded = irc_fold(nick)
        for member in self.members():
            if irc_fold(member.nick) == folded:
                return member
        return None

    def holder(self, nick: str) -> Member | None:
        """The peer (not us) shown as ``nick``, if any: we can't take that nick."""
        member = self.find(nick)
        return member if member is not None and member is not self.me else None

    def add(self, peer_id: str, nick: str, address: str, flagged: bool = False) -> Member | None:
        """A peer linked (``nick`` as the node shows it, ``flagged`` if the node flags it).
        Returns its member, or None if it was already listed."""
        if peer_id in self._peers or peer_id == self.me.peer_id:
            return None
        lan = _unflagged(nick, flagged)
        member = Member(self._free(lan, peer_id, flagged), peer_id, irc_user(peer_id),
                        irc_host(address), address, lan, flagged)
        self._peers[peer_id] = member
        return member

    def uses_my_nick(self, member: Member) -> bool:
        """Whether ``member`` is another peer whose LAN nick is ours, as IRC compares nicks."""
        return (member is not self.me
                and irc_fold(irc_nick(member.lan_nick)) == irc_fold(self.me.nick))

    def using_my_nick(self) -> list[Member]:
        return [m for m in self.peers() if self.uses_my_nick(m)]

    def remove(self, peer_id: str) -> Member | None:
        return self._peers.pop(peer_id, None)

    def rename_peer(self, peer_id: str, nick: str,
                    flagged: bool = False) -> tuple[Member, Member] | None:
        """A peer changed its nick (or the node flags it, or no longer).  Returns (old, new),
        or None if IRC sees no change of nick."""
        old = self._peers.get(peer_id)
        if old is None:
            return None
        lan = _unflagged(nick, flagged)
        shown = old.nick
        if lan != old.lan_nick or flagged != old.flagged:
            shown = self._free(lan, peer_id, flagged)
        new = replace(old, nick=shown, lan_nick=lan, flagged=flagged)
        self._peers[peer_id] = new
        if new.nick == old.nick:
            return None
        return old, new

    def rename_me(self, nick: str) -> tuple[list[tuple[Member, Member]], Member, Member]:
        """We changed our nick.  Returns the peers renamed out of our way (old, new), and our
        old and new member."""
        old_me = self.me
        self.me = replace(old_me, nick=irc_nick(nick))
        displaced = []
        for member in list(self._peers.values()):
            if irc_fold(member.nick) == irc_fold(self.me.nick):
                moved = replace(member, nick=self._free(member.lan_nick, member.peer_id,
                                                        member.flagged))
                self._peers[member.peer_id] = moved
                displaced.append((member, moved))
        return displaced, old_me, self.me

    def _free(self, name: str, peer_id: str, flagged: bool = False) -> str:
        """The IRC nick to show for a peer: its LAN nick made legal, marked if flagged or ours,
        numbered if that is taken; never longer than NICKLEN."""
        base = irc_nick(name)
        mark = FLAG_SUFFIX if flagged or irc_fold(base) == irc_fold(self.me.nick) else ""
        taken = {irc_fold(self.me.nick)}
        taken.update(irc_fold(m.nick) for pid, m in self._peers.items() if pid != peer_id)
        number = 1
        while True:
            tail = mark + (f"{NICK_SUFFIX}{number}" if number > 1 else "")
            candidate = base[:MAX_NICK_CHARS - len(tail)] + tail
            if irc_fold(candidate) not in taken:
                return candidate
            number += 1


def _unflagged(nick: str, flagged: bool) -> str:
    """A nick as the node shows it, less the ``?`` it adds to a flagged peer's nick."""
    return nick[:-1] if flagged and nick.endswith("?") and len(nick) > 1 else nick


# --- one client -----------------------------------------------------------------------------

T = TypeVar("T")


@implementer(IPushProducer)
class IrcClientProtocol(irc.IRC):
    """One IRC client attached to this peer.

    Bytes in are cut into lines here (not by ``irc.IRC.dataReceived``, which decodes each
    chunk as strict UTF-8 and so fails on a character split across reads or on latin-1
    input); each line is flood-checked, parsed with ``irc.parsemsg`` and dispatched to an
    ``irc_COMMAND`` method.  Nothing a client sends can raise out of here.
    """

    hostname = SERVER_NAME  # irc.IRC would otherwise look up our FQDN (DNS) per connection
    factory: IrcFactory

    def __init__(self) -> None:
        self.registered = False
        #: showing #general: the peer never leaves it, but one client may hide it (PART)
        self.in_general = False
        self.closing = False
        self.closed: defer.Deferred[None] = defer.Deferred()
        self._buffer = b""
        self._skipping = False  # inside an over-long line, until its newline
        self._wanted_nick: str | None = None
        self._user_given = False
        self._password: str | None = None
        self._negotiating = False  # CAP LS seen, CAP END not yet
        self._tokens = float(FLOOD_BURST)
        self._tokens_at = 0.0
        self._last_heard = 0.0
        self._paused = False
        self._backlog = 0
        self._registration_timer: Any = None
        self._pinger: LoopingCall | None = None
        #: the peers using our nick this client was warned of (once each while they do)
        self._warned: set[str] = set()
        #: the away peers this client was told its lines are kept for (until each is back)
        self.told_kept: set[str] = set()

    # --- connection -------------------------------------------------------------------------

    @property
    def clock(self) -> Any:
        return self.factory.clock

    @property
    def nick(self) -> str:
        """Our nick as this client knows it ("*" until it has registered)."""
        return self.factory.roster.me.nick if self.registered else "*"

    def connectionMade(self) -> None:
        super().connectionMade()
        self.transport.registerProducer(self, True)
        self._tokens_at = self._last_heard = self.clock.seconds()
        locked = self.factory.locked_out(self._host())
        if locked:
            # Guessing passwords: closed at once, unlogged (the lockout was logged once).
            self.closing = True
            self.transport.write(f"ERROR :Closing link: {locked}\r\n".encode("utf-8"))
            self.transport.loseConnection()
            return
        self.factory.client_connected(self)
        self._registration_timer = self.clock.callLater(REGISTRATION_TIMEOUT, self._not_registered)
        self._pinger = LoopingCall(self._check_alive)
        self._pinger.clock = self.clock
        self._pinger.start(PING_INTERVAL, now=False)

    def connectionLost(self, reason: Failure = None) -> None:
        self.closing = True
        if self._registration_timer is not None and self._registration_timer.active():
            self._registration_timer.cancel()
        if self._pinger is not None and self._pinger.running:
            self._pinger.stop()
        self.factory.client_disconnected(self)
        if not self.closed.called:
            self.closed.callback(None)

    def close(self, why: str) -> None:
        """Say why in an ERROR line (as ircds do), then hang up."""
        if self.closing:
            return
        log.info("IRC client {peer} disconnected: {why}", peer=self._describe(), why=why)
        self.sendLine(f"ERROR :Closing link: {_clean(why)}")
        self.closing = True
        self.transport.loseConnection()

    def _host(self) -> str:
        peer = self.transport.getPeer() if self.transport is not None else None
        return str(getattr(peer, "host", "?"))

    def _describe(self) -> str:
        peer = self.transport.getPeer() if self.transport is not None else None
        return f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}"

    def _not_registered(self) -> None:
        self.close(f"not registered within {REGISTRATION_TIMEOUT:.0f} s")

    def _check_alive(self) -> None:
        silent = self.clock.seconds() - self._last_heard
        if silent >= 2 * PING_INTERVAL:
            self.close(f"Ping timeout: {silent:.0f} seconds")
        elif silent >= PING_INTERVAL:
            self.sendLine(f"PING :{SERVER_NAME}")

    # --- back-pressure (IPushProducer: the transport tells us when the client stops reading)

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._backlog = 0

    def stopProducing(self) -> None:
        self.closing = True

    def sendLine(self, line: str) -> None:
        if self.closing or self.transport is None or self.transport.disconnected:
            return
        data = line.encode("utf-8") + b"\r\n"
        if self._paused:
            self._backlog += len(data)
            if self._backlog > MAX_OUTBOX_BYTES:
                log.warn("IRC client {peer} stopped reading ({n} bytes waiting): dropped",
                         peer=self._describe(), n=self._backlog)
                self.closing = True
                self.transport.abortConnection()
                return
        self.transport.write(data)

    # --- lines in ---------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            return  # hanging up: what else it says is not read
        self._buffer += data
        while not self.closing:
            line, newline, rest = self._buffer.partition(b"\n")
            if not newline:
                if len(self._buffer) > MAX_IRC_LINE_BYTES:
                    self._buffer = b""
                    if not self._skipping:
                        self._skipping = True
                        self._line_too_long()
                return
            self._buffer = rest
            if self._skipping:  # the end of a line already refused
                self._skipping = False
                continue
            line = line.rstrip(b"\r")
            if len(line) + 2 > MAX_IRC_LINE_BYTES:
                self._line_too_long()
            elif self._take_token():
                self._line(line)

    def _take_token(self) -> bool:
        """Spend one line of the flood allowance; False (and disconnect) when there is none."""
        now = self.clock.seconds()
        self._last_heard = now
        self._tokens = min(float(FLOOD_BURST), self._tokens + (now - self._tokens_at) * FLOOD_RATE)
        self._tokens_at = now
        self._tokens -= 1
        if self._tokens < 0:
            self.close("Excess Flood")
            return False
        return True

    def _line_too_long(self) -> None:
        if self._take_token():
            self._numeric(ERR_INPUTTOOLONG,
                          text=f"Input line was too long (the limit is {MAX_IRC_LINE_BYTES} "
                          "bytes with CR LF); it was ignored")

    def _line(self, raw: bytes) -> None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")  # clients still set to latin-1 stay readable
        text = text.replace("\0", "")
        if text.startswith("@"):  # IRCv3 tags: never negotiated, so ignored
            text = text.partition(" ")[2]
        if not text.strip():
            return
        try:
            prefix, command, params = irc.parsemsg(text)
        except (ValueError, IndexError, irc.IRCBadMessage):
            log.debug("unparsable IRC line from {peer} ignored", peer=self._describe())
            return
        self._dispatch(command.upper(), prefix, params)

    def _dispatch(self, command: str, prefix: str, params: list[str]) -> None:
        if not self.registered and command not in PRE_REGISTRATION:
            self._numeric(irc.ERR_NOTREGISTERED, text="You have not registered")
            return
        handler: Callable[[str, list[str]], None] | None = getattr(self, f"irc_{command}", None)
        if handler is None:
            self._numeric(irc.ERR_UNKNOWNCOMMAND, command[:32], text="Unknown command")
            return
        try:
            handler(prefix, params)
        except Exception:
            log.failure("IRC command {command} from {peer} failed", command=command,
                        peer=self._describe())
            self.server_notice(f"{command} failed; the peer's log has the details")

    def irc_unknown(self, prefix: str, command: str, params: list[str]) -> None:
        self._numeric(irc.ERR_UNKNOWNCOMMAND, command[:32], text="Unknown command")

    # --- lines out --------------------------------------------------------------------------

    def send(self, command: str, *middle: str, text: str | None = None,
             prefix: str = SERVER_NAME) -> None:
        """One line: middle parameters (nicks, channels: never spaces) and an optional
        trailing text.  Parameters are cleaned of line breaks; the line is cut to 512 bytes."""
        parts = [f":{prefix}", command, *(_middle(p) for p in middle)]
        if text is not None:
            parts.append(":" + _clean(text))
        line = " ".join(parts)
        encoded = line.encode("utf-8")
        if len(encoded) > MAX_IRC_LINE_BYTES - 2:
            line = encoded[:MAX_IRC_LINE_BYTES - 2].decode("utf-8", "ignore")
        self.sendLine(line)

    def _numeric(self, code: str, *middle: str, text: str | None = None) -> None:
        self.send(code, self.nick, *middle, text=text)

    def server_notice(self, text: str) -> None:
        self.send("NOTICE", self.nick, text=text)

    def show_chat(self, member: Member, target: str, text: str, action: bool) -> None:
        """A line from ``member`` to ``target`` (a channel, or a nick for a private line),
        split to fit 512 bytes."""
        head = f":{member.mask} PRIVMSG {target} :"
        budget = MAX_IRC_LINE_BYTES - 2 - len(head.encode("utf-8"))
        if action:
            budget -= len("\x01ACTION \x01")
        for piece in split_text(_clean(text).replace("\x01", ""), budget):
            self.send("PRIVMSG", target, prefix=member.mask,
                      text=f"\x01ACTION {piece}\x01" if action else piece)

    def show_join(self, member: Member, room: str = DEFAULT_ROOM) -> None:
        self.send("JOIN", channel(room), prefix=member.mask)

    def show_part(self, member: Member, room: str, reason: str | None = None) -> None:
        self.send("PART", channel(room), text=reason, prefix=member.mask)

    def show_quit(self, member: Member, reason: str) -> None:
        self.send("QUIT", text=reason, prefix=member.mask)

    def show_nick(self, old: Member, new: Member) -> None:
        self.send("NICK", text=new.nick, prefix=old.mask)

    # --- registration -----------------------------------------------------------------------

    def irc_CAP(self, prefix: str, params: list[str]) -> None:
        """We offer no capabilities, but answer CAP so clients that ask (weechat, irssi) go on."""
        sub = params[0].upper() if params else ""
        target = self.nick
        if sub == "LS":
            if not self.registered:
                self._negotiating = True
            self.send("CAP", target, "LS", text="")
        elif sub == "LIST":
            self.send("CAP", target, "LIST", text="")
        elif sub == "REQ":
            self.send("CAP", target, "NAK", text=params[1] if len(params) > 1 else "")
        elif sub == "END":
            self._negotiating = False
            self._try_register()
        else:
            self._numeric(ERR_INVALIDCAPCMD, sub[:32] or "*", text="Invalid CAP command")

    def irc_PASS(self, prefix: str, params: list[str]) -> None:
        if self.registered:
            self._numeric(irc.ERR_ALREADYREGISTRED, text="You may not reregister")
        elif not params:
            self._numeric(irc.ERR_NEEDMOREPARAMS, "PASS", text="Not enough parameters")
        else:
            self._password = params[0]

    def irc_USER(self, prefix: str, params: list[str]) -> None:
        if self.registered:
            self._numeric(irc.ERR_ALREADYREGISTRED, text="You may not reregister")
        elif not params or not params[0]:
            self._numeric(irc.ERR_NEEDMOREPARAMS, "USER", text="Not enough parameters")
        else:
            self._user_given = True
            self._try_register()

    def irc_NICK(self, prefix: str, params: list[str]) -> None:
        """Before registration: the nick is only checked for its form and kept (the client is
        given the peer's nick at registration, whatever it asked: connecting never renames the
        peer, and nothing about the LAN is answered to a client that has not registered).
        After: a nick change of the peer on the LAN, on purpose."""
        if not params or not params[0]:
            self._numeric(irc.ERR_NONICKNAMEGIVEN, text="No nickname given")
            return
        nick = params[0]
        problem = irc_nick_problem(nick)
        if problem:
            self._numeric(irc.ERR_ERRONEUSNICKNAME, nick[:MAX_NICK_CHARS * 2],
                          text=f"Erroneous nickname: {problem}")
            return
        if not self.registered:
            self._wanted_nick = nick
            self._try_register()
            return
        holder = self.factory.roster.holder(nick)
        if holder is not None:
            self._numeric(irc.ERR_NICKNAMEINUSE, nick,
                          text=f"Nickname is already in use by a peer on the LAN ({holder.mask})")
            return
        if nick == self.factory.node.nick:
            return
        renamed = self.factory.run_verb(self, self.factory.node.set_nick, nick)
        if isinstance(renamed, Refused):
            self._numeric(irc.ERR_ERRONEUSNICKNAME, nick,
                          text=f"Erroneous nickname: {renamed.why}")
        # else: the node's NickChanged event tells every client, this one included.

    def _try_register(self) -> None:
        if self.registered or self._negotiating or not self._user_given or not self._wanted_nick:
            return
        password = self.factory.password
        if password and not hmac.compare_digest((self._password or "").encode("utf-8"),
                                                password.encode("utf-8")):
            log.warn("IRC client {peer} gave a wrong password", peer=self._describe())
            self.factory.wrong_password(self._host())
            self._numeric(irc.ERR_PASSWDMISMATCH, text="Password incorrect")
            self.close("bad password")
            return
        if self.factory.registered_count() >= MAX_IRC_CLIENTS:
            log.warn("IRC client {peer} refused: {n} already attached", peer=self._describe(),
                     n=MAX_IRC_CLIENTS)
            self.close(f"too many IRC clients (at most {MAX_IRC_CLIENTS})")
            return
        self.registered = True
        if self._registration_timer is not None and self._registration_timer.active():
            self._registration_timer.cancel()
        log.info("IRC client {peer} registered as {nick}", peer=self._describe(), nick=self.nick)
        me = self.factory.roster.me
        asked = self._wanted_nick
        self._welcome()
        if asked != me.nick:
            # The client is told its nick is the peer's (001 said so; this NICK is for clients
            # that keep the nick they asked for); the LAN sees no rename.
            self.send("NICK", text=me.nick, prefix=f"{asked}!{me.user}@{me.host}")
        self.irc_MOTD("", [])
        if asked != me.nick:
            self.server_notice(f"You are {me.nick}: an IRC client shows the peer's nick, and "
                               f"connecting never renames the peer. /nick {asked} renames the "
                               "peer on the LAN.")
        self.warn_of_nick_users(self.factory.roster.using_my_nick())
        self.in_general = True
        for room in self.shown_rooms():  # every room the peer is in, not only #general
            self.enter(room)

    def warn_of_nick_users(self, members: list[Member]) -> None:
        """A notice, once each while it lasts, of every other peer using our nick: it is shown
        as ``alice|other`` and is not us."""
        if not self.registered:
            return
        me = self.factory.roster.me
        for member in members:
            if member.peer_id in self._warned:
                continue
            key = ", and its key is not the one pinned for that nick" if member.flagged else ""
            self.server_notice(f"! Another peer uses your nick {me.nick}: shown here as "
                               f"{member.nick} (peer {member.peer_id} at {member.address}{key})."
                               f" It is not you; /whois {member.nick} shows who it is.")
        self._warned = {m.peer_id for m in members}

    def _welcome(self) -> None:
        me = self.factory.roster.me
        self._numeric(irc.RPL_WELCOME, text=f"Welcome to the p2pchat LAN, {me.mask}")
        self._numeric(irc.RPL_YOURHOST,
                      text=f"Your host is {SERVER_NAME}, running p2pchat {__version__}")
        self._numeric(irc.RPL_CREATED, text=f"This server was created {self.factory.started}")
        self._numeric(irc.RPL_MYINFO, SERVER_NAME, __version__, "i", "nt")
        self._numeric(irc.RPL_ISUPPORT, *self.factory.isupport(),
                      text="are supported by this server")

    def irc_MOTD(self, prefix: str, params: list[str]) -> None:
        node = self.factory.node
        lines = [
            f"This is the p2pchat peer {node.nick} ({node.peer_id}).",
            f"{CHANNEL} is the LAN room: every peer on this network is in it.",
            "/join #room joins a room (or makes it), /part #room leaves it; /msg NICK is "
            "private.",
            "QUIT detaches this client; the peer keeps running.",
            f"/msg {SERVICE_NICK} help: p2pchat's own commands (ignore, unignore).",
        ]
        self._numeric(irc.RPL_MOTDSTART, text=f"- {SERVER_NAME} Message of the day -")
        for line in lines:
            self._numeric(irc.RPL_MOTD, text=f"- {line}")
        self._numeric(irc.RPL_ENDOFMOTD, text="End of /MOTD command")

    # --- connection upkeep ------------------------------------------------------------------

    def irc_PING(self, prefix: str, params: list[str]) -> None:
        if not params:
            self._numeric(irc.ERR_NOORIGIN, text="No origin specified")
        else:
            self.send("PONG", SERVER_NAME, text=params[0])

    def irc_PONG(self, prefix: str, params: list[str]) -> None:
        pass  # any line counts as a sign of life (see _take_token)

    def irc_QUIT(self, prefix: str, params: list[str]) -> None:
        self.close(f"Quit: {params[0]}" if params else "Quit")

    def irc_AWAY(self, prefix: str, params: list[str]) -> None:
        if params and params[0]:
            self._numeric(irc.RPL_NOWAWAY, text="You have been marked as being away")
        else:
            self._numeric(irc.RPL_UNAWAY, text="You are no longer marked as being away")

    # --- channels (rooms) -------------------------------------------------------------------

    def shown_rooms(self) -> list[str]:
        """The rooms this client shows: the peer's rooms (general first), less #general if
        this client hid it with PART."""
        rooms = self.factory.node.rooms.joined
        return [r for r in rooms if r != DEFAULT_ROOM or self.in_general]

    def in_channel(self, room: str) -> bool:
        if room == DEFAULT_ROOM:
            return self.in_general
        return room in self.factory.node.rooms.joined

    def _room(self, target: str, quiet: bool = False) -> str | None:
        """The room a channel target names, or None after telling the client why it can't
        be one (479, or 403 and a notice)."""
        room, code, why = channel_room(target)
        if code is None:
            return room
        if not quiet:
            self._refuse(code, target, why or "No such channel")
        return None

    def _refuse(self, code: str, target: str, why: str) -> None:
        """The numeric with the reason; for those irssi shows with its own words only (403,
        405), the reason again in a notice."""
        self._numeric(code, target[:64], text=why)
        if code != ERR_BADCHANNAME:
            self.server_notice(f"{target[:64]}: {why}")

    def _no_such_channel(self, target: str, room: str) -> None:
        self._refuse(irc.ERR_NOSUCHCHANNEL, target,
                     f"No such channel: nobody is in #{room} (/join #{room} makes it)")

    def irc_JOIN(self, prefix: str, params: list[str]) -> None:
        if not params:
            self._numeric(irc.ERR_NEEDMOREPARAMS, "JOIN", text="Not enough parameters")
            return
        if params[0] == "0":  # "leave every channel"
            self.irc_PART(prefix, [",".join(channel(r) for r in self.shown_rooms())])
            return
        node = self.factory.node
        for target in self._targets(params[0]):
            room = self._room(target)
            if room is None:
                continue
            if room == DEFAULT_ROOM:
                if not self.in_general:  # general is never left: this client shows it again
                    self.in_general = True
                    self.enter(DEFAULT_ROOM)
            elif room not in node.rooms.joined:
                # Every client (this one too) is shown the JOIN by the node's RoomChanged.
                joined = self.factory.run_verb(self, node.join_room, room)
                if isinstance(joined, Refused) and room not in node.rooms.joined:
                    code = (irc.ERR_TOOMANYCHANNELS if len(node.rooms.joined) >= MAX_ROOMS
                            else irc.ERR_NOSUCHCHANNEL)
                    self._refuse(code, target, joined.why)
            # else: already in it, so every client already shows it (ircds say nothing)

    def enter(self, room: str) -> None:
        """Show this client that we are in ``room``: JOIN, the topic (#general's: 332; other
        rooms have none, and as ircds do we then send nothing: irssi shows an unasked 331 as
        noise in its status window), and the names."""
        self.show_join(self.factory.roster.me, room)
        if room == DEFAULT_ROOM:
            self._topic(room)
        self._names(room)
        self._play_history(room)

    def _play_history(self, room: str) -> None:
        """The room's last lines, as bouncers play back a buffer: from their nick, the time
        they were said in front (clients without IRCv3 server-time show no other)."""
        for line in self.factory.node.history(room, HISTORY_PLAYBACK):
            stamp = time.strftime("%H:%M", time.localtime(line.when))
            author = Member(irc_nick(line.nick), line.sender_id, irc_user(line.sender_id),
                            SELF_HOST if line.own else "history")
            self.show_chat(author, channel(room), f"[{stamp}] {line.text}", line.action)

    def irc_PART(self, prefix: str, params: list[str]) -> None:
        if not params:
            self._numeric(irc.ERR_NEEDMOREPARAMS, "PART", text="Not enough parameters")
            return
        reason = params[1] if len(params) > 1 and params[1] else None
        node = self.factory.node
        for target in self._targets(params[0]):
            room = self._room(target)
            if room is None:
                continue
            if not self.in_channel(room):
                self._numeric(irc.ERR_NOTONCHANNEL, channel(room),
                              text="You're not on that channel")
            elif room == DEFAULT_ROOM:
                # The peer can't leave #general (everyone's room): this client stops showing it.
                self.in_general = False
                self.show_part(self.factory.roster.me, room, reason)
            else:
                parted = self.factory.part_room(self, room, reason)
                if isinstance(parted, Refused):
                    self._refuse(irc.ERR_NOTONCHANNEL, target, parted.why)

    def irc_NAMES(self, prefix: str, params: list[str]) -> None:
        if not params or not params[0]:
            for room in self.shown_rooms():
                self._names(room)
            if not self.shown_rooms():
                self._numeric(irc.RPL_ENDOFNAMES, "*", text="End of /NAMES list")
            return
        for target in self._targets(params[0]):
            room, code, _ = channel_room(target)
            if code is None and self.factory.known(room):
                self._names(room)
            else:
                self._numeric(irc.RPL_ENDOFNAMES, target[:64], text="End of /NAMES list")

    def _names(self, room: str) -> None:
        name = channel(room)
        head = f":{SERVER_NAME} {irc.RPL_NAMREPLY} {self.nick} = {name} :"
        budget = MAX_IRC_LINE_BYTES - 2 - len(head.encode("utf-8"))
        names = " ".join(m.nick for m in self.factory.members(room))
        if names:
            for piece in split_text(names, budget):
                self._numeric(irc.RPL_NAMREPLY, "=", name, text=piece)
        self._numeric(irc.RPL_ENDOFNAMES, name, text="End of /NAMES list")

    def irc_WHO(self, prefix: str, params: list[str]) -> None:
        target = params[0] if params and params[0] else "*"
        roster = self.factory.roster
        where = CHANNEL
        if target == "*":
            members = roster.members()
        elif is_channel(target):
            room, code, _ = channel_room(target)
            members = self.factory.members(room) if code is None else []
            where = channel(room) if code is None else where
        else:
            found = roster.find(target)
            members = [found] if found is not None else []
        views = {v.peer_id: v for v in self.factory.node.users()}
        for m in members:
            self._numeric(irc.RPL_WHOREPLY, where, m.user, m.host, SERVER_NAME, m.nick, "H",
                          text=f"0 {self._realname(m, views.get(m.peer_id))}")
        self._numeric(irc.RPL_ENDOFWHO, target[:64], text="End of /WHO list")

    def irc_WHOIS(self, prefix: str, params: list[str]) -> None:
        if not params:
            self._numeric(irc.ERR_NONICKNAMEGIVEN, text="No nickname given")
            return
        nick = params[-1]
        member = self.factory.roster.find(nick)
        if member is None:
            self._numeric(irc.ERR_NOSUCHNICK, nick[:64], text="No such nick")
        else:
            view = {v.peer_id: v for v in self.factory.node.users()}.get(member.peer_id)
            self._numeric(irc.RPL_WHOISUSER, member.nick, member.user, member.host, "*",
                          text=self._realname(member, view))
            rooms = self.factory.rooms_of(member)
            self._numeric(irc.RPL_WHOISCHANNELS, member.nick,
                          text=" ".join(channel(r) for r in rooms))
            self._numeric(irc.RPL_WHOISSERVER, member.nick, SERVER_NAME, text="the p2pchat LAN")
        self._numeric(irc.RPL_ENDOFWHOIS, nick[:64], text="End of /WHOIS list")

    def _realname(self, member: Member, view: PeerView | None) -> str:
        if member is self.factory.roster.me:
            return f"this peer ({member.peer_id})"
        address = view.address if view is not None else member.address
        kind = "" if view is None or view.ours else ", a base peer"
        return f"peer {member.peer_id} at {address}{kind}"

    def irc_TOPIC(self, prefix: str, params: list[str]) -> None:
        if not params:
            self._numeric(irc.ERR_NEEDMOREPARAMS, "TOPIC", text="Not enough parameters")
            return
        room = self._room(params[0])
        if room is None:
            return
        if not self.factory.known(room):
            self._no_such_channel(params[0], room)
        elif len(params) > 1:
            self._numeric(irc.ERR_CHANOPRIVSNEEDED, channel(room),
                          text="Topics can't be set: #general's is fixed, other rooms have none")
        else:
            self._topic(room)

    def _topic(self, room: str) -> None:
        if room == DEFAULT_ROOM:
            self._numeric(irc.RPL_TOPIC, CHANNEL, text=TOPIC)
        else:
            self._numeric(irc.RPL_NOTOPIC, channel(room), text=NO_TOPIC)

    def irc_MODE(self, prefix: str, params: list[str]) -> None:
        if not params:
            self._numeric(irc.ERR_NEEDMOREPARAMS, "MODE", text="Not enough parameters")
            return
        target = params[0]
        if is_channel(target):
            room = self._room(target)
            if room is None:
                return
            name = channel(room)
            if not self.factory.known(room):
                self._no_such_channel(target, room)
            elif len(params) == 1:
                self._numeric(irc.RPL_CHANNELMODEIS, name, "+nt")
            elif params[1].lstrip("+") == "b":  # the ban list, asked for by clients on join
                self._numeric(irc.RPL_ENDOFBANLIST, name, text="End of channel ban list")
            else:
                self._numeric(irc.ERR_CHANOPRIVSNEEDED, name,
                              text="Channel modes can't be changed")
        elif irc_fold(target) == irc_fold(self.nick):
            self._numeric(irc.RPL_UMODEIS, "+i")
        else:
            self._numeric(irc.ERR_USERSDONTMATCH, text="Can't change mode for other users")

    def irc_LIST(self, prefix: str, params: list[str]) -> None:
        """Every room known (ours, and those linked peers are in), with how many are in it.
        ``LIST #a,#b`` lists those only; other arguments (ELIST conditions) are ignored."""
        rooms = [name for name, _ in self.factory.node.room_list()]
        if params and params[0].startswith("#"):
            wanted = {channel_room(t)[0] for t in self._targets(params[0])}
            rooms = [r for r in rooms if r in wanted]
        self._numeric(irc.RPL_LISTSTART, "Channel", text="Users  Name")
        for room in rooms:
            members = self.factory.members(room)
            if room == DEFAULT_ROOM:
                about = TOPIC
            else:
                about = "in it: " + (", ".join(m.nick for m in members) or "nobody linked now")
            self._numeric(irc.RPL_LIST, channel(room), str(len(members)), text=about)
        self._numeric(irc.RPL_LISTEND, text="End of /LIST")

    def irc_ISON(self, prefix: str, params: list[str]) -> None:
        roster = self.factory.roster
        asked = " ".join(params).split()[:MAX_TARGETS * 4]
        present = [m.nick for m in (roster.find(n) for n in asked) if m is not None]
        self._numeric(irc.RPL_ISON, text=" ".join(present))

    def irc_USERHOST(self, prefix: str, params: list[str]) -> None:
        roster = self.factory.roster
        found = [m for m in (roster.find(n) for n in params[:5]) if m is not None]
        self._numeric(irc.RPL_USERHOST, text=" ".join(f"{m.nick}=+{m.user}@{m.host}"
                                                      for m in found))

    # --- saying things ----------------------------------------------------------------------

    def irc_PRIVMSG(self, prefix: str, params: list[str]) -> None:
        self._message("PRIVMSG", params)

    def irc_NOTICE(self, prefix: str, params: list[str]) -> None:
        self._message("NOTICE", params)

    def _message(self, command: str, params: list[str]) -> None:
        """PRIVMSG and NOTICE, to channels (a line said in that room) and to nicks (a private
        line).  A NOTICE never gets an error reply (RFC 2812: it must never trigger an
        automatic answer), and a CTCP in a NOTICE is a reply: dropped."""
        quiet = command == "NOTICE"
        if not params or not params[0]:
            if not quiet:
                self._numeric(irc.ERR_NORECIPIENT, text=f"No recipient given ({command})")
            return
        if len(params) < 2 or not params[1]:
            if not quiet:
                self._numeric(irc.ERR_NOTEXTTOSEND, text="No text to send")
            return
        text = params[1]
        for target in self._targets(params[0]):
            if is_channel(target):
                self._to_room(target, text, quiet)
            else:
                self._to_nick(target, text, quiet)

    def _to_room(self, target: str, text: str, quiet: bool) -> None:
        room = self._room(target, quiet)
        if room is None:
            return
        if self.in_channel(room):
            node = self.factory.node
            self._speak(channel(room), text, quiet,
                        lambda line: node.say(line, room=room),
                        lambda line: node.act(line, room=room))
        elif not quiet:
            why = ("you left it" if room == DEFAULT_ROOM else f"you are not in #{room}")
            self._numeric(irc.ERR_CANNOTSENDTOCHAN, channel(room),
                          text=f"Cannot send to channel: {why} (/join #{room})")

    def _to_nick(self, target: str, text: str, quiet: bool) -> None:
        if irc_fold(target) == irc_fold(SERVICE_NICK):
            if not quiet:  # a NOTICE never gets an answer, so it runs nothing either
                self._service(text)
            return
        member = self.factory.roster.find(target)
        if member is self.factory.roster.me:
            # To ourselves: back to this client, as an ircd would; nobody else hears it.
            self.send("NOTICE" if quiet else "PRIVMSG", member.nick, text=text,
                      prefix=member.mask)
            return
        # A peer shown now is named by its id; one away as the node knows it (see away_peer).
        peer_id = member.peer_id if member is not None else self.factory.away_peer(target)
        if peer_id is None:  # nobody linked, nor away (linked in this run, or pinned)
            if not quiet:
                self._numeric(irc.ERR_NOSUCHNICK, target[:64], text="No such nick")
            return
        node = self.factory.node
        result = self._speak(member.nick if member is not None else target, text, quiet,
                             lambda line: node.say_private(peer_id, line),
                             lambda line: node.say_private(peer_id, line, action=True))
        if isinstance(result, Said) and result.waits_for:
            self._tell_kept(result)

    def _tell_kept(self, kept: Said) -> None:
        """The peer is away: its line is kept and sent when it is back.  Said once per absence
        to each client (the node's own notice of it, once, reaches every client too)."""
        peer_id = str((kept.msg.metadata or {}).get("to", ""))
        if peer_id in self.told_kept:
            return
        self.told_kept.add(peer_id)
        if kept.notice not in self.factory.verb_notices:
            self.server_notice(kept.notice)

    def _speak(self, target: str, text: str, quiet: bool, say: Callable[[str], object],
               act: Callable[[str], object]) -> object:
        """Say ``text`` (a line, or a CTCP ACTION as an action; other CTCPs are dropped) with
        a node verb; if the node refuses, a notice says why (not for a NOTICE).  Returns what
        the verb returned (None if nothing was said)."""
        if text.startswith("\x01"):
            kind, _, arg = text.strip("\x01").partition(" ")
            if kind.upper() == "ACTION" and not quiet and arg.strip():
                result = self.factory.run_verb(self, act, irc.stripFormatting(arg))
            else:
                log.debug("CTCP {kind} to {target} ignored", kind=kind[:16], target=target[:64])
                return None
        else:
            plain = irc.stripFormatting(text)
            if not plain.strip():
                return None
            result = self.factory.run_verb(self, say, plain)
        if isinstance(result, Refused) and not quiet:
            self.server_notice(f"{target}: not sent: {result.why}")
        return result

    # --- p2pchat's own commands (the *p2pchat service nick, or raw commands) ----------------

    def _service(self, text: str) -> None:
        """``/msg *p2pchat COMMAND [ARG]``: answered by PRIVMSGs from *p2pchat (a query window
        of its own in irssi and weechat)."""
        command, _, arg = irc.stripFormatting(text).strip().partition(" ")
        for line in self._p2pchat_command(command.lower(), arg.strip()):
            self.send("PRIVMSG", self.nick, prefix=SERVICE_MASK, text=line)

    def irc_IGNORE(self, prefix: str, params: list[str]) -> None:
        """``/quote IGNORE [NICK]``: the node's /ignore (the client's own /ignore is local)."""
        for line in self._p2pchat_command("ignore", " ".join(params[:1])):
            self.server_notice(line)

    def irc_UNIGNORE(self, prefix: str, params: list[str]) -> None:
        if not params or not params[0]:
            self._numeric(irc.ERR_NEEDMOREPARAMS, "UNIGNORE", text="Not enough parameters")
            return
        for line in self._p2pchat_command("unignore", params[0]):
            self.server_notice(line)

    def _p2pchat_command(self, command: str, arg: str) -> list[str]:
        """What a p2pchat command answers.  A nick is the one IRC shows (``bob|2``,
        ``carol|other``): it names the peer by its id, so the node finds the right one."""
        node = self.factory.node
        member = self.factory.roster.holder(arg) if arg else None
        shown = member.peer_id if member is not None else arg
        if command == "ignore":
            if not arg:
                return node.ignored()
            ignored = node.ignore(shown)
            return [ignored.why if isinstance(ignored, Refused) else ignored.text]
        if command == "unignore":
            if member is not None and member.peer_id not in node.ignores:
                shown = arg  # not ignored: the answer names it as the client did
            if not arg:
                return ["unignore NICK: whose lines to show again"]
            shown_again = node.unignore(shown)
            return [shown_again.why if isinstance(shown_again, Refused) else shown_again.text]
        if command == "help":
            return list(SERVICE_HELP)
        return [f"unknown: {command or '(nothing)'}; commands: ignore [NICK], unignore NICK, "
                "help"]

    def _targets(self, text: str) -> list[str]:
        targets = [t for t in text.split(",") if t]
        if len(targets) > MAX_TARGETS:
            self._numeric(ERR_TOOMANYTARGETS, targets[MAX_TARGETS][:64],
                          text=f"Too many targets (at most {MAX_TARGETS}); the rest were ignored")
        return targets[:MAX_TARGETS]


# --- all clients of one peer ----------------------------------------------------------------


class IrcFactory(ServerFactory):
    """The clients of one peer and what they share: the node, the roster, the password.
    Observes the node once and shows each event to every client."""

    protocol = IrcClientProtocol
    noisy = False  # no "Starting factory" log lines; IrcService logs where it listens

    def __init__(self, node: Node, clock: Any, password: str | None = None) -> None:
        self.node = node
        self.clock = clock
        self.password = password or None
        #: every connection, registered or not, oldest first (a dict keeps the order)
        self.clients: dict[IrcClientProtocol, None] = {}
        self.roster = Roster(node.peer_id, node.nick)
        self.started = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(clock.seconds()))
        self._origin: IrcClientProtocol | None = None
        #: the node's notices while a verb of a client runs (that client was shown them)
        self.verb_notices: list[str] = []
        #: IRC nick (folded) -> (that nick, peer id) of the peers that left, as they were
        #: shown: a query window keeps its nick (``bob|2``), and a line to it is kept for
        #: that peer (newest last; at most RECENT_PEERS)
        self._left: dict[str, tuple[str, str]] = {}
        self._part_reason: str | None = None
        self._attached = False
        #: host -> when its recent wrong passwords were given (within PASSWORD_WINDOW)
        self._wrong: dict[str, list[float]] = {}
        #: host -> until when its connections are closed at once
        self._locked: dict[str, float] = {}

    def attach(self) -> None:
        """Start observing the node; the roster starts from its current links."""
        if self._attached:
            return
        self._attached = True
        self.roster = Roster(self.node.peer_id, self.node.nick)
        for view in self.node.users():
            if view.state == "connected":
                self.roster.add(view.peer_id, view.nick, view.address, view.flagged)
        self.node.subscribe(self.on_event)

    def detach(self) -> None:
        self._attached = False
        self.node.unsubscribe(self.on_event)

    def client_connected(self, client: IrcClientProtocol) -> None:
        """A new connection.  Those waiting to register are counted apart from the registered
        clients (MAX_IRC_CLIENTS, checked at registration): when MAX_UNREGISTERED already
        wait, the oldest of them is closed to make room."""
        waiting = self.waiting()
        if len(waiting) >= MAX_UNREGISTERED:  # close() logs it
            waiting[0].close(f"too many connections waiting to register (at most "
                             f"{MAX_UNREGISTERED}); the oldest is closed")
        self.clients[client] = None

    def wrong_password(self, host: str) -> None:
        """A connection from ``host`` gave a wrong password.  The PASSWORD_TRIES-th within
        PASSWORD_WINDOW seconds locks the host out for PASSWORD_LOCKOUT seconds, logged once."""
        now = self.clock.seconds()
        tries = [t for t in self._wrong.pop(host, []) if now - t < PASSWORD_WINDOW]
        tries.append(now)
        if len(tries) >= PASSWORD_TRIES:
            self._locked[host] = now + PASSWORD_LOCKOUT
            log.warn("IRC: {n} wrong passwords from {host} within {window:.0f} s: its "
                     "connections are closed for {lockout:.0f} s", n=len(tries), host=host,
                     window=PASSWORD_WINDOW, lockout=PASSWORD_LOCKOUT)
        else:
            self._wrong[host] = tries  # newest last, so the oldest is forgotten first
        for table in (self._wrong, self._locked):
            while len(table) > MAX_GUESSING_HOSTS:
                del table[next(iter(table))]

    def locked_out(self, host: str) -> str | None:
        """Why a connection from ``host`` is closed at once (it guessed passwords), or None."""
        until = self._locked.get(host)
        if until is None:
            return None
        left = until - self.clock.seconds()
        if left <= 0:
            del self._locked[host]
            return None
        return (f"too many wrong passwords from {host}; try again in {max(1, round(left))} s")

    def client_disconnected(self, client: IrcClientProtocol) -> None:
        self.clients.pop(client, None)

    def waiting(self) -> list[IrcClientProtocol]:
        """The connections not registered yet (and not going), oldest first."""
        return [c for c in self.clients if not c.registered and not c.closing]

    def registered_count(self) -> int:
        return sum(1 for c in self.clients if c.registered and not c.closing)

    def run_verb(self, client: IrcClientProtocol, verb: Callable[..., T], *args: Any) -> T:
        """Run a node verb on behalf of ``client``, so the events it causes are not echoed
        back to that client (IRC servers don't echo a client's own lines)."""
        self._origin = client
        self.verb_notices = []
        try:
            return verb(*args)
        finally:
            self._origin = None

    def away_peer(self, nick: str) -> str | None:
        """How to name to ``node.say_private`` the away peer ``nick`` stands for (the id of a
        peer shown so that left; else ``nick``, if the node knows it: linked earlier in this
        run, or pinned), if the node can keep private lines for it; else None."""
        peer_id = self._left.get(irc_fold(nick), ("", ""))[1]
        for shown in ([peer_id] if peer_id else []) + [nick]:
            if not isinstance(self.node.addressee(shown), Refused):
                return shown
        return None

    def isupport(self) -> list[str]:
        return [f"NETWORK={SERVER_NAME}", "CASEMAPPING=ascii", "CHANTYPES=#",
                f"CHANLIMIT=#:{MAX_ROOMS}", f"CHANNELLEN={MAX_ROOM_CHARS + 1}",
                f"NICKLEN={MAX_NICK_CHARS}", "PREFIX=()", "CHANMODES=,,,nt",
                f"TARGMAX=PRIVMSG:{MAX_TARGETS},NOTICE:{MAX_TARGETS},JOIN:{MAX_TARGETS},"
                f"PART:{MAX_TARGETS}"]

    def _registered(self, room: str | None = None) -> list[IrcClientProtocol]:
        """The clients to show something: registered, not going, and (given ``room``)
        showing that room."""
        return [c for c in self.clients
                if c.registered and not c.closing and (room is None or c.in_channel(room))]

    # --- what the clients share: rooms and their members --------------------------------

    def rooms_of(self, member: Member) -> list[str]:
        """The rooms ``member`` is in (general first), as the node knows them."""
        node = self.node
        if member is self.roster.me:
            return list(node.rooms.joined)
        rooms = node.rooms.rooms_of_peer(member.peer_id)
        return sorted(rooms, key=lambda r: (r != DEFAULT_ROOM, r))

    def members(self, room: str) -> list[Member]:
        """Who is in ``room`` as IRC shows it: us (if we are in it), then the linked peers the
        node says are in it.  A peer's rooms outlive a lost link (node.rooms keeps them until
        it says goodbye or is forgotten), which keeps this in step with the JOINs shown."""
        node = self.node
        out = [self.roster.me] if room in node.rooms.joined else []
        if room == DEFAULT_ROOM:
            return out + self.roster.peers()
        return out + [m for m in self.roster.peers()
                      if node.rooms.peer_in(m.peer_id, room)]

    def known(self, room: str) -> bool:
        """Whether ``room`` exists: we or a linked peer are in it."""
        return room == DEFAULT_ROOM or bool(self.members(room))

    def part_room(self, client: IrcClientProtocol, room: str, reason: str | None) -> Outcome:
        """PART of a room (not general) from ``client``: the peer leaves it, and every client
        is shown the PART (with the client's reason) by the node's RoomChanged."""
        self._part_reason = reason
        try:
            return self.run_verb(client, self.node.part_room, room)
        finally:
            self._part_reason = None

    # --- the node's events ------------------------------------------------------------------

    def on_event(self, event: events.Event) -> None:
        """The node's events, as IRC lines to every registered client."""
        if isinstance(event, (events.PeerJoined, events.PeerLeft, events.NickChanged,
                              events.PeersChanged)):
            self._show_peer_event(event)
            # Then warn of any other peer now using our nick (each client once per peer).
            using = self.roster.using_my_nick()
            for client in self._registered():
                client.warn_of_nick_users(using)
        elif isinstance(event, events.ChatLine):
            self._chat(event)
        elif isinstance(event, events.RoomChanged):
            self._room_changed(event)
        elif isinstance(event, events.Notice):
            if event.topic == events.OWN_NICK:
                return  # each client is warned in IRC's names (warn_of_nick_users)
            if self._origin is not None:
                self.verb_notices.append(event.text)
            for client in self._registered():
                client.server_notice(("! " if event.error else "") + event.text)

    def _flagged(self, peer_id: str) -> bool:
        """Whether the node flags this peer (its key is not the one pinned for its nick)."""
        return any(v.flagged for v in self.node.users() if v.peer_id == peer_id)

    def _show_peer_event(self, event: events.Event) -> None:
        if isinstance(event, events.PeerJoined):
            for client in self.clients:
                client.told_kept.discard(event.peer_id)  # back: told anew when away again
            member = self.roster.add(event.peer_id, event.nick, event.address,
                                     self._flagged(event.peer_id))
            if member is not None:
                self._left.pop(irc_fold(member.nick), None)
                # A peer back after a lost link is still in the rooms it was in (its next
                # rooms line tells only what changed): show it joining those too.
                rooms = [r for r in self.rooms_of(member) if r in self.node.rooms.joined]
                for client in self._registered():
                    for room in rooms:
                        if client.in_channel(room):
                            client.show_join(member, room)
        elif isinstance(event, events.PeerLeft):
            member = self.roster.remove(event.peer_id)
            if member is not None:
                self._left.pop(irc_fold(member.nick), None)
                self._left[irc_fold(member.nick)] = (member.nick, member.peer_id)
                while len(self._left) > RECENT_PEERS:
                    del self._left[next(iter(self._left))]
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
        for view in self.node.users():
            member = self.roster.peer(view.peer_id)
            if member is None or member.flagged == view.flagged:
                continue
            change = self.roster.rename_peer(view.peer_id, view.nick, view.flagged)
            if change is not None:
                for client in self._registered():
                    client.show_nick(*change)

    def _sender(self, peer_id: str, nick: str) -> Member:
        """The member shown for ``peer_id``; one made up if it is not linked (a line that
        came as its link dropped)."""
        member = self.roster.peer(peer_id)
        if member is not None:
            return member
        # Away (a line kept for it): as it was shown, so a query with ``bob|2`` stays one.
        shown = next((n for n, pid in reversed(self._left.values()) if pid == peer_id), None)
        return Member(shown or irc_nick(nick), peer_id, irc_user(peer_id), "unknown")

    def _chat(self, event: events.ChatLine) -> None:
        me = self.roster.me
        if event.room.startswith("@"):  # a private line: no channel
            other = self._sender(event.room[1:], event.private or event.nick)
            for client in self._registered():
                if event.own:
                    # Said by another client or face of ours: shown as bouncers do, from us
                    # to the other party (irssi and weechat put it in that query).
                    if client is not self._origin:
                        client.show_chat(me, other.nick, event.text, event.action)
                else:
                    client.show_chat(other, me.nick, event.text, event.action)
            return
        member = me if event.own else self._sender(event.sender_id, event.nick)
        for client in self._registered(event.room):
            if event.own and client is self._origin:
                continue
            client.show_chat(member, channel(event.room), event.text, event.action)

    def _room_changed(self, event: events.RoomChanged) -> None:
        if event.own:
            # The peer joined or left a room (from any client or face): every client with it.
            for client in self._registered():
                if event.joined:
                    client.enter(event.room)
                else:
                    client.show_part(self.roster.me, event.room, self._part_reason)
            return
        member = self.roster.peer(event.peer_id)
        if member is None:
            return  # not linked (so not shown anywhere): nothing to tell
        for client in self._registered(event.room):
            if event.joined:
                client.show_join(member, event.room)
            else:
                client.show_part(member, event.room)

    def _nick_changed(self, event: events.NickChanged) -> None:
        if event.own:
            displaced, old, new = self.roster.rename_me(event.new)
            for client in self._registered():
                for moved in displaced:
                    client.show_nick(*moved)
                if old.nick != new.nick:
                    client.show_nick(old, new)
        else:
            change = self.roster.rename_peer(event.peer_id, event.new,
                                             self._flagged(event.peer_id))
            if change is not None:
                # Every client: its channels with the peer and any query with it follow.
                for client in self._registered():
                    client.show_nick(*change)


# --- the service ----------------------------------------------------------------------------


class IrcService(Service):
    """Listens for IRC clients on ``host:port`` (loopback unless told otherwise) and makes
    each one a face of ``node``.  Refuses to start on a non-loopback address without a
    password.  ``port`` 0 takes any free port (tests); ``self.port`` is the one bound."""

    name = "irc"

    def __init__(self, node: Node, reactor: Any, host: str = LOOPBACK,
                 port: int = DEFAULT_IRC_PORT, password: str | None = None) -> None:
        self.node = node
        self.reactor = reactor
        self.host = host
        self.port = port
        self.password = password or None
        self.factory = IrcFactory(node, reactor, self.password)
        self.listener: Any = None

    def startService(self) -> None:
        try:
            warning = check_irc_bind(self.host, self.password)
        except ValueError as e:
            raise StartError(str(e)) from None
        if warning:
            log.warn("{text}", text=warning)
        try:
            self.listener = self.reactor.listenTCP(self.port, self.factory, interface=self.host)
        except error.CannotListenError as e:
            raise StartError(f"can't listen for IRC clients on {self.host}:{self.port}: "
                             f"{e.socketError}") from None
        self.port = self.listener.getHost().port
        self.factory.attach()
        log.info("IRC face listening on {host}:{port}", host=self.host, port=self.port)
        super().startService()

    def stopService(self) -> defer.Deferred[Any]:
        """Tell every client we go (an ERROR line, flushed), then stop listening."""
        super().stopService()
        self.factory.detach()
        clients = list(self.factory.clients)
        closing = [c.closed for c in clients]
        for client in clients:
            client.close("the peer is shutting down")
        timer = self.reactor.callLater(CLOSE_TIMEOUT, self._cut, clients)

        def done(_: object) -> defer.Deferred[Any]:
            if timer.active():
                timer.cancel()
            listener, self.listener = self.listener, None
            return defer.maybeDeferred(listener.stopListening) if listener else defer.succeed(None)

        return defer.DeferredList(closing, consumeErrors=True).addBoth(done)

    @staticmethod
    def _cut(clients: Iterable[IrcClientProtocol]) -> None:
        for client in clients:
            if client.transport is not None and not client.closed.called:
                client.transport.abortConnection()
