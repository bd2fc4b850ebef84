"""Where the IRC face listens: the ``--irc`` address parser and the rule for binding beyond
loopback.  Used by the options (service.py today; options.py once the option parsers move
there) and by ``IrcService`` when it starts.  Pure code."""

from __future__ import annotations

import ipaddress

DEFAULT_IRC_PORT = 6667
LOOPBACK = "127.0.0.1"


def parse_irc_address(text: str) -> tuple[str, int]:
    """``--irc`` text to (host, port).  Accepts ``PORT`` (on 127.0.0.1), ``HOST:PORT`` and
    ``[IPv6]:PORT``; HOST is an IP address or ``localhost``.  ValueError says what is wrong."""
    text = text.strip()
    if text.isdigit():
        host, port_text = LOOPBACK, text
    elif text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"--irc must be HOST:PORT or [IPv6]:PORT, not {text!r}")
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"--irc must be HOST:PORT (e.g. 127.0.0.1:6667), not {text!r}")
    if host == "localhost":
        host = LOOPBACK
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        raise ValueError(f"--irc host must be an IP address, not {host!r}") from None
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"--irc port must be a number, not {port_text!r}") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"--irc port must be from 1 to 65535, not {port}")
    return host, port


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_irc_bind(host: str, password: str | None) -> str | None:
    """The safety rule for where the IRC face listens.  Loopback: fine (None).  Anything else
    needs a password (ValueError otherwise), and even then IRC is plain text: returns the
    warning to show the user and log."""
    if is_loopback(host):
        return None
    if not password:
        raise ValueError(f"--irc {host}: listening beyond this machine needs --irc-password "
                         "(anyone who can reach the port would speak as you)")
    return (f"the IRC face listens on {host}, not on loopback: IRC is plain text, so anyone on "
            "that network can read the chat and the password; prefer 127.0.0.1")
