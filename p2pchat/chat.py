"""The chat as the faces see it: the verbs (say, act, say privately, join, part, nick, trust,
ignore, forget) and the queries (users, rooms, history, whois), each answering with the plain
values of interfaces.py: ``Said`` or ``Refused``, ``Done`` or ``Refused``, never a live link.

It works on the node's state (node.py) and through its sending path; the node routes what
comes from the edges and emits events, and offers these same verbs (``Node`` is an
``IChat``) by handing them to the ``Chat`` it owns.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from p2pchat import events
from p2pchat.absent import HELD_LINES
from p2pchat.identity import peer_id_for, short_form
from p2pchat.interfaces import (
    Done,
    Outcome,
    PeerView,
    Refused,
    Said,
    SearchHit,
    StoredLine,
    no_linked_peer,
    no_peer_called,
)
from p2pchat.outbox import LONELY_GRACE
from p2pchat.peers import Liveness
from p2pchat.rooms import private_key, room_name
from p2pchat.saying import Saying
from p2pchat.search import SEARCH_MAX_HITS, parse_query
from p2pchat.wire import (
    CAP_OURS,
    CHAT,
    DEFAULT_ROOM,
    JOIN,
    MAX_ROOMS,
    PRIVATE,
    Message,
    nick_problem,
    printable,
    printable_name,
)

if TYPE_CHECKING:
    from p2pchat.node import Node
    from p2pchat.session import PeerSession

#: Lines shown from history when a face starts, and the most /history shows at once.
HISTORY_SHOWN = 50
HISTORY_MAX_SHOWN = 1000
#: The most lines /context shows on each side of a search hit (two bounded reads).
CONTEXT_MAX = 50


class Chat:
    """The verbs and queries of one node (``node``), and what it told the user once."""

    def __init__(self, node: Node) -> None:
        self.node = node
        #: told "no peer is connected" since the last link came up (once, not every line)
        self.told_alone = False
        #: peers told about as away (a line is kept for them), once per absence
        self.told_kept: set[str] = set()
        #: runs of lines said at once (a paste): saying.py
        self.saying = Saying(node)

    def linked(self, peer_id: str) -> None:
        """A link came up: what was told once is told anew when it applies again."""
        self.told_alone = False
        self.told_kept.discard(peer_id)

    def say(self, text: str, room: str = DEFAULT_ROOM) -> Said | Refused:
        """Say a line to a room we are in (or ``@peer_id``: privately, see ``say_private``).
        Returns ``Said`` with the message, or ``Refused`` with why not."""
        return self._say(text, action=False, room=room)

    def act(self, action: str, room: str = DEFAULT_ROOM) -> Said | Refused:
        """Say an action (/me).  The content reads "* nick waves" so a base peer, which shows
        content as it is, shows something sensible; ours read ``metadata.action``."""
        return self._say(action, action=True, room=room)

    def _say(self, text: str, action: bool, room: str) -> Said | Refused:
        node = self.node
        if room.startswith("@"):
            return self.say_private(room[1:], text, action)
        if room not in node.rooms.joined:
            return Refused(f"you are not in #{room}")
        metadata = {"action": text} if action else None
        content = f"* {node.nick} {text}" if action else text
        msg = node.sender.message(CHAT, content, sequenced=True, metadata=metadata, room=room)
        return Said(self._send_line(msg, text, action, room, ""))

    def say_private(self, target: str, text: str, action: bool = False) -> Said | Refused:
        """Say a line to one peer only (never broadcast): ``target`` is how it is shown, or
        its peer id.  Returns ``Said``; its ``waits_for`` names the peer when it is away (the
        line is kept and sent when it is back; a notice says so once per absence); or
        ``Refused`` with why not."""
        node = self.node
        found = self.addressee(target)
        if isinstance(found, Refused):
            return found
        peer_id, nick = found
        link = node.links.get(peer_id)
        # A link with its id that takes no private lines is not it (a plain link claiming
        # it): the line waits for the peer itself.
        away = link is None or link.said_leave or not link.rooms
        if away and node.delivery.private_waiting(peer_id) >= HELD_LINES:
            return Refused(f"{nick} is away and {HELD_LINES} private lines already wait for "
                           f"{nick}: this one is not kept")
        metadata = {"to": peer_id}
        if action:
            metadata["action"] = text
        content = f"* {node.nick} {text}" if action else text
        msg = node.sender.message(PRIVATE, content, sequenced=True, metadata=metadata)
        sent = self._send_line(msg, text, action, private_key(peer_id), nick,
                               kept_for=peer_id if away else "")
        if not away:
            return Said(sent)
        node.sealing.kept(msg, nick, text)  # and sealed, for carriers to hand her (sealing.py)
        kept = Said(sent, waits_for=nick)
        if peer_id not in self.told_kept:
            self.told_kept.add(peer_id)
            node.notice(kept.notice)
        return kept

    def addressee(self, shown: str) -> tuple[str, str] | Refused:
        """Whom a private line to ``shown`` (a nick as shown, or a peer id) goes to: (peer id,
        nick), or why no one.  A linked peer of ours; else one that is away (absent.py):
        linked earlier in this run, or whose key is pinned for that nick."""
        node = self.node
        for link in node.links.values():
            if shown in (node.nick_of(link), link.peer_id):
                if not link.rooms:
                    return Refused(f"{node.nick_of(link)} is a base peer: it can't receive "
                                   "private messages")
                return link.peer_id, node.nick_of(link)
        found = node.recent.find(shown)
        if found is not None:
            return found
        fp = node.trust.pins.get(shown)
        if fp:
            return peer_id_for(fp), printable(shown)
        return no_peer_called(shown)

    def _send_line(self, msg: Message, text: str, action: bool, room: str,
                   private: str, kept_for: str = "") -> Message:
        """``kept_for``: a private line's absent addressee, who must ack it when back."""
        node = self.node
        node.room.accept(msg)
        # A peer that said goodbye is not written to (its link may linger a moment).
        wanted = {pid for pid, link in node.links.items()
                  if not link.said_leave and node.sender.is_for(msg, pid, link.rooms)}
        waiting = node.sender.waiting_for(msg, wanted)
        if kept_for:
            waiting.add(kept_for)
        node.delivery.expect(msg.sequence, msg.id, waiting, private=msg.type == PRIVATE)
        count = node.sender.publish(msg, wanted)
        node.store.save_sent(msg, node.outbox.last_bytes())
        line = events.ChatLine(msg.timestamp or 0.0, node.nick, text, node.peer_id, msg.id,
                               own=True, action=action, sent_to=count,
                               pending=bool(waiting) or not node.links, room=room,
                               private=private, kept=bool(kept_for))
        node.hearing.remember(line)
        node.emit(line)
        if not node.links and msg.type == CHAT:
            node.outbox.said_alone(msg, node.clock.seconds())
        if not node.links and not self.told_alone and not kept_for:
            self.told_alone = True  # once until a link is up again, not on every line
            if node.away:
                names = ", ".join(sorted(node.away.values()))
                node.notice(f"not connected to {names} right now: delivered when they are back")
            else:
                node.notice(f"no peer is connected yet: peers that arrive within "
                            f"{LONELY_GRACE / 60:.0f} minutes get what you say now", error=True)
        return msg

    def join_room(self, text: str) -> Outcome:
        """/join: ``Done`` when we are in the room (also when we already were: nothing
        changes then, and nothing need be said), or ``Refused`` with why not."""
        node = self.node
        name, problem = room_name(text)
        if problem:
            return Refused(problem)
        if name in node.rooms.joined:
            return Done()
        if len(node.rooms.joined) >= MAX_ROOMS:
            return Refused(f"you are in {MAX_ROOMS} rooms already; /part one first")
        node.rooms.join(name)
        node.rooms_changed()
        node.emit(events.RoomChanged(node.clock.seconds(), name, node.nick, node.peer_id,
                                     joined=True, own=True))
        return Done()

    def part_room(self, text: str) -> Outcome:
        """/part: ``Done``, or ``Refused`` with why not."""
        node = self.node
        name, problem = room_name(text)
        if problem:
            return Refused(problem)
        if name == DEFAULT_ROOM:
            return Refused("#general is everyone's room: it can't be left (/quit leaves the chat)")
        if not node.rooms.part(name):
            return Refused(f"you are not in #{name}")
        node.rooms_changed()
        node.emit(events.RoomChanged(node.clock.seconds(), name, node.nick, node.peer_id,
                                     joined=False, own=True))
        return Done()

    def my_rooms(self) -> list[str]:
        """The rooms we are in, #general first (a copy)."""
        node = self.node
        return list(node.rooms.joined)

    def members(self, room: str) -> frozenset[str]:
        """The ids of the linked peers in ``room`` (not us)."""
        node = self.node
        return frozenset(pid for pid in node.links if node.rooms.peer_in(pid, room))

    def rooms_of(self, peer_id: str) -> frozenset[str]:
        """The rooms a peer is in, as it last told us."""
        node = self.node
        return node.rooms.rooms_of_peer(peer_id)

    def room_list(self) -> list[tuple[str, list[str]]]:
        """/rooms: every room we know of, with its members (us first when we are in it)."""
        node = self.node
        out = []
        for name in node.rooms.known():
            members = [node.nick] if name in node.rooms.joined else []
            members += sorted([node.nick_of(link) for pid, link in node.links.items()
                               if node.rooms.peer_in(pid, name)]
                              + node.forwarder.members_of(name))
            out.append((name, members))
        return out

    def history(self, room: str, count: int = HISTORY_SHOWN) -> list[StoredLine]:
        """The last ``count`` lines of a conversation, oldest first (from disk if kept)."""
        node = self.node
        count = max(1, min(count, HISTORY_MAX_SHOWN))
        return node.store.recent(room, count,
                                 skip=[peer_id for _, peer_id, _ in node.ignores.entries()])

    def around(self, room: str, when: float, count: int) -> list[StoredLine]:
        """/context: the lines around ``when`` in a conversation (``count`` each side, at
        most CONTEXT_MAX, so the reads stay short on the reactor), ignored authors left out."""
        node = self.node
        return node.store.around(room, when, max(0, min(count, CONTEXT_MAX)),
                                 skip=[peer_id for _, peer_id, _ in node.ignores.entries()])

    def search(self, text: str) -> Deferred[list[SearchHit] | Refused]:
        """/search WORDS [from:NICK] [in:#ROOM|NICK] [before:DATE] [after:DATE]: the newest
        SEARCH_MAX_HITS lines, found by the history off the reactor.  Never fails: a bad
        query or a failing search (a sqlite error) is a Refused."""
        parsed = parse_query(text)
        if isinstance(parsed, str):
            return succeed(Refused(parsed))
        node = self.node
        rooms: tuple[str, ...] = ()
        if parsed.room:
            found = None if parsed.room.startswith("#") else self.addressee(parsed.room)
            if isinstance(found, tuple):
                rooms = (private_key(found[0]),)
            else:
                rooms = (room_name(parsed.room)[0],)
        query = replace(parsed, rooms=rooms,
                        skip=tuple(peer_id for _, peer_id, _ in node.ignores.entries()))
        try:
            found_lines = node.store.search(query, SEARCH_MAX_HITS)
        except Exception as e:  # a closed file, a failing disk: told, never raised
            return succeed(Refused(f"search failed: {e}"))

        def failed(failure: Failure) -> Refused:
            return Refused(f"search failed: {failure.getErrorMessage()}")

        done: Deferred[list[SearchHit] | Refused] = found_lines.addCallback(list)
        return done.addErrback(failed)

    def search_indexing(self) -> int | None:
        """Percent done of indexing an older history file for /search (None: all done)."""
        return self.node.store.indexing()

    def set_nick(self, nick: str) -> Outcome:
        """Change our nick: ``Done``, or ``Refused`` with why not."""
        node = self.node
        problem = nick_problem(nick)
        if problem:
            return Refused(problem)
        if nick == node.nick:
            return Refused(f"you are already {nick}")
        own_fp = node.identity.fingerprint if node.identity else ""
        pinned = node.trust.pins.get(nick)
        if pinned is not None and pinned != own_fp:
            return Refused(f"{nick} is pinned to another key ({short_form(pinned)}): it is "
                           f"someone else's here (/forget {nick} if that key was yours)")
        old, node.nick = node.nick, nick
        node.trust.be(nick, own_fp)
        if own_fp:
            node.trust.pins.pin(old, own_fp)  # the nick we leave stays ours here (first use)
        # The reference announces a new name as a join whose username is the new name.
        node.sender.broadcast(node.sender.message(JOIN, f"{old} changed their name to {nick}"))
        if node.announcer is not None:
            node.announcer.announce()
        node.forwarder.changed()  # signed, so peers reached through others hear it too
        node.emit(events.NickChanged(node.clock.seconds(), old, nick, node.peer_id, own=True))
        for link in list(node.links.values()):
            if link.username in (old, nick):
                node.keys.check(link)  # a peer using our new nick: flagged, and said so
        node.emit(events.PeersChanged(node.clock.seconds()))
        return Done()

    def users(self) -> list[PeerView]:
        """Everyone we know of: linked peers first, then those we only heard announce."""
        node = self.node
        now = node.clock.seconds()
        rows = []
        for pid, link in node.links.items():
            info = node.peers.get(pid)
            # Show where it listens (from its beacons), not the port it happened to dial from.
            address = f"{info.host}:{info.port}" if info is not None else link.address
            rows.append(PeerView(node.nick_of(link), pid, "connected", address,
                                 link.ours, encrypted=bool(link.fp),
                                 flagged=node.trust.flagged(link.username, link.fp),
                                 rooms=tuple(sorted(node.rooms.rooms_of_peer(pid),
                                                    key=lambda r: (r != DEFAULT_ROOM, r))),
                                 away=node.activity.away_of(pid)))
        for info in node.peers:
            if info.peer_id in node.links or node.forwarder.was_shown(info.peer_id):
                continue  # (one reached through others is listed so, below)
            state = "stale" if info.liveness(now) is not Liveness.ALIVE else "connecting"
            rows.append(PeerView(printable_name(info.username or info.peer_id), info.peer_id,
                                 state, f"{info.host}:{info.port}", CAP_OURS in info.caps))
        rows += node.forwarder.views()
        return sorted(rows, key=lambda r: (r.state != "connected", r.nick.lower()))

    def find_link(self, shown: str) -> PeerSession | None:
        """The linked peer shown as ``shown`` (a nick, ``nick?``, or a peer id); not one that
        said goodbye (its link may linger a moment)."""
        node = self.node
        for link in node.links.values():
            if shown in (node.nick_of(link), link.peer_id) and not link.said_leave:
                return link
        return None

    def whois(self, shown: str) -> list[str] | Refused:
        """What /whois prints about a linked peer, or ``Refused`` if no one is shown so."""
        node = self.node
        link = self.find_link(shown)
        if link is None:
            return no_linked_peer(shown)
        info = node.peers.get(link.peer_id)
        where = f"{info.host}:{info.port}" if info is not None else link.address
        lines = [f"{node.nick_of(link)} (peer id {link.peer_id}) at {where}"]
        if link.fp:
            lines += [f"  key {short_form(link.fp)}  ({link.fp})",
                      f"  encrypted: {link.tls}; {node.trust.state(link.username, link.fp)}"]
        else:
            base = "" if link.ours else " (a base peer: no encryption, no key)"
            lines.append(f"  plain: not encrypted{base}")
        away = node.activity.away_of(link.peer_id)
        if away:
            lines.append(f"  away: {away}")
        return lines

    def trust_peer(self, shown: str) -> Outcome:
        """/trust: pin the key of the peer shown as ``shown`` for its nick."""
        node = self.node
        link = self.find_link(shown)
        if link is None:
            return no_linked_peer(shown)
        if not link.fp:
            return Refused(f"{shown} has no key to trust (a plain connection)")
        if node.trust.is_own(link.username):
            return Refused(f"{printable_name(link.username)} is your own nick: no other key "
                           "can have it")
        old = node.nick_of(link)
        if not node.trust.pins.pin(link.username, link.fp, trusted=True, pk=link.pk):
            return Refused("not pinned: the pin table is full (/forget a nick first)")
        node.emit(events.PeersChanged(node.clock.seconds()))
        return Done(f"pinned {short_form(link.fp)} for {printable_name(link.username)} "
                    f"(was shown as {old})")

    def ignore(self, shown: str) -> Outcome:
        """/ignore: hide the lines of the linked peer shown as ``shown``, by its key (a base
        peer by its peer id), from now on and across restarts."""
        node = self.node
        link = self.find_link(shown)
        if link is None:
            return no_linked_peer(shown)
        name = printable_name(link.username or link.peer_id)
        problem = node.ignores.add(link.peer_id, link.fp, name)
        if problem:
            return Refused(problem)
        key = f"its key {short_form(link.fp)}" if link.fp else f"its peer id {link.peer_id}"
        return Done(f"ignoring {node.nick_of(link)} ({key}): its lines are not shown")

    def unignore(self, text: str) -> Outcome:
        """/unignore: show the lines of an ignored peer again (by nick, shown nick or id)."""
        node = self.node
        link = self.find_link(text)
        peer_id = link.peer_id if link is not None and link.peer_id in node.ignores else None
        peer_id = peer_id or node.ignores.find(text[:-1] if text.endswith("?") else text)
        entry = node.ignores.remove(peer_id) if peer_id else None
        if entry is None:
            return Refused(f"{text} is not ignored; /ignore lists who is")
        return Done(f"no longer ignoring {entry[1]}")

    def ignored(self) -> list[str]:
        """/ignore with no argument: who is ignored."""
        node = self.node
        entries = node.ignores.entries()
        if not entries:
            return ["nobody is ignored"]
        return [f"ignored: {len(entries)}"] + [
            f"  {nick:<21} {short_form(fp) if fp else 'no key, peer id ' + peer_id}"
            for nick, peer_id, fp in entries]

    def forget_pin(self, nick: str) -> Outcome:
        """/forget: drop the pin of ``nick``; the next key seen for it is pinned anew."""
        node = self.node
        name = nick[:-1] if nick.endswith("?") else nick
        if node.trust.pins.forget(name):
            node.emit(events.PeersChanged(node.clock.seconds()))
            return Done(f"forgot the key pinned for {name}")
        return Refused(f"no key is pinned for {name}")

    def shown_nick(self, peer_id: str) -> str:
        """How the peer with this id is shown now (``nick``, ``nick?``), or the id itself."""
        node = self.node
        link = node.links.get(peer_id)
        if link is not None:
            return node.nick_of(link)
        info = node.peers.get(peer_id)
        if info is not None and info.username:
            return printable_name(info.username)
        return node.recent.nick(peer_id) or peer_id
