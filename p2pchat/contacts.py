"""The peers we keep links to beyond the LAN, kept in the data dir (``contacts.json``, 0600,
written atomically): static peers (``--peer``, ``/connect HOST:PORT``: dialed directly), onion
contacts (``/connect INVITE``: dialed through Tor), and the invites we gave (``/invite``).

A static peer's key is learnt at its first link and expected from then on (trust on first
use, as the LAN's pins); an onion contact's key comes from its invite, so even the first link
is verified.  An invite we gave is bound to the key of the first peer that links with it.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass, fields
from typing import Any, Union

from twisted.logger import Logger

from p2pchat.addresses import parse_port
from p2pchat.identity import _write_private

log = Logger()

CONTACTS_NAME = "contacts.json"
#: Static peers and onion contacts kept at most.
MAX_CONTACTS = 64
#: Invites given and not yet used, at most (the oldest unused one goes first).
MAX_INVITES = 32
#: An invite not used within this many seconds no longer lets anyone in.
INVITE_MAX_AGE = 7 * 86400.0
#: The longest host name a static peer may have (DNS's limit).
MAX_HOST_CHARS = 253

PEER = "peer"  # a static peer: direct TCP
ONION = "onion"  # an onion contact: through Tor


@dataclass
class Contact:
    """One peer we dial: ``kind`` PEER or ONION; ``fp``/``peer_id``/``nick`` once known."""

    kind: str
    host: str
    port: int
    fp: str = ""
    peer_id: str = ""
    nick: str = ""
    secret: str = ""  # ONION: the invite's secret, shown on every link

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def key(self) -> str:
        """What the dialer knows it by."""
        return f"{self.kind}:{self.address}"


@dataclass
class Given:
    """An invite we gave: its secret, when, and the peer that used it (once one did)."""

    secret: str
    made: float
    fp: str = ""
    peer_id: str = ""
    nick: str = ""


Entry = Union[Contact, Given]


def parse_peer_address(text: str, option: str = "--peer") -> tuple[str, int]:
    """A static peer, HOST:PORT: an IPv4 address, ``[IPv6]``, or a host name (a VPN's)."""
    text = text.strip()
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"{option} must be HOST:PORT or [IPv6]:PORT, not {text[:80]!r}")
        try:
            host = str(ipaddress.IPv6Address(host))
        except ValueError:
            raise ValueError(f"{option}: {host[:60]!r} is not an IPv6 address") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"{option} must be HOST:PORT (e.g. 10.8.0.2:8080), not "
                             f"{text[:80]!r}")
        host = host.lower()
        try:
            host = str(ipaddress.IPv4Address(host))
        except ValueError:
            labels = host.rstrip(".").split(".")
            if (len(host) > MAX_HOST_CHARS or host.endswith(".onion") or not all(
                    label and len(label) <= 63 and label.isascii()
                    and all(ch.isalnum() or ch == "-" for ch in label)
                    and not label.startswith("-") for label in labels)):
                raise ValueError(f"{option}: {host[:60]!r} is not an IPv4 address or a host "
                                 "name" + ("; an onion is reached by an invite"
                                           if host.endswith(".onion") else "")) from None
    if not (port_text.isascii() and port_text.isdigit()):
        raise ValueError(f"{option} port must be a number, not {port_text[:20]!r}")
    return host, parse_port(port_text, f"{option} port")


def _load(cls: type[Any], raw: object) -> Any:
    """One entry of the file, or None if it is not one."""
    if not isinstance(raw, dict):
        return None
    names = {f.name: f.type for f in fields(cls)}
    values = {k: v for k, v in raw.items() if k in names}
    try:
        entry = cls(**values)
    except TypeError:
        return None
    ok = all(isinstance(getattr(entry, f.name), (int, float) if f.name in ("port", "made")
                        else str) for f in fields(cls))
    return entry if ok else None


class Book:
    """The contacts file in memory.  ``path`` None: nothing is kept (tests)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.contacts: list[Contact] = []
        self.given: list[Given] = []
        if path and os.path.exists(path):
            try:
                with open(path, encoding="utf-8") as f:
                    data = json.load(f)
                contacts = [_load(Contact, c) for c in data.get("contacts", [])]
                given = [_load(Given, g) for g in data.get("given", [])]
                self.contacts = [c for c in contacts if c is not None][:MAX_CONTACTS]
                self.given = [g for g in given if g is not None][:MAX_INVITES * 8]
            except (OSError, ValueError, TypeError, AttributeError) as e:
                log.error("can't read the contacts in {path} ({why}): starting with none",
                          path=path, why=str(e))

    # --- the peers we dial --------------------------------------------------------------

    def add(self, contact: Contact) -> str | None:
        """Keep a peer to dial; returns why not, or None.  The same address again replaces
        the old entry (a new invite for the same onion)."""
        old = self.find_contact(contact.address)
        if old is None and len(self.contacts) >= MAX_CONTACTS:
            return f"{MAX_CONTACTS} peers are kept already; /disconnect one first"
        if old is not None:
            self.contacts.remove(old)
        self.contacts.append(contact)
        self.save()
        return None

    def find_contact(self, text: str) -> Contact | None:
        """The contact ``text`` names: its address (HOST:PORT, the onion with or without
        its port), nick or peer id."""
        text = text.strip()
        for c in self.contacts:
            if text.lower() in (c.address, c.host) or (text and text in (c.nick, c.peer_id)):
                return c
        return None

    # --- the invites we gave ------------------------------------------------------------

    def give(self, secret: str, now: float) -> Given:
        """Remember an invite's secret; past MAX_INVITES unused ones, the oldest goes."""
        unused = [g for g in self.given if not g.fp]
        for old in unused[:max(0, len(unused) - MAX_INVITES + 1)]:
            self.given.remove(old)
        given = Given(secret, now)
        self.given.append(given)
        self.save()
        return given

    def admission(self, secret: str, fp: str, now: float) -> str | None:
        """Why a peer showing ``secret`` with the proven key ``fp`` is not let in, or None.
        An unused invite is bound to the first key that uses it."""
        given = next((g for g in self.given if g.secret == secret), None) if secret else None
        if given is None:
            return "no invite of ours (ask for a new one)"
        if given.fp:
            return None if given.fp == fp else "that invite was used by another peer"
        if now - given.made > INVITE_MAX_AGE:
            return "that invite is too old (ask for a new one)"
        given.fp = fp
        self.save()
        return None

    def find_given(self, text: str) -> Given | None:
        """An invite we gave, by the nick or peer id of the peer that used it."""
        text = text.strip()
        return next((g for g in self.given if g.fp and text in (g.nick, g.peer_id)), None)

    def remove(self, entry: Entry) -> None:
        """Forget a contact or a given invite (and write the file)."""
        if isinstance(entry, Contact):
            self.contacts.remove(entry)
        else:
            self.given.remove(entry)
        self.save()

    def save(self) -> None:
        """Write the file (0600, atomically); a failure is logged, the chat goes on."""
        if not self.path:
            return
        data = {"version": 1, "contacts": [asdict(c) for c in self.contacts],
                "given": [asdict(g) for g in self.given]}
        try:
            _write_private(self.path, json.dumps(data, indent=1, sort_keys=True).encode())
        except OSError as e:
            log.error("can't save the contacts in {path}: {why}", path=self.path, why=str(e))
