"""``python -m bench --only reference --reference DIR``: the same burst through the reference Go
peer and through ours, side by side in one run.

The reference's networking core (its ``internal/`` and ``pkg/`` packages, without ``pkg/ui``)
is copied from the checkout DIR into a temporary build folder, with a ``go.mod`` of ours (the
checkout's asks for a newer Go than the system's and for the UI's modules, which the core does
not import) and our stdin/stdout driver (``bench/refpeer/main.go``), and built with the
system's ``go`` without touching the network (``GOPROXY=off``).  Nothing of it is kept.

Network safety: the reference joins its multicast group on the system's default interface and
can't be told otherwise, so its three peers run in a network namespace of their own that has
only loopback (``unshare -n``, the first peer; the other two join it with ``nsenter``), which
disappears with them.  A second peer is started only once the first one's namespace is known
to differ from ours.  Our three peers run on loopback as every bench peer does
(``--interface 127.0.0.1`` and a private group; procs.py).

The burst: ``lines`` marked lines written at once to the sender's stdin; two receivers print
what they show.  Delivered rate = lines received by both receivers together / 2, divided by
the time from the write to the last line received.  The reference drops lines when its send
queue (100 a link) is full, so its run ends after ``QUIET`` seconds with no new line.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

from bench.procs import Child, Children, fresh_multicast
from bench.scenarios import Delivery, Endpoint, died, mesh_full, mesh_timeout, now_us, start_peers

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "refpeer" / "main.go"
#: the packages of the reference that make its networking core (pkg/ui is left out)
CORE = ("internal/peer", "pkg/chat", "pkg/discovery", "pkg/logger")
#: a run ends once no receiver showed a new line for this long (the reference drops lines)
QUIET = 2.0
#: after a burst, the peers' CPU is read again once none used more than SETTLE_CPU seconds in
#: SETTLE_STEP (their work behind the burst done: ours make history rows in a lull, lull.py),
#: or after SETTLE_MAX: the "all of it" CPU figures, beside those of the burst alone
SETTLE_STEP = 0.5
SETTLE_CPU = 0.01
SETTLE_MAX = 15.0
#: the ports of the Go peers, inside their own namespace (nothing else listens there)
GO_PORTS = (9101, 9102, 9103)
#: how long a build may take (the first one compiles the standard library's packages)
BUILD_TIMEOUT = 300.0
#: sets up the namespace's loopback as /work/shared/tools/lan-sandbox does, then runs the peer
NAMESPACE_SETUP = ("ip link set lo up && ip link set lo multicast on && "
                   "ip route add 224.0.0.0/4 dev lo src 127.0.0.1 && exec \"$@\"")


def missing(reference: str | None) -> str | None:
    """Why the side-by-side run can't be made here, or None."""
    if not reference:
        return "no --reference DIR given (a checkout of Redsskull/p2pchat)"
    if not shutil.which("go"):
        return "no go on PATH"
    for package in CORE:
        if not (Path(reference) / package).is_dir():
            return f"{reference} is not a checkout of the reference (no {package}/)"
    for tool in ("unshare", "nsenter", "ip"):
        if not shutil.which(tool):
            return f"no {tool} on PATH (the reference runs in a namespace of its own)"
    if os.geteuid() != 0:
        return "not root: unshare -n (a namespace for the reference's multicast) needs root"
    return None


def build(reference: str, workdir: str) -> tuple[str | None, str]:
    """Build the driver against the reference's core: (path of the binary, or None; what
    ``go`` said, or why not)."""
    folder = Path(tempfile.mkdtemp(prefix="refpeer-", dir=workdir))
    for package in CORE:
        shutil.copytree(Path(reference) / package, folder / package,
                        ignore=shutil.ignore_patterns("*_test.go"))
    (folder / "cmd" / "refpeer").mkdir(parents=True)
    shutil.copy(DRIVER, folder / "cmd" / "refpeer" / "main.go")
    # The core imports only the standard library; its own go.mod says 1.25.4 and lists the
    # UI's modules, which a Go 1.19 can't take and which would need the network.
    (folder / "go.mod").write_text("module p2pchat\n\ngo 1.19\n")
    env = dict(os.environ, GOFLAGS="-mod=mod", GOPROXY="off", GOTOOLCHAIN="local")
    if not env.get("GOCACHE") and not env.get("HOME"):
        env["GOCACHE"] = str(Path(workdir) / "gocache")  # else Go's own, kept between runs
    binary = folder / "refpeer"
    try:
        done = subprocess.run(["go", "build", "-o", str(binary), "./cmd/refpeer"], cwd=folder,
                              env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"go build failed: {e}"
    if done.returncode != 0:
        return None, f"go build failed: {(done.stderr or done.stdout).strip()[:2000]}"
    version = subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip()
    return str(binary), version


class GoPeer(Endpoint):
    """A reference peer as the bench sees it: ``- linked N`` lines say how many it has."""

    def on_line(self, child: Child, line: bytes, when: float) -> None:
        if line.startswith(b"- linked "):
            n = int(line.split()[-1])
            self.linked = {b"%d" % i for i in range(n)}
            self.full_at = when if n >= self.want else None
            return
        super().on_line(child, line, when)


def _same_namespace(pid: int) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net")
    except OSError:
        return True  # not known: taken as the same (no peer joins it)


def start_go(kids: Children, binary: str, scale: float) -> tuple[list[GoPeer], str]:
    """Three reference peers in a loopback-only namespace: (peers, "" or why not)."""
    group, port = fresh_multicast()
    eps: list[GoPeer] = []
    first: Child | None = None
    for i, (nick, tcp) in enumerate(zip(("gsnd", "gr1", "gr2"), GO_PORTS)):
        ep = GoPeer(nick)
        ep.want = len(GO_PORTS) - 1
        args = [binary, "-username", nick, "-port", str(tcp), "-multicast", f"{group}:{port}"]
        if first is None:
            argv = ["unshare", "-n", "sh", "-c", NAMESPACE_SETUP, "sh"] + args
        else:
            argv = ["nsenter", f"--net=/proc/{first.pid}/ns/net"] + args
        ep.child = kids.start(f"ref-{nick}", argv, ep.on_line)
        eps.append(ep)
        if first is None:
            first = ep.child
            if not kids.pump(lambda: ep.up is not None or not first.alive(), 20 * scale):
                return eps, "the first reference peer did not start"
            if not first.alive() or ep.up is None:
                return eps, f"the first reference peer exited: {_stderr(first)}"
            if _same_namespace(first.pid):
                return eps, "the reference's namespace is this machine's own: not run"
    return eps, ""


def _stderr(child: Child) -> str:
    try:
        return Path(child.stderr_path).read_text()[-300:].strip() or "(nothing on stderr)"
    except OSError:
        return "(no stderr)"


def burst(kids: Children, sender: Child, receivers: list[Endpoint], tag: str, count: int,
          timeout: float) -> dict:
    """``count`` marked lines written at once to ``sender``; wait for both receivers to show
    them all, for QUIET seconds with nothing new, or for ``timeout``."""
    d = Delivery(tag.encode(), count, len(receivers))
    for i, ep in enumerate(receivers):
        ep.delivery, ep.index = d, i
    everyone = [sender] + [ep.child for ep in receivers if ep.child is not None]
    cpu_before = [c.cpu_seconds() for c in everyone]
    waited_before = sender.waited_seconds()
    btag = tag.encode()
    t = now_us()
    start = time.monotonic()
    kids.write(sender, b"".join(b"~%s:%d:%d\n" % (btag, i, t) for i in range(count)))

    def settled() -> bool:
        now = time.monotonic()
        return d.done() or now - (d.last or start) > QUIET
    kids.pump(settled, timeout)
    cpu_after = [c.cpu_seconds() for c in everyone]
    waited_after = sender.waited_seconds()
    cpu_settled = _settled_cpu(kids, everyone, cpu_after)
    for ep in receivers:
        ep.delivery = None
    delivered = sum(d.distinct)
    seconds = d.last - start if d.last else None
    result: dict = {"sent": count, "receivers": len(receivers), "delivered": delivered,
                    "share": delivered / (count * len(receivers)), "duplicated": d.dups,
                    "seconds": seconds, "complete": d.done()}
    if seconds:
        result["lines_per_s"] = delivered / len(receivers) / seconds
    used = [(a - b) * 1e6 / count if a is not None and b is not None else None
            for a, b in zip(cpu_after, cpu_before)]
    if None not in used and len(used) == 3:
        result["sender_cpu_us_per_line"] = used[0]
        result["receiver_cpu_us_per_line"] = statistics.median(used[1:])
    spent = [(a - b) * 1e6 / count if a is not None and b is not None else None
             for a, b in zip(cpu_settled, cpu_before)]
    if None not in spent and len(spent) == 3:
        result["sender_cpu_all_us_per_line"] = spent[0]
        result["receiver_cpu_all_us_per_line"] = statistics.median(spent[1:])
    if seconds and used[0] is not None and waited_before is not None and waited_after is not None:
        # what held the sender: its own work, a busy machine, or waiting (its stdin, its links)
        running = used[0] * count / 1e6
        waiting = waited_after - waited_before
        result["sender_shares"] = (running / seconds, waiting / seconds,
                                   max(0.0, 1 - (running + waiting) / seconds))
    return result


def _settled_cpu(kids: Children, everyone: list[Child],
                 last: list[float | None]) -> list[float | None]:
    """The CPU seconds of ``everyone`` once their work behind the burst is done (SETTLE_*)."""
    began = time.monotonic()
    while time.monotonic() - began < SETTLE_MAX:
        kids.sleep(SETTLE_STEP)
        now = [c.cpu_seconds() for c in everyone]
        if all(a is not None and b is not None and a - b < SETTLE_CPU
               for a, b in zip(now, last)):
            return now
        last = now
    return last


def _room(kids: Children, eps: list, scale: float) -> str:
    """"" once every peer of ``eps`` has both others, else why not."""
    if not kids.pump(lambda: mesh_full(eps) or bool(died(eps)), mesh_timeout(3, scale)):
        return "the three did not link up"
    if died(eps):
        return f"a peer died: {died(eps)}"
    kids.sleep(0.5)
    return ""


def run(kids: Children, reference: str | None, workdir: str, lines: int, trials: int,
        scale: float, say: Callable[[str], None]) -> dict:
    """Both rooms of three, then ``trials`` bursts through each, one after the other."""
    why = missing(reference)
    if why:
        say(f"reference: skipped: {why}")
        return {"status": f"skipped: {why}"}
    assert reference is not None
    say("reference: building its networking core with our driver")
    binary, said = build(reference, workdir)
    if binary is None:
        say(f"reference: {said}")
        return {"status": said}
    out: dict = {"go": said, "lines": lines, "trials": [], "status": "ok"}
    go, why = start_go(kids, binary, scale)
    ours = start_peers(kids, ["osnd", "or1", "or2"], fresh_multicast())
    try:
        why = why or _room(kids, go, scale)
        if why:
            out["status"] = f"reference: {why}"
            return out
        why = _room(kids, ours, scale)
        if why:
            out["status"] = f"p2pchat: {why}"
            return out
        for side, eps in (("reference", go), ("p2pchat", ours)):  # warm up, links proven
            burst(kids, eps[0].child, eps[1:], f"w{side[0]}", 20, 15 * scale)
        for n in range(trials):
            trial = {}
            for side, eps in (("reference", go), ("p2pchat", ours)):
                got = burst(kids, eps[0].child, eps[1:], f"{side[0]}{n}", lines,
                            (30 + lines / 500) * scale)
                trial[side] = got
                say(f"reference: trial {n + 1} {side}: {got['share']:.1%} delivered, "
                    f"{got.get('lines_per_s') or 0:.0f} lines/s")
                kids.sleep(0.5)
            out["trials"].append(trial)
        for side in ("reference", "p2pchat"):
            runs = [t[side] for t in out["trials"]]
            out[side] = {
                "share": statistics.median(r["share"] for r in runs),
                "share_min": min(r["share"] for r in runs),
                "lines_per_s": statistics.median(r.get("lines_per_s") or 0 for r in runs),
                "sender_cpu_us_per_line": _median(runs, "sender_cpu_us_per_line"),
                "receiver_cpu_us_per_line": _median(runs, "receiver_cpu_us_per_line"),
                "sender_cpu_all_us_per_line": _median(runs, "sender_cpu_all_us_per_line"),
                "receiver_cpu_all_us_per_line": _median(runs, "receiver_cpu_all_us_per_line"),
                "sender_shares": _median_shares(runs),
            }
        if out["reference"]["lines_per_s"]:
            out["ratio"] = out["p2pchat"]["lines_per_s"] / out["reference"]["lines_per_s"]
        return out
    finally:
        kids.stop([ep.child for ep in go + ours if ep.child in kids.all])


def _median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def _median_shares(runs: list[dict]) -> tuple[float, float, float] | None:
    """The sender's shares of the burst (running, waiting for a core, idle) in the run of
    the median rate, or None without the scheduler's figures."""
    rated = sorted((r for r in runs if r.get("sender_shares")),
                   key=lambda r: r.get("lines_per_s") or 0)
    if not rated:
        return None
    running, waiting, idle = rated[len(rated) // 2]["sender_shares"]
    return running, waiting, idle


def render(r: dict) -> str:
    if "p2pchat" not in r:
        return f"Side by side with the reference Go peer: {r.get('status')}"
    lines = [f"Side by side with the reference Go peer ({r['go']}): a burst of {r['lines']} "
             f"lines, one sender, two receivers (median of {len(r['trials'])})"]
    lines.append(f"  {'':<40}{'reference':>14}{'p2pchat':>14}")
    ref, ours = r["reference"], r["p2pchat"]
    shares = "".join(f"{'%.1f%% (%.0f%%)' % (100 * e['share'], 100 * e['share_min']):>14}"
                     for e in (ref, ours))
    lines.append(f"  {'share delivered (lowest)':<40}{shares}")
    lines.append(f"  {'delivered lines/s':<40}{ref['lines_per_s']:>14.0f}"
                 f"{ours['lines_per_s']:>14.0f}")
    for key, label in (("sender_cpu_us_per_line", "sender CPU us/line, the burst"),
                       ("receiver_cpu_us_per_line", "receiver CPU us/line, the burst"),
                       ("sender_cpu_all_us_per_line", "sender CPU us/line, all of it"),
                       ("receiver_cpu_all_us_per_line", "receiver CPU us/line, all of it")):
        cells = "".join(f"{v:>14.1f}" if v is not None else f"{'-':>14}"
                        for v in (ref.get(key), ours.get(key)))
        lines.append(f"  {label:<40}{cells}")
    cells = "".join(f"{'%.0f/%.0f/%.0f%%' % tuple(100 * x for x in e['sender_shares']):>14}"
                    if e.get("sender_shares") else f"{'-':>14}" for e in (ref, ours))
    lines.append(f"  {'sender running/waiting for a core/idle':<40}{cells}")
    if "ratio" in r:
        lines.append(f"  {'p2pchat / reference, delivered rate':<40}{r['ratio']:>27.2f}x")
    return "\n".join(lines)
