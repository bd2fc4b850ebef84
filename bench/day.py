"""``python -m bench --only day`` (or ``python -m bench.day``): a day of catch-up.

A peer ("away") was gone while three authors said ``--day-lines`` lines (100,000 by default)
in two rooms, and the authors are gone too: another peer ("keeper"), which heard them all,
hands them on (relay.py), each line signed by its author and checked by the receiver.  The
keeper's history file is built directly (real Ed25519 signatures by three real identities,
packed as the keeper's store leaves them), and so is the away peer's (it knew the three
authors, with none of their lines, and is in both rooms); then both run as real processes
(``twistd -n p2pchat --ui lines`` on loopback, a private multicast group: bench/procs.py),
the keeper first, and the away peer comes back.

Printed: the time from the away peer's spawn (and from its link to the keeper) until it has
every line (its last summary of the catch-up, less catching_up.CATCH_UP_QUIET), the lines
it has (its history file: distinct ids), those it showed (its line face: lines shown as they
came plus those each summary counts), the duplicates (shown less distinct: target 0), and
the worst reactor hold in each peer during the catch-up (the stall probe, lateness.py: a
10 ms LoopingCall; bench/holds.py reads it from the peers' logs).
Targets: every line, exactly once, within 30 s, no hold over 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from typing import Callable

from bench.holds import Watch, after_report, probing
from bench.procs import Children, fresh_multicast, peer_argv
from p2pchat.catching_up import CATCH_UP_QUIET, CATCH_UP_SHOWN
from p2pchat.identity import Identity
from p2pchat.packing import pack
from p2pchat.relay import line_payload, sign_line
from p2pchat.runsig import sign_run
from p2pchat.seen import SeenSet
from p2pchat.store import STORE_NAME, Store, to_db
from p2pchat.wire import CHAT, Message, encode_message, new_message_id

TARGET_S = 30.0
TARGET_HOLD_MS = 50.0
MAX_LINES = 200_000
ROOMS = ["dev", "general"]
NICKS = ["alice", "bob", "carol"]
_SUMMARY = re.compile(rb" - caught up ([\d,]+) lines? in (\S+) ")
_SHOWN = re.compile(rb"^\d\d:\d\d:\d\d (\[#\S+\] )?<")


def build(folder: str, count: int, now: float,
          run_lines: int = 1) -> tuple[str, str, float]:
    """The keeper's and the away peer's data dirs; returns them and the seconds it took.
    ``run_lines``: each author's lines signed one signature per run of that many (runsig.py,
    as lines said in a paste are), or each alone (1, as typed lines are)."""
    began = time.perf_counter()
    keeper, away = os.path.join(folder, "keeper"), os.path.join(folder, "away")
    for d in (keeper, away):
        os.makedirs(d, mode=0o700)
    authors = [Identity.generate() for _ in NICKS]
    store = Store(os.path.join(keeper, STORE_NAME), max_bytes=1 << 40)
    db = store._db
    rows = []
    seqs = [0] * len(authors)
    start = now - 20 * 3600.0  # said over the last 20 hours: within --catchup-age (a day)
    step = 14 * 3600.0 / max(1, count)
    said: list[tuple[int, Message]] = []
    for n in range(count):
        a = n % len(authors)
        author = authors[a]
        seqs[a] += 1
        room = ROOMS[(n // len(authors)) % len(ROOMS)]
        said.append((a, Message(id=new_message_id(), type=CHAT, sender_id=author.peer_id,
                                username=NICKS[a], content=f"line {n} of a long day, said by "
                                f"{NICKS[a]} in #{room}: the build is green again, lunch at "
                                "noon?", timestamp=start + n * step, sequence=seqs[a],
                                room_id=room, metadata={})))
    for a, author in enumerate(authors):
        theirs = [msg for x, msg in said if x == a]
        for first in range(0, len(theirs), max(1, run_lines)):
            run = theirs[first:first + max(1, run_lines)]
            if len(run) > 1:
                for msg, meta in zip(run, sign_run(author.sign, [line_payload(m) for m in run])):
                    msg.metadata = meta
            else:
                run[0].metadata = {"sig": sign_line(author, run[0])}
    for a, msg in said:
        raw = encode_message(msg).rstrip(b"\n")
        assert msg.timestamp is not None
        room = msg.room_id
        packed = pack(raw, room, msg.sender_id, NICKS[a], msg.timestamp, msg.sequence)
        if packed is None:
            raise RuntimeError("a bench line did not pack")
        rows.append((msg.id, room, msg.sender_id, NICKS[a], packed[0], 0, 0, msg.timestamp,
                     to_db(msg.sequence), packed[1], ""))
    with db:
        db.execute("begin")
        db.executemany("insert into keys values (?, ?)",
                       [(i.peer_id, i.public_key_b64()) for i in authors])
        db.executemany("insert into lines values (?,?,?,?,?,?,?,?,?,?,?)", rows)
        db.execute("insert or replace into settings values ('packed_upto', ?)",
                   (str(db.execute("select max(rowid) from lines").fetchone()[0]),))
    seen = SeenSet(store)  # the keeper heard every one of them (as a peer that was there)
    for a, author in enumerate(authors):
        for seq in range(1, seqs[a] + 1):
            seen.add(author.peer_id, seq)
        store.seen_changed(author.peer_id, seen)
    store.set_rooms(ROOMS)
    store.close()
    store = Store(os.path.join(away, STORE_NAME))
    store.set_rooms(ROOMS)
    for author in authors:  # it heard them before, none of these lines
        store.set_high_water(author.peer_id, 0)
    store.close()
    return keeper, away, time.perf_counter() - began


def run(count: int, timeout_scale: float = 1.0,
        say: Callable[[str], None] = lambda text: None, run_lines: int = 1) -> dict:
    count = max(1, min(count, MAX_LINES))
    figures: dict = {"lines": count, "authors": len(NICKS), "rooms": len(ROOMS),
                     "run_lines": run_lines,
                     "targets": {"seconds": TARGET_S, "hold_ms": TARGET_HOLD_MS}}
    with tempfile.TemporaryDirectory(prefix="p2pchat-day-") as folder:
        say(f"day: building a keeper with {count:,} signed lines of {len(NICKS)} absent authors")
        keeper_dir, away_dir, figures["build_s"] = build(folder, count, time.time(),
                                                         run_lines)
        kids = Children(folder)
        multicast = fresh_multicast()
        state: dict = {"up": None, "linked": None, "summaries": {}, "direct": 0, "last": None}

        def keeper_line(child: object, line: bytes, when: float) -> None:
            if line[8:19] == b" - you are ":
                state["up"] = when

        def away_line(child: object, line: bytes, when: float) -> None:
            if line.endswith(b" * keeper joined") and state["linked"] is None:
                state["linked"] = when
            m = _SUMMARY.search(line)
            if m:
                n = int(m.group(1).replace(b",", b""))
                room = m.group(2).decode()
                state["summaries"][room] = state["summaries"].get(room, 0) + n - CATCH_UP_SHOWN
                state["last"] = when
            elif _SHOWN.match(line):
                state["direct"] += 1
                state["last_direct"] = when

        def shown() -> int:
            return state["direct"] + sum(state["summaries"].values())

        try:
            with probing():  # every peer runs the stall probe (lateness.py) into its log
                keeper = kids.start("keeper", peer_argv("keeper", multicast, keeper_dir),
                                    keeper_line)
                # the baseline: a peer with nothing to catch up
                idle = kids.start("idle", peer_argv("idle", multicast,
                                                    os.path.join(folder, "idle")))
                if not kids.pump(lambda: state["up"] is not None, 60 * timeout_scale):
                    figures["status"] = "the keeper did not come up"
                    return figures
                away = kids.start("away", peer_argv("away", multicast, away_dir), away_line)
            watch = Watch([keeper, idle, away])  # the away peer's log starts now
            say("day: the away peer is back")
            cpu_before = {"keeper": keeper.cpu_seconds() or 0.0}
            done = kids.pump(lambda: shown() >= count, 120 * timeout_scale)
            kids.sleep(CATCH_UP_QUIET + 1.0)  # a duplicate would come after
            after_report(kids)
            figures["worst_hold_ms"] = {"keeper": watch.both(keeper), "away": watch.both(away),
                                        "idle": watch.both(idle)}
            keeper_cpu = (keeper.cpu_seconds() or 0.0) - cpu_before["keeper"]
            figures["cpu_s"] = {"away": away.cpu_seconds(), "keeper": keeper_cpu}
            figures["load"] = os.getloadavg()[0]
            kids.quit_cleanly([away, keeper, idle], 20 * timeout_scale)
        finally:
            kids.kill_all()
        store = Store(os.path.join(away_dir, STORE_NAME))
        has = store._db.execute("select count(distinct id) from lines where sender_id in "
                                "(select sender_id from high_water)").fetchone()[0]
        store.close()
        last = state["last"] if state["summaries"] else state.get("last_direct")
        figures.update({
            "status": "ok" if done else "not every line came",
            "has": has, "shown": shown(), "duplicates": shown() - has,
            "by_room": state["summaries"],
        })
        if done and last is not None:
            end = last - (CATCH_UP_QUIET if state["summaries"] else 0.0)
            figures["seconds_from_spawn"] = end - away.spawned
            if state["linked"] is not None:
                figures["seconds_from_link"] = end - state["linked"]
            figures["lines_per_s"] = count / max(1e-9, end - away.spawned)
    return figures


def render(f: dict) -> str:
    head = (f"A day of catch-up: {f['lines']:,} lines of {f['authors']} absent authors in "
            f"{f['rooms']} rooms, handed on by one peer (built in {f['build_s']:.1f} s)"
            + (f"; signed one signature per {f['run_lines']} lines of an author"
               if f.get("run_lines", 1) > 1 else ""))
    if "has" not in f:
        return f"{head}\n  {f.get('status')}"
    t = f["targets"]
    lines = [head]
    if "seconds_from_spawn" in f:
        ok = f["seconds_from_spawn"] <= t["seconds"]
        lines.append(f"  all in {f['seconds_from_spawn']:.1f} s from its spawn "
                     f"({f.get('seconds_from_link', float('nan')):.1f} s from its link; "
                     f"{f['lines_per_s']:,.0f} lines/s; target {t['seconds']:g} s: "
                     f"{'met' if ok else 'NOT met'})")
    else:
        lines.append(f"  {f['status']}")
    lines.append(f"  has {f['has']:,}, shown {f['shown']:,}, duplicates {f['duplicates']}")
    cpu = f.get("cpu_s", {})
    if cpu.get("away"):
        per_line = cpu["away"] / f["lines"] * 1e6
        lines.append(f"  CPU: the away peer {cpu['away']:.1f} s ({per_line:.0f}"
                     f" us a line, its start included), the keeper {cpu['keeper']:.1f} s "
                     f"({cpu['keeper'] / f['lines'] * 1e6:.0f} us a line); load average "
                     f"{f['load']:.1f} at the end")
    holds = f.get("worst_hold_ms", {})
    for kind, label in (("cpu", "CPU between two ticks"), ("wall", "lateness")):
        cells = ", ".join(f"{name} {h[kind]:.0f}" if h else f"{name} -"
                          for name, h in holds.items())
        lines.append(f"  worst reactor hold ({label}), ms: {cells}")
    worst = max((h["cpu"] for name, h in holds.items() if h and name != "idle"), default=None)
    verdict = "-" if worst is None else ("met" if worst <= t["hold_ms"] else "NOT met")
    lines.append(f"  (target {t['hold_ms']:g} ms of CPU held: {verdict}; lateness also counts "
                 f"waiting for a core: the idle peer is the baseline)")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.day", description=__doc__)
    p.add_argument("--lines", type=int, default=100_000, help="lines caught up [100000]")
    p.add_argument("--timeout-scale", type=float, default=1.0)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    figures = run(a.lines, a.timeout_scale, say=lambda text: print(text, flush=True)
                  if not a.json else None)
    print(json.dumps(figures, indent=1) if a.json else render(figures))


if __name__ == "__main__":
    main()
