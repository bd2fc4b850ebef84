"""Peers whose lines you don't want to see (/ignore), kept in the data dir.

A peer is ignored by its key: a peer of ours has a peer id that its key gives (and that is
checked on every link), so its lines, live, caught up or handed on by others, are known by
their sender id.  A base peer has no key: it is ignored by the peer id it gives.  The file
(``ignored.json``, 0600, written atomically) maps peer ids to the key and the nick it had."""

from __future__ import annotations

import json
import os

from twisted.logger import Logger

from p2pchat.identity import _write_private

log = Logger()

IGNORED_NAME = "ignored.json"
#: Peers ignored at most.
MAX_IGNORED = 1000


class Ignores:
    def __init__(self, path: str | None) -> None:
        self.path = path
        #: peer id -> (key fingerprint, or "" for a base peer; nick when ignored)
        self._by_id: dict[str, tuple[str, str]] = {}
        if path and os.path.exists(path):
            try:
                with open(path, encoding="utf-8") as f:
                    data = dict(json.load(f))
                for peer_id, value in list(data.items())[:MAX_IGNORED]:
                    value = dict(value)
                    self._by_id[str(peer_id)] = (str(value.get("fp", "")),
                                                 str(value.get("nick", "")))
            except (OSError, ValueError, TypeError) as e:
                log.error("can't read the ignored peers in {path} ({why}): ignoring none",
                          path=path, why=str(e))

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)

    def add(self, peer_id: str, fp: str, nick: str) -> str | None:
        """Ignore a peer; returns why not, or None."""
        if peer_id in self._by_id:
            return f"{nick} is already ignored"
        if len(self._by_id) >= MAX_IGNORED:
            return f"{MAX_IGNORED} peers are ignored already; /unignore one first"
        self._by_id[peer_id] = (fp, nick)
        self._write()
        return None

    def find(self, text: str) -> str | None:
        """The ignored peer id that ``text`` names: a peer id, or the nick it had."""
        if text in self._by_id:
            return text
        for peer_id, (_, nick) in self._by_id.items():
            if nick == text:
                return peer_id
        return None

    def remove(self, peer_id: str) -> tuple[str, str] | None:
        entry = self._by_id.pop(peer_id, None)
        if entry is not None:
            self._write()
        return entry

    def entries(self) -> list[tuple[str, str, str]]:
        """(nick, peer id, fingerprint) of every ignored peer, by nick."""
        return sorted((nick, peer_id, fp) for peer_id, (fp, nick) in self._by_id.items())

    def _write(self) -> None:
        if not self.path:
            return
        data = {peer_id: {"fp": fp, "nick": nick} for peer_id, (fp, nick) in self._by_id.items()}
        try:
            _write_private(self.path, json.dumps(data, indent=1, sort_keys=True).encode())
        except OSError as e:
            log.error("can't save the ignored peers in {path}: {why}", path=self.path,
                      why=str(e))
