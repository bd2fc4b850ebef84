"""A peer alone works out its public key and signs its beacons by the OpenSSL Python already
holds, without loading libsodium (p2pchat/latesodium.py); the signatures are libsodium's byte
for byte, and everything else still goes through libsodium, loaded at its first use."""

from __future__ import annotations

import base64
import os
import random

from nacl.bindings import crypto_sign, crypto_sign_seed_keypair
from twisted.trial.unittest import TestCase

from p2pchat import latesodium
from p2pchat.identity import Identity, beacon_payload, verify_beacon
from tests.test_latetls import _run


class OpenSSLAsLibsodium(TestCase):
    def setUp(self) -> None:
        crypto = latesodium._LibCrypto.find()
        assert crypto is not None, "this Python's libcrypto has Ed25519 (OpenSSL >= 1.1.1)"
        self.crypto = crypto

    def test_same_public_key_and_signatures(self) -> None:
        rng = random.Random(21)
        for n in range(40):
            seed = os.urandom(32)
            public, secret = crypto_sign_seed_keypair(seed)
            self.assertEqual(self.crypto.public_key(seed), public)
            for data in (b"", rng.randbytes(rng.randrange(1, 3000)), "é".encode() * 3000):
                self.assertEqual(self.crypto.sign(data, seed), crypto_sign(data, secret)[:64])

    def test_a_bad_seed_is_a_value_error(self) -> None:
        for seed in (b"", b"x" * 31, b"x" * 33):
            with self.assertRaises(ValueError):
                latesodium.public_key(seed)
        with self.assertRaises(ValueError):
            Identity.from_seed(b"short")

    def test_without_openssl_libsodium_signs(self) -> None:
        """Where OpenSSL's Ed25519 can't be found, libsodium does it (as before)."""
        self.patch(latesodium, "_libcrypto", None)
        self.patch(latesodium, "_looked", True)
        self.patch(latesodium, "sodium", lambda: __import__("nacl.bindings").bindings)
        alice = Identity.generate()
        self.assertEqual(alice.sign_seldom(b"hello"), alice.sign(b"hello"))


#: In a fresh interpreter: what a lone peer does with its key, then what a room does.
_LONE = (
    "import sys\n"
    "from p2pchat.identity import Identity, beacon_payload, verify_beacon\n"
    "from p2pchat import runsig\n"
    "me = Identity.generate()\n"
    "again = Identity.from_seed(me.seed)\n"
    "payload = beacon_payload('announce', me.peer_id, 'alice', 1, 't', me.fingerprint)\n"
    "sig = me.sign_seldom(payload)\n"
    "print('alone', again.public == me.public,"
    " [n for n in ('nacl.bindings', 'nacl._sodium', '_cffi_backend') if n in sys.modules])\n"
    "print('checked', verify_beacon(me.public_key_b64(), sig, payload, me.fingerprint),"
    " 'nacl.bindings' in sys.modules)\n"
    "print('same', me.sign(payload) == sig)\n")


class LoadedAtFirstUse(TestCase):
    def test_a_lone_peer_signs_beacons_without_libsodium(self) -> None:
        out = _run(_LONE)
        self.assertIn("alone True []", out)
        self.assertIn("checked True True", out)  # the first check loads it
        self.assertIn("same True", out)

    def test_beacons_check_out_either_way(self) -> None:
        alice = Identity.generate()
        payload = beacon_payload("announce", alice.peer_id, "alice", 9, "t", alice.fingerprint)
        sig = alice.sign_seldom(payload)
        self.assertEqual(sig, alice.sign(payload))
        self.assertTrue(verify_beacon(alice.public_key_b64(), sig, payload, alice.fingerprint))
        forged = base64.b64encode(bytes(64)).decode()
        self.assertFalse(verify_beacon(alice.public_key_b64(), forged, payload,
                                       alice.fingerprint))


class KeysKept(TestCase):
    def test_at_most_keys_kept_each_freed(self) -> None:
        crypto = latesodium._LibCrypto.find()
        assert crypto is not None
        freed: list[int] = []
        real_free = crypto.EVP_PKEY_free
        crypto.EVP_PKEY_free = lambda key: (freed.append(key), real_free(key))
        seeds = [os.urandom(32) for _ in range(latesodium.KEYS_KEPT + 3)]
        for seed in seeds:
            crypto.sign(b"x", seed)
        self.assertEqual(len(crypto._keys), latesodium.KEYS_KEPT)
        self.assertEqual(len(freed), 3)
        self.assertEqual(list(crypto._keys), seeds[3:])  # the oldest went first
        crypto.public_key(seeds[0])  # made and freed at once, not kept
        self.assertEqual((len(crypto._keys), len(freed)), (latesodium.KEYS_KEPT, 4))


class HalfImported(TestCase):
    """The first link imports libsodium in a thread (latetls.preload) while the reactor may
    need it (a beacon heard): ``sodium`` must wait for that import, never hand out the
    module half made, as ``sys.modules`` holds it meanwhile."""

    def test_sodium_waits_for_an_import_under_way(self) -> None:
        import sys
        import threading
        import types

        folder = self.mktemp()
        os.makedirs(folder)
        name = "p2pchat_test_slow_sodium"
        with open(os.path.join(folder, name + ".py"), "w") as f:
            f.write("import builtins\nbuiltins._slow_started.set()\n"
                    "builtins._slow_go.wait(10)\ncrypto_sign_open = 'made'\n")
        import builtins

        builtins._slow_started, builtins._slow_go = threading.Event(), threading.Event()  # type: ignore[attr-defined]
        self.addCleanup(lambda: (delattr(builtins, "_slow_started"),
                                 delattr(builtins, "_slow_go")))
        sys.path.insert(0, folder)
        self.addCleanup(sys.path.remove, folder)
        self.addCleanup(sys.modules.pop, name, None)
        self.patch(latesodium, "_BINDINGS", name)
        self.patch(latesodium, "_sodium", None)
        importer = threading.Thread(target=__import__, args=(name,))
        importer.start()
        self.assertTrue(builtins._slow_started.wait(10))  # type: ignore[attr-defined]
        self.assertIn(name, sys.modules)  # there, half made
        got: list[types.ModuleType] = []
        taker = threading.Thread(target=lambda: got.append(latesodium.sodium()))
        taker.start()
        taker.join(0.3)
        self.assertEqual(got, [])  # still waiting for the import
        builtins._slow_go.set()  # type: ignore[attr-defined]
        importer.join(10)
        taker.join(10)
        self.assertEqual(getattr(got[0], "crypto_sign_open", None), "made")
