"""A private Tor network on loopback, inside a network namespace of its own (no internet, no
leg outside): 3 directory authorities (keys from ``tor-gencert``), 4 relays (2 exits for
127.0.0.0/8 only), and client Tors, started in stages with bounded waits, then torn down
(/work/shared/docs/TOR-TESTING.md has the knobs and why).

``TorNet(tmp).start()`` builds it; ``client(i)`` starts a client Tor (SocksPort and a cookie
ControlPort) and waits for its bootstrap; ``client_torrc()`` is the lines a Tor that a peer
launches itself (``--tor --torrc FILE``) needs to join this network; ``ns.argv`` runs a
command inside the namespace.  Progress is read from the tors' files (``cached-consensus``,
the notice log), so the test process never needs a socket in the namespace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from tests.netns import LoopbackNs, _die_with_parent

TOR = shutil.which("tor") or "/usr/sbin/tor"
TOR_GENCERT = shutil.which("tor-gencert") or "/usr/bin/tor-gencert"
AUTHORITIES = 3
RELAYS = 4
EXITS = 2
#: bounded waits (seconds) for each stage
CONSENSUS_TIMEOUT = 90.0
BOOTSTRAP_TIMEOUT = 90.0
#: each node's ports: ORPort 5000+n, DirPort 7000+n; clients SocksPort 9050+i, ControlPort
#: 9150+i (fixed: nothing else lives in the namespace)
OR_BASE, DIR_BASE, SOCKS_BASE, CONTROL_BASE = 5000, 7000, 9050, 9150

COMMON = """TestingTorNetwork 1
RunAsDaemon 0
AssumeReachable 1
PathsNeededToBuildCircuits 0.25
Sandbox 0
GeoIPFile /dev/null
GeoIPv6File /dev/null
Schedulers Vanilla
SafeLogging 0
ShutdownWaitLength 0
"""

SERVER = """Address 127.0.0.1
SocksPort 0
ServerDNSResolvConfFile /dev/null
ServerDNSAllowBrokenConfig 1
ServerDNSDetectHijacking 0
ServerDNSTestAddresses
ContactInfo tornet@test.invalid
"""

AUTHORITY = """AuthoritativeDirectory 1
V3AuthoritativeDirectory 1
V3AuthVotingInterval 10
V3AuthVoteDelay 2
V3AuthDistDelay 2
TestingV3AuthInitialVotingInterval 10
TestingV3AuthInitialVoteDelay 2
TestingV3AuthInitialDistDelay 2
V3AuthNIntervalsValid 3
TestingDirAuthVoteGuard *
TestingDirAuthVoteHSDir *
TestingMinExitFlagThreshold 0
ExitPolicy reject *:*
"""


def unavailable() -> str | None:
    """Why the network can't be built here (a skip reason), or None."""
    from tests import netns

    reason = netns.why_unavailable()
    if reason:
        return reason
    for path in (TOR, TOR_GENCERT):
        if not os.path.exists(path):
            return f"{os.path.basename(path)} not found (Debian: apt-get install tor)"
    return None


def _run(argv: list[str], stdin: bytes = b"", timeout: float = 60.0) -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {done.returncode}: "
                           f"{done.stderr.decode(errors='replace')[-500:]}")
    return done.stdout.decode(errors="replace")


class Node:
    def __init__(self, net: TorNet, kind: str, n: int) -> None:
        self.kind, self.n = kind, n
        self.name = f"{kind}{n}"
        self.dir = net.root / self.name
        self.dir.mkdir(mode=0o700, parents=True)
        self.torrc = self.dir / "torrc"
        self.proc: subprocess.Popen | None = None
        self.fp = ""  # relay identity fingerprint
        self.v3ident = ""  # authorities: the v3 identity
        index = {"auth": 0, "relay": AUTHORITIES}.get(kind, 0) + n
        self.orport, self.dirport = OR_BASE + index, DIR_BASE + index

    def log(self) -> str:
        text = ""
        for name in ("tor.out", "notice.log"):
            try:
                text += (self.dir / name).read_text(errors="replace")
            except OSError:
                pass
        return text

    def consensus_routers(self) -> int:
        try:
            text = (self.dir / "cached-consensus").read_text(errors="replace")
        except OSError:
            return 0
        return sum(1 for line in text.splitlines() if line.startswith("r "))


class TorNet:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.ns: LoopbackNs | None = None
        self.auths: list[Node] = []
        self.relays: list[Node] = []
        self.clients: list[Node] = []
        self.started = 0.0

    # --- building ----------------------------------------------------------------------

    def start(self) -> TorNet:
        self.started = time.monotonic()
        self.ns = LoopbackNs()
        try:
            self.auths = [Node(self, "auth", i) for i in range(1, AUTHORITIES + 1)]
            self.relays = [Node(self, "relay", i) for i in range(1, RELAYS + 1)]
            self._keys()
            self._write_torrcs()
            for node in self.auths:
                self._launch(node)
            self._wait(lambda: all(a.consensus_routers() >= 1 for a in self.auths),
                       CONSENSUS_TIMEOUT, "a first consensus on every authority")
            for node in self.relays:
                self._launch(node)
            total = AUTHORITIES + RELAYS
            self._wait(lambda: all(a.consensus_routers() >= total for a in self.auths),
                       CONSENSUS_TIMEOUT, f"a consensus of all {total} servers")
        except BaseException:
            self.stop()
            raise
        return self

    def _keys(self) -> None:
        """Authority keys (tor-gencert) and every server's fingerprint, in parallel."""
        errors: list[BaseException] = []

        def make(node: Node) -> None:
            try:
                if node.kind == "auth":
                    keys = node.dir / "keys"
                    keys.mkdir(mode=0o700)
                    _run([TOR_GENCERT, "--create-identity-key", "-m", "12", "-a",
                          f"127.0.0.1:{node.dirport}", "-i", str(keys / "authority_identity_key"),
                          "-s", str(keys / "authority_signing_key"),
                          "-c", str(keys / "authority_certificate"), "--passphrase-fd", "0"],
                         stdin=b"\n")
                    cert = (keys / "authority_certificate").read_text()
                    node.v3ident = next(line.split()[1] for line in cert.splitlines()
                                        if line.startswith("fingerprint "))
                _run([TOR, "--list-fingerprint", "--DataDirectory", str(node.dir),
                      "--ORPort", f"127.0.0.1:{node.orport}", "--Nickname", node.name,
                      "-f", "/dev/null", "--ignore-missing-torrc"])
                node.fp = (node.dir / "fingerprint").read_text().split()[1]
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=make, args=(node,))
                   for node in self.auths + self.relays]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        if errors:
            raise errors[0]

    def dir_authorities(self) -> str:
        return "".join(f"DirAuthority {a.name} orport={a.orport} no-v2 v3ident={a.v3ident} "
                       f"127.0.0.1:{a.dirport} {a.fp}\n" for a in self.auths)

    def client_torrc(self) -> str:
        """The lines a client Tor of this network needs (no DataDirectory nor ports)."""
        return COMMON + self.dir_authorities() + "UseMicrodescriptors 0\n"

    def _base(self, node: Node) -> str:
        return (COMMON + self.dir_authorities() + f"DataDirectory {node.dir}\n"
                f"Nickname {node.name}\nLog notice file {node.dir / 'notice.log'}\n"
                f"__OwningControllerProcess {os.getpid()}\n")

    def _write_torrcs(self) -> None:
        exits = self.relays[:EXITS]
        bandwidths = self.root / "bandwidths"
        bandwidths.write_text(f"{int(time.time())}\n" + "".join(
            f"node_id=${n.fp} bw=1000\n" for n in self.auths + self.relays))
        for node in self.auths:
            node.torrc.write_text(
                self._base(node) + SERVER + AUTHORITY
                + f"ORPort 127.0.0.1:{node.orport}\nDirPort 127.0.0.1:{node.dirport}\n"
                f"TestingDirAuthVoteExit {','.join(e.fp for e in exits)}\n"
                f"V3BandwidthsFile {bandwidths}\n")
        for node in self.relays:
            policy = ("ExitRelay 1\nExitPolicy accept 127.0.0.0/8:*\nExitPolicyRejectPrivate 0\n"
                      if node in exits else "ExitRelay 0\nExitPolicy reject *:*\n")
            node.torrc.write_text(
                self._base(node) + SERVER + policy
                + f"ORPort 127.0.0.1:{node.orport}\nFetchDirInfoEarly 1\n"
                "FetchDirInfoExtraEarly 1\n")

    def _launch(self, node: Node) -> None:
        assert self.ns is not None
        with open(node.dir / "tor.out", "wb") as out:
            node.proc = subprocess.Popen(self.ns.argv(TOR, "-f", str(node.torrc)),
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                         preexec_fn=_die_with_parent)

    def _wait(self, done, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            dead = [n.name for n in self.auths + self.relays + self.clients
                    if n.proc is not None and n.proc.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise AssertionError(
                    f"private Tor network: no {what} within {timeout:.0f} s (dead: {dead})\n"
                    + "\n".join(f"--- {n.name}:\n" + "\n".join(n.log().splitlines()[-8:])
                                for n in self.auths + self.relays + self.clients))
            time.sleep(0.5)

    def client(self) -> Node:
        """A client Tor with a SocksPort and a cookie ControlPort, bootstrapped."""
        node = Node(self, "client", len(self.clients) + 1)
        node.socks, node.control = SOCKS_BASE + node.n, CONTROL_BASE + node.n
        node.torrc.write_text(
            self._base(node) + "UseMicrodescriptors 0\n"
            f"SocksPort 127.0.0.1:{node.socks}\nControlPort 127.0.0.1:{node.control}\n"
            "CookieAuthentication 1\n")
        self.clients.append(node)
        self._launch(node)
        self._wait(lambda: "Bootstrapped 100%" in node.log(), BOOTSTRAP_TIMEOUT,
                   f"bootstrap of {node.name}")
        return node

    # --- unmaking ------------------------------------------------------------------------

    def stop(self) -> None:
        for node in self.clients + self.relays + self.auths:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.kill()
                try:
                    node.proc.wait(10)
                except subprocess.TimeoutExpired:
                    pass
        if self.ns is not None:
            self.ns.teardown()

    def gone(self) -> bool:
        return self.ns is None or not self.ns.exists()
