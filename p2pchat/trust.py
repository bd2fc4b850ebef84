"""Trust decisions about a peer's key, in one place: which links to refuse (no downgrade,
``--secure-only``), how a nick is shown (``carol?`` when its key is not the one pinned for
it), and pinning on first use.  Pure code over ``identity.Pins``."""

from __future__ import annotations

from p2pchat.identity import Pins, short_form
from p2pchat.wire import printable


class Trust:
    def __init__(self, pins: Pins | None = None, secure_only: bool = False) -> None:
        self.pins = pins if pins is not None else Pins(None)
        self.secure_only = secure_only

    def refusal(self, nick: str, fp: str, announced_fp: str) -> str | None:
        """Why a link must be refused, or None.  ``fp`` is the key the link proved ("" for a
        plain link); ``announced_fp`` the key its beacons announced ("" if unsigned)."""
        if fp:
            return None
        if self.secure_only:
            return "it has no encryption and --secure-only is on"
        if self.pins.get(nick):
            return f"{nick} is pinned to a key, but this link has no encryption (no downgrade)"
        if announced_fp:
            return "its beacons announce a key, but this link has no encryption (no downgrade)"
        return None

    def flagged(self, nick: str, fp: str) -> bool:
        """True when ``nick`` is pinned to another key than ``fp`` (plain links included)."""
        pinned = self.pins.get(nick)
        return pinned is not None and pinned != fp

    def display(self, nick: str, fp: str) -> str:
        name = printable(nick)
        return f"{name}?" if self.flagged(nick, fp) else name

    def first_use(self, nick: str, fp: str) -> bool:
        """Pin ``fp`` for ``nick`` if the nick has no pin yet; True if it pinned."""
        if fp and nick and self.pins.get(nick) is None:
            self.pins.pin(nick, fp)
            return True
        return False

    def state(self, nick: str, fp: str) -> str:
        """For /whois: how this nick and key stand with the pins."""
        pinned = self.pins.get(nick)
        if not fp:
            return "no key (plain connection)"
        if pinned == fp:
            return "verified: the key pinned for this nick"
        if pinned is None:
            return "not pinned"
        return f"NOT the key pinned for {nick} ({short_form(pinned)})"
