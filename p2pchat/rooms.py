"""Rooms: which rooms we are in, which rooms each peer is in (from its ``rooms`` lines), and
so which peers a line is for.  ``general`` is the base protocol's room: everyone is in it, base
peers included, and it can't be left.  Pure code."""

from __future__ import annotations

from typing import Iterable

# room_name (what the user typed to a room name) is the faces' too: commands.py; private_key
# is part of the contract: interfaces.py.
from p2pchat.commands import ROOM_EXAMPLE, room_name  # noqa: F401
from p2pchat.interfaces import private_key  # noqa: F401
from p2pchat.wire import DEFAULT_ROOM, MAX_ROOMS, Message, WireError, room_problem


def rooms_of(msg: Message) -> frozenset[str]:
    """The rooms a ``rooms`` line says its sender is in; WireError if it is malformed."""
    value = (msg.metadata or {}).get("rooms")
    if not isinstance(value, list) or len(value) > MAX_ROOMS:
        raise WireError("'rooms' is not a short list")
    rooms = set()
    for name in value:
        if not isinstance(name, str) or room_problem(name):
            raise WireError("'rooms' holds something that is not a room name")
        rooms.add(name)
    return frozenset(rooms | {DEFAULT_ROOM})


class Rooms:
    def __init__(self, joined: Iterable[str] = ()) -> None:
        self.joined: list[str] = [DEFAULT_ROOM]
        for name in joined:
            if name not in self.joined and not room_problem(name):
                self.joined.append(name)
        self._of_peer: dict[str, frozenset[str]] = {}

    def join(self, name: str) -> bool:
        """False if already in it."""
        if name in self.joined:
            return False
        self.joined.append(name)
        return True

    def part(self, name: str) -> bool:
        """False if not in it (or it is general, which can't be left)."""
        if name == DEFAULT_ROOM or name not in self.joined:
            return False
        self.joined.remove(name)
        return True

    def set_peer(self, peer_id: str, rooms: frozenset[str]) -> tuple[set[str], set[str]]:
        """Record a peer's rooms; returns the rooms it joined and left since last time."""
        before = self._of_peer.get(peer_id, frozenset({DEFAULT_ROOM}))
        self._of_peer[peer_id] = rooms
        return set(rooms - before), set(before - rooms)

    def forget_peer(self, peer_id: str) -> None:
        self._of_peer.pop(peer_id, None)

    def peer_in(self, peer_id: str, room: str) -> bool:
        return room == DEFAULT_ROOM or room in self._of_peer.get(peer_id, ())

    def rooms_of_peer(self, peer_id: str) -> frozenset[str]:
        return self._of_peer.get(peer_id, frozenset({DEFAULT_ROOM}))

    def known(self) -> list[str]:
        """Every room we or a peer are in: ours first, in the order joined."""
        others = sorted({r for rooms in self._of_peer.values() for r in rooms} - set(self.joined))
        return self.joined + others
