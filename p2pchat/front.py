"""The node's face-facing verbs and queries (interfaces.IChat), each handed on to the part
that does it (chat.py, activity.py): kept on the node so a face, a test or the bench holds one
object, apart from node.py so the node's class is its routing only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred

from p2pchat.interfaces import Outcome, PeerView, Refused, Said, SearchHit, StoredLine
from p2pchat.wire import DEFAULT_ROOM

from p2pchat.chat import HISTORY_SHOWN, Chat

if TYPE_CHECKING:
    from p2pchat.activity import Activity
    from p2pchat.clocks import Clock


class ChatFront:
    """IChat on the node, by delegation."""

    chat: Chat
    activity: Activity
    clock: Clock

    def say(self, text: str, room: str = DEFAULT_ROOM) -> Said | Refused:
        return self.chat.say(text, room)

    def say_lines(self, texts: list[str], room: str = DEFAULT_ROOM) -> list[Refused]:
        return self.chat.saying.say_lines(texts, room)

    def act(self, action: str, room: str = DEFAULT_ROOM) -> Said | Refused:
        return self.chat.act(action, room)

    def say_private(self, target: str, text: str, action: bool = False) -> Said | Refused:
        return self.chat.say_private(target, text, action)

    def join_room(self, text: str) -> Outcome:
        return self.chat.join_room(text)

    def part_room(self, text: str) -> Outcome:
        return self.chat.part_room(text)

    def set_nick(self, nick: str) -> Outcome:
        return self.chat.set_nick(nick)

    def trust_peer(self, shown: str) -> Outcome:
        return self.chat.trust_peer(shown)

    def forget_pin(self, nick: str) -> Outcome:
        return self.chat.forget_pin(nick)

    def ignore(self, shown: str) -> Outcome:
        return self.chat.ignore(shown)

    def unignore(self, text: str) -> Outcome:
        return self.chat.unignore(text)

    def typing(self, room: str) -> None:
        self.activity.typing(room)

    def set_away(self, text: str) -> Outcome:
        return self.activity.set_away(text)

    def setting(self, text: str) -> Outcome | list[str]:
        return self.activity.setting(text)

    def away_of(self, peer_id: str) -> str:
        return self.activity.away_of(peer_id)

    def addressee(self, shown: str) -> tuple[str, str] | Refused:
        return self.chat.addressee(shown)

    def now(self) -> float:
        return self.clock.seconds()

    def my_rooms(self) -> list[str]:
        return self.chat.my_rooms()

    def members(self, room: str) -> frozenset[str]:
        return self.chat.members(room)

    def rooms_of(self, peer_id: str) -> frozenset[str]:
        return self.chat.rooms_of(peer_id)

    def room_list(self) -> list[tuple[str, list[str]]]:
        return self.chat.room_list()

    def users(self) -> list[PeerView]:
        return self.chat.users()

    def shown_nick(self, peer_id: str) -> str:
        return self.chat.shown_nick(peer_id)

    def whois(self, shown: str) -> list[str] | Refused:
        return self.chat.whois(shown)

    def ignored(self) -> list[str]:
        return self.chat.ignored()

    def history(self, room: str, count: int = HISTORY_SHOWN) -> list[StoredLine]:
        return self.chat.history(room, count)

    def around(self, room: str, when: float, count: int) -> list[StoredLine]:
        return self.chat.around(room, when, count)

    def search(self, text: str) -> Deferred[list[SearchHit] | Refused]:
        return self.chat.search(text)

    def search_indexing(self) -> int | None:
        return self.chat.search_indexing()
