"""Your nick kept across restarts: the last one you took (``--username`` or ``/nick``) is
written to ``nick`` in the data dir, and used at the next start when ``--username`` is not
given.  An explicit ``--username`` wins (and is kept in turn)."""

from __future__ import annotations

import os

from twisted.logger import Logger

from p2pchat import events
from p2pchat.identity import _write_private
from p2pchat.wire import MAX_NICK_CHARS, nick_problem

log = Logger()

NICK_NAME = "nick"


def saved_nick(data_dir: str) -> str | None:
    """The nick kept in ``data_dir``, or None (none kept, unreadable, or not a valid nick)."""
    path = os.path.join(data_dir, NICK_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            nick = f.read(4 * MAX_NICK_CHARS + 8).strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        log.warn("can't read the nick kept in {path}: {why}", path=path, why=str(e))
        return None
    problem = nick_problem(nick)
    if problem:
        log.warn("the nick kept in {path} is not usable ({why}): not used", path=path,
                 why=problem)
        return None
    return nick


def keep_nick(data_dir: str, nick: str) -> None:
    path = os.path.join(data_dir, NICK_NAME)
    try:
        _write_private(path, nick.encode("utf-8") + b"\n")
    except OSError as e:
        log.error("can't keep the nick in {path}: {why}", path=path, why=str(e))


def start_nick(data_dir: str, given: str | None, default: str) -> str:
    """The nick to start with: ``given`` (``--username``) if any, else the kept one, else
    ``default``.  The result is kept."""
    nick = given if given is not None else saved_nick(data_dir) or default
    if nick != saved_nick(data_dir):
        keep_nick(data_dir, nick)
    return nick


class NickKeeper:
    """An observer of the node: each /nick of ours (from any face) is written down."""

    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir

    def __call__(self, event: events.Event) -> None:
        if isinstance(event, events.NickChanged) and event.own:
            keep_nick(self.data_dir, event.new)

    def chat_lines(self, lines: list[events.ChatLine]) -> None:
        """A run of lines heard together (reading.emit_each): none renames us."""
