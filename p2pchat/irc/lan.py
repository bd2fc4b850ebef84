"""What the IRC clients of one peer share: the chat (through ``IChat`` only), the roster of
IRC nicks, who left (as they were shown), and which client a verb runs for.

Several clients may attach at once; they share one peer, so they share its rooms.  This is
that shared view, apart from the connections themselves (``fanout.IrcFactory`` holds those),
so the commands of one client and the fan-out of the node's events read the same state.
"""

from __future__ import annotations

import time
from typing import Any, Callable, TypeVar

from twisted.internet.interfaces import IReactorTime

from p2pchat.absent import RECENT_PEERS
from p2pchat.interfaces import IChat, Outcome, Refused, Said
from p2pchat.irc.lockout import Lockout
from p2pchat.irc.names import Member, Roster, irc_fold, irc_nick, irc_user
from p2pchat.irc.text import SERVER_NAME
from p2pchat.wire import DEFAULT_ROOM, MAX_NICK_CHARS, MAX_ROOM_CHARS, MAX_ROOMS

T = TypeVar("T")

#: At most this many targets in one PRIVMSG/NOTICE/JOIN/PART (``a,b,c``).
MAX_TARGETS = 8


def refusal(result: object) -> str | None:
    """Why a verb did nothing (its ``Refused``), or None when it did what was asked."""
    return result.why if isinstance(result, Refused) else None


def answer(result: Outcome) -> str:
    """What to tell the user of a verb's outcome, done or refused."""
    return result.why if isinstance(result, Refused) else result.text


def kept_notice(result: object) -> str:
    """For a line kept for an away peer (``Said.waits_for``), what to tell the user; else ""."""
    return result.notice if isinstance(result, Said) else ""


class Lan:
    """The chat as the IRC clients of one peer see it."""

    def __init__(self, node: IChat, clock: IReactorTime, password: str | None = None) -> None:
        self.node = node
        self.clock = clock
        self.password = password or None
        self.roster = Roster(node.peer_id, node.nick)
        self.lockout = Lockout()
        self.started = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(clock.seconds()))
        #: the client a verb runs for (its own lines are not echoed back to it), while it runs
        self.origin: object | None = None
        #: what the client whose verb runs said it with (PRIVMSG or NOTICE): its echo
        #: (echo-message) comes back as that
        self.origin_command = "PRIVMSG"
        #: the node's notices while a verb of a client runs (that client was shown them)
        self.verb_notices: list[str] = []
        #: the reason a client gave with PART, while the node's RoomChanged for it is shown
        self.part_reason: str | None = None
        #: IRC nick (folded) -> (that nick, peer id) of the peers that left, as they were
        #: shown: a query window keeps its nick (``bob|2``), and a line to it is kept for
        #: that peer (newest last; at most RECENT_PEERS)
        self._left: dict[str, tuple[str, str]] = {}

    def fill_roster(self) -> None:
        """The roster anew, from the node's current links."""
        self.roster = Roster(self.node.peer_id, self.node.nick)
        for view in self.node.users():
            if view.state in ("connected", "relayed"):  # relayed: reached through others
                self.roster.add(view.peer_id, view.nick, view.address, view.flagged)

    # --- verbs on behalf of a client -------------------------------------------------------

    def run_verb(self, origin: object, verb: Callable[..., T], *args: Any,
                 command: str = "PRIVMSG") -> T:
        """Run a node verb on behalf of ``origin`` (a client), so the events it causes are not
        echoed back to that client (IRC servers don't echo a client's own lines) unless it
        asked for echo-message (then as ``command``)."""
        self.origin = origin
        self.origin_command = command
        self.verb_notices = []
        try:
            return verb(*args)
        finally:
            self.origin = None
            self.origin_command = "PRIVMSG"

    def part_room(self, origin: object, room: str, reason: str | None) -> str | None:
        """PART of a room (not general) from a client: the peer leaves it, and every client
        is shown the PART (with the client's reason) by the node's RoomChanged.  Returns why
        not, or None."""
        self.part_reason = reason
        try:
            return refusal(self.run_verb(origin, self.node.part_room, room))
        finally:
            self.part_reason = None

    # --- rooms and their members ------------------------------------------------------------

    def my_rooms(self) -> list[str]:
        """The rooms the peer is in, #general first."""
        return self.node.my_rooms()

    def rooms_of(self, member: Member) -> list[str]:
        """The rooms ``member`` is in (general first), as the node knows them."""
        if member is self.roster.me:
            return self.node.my_rooms()
        return sorted(self.node.rooms_of(member.peer_id), key=lambda r: (r != DEFAULT_ROOM, r))

    def members(self, room: str) -> list[Member]:
        """Who is in ``room`` as IRC shows it: us (if we are in it), then the peers of the
        roster the node says are in it.  A peer's rooms outlive a lost link (the node keeps
        them until it says goodbye or is forgotten), which keeps this in step with the JOINs
        shown."""
        out = [self.roster.me] if room in self.node.my_rooms() else []
        if room == DEFAULT_ROOM:
            return out + self.roster.peers()
        return out + [m for m in self.roster.peers() if room in self.node.rooms_of(m.peer_id)]

    def known(self, room: str) -> bool:
        """Whether ``room`` exists: we or a linked peer are in it."""
        return room == DEFAULT_ROOM or bool(self.members(room))

    def flagged(self, peer_id: str) -> bool:
        """Whether the node flags this peer (its key is not the one pinned for its nick)."""
        return any(v.flagged for v in self.node.users() if v.peer_id == peer_id)

    # --- peers that left --------------------------------------------------------------------

    def left(self, member: Member) -> None:
        """``member`` left (its link is gone): remember how it was shown."""
        self._left.pop(irc_fold(member.nick), None)
        self._left[irc_fold(member.nick)] = (member.nick, member.peer_id)
        while len(self._left) > RECENT_PEERS:
            del self._left[next(iter(self._left))]

    def back(self, member: Member) -> None:
        """``member`` is shown again: its nick no longer names a peer that left."""
        self._left.pop(irc_fold(member.nick), None)

    def away_peer(self, nick: str) -> tuple[str, str] | None:
        """How to name to ``node.say_private`` the away peer ``nick`` stands for (the id of a
        peer shown so that left; else ``nick``, if the node knows it: linked earlier in this
        run, or pinned), and its peer id, if the node can keep private lines for it; else
        None."""
        peer_id = self._left.get(irc_fold(nick), ("", ""))[1]
        for shown in ([peer_id] if peer_id else []) + [nick]:
            found = self.node.addressee(shown)
            if isinstance(found, tuple):
                return shown, found[0]
        return None

    def sender(self, peer_id: str, nick: str) -> Member:
        """The member shown for ``peer_id``; one made up if it is not linked (a line that
        came as its link dropped, or one kept for it while it is away)."""
        member = self.roster.peer(peer_id)
        if member is not None:
            return member
        # Away (a line kept for it): as it was shown, so a query with ``bob|2`` stays one.
        shown = next((n for n, pid in reversed(self._left.values()) if pid == peer_id), None)
        return Member(shown or irc_nick(nick), peer_id, irc_user(peer_id), "unknown")

    def isupport(self) -> list[str]:
        return [f"NETWORK={SERVER_NAME}", "CASEMAPPING=ascii", "CHANTYPES=#",
                f"CHANLIMIT=#:{MAX_ROOMS}", f"CHANNELLEN={MAX_ROOM_CHARS + 1}",
                f"NICKLEN={MAX_NICK_CHARS}", "PREFIX=()", "CHANMODES=,,,nt",
                f"TARGMAX=PRIVMSG:{MAX_TARGETS},NOTICE:{MAX_TARGETS},JOIN:{MAX_TARGETS},"
                f"PART:{MAX_TARGETS}"]
