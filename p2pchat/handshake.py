"""The handshake of one peer connection, as a machine with no socket: it is told what happened
(connected, a line came, TLS finished, the timer rang, the node's answers) and answers with the
actions ``mesh.PeerProtocol`` carries out (write our join, start TLS, go live, close, ...).

Its stages replace the seven flags the protocol object had::

    listener:  AWAIT_JOIN --join--> (node asked) --plain--------------------> READY
                                                  --TLS: starttls sent--> TLS --cert ok--> READY
    dialer:    (join sent) --plain--> READY
               (join sent) --TLS--> AWAIT_STARTTLS --starttls--> TLS --cert ok--> READY
    onion links (``tls_first``: TLS from the first byte, as txtorcon's SOCKS wrapper keeps
    the transport's protocol for itself, so a STARTTLS never tells ours it finished):
    listener:  AWAIT_JOIN (cert proven meanwhile) --join, cert is its key--> starttls sent,
               READY
    dialer:    TLS --cert is the expected key--> join sent, AWAIT_STARTTLS --starttls--> READY
    any stage before READY --bad first line, refusal, timeout, wrong cert--> REFUSED
    READY --connection lost--> LOST          (anything else lost: REFUSED)

Nothing may follow the join (listener) or the starttls line (dialer) in plaintext: those bytes
would be read as if TLS had protected them (STARTTLS injection), so the connection is dropped.
The caller says whether bytes were left after the switch line (``more``).

A plain enum-state class rather than Automat: every transition here branches on the line's
content and on the node's verdict (a join may lead to a refusal, TLS or a plain link), while
an Automat input goes to one fixed state, so the branching would move out of the machine into
a classifier in front of it; the lines of a live link also never go through the machine.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Callable, Optional, Union

from p2pchat.wire import CAP_TLS, JOIN, STARTTLS, Message, printable

#: A connection that has not sent its first line (a join), or finished its TLS handshake,
#: after this many seconds with nothing heard from it is closed (``mesh.HANDSHAKE_TIMEOUT``
#: is this one).  The timer counts from the last bytes received, not from the connect: on a
#: machine saturated by a crowd of peers starting at once, a handshake that moves at every
#: step is slow, not dead, and closing it only to redial it fed the load that slowed it.
HANDSHAKE_TIMEOUT = 10.0
#: However it moves, a connection that is not a link after this many times the timeout is
#: closed (a peer trickling bytes can't hold a connection open for ever).
HANDSHAKE_MAX_FACTOR = 6.0
#: A timer that rang this many seconds late says our own process was starved (the machine is
#: saturated): the peer most likely was too, so the timeout counts from now.  And the verdict
#: waits one reactor turn (``mesh``): a starved process finds its timers due before it reads
#: its sockets, and what came meanwhile counts as heard.
STARVED_LATENESS = 1.0


class Stage(enum.Enum):
    AWAIT_JOIN = "await join"  # listener: nothing heard yet
    OFFERED = "offered"  # listener: join heard, the node is asked whether it takes the link
    AWAIT_STARTTLS = "await starttls"  # dialer: join sent, the listener's starttls awaited
    TLS = "tls handshake"  # TLS started; the peer's certificate not yet checked
    GOING_LIVE = "going live"  # handshake done; the node is asked to take the link
    READY = "ready"  # a link the node took
    REFUSED = "refused"  # closed or refused before it was a link (or the node refused it)
    LOST = "lost"  # was a link, now gone


# --- actions: what PeerProtocol does ---------------------------------------------------------


@dataclass(frozen=True)
class Note:
    """Log this (``text`` may use {peer} and {address}, and the names in ``fields``)."""

    kind: str
    level: str  # "info" or "warn"
    text: str
    fields: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class SendJoin:
    """Write our join (the dialer's first line)."""


@dataclass(frozen=True)
class SendStartTLS:
    """Write our ``starttls`` line (the listener's answer to a join with a key)."""


@dataclass(frozen=True)
class ArmTimer:
    """Start the handshake timer: ``Handshake.timeout`` when it rings, ``after`` seconds from
    now."""

    after: float


@dataclass(frozen=True)
class Learn:
    """The listener learnt who called from its join: keep its id, nick and caps."""

    peer_id: str
    username: str
    caps: tuple[str, ...]


@dataclass(frozen=True)
class Offer:
    """Ask the node whether it takes a link from this peer (``Node.link_offered``); give the
    answer to ``Handshake.offered``."""

    peer_id: str
    username: str
    fp: str


@dataclass(frozen=True)
class Refuse:
    """Refuse the link for ``why`` (a peer of ours is told first) and close."""

    why: str


@dataclass(frozen=True)
class StartTLS:
    server: bool


@dataclass(frozen=True)
class Proven:
    """TLS proved the peer holds the key of fingerprint ``fp``."""

    fp: str


@dataclass(frozen=True)
class GoLive:
    """Hand the link to the node (``Node.link_ready``); give the answer to
    ``Handshake.linked``."""


@dataclass(frozen=True)
class Deliver:
    """Give this line to the node (the listener's held join, once the link is live)."""

    msg: Message


@dataclass(frozen=True)
class Close:
    """Close the link, saying why (``PeerProtocol.close``)."""

    why: str


@dataclass(frozen=True)
class Drop:
    """Close the connection: at once, dropping what is unread and unwritten (``abort``), or
    after what is written (a plain loseConnection)."""

    abort: bool = True


Action = Union[Note, SendJoin, SendStartTLS, ArmTimer, Learn, Offer, Refuse, StartTLS, Proven,
               GoLive, Deliver, Close, Drop]


#: The join metadata key that carries an invite's secret over an onion link.
INVITE_KEY = "invite"
#: An onion listener's gate: (the dialer's join, the key TLS proved) to why it is not let
#: in, or None.
Admit = Callable[[Message, str], Optional[str]]


def with_invite(join: Message, secret: str) -> Message:
    """Our join, carrying an invite's secret (an onion dialer's; "" leaves it as it is)."""
    if not secret:
        return join
    return replace(join, metadata={**(join.metadata or {}), INVITE_KEY: secret})


def _injection() -> list[Action]:
    return [Note("plaintext after starttls", "warn",
                 "{address} sent plaintext after the switch to TLS: closed"), Drop(abort=True)]


class Handshake:
    """One connection's handshake.  ``outgoing``: we dialed (we know whom, from its beacon:
    ``peer_id``, ``caps`` and the fingerprint ``expect_fp`` it announced; a static peer's id
    may be "": then the listener's starttls line tells it); ``have_key``: we have an
    identity, so a peer announcing CAP_TLS gets mutual TLS.  ``tls_first``: the connection
    is TLS from its first byte (an onion link), checked against the same keys.  ``learn``:
    the dialer knows no nick or caps of the listener yet (a static peer, a contact).
    ``admit``: the listener lets in only a join it admits (an onion's invite gate)."""

    def __init__(self, outgoing: bool, have_key: bool, peer_id: str = "",
                 caps: tuple[str, ...] = (), expect_fp: str = "",
                 timeout: float = HANDSHAKE_TIMEOUT, tls_first: bool = False,
                 learn: bool = False, admit: Admit | None = None) -> None:
        self.outgoing = outgoing
        self.timeout_after = timeout
        self.have_key = have_key
        self.peer_id = peer_id
        self.expect_fp = expect_fp
        self.tls_first = tls_first
        #: the dialer takes the listener's id, nick and caps from its starttls line (a
        #: static peer or a contact: no beacon told them)
        self.learn = learn or not peer_id
        #: an onion listener's gate, asked before the node is (``Admit``)
        self.admit = admit
        #: tls_first: the fingerprint TLS proved ("" until it did)
        self.proven = ""
        #: the fingerprint a peer showed that was not the expected one ("" if none was)
        self.wrong_fp = ""
        self.stage = Stage.AWAIT_STARTTLS if outgoing and self._tls_wanted(caps) else (
            Stage.GOING_LIVE if outgoing else Stage.AWAIT_JOIN)
        if tls_first and outgoing:
            self.stage = Stage.TLS
        #: the listener's join, handed to the node once the link is live
        self.first: Message | None = None
        #: why the other side refused this link, if it said so (a ``refused`` line)
        self.refused_by = ""
        self._more = False

    def _tls_wanted(self, caps: tuple[str, ...]) -> bool:
        return self.have_key and CAP_TLS in caps

    @property
    def ready(self) -> bool:
        return self.stage is Stage.READY

    @property
    def was_ready(self) -> bool:
        return self.stage is Stage.READY or self.stage is Stage.LOST

    # --- events ------------------------------------------------------------------------------

    def connected(self) -> list[Action]:
        """The TCP connection is up."""
        if not self.outgoing or self.tls_first:
            return [ArmTimer(self.timeout_after)]
        if self.stage is Stage.AWAIT_STARTTLS:
            return [SendJoin(), ArmTimer(self.timeout_after)]
        return [SendJoin(), GoLive()]

    def receive(self, msg: Message, more: bool = False) -> list[Action]:
        """A parsed line before the link is live; ``more``: bytes were left after it."""
        if self.stage is Stage.AWAIT_JOIN:
            return self._join(msg, more)
        if self.stage is Stage.AWAIT_STARTTLS:
            return self._starttls(msg, more)
        return []  # during TLS, or refused: nothing more is read

    def bad_line(self) -> list[Action]:
        """A line that is not a message (already logged): a listener that has not got a
        join yet closes (it is not one of us); anything else skips it."""
        if self.stage is Stage.AWAIT_JOIN:
            self.stage = Stage.REFUSED
            return [Drop(abort=False)]
        return []

    def refused_line(self, msg: Message) -> list[Action]:
        """The other side refused this link and said why (a ``refused`` line from the peer
        itself): log it and close; the dialer redials with backoff."""
        self.refused_by = printable(msg.content)[:200] or "no reason given"
        if self.stage is not Stage.READY:
            self.stage = Stage.REFUSED
        return [Note("refused by peer", "warn", "{peer} ({address}) refused the link: {why}",
                     {"why": self.refused_by}),
                Close(f"it refused the link: {self.refused_by}")]

    def offered(self, why: str | None) -> list[Action]:
        """The node's answer to ``Offer``: None takes the link, else why not."""
        if self.stage is not Stage.OFFERED:
            return []
        if why is not None:
            self.stage = Stage.REFUSED
            return [Refuse(why)]
        if self.tls_first:
            return self._tls_first_taken()
        if self.expect_fp:
            if self._more:
                self.stage = Stage.REFUSED
                return _injection()
            self.stage = Stage.TLS
            return [SendStartTLS(), StartTLS(server=True)]
        self.stage = Stage.GOING_LIVE
        return [GoLive()]

    def tls_done(self, fp: str) -> list[Action]:
        """TLS is up; ``fp``: the fingerprint of the peer's certificate ("" if none).  It must
        be the key the peer announced."""
        if self.tls_first and self.stage is Stage.AWAIT_JOIN:
            self.proven = fp  # checked against the join's key when it comes
            return []
        if self.stage is not Stage.TLS:
            return []
        if not fp or fp != self.expect_fp:
            return self._wrong_certificate(fp)
        if self.tls_first:  # the dialer: the listener proved the key we expected
            self.proven = fp
            self.stage = Stage.AWAIT_STARTTLS
            return [SendJoin()]
        self.stage = Stage.GOING_LIVE
        return [Proven(fp), GoLive()]

    def _wrong_certificate(self, fp: str) -> list[Action]:
        self.stage = Stage.REFUSED
        self.wrong_fp = fp or "(none)"
        return [Note("wrong certificate", "warn",
                     "{peer} ({address}) showed a certificate that is not the key it "
                     "announced: closed"), Drop(abort=True)]

    def _tls_first_taken(self) -> list[Action]:
        """The listener of a tls_first link took the join: its key must be the one TLS
        proved; then our starttls line says we took it (no switch follows: TLS is on)."""
        if not self.expect_fp or self.proven != self.expect_fp:
            return self._wrong_certificate(self.proven)
        self.stage = Stage.GOING_LIVE
        return [SendStartTLS(), Proven(self.proven), GoLive()]

    def linked(self, taken: bool) -> list[Action]:
        """The node's answer to ``GoLive``: True, it took the link (else it closed it)."""
        first, self.first = self.first, None
        if self.stage is not Stage.GOING_LIVE:
            return []
        if not taken:
            self.stage = Stage.REFUSED
            return []
        self.stage = Stage.READY
        return [Deliver(first)] if first is not None else []

    def timeout(self, quiet: float = float("inf"), age: float = float("inf"),
                late: float = 0.0) -> list[Action]:
        """The handshake timer rang (and the reactor read what had come meanwhile).
        ``quiet``: seconds since bytes last came; ``age``: since the connection opened;
        ``late``: how late the timer rang.  Bytes heard within the timeout, or a timer that
        rang so late that we were starved, re-arm it, up to ``HANDSHAKE_MAX_FACTOR`` times the
        timeout in all; else the connection is closed."""
        if self.stage in (Stage.READY, Stage.LOST, Stage.REFUSED):
            return []
        if age < self.timeout_after * HANDSHAKE_MAX_FACTOR:
            if late >= STARVED_LATENESS:
                return [ArmTimer(self.timeout_after)]
            if quiet < self.timeout_after:
                return [ArmTimer(after=self.timeout_after - quiet)]
        self.stage = Stage.REFUSED
        return [Note("handshake timeout", "info",
                     "{peer} ({address}) did not finish its handshake within {t:.0f} s: closed",
                     {"t": self.timeout_after}), Drop(abort=True)]

    def lost(self) -> bool:
        """The connection is gone.  Returns True if it was a link (the node must hear of it)."""
        was = self.stage is Stage.READY
        self.stage = Stage.LOST if was else Stage.REFUSED
        return was

    # --- the two switch points -------------------------------------------------------------

    def _join(self, msg: Message, more: bool) -> list[Action]:
        if msg.type != JOIN:
            self.stage = Stage.REFUSED
            return [Note("not a join", "warn",
                         "{address} opened with a {kind} line, not a join: closed",
                         {"kind": msg.type}), Drop(abort=False)]
        self.peer_id = msg.sender_id
        self.first = msg
        self._more = more
        self.stage = Stage.OFFERED
        tls = self._tls_wanted(msg.caps) and bool(msg.fp)
        self.expect_fp = msg.fp if tls else ""
        why = self.admit(msg, self.proven) if self.admit is not None else None
        if why:
            self.stage = Stage.REFUSED
            return [Learn(msg.sender_id, msg.username, msg.caps), Refuse(why)]
        # Refused now, before TLS, the dialer's link never comes up: both sides agree.
        return [Learn(msg.sender_id, msg.username, msg.caps),
                Offer(msg.sender_id, msg.username,
                      msg.fp if self._tls_wanted(msg.caps) else "")]

    def _starttls(self, msg: Message, more: bool) -> list[Action]:
        """The dialer's side: the listener said ``starttls``; the TLS handshake follows."""
        if msg.type != STARTTLS or (self.peer_id and msg.sender_id != self.peer_id):
            self.stage = Stage.REFUSED
            return [Note("not starttls", "warn",
                         "{peer} ({address}) answered with a {kind} line, not starttls: "
                         "closed", {"kind": msg.type}), Drop(abort=True)]
        learn: list[Action] = []
        if self.learn:  # a static peer or contact: who answered
            self.peer_id = msg.sender_id
            learn.append(Learn(msg.sender_id, msg.username, msg.caps))
        if self.tls_first:  # the listener took our join: the link is on
            self.stage = Stage.GOING_LIVE
            return learn + [Proven(self.proven), GoLive()]
        self.expect_fp = self.expect_fp or msg.fp
        if more:  # STARTTLS injection on the dialer's side
            self.stage = Stage.REFUSED
            return _injection()
        self.stage = Stage.TLS
        return learn + [StartTLS(server=False)]
