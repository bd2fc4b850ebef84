"""A run's lines written from one template (runlines.py): byte for byte what line_payload and
encode_message write for each line, so peers (a Go peer too) read them as before; and a run
said at once is encoded once (the links, the sent log and the history share the bytes), its
ids and its time stamp taken once."""

from __future__ import annotations

import re

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import TestCase

from p2pchat import catchup, wire
from p2pchat.relay import line_payload
from p2pchat.runlines import RunTemplate, message_ids, signed_alone, signed_in_run
from p2pchat.runsig import sign_run
from p2pchat.wire import CHAT, MAX_ID_CHARS, MAX_NAME_CHARS, Message, encode_message
from tests import test_saying

# any text a line may hold: quotes, backslashes, control characters, U+2028, emoji
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)
NAME = st.text(st.characters(blacklist_categories=("Cs",)), max_size=MAX_NAME_CHARS)
ROOM = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=MAX_ID_CHARS)
WHEN = st.floats(min_value=0, max_value=4e9, allow_nan=False)
SEQ = st.integers(min_value=1, max_value=2 ** 53)
SIG = st.binary(min_size=64, max_size=64).map(lambda b: __import__("base64").b64encode(b)
                                               .decode())


class Template(TestCase):
    @settings(max_examples=300, deadline=None)
    @given(TEXT, NAME, NAME, ROOM, WHEN, SEQ, SIG)
    def test_a_line_signed_alone_is_as_encode_message_writes_it(
            self, text, sender, nick, room, when, seq, sig) -> None:
        mid = message_ids(1)[0]
        template = RunTemplate(sender, nick, room, when)
        content = template.encode(text)
        msg = Message(mid, CHAT, sender, nick, text, when, seq, room, {"sig": sig})
        self.assertEqual(template.payload(mid, content, seq), line_payload(msg))
        self.assertEqual(template.line(mid, content, seq, signed_alone(sig)),
                         encode_message(msg))

    @settings(max_examples=100, deadline=None)
    @given(st.lists(TEXT, min_size=2, max_size=16), NAME, ROOM, WHEN, SEQ)
    def test_a_run_signed_line_is_as_encode_message_writes_it(
            self, texts, nick, room, when, first) -> None:
        template = RunTemplate("carol_1", nick, room, when)
        ids = message_ids(len(texts))
        payloads = [template.payload(mid, template.encode(text), first + n)
                    for n, (mid, text) in enumerate(zip(ids, texts))]
        metas = sign_run(lambda data: "c2ln", payloads)
        paths = [meta["path"] for meta in metas]
        for n, (mid, text, meta, raw) in enumerate(zip(ids, texts, metas,
                                                       signed_in_run("c2ln", paths))):
            msg = Message(mid, CHAT, "carol_1", nick, text, when, first + n, room, meta)
            self.assertEqual(payloads[n], line_payload(msg))
            self.assertEqual(template.line(mid, template.encode(text), first + n, raw),
                             encode_message(msg))
            self.assertEqual(wire.parse_message(encode_message(msg)).metadata, meta)


class Ids(TestCase):
    def test_ids_of_a_run_are_distinct_and_of_the_usual_form(self) -> None:
        ids = message_ids(1500)  # past the pool's 512: it is filled again on the way
        self.assertEqual(len(set(ids)), 1500)
        for mid in ids:
            self.assertRegex(mid, r"^[0-9a-f]{16}$")
        # their time part: the moment of the run (one read, or two if the pool ran out)
        self.assertLessEqual(len({mid[:5] for mid in ids}), 4)

    def test_a_run_of_one(self) -> None:
        self.assertRegex(message_ids(1)[0], r"^[0-9a-f]{16}$")


class SaidOnce(TestCase):
    """A paste (in tests/test_saying.py's setting): each line encoded once."""

    setUp = test_saying.Paste.setUp
    link = test_saying.Paste.link
    check_signed = test_saying.Paste.check_signed

    def test_a_run_is_encoded_once_for_the_links_the_sent_log_and_the_history(self) -> None:
        calls = []
        real = wire.encode_message

        def counting(msg: Message) -> bytes:
            calls.append(msg)
            return real(msg)

        self.patch(wire, "encode_message", counting)
        self.patch(catchup, "encode_message", counting)
        texts = [f"line {n} \"quoted\" \u2028 é" for n in range(40)]
        self.face.dataReceived("".join(f"{t}\n" for t in texts).encode())
        self.assertEqual([m for m in calls if m.type == CHAT], [])  # none of the run's
        kept = self.node.outbox.log.since(0)[0][1:]
        self.assertEqual([m.content for m, _ in kept], texts)
        for msg, data in kept:  # what the sent log (and so the links) has: the line's bytes
            self.assertEqual(data, real(msg))
        sent = b"".join(data for _, data in kept)
        for w in self.wires:
            self.assertEqual(w.value(), sent)
        for msg in [m for m, _ in kept]:
            self.check_signed(msg)

    def test_a_run_is_said_at_one_moment(self) -> None:
        ticks = iter(range(10 ** 6))
        self.patch(self.node.clock, "seconds", lambda: 1_800_000_000 + next(ticks) * 0.001)
        self.face.dataReceived(b"one\ntwo\nthree\n")
        kept = [m for m, _ in self.node.outbox.log.since(0)[0][1:]]
        self.assertEqual(len({m.timestamp for m in kept}), 1)
        self.assertEqual(len({m.id[:5] for m in kept}), 1)
        seqs = [m.sequence for m in kept]
        self.assertEqual(seqs, sorted(set(seqs)))
        self.store.flush()
        self.assertEqual([line.text for line in self.store.recent("general", 5)],
                         ["hello", "one", "two", "three"])

    def test_lines_signed_alone_for_a_link_without_runsig(self) -> None:
        for link in self.node.links.values():
            link.runsig = False
        self.face.dataReceived(b"one\ntwo\n")
        kept = self.node.outbox.log.since(0)[0][1:]
        for msg, data in kept:
            self.assertEqual(set(msg.metadata or {}), {"sig"})
            self.assertEqual(data, wire.encode_message(msg))
            self.check_signed(msg)
        self.assertEqual(len(re.findall(rb'"sig"', self.wires[0].value())), 2)

