"""``python -m bench --only stall``: the longest the reactor of a peer was held, in each kind of
heavy work (issue 21, item 6: target 50 ms each).

Every peer of this phase runs the stall probe (p2pchat/lateness.py, turned on by
``P2PCHAT_STALL_PROBE=1``): a 10 ms timer whose worst lateness of each second, and the most CPU
the process used between two of its calls, go to the peer's log.  The bench notes where each
log ends before a case, runs the case, waits for the probe's next report, and takes the worst
logged since (bench/holds.py).  The cases:

- *idle* (the baseline of the run): two linked peers doing nothing for 3 s;
- *saturated receive*: 20,000 lines said by one peer as fast as it takes them, the other
  receiving them (the receiver's figure; the sender's is shown too);
- *catch-up*: the day of catch-up of bench/day.py (``--stall-day-lines``, 100,000), the away
  peer and the keeper handing the lines on;
- *history commit burst*: 2,000 lines written to a peer's stdin at once (signed, sent and
  saved in one go), the sender's and the receiver's worst;
- *paste*: 20,000 characters pasted (bracketed) into a console peer on a pseudo-terminal;
- *file transfer*: the transfer of bench/files.py (``--stall-file-mb``, 256 MB), from the
  ``/send`` (the sender hashes the file) to the receiver's check of the whole file.
"""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import termios
import time
from typing import Callable, Optional

from bench import day as day_bench
from bench import files as files_bench
from bench.holds import Watch, after_report, log_end, probing, worst_since
from bench.procs import Child, Children, child_env, fresh_multicast, peer_argv
from bench.scenarios import died, mesh_full, mesh_timeout, start_peers

#: The target, milliseconds.
TARGET_MS = 50.0
RECEIVE_LINES = 20_000
BURST_LINES = 2_000
PASTE_CHARS = 20_000

#: The sizes of the catch-up and of the file, unless the run asks otherwise.
DAY_LINES = 100_000
FILE_MB = 256

Case = Callable[[Children, float, dict], dict]


def _pair(kids: Children, scale: float):
    eps = start_peers(kids, ["ssnd", "srcv"], fresh_multicast())
    if not kids.pump(lambda: mesh_full(eps) or bool(died(eps)), mesh_timeout(2, scale)):
        kids.stop([ep.child for ep in eps])
        return None
    kids.sleep(1.5)  # the probe's first reports, the links settled
    return eps


def _say(kids: Children, sender: Child, receiver, tag: bytes, count: int,
         timeout: float) -> bool:
    """Write ``count`` lines to the sender at once; True when the receiver printed them all."""
    before = receiver.marked
    kids.write(sender, b"".join(b"~%s:%d:0\n" % (tag, i) for i in range(count)))
    return kids.pump(lambda: receiver.marked - before >= count, timeout)


def pair_cases(kids: Children, scale: float) -> dict:
    """Idle, saturated receive and the commit burst, on one linked pair."""
    eps = _pair(kids, scale)
    if eps is None:
        return {k: {"status": "the pair did not link"} for k in ("idle", "receive", "burst")}
    snd, rcv = eps
    out: dict = {}
    try:
        watch = Watch([snd.child, rcv.child])
        kids.sleep(3.0)
        after_report(kids)
        out["idle"] = {"status": "ok", "worst_ms": watch.worst(rcv.child),
                       "sender_worst_ms": watch.worst(snd.child),
                       "late_ms": watch.worst(rcv.child, cpu=False)}
        for key, tag, count in (("receive", b"sat", RECEIVE_LINES),
                                ("burst", b"bur", BURST_LINES)):
            watch = Watch([snd.child, rcv.child])
            ok = _say(kids, snd.child, rcv, tag, count, (30 + count / 500) * scale)
            after_report(kids)
            out[key] = {"status": "ok" if ok else "timed out", "lines": count,
                        "worst_ms": watch.worst(rcv.child),
                        "sender_worst_ms": watch.worst(snd.child),
                        "late_ms": watch.worst(rcv.child, cpu=False)}
        burst = out["burst"]
        burst["receiver_worst_ms"] = burst["worst_ms"]
        burst["worst_ms"] = max((v for v in (burst["worst_ms"], burst["sender_worst_ms"])
                                 if v is not None), default=None)
        return out
    finally:
        kids.stop([ep.child for ep in eps])


def paste_case(kids: Children, scale: float, sizes: dict) -> dict:
    """A console peer on a pseudo-terminal of 100 x 30 takes a bracketed paste of
    ``PASTE_CHARS`` characters (one line: it is refused as too long, as it should be, after
    the console showed it being pasted)."""
    data_dir = os.path.join(kids.workdir, "data-paste")
    argv = peer_argv("paster", fresh_multicast(), data_dir)
    argv[argv.index("--ui") + 1] = "console"
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = dict(child_env(), TERM="xterm-256color")
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                            cwd=kids.workdir, start_new_session=True)
    os.close(slave)
    os.set_blocking(master, False)
    screen = bytearray()

    def drain(seconds: float, until: Callable[[], bool] = lambda: False) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                chunk = os.read(master, 65536)
                screen.extend(chunk[-4096:])
                del screen[:-8192]
                continue
            except BlockingIOError:
                pass
            except OSError:
                return until()
            if until():
                return True
            time.sleep(0.01)
        return until()

    try:
        path = os.path.join(data_dir, "p2pchat.log")
        if not drain(20 * scale, lambda: b"stall probe" in _tail(path)):
            return {"status": "the console did not start"}
        offset = log_end(path)
        paste = b"\x1b[200~" + b"p" * PASTE_CHARS + b"\x1b[201~"
        sent = 0
        deadline = time.monotonic() + 10 * scale
        while sent < len(paste) and time.monotonic() < deadline:  # bounded: one paste
            try:
                sent += os.write(master, paste[sent:sent + 4096])
            except BlockingIOError:
                drain(0.01)
        os.write(master, b"\r")  # Enter: the console refuses a line that long, and says so
        drain(3.0)
        return {"status": "ok" if sent == len(paste) else "paste not all written",
                "chars": PASTE_CHARS, "worst_ms": worst_since(path, offset),
                "late_ms": worst_since(path, offset, cpu=False)}
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        os.close(master)


def _tail(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, log_end(path) - 4096))
            return f.read()
    except OSError:
        return b""


def _worse(*holds: dict[str, float] | None, kind: str = "cpu") -> float | None:
    return max((h[kind] for h in holds if h), default=None)


def catchup_case(kids: Children, scale: float, sizes: dict) -> dict:
    """The day of catch-up (bench/day.py, with its own peers): the worse of the away peer and
    the keeper handing the lines on (the idle peer beside them, in the JSON, is the baseline)."""
    day = day_bench.run(sizes["day_lines"], scale)
    holds = day.get("worst_hold_ms", {})
    away, keeper = holds.get("away"), holds.get("keeper")
    return {"status": day.get("status", "-"), "lines": day["lines"],
            "seconds": day.get("seconds_from_spawn"), "duplicates": day.get("duplicates"),
            "worst_ms": _worse(away, keeper), "receiver_worst_ms": _worse(away),
            "sender_worst_ms": _worse(keeper), "late_ms": _worse(away, kind="wall"),
            "idle_worst_ms": _worse(holds.get("idle"))}


def file_case(kids: Children, scale: float, sizes: dict) -> dict:
    """A file of ``file_mb`` between two peers (bench/files.py's transfer, no baseline)."""
    size = sizes["file_mb"] * files_bench.MB
    path = os.path.join(kids.workdir, "stall-transfer.bin")
    files_bench.make_file(path, size)
    try:
        got = files_bench.p2pchat(kids, path, size, max(60.0, size / files_bench.MB / 10) * scale,
                                  kids.workdir, lambda text: None, holds=True)
    finally:
        os.unlink(path)
    holds = got.get("worst_hold_ms", {})
    snd, rcv = holds.get("sender"), holds.get("receiver")
    return {"status": got.get("status", "-"), "size_mb": sizes["file_mb"],
            "mb_s": got.get("mb_s"), "worst_ms": _worse(snd, rcv),
            "receiver_worst_ms": _worse(rcv), "sender_worst_ms": _worse(snd),
            "late_ms": _worse(rcv, kind="wall")}


#: (key, what the table says (formatted with the case's figures), the function that runs it;
#: None for the cases run on one linked pair by ``pair_cases``).
CASES: list[tuple[str, str, Optional[Case]]] = [
    ("idle", "idle (baseline)", None),
    ("receive", f"saturated receive ({RECEIVE_LINES:,} lines)", None),
    ("catchup", "{lines:,}-line catch-up (handed on, checked)", catchup_case),
    ("burst", f"history commit burst ({BURST_LINES:,} lines said at once)", None),
    ("paste", f"paste of {PASTE_CHARS:,} characters (console, pty)", paste_case),
    ("file", "file transfer ({size_mb:,} MB)", file_case),
]
PAIR = ("idle", "receive", "burst")


def label_of(template: str, entry: dict) -> str:
    try:
        return template.format(**entry)
    except (KeyError, ValueError):
        return template.replace("{lines:,}", "?").replace("{size_mb:,}", "?")


def run(kids: Children, scale: float, say: Callable[[str], None],
        day_lines: int = DAY_LINES, file_mb: int = FILE_MB) -> dict:
    """Every case, with the probe on for these peers only (the variable is removed after)."""
    sizes = {"day_lines": day_lines, "file_mb": file_mb}
    out: dict = {}
    with probing():
        out.update(pair_cases(kids, scale))
        for key, label, case in CASES:
            if case is not None:
                say(f"stall: {label_of(label, sizes | {'lines': day_lines, 'size_mb': file_mb})}")
                out[key] = case(kids, scale, sizes)
    for key, label, _ in CASES:
        entry = out[key]
        say(f"stall: {label_of(label, entry)}: " + (f"{entry['worst_ms']:.1f} ms"
                                                  if entry.get("worst_ms") is not None
                                                  else entry["status"]))
    return out


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def render(r: dict) -> str:
    lines = [f"Longest reactor hold (stall probe, 10 ms timer), ms; target {TARGET_MS:.0f}",
             f"  {'':<52}{'held (CPU)':>12}{'sender':>9}{'late (wall)':>13}"]
    for key, label, _ in CASES:
        e = r.get(key, {})
        if e.get("worst_ms") is not None:
            cell = (f"{e['worst_ms']:>12.1f}{fmt(e.get('sender_worst_ms')):>9}"
                    f"{fmt(e.get('late_ms')):>13}")
            if e.get("status") != "ok":
                cell += f" [{e.get('status')}]"
        else:
            cell = f"{str(e.get('status', '-')):>12}"
        lines.append(f"  {label_of(label, e):<52}{cell}")
    over = [label_of(label, r[key]) for key, label, _ in CASES
            if (r.get(key, {}).get("worst_ms") or 0) > TARGET_MS]
    lines.append("  (held: the receiver's; for the catch-up, the burst and the file the worse of "
                 "the two peers; " + ("over the target: " + "; ".join(over) if over
                                     else "every case within the target") + ")")
    return "\n".join(lines)
