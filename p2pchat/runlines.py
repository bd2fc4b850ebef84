"""The lines of one run said at once (saying.py), written from one template.

Every line of a run shares its author, nick, room, kind and moment (the lines of one read
are said together: one time stamp for all of them, as one ``seconds()``), so what encodes
them is made once per run: those fields are encoded once, and a line's signed payload and
its bytes are each the template's parts joined around what is its own (its id, its
content, its sequence, its signature's metadata).  Byte for byte what
``relay.line_payload`` and ``wire.encode_message`` write for the same line
(tests/test_runlines.py checks it over any text, nick and room): a Go peer reads them as
before; they are only made in a quarter of the time.

The line's bytes are made once and kept by the sent log (the links get them, a link
behind is pumped them, the history saves them: ``Outbox.keep``).  Pure code.
"""

from __future__ import annotations

from typing import Any, Callable

from p2pchat.wire import _id_pool, format_time, new_message_id


def _first_encoder() -> Callable[[Any], bytes]:
    """msgspec's JSON encoder (the one wire.py and relay.py bind at their first line:
    msgspec's output does not depend on the instance), imported at the first run."""
    global _encode
    import msgspec

    _encode = msgspec.json.Encoder().encode
    return _encode


_encode: Callable[[Any], bytes] | None = None


def encoder() -> Callable[[Any], bytes]:
    """The JSON encoder a run's parts are written with (a string to its JSON text)."""
    return _encode if _encode is not None else _first_encoder()


def message_ids(count: int) -> list[str]:
    """``count`` new message ids said at one moment: as ``new_message_id`` makes each (its
    time prefix read once, not once a line)."""
    first = new_message_id()  # (fills the pool when it is empty)
    prefix = first[:5]
    pool = _id_pool
    return [first] + [prefix + pool.pop() if pool else new_message_id()
                      for _ in range(count - 1)]


class RunTemplate:
    """What every line of one run shares, encoded once: ``sender_id``, ``nick`` and
    ``room`` of chat lines said at ``when`` (Unix seconds)."""

    __slots__ = ("_pay_mid", "_pay_seq", "_pay_end", "_line_mid", "_line_seq", "_line_end",
                 "encode")

    def __init__(self, sender_id: str, nick: str, room: str, when: float) -> None:
        enc = self.encode = encoder()
        s, n, r, t = enc(sender_id), enc(nick), enc(room), enc(format_time(when))
        # line_payload's fields: id, type, sender, nick, content, stamp, sequence, room, to,
        # action ("" and "" for a room line)
        self._pay_mid = b'","chat",' + s + b"," + n + b","
        self._pay_seq = b"," + t + b","
        self._pay_end = b"," + r + b',"",""]'
        # encode_message's key order: the reference's
        self._line_mid = (b'","type":"chat","sender_id":' + s + b',"username":' + n
                          + b',"content":')
        self._line_seq = b',"timestamp":' + t + b',"sequence":'
        self._line_end = b',"room_id":' + r + b',"metadata":'

    def payload(self, message_id: str, content: bytes, sequence: int) -> bytes:
        """What the author signs for the line (``relay.line_payload``); ``content``: its
        text as JSON (``encode``)."""
        return b"".join((b'["', message_id.encode("ascii"), self._pay_mid, content,
                         self._pay_seq, str(sequence).encode("ascii"), self._pay_end))

    def line(self, message_id: str, content: bytes, sequence: int, metadata: bytes) -> bytes:
        """The line's bytes, newline included (``wire.encode_message``); ``metadata``: its
        metadata as JSON (``signed_alone`` or ``signed_in_run``)."""
        return b"".join((b'{"id":"', message_id.encode("ascii"), self._line_mid, content,
                         self._line_seq, str(sequence).encode("ascii"), self._line_end,
                         metadata, b"}\n"))


def signed_alone(signature: str) -> bytes:
    """The metadata of a line signed alone, as JSON: ``{"sig": signature}``."""
    return b'{"sig":"' + signature.encode("ascii") + b'"}'


def signed_in_run(signature: str, paths: list[str]) -> list[bytes]:
    """The metadata of each line of a run (runsig.py: its signature, its place, its path;
    ``paths``: each line's, base64), as JSON."""
    head = b'{"sig":"' + signature.encode("ascii") + b'","run":['
    tail = b',' + str(len(paths)).encode("ascii") + b'],"path":"'
    return [head + str(index).encode("ascii") + tail + path.encode("ascii") + b'"}'
            for index, path in enumerate(paths)]
