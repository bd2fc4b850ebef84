"""The console on the terminal: ``ConsoleService`` gives the screen to a ConsoleFace while
twistd runs, on the reactor (``urwid.TwistedEventLoop``, no threads), and redraws once per
reactor turn."""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Mapping

import urwid
import urwid.display.raw
from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from p2pchat import logs
from p2pchat.console.app import ConsoleFace
from p2pchat.console.format import PALETTE
from p2pchat.interfaces import IChat
from p2pchat.notify import Desktop, Notifier, NotifyConfig, sequences

log = Logger()

#: The keys urwid makes of the terminal's focus reports.
FOCUS_KEYS = ("focus in", "focus out")
#: How often (seconds) the peer list is refreshed even without news: "stale" comes with time.
PEER_REFRESH = 2.0


class ConsoleService(Service):
    """Gives the terminal to a ConsoleFace while the service runs.

    ``screen`` is for tests (a fake screen); by default the real terminal, named explicitly
    because under twistd ``sys.stdout`` is the log file."""

    def __init__(self, node: IChat, reactor: Any, data_dir: str, on_quit: Callable[[], object],
                 screen: Any = None, notify: NotifyConfig | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        """``on_quit``: what /quit and Ctrl-C do (the service stops the reactor);
        ``notify``: how lines worth it are told (--notify); ``env``: for tests ($TMUX, the
        desktop session), else the process's."""
        self.node = node
        self._on_quit = on_quit
        self.reactor = reactor
        self.data_dir = data_dir
        self._screen = screen
        self.face: ConsoleFace | None = None
        self.loop: urwid.MainLoop | None = None
        self._redraw_call = None
        self._peer_refresh: LoopingCall | None = None
        self.env = dict(os.environ if env is None else env)
        self.notifier = Notifier(notify)
        self.desktop: Desktop | None = None

    def startService(self) -> None:
        super().startService()
        screen = self._screen
        if screen is None:
            # Bracketed paste on (ESC[?2004h at start, ESC[?2004l at stop): a paste comes as
            # 'begin paste' ... 'end paste' keys, so the console can ask before sending it.
            # Focus reporting on too (ESC[?1004h, off at stop): urwid 5.1 turns ESC[I and
            # ESC[O into 'focus in' and 'focus out' keys (display/escape.py).
            screen = urwid.display.raw.Screen(input=sys.__stdin__,  # type: ignore[arg-type]
                                              output=sys.__stdout__,  # type: ignore[arg-type]
                                              bracketed_paste_mode=True,
                                              focus_reporting=True)
        if "desktop" in self.notifier.config.outputs:
            self.desktop = Desktop(self.reactor, self.env)
        self.face = ConsoleFace(self.node, on_quit=self._on_quit, clock=self.reactor,
                                log_path=logs.log_path(), changed=self.request_redraw,
                                alert=self._alert, notifier=self.notifier)
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
        for key in keys:
            if key in FOCUS_KEYS:
                self.notifier.focused = key == "focus in"
        keys = [k for k in keys if k not in FOCUS_KEYS]
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

    def _alert(self, title: str, body: str) -> None:
        """Tell the user of a line (``title``, ``body``: cleaned by notify.py): the terminal
        sequences --notify chose (through tmux's passthrough inside tmux), and notify-send."""
        written = sequences(self.notifier.config.outputs, title, body,
                            tmux=bool(self.env.get("TMUX")))
        screen = self.loop.screen if self.loop is not None else None
        try:
            if written and screen is not None and hasattr(screen, "write"):
                screen.write(written)
                screen.flush()  # type: ignore[attr-defined]
        except Exception:
            log.failure("notification to the terminal failed")
        if self.desktop is not None:
            self.desktop.send(title, body)

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
