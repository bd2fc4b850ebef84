"""The console on the terminal: ``ConsoleService`` gives the screen to a ConsoleFace while
twistd runs, on the reactor (``urwid.TwistedEventLoop``, no threads), and redraws once per
reactor turn."""

from __future__ import annotations

import sys
from typing import Any, Callable

import urwid
import urwid.display.raw
from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from p2pchat import logs
from p2pchat.console.app import ConsoleFace
from p2pchat.console.format import PALETTE
from p2pchat.interfaces import IChat

log = Logger()

#: How often (seconds) the peer list is refreshed even without news: "stale" comes with time.
PEER_REFRESH = 2.0


class ConsoleService(Service):
    """Gives the terminal to a ConsoleFace while the service runs.

    ``screen`` is for tests (a fake screen); by default the real terminal, named explicitly
    because under twistd ``sys.stdout`` is the log file."""

    def __init__(self, node: IChat, reactor: Any, data_dir: str, on_quit: Callable[[], object],
                 screen: Any = None) -> None:
        """``on_quit``: what /quit and Ctrl-C do (the service stops the reactor)."""
        self.node = node
        self._on_quit = on_quit
        self.reactor = reactor
        self.data_dir = data_dir
        self._screen = screen
        self.face: ConsoleFace | None = None
        self.loop: urwid.MainLoop | None = None
        self._redraw_call = None
        self._peer_refresh: LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        screen = self._screen
        if screen is None:
            # Bracketed paste on (ESC[?2004h at start, ESC[?2004l at stop): a paste comes as
            # 'begin paste' ... 'end paste' keys, so the console can ask before sending it.
            screen = urwid.display.raw.Screen(input=sys.__stdin__,  # type: ignore[arg-type]
                                              output=sys.__stdout__,  # type: ignore[arg-type]
                                              bracketed_paste_mode=True)
        self.face = ConsoleFace(self.node, on_quit=self._on_quit, clock=self.reactor,
                                bell=self._bell, log_path=logs.log_path(),
                                changed=self.request_redraw)
        self.loop = urwid.MainLoop(
            self.face.widget, PALETTE, screen=screen,
            event_loop=urwid.TwistedEventLoop(reactor=self.reactor, manage_reactor=False),
            handle_mouse=True, unhandled_input=self.face.unhandled_input,
            input_filter=self._input_filter)
        self.loop.start()
        if hasattr(screen, "tty_signal_keys"):
            # Ctrl-C as a key ('ctrl c'), so it leaves as /quit does; urwid restores it on stop.
            screen.tty_signal_keys(intr="undefined")
        self.face.attach()
        self._peer_refresh = LoopingCall(self._refresh_peers)
        self._peer_refresh.clock = self.reactor
        self._peer_refresh.start(PEER_REFRESH, now=False)

    def _input_filter(self, keys: list, raw: list) -> list:
        """Every read of keys goes to the face in one piece (not key by key through the
        widgets); mouse events and resizes go on to urwid."""
        if self.face is None or self.loop is None:
            return keys
        size = self.loop.screen_size or self.loop.screen.get_cols_rows()
        typed = [k for k in keys if isinstance(k, str) and k != "window resize"]
        rest = [k for k in keys if not isinstance(k, str) or k == "window resize"]
        for key in self.face.take_keys(typed, size):
            if key == "ctrl l":
                self.loop.screen.clear()  # redraw it all
        return rest

    def _refresh_peers(self) -> None:
        if self.face is not None:
            self.face.refresh_peers()
            self.request_redraw()

    def request_redraw(self) -> None:
        """Redraw once this reactor turn is over, however many events came in it."""
        if self.loop is not None and self._redraw_call is None:
            self._redraw_call = self.reactor.callLater(0, self._redraw)

    def _redraw(self) -> None:
        self._redraw_call = None
        if self.loop is None:
            return
        try:
            self.loop.draw_screen()
        except Exception:
            log.failure("console redraw failed")

    def _bell(self) -> None:
        """Ring the terminal bell: a mention."""
        screen = self.loop.screen if self.loop is not None else None
        try:
            if screen is not None and hasattr(screen, "write"):
                screen.write("\a")
                screen.flush()  # type: ignore[attr-defined]
        except Exception:
            log.failure("bell failed")

    def stopService(self) -> None:
        super().stopService()
        if self._peer_refresh is not None and self._peer_refresh.running:
            self._peer_refresh.stop()
        self._peer_refresh = None
        if self._redraw_call is not None and self._redraw_call.active():
            self._redraw_call.cancel()
        self._redraw_call = None
        if self.face is not None:
            self.face.detach()
            self.face.stop_paste()
        loop, self.loop = self.loop, None
        if loop is not None:
            try:
                loop.stop()  # restores the terminal
            except Exception:
                log.failure("console stop failed")
