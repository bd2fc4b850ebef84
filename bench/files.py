"""File transfer benchmark (``python -m bench --only files``, or ``python -m bench.files``):
one file (1 GiB by default) from one peer to another on loopback, against a bare Twisted TCP
push of the same file in the same run (``FileSender``; no TLS, no hashing, no checks).

Printed: MB/s of both and their ratio; the RSS of both peers idle and at most during the
transfer; chat-line latency (one peer's stdin to the other's stdout) while idle and during
the transfer, p50 and p99.  Every child runs on 127.0.0.1 only (bench/procs.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time

from bench.holds import Watch, after_report
from bench.procs import Child, Children, fresh_multicast, peer_argv, precompile

MB = 1 << 20
#: Chat lines per second sent while measuring latency.
PING_RATE = 50.0


def make_file(path: str, size: int) -> None:
    """``size`` bytes that do not compress (random blocks, each written a few times)."""
    block = os.urandom(4 * MB)
    with open(path, "wb") as f:
        left = size
        n = 0
        while left:
            piece = block[:min(left, len(block))]
            f.write(bytes([n % 256]) + piece[1:])
            left -= len(piece)
            n += 1


# --- the baseline: a bare Twisted push ----------------------------------------------------


def push(path: str) -> None:
    """Child: listen on loopback, push the file to the first caller with FileSender."""
    from twisted.internet import protocol, reactor
    from twisted.protocols.basic import FileSender

    class Push(protocol.Protocol):
        def connectionMade(self) -> None:
            f = open(path, "rb")
            FileSender().beginFileTransfer(f, self.transport).addBoth(
                lambda _: (f.close(), self.transport.loseConnection()))

    factory = protocol.Factory.forProtocol(Push)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    print(f"port {port.getHost().port}", flush=True)
    reactor.run()


def pull(port: int, size: int) -> None:
    """Child: take the bytes and say how long they took."""
    from twisted.internet import protocol, reactor

    class Pull(protocol.Protocol):
        got = 0
        start = 0.0

        def connectionMade(self) -> None:
            self.start, self.cpu = time.monotonic(), time.process_time()

        def dataReceived(self, data: bytes) -> None:
            self.got += len(data)

        def connectionLost(self, reason: object = None) -> None:
            print(f"pulled {self.got} in {time.monotonic() - self.start:.6f} cpu "
                  f"{time.process_time() - self.cpu:.6f}", flush=True)
            reactor.stop()

    protocol.ClientCreator(reactor, Pull).connectTCP("127.0.0.1", port)
    reactor.run()


def baseline(kids: Children, path: str, size: int, timeout: float) -> dict:
    seen: dict[str, str] = {}

    def read(child: Child, line: bytes, when: float) -> None:
        text = line.decode("utf-8", "replace")
        if text.startswith(("port ", "pulled ")):
            seen[text.split()[0]] = text

    server = kids.start("push", [sys.executable, "-m", "bench.files", "--push", path], read)
    if not kids.pump(lambda: "port" in seen, 20):
        kids.stop([server])
        return {"status": "the push child did not start"}
    port = int(seen["port"].split()[1])
    client = kids.start("pull", [sys.executable, "-m", "bench.files", "--pull", str(port),
                                 str(size)], read)
    before = server.cpu_seconds() or 0.0
    ok = kids.pump(lambda: "pulled" in seen, timeout)
    cpu = {"sender": (server.cpu_seconds() or 0.0) - before}
    kids.stop([server, client])
    if not ok:
        return {"status": f"not done in {timeout:.0f} s"}
    _, got, _, seconds, _, pulled_cpu = seen["pulled"].split()
    cpu["receiver"] = float(pulled_cpu)
    if int(got) != size:
        return {"status": f"pulled {got} bytes of {size}"}
    return {"status": "ok", "seconds": float(seconds), "mb_s": size / MB / float(seconds),
            "cpu_ms_per_mb": {k: v * 1000 / (size / MB) for k, v in cpu.items()}}


# --- p2pchat ----------------------------------------------------------------------------------


class Peer:
    """One peer child and what it printed, stamped."""

    def __init__(self, kids: Children, nick: str, group: tuple[str, int], workdir: str) -> None:
        self.nick = nick
        self.lines: list[tuple[float, str]] = []
        self.pings: dict[int, float] = {}
        self.down = os.path.join(workdir, f"down-{nick}")
        profile = os.environ.get("BENCH_FILES_PROFILE")  # a folder: each peer's cProfile
        argv = peer_argv(nick, group, os.path.join(workdir, f"data-{nick}-{group[1]}"),
                         os.path.join(profile, f"{nick}.prof") if profile else None)
        rate = os.environ.get("BENCH_FILES_RATE")  # e.g. 50M: the sender's --file-rate
        extra = ["--file-rate", rate] if rate else []
        self.child = kids.start(nick, argv + ["--download-dir", self.down] + extra, self._read)

    def _read(self, child: Child, line: bytes, when: float) -> None:
        text = line.decode("utf-8", "replace")
        m = re.search(r"<\w+> ping (\d+)$", text)
        if m:
            self.pings[int(m.group(1))] = when
            return
        self.lines.append((when, text))

    def when(self, fragment: str) -> float | None:
        return next((t for t, x in self.lines if fragment in x), None)


def reactor_cpu(child: Child) -> float:
    """CPU seconds of the child's main thread (the reactor's; its tid is its pid), from
    ``/proc/PID/task/PID/schedstat``: the rest of its time is the threads' (hashing, writing)."""
    try:
        with open(f"/proc/{child.pid}/task/{child.pid}/schedstat") as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def process_cpu(child: Child) -> float:
    """CPU seconds of the whole child, its exited threads too (utime + stime of
    ``/proc/PID/stat``, 10 ms ticks): a transfer's threads end with it, and the per-thread
    counts of ``Child.cpu_seconds`` leave their time out."""
    try:
        with open(f"/proc/{child.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def p2pchat(kids: Children, path: str, size: int, timeout: float, workdir: str, say,
            holds: bool = False) -> dict:
    """The transfer between two peers; ``holds``: the peers run the stall probe (the caller
    spawns them inside ``holds.probing()``) and the worst reactor hold of each, from the
    ``/send`` (the sender hashes the file) to the end, is in ``worst_hold_ms``."""
    group = fresh_multicast()
    alice, bob = (Peer(kids, n, group, workdir) for n in ("alice", "bob"))
    out: dict = {"status": "ok"}
    try:
        if not kids.pump(lambda: bob.when("* alice joined") and alice.when("* bob joined"),
                         30):
            return {"status": "the peers did not link"}
        kids.sleep(1.0)
        sent: dict[int, float] = {}
        counter = [0]
        next_ping = [0.0]

        def ping(now: float) -> float:
            if now >= next_ping[0]:
                counter[0] += 1
                sent[counter[0]] = time.monotonic()
                kids.write(alice.child, f"ping {counter[0]}\n".encode())
                next_ping[0] = now + 1 / PING_RATE
            return next_ping[0] - now

        kids.pump(lambda: False, 2.0, tick=ping)
        idle_pings = set(sent)
        idle_rss = {p.nick: (p.child.rss_kb() or 0) / 1024 for p in (alice, bob)}
        say(f"files: offering {size // MB} MB (alice hashes it)")
        t0 = time.monotonic()
        watch = Watch([alice.child, bob.child]) if holds else None
        kids.write(alice.child, f"/send bob {path}\n".encode())
        if not kids.pump(lambda: bob.when("offers "), timeout):
            return {"status": "no offer came"}
        out["hash_s"] = (bob.when("offers ") or t0) - t0
        number = re.search(r"/accept (\d+)", next(x for _, x in bob.lines if "offers " in x))
        cpu0 = {p.nick: process_cpu(p.child) for p in (alice, bob)}
        main0 = {p.nick: reactor_cpu(p.child) for p in (alice, bob)}
        kids.write(bob.child, f"/accept {number.group(1) if number else ''}\n".encode())
        peak = dict(idle_rss)

        def during(now: float) -> float:
            for p in (alice, bob):
                peak[p.nick] = max(peak[p.nick], (p.child.rss_kb() or 0) / 1024)
            return ping(now)

        done = kids.pump(lambda: bob.when("done, SHA-256 checked") is not None
                         or bob.when(": failed") is not None, timeout, tick=during)
        cpu = {"sender": process_cpu(alice.child) - cpu0["alice"],
               "receiver": process_cpu(bob.child) - cpu0["bob"]}
        main = {"sender": reactor_cpu(alice.child) - main0["alice"],
                "receiver": reactor_cpu(bob.child) - main0["bob"]}
        start, end = bob.when("started at"), bob.when("done, SHA-256 checked")
        if not done or start is None or end is None:
            return {"status": "not done" if not done else "failed: " + str(
                [x for _, x in bob.lines if "failed" in x][:1])}
        kids.sleep(0.5)
        if watch is not None:
            after_report(kids)
            out["worst_hold_ms"] = {"sender": watch.both(alice.child),
                                    "receiver": watch.both(bob.child)}
        busy = [k for k in sent if k not in idle_pings and start <= sent[k] <= end]

        def latencies(keys) -> list[float]:
            return [(got - sent[k]) * 1000 for k in keys
                    if (got := bob.pings.get(k)) is not None]

        idle_ms, busy_ms = latencies(sorted(idle_pings)), latencies(busy)
        out.update({
            "seconds": end - start, "mb_s": size / MB / (end - start),
            "cpu_ms_per_mb": {k: v * 1000 / (size / MB) for k, v in cpu.items()},
            "reactor_cpu_ms_per_mb": {k: v * 1000 / (size / MB) for k, v in main.items()},
            "rss_idle_mb": idle_rss, "rss_peak_mb": peak,
            "rss_growth_mb": {n: peak[n] - idle_rss[n] for n in peak},
            "latency_idle_p50_ms": _percentile(idle_ms, 0.5),
            "latency_idle_p99_ms": _percentile(idle_ms, 0.99),
            "latency_p50_ms": _percentile(busy_ms, 0.5),
            "latency_p99_ms": _percentile(busy_ms, 0.99),
            "pings_during": len(busy), "pings_lost": sum(1 for k in busy if k not in bob.pings),
        })
        got = os.path.join(bob.down, os.path.basename(path))
        if not os.path.exists(got) or os.path.getsize(got) != size:
            out["status"] = "the file is not there"
        return out
    finally:
        kids.quit_cleanly([alice.child, bob.child], timeout=10)


def run(kids: Children, size: int, workdir: str, say, timeout_scale: float = 1.0) -> dict:
    path = os.path.join(workdir, "transfer.bin")
    say(f"files: writing a {size // MB} MB file")
    make_file(path, size)
    timeout = max(60.0, size / MB / 10) * timeout_scale  # 10 MB/s at the least
    say("files: bare Twisted push")
    base = baseline(kids, path, size, timeout)
    say("files: p2pchat transfer")
    ours = p2pchat(kids, path, size, timeout, workdir, say)
    try:
        os.unlink(path)
    except OSError:
        pass
    result = {"size_mb": size / MB, "baseline": base, "p2pchat": ours, "load": os.getloadavg()[0]}
    if base.get("mb_s") and ours.get("mb_s"):
        result["ratio"] = ours["mb_s"] / base["mb_s"]
        # CPU per MB, the slower side of each: what the rate would be on idle cores
        worst = max(ours["cpu_ms_per_mb"].values()), max(base["cpu_ms_per_mb"].values())
        if worst[0] > 0:
            result["cpu_ratio"] = worst[1] / worst[0]
    return result


def render(r: dict) -> str:
    b, p = r["baseline"], r["p2pchat"]

    def f(v, spec=".1f") -> str:
        return "-" if v is None else format(v, spec)

    lines = [f"File transfer: {r['size_mb']:.0f} MB over loopback (load {r['load']:.2f})"]
    lines.append(f"  {'bare Twisted push (no TLS, no hashing)':<44}{f(b.get('mb_s')):>10} MB/s"
                 + ("" if b.get("status") == "ok" else f"  ({b.get('status')})"))
    lines.append(f"  {'p2pchat (TLS, BLAKE3 chunks, whole SHA-256)':<44}{f(p.get('mb_s')):>10} MB/s"
                 + ("" if p.get("status") == "ok" else f"  ({p.get('status')})"))
    if "ratio" in r:
        lines.append(f"  {'p2pchat / bare push (target >= 50%)':<44}{r['ratio']:>10.0%}")
        pc, bc = p["cpu_ms_per_mb"], b["cpu_ms_per_mb"]
        lines.append(f"  {'CPU ms/MB sender / receiver, p2pchat':<44}"
                     f"{f(pc['sender'], '.2f')} / {f(pc['receiver'], '.2f')}")
        rc = p.get("reactor_cpu_ms_per_mb", {})
        lines.append(f"  {'  of it in the reactor thread':<44}"
                     f"{f(rc.get('sender'), '.2f')} / {f(rc.get('receiver'), '.2f')}")
        lines.append(f"  {'CPU ms/MB sender / receiver, bare push':<44}"
                     f"{f(bc['sender'], '.2f')} / {f(bc['receiver'], '.2f')}")
        if "cpu_ratio" in r:
            lines.append(f"  {'rate on idle cores, p2pchat / bare (by CPU)':<44}"
                         f"{r['cpu_ratio']:>10.0%}")
    if p.get("status") == "ok":
        lines.append(f"  {'offer hashing by the sender':<44}{f(p['hash_s'], '.2f'):>10} s")
        for n in ("alice", "bob"):
            lines.append(f"  {'RSS ' + n + ' idle -> peak (target <= +20 MB)':<44}"
                         f"{f(p['rss_idle_mb'][n]):>10} -> {f(p['rss_peak_mb'][n])} MB "
                         f"(+{f(p['rss_growth_mb'][n])})")
        lines.append(f"  {'chat latency p50 / p99, idle':<44}"
                     f"{f(p['latency_idle_p50_ms'])} / {f(p['latency_idle_p99_ms'])} ms")
        lines.append(f"  {'chat latency p50 / p99, during (<= 20 ms)':<44}"
                     f"{f(p['latency_p50_ms'])} / {f(p['latency_p99_ms'])} ms "
                     f"({p['pings_during']} lines, {p['pings_lost']} lost)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    a = argparse.ArgumentParser(prog="python -m bench.files", description=__doc__)
    a.add_argument("--size-mb", type=int, default=1024, help="the file's size [1024]")
    a.add_argument("--json", action="store_true")
    a.add_argument("--push", help=argparse.SUPPRESS)
    a.add_argument("--pull", nargs=2, type=int, help=argparse.SUPPRESS)
    o = a.parse_args(argv)
    if o.push:
        push(o.push)
        return 0
    if o.pull:
        pull(*o.pull)
        return 0
    if not 1 <= o.size_mb <= 16384:
        a.error("--size-mb is 1 to 16384")
    precompile()
    workdir = tempfile.mkdtemp(prefix="p2pchat-bench-files-")
    kids = Children(workdir)
    try:
        result = run(kids, o.size_mb * MB, workdir,
                     lambda t: print(f"[{time.strftime('%H:%M:%S')}] {t}", file=sys.stderr))
    finally:
        kids.kill_all()
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=2) if o.json else render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
