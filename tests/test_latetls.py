"""An idle peer does without the TLS libraries until its first link (p2pchat/latetls.py), and
TLS still works: the transports keep ``startTLS``, a link between two real peers is made over
TLS, and a Twisted whose TLS can't be deferred gets it at start, as before.  The key file is
written and read without ``cryptography`` (p2pchat/keyfile.py), byte for byte as it does."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from twisted.trial.unittest import TestCase

from p2pchat.identity import Identity, spki_fingerprint
from p2pchat.keyfile import key_pem, raw_fingerprint, seed_from_pem
from p2pchat.latetls import LATE_MODULES
from tests.processes import PeerProcess
from tests.support import ROOT, child_env, fresh_multicast, peer_args

DEADLINE = 20.0


def _run(code: str) -> str:
    """``code`` in a fresh interpreter with this checkout first on the path; its stdout."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=child_env(), cwd=str(ROOT), timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


#: Whether TCP transports have startTLS (ITLSTransport), and whether pyOpenSSL is loaded.
_TLS_CHECK = ("from twisted.internet import tcp\n"
              "from twisted.internet.interfaces import ITLSTransport\n"
              "print('tls', ITLSTransport.implementedBy(tcp.Server), 'OpenSSL' in sys.modules)\n")


class Deferred(TestCase):
    def test_the_assembly_imports_no_tls_and_transports_keep_starttls(self) -> None:
        """What twistd does before its reactor runs: import the assembly, install the
        reactor.  No TLS library is loaded, yet TCP transports still provide ITLSTransport
        (startTLS) and the reactor IReactorSSL; the first startTLS loads them."""
        out = _run(
            "import sys\n"
            "import p2pchat.service\n"
            "from twisted.internet import epollreactor; epollreactor.install()\n"
            f"late = [n for n in {LATE_MODULES!r} if n in sys.modules]\n"
            "print('late', late)\n" + _TLS_CHECK +
            "from twisted.internet import reactor\n"
            "from twisted.internet.interfaces import IReactorSSL\n"
            "print('client', ITLSTransport.implementedBy(tcp.Client),"
            " IReactorSSL.providedBy(reactor))\n"
            "from twisted.internet import _newtls\n"
            "from p2pchat.identity import ContextFactory, Identity\n"
            "made = _newtls.TLSMemoryBIOFactory(ContextFactory(Identity.generate(), False),"
            " False, None)\n"
            "print('then', type(made).__module__, 'OpenSSL' in sys.modules)\n")
        self.assertIn("late []", out)
        self.assertIn("tls True False", out)
        self.assertIn("client True True", out)
        self.assertIn("then twisted.protocols.tls True", out)

    def test_a_twisted_that_cant_defer_gets_tls_at_start(self) -> None:
        """A ``_newtls`` that wants more of ``twisted.protocols.tls`` than the factory (here:
        the stand-in offers nothing): defer_tls says no and leaves nothing behind, and the
        transports get their TLS the usual way, at start."""
        out = _run(
            "import sys, types\n"
            "from p2pchat import latetls\n"
            "class Bare(types.ModuleType):\n"
            "    def __setattr__(self, name, value): pass\n"
            "latetls.types = types.SimpleNamespace(ModuleType=Bare)\n"
            "print('deferred', latetls.defer_tls())\n"
            "print('left', [n for n in ('twisted.protocols.tls', 'twisted.internet._newtls',"
            " 'twisted.internet.ssl') if n in sys.modules])\n" + _TLS_CHECK)
        self.assertIn("deferred False", out)
        self.assertIn("left []", out)
        self.assertIn("tls True True", out)


class KeyFile(TestCase):
    def test_written_and_read_as_cryptography_does(self) -> None:
        key = ed25519.Ed25519PrivateKey.generate()
        seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
        theirs = key.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())
        self.assertEqual(key_pem(seed), theirs)
        self.assertEqual(seed_from_pem(theirs), seed)
        again = serialization.load_pem_private_key(key_pem(seed), password=None)
        self.assertIsInstance(again, ed25519.Ed25519PrivateKey)
        public = key.public_key()
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        der = public.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
        import hashlib

        self.assertEqual(raw_fingerprint(raw), hashlib.sha256(der).hexdigest())
        self.assertEqual(Identity.from_seed(seed).fingerprint, spki_fingerprint(public))
        with self.assertRaises(ValueError):
            raw_fingerprint(raw[:31])

    def test_other_keys_refused(self) -> None:
        other = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        pem = other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
        for bad in (pem, b"-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n",
                    b""):
            with self.assertRaises(ValueError):
                seed_from_pem(bad)
        folder = self.mktemp()
        os.makedirs(folder)
        Path(folder, "identity.key").write_bytes(pem)
        with self.assertRaisesRegex(ValueError, "is not an Ed25519 key"):
            Identity.load_or_create(folder)

    def test_certificate_of_another_key_replaced(self) -> None:
        folder = self.mktemp()
        first = Identity.load_or_create(folder)
        mine = first.cert
        other = Identity.generate()
        Path(folder, "identity.crt").write_bytes(
            other.cert.public_bytes(serialization.Encoding.PEM))
        again = Identity.load_or_create(folder)
        raw = again.cert.public_key().public_bytes(serialization.Encoding.Raw,
                                                   serialization.PublicFormat.Raw)
        self.assertEqual(raw, first.public)
        self.assertNotEqual(again.cert, mine)  # made anew, for our key
        self.assertEqual(base64.b64encode(raw).decode(), first.public_key_b64())


def _imported(path: Path) -> set[str]:
    """The modules ``python -X importtime`` listed so far (PYTHONPROFILEIMPORTTIME)."""
    found = re.findall(r"^import time:.*\|\s*(\S+)\s*$", path.read_text(errors="replace"),
                       flags=re.M)
    return set(found)


def _late(names: set[str]) -> list[str]:
    return sorted(n for n in names if n.split(".")[0] in LATE_MODULES
                  or any(n == m or n.startswith(m + ".") for m in LATE_MODULES))


def test_an_idle_peer_loads_tls_at_its_first_link(tmp_path: Path) -> None:
    """A real line-face peer, alone and idle, has imported none of the TLS libraries (nor
    urwid, nor txtorcon, nor the link-only modules such as handshake.py: LATE_MODULES); once
    a second peer links to it (over TLS, as our peers always do), the line said goes across
    and the TLS libraries and the handshake's machine are in."""
    group = fresh_multicast()
    imports = tmp_path / "alice-imports.txt"
    env = {**child_env(), "PYTHONPROFILEIMPORTTIME": "1"}
    with open(imports, "wb") as err:
        alice = subprocess.Popen(peer_args("alice", group, str(tmp_path / "alice")),
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err,
                                 env=env)
    bob = None
    try:
        deadline = time.monotonic() + DEADLINE
        while "p2pchat.lines" not in _imported(imports) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2.0)  # idle: beacons sent and heard, sweeps, store upkeep
        idle = _imported(imports)
        assert "p2pchat.lines" in idle and "p2pchat.mesh" in idle
        assert _late(idle) == [], _late(idle)
        bob = PeerProcess("bob", group, str(tmp_path / "bob"))
        bob.wait_line("* alice joined", DEADLINE)
        alice.stdin.write(b"over tls\n")
        alice.stdin.flush()
        bob.wait_line("<alice> over tls", DEADLINE)
        linked = _imported(imports)
        assert {"OpenSSL", "cryptography", "twisted.protocols.tls", "p2pchat.handshake",
                "nacl.bindings.crypto_sign", "_cffi_backend", "p2pchat.syncing"} <= linked
    finally:
        if bob is not None:
            bob.stop()
        alice.kill()
        alice.wait(10)
        for stream in (alice.stdin,):
            stream.close()


class FirstLinkWaitsForTheImport(TestCase):
    """The first TLS link's STARTTLS waits for the libraries' import in a thread
    (latetls.preload) instead of importing them on the reactor (44-58 ms held)."""

    def _link(self):
        from twisted.internet import task
        from twisted.internet.testing import StringTransport

        from p2pchat import handshake, latetls
        from p2pchat.mesh import PeerProtocol
        from p2pchat.node import Node

        clock = task.Clock()
        node = Node("alice", clock, identity=Identity.generate())
        proto = PeerProtocol(node, clock)
        transport = StringTransport()
        started: list[object] = []
        transport.startTLS = started.append  # type: ignore[attr-defined]
        proto.makeConnection(transport)
        transport.clear()
        waiting: list = []
        self.patch(latetls, "loaded", lambda: bool(waiting) and waiting[0].called)
        self.patch(latetls, "preload", lambda: waiting.append(__import__(
            "twisted.internet.defer", fromlist=["Deferred"]).Deferred()) or waiting[-1])
        return proto, transport, started, waiting, handshake

    def test_starttls_is_sent_once_the_libraries_are_in(self) -> None:
        proto, transport, started, waiting, handshake = self._link()
        proto._do([handshake.SendStartTLS(), handshake.StartTLS(server=True)])
        self.assertEqual((transport.value(), started, len(waiting)), (b"", [], 1))
        waiting[0].callback(None)
        self.assertIn(b"starttls", transport.value().lower())
        self.assertEqual(len(started), 1)

    def test_a_link_gone_meanwhile_is_left_alone(self) -> None:
        proto, transport, started, waiting, handshake = self._link()
        proto._do([handshake.StartTLS(server=False)])
        proto.connectionLost(None)
        transport.disconnected = True  # as a TCP transport says once lost
        waiting[0].callback(None)
        self.assertEqual(started, [])
