"""``python -m bench --only stall``: the longest the reactor of a peer was held, in each kind of
heavy work (issue 21, item 6: target 50 ms each).

Every peer of this phase runs with ``P2PCHAT_STALL_PROBE=1`` (p2pchat/lateness.py): a 10 ms
timer whose worst lateness of each second goes to the peer's log.  The bench notes where each
log ends before a case, runs the case, waits for the probe's next report, and takes the worst
lateness logged since.  The cases:

- *idle* (the baseline of the run): two linked peers doing nothing for 3 s;
- *saturated receive*: 20,000 lines said by one peer as fast as it takes them, the other
  receiving them (the receiver's figure; the sender's is shown too);
- *history commit burst*: 2,000 lines written to a peer's stdin at once (signed, sent and
  saved in one go), the sender's and the receiver's worst;
- *paste*: 20,000 characters pasted (bracketed) into a console peer on a pseudo-terminal;
- hooks for the 100,000-line catch-up and a file transfer: ``CASES`` names them with no
  function until those features exist, and they print ``n/a (not built)``.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import termios
import time
from typing import Callable, Optional

from bench.procs import Child, Children, child_env, fresh_multicast, peer_argv
from bench.scenarios import died, mesh_full, mesh_timeout, start_peers

#: What the probe logs (p2pchat/lateness.py).
PROBE_ENV = "P2PCHAT_STALL_PROBE"
PROBE_LINE = re.compile(rb"stall probe: worst ([0-9.]+) ms late, ([0-9.]+) ms of CPU")
#: The target, milliseconds.
TARGET_MS = 50.0
RECEIVE_LINES = 20_000
BURST_LINES = 2_000
PASTE_CHARS = 20_000

Case = Callable[[Children, float], dict]


def log_of(child: Child) -> str:
    """The peer's log file (its data dir is the argument after --data-dir)."""
    argv = child.argv
    return os.path.join(argv[argv.index("--data-dir") + 1], "p2pchat.log")


def log_end(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def worst_since(path: str, offset: int, cpu: bool = True) -> float | None:
    """The worst the probe logged after ``offset`` bytes of its log, in ms: the most CPU
    used between two of its ticks (``cpu``: the reactor held, whatever the machine's load),
    else the worst lateness (which also counts waiting for a core)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read()
    except OSError:
        return None
    found = [float(m.group(2 if cpu else 1)) for m in PROBE_LINE.finditer(text)]
    return max(found) if found else None


def after_report(kids: Children) -> None:
    """Wait past the probe's next report (it logs once a second)."""
    kids.sleep(1.3)


class Watch:
    """Where each peer's log ended when a case began."""

    def __init__(self, children: list[Child]) -> None:
        self.marks = {c.name: (log_of(c), log_end(log_of(c))) for c in children}

    def worst(self, child: Child, cpu: bool = True) -> float | None:
        path, offset = self.marks[child.name]
        return worst_since(path, offset, cpu)


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


def paste_case(kids: Children, scale: float) -> dict:
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


#: (key, what the table says, the function that runs it, or None until the feature exists:
#: the lead wires ``catchup`` and ``file`` in when those land).
CASES: list[tuple[str, str, Optional[Case]]] = [
    ("idle", "idle (baseline)", None),
    ("receive", f"saturated receive ({RECEIVE_LINES:,} lines)", None),
    ("burst", f"history commit burst ({BURST_LINES:,} lines said at once)", None),
    ("paste", f"paste of {PASTE_CHARS:,} characters (console, pty)", paste_case),
    ("catchup", "100,000-line catch-up", None),
    ("file", "file transfer", None),
]
PAIR = ("idle", "receive", "burst")


def run(kids: Children, scale: float, say: Callable[[str], None]) -> dict:
    """Every case, with the probe on for these peers only (the variable is removed after)."""
    before = os.environ.get(PROBE_ENV)
    os.environ[PROBE_ENV] = "1"
    out: dict = {}
    try:
        out.update(pair_cases(kids, scale))
        for key, label, case in CASES:
            if key in PAIR:
                continue
            out[key] = case(kids, scale) if case is not None else {"status": "n/a (not built)"}
        for key, label, _ in CASES:
            entry = out[key]
            say(f"stall: {label}: " + (f"{entry['worst_ms']:.1f} ms"
                                       if entry.get("worst_ms") is not None
                                       else entry["status"]))
    finally:
        if before is None:
            os.environ.pop(PROBE_ENV, None)
        else:
            os.environ[PROBE_ENV] = before
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
        lines.append(f"  {label:<52}{cell}")
    return "\n".join(lines)
