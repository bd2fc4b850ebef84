"""Saying many lines at once: a paste, or a script's burst on stdin, one read of the line face.

Each line is what ``Chat.say`` makes of it, no less: its own sequence number, its author's
Ed25519 signature (one for each RUN_MAX_LINES lines when every link they go to takes run
signatures: runsig.py), its place in the sent log (so it is never lost), its history row, its
event.  What is done once for the whole run instead of once per line is what is the same
for all of them: who the lines go to (the links in the room, who must ack them), the links'
writes (each link gets the run's bytes in one write, so ten links cost ten writes a run, not
ten a line), and the sent log's trim.  A run is one room's plain lines; anything else (a
private talk, nobody linked) is said line by line by the chat.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from twisted.logger import Logger

from p2pchat import events
from p2pchat.interfaces import Refused, Said
from p2pchat.reading import emit_each
from p2pchat.runlines import RunTemplate, message_ids, signed_alone, signed_in_run
from p2pchat.runsig import RUN_MAX_LINES, signed_paths
from p2pchat.wire import CHAT, Message

if TYPE_CHECKING:
    from p2pchat.node import Node

log = Logger()

#: What a line that failed (a bug, a failing disk) answers; the log has the traceback.
FAILED = "that failed; the log has the details"


class Saying:
    """Runs of lines said at once by one node (``node``)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def say_lines(self, texts: list[str], room: str) -> list[Refused]:
        """Say ``texts`` in ``room``, in order, as ``Chat.say`` says each; returns the
        refusals (none when every line was said).  A line that fails is refused (and
        logged); the others are said."""
        node = self.node
        chat = node.chat
        if (len(texts) < 2 or room.startswith("@") or room not in node.rooms.joined
                or not node.links or node.identity is None):
            said = [self._one(chat.say, text, room) for text in texts]
            return [answer for answer in said if isinstance(answer, Refused)]
        sender = node.sender
        probe = Message("", CHAT, node.peer_id, room_id=room)
        # Who the run goes to and who must ack it: the same for every line of one room.
        wanted = {pid for pid, link in node.links.items()
                  if not link.said_leave and sender.is_for(probe, pid, link.rooms)}
        waiting = sender.waiting_for(probe, wanted)
        count = sum(1 for pid in wanted if node.links[pid].synced)
        previous = node.outbox.log.last_sequence()
        refused: list[Refused] = []
        kept: list[tuple[Message, bytes]] = []
        try:
            # One signature per run only when every link the run goes to takes it, and no
            # one is reached through others (whose caps we don't know: they get the lines
            # forwarded as they are, so signed alone).
            runs = (all(node.links[pid].runsig for pid in wanted)
                    and not node.forwarder.reached.shown())
            self._lines(texts, room, kept, refused, count, bool(waiting), runs)
        finally:
            try:
                node.delivery.expect_run([(msg.sequence, msg.id) for msg, _ in kept], waiting)
                node.store.save_said(kept)
            finally:  # what is in the sent log goes out, whatever failed
                self._write(previous, wanted)
        return refused

    @staticmethod
    def _one(say: Callable[[str, str], Said | Refused], text: str, room: str) -> Said | Refused:
        try:
            return say(text, room)
        except Exception:
            log.failure("saying {text!r} failed", text=text[:80])
            return Refused(FAILED)

    def _lines(self, texts: list[str], room: str, kept: list[tuple[Message, bytes]],
               refused: list[Refused], count: int, pending: bool, runs: bool) -> None:
        """Each line of the run: numbered, signed, seen, in the sent log (and in ``kept``,
        for the history and the delivery marks, once the run is done), shown; a line that
        fails is refused alone.  ``runs``: every link the lines go to takes run signatures
        (runsig.py), so each RUN_MAX_LINES of them share one.  The links get the run at its
        end (``_write``).  The lines are said at one moment (one time stamp) and written
        from one template (runlines.py): their payloads and bytes made once each.  The
        faces are told the lines kept at the end, in order, at once (``emit_each``: the
        line face echoes them in one write), as they are told a run heard together."""
        node = self.node
        identity = node.identity
        assert identity is not None
        number, keep = node.outbox.number, node.outbox.keep
        accept, sign = node.room.accept_own, identity.sign
        peer_id, nick = node.peer_id, node.nick
        when = node.clock.seconds()
        template = RunTemplate(peer_id, nick, room, when)
        encode, payload_of, line_of = template.encode, template.payload, template.line
        step = RUN_MAX_LINES if runs else 1
        ids = message_ids(len(texts))
        chat_line = events.ChatLine
        shown: list[events.ChatLine] = []
        try:
            for start in range(0, len(texts), step):
                made: list[tuple[Message, bytes, bytes]] = []  # the line, content, payload
                for text, message_id in zip(texts[start:start + step], ids[start:start + step]):
                    try:
                        content, seq = encode(text), number()
                        made.append((Message(message_id, CHAT, peer_id, nick, text, when, seq,
                                             room),
                                     content, payload_of(message_id, content, seq)))
                    except Exception:
                        log.failure("saying {text!r} failed", text=text[:80])
                        refused.append(Refused(FAILED))
                try:
                    metas = self._signed(sign, made)
                    accept([msg for msg, _, _ in made])
                except Exception:
                    log.failure("signing a run of {n} lines failed", n=len(made))
                    refused.extend(Refused(FAILED) for _ in made)
                    continue
                for (msg, content, _), meta in zip(made, metas):
                    try:
                        data = line_of(msg.id, content, msg.sequence, meta)
                        kept.append((msg, keep(msg, data)))  # nothing after can fail the line
                    except Exception:
                        log.failure("saying {text!r} failed", text=msg.content[:80])
                        refused.append(Refused(FAILED))
                        continue
                    shown.append(chat_line(when, nick, msg.content, peer_id, msg.id,
                                           True, False, count, pending, room))
        finally:
            if shown:
                emit_each(node, shown)

    @staticmethod
    def _signed(sign: Callable[[bytes], str],
                made: list[tuple[Message, bytes, bytes]]) -> list[bytes]:
        """Sign the lines ``made`` (line, content, payload): as one run when there are two
        or more (runsig.py), else alone; each line's metadata set, and returned as JSON."""
        if len(made) > 1:
            signature, paths = signed_paths(sign, [p for _, _, p in made])
            total = len(paths)
            for index, (msg, _, _) in enumerate(made):
                # ("run" a tuple, as JSON the same array: once the collector saw that it
                # holds only ints, it and the dict leave its sight, leaving one object a line
                # (the line) for it to walk through for as long as the sent log keeps it)
                msg.metadata = {"sig": signature, "run": (index, total), "path": paths[index]}
            return signed_in_run(signature, paths)
        metas = []
        for msg, _, data in made:
            signature = sign(data)
            msg.metadata = {"sig": signature}
            metas.append(signed_alone(signature))
        return metas

    def _write(self, previous: int | None, wanted: set[str]) -> None:
        """The run to each link: in one write to a link that had everything before it (the
        usual case), else pumped from the sent log, in order, as far as its peer reads.
        What is written is what the run put in the sent log (a line that failed after it
        got there goes too, as it would have alone)."""
        node = self.node
        try:
            data, newest = (node.outbox.log.bytes_since(previous) if previous is not None
                            else (b"", None))
            last = newest if newest is not None else (previous or 0)
            for link in list(node.links.values()):
                if not link.synced:
                    continue
                wire = link.wire
                if previous is not None and link.cursor == previous and not wire.backed_up:
                    if link.peer_id in wanted and data:
                        wire.send_bytes(data)
                    link.cursor = last
                else:
                    node.sender.pump(link)
        finally:
            node.outbox.trimmed(node.clock.seconds())
