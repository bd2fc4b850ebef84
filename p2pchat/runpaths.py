"""The Merkle paths of run-signed lines (runsig.py), rebuilt when the lines are handed on.

A packed run-signed line keeps its run's signature, index and count, not its path
(packing.py): the path is what the run's other lines hash to, and those lines are the
author's rows next to it (a run's lines have one sequence after the other: saying.py numbers
them so), with the same signature.  Handing a line on, the store gives its rows here; a run
whose rows are not all among them is completed by ONE query over the run's sequences (a run
cut by the ``after`` or ``limit`` of ``Store.relayable_after``, or by its time bound).  The
rebuilt root is checked against the run's signature (once per run, runsig's cache) before
any of its lines goes: a run with a row missing (pruned by retention, a line we never had)
or a row that doesn't fit can't be proven, so its packed lines are left out of the hand-on,
with one log line per run; lines kept as they came (signed alone, or not packed) go as they
are.  A rebuilt path is the author's own (a second one to the same root is a second preimage:
runsig.py), so the bytes handed on are the very ones the author wrote.
"""

from __future__ import annotations

import base64
import json
from collections import OrderedDict
from typing import Any, Callable, Iterable, Sequence

from twisted.logger import Logger

from p2pchat.packing import encode, is_packed, run_place, unpack, unpacked
from p2pchat.relay import _author_key, _raw_payload
from p2pchat.retention import SEQ_SHIFT
from p2pchat.runsig import _run_signed, _tree, is_run_raw, leaf, run_message

log = Logger()

#: A row as the store reads it: sequence (as on the wire), raw, pk, id, room, nick, text, ts.
Row = list[Any]
#: What the store's queries give (a cursor of its rows, sequences as stored).
Rows = Iterable[Sequence[Any]]
#: Runs told as unprovable, remembered so that each is told once (at most this many).
TOLD_KEPT = 1024
#: A call that finds only unprovable lines looks this many steps of ``limit`` further (so
#: a hand-on goes on past them), no more (so it stays bounded).
SKIP_STEPS = 4

_told: OrderedDict[bytes, None] = OrderedDict()


def hand_on(author: str, key: str, limit: int, after: int, fetch: Callable[[int], Rows],
            fetch_run: Callable[[int, int], Rows]) -> list[tuple[int, bytes, str]]:
    """(sequence, raw line, author key) of the lines to hand on: ``fetch(after)`` gives up
    to ``limit`` rows after ``after`` (oldest first), ``fetch_run(first, last)`` the author's
    rows of sequences ``first`` to ``last`` (the store's rows: sequences as stored,
    SEQ_SHIFT).  A step whose lines are all unprovable is followed by the next, SKIP_STEPS
    at most."""

    def run_rows(first: int, last: int) -> list[Row]:
        return _rows(fetch_run(max(first, 0), min(last, SEQ_SHIFT * 2 - 1)))

    for _ in range(SKIP_STEPS + 1):
        rows = _rows(fetch(after))
        out = _hand_on_rows(author, key, rows, run_rows)
        if out or len(rows) < limit:
            return out
        after = rows[-1][0]
    return []


def _rows(cursor: Rows) -> list[Row]:
    return [[r[0] + SEQ_SHIFT, bytes(r[1]), *r[2:]] for r in cursor]


def _hand_on_rows(author: str, key: str, rows: list[Row],
                  run_rows: Callable[[int, int], list[Row]]) -> list[tuple[int, bytes, str]]:
    runs: dict[tuple[bytes, int], dict[int, Row]] = {}  # (signature, count): index -> row
    for row in rows:
        raw = row[1]
        place = run_place(raw) if raw[:1] == b"\x02" else None
        if place is not None:
            runs.setdefault((place[0], place[2]), {})[place[1]] = row
    if not runs:
        return [(seq, _plain(author, seq, raw, rest), pk or key)
                for seq, raw, pk, *rest in rows]
    paths: dict[int, bytes] = {}
    objs: dict[int, dict[str, Any]] = {}  # the rows' lines, made once for leaf and bytes
    for run, mine in runs.items():
        paths.update(_paths(author, key, run, mine, rows, run_rows, objs))
    out = []
    b64 = base64.b64encode
    for row in rows:
        seq, raw, pk, message_id, room, nick, text, when = row
        if raw[:1] == b"\x02":
            path = paths.get(id(row))
            if path is None:
                continue
            obj = objs.get(id(row))
            if obj is None:
                raw = unpack(message_id, room, author, nick, text, when, seq, raw, path)
            else:
                obj["metadata"]["path"] = b64(path).decode("ascii")
                raw = encode(obj)
        else:
            raw = _plain(author, seq, raw, row[3:])
        out.append((seq, raw, pk or key))
    return out


def _plain(author: str, seq: int, raw: bytes, rest: Sequence[Any]) -> bytes:
    if not is_packed(raw):
        return raw
    message_id, room, nick, text, when = rest
    return unpack(message_id, room, author, nick, text, when, seq, raw)


def _paths(author: str, key: str, run: tuple[bytes, int], mine: dict[int, Row],
           rows: list[Row], run_rows: Callable[[int, int], list[Row]],
           objs: dict[int, dict[str, Any]]) -> dict[int, bytes]:
    """Each of ``mine`` (the rows of ``run`` in this step, by index) to its path, by the
    row's id(); {} when the run can't be proven (told once).  The lines made of ``rows``
    go in ``objs``."""
    signature, count = run
    leaves: dict[int, bytes] = {}
    _leaves(author, run, rows, leaves, objs)
    if len(leaves) < count:
        first = min(row[0] - index for index, row in mine.items())
        _leaves(author, run, run_rows(first, first + count - 1), leaves)
    if len(leaves) == count and set(leaves) == set(range(count)):
        root, paths = _tree([leaves[i] for i in range(count)])
        try:
            good = _run_signed(_author_key(mine[min(mine)][2] or key)[0], signature,
                               run_message(count, root))
        except ValueError:
            good = False
        if good:
            return {id(row): b"".join(paths[index]) for index, row in mine.items()}
        why = "its rows don't make the root its author signed"
    else:
        why = f"{count - len(leaves)} of its {count} lines are not kept"
    if signature not in _told:
        _told[signature] = None
        if len(_told) > TOLD_KEPT:
            _told.popitem(last=False)
        seqs = [row[0] for row in mine.values()]
        log.warn("not handing on {n} lines of {author} (sequences {first} to {last}): their "
                 "run can't be proven: {why}", n=len(seqs), author=author, first=min(seqs),
                 last=max(seqs), why=why)
    return {}


def _leaves(author: str, run: tuple[bytes, int], rows: list[Row], leaves: dict[int, bytes],
            objs: dict[int, dict[str, Any]] | None = None) -> None:
    """The leaves of ``run`` among ``rows`` (packed or as they came), into ``leaves``; the
    packed ones' lines into ``objs`` (by the row's id()) if given."""
    signature, count = run
    sig_text: str | None = None
    for row in rows:
        seq, raw, _pk, message_id, room, nick, text, when = row
        if raw[:1] == b"\x02":
            place = run_place(raw)
            if place is None or place[0] != signature or place[2] != count:
                continue
            index = place[1]
            if index in leaves:
                continue
            obj = unpacked(message_id, room, author, nick, text, when, seq, raw)
            if objs is not None:
                objs[id(row)] = obj
        elif is_run_raw(raw):
            try:
                obj = json.loads(raw)
                meta = obj["metadata"]
                if sig_text is None:
                    sig_text = base64.b64encode(signature).decode("ascii")
                if meta["sig"] != sig_text or meta["run"][1] != count:
                    continue
                index = meta["run"][0]
            except (ValueError, TypeError, KeyError, IndexError):
                continue
            if index.__class__ is not int or not 0 <= index < count or index in leaves:
                continue
        else:
            continue
        try:
            leaves[index] = leaf(_raw_payload(obj))
        except (ValueError, TypeError):
            continue

