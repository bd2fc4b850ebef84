"""Tab completion of the word before the cursor: a command (``/j`` → ``/join``), a room
(``#o`` → ``#ops``) or a nick, anywhere in the line.

Pure code: the input line asks for the candidates once and cycles through them on each Tab
(irssi's way), so this only has to list them, best first.
"""

from __future__ import annotations

from typing import Iterable

#: What a nick completed at the very start of the line gets: addressing someone ("bob: ").
ADDRESS_SUFFIX = ": "


def candidates(text: str, pos: int, commands: Iterable[str], rooms: Iterable[str],
               nicks: Iterable[str]) -> list[tuple[str, int]]:
    """Each way to complete the word that ends at ``pos``, as (new text, new cursor).

    ``commands`` are names without the slash, ``rooms`` without the ``#``.  The word is what
    follows the last space before the cursor.  ``/x`` at the start of the line completes a
    command, ``#x`` a room, anything else a nick (case-insensitive, sorted the same way).  A
    completed word gets a space after it (a nick at the start of the line ``": "``), unless
    the text after the cursor already starts with one.  Nothing to complete: ``[]``."""
    start = text.rfind(" ", 0, pos) + 1
    word = text[start:pos]
    if not word:
        return []
    if word.startswith("/"):
        if start != 0 or word.startswith("//"):
            return []
        names = [f"/{c}" for c in _matching(commands, word[1:])]
        suffix = " "
    elif word.startswith("#"):
        names = [f"#{r}" for r in _matching(rooms, word[1:])]
        suffix = " "
    else:
        names = _matching(nicks, word)
        suffix = ADDRESS_SUFFIX if start == 0 else " "
    rest = text[pos:]
    if rest.startswith(" "):
        suffix = suffix.rstrip(" ")
    return [(text[:start] + name + suffix + rest, start + len(name) + len(suffix))
            for name in names]


def _matching(names: Iterable[str], prefix: str) -> list[str]:
    """The names that start with ``prefix`` (case-insensitive), once each, sorted so."""
    low = prefix.lower()
    return sorted({n for n in names if n.lower().startswith(low)}, key=lambda n: (n.lower(), n))
