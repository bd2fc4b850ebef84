"""The file transfers made at their first use, not at start: ``node.files`` stands for
``transfers.Transfers`` (with ``port.FilesService``, the file port) until a verb (/send,
/accept, ...), a file line from a link, or transfers kept from an earlier run at start need
it.  Their code (transfers, ours, kept, receive, stream, hashing, port: about 0.4 MB) is then
imported and the file port opened: an idle peer that never sees a file does without them.
Our offers carry the file port's number; it is open before the first one goes out (the
first /send makes the transfers, which open it at once).

``tests/test_firstuse.py`` fails if an idle peer imports them, or if a file offered after
start doesn't go across.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred

from p2pchat.files.terms import FILES_DIR, KEPT_NAME
from p2pchat.firstuse import FirstUse
from p2pchat.interfaces import Outcome, TransferView

if TYPE_CHECKING:
    from p2pchat.files.port import FilesService
    from p2pchat.files.transfers import Transfers
    from p2pchat.node import Node
    from p2pchat.session import PeerSession


class FilesLater(FirstUse["Transfers"]):
    """``node.files``: the verbs of IFiles and what the node and the service call, passed
    to the real transfers once made (``real``); before that, nothing to pass on: no
    transfer, no offer of ours, nothing to say again to a new link."""

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self._config: tuple[Any, ...] | None = None

    def make(self) -> Transfers:
        """The transfers, configured as the service asked."""
        from p2pchat.files.transfers import Transfers

        real = Transfers(self._node)
        if self._config is not None:
            real.configure(*self._config)
        return real

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
