"""A little LAN made of network namespaces, for the multi-host fault tests (issue 5).

``Lab(3)`` makes three "hosts", each a network namespace with one veth whose other end is a
port of a bridge that lives in a namespace of its own (never in the root namespace)::

    p2p-<tok>-h1 [p<tok>h1 10.213.N.11/24] --- [p<tok>p1]
    p2p-<tok>-h2 [p<tok>h2 10.213.N.12/24] --- [p<tok>p2]  p<tok>br   (in p2p-<tok>-br)
    p2p-<tok>-h3 [p<tok>h3 10.213.N.13/24] --- [p<tok>p3]

``<tok>`` and ``N`` are random, so two labs (or two test runs) never collide.  The hosts have
no default route and the root namespace has no leg in the lab, so nothing a peer in it sends
can leave it.  Peers run in a host with ``ip netns exec`` (which execs, so the child's pid is
twistd's own and signals reach it).

Faults: ``cut``/``heal`` take the host's bridge port down and up (a cable pulled at the
switch: the host keeps its address and routes, its packets go nowhere); ``impair`` puts
``tc ... netem loss L% delay D ms`` on both directions of a host's link (needs sch_netem in the
kernel; ``netem_problem()`` says why not); ``drop_randomly`` makes random loss without netem
(HTB + a classic-BPF classifier sending a share of the packets to a class that drops all).

Everything is removed by ``Lab.teardown()`` (peers killed by pid, namespaces deleted; deleting
a namespace destroys its veths and bridge), which also runs at interpreter exit for any lab
left behind.
"""

from __future__ import annotations

import atexit
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from tests.support import child_env, twistd

IP = shutil.which("ip") or "/usr/sbin/ip"
TC = shutil.which("tc") or "/usr/sbin/tc"
#: every ip/tc call is bounded
COMMAND_TIMEOUT = 15.0
#: the lab's addresses: 10.213.N.0/24, N random
SUBNET_PREFIX = "10.213"

#: ``HH:MM:SS <nick> text``: a chat line of the line face (README.rst, "The line face")
CHAT_LINE = re.compile(r"^\d\d:\d\d:\d\d <([^>]+)> (.*)$")


class LabError(Exception):
    """An ip/tc command failed; the text has the command and its stderr."""


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LabError(f"{' '.join(argv)}: {e}") from None
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done


def why_unavailable() -> str | None:
    """Why namespaces can't be made here (a skip reason), or None when they can."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "the multi-host fault tests need root (ip netns, veth, bridge); not root here"
    if not os.path.exists(IP):
        return "the multi-host fault tests need iproute2's `ip`; not found"
    probe = f"p2p-{secrets.token_hex(3)}-probe"
    try:
        _run([IP, "netns", "add", probe])
    except LabError as e:
        return f"`ip netns add` fails here, so no namespaces: {e}"
    finally:
        _run([IP, "netns", "del", probe], check=False)
    return None


# --- a peer process inside a host -------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: be killed if the test process dies (even by SIGKILL), so no
    peer outlives a run and keeps a namespace alive.  Linux only; best effort."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class NsPeer:
    """One ``twistd -n p2pchat --ui lines`` child, possibly inside a namespace, its stdout read
    line by line (as tests.processes.PeerProcess, plus what the fault tests need)."""

    def __init__(self, nick: str, argv: list[str], data_dir: str) -> None:
        self.nick = nick
        self.data_dir = data_dir
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=child_env(),
                                     preexec_fn=_die_with_parent)
        self.pid = self.proc.pid
        self.lines: list[str] = []
        self._err: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            self._queue.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self._queue.put(None)

    def _read_err(self) -> None:
        for raw in self.proc.stderr:
            self._err.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def drain(self) -> list[str]:
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return self.lines
            if line is not None:
                self.lines.append(line)

    def running(self) -> bool:
        return self.proc.poll() is None

    def send(self, text: str) -> None:
        self.proc.stdin.write(text.encode("utf-8") + b"\n")
        self.proc.stdin.flush()

    def mark(self) -> int:
        """Where the output is now; ``since(mark)`` is what came after."""
        return len(self.drain())

    def since(self, mark: int) -> list[str]:
        return self.drain()[mark:]

    def wait_for(self, predicate, timeout: float, start: int = 0) -> list[str]:
        """Wait until predicate(lines from ``start``) is true; fail with the output so far."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.drain()[start:]
            if predicate(lines):
                return lines
            if time.monotonic() > deadline or (not self.running() and self._queue.empty()):
                self.drain()
                raise AssertionError(f"{self.nick}: not seen in {timeout:.0f} s\n"
                                     + self.report())
            time.sleep(0.05)

    def signal(self, sig: int) -> None:
        if self.running():
            os.kill(self.pid, sig)

    def freeze(self) -> None:
        self.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.signal(signal.SIGCONT)

    def kill(self) -> None:
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        time.sleep(0.2)  # let the reader take the last lines
        self.drain()

    def stop(self) -> None:
        if self.running():
            self.kill()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except Exception:
                pass

    def log_tail(self, count: int = 25) -> str:
        path = Path(self.data_dir) / "p2pchat.log"
        try:
            return "\n".join(path.read_text("utf-8", "replace").splitlines()[-count:])
        except OSError as e:
            return f"(no log: {e})"

    def report(self, tail: int = 30) -> str:
        """The end of what this peer printed and logged, for failure messages."""
        lines = self.drain()
        state = "running" if self.running() else f"exited {self.proc.returncode}"
        return (f"--- {self.nick} (pid {self.pid}, {state}), last {tail} of {len(lines)} "
                f"output lines:\n" + "\n".join(lines[-tail:])
                + f"\n--- {self.nick} stderr:\n" + "\n".join(self._err[-10:])
                + f"\n--- {self.nick} log tail:\n" + self.log_tail())


def peer_argv(nick: str, multicast: tuple[str, int], data_dir: str, interface: str,
              *extra: str) -> list[str]:
    """The command line of a test peer bound to ``interface`` (never without one)."""
    group, port = multicast
    return [twistd(), "-n", "p2pchat", "--username", nick, "--ui", "lines", "--port", "0",
            "--interface", interface, "--multicast", f"{group}:{port}",
            "--data-dir", data_dir, *extra]


# --- the lab ------------------------------------------------------------------------------------


class Host:
    def __init__(self, lab: Lab, index: int) -> None:
        self.index = index
        self.ns = f"{lab.prefix}-h{index}"
        self.veth = f"p{lab.token}h{index}"   # in the host's namespace
        self.port = f"p{lab.token}p{index}"   # its other end, a bridge port
        self.address = f"{SUBNET_PREFIX}.{lab.octet}.{10 + index}"

    def __repr__(self) -> str:
        return f"<Host {self.ns} {self.address}>"


_LABS: set[Lab] = set()
_LABS_LOCK = threading.RLock()


class Lab:
    """N hosts on one bridge, all in namespaces of their own.  Use as a context manager, or
    call ``create()`` and (always) ``teardown()``."""

    def __init__(self, count: int = 3) -> None:
        self.token = secrets.token_hex(3)
        self.prefix = f"p2p-{self.token}"
        self.octet = secrets.randbelow(254) + 1
        self.bridge_ns = f"{self.prefix}-br"
        self.bridge = f"p{self.token}br"
        self.hosts = [Host(self, i) for i in range(1, count + 1)]
        self.peers: list[NsPeer] = []
        self._made: list[str] = []  # namespaces made, to delete
        self.torn_down = False

    def __enter__(self) -> Lab:
        self.create()
        return self

    def __exit__(self, *exc) -> None:
        self.teardown()

    # --- making and unmaking ----------------------------------------------------------------

    def _ns_add(self, name: str) -> None:
        _run([IP, "netns", "add", name])
        self._made.append(name)

    def ip(self, ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return _run([IP, "-n", ns, *args], check)

    def tc(self, ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return _run([TC, "-n", ns, *args], check)

    def create(self) -> None:
        _catch_termination()
        with _LABS_LOCK:
            _LABS.add(self)
        try:
            self._build()
        except BaseException:
            self.teardown()
            raise

    def _build(self) -> None:
        """The namespaces, links and addresses (``create`` tears down what a failure left)."""
        self._ns_add(self.bridge_ns)
        self.ip(self.bridge_ns, "link", "set", "lo", "up")
        # No IGMP snooping: the bridge floods multicast, as a plain switch does.
        self.ip(self.bridge_ns, "link", "add", self.bridge, "type", "bridge",
                "mcast_snooping", "0")
        self.ip(self.bridge_ns, "link", "set", self.bridge, "up")
        for host in self.hosts:
            self._ns_add(host.ns)
            # Both ends made straight in their namespaces: nothing in the root namespace.
            _run([IP, "link", "add", host.veth, "netns", host.ns, "type", "veth",
                  "peer", "name", host.port, "netns", self.bridge_ns])
            self.ip(self.bridge_ns, "link", "set", host.port, "master", self.bridge)
            self.ip(self.bridge_ns, "link", "set", host.port, "up")
            self.ip(host.ns, "link", "set", "lo", "up")
            self.ip(host.ns, "addr", "add", f"{host.address}/24", "dev", host.veth)
            self.ip(host.ns, "link", "set", host.veth, "up")
            self.ip(host.ns, "route", "add", "224.0.0.0/4", "dev", host.veth)
        self._wait_links_up()

    def _wait_links_up(self, timeout: float = 10.0) -> None:
        """Until every host's veth has its carrier and its address is usable (no DAD for
        IPv4, but the bridge port goes through its forwarding states)."""
        deadline = time.monotonic() + timeout
        while True:
            pending = [h for h in self.hosts if "LOWER_UP" not in self.ip(
                h.ns, "link", "show", h.veth).stdout]
            ports = self.ip(self.bridge_ns, "-o", "link", "show", "master", self.bridge).stdout
            if not pending and ports.count("state UP") >= len(self.hosts):
                return
            if time.monotonic() > deadline:
                raise LabError(f"links not up after {timeout} s: {pending} / {ports}")
            time.sleep(0.1)

    def teardown(self) -> None:
        """Kill our peers (by pid), then delete our namespaces.  Safe to call again."""
        for peer in list(self.peers):
            try:
                peer.stop()
            except Exception:
                pass
        # Anything else still inside our (uniquely named) namespaces was started by us too.
        for ns in self._made:
            pids = _run([IP, "netns", "pids", ns], check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGCONT)
                    os.kill(int(pid), signal.SIGKILL)
                except (ValueError, OSError):
                    pass
        for ns in reversed(self._made):
            _run([IP, "netns", "del", ns], check=False)
        left = self.leftovers()
        self._made = [ns for ns in self._made if ns in left]
        self.torn_down = not self._made
        if self.torn_down:
            with _LABS_LOCK:
                _LABS.discard(self)

    def leftovers(self) -> list[str]:
        """Our namespaces that still exist."""
        listed = _run([IP, "netns", "list"], check=False).stdout
        names = {line.split()[0] for line in listed.splitlines() if line.strip()}
        return [ns for ns in self._made if ns in names]

    # --- peers --------------------------------------------------------------------------------

    def start_peer(self, host: Host, nick: str, multicast: tuple[str, int], data_dir: str,
                   *extra: str) -> NsPeer:
        os.makedirs(data_dir, mode=0o700, exist_ok=True)  # private, as p2pchat makes one
        argv = [IP, "netns", "exec", host.ns,
                *peer_argv(nick, multicast, data_dir, host.address, *extra)]
        peer = NsPeer(nick, argv, data_dir)
        self.peers.append(peer)
        return peer

    # --- faults -------------------------------------------------------------------------------

    def cut(self, host: Host) -> None:
        """Pull the host's cable at the switch: its bridge port goes down."""
        self.ip(self.bridge_ns, "link", "set", host.port, "down")

    def heal(self, host: Host) -> None:
        self.ip(self.bridge_ns, "link", "set", host.port, "up")
        # The host kept its routes (only the carrier went); make sure the multicast one is there.
        routes = self.ip(host.ns, "route", "show", "224.0.0.0/4").stdout
        if "224.0.0.0/4" not in routes:
            self.ip(host.ns, "route", "add", "224.0.0.0/4", "dev", host.veth)
        self._wait_links_up()

    def _both_ends(self, host: Host) -> list[tuple[str, str]]:
        # The host's egress (what it sends) and the bridge port's egress (what it receives).
        return [(host.ns, host.veth), (self.bridge_ns, host.port)]

    def netem_problem(self) -> str | None:
        """Why ``impair`` can't work here (a skip reason), or None."""
        host = self.hosts[0]
        done = self.tc(host.ns, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
                       check=False)
        if done.returncode != 0:
            return ("tc netem is not available in this kernel (`tc qdisc add ... netem` says: "
                    f"{done.stderr.strip()}); it needs CONFIG_NET_SCH_NETEM or the sch_netem "
                    "module")
        self.tc(host.ns, "qdisc", "del", "dev", "lo", "root", check=False)
        return None

    def impair(self, host: Host, loss_percent: float, delay_ms: float) -> None:
        """``netem loss L% delay D ms`` on both directions of the host's link."""
        for ns, dev in self._both_ends(host):
            self.tc(ns, "qdisc", "add", "dev", dev, "root", "netem", "loss",
                    f"{loss_percent:g}%", "delay", f"{delay_ms:g}ms")

    def drop_randomly(self, host: Host, loss_percent: float) -> None:
        """Random loss without netem, on both directions of the host's link: HTB sends what a
        classic-BPF classifier picks (a random number below the share) to a class whose queue
        (pfifo limit 0) drops everything; the rest passes untouched.  No delay."""
        threshold = int(loss_percent / 100 * 2 ** 32) - 1
        # ld rand; jgt #threshold, keep, drop; drop: ret #1:2; keep: ret #1:1
        bytecode = (f"4,32 0 0 {0xfffff000 + 56},37 1 0 {threshold},"
                    f"6 0 0 {0x10002},6 0 0 {0x10001}")
        for ns, dev in self._both_ends(host):
            self.tc(ns, "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default",
                    "1", "r2q", "100000")
            for minor in ("1", "2"):
                self.tc(ns, "class", "add", "dev", dev, "parent", "1:", "classid",
                        f"1:{minor}", "htb", "rate", "10gbit")
            self.tc(ns, "qdisc", "add", "dev", dev, "parent", "1:2", "handle", "2:", "pfifo",
                    "limit", "0")
            self.tc(ns, "filter", "add", "dev", dev, "parent", "1:", "protocol", "all", "prio",
                    "1", "bpf", "bytecode", bytecode, "classid", "1:1")

    def dropped(self, host: Host) -> int:
        """Packets dropped by the impairment on the host's link (both directions)."""
        total = 0
        for ns, dev in self._both_ends(host):
            out = self.tc(ns, "-s", "qdisc", "show", "dev", dev, check=False).stdout
            match = re.search(r"dropped (\d+)", out)  # the root qdisc's line comes first
            total += int(match.group(1)) if match else 0
        return total

    def clear_impairment(self, host: Host) -> None:
        for ns, dev in self._both_ends(host):
            self.tc(ns, "qdisc", "del", "dev", dev, "root", check=False)


class RoutedLab(Lab):
    """Two hosts on two subnets joined by a router (a namespace forwarding IPv4 unicast; no
    multicast routing, so the hosts' beacons never reach each other), for static peers::

        p2p-<tok>-h1 [10.213.N.11/24] --- [10.213.N.1  p2p-<tok>-br  10.214.N.1] --- [10.214.N.12/24] p2p-<tok>-h2

    (the router is the lab's ``bridge_ns``, so ``teardown`` deletes it too)."""

    def __init__(self) -> None:
        super().__init__(2)
        for host, subnet in zip(self.hosts, ("213", "214")):
            host.address = f"10.{subnet}.{self.octet}.{10 + host.index}"
        self.gateways = [f"10.213.{self.octet}.1", f"10.214.{self.octet}.1"]

    def _build(self) -> None:
        self._ns_add(self.bridge_ns)
        self.ip(self.bridge_ns, "link", "set", "lo", "up")
        _run([IP, "netns", "exec", self.bridge_ns, "sysctl", "-q", "-w",
              "net.ipv4.ip_forward=1"])
        for host, gateway in zip(self.hosts, self.gateways):
            self._ns_add(host.ns)
            _run([IP, "link", "add", host.veth, "netns", host.ns, "type", "veth",
                  "peer", "name", host.port, "netns", self.bridge_ns])
            self.ip(self.bridge_ns, "addr", "add", f"{gateway}/24", "dev", host.port)
            self.ip(self.bridge_ns, "link", "set", host.port, "up")
            self.ip(host.ns, "link", "set", "lo", "up")
            self.ip(host.ns, "addr", "add", f"{host.address}/24", "dev", host.veth)
            self.ip(host.ns, "link", "set", host.veth, "up")
            self.ip(host.ns, "route", "add", "10.0.0.0/8", "via", gateway)
            self.ip(host.ns, "route", "add", "224.0.0.0/4", "dev", host.veth)
        self._wait_routed()

    def _wait_routed(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            pending = [h for h in self.hosts if "LOWER_UP" not in self.ip(
                h.ns, "link", "show", h.veth).stdout]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise LabError(f"links not up after {timeout} s: {pending}")
            time.sleep(0.1)


class LoopbackNs:
    """One network namespace with only ``lo`` (up): what runs in it reaches 127.0.0.1 of its
    own and nothing else (the private Tor network of tests/tornet.py).  ``teardown`` kills
    what is still in it and deletes it."""

    def __init__(self) -> None:
        self.name = f"p2p-{secrets.token_hex(3)}-lo"
        _catch_termination()
        _run([IP, "netns", "add", self.name])
        _LOOPBACKS.add(self)
        try:
            _run([IP, "-n", self.name, "link", "set", "lo", "up"])
            # Quick ACKs on loopback (inside this namespace only): tor leaves Nagle on
            # between relays, which meets the 40 ms delayed ACK (TOR-TESTING.md).
            for dest in ("127.0.0.0/8", "127.0.0.1"):
                _run([IP, "-n", self.name, "route", "change", "table", "local", "local", dest,
                      "dev", "lo", "proto", "kernel", "scope", "host", "src", "127.0.0.1",
                      "quickack", "1"], check=False)
        except BaseException:
            self.teardown()
            raise

    def argv(self, *argv: str) -> list[str]:
        """A command line that runs inside the namespace."""
        return [IP, "netns", "exec", self.name, *argv]

    def teardown(self) -> None:
        for pid in _run([IP, "netns", "pids", self.name], check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGCONT)
                os.kill(int(pid), signal.SIGKILL)
            except (ValueError, OSError):
                pass
        _run([IP, "netns", "del", self.name], check=False)
        _LOOPBACKS.discard(self)

    def exists(self) -> bool:
        listed = _run([IP, "netns", "list"], check=False).stdout
        return any(line.split()[:1] == [self.name] for line in listed.splitlines())


_LOOPBACKS: set[LoopbackNs] = set()


def _teardown_all() -> None:
    with _LABS_LOCK:
        labs = list(_LABS)
    for lab in labs:
        try:
            lab.teardown()
        except Exception:
            pass
    for ns in list(_LOOPBACKS):
        try:
            ns.teardown()
        except Exception:
            pass


atexit.register(_teardown_all)

_CAUGHT: dict[int, object] = {}


def _on_termination(signum, frame) -> None:
    """SIGTERM/SIGHUP (e.g. a CI timeout), which skip atexit: tear the labs down, then die of
    the signal as we would have."""
    _teardown_all()
    signal.signal(signum, _CAUGHT.get(signum, signal.SIG_DFL))
    os.kill(os.getpid(), signum)


def _catch_termination() -> None:
    """Install _on_termination for SIGTERM and SIGHUP, where nobody else handles them."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        current = signal.getsignal(signum)
        if signum not in _CAUGHT and current in (signal.SIG_DFL, None):
            _CAUGHT[signum] = current if current is not None else signal.SIG_DFL
            signal.signal(signum, _on_termination)


# --- reading what the peers showed -------------------------------------------------------------


def chat_texts(lines: list[str], nick: str | None = None) -> list[tuple[str, str]]:
    """(nick, text) of every chat line, in output order; only ``nick``'s if given."""
    out = []
    for line in lines:
        match = CHAT_LINE.match(line)
        if match and (nick is None or match.group(1) == nick):
            out.append((match.group(1), match.group(2)))
    return out


def numbered(tag: str, lines: list[str]) -> list[int]:
    """The numbers n of every line ``<x> TAG-n`` (e.g. tag ``m-alice``), in output order."""
    pattern = re.compile(rf"^{re.escape(tag)}-(\d+)$")
    found = []
    for _, text in chat_texts(lines):
        match = pattern.match(text)
        if match:
            found.append(int(match.group(1)))
    return found


def ranges(numbers) -> str:
    """1,2,3,7,9,10 -> '1-3,7,9-10' (for readable failure messages)."""
    numbers = sorted(set(numbers))
    parts, start, prev = [], None, None
    for n in numbers:
        if start is None:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            parts.append(f"{start}-{prev}" if start != prev else f"{start}")
            start = prev = n
    if start is not None:
        parts.append(f"{start}-{prev}" if start != prev else f"{start}")
    return ",".join(parts) or "none"
