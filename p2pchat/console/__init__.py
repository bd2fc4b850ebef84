"""The full-screen urwid console face (``--ui console``, the default on a terminal).

``ConsoleService`` runs it on twistd's reactor; ``ConsoleFace`` is the screen-free part that
tests drive.  Layout, keys and commands are described in README.rst, "The console".
"""

from __future__ import annotations

from p2pchat.console.app import ConsoleFace
from p2pchat.console.terminal import ConsoleService

__all__ = ["ConsoleFace", "ConsoleService"]
