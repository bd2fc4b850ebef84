"""Run-signed lines kept without their Merkle path (packing.py) and handed on with it rebuilt
from the run's rows (runpaths.py): byte for byte what the author sent, checked by
relay.check_relayed; a run cut by the ``limit`` of ``relayable_after`` is completed with one
query; a run with rows missing is left out (logged once), never sent unverifiable."""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from p2pchat import packing, runpaths, runsig, wire
from p2pchat.identity import Identity
from p2pchat.interfaces import StoredLine
from p2pchat.relay import check_relayed, line_payload
from p2pchat.store import Store
from p2pchat.wire import CHAT, Message, parse_message
from tests.test_runsig import run_of


class HandingOn(TestCase):
    def setUp(self) -> None:
        self.store = Store(os.path.join(tempfile.mkdtemp(), "h.sqlite3"))
        self.addCleanup(self.store.close)
        self.author = Identity.generate()
        self.key = self.author.public_key_b64()
        self.when = time.time() - 600
        runpaths._told.clear()
        runsig._run_signed.cache_clear()
        self.logged: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)

    def run_lines(self, count: int, first_seq: int) -> list[bytes]:
        return run_of(self.author, [f"line {first_seq + n} of a paste" for n in range(count)],
                      first_seq=first_seq, when=self.when + first_seq)

    def alone(self, seq: int) -> bytes:
        msg = Message(f"s{seq}", CHAT, self.author.peer_id, "alice", f"alone {seq}",
                      self.when + seq, seq, "general", {})
        msg.metadata = {"sig": self.author.sign(line_payload(msg))}
        return wire.encode_message(msg)[:-1]

    def keep(self, raws: list[bytes], pack: bool = True) -> None:
        rows = []
        for raw in raws:
            msg = parse_message(raw)
            rows.append(StoredLine(msg.id, msg.room_id, msg.sender_id, msg.username,
                                   msg.content, False, False, msg.timestamp or 0.0,
                                   msg.sequence, raw, self.key))
        self.store.remember_lines(rows)
        self.store.flush()
        if pack:
            self.assertEqual(self.store.pack_step(), len(raws))

    def handed(self, after: int = 0, limit: int = 100) -> list[bytes]:
        return [raw for _, raw, _ in self.store.relayable_after(
            self.author.peer_id, after, ["general"], limit, 0.0)]

    def told(self) -> list[str]:
        return [e.get("why", "") for e in self.logged
                if "can't be proven" in str(e.get("log_format", ""))]

    def test_packed_lines_are_handed_on_as_the_author_sent_them(self) -> None:
        sent = [self.alone(1)] + self.run_lines(16, 2) + self.run_lines(3, 18) + [self.alone(21)]
        self.keep(sent)
        kept = [bytes(r[0]) for r in self.store._db.execute("select raw from lines order by seq")]
        self.assertEqual([len(r) for r in kept], [65] + [67] * 19 + [65])  # no path kept
        got = self.handed()
        self.assertEqual(got, sent)
        for raw in got:
            check_relayed(raw, self.key)
        self.assertEqual(self.told(), [])

    def test_a_run_cut_by_the_limit_is_completed_with_one_query_per_run(self) -> None:
        sent = self.run_lines(16, 1) + self.run_lines(16, 17)
        self.keep(sent)
        queries: list[str] = []
        self.store._db.set_trace_callback(queries.append)
        got, after = [], 0
        for _ in range(10):
            step = self.store.relayable_after(self.author.peer_id, after, ["general"], 5, 0.0)
            if not step:
                break
            got += [raw for _, raw, _ in step]
            after = step[-1][0]
        self.store._db.set_trace_callback(None)
        self.assertEqual(got, sent)
        selects = [q for q in queries if q.lstrip().lower().startswith("select")]
        # 8 steps of 5 (31-32, then an empty one) and one query for each run a step cut:
        # every step with lines cuts one run, 16-20 cuts both
        self.assertEqual(len(selects), 8 + 7 + 1)

    def test_a_run_with_a_line_never_had_is_left_out_and_told_once(self) -> None:
        run = self.run_lines(16, 2)
        sent = [self.alone(1)] + run[:7] + run[8:] + [self.alone(18)]
        self.keep(sent)
        self.assertEqual(self.handed(), [sent[0], sent[-1]])
        self.assertEqual(self.handed(), [sent[0], sent[-1]])
        self.assertEqual(self.told(), ["1 of its 16 lines are not kept"])

    def test_a_run_partly_pruned_is_left_out(self) -> None:
        sent = self.run_lines(8, 1) + self.run_lines(4, 9)
        self.keep(sent)
        self.store.prune(time.time(), max_lines=len(sent) - 3)  # the 3 oldest go
        self.assertEqual(self.handed(), sent[8:])
        self.assertEqual(self.told(), ["3 of its 8 lines are not kept"])

    def test_a_step_of_unprovable_lines_only_goes_on_to_the_next(self) -> None:
        run = self.run_lines(16, 1)
        self.keep(run[1:] + [self.alone(17)])
        self.assertEqual(self.handed(limit=5), [self.alone(17)])

    def test_rows_that_dont_make_the_signed_root_are_left_out(self) -> None:
        sent = self.run_lines(4, 1) + [self.alone(5)]
        self.keep(sent)
        self.store._db.execute("update lines set text = 'not what was said' where seq = ?",
                               (self.store._db.execute("select min(seq) from lines")
                                .fetchone()[0],))
        self.assertEqual(self.handed(), [sent[-1]])
        self.assertEqual(self.told(), ["its rows don't make the root its author signed"])

    def test_rows_not_packed_yet_help_rebuild_the_others(self) -> None:
        run = self.run_lines(6, 1)
        self.keep(run[:3])
        self.keep(run[3:], pack=False)  # as they came, with their own paths
        self.assertEqual(self.handed(after=1), run[1:])
        for raw in self.handed():
            check_relayed(raw, self.key)

    def test_packing_keeps_2_bytes_more_than_a_line_signed_alone(self) -> None:
        raw = self.run_lines(16, 1)[5]
        msg = parse_message(raw)
        assert msg.timestamp is not None
        got = packing.pack(raw, "general", msg.sender_id, "alice", msg.timestamp, msg.sequence)
        assert got is not None
        self.assertEqual(len(got[1]), 1 + packing.SIGNATURE_BYTES + 2)
        self.assertEqual(packing.run_place(got[1])[1:], (5, 16))  # type: ignore[index]
