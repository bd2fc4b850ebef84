"""Parsing what the user gives as addresses and numbers (ports, IPv4, a multicast group,
the IRC face's address) and the IRC face's bind rule: pure, text in, value out, ValueError
saying what is wrong.  Apart from options.py so a face (the IRC face) can use them without
importing what the options' defaults come from (the node's parts).
"""

from __future__ import annotations

import ipaddress

#: Where the IRC face listens when ``--irc`` names only a port (and what ``localhost`` means).
LOOPBACK = "127.0.0.1"
#: The largest TCP or UDP port number.
MAX_PORT = 65535


# --- address parsers (pure: text in, value out, ValueError says what is wrong) --------------


def parse_port(text: str, option: str, lowest: int = 1) -> int:
    """A port number from ``lowest`` (0 = any free port, where that means something) to
    MAX_PORT; ``option`` names it in the message (``--port``, ``--multicast port``)."""
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"{option} must be a number, not {text!r}") from None
    if not lowest <= port <= MAX_PORT:
        raise ValueError(f"{option} must be from {lowest} to {MAX_PORT}, not {port}")
    return port


def parse_ipv4(text: str, option: str) -> str:
    """A dotted IPv4 address, normalised."""
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise ValueError(f"{option} must be an IPv4 address, not {text!r}") from None


def parse_multicast(text: str) -> tuple[str, int]:
    """``--multicast`` GROUP:PORT: an IPv4 multicast group and a UDP port (not 0)."""
    group, sep, port_text = text.rpartition(":")
    if not sep:
        raise ValueError(f"--multicast must be GROUP:PORT, not {text!r}")
    group = parse_ipv4(group, "--multicast")
    if not ipaddress.IPv4Address(group).is_multicast:
        raise ValueError(f"--multicast group {group} is not a multicast address "
                         "(224.0.0.0 to 239.255.255.255)")
    return group, parse_port(port_text, "--multicast port")


def parse_positive(text: str, option: str) -> float:
    """A number above 0 (and below 1e9, so no limit overflows a timer or a file size)."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{option} must be a number, not {text!r}") from None
    if not 0 < value < 1e9:
        raise ValueError(f"{option} must be more than 0, not {text}")
    return value


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
    return host, parse_port(port_text, "--irc port")


def is_loopback(host: str) -> bool:
    """True for an address of this machine only (127.0.0.0/8, ::1)."""
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
