"""The member lines a neighbour hands on at link-up, for the forwarder (forwarding.py): those
of every peer we reach, our own neighbours too, that the new link's peer lacks.  No member
line goes out periodically in a room past a full mesh (forwarding._send_member), so a newcomer
whose every neighbour is linked to a peer would otherwise not hear of it until it changes.

A newcomer (whose member line we don't hold) gets them all at link-up.  A peer already in the
room gets only those its ``sync`` says it lacks (``metadata.members``): in a forming room of
100 every link-up handed on all the member lines its side held, some 560 a peer, of which
about 105 were news, each copy read, parsed and dropped.  Waiting for a newcomer's sync as well
cost it a round trip, a second on a saturated machine (README "Performance").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from p2pchat.relay import RELAY, relay_lines

if TYPE_CHECKING:
    from p2pchat.gossip import Reach, Reached
    from p2pchat.node import Node
    from p2pchat.session import PeerSession


class MemberHandOn:
    """One node's hand-on of member lines at link-up (``reached``: the forwarder's table)."""

    def __init__(self, node: Node, reached: Reached) -> None:
        self.node = node
        self.reached = reached
        #: linked peers whose first sync we wait for to hand on the member lines they lack
        self._await_sync: set[str] = set()

    def linked(self, link: PeerSession, known: Reach | None) -> None:
        """A new gossip link (``known``: its peer as we held it before the link)."""
        if link.catchup and known is not None and known.raw:
            self._await_sync.add(link.peer_id)  # its sync says which it has
        else:  # a newcomer lacks them all: at once, not a round trip later
            self.send(link, None)

    def synced(self, link: PeerSession, members: dict[str, int] | None) -> None:
        """``link``'s first sync came, saying which member lines its peer holds (None: an
        older peer of ours, which does not say): the ones it lacks, if they wait for it."""
        if link.peer_id in self._await_sync:
            self._await_sync.discard(link.peer_id)
            self.send(link, members)

    def lost(self, peer_id: str) -> None:
        self._await_sync.discard(peer_id)

    def versions(self) -> dict[str, int]:
        """The member lines we hold (author: the sequence of the newest), for our sync."""
        return {a: r.version for a, r in self.reached.of.items() if r.raw}

    def send(self, link: PeerSession, have: dict[str, int] | None) -> None:
        """The member lines ``link``'s peer lacks: ``have`` is what its sync said it holds,
        None for a peer that gets them all."""
        node = self.node
        pairs: list[tuple[bytes, str, str]] = [
            (r.raw, a, r.pk) for a, r in self.reached.of.items()
            if r.raw and a != link.peer_id and (r.shown or (
                a in node.links and node.links[a].gossip))
            and (have is None or have.get(a, 0) < r.version)]
        for metadata in relay_lines(pairs):
            metadata["hops"] = 1
            link.send(node.sender.message(RELAY, "", metadata=metadata))
