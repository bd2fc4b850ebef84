"""TLS loaded when the first peer of ours is heard (``soon``) or at the first link, not at
start: an idle peer alone does not hold pyOpenSSL,
``cryptography`` and Twisted's TLS layer (with ``service_identity`` and ``idna``), about
13 MB of the 55 MB it held (README "Performance", the idle peer).

Twisted imports TLS in two places as the reactor loads, each in a ``try`` (without pyOpenSSL
a reactor has no TLS): ``twisted.internet.tcp`` takes its transports' ``startTLS`` from
``twisted.internet._newtls``, and ``twisted.internet.posixbase`` its ``connectSSL`` and
``listenSSL`` from ``twisted.protocols.tls`` (or, failing that, ``twisted.internet.ssl``).
Both use one name only, ``TLSMemoryBIOFactory``, called when TLS starts.  ``defer_tls``
imports them (Twisted's own code, unchanged) with ``twisted.protocols.tls`` standing for a
module whose ``TLSMemoryBIOFactory`` is ``_factory``, which imports the real factory at the
first TLS link: the transports and the reactor are the very same, only the import of the TLS
libraries waits.

``service.py`` calls it first, before anything imports the reactor.  Where it can't (Twisted's
TLS already imported, or the reactor; or a Twisted whose ``_newtls`` wants more than the
factory, which its own ImportError says here, not swallowed by ``tcp``'s ``try``) it does
nothing and TLS is loaded at start, as before: never a transport without TLS.
``tests/test_latetls.py`` fails if an idle peer holds the TLS libraries (or urwid, or
txtorcon) or its transports lack ``startTLS``, and the end-to-end tests link over TLS.

The rest of the peer keeps to it: ``identity.py`` signs and fingerprints by libsodium and
makes or reads its certificate at the first TLS context; ``files/transfers.py`` and
``onion.py`` import Twisted's endpoints and TLS factory where they dial or listen.
"""

from __future__ import annotations

import sys
import time
import types
from typing import Any

from twisted.logger import Logger
from twisted.python.failure import Failure

_NEWTLS = "twisted.internet._newtls"
_TLS = "twisted.protocols.tls"
_SSL = "twisted.internet.ssl"
#: Imported already: too late to defer TLS.
_ALREADY = (_NEWTLS, _TLS, _SSL, "twisted.internet.tcp", "twisted.internet.posixbase", "OpenSSL")
#: What an idle peer alone must not hold (tests/test_latetls.py): they come with a link, the
#: console face, or --tor (and platformdirs with the first file received, or no --data-dir;
#: msgspec with the first line decoded or encoded: wire.py ``_load_codec``; the file
#: transfers and their port, and the sealing with PyNaCl's boxes, at their first use:
#: files/later.py, firstuse.py; onion.py with --tor or an onion contact dialed; the
#: handshake's machine, handshake.py, with the first connection: mesh.PeerProtocol; PyNaCl's
#: bindings, cffi and libsodium with the first signature checked or line signed, or the
#: first link: latesodium.py; notify.py with the console face only: notifyopts.py; the file
#: offers with the first file line or transfer: files/terms.py; the catch-up with the first
#: link: firstuse.CatchUpLater; sealed.py and its store with the sealing: sealterms.py;
#: invite.py with /connect or /invite: keeper.py).
LATE_MODULES = ("OpenSSL", "cryptography", "service_identity", _TLS, "urwid", "txtorcon",
                "platformdirs", "blake3", "msgspec", "p2pchat.files.transfers",
                "p2pchat.files.port", "p2pchat.files.stream", "p2pchat.files.receive",
                "p2pchat.files.ours", "p2pchat.files.hashing", "p2pchat.files.kept",
                "p2pchat.sealing", "p2pchat.carrier", "nacl.public", "nacl.signing",
                "p2pchat.onion", "p2pchat.handshake", "nacl.bindings", "nacl._sodium",
                "_cffi_backend", "p2pchat.notify", "p2pchat.files.offers", "p2pchat.syncing",
                "p2pchat.checking", "p2pchat.sealed", "p2pchat.sealstore", "p2pchat.invite")


def _factory(*args: Any, **kwargs: Any) -> Any:
    """``TLSMemoryBIOFactory(...)`` for ``_newtls.startTLS``: the TLS libraries are imported
    here, at the first link."""
    from twisted.protocols.tls import TLSMemoryBIOFactory

    return TLSMemoryBIOFactory(*args, **kwargs)


def defer_tls() -> bool:
    """Import Twisted's TCP transports and reactor base with their TLS factory imported at
    its first use; True if done, False where TLS is (or will be) loaded the usual way."""
    if any(name in sys.modules for name in _ALREADY):
        return False
    import twisted.protocols

    stub = types.ModuleType(_TLS)
    stub.TLSMemoryBIOFactory = _factory  # type: ignore[attr-defined]
    sys.modules[_TLS] = stub
    twisted.protocols.tls = stub  # type: ignore[attr-defined]
    try:
        try:
            import twisted.internet._newtls  # noqa: F401 (here, so its ImportError is seen)
        except ImportError:  # a _newtls that wants more than the factory: TLS at start
            sys.modules.pop(_NEWTLS, None)
            return False
        sys.modules[_SSL] = None  # type: ignore[assignment]  # posixbase's fallback: not needed
        import twisted.internet.posixbase  # noqa: F401 (imports tcp, which takes our _newtls)
    finally:
        if sys.modules.get(_SSL, 0) is None:
            del sys.modules[_SSL]
        if sys.modules.get(_TLS) is stub:
            del sys.modules[_TLS]
        if getattr(twisted.protocols, "tls", None) is stub:
            del twisted.protocols.tls  # type: ignore[attr-defined]
    return True



log = Logger()

#: What the first TLS link needs, imported by ``preload`` in a thread (Twisted's TLS layer,
#: pyOpenSSL, what identity.py makes its certificate and context with, and what the peer's
#: certificate is read with; msgspec, which the link's first line needs: wire.py; and
#: libsodium, which checks its lines: latesodium.py).
_LIBRARIES = ("twisted.protocols.tls", "OpenSSL.SSL", "cryptography.x509",
              "cryptography.x509.oid", "cryptography.hazmat.primitives.serialization",
              "cryptography.hazmat.primitives.asymmetric.ed25519", "msgspec.json",
              "nacl.bindings")
#: The links waiting for the import under way (None: none under way).
_waiters: list[Any] | None = None


def _import_all() -> tuple[float, float, float]:
    """Imports them; the wall, thread CPU and whole process CPU seconds it took (the --debug
    log says them: on a saturated machine the first link waits for this import, at a small
    share of a core)."""
    wall, cpu, proc = time.perf_counter(), time.thread_time(), time.process_time()
    for name in _LIBRARIES:
        __import__(name)  # (the import statement's way: ``-X importtime`` shows it)
    return time.perf_counter() - wall, time.thread_time() - cpu, time.process_time() - proc


def loaded() -> bool:
    """Whether the TLS libraries are in (at start where TLS couldn't be deferred, or since
    ``preload`` finished)."""
    return all(sys.modules.get(name) is not None for name in _LIBRARIES)


def soon(clock: Any) -> None:
    """A peer of ours (with TLS) was heard: a link is coming, so the TLS libraries are
    imported now (``preload``), while we listen (neighbours.py), not when its STARTTLS
    arrives: on the bench machine a newcomer's first link waited 2-4 s for that import (a
    room of 30 starting).  A peer alone hears no one and never imports them.  Only on the
    real reactor (``clock``: a test's task.Clock starts no thread); a failed import is told
    by the first link, which tries again."""
    if loaded() or _waiters is not None:
        return
    from twisted.internet import reactor

    if clock is reactor:
        preload().addErrback(lambda _: None)


def preload() -> Any:
    """A Deferred that fires once the TLS libraries are imported, in a thread: imported in
    the reactor's thread at the first link they held it 44-58 ms (the stall bench's idle and
    catch-up cases); in a thread the reactor goes on (its longest wait for the importing
    thread was 6.6 ms).  The first link's STARTTLS waits for it (mesh.py ``_do``); a peer
    alone never imports them.  A failed import fails the Deferred (the waiting link is
    dropped, as a TLS start that fails) and the next link tries again."""
    from twisted.internet import defer, reactor, threads

    global _waiters
    if loaded():
        return defer.succeed(None)
    waiting: Any = defer.Deferred()
    if _waiters is None:
        _waiters = []

        def done(result: object) -> None:
            global _waiters
            waiters, _waiters = _waiters or [], None
            for each in waiters:
                if isinstance(result, Failure):
                    each.errback(result)
                else:
                    each.callback(None)
            if isinstance(result, tuple):
                log.debug("TLS libraries imported in {wall:.3f} s ({cpu:.3f} s of CPU; the "
                          "process used {proc:.3f} s meanwhile)",
                          wall=result[0], cpu=result[1], proc=result[2])

        threads.deferToThreadPool(reactor, reactor.getThreadPool(),  # type: ignore[arg-type,attr-defined]
                                  _import_all).addBoth(done)
    _waiters.append(waiting)
    return waiting
