"""TLS loaded at the first link, not at start: an idle peer alone does not hold pyOpenSSL,
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
import types
from typing import Any

_NEWTLS = "twisted.internet._newtls"
_TLS = "twisted.protocols.tls"
_SSL = "twisted.internet.ssl"
#: Imported already: too late to defer TLS.
_ALREADY = (_NEWTLS, _TLS, _SSL, "twisted.internet.tcp", "twisted.internet.posixbase", "OpenSSL")
#: What an idle peer alone must not hold (tests/test_latetls.py): they come with a link, the
#: console face, or --tor.
LATE_MODULES = ("OpenSSL", "cryptography", "service_identity", _TLS, "urwid", "txtorcon")


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

