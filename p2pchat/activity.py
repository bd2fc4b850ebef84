"""What peers are doing beside talking: typing, and being away (``typing/1``, ``away/1``).

Both are negotiated caps (wire.py) and ride in lines of their own, written straight to the
links that announced them (a base peer, or a plain link while we have a key, gets none:
session.py).  Neither is stored, sequenced, acked or caught up: they say what is true now,
and a peer that missed one learns the next (away is said again to every link that comes up
while we are away).

Typing is cheap for us to send and for others to receive only if it is bounded both ways: we
send at most one ``typing`` line per conversation every ``TYPING_EVERY`` seconds while the user
types, and take at most ``TYPING_HEARD_RATE`` a second from one link (after a burst of
``TYPING_HEARD_BURST``); the rest are dropped.  A face shows one for ``TYPING_SHOWN`` seconds
after the last.  ``/set typing off`` sends none; that setting is kept in the data dir
(``settings.json``).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from twisted.logger import Logger, LogLevel

from p2pchat import events
from p2pchat.clocks import log_limited
from p2pchat.flow import TokenBucket
from p2pchat.identity import _write_private
from p2pchat.interfaces import Done, Outcome, Refused
from p2pchat.rooms import private_key
from p2pchat.wire import AWAY, DEFAULT_ROOM, MAX_AWAY_CHARS, TYPING, printable

if TYPE_CHECKING:
    from p2pchat.node import Node
    from p2pchat.session import PeerSession
    from p2pchat.wire import Message

log = Logger()

#: At most one typing line per conversation this often (seconds) while the user types.
TYPING_EVERY = 3.0
#: How long (seconds) a peer is shown as typing after its last typing line.
TYPING_SHOWN = 6.0
#: Typing lines taken from one link: this many a second, after a burst of TYPING_HEARD_BURST.
TYPING_HEARD_RATE = 2.0
TYPING_HEARD_BURST = 4
#: Most conversations whose last typing line we remember (oldest forgotten first).
TYPING_TARGETS = 64
#: The file in the data dir that keeps the settings ``/set`` changes.
SETTINGS_NAME = "settings.json"
#: The settings ``/set`` knows, with their defaults.
SETTINGS: dict[str, bool] = {"typing": True}


class Settings:
    """The ``/set`` switches (on/off), kept in ``path`` (0600, written atomically) when given."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self.values = dict(SETTINGS)
        if path and os.path.exists(path):
            try:
                with open(path, encoding="utf-8") as f:
                    data = dict(json.load(f))
                for name in SETTINGS:
                    if isinstance(data.get(name), bool):
                        self.values[name] = data[name]
            except (OSError, ValueError, TypeError) as e:
                log.error("can't read the settings in {path} ({why}): using the defaults",
                          path=path, why=str(e))

    def set(self, name: str, value: bool) -> None:
        self.values[name] = value
        if not self.path:
            return
        try:
            _write_private(self.path, json.dumps(self.values, indent=1,
                                                 sort_keys=True).encode())
        except OSError as e:
            log.error("can't save the settings in {path}: {why}", path=self.path, why=str(e))


class Activity:
    """Typing and away for one node (``node``): ours, sent; the peers', heard."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.settings = Settings()
        #: our away text ("" = here)
        self.away_text = ""
        #: linked peers' away texts, by peer id (forgotten when the link goes)
        self.peers_away: dict[str, str] = {}
        #: when we last sent a typing line, by conversation
        self._typed: dict[str, float] = {}
        #: each link's budget of typing lines taken, by peer id
        self._heard: dict[str, TokenBucket] = {}

    # --- ours --------------------------------------------------------------------------------

    def typing(self, room: str) -> None:
        """The user is typing in ``room`` (a room name, or ``@peer_id``): tell the peers
        there that speak ``typing/1``, at most once every TYPING_EVERY seconds."""
        node = self.node
        if not self.settings.values["typing"]:
            return
        now = node.clock.seconds()
        last = self._typed.get(room)
        if last is not None and now - last < TYPING_EVERY:
            return
        if room.startswith("@"):
            peer_id = room[1:]
            link = node.links.get(peer_id)
            targets = [link] if link is not None and link.typing and link.rooms else []
            msg = node.sender.message(TYPING, "", metadata={"to": peer_id})
        else:
            if room not in node.rooms.joined:
                return
            targets = [link for pid, link in node.links.items() if link.typing
                       and (room == DEFAULT_ROOM or node.rooms.peer_in(pid, room))]
            msg = node.sender.message(TYPING, "", room=room)
        self._typed.pop(room, None)
        self._typed[room] = now
        while len(self._typed) > TYPING_TARGETS:
            del self._typed[next(iter(self._typed))]
        for link in targets:
            if not link.said_leave and not link.backed_up:
                link.send(msg)

    def set_typing(self, on: bool) -> Outcome:
        """``/set typing on|off``: whether we send typing lines (kept in the data dir)."""
        self.settings.set("typing", on)
        return Done("typing: on (peers see when you type)" if on
                    else "typing: off (peers are not told when you type)")

    def set_away(self, text: str) -> Outcome:
        """``/away TEXT`` (``""``: ``/back``): tell every peer that speaks ``away/1``."""
        node = self.node
        text = printable(text.strip())[:MAX_AWAY_CHARS]
        if text == self.away_text:
            return Done(f"you are already away: {text}" if text else "you are not away")
        self.away_text = text
        for link in list(node.links.values()):
            self.send_away(link)
        node.emit(events.AwayChanged(node.clock.seconds(), node.nick, node.peer_id, text,
                                     own=True))
        return Done(f"you are away: {text}" if text else "you are back")

    def send_away(self, link: PeerSession) -> None:
        """Tell ``link`` our away text (``""``: we are back), if it speaks ``away/1``."""
        if link.speaks_away and not link.said_leave:
            link.send(self.node.sender.message(AWAY, self.away_text))

    def linked(self, link: PeerSession) -> None:
        """A link came up: it learns that we are away, in its first exchange."""
        if self.away_text:
            self.send_away(link)

    def lost(self, peer_id: str) -> bool:
        """A link went: its typing budget and away text are forgotten.  Returns whether it was
        away (its nick leaves the away list)."""
        self._heard.pop(peer_id, None)
        return self.peers_away.pop(peer_id, None) is not None

    # --- the peers' --------------------------------------------------------------------------

    def heard_typing(self, link: PeerSession, msg: Message) -> None:
        node = self.node
        if not link.typing:
            return  # it never said it speaks typing/1 (or proved no key): not believed
        now = node.clock.seconds()
        bucket = self._heard.get(link.peer_id)
        if bucket is None:
            bucket = self._heard[link.peer_id] = TokenBucket(TYPING_HEARD_RATE,
                                                             TYPING_HEARD_BURST, now)
        if not bucket.take(now):
            log_limited(node.clock, log, "typing flood", LogLevel.debug,
                        "{peer} sends typing lines too fast: dropped", peer=link.peer_id)
            return
        to = (msg.metadata or {}).get("to")
        if to is not None:
            if to != node.peer_id or not link.rooms:
                return
            room = private_key(link.peer_id)
        else:
            room = msg.room_id
            if room not in node.rooms.joined:
                return
        if link.peer_id in node.ignores:
            return
        node.emit(events.Typing(now, node.nick_of(link), link.peer_id, room,
                                now + TYPING_SHOWN))

    def heard_away(self, link: PeerSession, msg: Message) -> None:
        node = self.node
        if not link.speaks_away:
            return
        text = printable(msg.content.strip())[:MAX_AWAY_CHARS]
        if self.peers_away.get(link.peer_id, "") == text:
            return
        if text:
            self.peers_away[link.peer_id] = text
        else:
            self.peers_away.pop(link.peer_id, None)
        now = node.clock.seconds()
        node.emit(events.AwayChanged(now, node.nick_of(link), link.peer_id, text))
        node.emit(events.PeersChanged(now))

    def away_of(self, peer_id: str) -> str:
        """The away text of a linked peer ("" when it is here); ours for our own id."""
        if peer_id == self.node.peer_id:
            return self.away_text
        return self.peers_away.get(peer_id, "")

    def setting(self, text: str) -> Outcome | list[str]:
        """``/set NAME on|off``, or ``/set`` alone: the settings."""
        name, _, value = text.strip().partition(" ")
        if not name:
            return [f"{n}: {'on' if v else 'off'}"
                    for n, v in sorted(self.settings.values.items())]
        if name not in SETTINGS:
            return Refused(f"no setting {printable(name)[:32]}; /set lists them")
        value = value.strip().lower()
        if value not in ("on", "off"):
            return Refused(f"usage: /set {name} on|off")
        return self.set_typing(value == "on")

