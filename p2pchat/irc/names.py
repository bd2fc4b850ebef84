"""Names as IRC shows them (pure code): a LAN nick as a legal IRC nick, a peer id and address
as a hostmask, a room as a channel, and the ``Roster`` that gives each linked peer one unique
IRC nick.  LAN nicks need not be unique nor legal IRC nicks; IRC clients track members by
nick, so the roster decides who is shown as what, and keeps it while the peer stays."""

from __future__ import annotations

from dataclasses import dataclass, replace

from twisted.words.protocols import irc

from p2pchat.rooms import room_name
from p2pchat.wire import DEFAULT_ROOM, MAX_NICK_CHARS, nick_problem

#: The user part of ``nick!user@host`` (the peer id, cleaned) is cut to this many characters.
MAX_USER_CHARS = 32
CHANNEL = f"#{DEFAULT_ROOM}"
#: How a second peer with the same nick is shown: ``bob``, ``bob|2``, ``bob|3``...
NICK_SUFFIX = "|"
#: How a flagged peer is shown: one whose key is not the one pinned for its nick (``carol?``
#: in the other faces; ``?`` can't be in an IRC nick), or another peer using our own nick:
#: ``carol|other``, ``alice|other``.
FLAG_SUFFIX = "|other"
#: Our own hostmask's host: this peer, as its IRC clients see it.
SELF_HOST = "local"
#: Why a channel name that doesn't start with '#' is refused (403).
NOT_HASH = "channels here are rooms, named '#' and the room's name (#general, #ops)"
#: ERR_BADCHANNAME (not in twisted.words' table): the name can't be a room's.
ERR_BADCHANNAME = "479"
#: Characters no IRC nick may hold (they delimit prefixes, lists and masks).
_NICK_FORBIDDEN = frozenset(" ,*?!@:.\"'")
#: Characters an IRC nick may not start with (channel prefixes, status prefixes, digits).
_NICK_BAD_FIRST = frozenset("#&+!~%$-0123456789")


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
    per linked peer.  Which rooms each is in, the node knows (``Lan.members``).

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
