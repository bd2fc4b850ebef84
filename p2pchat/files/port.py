"""The file port: the TCP listener for transfer connections, beside the chat's listener, on
the same interface (any free port; offers carry its number, so a restart may change it)."""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet import error
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger

from p2pchat.files.transfers import Transfers

log = Logger()


class FilesService(Service):
    """Listens for transfer connections while the peer runs; at stop, saves the transfers'
    state and closes their connections."""

    def __init__(self, files: Transfers, reactor: Any, interface: str | None) -> None:
        self.files = files
        self.reactor = reactor
        self.interface = interface
        self.listener: IListeningPort | None = None

    def startService(self) -> None:
        super().startService()
        self.files.save_in_thread = True
        try:
            self.listener = self.reactor.listenTCP(0, self.files.serving,
                                                   interface=self.interface or "")
        except error.CannotListenError as e:
            log.warn("no file port ({why}): files can't be sent", why=str(e.socketError))
            return
        assert self.listener is not None
        self.files.port = getattr(self.listener.getHost(), "port", 0)
        if isinstance(self.listener.getHost(), IPv4Address):
            log.info("file port {port}", port=self.files.port)

    def stopService(self) -> None:
        super().stopService()
        self.files.stop()
        if self.listener is not None:
            self.listener.stopListening()
            self.listener = None
