"""Errors the whole program shares, and stopping the reactor: one module below every face and
every service, so the faces need nothing from service.py (which imports them)."""

from __future__ import annotations

from typing import Any

from twisted.internet import error


class StartError(Exception):
    """The node can't start (a port in use, no multicast); the text is for the user."""


def stop_reactor(reactor: Any) -> None:
    """Stop the reactor once, however many faces ask (a second stop is not an error)."""
    try:
        reactor.stop()
    except error.ReactorNotRunning:
        pass
