"""Trust decisions about a peer's key, in one place: which links to refuse (no downgrade,
``--secure-only``), how a nick is shown (``carol?`` when its key is not the one pinned for
it), and pinning on first use.  Pure code over ``identity.Pins``.

Our own nick counts as pinned to our own key, whatever ``pins.json`` says: another key using
it is shown flagged on our screen too, and is never pinned to it.  A nick that could not be
pinned because the pin table is full (``Pins.full``) is shown flagged, never trusted."""

from __future__ import annotations

from p2pchat.identity import Pins, short_form
from p2pchat.wire import printable_name

#: (nick, key) pairs already warned about, at most (then the memory starts over).
MAX_WARNED = 1024
#: What our own nick is pinned to when we have no key (a node without identity): no key is it.
_NO_KEY_IS_US = "(ours)"


class Trust:
    def __init__(self, pins: Pins | None = None, secure_only: bool = False) -> None:
        self.pins = pins if pins is not None else Pins(None)
        self.secure_only = secure_only
        self.own_nick = ""
        self.own_fp = ""
        self._warned: set[tuple[str, str]] = set()

    def be(self, nick: str, fp: str) -> None:
        """Our nick and key (at start and after each /nick): the nick is ours on our screen."""
        self.own_nick, self.own_fp = nick, fp

    def is_own(self, nick: str) -> bool:
        return bool(nick) and nick == self.own_nick

    def pinned(self, nick: str) -> str | None:
        """The key ``nick`` stands for here: ours for our own nick, else its pin (or None)."""
        if self.is_own(nick):
            return self.own_fp or _NO_KEY_IS_US
        return self.pins.get(nick)

    def refusal(self, nick: str, fp: str, announced_fp: str) -> str | None:
        """Why a link must be refused, or None.  ``fp`` is the key the link proved ("" for a
        plain link); ``announced_fp`` the key its beacons announced ("" if unsigned).  A plain
        link using our own nick is not refused (a base peer may honestly pick it): it is
        shown flagged."""
        if fp:
            return None
        if self.secure_only:
            return "it has no encryption and --secure-only is on"
        if self.pins.get(nick) and not self.is_own(nick):
            return f"{nick} is pinned to a key, but this link has no encryption (no downgrade)"
        if announced_fp:
            return "its beacons announce a key, but this link has no encryption (no downgrade)"
        return None

    def flagged(self, nick: str, fp: str) -> bool:
        """True when ``nick`` stands for another key than ``fp`` (plain links included), or
        is not pinned because the pin table is full."""
        pinned = self.pinned(nick)
        if pinned is None:
            return self.pins.full
        return pinned != fp

    def display(self, nick: str, fp: str) -> str:
        name = printable_name(nick)
        return f"{name}?" if self.flagged(nick, fp) else name

    def first_use(self, nick: str, fp: str, pk: str = "") -> bool:
        """Pin ``fp`` (and its key ``pk``) for ``nick`` if the nick has no pin yet (and is
        not ours); True if it pinned.  Seeing a nick with its pinned key keeps that pin fresh
        (and gives it the key, if it was pinned before keys were kept)."""
        if not fp or not nick or self.is_own(nick):
            return False
        pinned = self.pins.get(nick)
        if pinned is None:
            return self.pins.pin(nick, fp, pk=pk)
        if pinned == fp:
            self.pins.touch(nick, fp, pk)
        return False

    def warn_once(self, nick: str, fp: str) -> bool:
        """True the first time this nick is seen with this (flagged) key: one warning each."""
        if (nick, fp) in self._warned:
            return False
        if len(self._warned) >= MAX_WARNED:
            self._warned.clear()
        self._warned.add((nick, fp))
        return True

    def state(self, nick: str, fp: str) -> str:
        """For /whois: how this nick and key stand with the pins."""
        pinned = self.pinned(nick)
        if not fp:
            return "no key (plain connection)"
        if self.is_own(nick) and pinned != fp:
            return f"NOT you: {printable_name(nick)} is your own nick"
        if pinned == fp:
            return "verified: the key pinned for this nick"
        if pinned is None:
            return "not pinned (the pin table is full)" if self.pins.full else "not pinned"
        return f"NOT the key pinned for {printable_name(nick)} ({short_form(pinned)})"
