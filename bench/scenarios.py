"""The measurements: mesh formation, fan-out (ours and the baseline), idle cost.  Each returns
plain figures (a dict); a phase that runs out of time says ``"status": "timed out"`` with what
it saw, instead of hanging."""

from __future__ import annotations

import os
import re
import statistics
import sys
import time
from datetime import datetime
from typing import Callable

from bench.holds import log_of
from bench.procs import Child, Children, fresh_multicast
from p2pchat.logs import TIME_FORMAT

#: the marker the bench puts in every line it sends: ~TAG:SEQ:SENT_MICROSECONDS
MARK = b"~"


def now_us() -> int:
    return int(time.monotonic() * 1e6)


class Delivery:
    """Who received which of ``count`` marked lines (tag ``tag``), with latencies."""

    def __init__(self, tag: bytes, count: int, receivers: int) -> None:
        self.tag = tag
        self.count = count
        self.seen = [bytearray(count) for _ in range(receivers)]
        self.distinct = [0] * receivers
        self.complete = 0
        self.dups = 0
        self.stray = 0
        self.latencies: list[int] = []  # microseconds
        self.first = 0.0
        self.last = 0.0

    def got(self, receiver: int, token: bytes, when: float) -> None:
        parts = token.split(b":")
        if len(parts) != 3 or parts[0] != self.tag:
            self.stray += 1
            return
        try:
            seq, sent = int(parts[1]), int(parts[2])
        except ValueError:
            self.stray += 1
            return
        seen = self.seen[receiver]
        if not 0 <= seq < self.count:
            self.stray += 1
            return
        if seen[seq]:
            self.dups += 1
            return
        seen[seq] = 1
        self.latencies.append(int(when * 1e6) - sent)
        if not self.first:
            self.first = when
        self.last = when
        self.distinct[receiver] += 1
        if self.distinct[receiver] == self.count:
            self.complete += 1

    def done(self) -> bool:
        return self.complete == len(self.seen)

    def lost(self) -> int:
        return self.count * len(self.seen) - sum(self.distinct)


def percentile(values: list[int], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


class Endpoint:
    """A process in a fan-out, as the bench sees it: ours (a peer) or the baseline's."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.child: Child | None = None
        self.up: float | None = None
        self.port: int | None = None
        self.linked: set[bytes] = set()
        self.listed_at: dict[bytes, float] = {}  # when each other peer was last listed
        self.full_at: float | None = None
        self.want = 0  # links that make the mesh full for this one
        self.delivery: Delivery | None = None
        self.index = 0
        self.ready = False  # baseline sender: all dialed
        self.marked = 0  # marked lines printed (a receiver's deliveries, a sender's echoes)
        self.users: tuple[int, int] | None = None  # /users: (linked directly, listed)

    def on_line(self, child: Child, line: bytes, when: float) -> None:
        i = line.find(MARK)
        if i >= 0:
            self.marked += 1
            if self.delivery is not None:
                self.delivery.got(self.index, line[i + 1:], when)
            return
        # the line face: "HH:MM:SS * nick joined[ (via nick)]", "HH:MM:SS * nick left[ (why)]"
        # (a peer reached only through others, --links, is listed too: it counts)
        if line[8:11] == b" * ":
            rest = line[11:]
            if rest.endswith(b" joined") or (b" joined (via " in rest and rest.endswith(b")")):
                self.linked.add(rest.split(b" joined", 1)[0])
                self.listed_at[rest.split(b" joined", 1)[0]] = when
                if self.full_at is None and len(self.linked) >= self.want:
                    self.full_at = when
            elif b" left" in rest:
                self.linked.discard(rest.split(b" left", 1)[0])
                if len(self.linked) < self.want:
                    self.full_at = None
        elif b" connected, " in line and b" known; you are " in line:
            head = line[11:].split()  # "N connected, M known; you are NICK"
            try:
                self.users = (int(head[0]), int(head[2]))
            except (IndexError, ValueError):
                pass
        elif line[8:19] == b" - you are ":
            self.up = when
            j = line.find(b"on port ")
            if j >= 0:
                self.port = int(line[j + 8:].split(b";")[0])
        elif line.startswith(b"- listening on port "):
            self.up = when
            self.port = int(line.split()[-1])
        elif line.startswith(b"- ready "):
            self.ready = True


# --- starting things ------------------------------------------------------------------------


def start_peers(kids: Children, nicks: list[str], multicast: tuple[str, int],
                profile: dict[str, str] | None = None) -> list[Endpoint]:
    """Start one peer per nick, all at once (each is a full ``twistd -n p2pchat``)."""
    eps = []
    for nick in nicks:
        ep = Endpoint(nick)
        ep.want = len(nicks) - 1
        ep.child = kids.start_peer(nick, multicast, ep.on_line,
                                   profile_to=(profile or {}).get(nick))
        eps.append(ep)
    return eps


def mesh_full(eps: list[Endpoint]) -> bool:
    return all(ep.full_at is not None for ep in eps)


def links_seen(eps: list[Endpoint]) -> int:
    return sum(len(ep.linked) for ep in eps)


def died(eps: list[Endpoint]) -> list[str]:
    return [ep.name for ep in eps if ep.child is not None and not ep.child.alive()]


def mesh_timeout(n: int, scale: float) -> float:
    return (20.0 + 0.8 * n) * scale


# --- mesh formation -------------------------------------------------------------------------


#: A peer's log line that says it is up (service.py), and its stamp (logs.TIME_FORMAT).
_LISTENING = re.compile(r"^(\S+) \[p2pchat\.service#info\] .* listening on TCP port ")


def listening_at(child: Child | None) -> float | None:
    """When a peer was up by its own clock (the wall clock): the stamp of its log's
    "listening on TCP port" line.  Its face says "you are ..." only after its first reactor
    turn, which in a room of 100 on 2 cores came 7-9 s later (that turn's work starved), so
    "up" as the bench reads it from the face is late by as much."""
    if child is None or "--data-dir" not in child.argv:
        return None
    try:
        with open(log_of(child), errors="replace") as f:
            for line in f:
                m = _LISTENING.match(line)
                if m:
                    return datetime.strptime(m.group(1), TIME_FORMAT).timestamp()
    except (OSError, ValueError):
        return None
    return None


def mesh_trial(kids: Children, n: int, scale: float) -> dict:
    multicast = fresh_multicast()
    t_first = time.monotonic()
    eps = start_peers(kids, [f"m{i}" for i in range(n)], multicast)
    t_last_spawn = time.monotonic()
    try:
        ok = kids.pump(lambda: mesh_full(eps) or bool(died(eps)), mesh_timeout(n, scale))
        result = {"n": n, "links": links_seen(eps), "links_wanted": n * (n - 1)}
        result.update(formation_cost(eps))
        if not ok or not mesh_full(eps):
            result["status"] = "timed out" if not died(eps) else f"died: {died(eps)[:3]}"
            return result
        t_full = max(ep.full_at for ep in eps)
        t_last_up = max(ep.up or t_first for ep in eps)
        result.update(status="ok", from_last_up=t_full - t_last_up,
                      from_last_spawn=t_full - t_last_spawn, all_up=t_last_up - t_first)
        stamps = [t for t in (listening_at(ep.child) for ep in eps) if t is not None]
        if stamps and len(stamps) == len(eps):  # the same figure from the peers' own clocks
            wall = time.time() - time.monotonic()
            result["from_last_listening"] = t_full + wall - max(stamps)
        result["slowest_listing"] = slowest_listing(eps)
        result["one_line_each"] = one_line_each(kids, eps, 30 * scale)
        result["links_per_peer"] = links_per_peer(kids, eps, 10 * scale)
        return result
    finally:
        kids.stop([ep.child for ep in eps])


def one_line_each(kids: Children, eps: list[Endpoint], timeout: float) -> dict:
    """Every peer says one marked line at once: how long until each peer printed every
    other's line, and how many were lost or printed twice."""
    n = len(eps)
    d = Delivery(b"each", n, n)
    for i, ep in enumerate(eps):
        ep.delivery, ep.index = d, i
    start = time.monotonic()
    for i, ep in enumerate(eps):
        kids.write(ep.child, b"~each:%d:%d\n" % (i, now_us()))

    def everyone() -> bool:
        return all(d.seen[i][j] for i in range(n) for j in range(n) if j != i)

    ok = kids.pump(everyone, timeout)
    kids.pump(lambda: False, 0.3)  # late duplicates, if any
    for ep in eps:
        ep.delivery = None
    missing = sum(1 for i in range(n) for j in range(n) if j != i and not d.seen[i][j])
    return {"status": "ok" if ok else "timed out", "seconds": d.last - start if d.last else None,
            "lost": missing, "duplicated": d.dups}


def slowest_listing(eps: list[Endpoint]) -> dict:
    """Per pair, how long after both were up one listed the other: the median, and the
    slowest pair (where a mesh waits)."""
    up = {ep.name.encode(): ep.up for ep in eps}
    waits = []
    for ep in eps:
        for name, when in ep.listed_at.items():
            both = max(ep.up or when, up.get(name) or when)
            waits.append((when - both, ep.name, name.decode()))
    if not waits:
        return {}
    waits.sort()
    worst = waits[-1]
    return {"median_s": waits[len(waits) // 2][0], "max_s": worst[0],
            "slowest": f"{worst[1]} listed {worst[2]}"}


def links_per_peer(kids: Children, eps: list[Endpoint], timeout: float) -> dict:
    """Each peer's /users: how many peers it links to directly, and how many it lists
    (linked or reached through others: --links)."""
    for ep in eps:
        ep.users = None
        kids.write(ep.child, b"/users\n")
    kids.pump(lambda: all(ep.users is not None for ep in eps), timeout)
    got = [ep.users for ep in eps if ep.users is not None]
    if not got:
        return {"answered": 0}
    direct = sorted(u[0] for u in got)
    return {"answered": len(got), "direct_min": direct[0], "direct_max": direct[-1],
            "direct_median": statistics.median(direct), "listed_min": min(u[1] for u in got)}


def links_said(links: dict | None) -> str:
    if not links or not links.get("answered"):
        return ""
    return (f"; direct links per peer {links['direct_min']}-{links['direct_max']} (median "
            f"{links['direct_median']:g}), each lists >= {links['listed_min']}")


#: Log lines of work thrown away while a mesh forms: a connection cut before or after it
#: became a link (each one redialed, its TLS handshake done again).
CHURN = {"handshake timeouts": b"did not finish its handshake",
         "dial failures": b"dial to ",
         "probe drops": b"no answer within",
         "links lost": b"#info] link with ",
         "links pruned": b"#info] pruned: "}


def formation_cost(eps: list[Endpoint]) -> dict:
    """What forming the mesh cost, whatever the machine's load: the CPU every peer used from
    its start (the scheduler's count), and the connections thrown away (from their logs;
    a rate-limited log line counts as one)."""
    cpu = [ep.child.cpu_seconds() for ep in eps if ep.child is not None]
    churn = dict.fromkeys(CHURN, 0)
    for ep in eps:
        if ep.child is None:
            continue
        argv = ep.child.argv
        path = os.path.join(argv[argv.index("--data-dir") + 1], "p2pchat.log")
        try:
            with open(path, "rb") as f:
                text = f.read()
        except OSError:
            continue
        for key, needle in CHURN.items():
            churn[key] += text.count(needle)
    known = [c for c in cpu if c is not None]
    return {"cpu_s_total": sum(known) if known else None,
            "cpu_s_per_peer": sum(known) / len(known) if known else None, "churn": churn}


def lines_said(each: dict | None) -> str:
    if not each or each.get("seconds") is None:
        return ""
    return (f"; one line from each everywhere in {each['seconds']:.2f} s ({each['lost']} lost, "
            f"{each['duplicated']} twice)")


def mesh_formation(kids: Children, sizes: list[int], trials: int, scale: float,
                   say: Callable[[str], None]) -> dict:
    out = {}
    for n in sizes:
        runs = []
        for t in range(trials):
            r = mesh_trial(kids, n, scale)
            runs.append(r)
            say(f"mesh N={n} trial {t + 1}: " + (
                f"{r['from_last_up']:.2f} s from last peer up"
                + (f" ({r['from_last_listening']:.2f} s from its listening, by its log)"
                   if r.get("from_last_listening") is not None else "")
                + f", {r['from_last_spawn']:.2f} s "
                f"from last spawn (all up {r['all_up']:.2f} s after first spawn)"
                if r["status"] == "ok" else f"{r['status']} ({r['links']}/{r['links_wanted']} "
                f"links)") + lines_said(r.get("one_line_each"))
                + links_said(r.get("links_per_peer"))
                + ("; a pair listed {median_s:.2f} s after both up (median), {max_s:.2f} s "
                   "at most ({slowest})".format(**r["slowest_listing"])
                   if r.get("slowest_listing") else "")
                + f"; CPU {r['cpu_s_per_peer'] or 0:.2f} s per peer; thrown away: "
                + ", ".join(f"{v} {k}" for k, v in r["churn"].items()))
        good = [r for r in runs if r["status"] == "ok"]
        entry = {"trials": runs, "ok": len(good)}
        if good:
            for key in ("from_last_up", "from_last_spawn", "all_up"):
                entry[key] = statistics.median(r[key] for r in good)
            by_log = [r["from_last_listening"] for r in good if "from_last_listening" in r]
            if by_log:
                entry["from_last_listening"] = statistics.median(by_log)
        cpus = [r["cpu_s_per_peer"] for r in runs if r.get("cpu_s_per_peer") is not None]
        if cpus:
            entry["cpu_s_per_peer"] = statistics.median(cpus)
        entry["thrown_away"] = statistics.median(sum(r["churn"].values()) for r in runs)
        each = [r["one_line_each"] for r in good if r.get("one_line_each", {}).get("seconds")]
        if each:
            entry["one_line_each_s"] = statistics.median(e["seconds"] for e in each)
            entry["one_line_each_lost"] = sum(e["lost"] for e in each)
            entry["one_line_each_twice"] = sum(e["duplicated"] for e in each)
        entry["status"] = "ok" if len(good) == len(runs) else (
            f"{len(runs) - len(good)}/{len(runs)} timed out")
        out[str(n)] = entry
    return out


# --- fan-out --------------------------------------------------------------------------------

#: The baseline's saturation run sends this many times the messages of ours.
BASELINE_MESSAGES = 10


def deliver(kids: Children, sender: Child, receivers: list[Endpoint], tag: str, count: int,
            rate: float | None, timeout: float) -> dict:
    """Send ``count`` marked lines through ``sender`` (as fast as its stdin takes them, or at
    ``rate`` a second) and wait until every receiver printed each one, or ``timeout``."""
    d = Delivery(tag.encode(), count, len(receivers))
    for i, ep in enumerate(receivers):
        ep.delivery, ep.index = d, i
    btag = tag.encode()
    everyone = [sender] + [ep.child for ep in receivers]
    cpu_before = [c.cpu_seconds() for c in everyone]
    start = time.monotonic()
    tick = None
    if rate is None:
        t = now_us()
        kids.write(sender, b"".join(b"~%s:%d:%d\n" % (btag, i, t) for i in range(count)))
        sent_all_at = time.monotonic()
    else:
        state = {"sent": 0}

        def tick(now: float) -> float | None:
            sent = state["sent"]
            if sent >= count:
                return None
            due = min(count, int((now - start) * rate) + 1)
            if due > sent:
                t = now_us()
                kids.write(sender, b"".join(b"~%s:%d:%d\n" % (btag, i, t)
                                            for i in range(sent, due)))
                state["sent"] = sent = due
            return start + sent / rate - now if sent < count else None

        sent_all_at = None
    ok = kids.pump(d.done, timeout, tick)
    if ok:
        kids.pump(lambda: False, 0.1)  # late duplicates, if any
    for ep in receivers:
        ep.delivery = None
    elapsed = (d.last - start) if d.last else None
    lat = d.latencies
    result = {
        "status": "ok" if ok else "timed out",
        "sent": count,
        "receivers": len(receivers),
        "delivered": sum(d.distinct),
        "lost": d.lost(),
        "duplicated": d.dups,
        "stray": d.stray,
        "seconds": elapsed,
        "latency_p50_ms": percentile(lat, 50) / 1000 if lat else None,
        "latency_p99_ms": percentile(lat, 99) / 1000 if lat else None,
        "latency_max_ms": max(lat) / 1000 if lat else None,
    }
    if rate is None and elapsed:
        result["msgs_per_s"] = count / elapsed  # each to every receiver
        result["deliveries_per_s"] = sum(d.distinct) / elapsed
        result["write_s"] = sent_all_at - start
        # CPU (the scheduler's count, from /proc) per message, of the sender and of each
        # receiver: where the time goes.  ``cpu_window_s``: the wall time between the two
        # reads, which no one-thread process can use more CPU than.
        used = [(a - b) * 1e6 / count if a is not None and b is not None else None
                for a, b in zip((c.cpu_seconds() for c in everyone), cpu_before)]
        result["cpu_window_s"] = time.monotonic() - start
        if None not in used:
            result["sender_cpu_us_per_msg"] = used[0]
            result["receiver_cpu_us_per_msg"] = statistics.median(used[1:])
    if rate is not None:
        result["offered_per_s"] = rate
    return result


def fan_out_runs(kids: Children, sender: Child, receivers: list[Endpoint], label: str,
                 rate: float, duration: float, messages: int, scale: float) -> dict:
    """Warm up, then the fixed-rate run (latency), then the saturation run (throughput)."""
    warm = deliver(kids, sender, receivers, f"w{label}", 20, 200.0, 15 * scale)
    if warm["status"] != "ok":
        return {"status": "warm-up timed out", "warmup": warm}
    count = max(1, int(rate * duration))
    at_rate = deliver(kids, sender, receivers, f"r{label}", count, rate,
                      (duration + 15) * scale)
    kids.sleep(0.3)
    saturated = deliver(kids, sender, receivers, f"s{label}", messages, None,
                        (20 + messages * len(receivers) / 2000) * scale)
    status = "ok" if at_rate["status"] == saturated["status"] == "ok" else "timed out"
    return {"status": status, "at_rate": at_rate, "saturation": saturated}


def fan_out_ours(kids: Children, k: int, rate: float, duration: float, messages: int,
                 scale: float, profile: dict[str, str] | None = None) -> dict:
    eps = start_peers(kids, ["snd"] + [f"r{i}" for i in range(1, k + 1)], fresh_multicast(),
                      profile)
    slow = 3.0 if profile else 1.0
    try:
        if not kids.pump(lambda: mesh_full(eps) or bool(died(eps)),
                         mesh_timeout(k + 1, scale * slow)) or died(eps):
            return {"status": "mesh timed out" if not died(eps) else f"died: {died(eps)[:3]}",
                    "links": links_seen(eps), "links_wanted": (k + 1) * k}
        kids.sleep(0.5)
        return fan_out_runs(kids, eps[0].child, eps[1:], f"p{k}", rate, duration, messages,
                            scale * slow)
    finally:
        profiled = [ep.child for ep in eps if profile and ep.name in profile]
        if profiled:
            kids.quit_cleanly(profiled, 30 * scale)
            if profile is not None:
                profile["handled"] = {ep.name: ep.marked for ep in eps}
        kids.stop([ep.child for ep in eps if ep.child in kids.all])


def fan_out_baseline(kids: Children, k: int, rate: float, duration: float, messages: int,
                     scale: float) -> dict:
    base = [sys.executable, "-m", "bench.baseline"]
    receivers = []
    started: list[Child] = []
    try:
        for i in range(1, k + 1):
            ep = Endpoint(f"b{i}")
            ep.child = kids.start(f"base-r{i}", base + ["recv"], ep.on_line)
            started.append(ep.child)
            receivers.append(ep)
        if not kids.pump(lambda: all(ep.port for ep in receivers), 30 * scale):
            return {"status": "baseline receivers timed out"}
        sender = Endpoint("bsnd")
        ports = ",".join(str(ep.port) for ep in receivers)
        sender.child = kids.start("base-snd", base + ["send", ports], sender.on_line)
        started.append(sender.child)
        if not kids.pump(lambda: sender.ready, 30 * scale):
            return {"status": "baseline sender timed out"}
        return fan_out_runs(kids, sender.child, receivers, f"b{k}", rate, duration, messages,
                            scale)
    finally:
        kids.stop(started)


def fan_out(kids: Children, ks: list[int], rate: float, duration: float,
            messages_for: Callable[[int], int], scale: float,
            say: Callable[[str], None]) -> dict:
    out = {}
    for k in ks:
        messages = messages_for(k)
        ours = fan_out_ours(kids, k, rate, duration, messages, scale)
        say(f"fan-out K={k} p2pchat: {summary(ours)}")
        # The bare relay is ten times as fast: ten times the messages make its run as long as
        # ours, so its CPU figures are more than a few clock ticks (the rate is the same).
        base = fan_out_baseline(kids, k, rate, duration, messages * BASELINE_MESSAGES, scale)
        say(f"fan-out K={k} baseline: {summary(base)}")
        entry = {"p2pchat": ours, "baseline": base}
        ours_rate = ours.get("saturation", {}).get("msgs_per_s")
        base_rate = base.get("saturation", {}).get("msgs_per_s")
        if ours_rate and base_rate:
            entry["ratio"] = ours_rate / base_rate
        out[str(k)] = entry
    return out


def summary(r: dict) -> str:
    if "saturation" not in r:
        return r.get("status", "?")
    s, a = r["saturation"], r["at_rate"]
    sat = f"{s['msgs_per_s']:.0f} msgs/s" if s.get("msgs_per_s") else s["status"]
    lat = (f"p50 {a['latency_p50_ms']:.1f} ms p99 {a['latency_p99_ms']:.1f} ms"
           if a.get("latency_p50_ms") is not None else a["status"])
    return (f"{sat} at saturation; {lat} at {a['offered_per_s']:.0f}/s; lost "
            f"{s['lost'] + a['lost']}, duplicated {s['duplicated'] + a['duplicated']}")


# --- cost -----------------------------------------------------------------------------------


#: The idle cost is measured on a mesh that has this share of its links in time (a loaded
#: machine can leave a pair unlinked for minutes; the status says so).
NEARLY_FULL = 0.97


def cost(kids: Children, links: int, idle_seconds: float, scale: float,
         say: Callable[[str], None]) -> dict:
    """RSS and CPU of idle peers: one alone (0 links), and a room of ``links + 1`` peers, after
    they settle: a full mesh (``links`` connections each) up to 12 peers or with
    ``BENCH_LINKS=0``, else each links to about ``--links`` of them (10 by default; the
    result's ``links_per_peer`` says how many, from /users)."""
    lone = start_peers(kids, ["alone"], fresh_multicast())
    eps = start_peers(kids, [f"c{i}" for i in range(links + 1)], fresh_multicast())
    everyone = lone + eps

    def room_full() -> bool:  # a room of one (--cost-links 0) has no link to wait for
        return links == 0 or mesh_full(eps)
    try:
        ok = kids.pump(lambda: room_full() and all(ep.up is not None for ep in everyone),
                       mesh_timeout(links + 1, scale))
        result: dict = {"links": links}
        seen, full = links_seen(eps), links * (links + 1)
        if not ok and seen < NEARLY_FULL * full:
            result["status"] = "mesh timed out"
            result["links_seen"] = seen
            return result
        if not ok:  # a loaded machine leaves a pair or two unlinked: measured, and said
            result["links_seen"] = seen
            say(f"cost: mesh not full in time ({seen} of {full} links seen): measured as is")
        # let discovery answers and handshakes settle; a room past a full mesh (--links)
        # prunes the links no end wants 15-20 s after they formed: idle is after that
        kids.sleep(25.0 if links + 1 > 12 else min(3.0, idle_seconds / 4))
        cpu0 = {ep.name: ep.child.cpu_seconds() for ep in everyone}
        t0 = time.monotonic()
        kids.sleep(idle_seconds)
        window = time.monotonic() - t0
        cpu1 = {ep.name: ep.child.cpu_seconds() for ep in everyone}
        rss = {ep.name: ep.child.rss_kb() for ep in everyone}
        shares = {ep.name: ep.child.shares_kb() for ep in everyone}
        pct = {name: 100 * (cpu1[name] - cpu0[name]) / window
               for name in cpu0 if cpu0[name] is not None and cpu1[name] is not None}
        meshed = [ep.name for ep in eps]
        result.update(
            status="ok" if room_full() else ("mesh broke during the window" if ok else
                                                 f"mesh not full ({seen} of {full} links)"),
            window_s=window,
            idle_rss_mb=rss["alone"] / 1024 if rss["alone"] else None,
            idle_cpu_pct=pct.get("alone"),
            meshed_rss_mb_median=statistics.median(rss[n] for n in meshed) / 1024,
            meshed_rss_mb_max=max(rss[n] for n in meshed) / 1024,
            meshed_cpu_pct_median=statistics.median(pct[n] for n in meshed),
            meshed_cpu_pct_max=max(pct[n] for n in meshed),
        )
        room_shares = [shares[n] for n in meshed if shares[n] is not None]
        if room_shares:  # what a peer costs the machine, beside its RSS (procs.shares_kb)
            result["meshed_pss_mb_median"] = statistics.median(s[0] for s in room_shares) / 1024
            result["meshed_uss_mb_median"] = statistics.median(s[1] for s in room_shares) / 1024
        result["links_per_peer"] = links_per_peer(kids, eps, 10 * scale)
        say(f"cost: alone {result['idle_rss_mb']:.1f} MB, {result['idle_cpu_pct']:.2f}% CPU; "
            f"in a room of {links + 1}{links_said(result['links_per_peer'])}:"
            f" {result['meshed_rss_mb_median']:.1f} MB (max "
            f"{result['meshed_rss_mb_max']:.1f}), {result['meshed_cpu_pct_median']:.2f}% CPU "
            f"(max {result['meshed_cpu_pct_max']:.2f}) over {window:.0f} s"
            + (f"; PSS {result['meshed_pss_mb_median']:.1f} MB, USS "
               f"{result['meshed_uss_mb_median']:.1f} MB" if room_shares else ""))
        return result
    finally:
        kids.stop([ep.child for ep in everyone])
