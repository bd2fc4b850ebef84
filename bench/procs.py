"""Child processes for the benchmark: real ``twistd -n p2pchat --ui lines`` peers (and the
baseline relay), driven through their stdin and read from their stdout by one selector loop,
with every line stamped with the bench's monotonic clock when it is read.

Network safety: every peer is started with ``--interface 127.0.0.1`` (multicast sent and joined
on loopback only, TCP listening and dialing on 127.0.0.1 only) and a private multicast group
and port (239.255.x.y, site-local, TTL 1); ``peer_argv`` refuses to build anything else.  Every
child is killed by ``Children.kill_all`` (the runner calls it in a ``finally``); a child left
behind anyway quits by itself when its stdin (a pipe from us) closes.
"""

from __future__ import annotations

import os
import random
import selectors
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: the size asked for a child's stdin pipe: a burst is written at once, all of it, so the
#: child never waits for the bench (itself one process among many on a busy machine) to
#: refill a 64 KiB pipe; Linux's default most for a user is 1 MiB (fs/pipe-max-size)
STDIN_PIPE_BYTES = 1 << 20
#: fcntl's F_SETPIPE_SZ (Linux; Python's fcntl names it from 3.10)
F_SETPIPE_SZ = 1031

LineHandler = Callable[["Child", bytes, float], None]


def fresh_multicast() -> tuple[str, int]:
    """A site-local group and UDP port of our own (as tests/support.py does)."""
    rng = random.SystemRandom()
    return f"239.255.{rng.randrange(1, 255)}.{rng.randrange(1, 255)}", rng.randrange(20000, 60000)


def twistd_path() -> str:
    """The twistd next to this Python (not a pyenv shim, so the child's pid is Python's)."""
    here = Path(sys.executable).parent / "twistd"
    if here.exists():
        return str(here)
    import shutil

    found = shutil.which("twistd")
    if not found:
        raise SystemExit("bench: twistd not found next to this Python nor on PATH")
    return found


def precompile() -> None:
    """Byte-compile this checkout's package and plugin, as ``pip install`` does for an
    installed copy.  Peers run from the checkout; where ``PYTHONDONTWRITEBYTECODE`` is set,
    each would otherwise compile every module from source at every start (about 50 ms of CPU
    each, 2.5 s for a mesh of 50 starting on 2 cores), which no installed peer pays."""
    import compileall

    for folder in (ROOT / "p2pchat", ROOT / "twisted" / "plugins", ROOT / "bench"):
        compileall.compile_dir(str(folder), quiet=1)


def child_env() -> dict[str, str]:
    """This checkout first on the path, so its package and twistd plugin are the ones run."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def peer_argv(nick: str, multicast: tuple[str, int], data_dir: str,
              profile_to: str | None = None) -> list[str]:
    """The command line of one peer on loopback (optionally under cProfile)."""
    group, port = multicast
    if not (group.startswith("239.255.") and 1024 < port < 65536):
        raise ValueError(f"bench peers use a private group only, not {group}:{port}")
    argv = [twistd_path(), "-n", "p2pchat", "--username", nick, "--ui", "lines",
            "--port", "0", "--interface", LOOPBACK, "--multicast", f"{group}:{port}",
            "--data-dir", data_dir]
    if os.environ.get("BENCH_LINKS"):  # the link cap the peers run with (--links)
        argv += ["--links", os.environ["BENCH_LINKS"]]
    if os.environ.get("BENCH_DEBUG"):  # peers log debug detail, stamped to the ms (--keep)
        argv += ["--debug"]
    if profile_to:
        argv = [sys.executable, "-m", "cProfile", "-o", profile_to] + argv
    i = argv.index("--interface")
    assert argv[i + 1] == LOOPBACK  # never a peer off loopback
    return argv


def _schedstat(pid: int, index: int) -> float | None:
    """Field ``index`` of ``/proc/PID/task/*/schedstat`` summed over the threads, in
    seconds (0: time running, 1: time waiting for a core), or None where there is none."""
    try:
        total = 0
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[index])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        return None


def _widen(fd: int) -> None:
    """Ask for a pipe of STDIN_PIPE_BYTES (where the system allows it; else the default)."""
    try:
        import fcntl
        fcntl.fcntl(fd, F_SETPIPE_SZ, STDIN_PIPE_BYTES)
    except (ImportError, OSError):
        pass


class Child:
    """One child process; its stdout is read by the Pump, its stdin written through it."""

    def __init__(self, name: str, argv: list[str], workdir: str,
                 on_line: LineHandler | None = None) -> None:
        self.name = name
        self.argv = argv
        self.stderr_path = os.path.join(workdir, f"{name}.stderr")
        self._stderr = open(self.stderr_path, "wb")
        self.popen = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self._stderr, env=child_env(), cwd=workdir)
        self.pid = self.popen.pid
        self.spawned = time.monotonic()
        self.on_line: LineHandler = on_line or (lambda child, line, when: None)
        self.tail: deque[bytes] = deque(maxlen=40)
        self.stdout_fd = self.popen.stdout.fileno()
        self.stdin_fd = self.popen.stdin.fileno()
        os.set_blocking(self.stdout_fd, False)
        os.set_blocking(self.stdin_fd, False)
        _widen(self.stdin_fd)
        self._partial = b""
        self.pending = bytearray()  # bytes not yet taken by the stdin pipe
        self.eof = False
        self.stdin_closed = False

    # --- reading --------------------------------------------------------------------------

    def readable(self) -> None:
        try:
            chunk = os.read(self.stdout_fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        when = time.monotonic()
        if not chunk:
            self.eof = True
            return
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        handler = self.on_line
        for line in lines:
            handler(self, line, when)
        self.tail.extend(lines[-40:])

    # --- writing --------------------------------------------------------------------------

    def flush(self) -> bool:
        """Write what the pipe takes; True when nothing is left pending."""
        while self.pending and not self.stdin_closed:
            try:
                n = os.write(self.stdin_fd, self.pending[:1 << 16])
            except BlockingIOError:
                return False
            except (BrokenPipeError, OSError):
                self.pending.clear()
                return True
            del self.pending[:n]
        return True

    def close_stdin(self) -> None:
        if not self.stdin_closed:
            self.stdin_closed = True
            try:
                self.popen.stdin.close()
            except OSError:
                pass

    # --- cost -----------------------------------------------------------------------------

    def rss_kb(self) -> int | None:
        """VmRSS from /proc/PID/status, in kB."""
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def shares_kb(self) -> tuple[int, int] | None:
        """(PSS, USS) from ``/proc/PID/smaps_rollup``, in kB: the resident set with each page
        shared with other processes counted as its share (PSS), and only the pages no other
        process maps (USS, Private_Clean + Private_Dirty): what one more peer costs the
        machine, where RSS also counts the library pages every peer shares."""
        try:
            with open(f"/proc/{self.pid}/smaps_rollup") as f:
                fields = {k: int(v.split()[0]) for k, v in
                          (line.split(":", 1) for line in f if ":" in line and " kB" in line)}
        except (OSError, ValueError):
            return None
        if "Pss" not in fields:
            return None
        return fields["Pss"], fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)

    def waited_seconds(self) -> float | None:
        """How long the process was ready to run but waited for a core, in seconds (the
        scheduler's second figure in ``/proc/PID/task/*/schedstat``), or None where there is
        none: beside ``cpu_seconds`` it tells a process held back by a busy machine from one
        that had nothing to do."""
        return _schedstat(self.pid, 1)

    def cpu_seconds(self) -> float | None:
        """CPU time the process has used, in seconds: the scheduler's nanosecond count
        (``/proc/PID/task/*/schedstat``, summed over its threads), else utime + stime from
        ``/proc/PID/stat`` (in 10 ms ticks: a short run may read as 0).

        The scheduler's count is what makes a per-message figure of a 200-line run mean
        something; a thread that exits between two reads takes its time with it (our peers
        run in one thread)."""
        ran = _schedstat(self.pid, 0)
        if ran is not None:
            return ran
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                text = f.read()
        except OSError:
            return None
        fields = text[text.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        if self.popen.poll() is None:
            try:
                self.popen.kill()
            except OSError:
                pass

    def reap(self, timeout: float = 10.0) -> None:
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.popen.stdin, self.popen.stdout, self._stderr):
            try:
                stream.close()
            except OSError:
                pass


class Children:
    """Every child started, and the one loop that reads and writes their pipes."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.sel = selectors.DefaultSelector()
        self.all: list[Child] = []
        self._writing: set[Child] = set()

    def start(self, name: str, argv: list[str], on_line: LineHandler | None = None) -> Child:
        child = Child(name, argv, self.workdir, on_line)
        self.all.append(child)
        self.sel.register(child.stdout_fd, selectors.EVENT_READ, (child, "r"))
        return child

    def start_peer(self, nick: str, multicast: tuple[str, int],
                   on_line: LineHandler | None = None, profile_to: str | None = None) -> Child:
        data_dir = os.path.join(self.workdir, f"data-{nick}-{multicast[1]}")
        return self.start(nick, peer_argv(nick, multicast, data_dir, profile_to), on_line)

    def write(self, child: Child, data: bytes) -> None:
        if child.stdin_closed:
            return
        child.pending += data
        if not child.flush() and child not in self._writing:
            self._writing.add(child)
            self.sel.register(child.stdin_fd, selectors.EVENT_WRITE, (child, "w"))

    def close_stdin(self, child: Child) -> None:
        self._unwrite(child)
        child.close_stdin()

    def _unwrite(self, child: Child) -> None:
        if child in self._writing:
            self._writing.discard(child)
            try:
                self.sel.unregister(child.stdin_fd)
            except (KeyError, ValueError):
                pass

    def pump(self, until: Callable[[], bool], timeout: float,
             tick: Callable[[float], float | None] | None = None) -> bool:
        """Read and write the pipes until ``until()`` is true (True) or ``timeout`` s pass
        (False).  ``tick(now)`` runs every turn and returns how soon it wants the next one."""
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            wait = 0.05
            if tick is not None:
                soon = tick(now)
                if soon is not None:
                    wait = min(wait, max(0.0, soon))
            if until():
                return True
            if now >= deadline:
                return False
            for key, _ in self.sel.select(min(wait, deadline - now)):
                child, mode = key.data
                if mode == "r":
                    child.readable()
                    if child.eof:
                        self.sel.unregister(child.stdout_fd)
                elif child.flush():
                    self._unwrite(child)

    def sleep(self, seconds: float) -> None:
        """Wait, still draining every child's stdout (a full pipe would stall a peer)."""
        self.pump(lambda: False, seconds)

    def stop(self, children: list[Child]) -> None:
        """Kill these children (SIGKILL) and reap them."""
        for child in children:
            self._unwrite(child)
            try:
                self.sel.unregister(child.stdout_fd)
            except (KeyError, ValueError):
                pass
            child.kill()
        for child in children:
            child.reap()
            if child in self.all:
                self.all.remove(child)

    def quit_cleanly(self, children: list[Child], timeout: float = 20.0) -> None:
        """Close their stdin (the line face then leaves and exits, which lets cProfile write
        its file), drain their output until they exit, then kill what is left."""
        for child in children:
            self.close_stdin(child)
        self.pump(lambda: all(not c.alive() for c in children), timeout)
        self.stop(children)

    def kill_all(self) -> None:
        self.stop(list(self.all))
        self.sel.close()


def install_signal_handlers() -> None:
    """SIGTERM (and SIGHUP) raise, so the runner's ``finally`` kills every child."""

    def raise_exit(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            signal.signal(sig, raise_exit)
        except (ValueError, OSError):
            pass
