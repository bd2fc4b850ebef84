"""The file port: the TCP listener for transfer connections, beside the chat's listener, on
the same interface (any free port; offers carry its number, so a restart may change it).
The reactor only accepts; each connection runs in a thread of its own (stream.py)."""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.logger import Logger

from p2pchat.files.stream import Acceptor
from p2pchat.files.transfers import Transfers

log = Logger()


class FilesService(Service):
    """Listens for transfer connections while the peer runs; at stop, saves the transfers'
    state and cuts their connections (their threads end at once)."""

    def __init__(self, files: Transfers, reactor: Any, interface: str | None) -> None:
        self.files = files
        self.reactor = reactor
        self.interface = interface
        self.listener: Acceptor | None = None

    def startService(self) -> None:
        super().startService()
        self.files.save_in_thread = True
        try:
            self.listener = Acceptor(self.files, self.reactor, self.interface or "",
                                     self.files.serving)
        except OSError as e:
            log.warn("no file port ({why}): files can't be sent", why=e.strerror or str(e))
            return
        self.listener.start()
        self.files.port = self.listener.port
        log.info("file port {port}", port=self.files.port)

    def stopService(self) -> None:
        super().stopService()
        self.files.stop()
        if self.listener is not None:
            self.listener.stop()
            self.listener = None
