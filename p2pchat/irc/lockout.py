"""Password guessing on the IRC face (pure code, given ``now``): each connection gets one PASS
try, and a host that gives too many wrong ones in a short time is shut out for a while, so
connections after one another can't guess fast."""

from __future__ import annotations

from twisted.logger import Logger

log = Logger()

#: After this many wrong passwords from one host within PASSWORD_WINDOW seconds, every
#: connection from that host is closed at once for PASSWORD_LOCKOUT seconds (one log line says
#: so).
PASSWORD_TRIES = 5
PASSWORD_WINDOW = 60.0
PASSWORD_LOCKOUT = 60.0
#: Hosts whose wrong passwords are remembered at most (the oldest is forgotten first).
MAX_GUESSING_HOSTS = 1024


class Lockout:
    """Wrong passwords by host, and the hosts shut out for giving too many."""

    def __init__(self) -> None:
        #: host -> when its recent wrong passwords were given (within PASSWORD_WINDOW)
        self._wrong: dict[str, list[float]] = {}
        #: host -> until when its connections are closed at once
        self._locked: dict[str, float] = {}

    def wrong_password(self, host: str, now: float) -> None:
        """A connection from ``host`` gave a wrong password.  The PASSWORD_TRIES-th within
        PASSWORD_WINDOW seconds locks the host out for PASSWORD_LOCKOUT seconds, logged once."""
        tries = [t for t in self._wrong.pop(host, []) if now - t < PASSWORD_WINDOW]
        tries.append(now)
        if len(tries) >= PASSWORD_TRIES:
            self._locked[host] = now + PASSWORD_LOCKOUT
            log.warn("IRC: {n} wrong passwords from {host} within {window:.0f} s: its "
                     "connections are closed for {lockout:.0f} s", n=len(tries), host=host,
                     window=PASSWORD_WINDOW, lockout=PASSWORD_LOCKOUT)
        else:
            self._wrong[host] = tries  # newest last, so the oldest is forgotten first
        for table in (self._wrong, self._locked):
            while len(table) > MAX_GUESSING_HOSTS:
                del table[next(iter(table))]

    def locked_out(self, host: str, now: float) -> str | None:
        """Why a connection from ``host`` is closed at once (it guessed passwords), or None."""
        until = self._locked.get(host)
        if until is None:
            return None
        left = until - now
        if left <= 0:
            del self._locked[host]
            return None
        return f"too many wrong passwords from {host}; try again in {max(1, round(left))} s"
