"""The wire format: PROTOCOL.md's sample lines, every rejection, round trips."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import TestCase

from p2pchat import wire
from p2pchat.wire import Beacon, Message, WireError

_FIELDS = ("id", "type", "sender_id", "username", "content", "sequence", "room_id")
#: Values at and past each limit, and of every JSON type.
_BOUNDS = [None, "", "x", "x" * 20, "x" * 64, "x" * 65, "x" * 128, "x" * 129, "é" * 64,
           "é" * 65, "\ud800", 0, -1, 2**64 - 1, 2**64, 3.0, 3.5, True, 1e300, [], {}]
#: Any JSON value a field may hold, the usual shapes and the odd ones.
_VALUES = st.one_of(st.none(), st.text(max_size=40), st.text(min_size=60, max_size=140),
                    st.text(st.characters(max_codepoint=127), max_size=20),
                    st.integers(-5, 2**65), st.floats(allow_nan=False), st.booleans(),
                    st.lists(st.integers(), max_size=2), st.just(""), st.just("chat"))

SAMPLE_BEACON = (b'{"type":"announce","peer_id":"alice_417","username":"alice",'
                 b'"address":"0.0.0.0:8080","port":8080,'
                 b'"timestamp":"2025-11-16T10:30:00.123456789Z","sequence":0}')
SAMPLE_JOIN = (b'{"id":"9f86d081884c7d65","type":"join","sender_id":"alice_417","username":"alice",'
               b'"content":"alice joined the chat","timestamp":"2025-11-16T10:30:01.5Z",'
               b'"sequence":0,"room_id":"general"}')
SAMPLE_CHAT = (b'{"id":"3c59dc048e885024","type":"chat","sender_id":"alice_417",'
               b'"username":"alice","content":"Hello everyone!",'
               b'"timestamp":"2025-11-16T10:30:05.25+01:00","sequence":2,"room_id":"general"}')


class SampleLines(TestCase):
    def test_beacon(self) -> None:
        b = wire.parse_beacon(SAMPLE_BEACON)
        self.assertEqual((b.type, b.peer_id, b.username, b.port, b.sequence),
                         ("announce", "alice_417", "alice", 8080, 0))
        self.assertAlmostEqual(b.timestamp, 1763289000.123456789, places=5)

    def test_join(self) -> None:
        m = wire.parse_message(SAMPLE_JOIN)
        self.assertEqual((m.id, m.type, m.sender_id, m.username, m.content, m.sequence, m.room_id),
                         ("9f86d081884c7d65", "join", "alice_417", "alice",
                          "alice joined the chat", 0, "general"))
        self.assertAlmostEqual(m.timestamp, 1763289001.5)

    def test_chat_with_offset(self) -> None:
        m = wire.parse_message(SAMPLE_CHAT)
        self.assertEqual((m.type, m.content, m.sequence), ("chat", "Hello everyone!", 2))
        # 10:30:05.25 at +01:00 is 09:30:05.25 UTC
        self.assertAlmostEqual(m.timestamp, 1763289001.5 - 3600 + 3.75)


class Time(TestCase):
    def test_nine_digits_and_offsets(self) -> None:
        self.assertAlmostEqual(wire.parse_time("1970-01-01T00:00:01.000000001Z"), 1.000000001)
        self.assertEqual(wire.parse_time("1970-01-01T01:00:00+01:00"), 0.0)
        self.assertEqual(wire.parse_time("1970-01-01T00:00:00-00:30"), 1800.0)

    def test_format_is_rfc3339_utc(self) -> None:
        self.assertEqual(wire.format_time(1.5), "1970-01-01T00:00:01.500000Z")

    def test_cache_of_minutes_is_bounded(self) -> None:
        """A peer may stamp every line with another minute (a wrong clock, or on purpose):
        the cache of minutes stays at MINUTES_KEPT, and every time still reads right."""
        kept = dict(wire._minutes)
        self.addCleanup(lambda: (wire._minutes.clear(), wire._minutes.update(kept)))
        wire._minutes.clear()
        start = 1763289000.0  # 2025-11-16T10:30:00Z, a whole minute
        minutes = wire.MINUTES_KEPT * 10
        for n in range(minutes):
            when = start + 60 * n + 1.25
            text = wire.format_time(when)
            self.assertEqual(len(text), 27)  # the shape the cache is for
            self.assertAlmostEqual(wire.parse_time(text), when, delta=1e-6)
            self.assertIn(text[:16], wire._minutes)  # each minute went into the cache
            self.assertLessEqual(len(wire._minutes), wire.MINUTES_KEPT)
        self.assertAlmostEqual(wire.parse_time(wire.format_time(start + 1.25)), start + 1.25,
                               delta=1e-6)  # an old minute, dropped from the cache, still reads

    def test_bad_times(self) -> None:
        for text in ("yesterday", "2025-11-16", "2025-11-16T10:30:00", "2025-13-40T10:30:00Z",
                     "2025-11-16T10:30:00.1234567890Z"):
            self.assertRaises(WireError, wire.parse_time, text)


class Rejections(TestCase):
    def bad(self, line: bytes, why: str) -> None:
        with self.assertRaises(WireError) as caught:
            wire.parse_message(line)
        self.assertIn(why, str(caught.exception))

    def test_not_json(self) -> None:
        self.bad(b"hello", "not JSON")

    def test_not_an_object(self) -> None:
        self.bad(b"[1,2]", "not a JSON object")

    def test_invalid_utf8(self) -> None:
        self.bad(b'{"id":"\xff"}', "UTF-8")

    def test_missing_required(self) -> None:
        self.bad(b'{"type":"chat","sender_id":"a"}', "missing 'id'")
        self.bad(b'{"id":"1","sender_id":"a"}', "missing 'type'")
        self.bad(b'{"id":"1","type":"chat"}', "missing 'sender_id'")
        self.bad(b'{"id":"","type":"chat","sender_id":"a"}', "'id' is empty")

    def test_mistyped(self) -> None:
        self.bad(b'{"id":1,"type":"chat","sender_id":"a"}', "'id' is not a string")
        self.bad(b'{"id":"1","type":"chat","sender_id":"a","content":5}', "'content'")
        self.bad(b'{"id":"1","type":"chat","sender_id":"a","sequence":"3"}', "'sequence'")
        self.bad(b'{"id":"1","type":"chat","sender_id":"a","sequence":true}', "'sequence'")
        self.bad(b'{"id":"1","type":"chat","sender_id":"a","sequence":1.5}', "whole number")
        self.bad(b'{"id":"1","type":"chat","sender_id":"a","sequence":-1}', "out of range")
        self.bad(b'{"id":"1","type":"chat","sender_id":"a","sequence":1e30}', "out of range")
        self.bad(b'{"id":"1","type":"chat","sender_id":"a","metadata":[]}', "'metadata'")
        self.bad(b'{"id":"1","type":"chat","sender_id":"a","timestamp":7}', "'timestamp'")
        self.bad(b'{"id":"1","type":"chat","sender_id":"a","timestamp":"now"}', "RFC 3339")
        self.bad(b'{"id":"1","type":"chat","sender_id":"a","caps":"x"}', "'caps'")
        self.bad(b'{"id":"1","type":"join","sender_id":"a","fp":"XYZ"}', "'fp'")

    def test_lone_surrogates_and_huge_numbers(self) -> None:
        self.bad(b'{"id":"\\ud800","type":"chat","sender_id":"a"}', "surrogate")
        self.bad(b'{"id":"1","type":"chat","sender_id":"a","sequence":' + b"9" * 5000 + b"}",
                 "not JSON")
        self.assertRaises(WireError, wire.parse_beacon, b'{"port":' + b"9" * 5000 + b"}")

    def test_deep_nesting(self) -> None:
        self.bad(b"[" * 100_000 + b"]" * 100_000, "")

    def test_too_long(self) -> None:
        self.bad(b'{"id":"' + b"x" * wire.MAX_LINE_BYTES + b'"}', "longer than")
        self.bad(b'{"id":"' + b"x" * 200 + b'","type":"chat","sender_id":"a"}', "'id' is longer")

    def test_beacons(self) -> None:
        def bad(data: bytes) -> None:
            self.assertRaises(WireError, wire.parse_beacon, data)

        bad(b"garbage")
        bad(b"{}")
        bad(SAMPLE_BEACON.replace(b'"announce"', b'"hello"'))
        bad(SAMPLE_BEACON.replace(b'"port":8080', b'"port":0'))
        bad(SAMPLE_BEACON.replace(b'"port":8080', b'"port":"8080"'))
        bad(SAMPLE_BEACON.replace(b'"port":8080', b'"port":70000'))
        bad(SAMPLE_BEACON.replace(b',"timestamp":"2025-11-16T10:30:00.123456789Z"', b""))
        bad(SAMPLE_BEACON[:-1] + b',"pad":"' + b"x" * 1024 + b'"}')


class RoundTrips(TestCase):
    def test_message(self) -> None:
        m = Message(id="abc", type="chat", sender_id="me_1", username="me", content="hé ✓ 中文",
                    timestamp=1700000000.25, sequence=7, metadata={"action": "waves"},
                    caps=("x/1",))
        line = wire.encode_message(m)
        self.assertTrue(line.endswith(b"\n"))
        self.assertEqual(line.count(b"\n"), 1)
        self.assertEqual(wire.parse_message(line.rstrip(b"\n")), m)

    def test_newline_in_content_stays_one_line(self) -> None:
        m = Message(id="a", type="chat", sender_id="b", content="two\nlines")
        self.assertEqual(wire.encode_message(m).count(b"\n"), 1)

    def test_beacon(self) -> None:
        b = Beacon(type="announce", peer_id="p_1", username="p", port=8080, timestamp=5.5,
                   address="0.0.0.0:8080", caps=("p2pchat-py/1",))
        parsed = wire.parse_beacon(wire.encode_beacon(b))
        self.assertEqual(parsed.stamp, wire.format_time(5.5))
        self.assertEqual(dataclasses.replace(parsed, stamp=""), b)
        signed = dataclasses.replace(b, fp="ab" * 32, pk="k" * 44, sig="s" * 88)
        self.assertEqual(dataclasses.replace(wire.parse_beacon(wire.encode_beacon(signed)),
                                             stamp=""), signed)
        self.assertLess(len(wire.encode_beacon(dataclasses.replace(
            signed, username="é" * 20, caps=("a" * 20,) * 4))), wire.MAX_DATAGRAM_BYTES)

    @settings(max_examples=200)
    @given(st.text(max_size=200), st.text(min_size=1, max_size=20), st.integers(0, 2**64 - 1))
    def test_any_content(self, content: str, nick: str, seq: int) -> None:
        m = Message(id="i", type="chat", sender_id="s", username=nick, content=content,
                    sequence=seq, timestamp=1.0)
        self.assertEqual(wire.parse_message(wire.encode_message(m)[:-1]), m)

    def agree(self, changes: list) -> None:
        """parse_message looks at the usual shapes first; every value must come out as the
        full check (``_string``/``_number`` on each field) has it, or be refused as it is.
        A good line with some fields changed (None: left out)."""
        fields = {"id": "i1", "type": "chat", "sender_id": "s_1", "username": "sam",
                  "content": "hi", "sequence": 3, "room_id": "ops"}
        for key, value in changes:
            if value is None:
                fields.pop(key, None)
            else:
                fields[key] = value
        data = json.dumps(fields).encode()
        try:
            expected = (wire._string(fields, "id", wire.MAX_ID_CHARS, required=True),
                        wire._string(fields, "type", wire.MAX_ID_CHARS, required=True),
                        wire._string(fields, "sender_id", wire.MAX_ID_CHARS, required=True),
                        wire._string(fields, "username", wire.MAX_NAME_CHARS),
                        wire._string(fields, "content", wire.MAX_LINE_BYTES),
                        wire._number(fields, "sequence", 0, wire.MAX_SEQUENCE, default=0),
                        wire._string(fields, "room_id", wire.MAX_ID_CHARS) or wire.DEFAULT_ROOM)
        except WireError:
            self.assertRaises(WireError, wire.parse_message, data)
            return
        m = wire.parse_message(data)
        self.assertEqual((m.id, m.type, m.sender_id, m.username, m.content, m.sequence,
                          m.room_id), expected, changes)

    def test_quick_checks_agree_with_the_full_ones_at_every_bound(self) -> None:
        for key in _FIELDS:
            for value in _BOUNDS:
                self.agree([(key, value)])

    @settings(max_examples=300)
    @given(st.lists(st.tuples(st.sampled_from(_FIELDS), st.one_of(_VALUES, st.just(None))),
                    min_size=1, max_size=3))
    def test_quick_checks_agree_with_the_full_ones(self, changes: list) -> None:
        self.agree(changes)

    def same_either_way(self, fields: dict) -> None:
        """The msgspec way (parse_message) and the long way (_parse_checked) give the same
        Message, or refuse the line with the same reason."""
        data = json.dumps(fields).encode()
        try:
            expected: object = wire._parse_checked(data)
        except WireError as e:
            expected = f"refused: {e}"
        try:
            got: object = wire.parse_message(data)
        except WireError as e:
            got = f"refused: {e}"
        self.assertEqual(got, expected, fields)

    _EXTRA = st.one_of(_VALUES, st.just(["catchup/1", "tls/1"]), st.just(["x" * 129]),
                       st.just([""]), st.just(["a"] * 33), st.just("ab" * 32),
                       st.just("AB" * 32), st.just("2025-11-16T10:30:05.25Z"),
                       st.just("2025-11-16T10:30:05Z"), st.just("yesterday"),
                       st.just({"sig": "x", "action": "waves"}), st.just({"to": 3}))

    @settings(max_examples=400)
    @given(st.lists(st.tuples(st.sampled_from(_FIELDS + ("caps", "fp", "timestamp",
                                                         "metadata")),
                              st.one_of(_EXTRA, st.just(None))), max_size=4),
           st.booleans())
    def test_msgspec_way_agrees_with_the_long_way(self, changes: list, nulls: bool) -> None:
        fields: dict = {"id": "i1", "type": "chat", "sender_id": "s_1", "username": "sam",
                        "content": "hi", "timestamp": "2025-11-16T10:30:05.25+01:00",
                        "sequence": 3, "room_id": "ops", "metadata": {"sig": "abc"},
                        "caps": ["rooms/1"], "fp": "0f" * 32}
        for key, value in changes:
            if value is None and not nulls:
                fields.pop(key, None)
            else:
                fields[key] = value  # None: a JSON null
        self.same_either_way(fields)

    def test_msgspec_way_agrees_at_every_bound(self) -> None:
        for key in _FIELDS + ("caps", "fp", "timestamp", "metadata"):
            for value in _BOUNDS + [["tls/1"], ["x" * 129], "0f" * 32, "0F" * 32]:
                self.same_either_way({"id": "i1", "type": "chat", "sender_id": "s_1",
                                      key: value})

    def test_odd_json_goes_the_long_way(self) -> None:
        """What msgspec refuses but json reads (NaN, a huge exponent) is judged as before."""
        line = b'{"id":"i","type":"chat","sender_id":"s","metadata":{"x":NaN,"y":1e999}}'
        m = wire.parse_message(line)
        self.assertEqual(m.metadata["y"], float("inf"))
        self.assertEqual(m, wire._parse_checked(line))

    @settings(max_examples=300)
    @given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 1, 1)))
    def test_timestamps_read_back_as_datetime_reads_them(self, moment: datetime) -> None:
        when = moment.replace(tzinfo=timezone.utc).timestamp()
        text = wire.format_time(when)
        self.assertEqual(text, datetime.fromtimestamp(when, timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ"))
        for _ in range(2):  # the second time from the cache of minutes
            self.assertAlmostEqual(wire.parse_time(text), when, delta=1e-6)

    @settings(max_examples=300)
    @given(st.binary(max_size=300))
    def test_any_bytes_parse_or_wire_error(self, data: bytes) -> None:
        for parse in (wire.parse_message, wire.parse_beacon):
            try:
                parse(data)
            except WireError:
                pass


class Helpers(TestCase):
    def test_nick_rules(self) -> None:
        self.assertIsNone(wire.nick_problem("carol"))
        self.assertIsNone(wire.nick_problem("x" * 20))
        self.assertIn("at most 20", wire.nick_problem("x" * 21))
        self.assertIn("at least one", wire.nick_problem(""))
        self.assertIn("spaces", wire.nick_problem("a b"))
        self.assertIn("control", wire.nick_problem("a\x1bb"))

    def test_printable(self) -> None:
        self.assertEqual(wire.printable("plain ✓"), "plain ✓")
        self.assertEqual(wire.printable("a\x1b[31mb\x00c\td"), "a\ufffd[31mb\ufffdc d")
