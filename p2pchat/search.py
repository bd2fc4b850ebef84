"""/search over the history: what the user typed, parsed into words and filters, and how a
SQLite file or the lines in memory are searched for it.

The SQLite history keeps a full-text index (FTS5) in a table of its own, ``lines_fts`` (its
rowid is the line's rowid), kept in step with the lines (index.py): a line's entry is
written a moment after its commit, in steps (a search first writes those that wait), and
deleted with it by a trigger (pruning).  It is a
contentless FTS5 table (no copy of the text: the file grows by the index alone), not an
external-content one over ``lines``, because lines kept to hand on are stored as their
signed bytes only (``text`` is empty): the triggers index the text read from those bytes
(SQL's json functions), which ``lines.text`` could not give FTS5 back.  Where the sqlite3
build lacks FTS5, a search scans the lines with LIKE (slower, same answers, but a word
matches inside a longer one, where FTS5 matches whole words).

Each word is quoted as an FTS5 string (``"it""s"``), so no text the user types is FTS5
syntax (``"``, ``*``, ``NEAR(``, ``-``, ``AND``): a query can't fail to parse.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from p2pchat.interfaces import SearchHit, StoredLine

#: The most hits one /search answers (the newest).
SEARCH_MAX_HITS = 50
#: Characters of a line indexed (the longest line our peers say, MAX_SAY_BYTES, fits):
#: words past them in a base peer's longer line are not found (with FTS5), and the index of
#: a flood of huge lines stays small beside the lines themselves.
SEARCH_INDEX_CHARS = 4000
#: Lines indexed per reactor turn when an existing file is indexed on upgrade, and the time
#: (seconds) past which a step is logged as slow (2,000 lines take about 10 ms).
INDEX_STEP = 2000
INDEX_STEP_SECONDS = 0.03
#: The most words (and filters) one query may have, and the longest query (characters).
MAX_QUERY_WORDS = 20
MAX_QUERY_CHARS = 400

USAGE = ("usage: /search WORDS [from:NICK] [in:#ROOM] [before:YYYY-MM-DD] "
         "[after:YYYY-MM-DD]")

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Query:
    """A parsed /search: every word must be in the line (any case); the filters narrow it.
    ``before``/``after`` are times (seconds): lines said before ``before``, at or after
    ``after``."""

    words: tuple[str, ...] = ()
    nick: str = ""
    room: str = ""
    before: float | None = None
    after: float | None = None
    #: the conversations ``room`` names (a room, or ``@peer_id``), set by the chat
    rooms: tuple[str, ...] = field(default=())
    #: authors left out (the ignored), set by the chat
    skip: tuple[str, ...] = field(default=())


def day_start(text: str) -> float | None:
    """The start of a day YYYY-MM-DD in local time (the time zone the faces stamp lines in),
    or None if it is no date."""
    if not _DATE.match(text):
        return None
    try:
        return time.mktime(time.strptime(text, "%Y-%m-%d"))
    except (ValueError, OverflowError):
        return None


def parse_query(text: str) -> Query | str:
    """What the user typed after /search, or why it can't be searched (a text to show).
    ``before:DATE`` takes lines said before that day began, ``after:DATE`` those said after
    that day ended (both local time)."""
    if len(text) > MAX_QUERY_CHARS:
        return f"that search is {len(text)} characters; the most is {MAX_QUERY_CHARS}"
    parts = text.split()
    if len(parts) > MAX_QUERY_WORDS:
        return f"that search has {len(parts)} words; the most is {MAX_QUERY_WORDS}"
    words: list[str] = []
    nick = room = ""
    before = after = None
    for part in parts:
        key, colon, value = part.partition(":")
        key = key.lower()
        if colon and key in ("from", "in", "before", "after") and value:
            if key == "from":
                nick = value
            elif key == "in":
                room = value
            else:
                start = day_start(value)
                if start is None:
                    return f"{key}:{value} is not a date; dates are YYYY-MM-DD (local time)"
                if key == "before":
                    before = start
                else:  # after the whole day: from the start of the next one
                    after = day_start(time.strftime(
                        "%Y-%m-%d", time.localtime(start + 36 * 3600))) or start + 86400
        else:
            words.append(part)
    if not words and not (nick or room or before is not None or after is not None):
        return USAGE
    return Query(tuple(words), nick, room, before, after)


def fts_text(words: Iterable[str]) -> str:
    """The words as an FTS5 query: each one an FTS5 string (quotes doubled), all required."""
    return " ".join('"' + word.replace('"', '""') + '"' for word in words)


def _like(word: str) -> str:
    return "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def search_db(db: sqlite3.Connection, query: Query, fts: bool,
              limit: int = SEARCH_MAX_HITS,
              text_of: Callable[[str, bytes | None], str] = lambda text, raw: text
              ) -> list[SearchHit]:
    """The newest ``limit`` lines of a history file that match, newest first.  ``fts``: use
    the index (lines_fts), else LIKE over each line's text (``shown(text, raw)``, a function
    the caller registered on ``db``).  Raises sqlite3.Error as it comes."""
    where: list[str] = []
    args: list[object] = []
    source = "lines l"
    words = [w for w in query.words if w.strip('"')] if fts else list(query.words)
    if fts and words:
        source = "lines_fts f join lines l on l.rowid = f.rowid"
        where.append("lines_fts match ?")
        args.append(fts_text(words))
    else:
        for word in words:
            where.append("shown(l.text, l.raw) like ? escape '\\'")
            args.append(_like(word))
    if query.nick:
        where.append("l.nick = ? collate nocase")
        args.append(query.nick)
    if query.rooms:
        where.append(f"l.room in ({','.join('?' * len(query.rooms))})")
        args.extend(query.rooms)
    if query.skip:
        where.append(f"l.sender_id not in ({','.join('?' * len(query.skip))})")
        args.extend(query.skip)
    if query.before is not None:
        where.append("l.ts < ?")
        args.append(query.before)
    if query.after is not None:
        where.append("l.ts >= ?")
        args.append(query.after)
    sql = (f"select l.id, l.room, l.nick, l.text, l.raw, l.action, l.ts from {source} "
           f"{'where ' + ' and '.join(where) if where else ''} "
           f"order by l.ts desc, l.rowid desc limit ?")
    args.append(limit)
    return [SearchHit(row[0], row[1], row[2], text_of(row[3], row[4]), bool(row[5]), row[6])
            for row in db.execute(sql, args)]


def search_lines(lines: Iterable[StoredLine], query: Query,
                 limit: int = SEARCH_MAX_HITS) -> list[SearchHit]:
    """The same search over lines in memory (MemoryHistory), newest first."""
    words = [w.lower() for w in query.words]
    hits = []
    for line in lines:
        text = line.text.lower()
        if not all(word in text for word in words):
            continue
        if query.nick and line.nick.lower() != query.nick.lower():
            continue
        if query.rooms and line.room not in query.rooms:
            continue
        if line.sender_id in query.skip:
            continue
        if query.before is not None and not line.when < query.before:
            continue
        if query.after is not None and not line.when >= query.after:
            continue
        hits.append(SearchHit(line.id, line.room, line.nick, line.text, line.action,
                              line.when))
    hits.sort(key=lambda hit: hit.when, reverse=True)
    return hits[:limit]


def has_fts5() -> bool:
    """Whether this sqlite3 build has FTS5."""
    try:
        db = sqlite3.connect(":memory:")
        try:
            db.execute("create virtual table t using fts5(x)")
        finally:
            db.close()
    except sqlite3.Error:
        return False
    return True
