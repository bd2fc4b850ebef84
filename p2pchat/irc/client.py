"""One IRC client attached to this peer: framing, flood control, back-pressure, liveness, and
the lines it is sent.

Built honestly on ``LineReceiver`` (not on ``twisted.words``' ``IRC`` protocol, whose
``dataReceived`` decodes each chunk as strict UTF-8, so a character split across reads or a
latin-1 client breaks it, and whose dispatch we would have to override whole): bytes are cut
into lines at LF, each line is flood-checked (``flow.TokenBucket``), parsed with
``irc.parsemsg`` and dispatched through the command table the factory gives
(``dispatch.COMMANDS``: the handlers live by concern in register, channels, queries, talk and
own_commands).  What we write goes through ``flow.Backpressure``: a client that stops reading
is dropped before the peer's memory grows without bound.  Nothing a client sends can raise
out of here.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol, cast

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from twisted.words.protocols import irc

from p2pchat.flow import Backpressure, TokenBucket
from p2pchat.irc import caps
from p2pchat.irc.lan import MAX_TARGETS, Lan
from p2pchat.irc.names import ERR_BADCHANNAME, Member, channel
from p2pchat.irc.text import (ERR_INPUTTOOLONG, ERR_TOOMANYTARGETS, MAX_IRC_LINE_BYTES,
                              SERVER_NAME, clean, line, split_text)
from p2pchat.wire import DEFAULT_ROOM

log = Logger()

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
#: Commands a client may send before it has registered.
PRE_REGISTRATION = frozenset({"PASS", "NICK", "USER", "CAP", "PING", "PONG", "QUIT"})

#: A command's handler: the client and the command's parameters.
Handler = Callable[["IrcClientProtocol", list[str]], None]


class Attachment(Protocol):
    """What a client needs from the clients of its peer (``fanout.IrcFactory``)."""

    @property
    def lan(self) -> Lan: ...

    @property
    def commands(self) -> Mapping[str, Handler]: ...

    def client_connected(self, client: IrcClientProtocol) -> None: ...

    def client_disconnected(self, client: IrcClientProtocol) -> None: ...

    def registered_count(self) -> int: ...


class Transport(Protocol):
    """What a client's connection is used for (a TCP transport; StringTransport in tests)."""

    disconnected: bool

    def write(self, data: bytes) -> None: ...

    def loseConnection(self) -> None: ...

    def abortConnection(self) -> None: ...

    def getPeer(self) -> Any: ...

    def registerProducer(self, producer: Any, streaming: bool) -> None: ...


class IrcClientProtocol(LineReceiver):
    """One IRC client attached to this peer."""

    delimiter = b"\n"  # CR LF, or LF alone; the CR is stripped from each line
    #: longest line (CR included) LineReceiver hands on; the exact rule is in lineReceived
    MAX_LENGTH = MAX_IRC_LINE_BYTES - 1

    def __init__(self, attachment: Attachment) -> None:
        #: the clients of this peer, and what they share (fanout.IrcFactory)
        self.attachment = attachment
        self.registered = False
        #: showing #general: the peer never leaves it, but one client may hide it (PART)
        self.in_general = False
        self.closing = False
        self.closed: defer.Deferred[None] = defer.Deferred()
        #: registration, as the client gives it (see register.py)
        self.wanted_nick: str | None = None
        self.user_given = False
        self.password: str | None = None
        self.negotiating = False  # CAP LS or REQ seen, CAP END not yet
        #: the IRCv3 capabilities this client asked for (caps.py), and its CAP LS version
        self.caps: set[str] = set()
        self.cap_version = 0
        #: the IRCv3 tags of the line being handled (a client with message-tags only)
        self.tags_in: dict[str, str] = {}
        self._batches = 0  # batch ids given to this client so far
        #: the away peers this client was told its lines are kept for (until each is back)
        self.told_kept: set[str] = set()
        self.backpressure: Backpressure | None = None
        self._skipping = False  # inside an over-long line, until its newline
        self._after_long: bytes | None = None  # what followed an over-long line, to read
        self._flood: TokenBucket | None = None
        self._last_heard = 0.0
        self._registration_timer: IDelayedCall | None = None
        self._pinger: LoopingCall | None = None
        #: the peers using our nick this client was warned of (once each while they do)
        self._warned: set[str] = set()

    # --- connection -------------------------------------------------------------------------

    @property
    def lan(self) -> Lan:
        return self.attachment.lan

    @property
    def clock(self) -> IReactorTime:
        return self.attachment.lan.clock

    @property
    def tcp(self) -> Transport | None:
        """The transport, as what we use of it."""
        return cast("Transport | None", self.transport)

    @property
    def nick(self) -> str:
        """Our nick as this client knows it ("*" until it has registered)."""
        return self.lan.roster.me.nick if self.registered else "*"

    def connectionMade(self) -> None:
        tcp = self.tcp
        assert tcp is not None
        now = self.clock.seconds()
        self.backpressure = Backpressure(self.clock, max_backlog=MAX_OUTBOX_BYTES)
        tcp.registerProducer(self.backpressure, True)
        self._flood = TokenBucket(FLOOD_RATE, FLOOD_BURST, now)
        self._last_heard = now
        locked = self.lan.lockout.locked_out(self.host(), now)
        if locked:
            # Guessing passwords: closed at once, unlogged (the lockout was logged once).
            self.closing = True
            tcp.write(f"ERROR :Closing link: {locked}\r\n".encode("utf-8"))
            tcp.loseConnection()
            return
        self.attachment.client_connected(self)
        self._registration_timer = self.clock.callLater(REGISTRATION_TIMEOUT, self._not_registered)
        self._pinger = LoopingCall(self._check_alive)
        self._pinger.clock = self.clock
        self._pinger.start(PING_INTERVAL, now=False)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.closing = True
        if self._registration_timer is not None and self._registration_timer.active():
            self._registration_timer.cancel()
        if self._pinger is not None and self._pinger.running:
            self._pinger.stop()
        if self.backpressure is not None:
            self.backpressure.cancel()
        self.attachment.client_disconnected(self)
        if not self.closed.called:
            self.closed.callback(None)

    def close(self, why: str) -> None:
        """Say why in an ERROR line (as ircds do), then hang up."""
        if self.closing:
            return
        log.info("IRC client {peer} disconnected: {why}", peer=self.describe(), why=why)
        self.write_line(f"ERROR :Closing link: {clean(why)}")
        self.closing = True
        if self.tcp is not None:
            self.tcp.loseConnection()

    def abort(self) -> None:
        """Cut the connection now (shutdown's deadline passed)."""
        if self.tcp is not None and not self.closed.called:
            self.tcp.abortConnection()

    def registration_done(self) -> None:
        """The client registered: it may use every command, and is no longer timed."""
        self.registered = True
        if self._registration_timer is not None and self._registration_timer.active():
            self._registration_timer.cancel()

    def host(self) -> str:
        peer = self.tcp.getPeer() if self.tcp is not None else None
        return str(getattr(peer, "host", "?"))

    def describe(self) -> str:
        peer = self.tcp.getPeer() if self.tcp is not None else None
        return f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}"

    def _not_registered(self) -> None:
        self.close(f"not registered within {REGISTRATION_TIMEOUT:.0f} s")

    def _check_alive(self) -> None:
        silent = self.clock.seconds() - self._last_heard
        if silent >= 2 * PING_INTERVAL:
            self.close(f"Ping timeout: {silent:.0f} seconds")
        elif silent >= PING_INTERVAL:
            self.write_line(f"PING :{SERVER_NAME}")

    def write_line(self, text: str, when: float | None = None, msgid: str = "",
                   batch: str = "", extra: str = "") -> None:
        """One line to the client (CR LF added), unless it is going; a client that stopped
        reading with MAX_OUTBOX_BYTES already waiting for it is dropped.  Its IRCv3 tags
        (caps.tags) go in front, for a client that asked for them: ``when`` the line's own
        time (else now), ``msgid`` its message id, ``batch`` the batch it is in."""
        tcp = self.tcp
        if self.closing or tcp is None or tcp.disconnected:
            return
        if self.caps:
            text = caps.tags(self.caps, self.clock.seconds(), when, msgid, batch, extra) + text
        data = text.encode("utf-8") + b"\r\n"
        if self.backpressure is not None and not self.backpressure.written(len(data)):
            log.warn("IRC client {peer} stopped reading ({n} bytes waiting): dropped",
                     peer=self.describe(), n=self.backpressure.backlog)
            self.closing = True
            tcp.abortConnection()
            return
        tcp.write(data)

    # --- lines in ---------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            return  # hanging up: what else it says is not read
        super().dataReceived(data)
        # LineReceiver drops what followed an over-long line; lineLengthExceeded kept it.
        while self._after_long is not None and not self.closing:
            rest, self._after_long = self._after_long, None
            super().dataReceived(rest)

    def lineLengthExceeded(self, line: bytes) -> None:
        """``line``: the buffer from an over-long line on (LineReceiver has emptied it).  The
        line is refused once (417); what follows its newline is read next."""
        _, newline, rest = line.partition(self.delimiter)
        if not self._skipping:
            self._line_too_long()
        self._skipping = not newline  # its end is still to come: skip up to it
        if newline and rest:
            self._after_long = rest

    def lineReceived(self, line: bytes) -> None:
        if self.closing:
            return
        if self._skipping:  # the end of a line already refused
            self._skipping = False
            return
        line = line.rstrip(b"\r")
        if len(line) + 2 > MAX_IRC_LINE_BYTES:
            self._line_too_long()
        elif self._take_token():
            self._line(line)

    def _take_token(self) -> bool:
        """Spend one line of the flood allowance; False (and disconnect) when there is none."""
        now = self._last_heard = self.clock.seconds()
        if self._flood is not None and not self._flood.take(now):
            self.close("Excess Flood")
            return False
        return True

    def _line_too_long(self) -> None:
        if self._take_token():
            self.numeric(ERR_INPUTTOOLONG,
                         text=f"Input line was too long (the limit is {MAX_IRC_LINE_BYTES} "
                         "bytes with CR LF); it was ignored")

    def _line(self, raw: bytes) -> None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")  # clients still set to latin-1 stay readable
        text = text.replace("\0", "")
        self.tags_in = {}
        if text.startswith("@"):  # IRCv3 tags: read only from a client with message-tags
            head, _, text = text.partition(" ")
            if self.has(caps.MESSAGE_TAGS):
                self.tags_in = caps.parse_tags(head[1:])
        if not text.strip():
            return
        try:
            _, command, params = irc.parsemsg(text)
        except (ValueError, IndexError, irc.IRCBadMessage):
            log.debug("unparsable IRC line from {peer} ignored", peer=self.describe())
            return
        self._dispatch(command.upper(), params)

    def _dispatch(self, command: str, params: list[str]) -> None:
        if not self.registered and command not in PRE_REGISTRATION:
            self.numeric(irc.ERR_NOTREGISTERED, text="You have not registered")
            return
        handler = self.attachment.commands.get(command)
        if handler is None:
            self.numeric(irc.ERR_UNKNOWNCOMMAND, command[:32], text="Unknown command")
            return
        try:
            handler(self, params)
        except Exception:
            log.failure("IRC command {command} from {peer} failed", command=command,
                        peer=self.describe())
            self.server_notice(f"{command} failed; the peer's log has the details")

    def targets(self, text: str) -> list[str]:
        """The targets of ``a,b,c``: at most MAX_TARGETS (407 says the rest were ignored)."""
        targets = [t for t in text.split(",") if t]
        if len(targets) > MAX_TARGETS:
            self.numeric(ERR_TOOMANYTARGETS, targets[MAX_TARGETS][:64],
                         text=f"Too many targets (at most {MAX_TARGETS}); the rest were ignored")
        return targets[:MAX_TARGETS]

    # --- lines out --------------------------------------------------------------------------

    def send(self, command: str, *middle: str, text: str | None = None,
             prefix: str = SERVER_NAME, batch: str = "") -> None:
        """One line (see ``text.line``), in ``batch`` if given."""
        self.write_line(line(command, *middle, text=text, prefix=prefix), batch=batch)

    def has(self, capability: str) -> bool:
        """Whether this client asked for ``capability`` (caps.py)."""
        return capability in self.caps

    def open_batch(self, kind: str, *params: str) -> str:
        """``BATCH +id kind params`` to a client with the batch capability: returns the id
        to tag the lines in it with and to close it (``close_batch``); "" (and nothing
        sent) for a client without it."""
        if not self.has(caps.BATCH):
            return ""
        self._batches += 1
        ref = f"p2p{self._batches}"
        self.send("BATCH", f"+{ref}", kind, *params)
        return ref

    def close_batch(self, ref: str) -> None:
        if ref:
            self.send("BATCH", f"-{ref}")

    def numeric(self, code: str, *middle: str, text: str | None = None) -> None:
        self.send(code, self.nick, *middle, text=text)

    def server_notice(self, text: str) -> None:
        self.send("NOTICE", self.nick, text=text)

    def refuse(self, code: str, target: str, why: str) -> None:
        """The numeric with the reason; for those irssi shows with its own words only (403,
        405), the reason again in a notice."""
        self.numeric(code, target[:64], text=why)
        if code != ERR_BADCHANNAME:
            self.server_notice(f"{target[:64]}: {why}")

    def show_chat(self, member: Member, target: str, text: str, action: bool,
                  when: float | None = None, msgid: str = "", batch: str = "",
                  command: str = "PRIVMSG") -> None:
        """A line from ``member`` to ``target`` (a channel, or a nick for a private line),
        split to fit 512 bytes.  ``when`` (its time), ``msgid`` and ``batch`` are its IRCv3
        tags, for a client that asked for them; the msgid only on the first piece of a line
        cut in several (a msgid names one line)."""
        head = f":{member.mask} {command} {target} :"
        budget = MAX_IRC_LINE_BYTES - 2 - len(head.encode("utf-8"))
        if action:
            budget -= len("\x01ACTION \x01")
        for i, piece in enumerate(split_text(clean(text).replace("\x01", ""), budget)):
            out = line(command, target, prefix=member.mask,
                       text=f"\x01ACTION {piece}\x01" if action else piece)
            self.write_line(out, when, msgid if i == 0 else "", batch)

    def show_join(self, member: Member, room: str = DEFAULT_ROOM) -> None:
        self.send("JOIN", channel(room), prefix=member.mask)

    def show_part(self, member: Member, room: str, reason: str | None = None) -> None:
        self.send("PART", channel(room), text=reason, prefix=member.mask)

    def show_quit(self, member: Member, reason: str) -> None:
        self.send("QUIT", text=reason, prefix=member.mask)

    def show_nick(self, old: Member, new: Member) -> None:
        self.send("NICK", text=new.nick, prefix=old.mask)

    def warn_of_nick_users(self, members: list[Member]) -> None:
        """A notice, once each while it lasts, of every other peer using our nick: it is shown
        as ``alice|other`` and is not us."""
        if not self.registered:
            return
        me = self.lan.roster.me
        for member in members:
            if member.peer_id in self._warned:
                continue
            key = ", and its key is not the one pinned for that nick" if member.flagged else ""
            self.server_notice(f"! Another peer uses your nick {me.nick}: shown here as "
                               f"{member.nick} (peer {member.peer_id} at {member.address}{key})."
                               f" It is not you; /whois {member.nick} shows who it is.")
        self._warned = {m.peer_id for m in members}

    # --- what this client shows -------------------------------------------------------------

    def shown_rooms(self) -> list[str]:
        """The rooms this client shows: the peer's rooms (general first), less #general if
        this client hid it with PART."""
        return [r for r in self.lan.my_rooms() if r != DEFAULT_ROOM or self.in_general]

    def in_channel(self, room: str) -> bool:
        if room == DEFAULT_ROOM:
            return self.in_general
        return room in self.lan.my_rooms()
