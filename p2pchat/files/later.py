"""The file transfers made at their first use, not at start: ``node.files`` stands for
``transfers.Transfers`` (with ``port.FilesService``, the file port) until a verb (/send,
/accept, ...), a file line from a link, or transfers kept from an earlier run at start need
it.  Their code (transfers, ours, kept, receive, stream, hashing, port: about 0.4 MB) is then
imported and the file port opened: an idle peer that never sees a file does without them.
Our offers carry the file port's number; it is open before the first one goes out (the
first /send makes the transfers, which open it at once).

``tests/test_files_later.py`` fails if an idle peer imports them, or if a file offered after
start doesn't go across.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable

from twisted.application.service import Service
from twisted.internet.defer import Deferred

from p2pchat.files.offers import FILES_DIR, KEPT_NAME
from p2pchat.interfaces import Outcome, TransferView

if TYPE_CHECKING:
    from p2pchat.files.port import FilesService
    from p2pchat.files.transfers import Transfers
    from p2pchat.node import Node
    from p2pchat.session import PeerSession

#: What only the real transfers hold: reading or setting any other attribute makes them.
_OWN = frozenset({"_node", "_real", "_config", "_made"})


class FilesLater:
    """``node.files``: the verbs of IFiles and what the node and the service call, passed
    to the real transfers once made (``real``); before that, nothing to pass on: no
    transfer, no offer of ours, nothing to say again to a new link."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._real: Transfers | None = None
        self._config: tuple[Any, ...] | None = None
        #: told the transfers when made (the file port's service starts them listening)
        self._made: list[Callable[[Transfers], None]] = []

    @property
    def real(self) -> Transfers:
        """The transfers, made (and configured, as the service asked) at the first need."""
        if self._real is None:
            from p2pchat.files.transfers import Transfers

            real = Transfers(self._node)
            if self._config is not None:
                real.configure(*self._config)
            self._real = real
            for tell in self._made:
                tell(real)
        return self._real

    def made(self) -> bool:
        return self._real is not None

    def when_made(self, tell: Callable[[Transfers], None]) -> None:
        """``tell(transfers)`` once they are made (at once if they are)."""
        if self._real is not None:
            tell(self._real)
        else:
            self._made.append(tell)

    def configure(self, download_dir: str, data_dir: str | None, max_size: int, reactor: Any,
                  interface: str | None, rate: float = 0.0) -> None:
        """Kept for when the transfers are made; made now if an earlier run left some."""
        self._config = (download_dir, data_dir, max_size, reactor, interface, rate)
        if self._real is not None:
            self._real.configure(*self._config)
        elif data_dir is not None and os.path.exists(os.path.join(data_dir, FILES_DIR, KEPT_NAME)):
            self.real  # noqa: B018 (made: their offers are said again at each link)

    # --- what the node calls ------------------------------------------------------------------

    def linked(self, link: PeerSession) -> None:
        if self._real is not None:  # (before: no offer of ours to say again)
            self._real.linked(link)

    def line(self, link: PeerSession, msg: Any) -> None:
        self.real.line(link, msg)

    def stop(self) -> None:
        if self._real is not None:
            self._real.stop()

    # --- IFiles ---------------------------------------------------------------------------------

    def send(self, target: str, path: str) -> Deferred[Outcome]:
        return self.real.send(target, path)

    def transfers(self) -> list[TransferView]:
        return self._real.transfers() if self._real is not None else []

    def accept(self, number: int | None) -> Outcome:
        return self.real.accept(number)

    def reject(self, number: int | None) -> Outcome:
        return self.real.reject(number)

    def cancel(self, number: int) -> Outcome:
        return self.real.cancel(number)

    # --- anything else (tests, the file port): the real transfers' -------------------------

    def __getattr__(self, name: str) -> Any:
        if name in _OWN:
            raise AttributeError(name)
        return getattr(self.real, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self.real, name, value)


class FilesLaterService(Service):
    """The file port's service (``port.FilesService``), started once the transfers are
    made: at once if they are at start, else at their first use."""

    def __init__(self, files: FilesLater, reactor: Any, interface: str | None) -> None:
        self.files = files
        self.reactor = reactor
        self.interface = interface
        self.port: FilesService | None = None

    def startService(self) -> None:
        super().startService()
        self.files.when_made(self._start)

    def _start(self, real: Transfers) -> None:
        if not self.running or self.port is not None:
            return
        from p2pchat.files.port import FilesService

        self.port = FilesService(real, self.reactor, self.interface)
        self.port.startService()

    def stopService(self) -> None:
        super().stopService()
        if self.port is not None:
            self.port.stopService()
            self.port = None
