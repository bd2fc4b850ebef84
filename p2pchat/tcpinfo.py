"""What the kernel knows of one TCP connection: how many of the segments we sent its peer's
machine has not acknowledged yet (Linux ``TCP_INFO``; elsewhere nothing is known).

A probe that gets no answer (presence.py) means either that the path is cut (our segments
go unacknowledged: the link is dead, or stuck in TCP's retransmission backoff) or that the
peer's process is slow to read (a saturated machine: its kernel took every byte, the probe
too).  Only the first is a reason to drop the link: in a room of 100 on 2 cores, dropping for
the second cut some 1,800 live links, each a redial and a TLS handshake more on a machine
that had no time for them.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

#: ``struct tcp_info`` (linux/tcp.h): 8 one-byte fields, then ``tcpi_rto, tcpi_ato,
#: tcpi_snd_mss, tcpi_rcv_mss, tcpi_unacked`` as 32-bit words: ``tcpi_unacked`` at byte 24.
_UNACKED_AT = 24
_TCP_INFO_BYTES = 104
_TCP_INFO = getattr(socket, "TCP_INFO", None)


def unacked(transport: Any) -> int | None:
    """Segments sent on ``transport``'s socket and not yet acknowledged by the peer's machine,
    or None where that is not known (no socket, not Linux, a test's transport)."""
    sock = getattr(transport, "socket", None)
    if _TCP_INFO is None or not isinstance(sock, socket.socket):
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _TCP_INFO_BYTES)
    except OSError:
        return None
    if len(info) < _UNACKED_AT + 4:
        return None
    value: int = struct.unpack_from("I", info, _UNACKED_AT)[0]
    return value
