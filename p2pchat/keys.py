"""Which keys we believe, for the node, when a link comes up or a peer renames itself: a
link whose key does not give its peer id is refused, and so is one whose nick is pinned to
another key (trust.py decides); a new nick's key is pinned on first use; a nick shown with
another key than the pinned one is flagged (``nick?``) and the user told once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from p2pchat import events
from p2pchat.identity import peer_id_for, short_form
from p2pchat.wire import printable_name

if TYPE_CHECKING:
    from p2pchat.node import Node
    from p2pchat.session import PeerSession


class KeyCheck:
    """The key checks of one node (``node``)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def refusal(self, link: PeerSession) -> str | None:
        """Why a new link is refused (its key, or its nick's pin), or None."""
        node = self.node
        if link.fp and link.peer_id != peer_id_for(link.fp):
            return "its peer id is not the one its key gives"
        info = node.peers.get(link.peer_id)
        return node.trust.refusal(link.username, link.fp, info.fp if info is not None else "")

    def check(self, link: PeerSession) -> None:
        """Trust on first use: pin a new nick's key; warn about a nick with another key."""
        node = self.node
        if not link.username:
            return
        if node.trust.first_use(link.username, link.fp, link.pk):
            node.notice(f"pinned {printable_name(link.username)}'s key {short_form(link.fp)}")
        elif (node.trust.flagged(link.username, link.fp)
              and node.trust.warn_once(link.username, link.fp)):
            shown, name = node.nick_of(link), printable_name(link.username)
            key = f"another key ({short_form(link.fp)})" if link.fp else "no key (plain)"
            unlike = (f"another key ({short_form(link.fp)}) than" if link.fp
                      else "no key (a plain connection), unlike")
            if node.trust.is_own(link.username):
                node.emit(events.Notice(node.clock.seconds(),
                                         f"{shown} uses your nick with {key}: it is not you, "
                                         f"and is shown as {shown}; /whois {shown} to see who",
                                         error=True, topic=events.OWN_NICK))
            elif node.trust.pins.get(link.username) is None:
                node.notice(f"{shown} can't be pinned: the pin table is full, so it is shown "
                             f"as {shown}; /forget a nick to make room", error=True)
            else:
                node.notice(f"{shown} has {unlike} the {name} you know: shown as {shown}; "
                             f"/whois {shown} to compare, /trust {shown} if you expected it",
                             error=True)
