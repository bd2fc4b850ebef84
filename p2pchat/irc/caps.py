"""IRCv3 capabilities: what we offer, their negotiation (``CAP LS [302]``, ``REQ``, ``LIST``,
``END``), and the message tags they put in front of the lines a client is sent.

A client that never sends CAP gets no capability, so it is sent exactly what it was before
IRCv3 came (no tags, the history's times written into its lines).  What each offers:

- ``server-time``: every line carries ``@time=`` (UTC, ISO 8601 with milliseconds): a chat
  line its original time (live, replayed on JOIN, or asked for by CHATHISTORY), any other
  line the time it was sent (with ``batch`` too, history lines lose the ``[HH:MM]`` written
  in front: playback.py says why only then);
- ``message-tags``: tags at all, and ``msgid`` (the p2pchat message id) on chat lines; the
  client may send TAGMSG (read and dropped: p2pchat carries no client tags yet);
- ``echo-message``: a client's own PRIVMSG or NOTICE comes back to it (with its msgid and
  time) once the peer said it, instead of nothing;
- ``batch``: the history played back on JOIN, and each CHATHISTORY answer, come between
  ``BATCH +id chathistory TARGET`` and ``BATCH -id``, and so do lines caught up live
  (caught_up.py);
- ``draft/chathistory``: the CHATHISTORY command (playback.py), and ``CHATHISTORY=`` and
  ``MSGREFTYPES=`` in 005;
- ``multi-prefix``: every prefix of a member in NAMES and WHO (p2pchat has no channel
  modes, so there are none: offered so clients that ask for it get an ACK);
- ``userhost-in-names``: NAMES lists ``nick!user@host``;
- ``away-notify``: a peer going away or coming back is an ``AWAY`` line from it;
- typing, over ``message-tags``: a peer typing (``typing/1``) is ``@+typing=active TAGMSG``
  from it to the channel (or to us, in a private talk), and a client's own ``TAGMSG`` with
  ``+typing=active`` tells the peers we type (``paused`` and ``done`` are read and dropped:
  a typing mark simply ends).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from p2pchat.irc.text import ERR_INVALIDCAPCMD

if TYPE_CHECKING:
    from p2pchat.irc.client import IrcClientProtocol

SERVER_TIME = "server-time"
MESSAGE_TAGS = "message-tags"
ECHO_MESSAGE = "echo-message"
BATCH = "batch"
CHATHISTORY = "draft/chathistory"
MULTI_PREFIX = "multi-prefix"
USERHOST_IN_NAMES = "userhost-in-names"
AWAY_NOTIFY = "away-notify"
#: The client tag of typing notifications (IRCv3 ``+typing``), and the value that means it.
TYPING_TAG = "+typing"
TYPING_ACTIVE = "active"

#: The capabilities offered, each with its value for ``CAP LS 302`` ("" for none: none of
#: these has one; CHATHISTORY's limit is in 005, as its spec asks).
OFFERED: dict[str, str] = {
    AWAY_NOTIFY: "", BATCH: "", CHATHISTORY: "", ECHO_MESSAGE: "", MESSAGE_TAGS: "",
    MULTI_PREFIX: "",
    SERVER_TIME: "", USERHOST_IN_NAMES: "",
}
#: What one CAP reply's list may hold (bytes), so the line stays within 512 with its head;
#: a longer ``CAP LS 302`` answer is cut into lines marked ``*`` (a plain ``CAP LS`` is sent
#: whole: clients before 302 know no continuation).
CAP_LIST_BYTES = 400
#: Most capabilities one ``CAP REQ`` may name (each also NAKs the request if not offered).
MAX_CAP_REQ = 32


def negotiate(client: IrcClientProtocol, params: list[str]) -> bool:
    """CAP LS, LS 302, REQ, LIST and END.  CAP LS or REQ before registration holds it until
    CAP END (the spec's rule; register.try_register waits for ``negotiating``).  Returns
    whether registration may now go on (CAP END ended the hold)."""
    sub = params[0].upper() if params else ""
    target = client.nick
    if sub == "LS":
        if not client.registered:
            client.negotiating = True
        version = params[1] if len(params) > 1 else ""
        if version.isdigit() and int(version) >= 302:
            client.cap_version = max(client.cap_version, 302)
        _list(client, "LS", [f"{n}={v}" if v and client.cap_version >= 302 else n
                             for n, v in sorted(OFFERED.items())])
    elif sub == "LIST":
        _list(client, "LIST", sorted(client.caps))
    elif sub == "REQ":
        if not client.registered:
            client.negotiating = True
        asked = params[1] if len(params) > 1 else ""
        changes = asked.split()
        if changes and len(changes) <= MAX_CAP_REQ and all(
                c.removeprefix("-") in OFFERED for c in changes):
            # The ACK goes as the client was before it (its tags start with the next line).
            client.send("CAP", target, "ACK", text=" ".join(changes))
            for change in changes:
                if change.startswith("-"):
                    client.caps.discard(change[1:])
                else:
                    client.caps.add(change)
        else:  # the whole request or nothing (a cap not offered, or nothing asked)
            client.send("CAP", target, "NAK", text=asked[:CAP_LIST_BYTES])
    elif sub == "END":
        client.negotiating = False
        return True
    else:
        client.numeric(ERR_INVALIDCAPCMD, sub[:32] or "*", text="Invalid CAP command")
    return False


def _list(client: IrcClientProtocol, sub: str, names: list[str]) -> None:
    """One CAP LS or LIST reply; for a 302 client, cut into lines marked ``*`` but the last."""
    if client.cap_version < 302:
        client.send("CAP", client.nick, sub, text=" ".join(names))
        return
    pieces: list[list[str]] = [[]]
    for name in names:
        if pieces[-1] and len(" ".join([*pieces[-1], name]).encode("utf-8")) > CAP_LIST_BYTES:
            pieces.append([])
        pieces[-1].append(name)
    for i, piece in enumerate(pieces):
        more = ("*",) if i < len(pieces) - 1 else ()
        client.send("CAP", client.nick, sub, *more, text=" ".join(piece))


def server_time(when: float) -> str:
    """``when`` as server-time writes it: UTC, ISO 8601, milliseconds, ``Z``."""
    millis = int(round(when * 1000))
    seconds, ms = divmod(millis, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}Z"


_ESCAPES = {"\\": "\\\\", ";": "\\:", " ": "\\s", "\r": "\\r", "\n": "\\n", "\0": ""}


def escape_value(value: str) -> str:
    """A tag value escaped as message-tags says (a peer's message id is its own to choose)."""
    return "".join(_ESCAPES.get(ch, ch) for ch in value)


def tags(caps: set[str], now: float, when: float | None = None, msgid: str = "",
         batch: str = "", extra: str = "") -> str:
    """The tags in front of one line to a client with ``caps`` (``@a=b;c=d `` or ""): time
    (``when``, the line's own time, or ``now``), msgid and batch, each where its capability
    was asked for; ``extra`` (client tags such as ``+typing=active``) with message-tags."""
    out = []
    if extra and MESSAGE_TAGS in caps:
        out.append(extra)
    if SERVER_TIME in caps:
        out.append(f"time={server_time(now if when is None else when)}")
    if msgid and MESSAGE_TAGS in caps:
        out.append(f"msgid={escape_value(msgid)}")
    if batch and BATCH in caps:
        out.append(f"batch={escape_value(batch)}")
    return "@" + ";".join(out) + " " if out else ""


#: Most tags read from one client line (the rest are ignored).
MAX_CLIENT_TAGS = 16


def parse_tags(text: str) -> dict[str, str]:
    """The tags of a client line (``@a=b;+c=d`` without the ``@``), unescaped; at most
    MAX_CLIENT_TAGS of them."""
    out: dict[str, str] = {}
    for item in text.split(";")[:MAX_CLIENT_TAGS]:
        key, _, value = item.partition("=")
        if key:
            out[key] = _unescape(value)
    return out


_UNESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}


def _unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            out.append(_UNESCAPES.get(value[i + 1], value[i + 1]))
            i += 2
            continue
        if ch != "\\":
            out.append(ch)
        i += 1
    return "".join(out)
