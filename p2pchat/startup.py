"""Start-up: one clear line on the terminal for every failure, and the daemon's detaching.

``twistd -n p2pchat`` runs in the foreground.  ``twistd p2pchat --ui none`` (no ``-n``) runs as
a daemon, detached here rather than by twistd: twistd forks before the service starts, so a
port in use would only reach the terminal as its "An error has occurred: b'...'" dump.  Ours
forks in ``makeService``, and the parent waits (at most ``DAEMON_START_TIMEOUT``) for the child
to say it started, or why not, then prints that one line and exits with the child's status.
"""

from __future__ import annotations

import os
import select
import sys
import time
from typing import Any, NoReturn

#: How long the terminal waits for a daemon to say it started.
DAEMON_START_TIMEOUT = 30.0

#: In a detached child until it reports: the pipe to the parent waiting on the terminal.
_report_fd: int | None = None


def fail(line: str, code: int = 1) -> NoReturn:
    """Exit at start-up, saying why in one line on the terminal (the real stderr: twistd's
    logging has taken ``sys.stderr`` by the time services start).  2 is for bad options."""
    if _report_fd is not None:
        _report(f"{code} {line}")
    else:
        out = sys.__stderr__
        if out is not None:
            out.write(line + "\n")
            out.flush()
    raise SystemExit(code)


def started(line: str) -> None:
    """A detached child is up: the terminal prints ``line`` and returns (status 0)."""
    if _report_fd is not None:
        _report(f"0 {line}")


def _report(text: str) -> None:
    global _report_fd
    fd, _report_fd = _report_fd, None
    if fd is None:
        return  # reported already: one report per start
    try:
        os.write(fd, text.encode("utf-8", "replace")[:4000])
    except OSError:
        pass  # the terminal's side has gone: nobody to tell
    finally:
        os.close(fd)


def detach(log_path: str, reactor: Any = None) -> None:
    """Become a daemon (double fork, a new session, stdio on /dev/null).  Only the child
    returns; the first process waits for its report and exits with it."""
    global _report_fd
    from twisted.internet.interfaces import IReactorDaemonize

    if reactor is not None and IReactorDaemonize.providedBy(reactor):
        reactor.beforeDaemonize()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    read_end, write_end = os.pipe()
    first = os.fork()
    if first:
        os.close(write_end)
        os._exit(_wait_for_report(read_end, first, log_path))
    os.close(read_end)
    os.setsid()
    if os.fork():
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    _report_fd = write_end
    if reactor is not None and IReactorDaemonize.providedBy(reactor):
        reactor.afterDaemonize()


def _wait_for_report(fd: int, child: int, log_path: str) -> int:
    """On the terminal: the child's one line, or a line saying it said nothing."""
    data = b""
    deadline = time.monotonic() + DAEMON_START_TIMEOUT
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            line, code = (f"p2pchat: the daemon did not say it started within "
                          f"{DAEMON_START_TIMEOUT:g} s; see {log_path}"), 1
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            code_text, _, line = data.decode("utf-8", "replace").partition(" ")
            if code_text.isdigit():
                code = int(code_text)
            else:
                line, code = f"p2pchat: the daemon stopped while starting; see {log_path}", 1
            break
        data += chunk
    try:
        os.waitpid(child, 0)  # the middle process, gone at once
    except OSError:
        pass
    out = sys.stdout if code == 0 else sys.stderr
    out.write(line + "\n")
    out.flush()
    return code
