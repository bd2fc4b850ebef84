"""``python -m bench``: run every benchmark of p2pchat and print one table (``--json``: the
same figures as JSON).  README.rst, "Performance", says what each figure means."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time

from bench import day as day_bench
from bench import files as files_bench
from bench import profiling, reference, scenarios
from bench import gossip as gossip_bench
from bench import search as search_bench
from bench import stall, trend
from bench import year as year_bench
from bench.procs import Children, install_signal_handlers, precompile

PHASES = ("mesh", "fanout", "cost", "profile", "search", "reference", "files", "year", "day",
          "stall", "gossip")


def int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not values or any(v < 1 or v > 200 for v in values):
        raise argparse.ArgumentTypeError(f"sizes are 1 to 200: {text!r}")
    return values


def options(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--mesh-sizes", type=int_list, default=[3, 10, 30, 50],
                   help="peers started together per mesh run [3,10,30,50]")
    p.add_argument("--trials", type=int, default=None,
                   help="mesh runs per size; the median is shown [3; --quick: 1]")
    p.add_argument("--fanout", type=int_list, default=[1, 10, 30],
                   help="receivers of one sender [1,10,30]")
    p.add_argument("--rate", type=float, default=500.0,
                   help="offered messages/s for the latency run [500]")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds of the latency run [3; --quick: 1.5]")
    p.add_argument("--messages", type=int, default=None,
                   help="messages sent in each saturation run [50000/K within 2000-50000; "
                   "--quick: 20000/K within 500-20000]")
    p.add_argument("--cost-links", type=int, default=50,
                   help="the cost run's room has this many peers + 1 (a full mesh up to 12, else "
                        "about --links 10 links each) [50]")
    p.add_argument("--idle-seconds", type=float, default=None,
                   help="CPU window of the idle peers [60; --quick: 10]")
    p.add_argument("--only", default=",".join(PHASES[:3]),
                   help=f"phases to run, of {','.join(PHASES)} [mesh,fanout,cost]")
    p.add_argument("--profile", action="store_true",
                   help="also profile the sender and one receiver (cProfile) in a fan-out")
    p.add_argument("--profile-k", type=int, default=10, help="receivers in the profiled run")
    p.add_argument("--profile-messages", type=int, default=10000,
                   help="messages sent in the profiled saturation run [10000]")
    p.add_argument("--search-lines", type=int, default=1_000_000,
                   help="lines in the history file of the search run [1000000]")
    p.add_argument("--reference", default=None, metavar="DIR",
                   help="a checkout of the reference Go peer (Redsskull/p2pchat), for the "
                   "reference phase")
    p.add_argument("--reference-lines", type=int, default=5000,
                   help="lines in each burst of the reference phase [5000]")
    p.add_argument("--files-mb", type=int, default=1024,
                   help="size of the file of the files run, MB [1024; --quick: 256]")
    p.add_argument("--year-lines", type=int, default=1_000_000,
                   help="lines in the history file of the year run [1000000; at most "
                   f"{year_bench.MAX_LINES}]")
    p.add_argument("--year-starts", type=int, default=3,
                   help="timed starts of each peer in the year run [3]")
    p.add_argument("--day-lines", type=int, default=100_000,
                   help=f"lines caught up in the day run [100000; at most {day_bench.MAX_LINES}]")
    p.add_argument("--day-run-lines", type=int, default=1, choices=range(1, 17),
                   metavar="N", help="the day run's lines signed one signature per N lines of "
                   "an author (runsig.py: as a paste is) [1: each alone, as typed lines]")
    p.add_argument("--stall-day-lines", type=int, default=stall.DAY_LINES,
                   help=f"lines of the stall phase's catch-up [{stall.DAY_LINES}; at most "
                   f"{day_bench.MAX_LINES}]")
    p.add_argument("--stall-file-mb", type=int, default=stall.FILE_MB,
                   help=f"size of the stall phase's file transfer, MB [{stall.FILE_MB}]")
    p.add_argument("--quick", action="store_true", help="fewer trials, shorter windows")
    p.add_argument("--timeout-scale", type=float, default=1.0,
                   help="multiply every timeout (a loaded machine)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    p.add_argument("--record", metavar="LABEL", default=None,
                   help="add the figures to bench/runs.json as run LABEL (merged into the "
                   "newest run if it has that label) and chart them against the previous "
                   "run in bench/performance.svg")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    a = p.parse_args(argv)
    a.trials = a.trials or (1 if a.quick else 3)
    a.duration = a.duration or (1.5 if a.quick else 3.0)
    if a.messages is None:
        low, budget = (500, 20000) if a.quick else (2000, 50000)
        a.messages_for = lambda k: max(low, min(budget, budget // k))
    else:
        a.messages_for = lambda k: a.messages
    a.idle_seconds = a.idle_seconds or (10.0 if a.quick else 60.0)
    a.phases = [x.strip() for x in a.only.split(",") if x.strip()]
    if a.profile and "profile" not in a.phases:
        a.phases.append("profile")
    bad = [x for x in a.phases if x not in PHASES]
    if bad:
        p.error(f"unknown phase {bad[0]!r}; phases: {', '.join(PHASES)}")
    if not 1 <= a.stall_file_mb <= 16384 or not 1 <= a.stall_day_lines <= day_bench.MAX_LINES:
        p.error(f"keep --stall-file-mb within 1-16384, --stall-day-lines within 1-"
                f"{day_bench.MAX_LINES}")
    if not 0 < a.reference_lines <= 100000:
        p.error("keep --reference-lines within 1-100000")
    if not 0 < a.rate <= 20000 or (a.messages or 0) > 100000 or a.duration > 120:
        p.error("keep --rate within 20000/s, --messages within 100000, --duration within 120 s")
    return a


def machine() -> dict:
    import twisted

    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "twisted": twisted.__version__, "system": platform.platform(),
            "date": time.strftime("%Y-%m-%d %H:%M"), "load_before": os.getloadavg()[0]}


def run_profile(kids: Children, a: argparse.Namespace, workdir: str, say) -> dict:
    files = {"snd": os.path.join(workdir, "sender.prof"),
             "r1": os.path.join(workdir, "receiver.prof")}
    k = a.profile_k
    result = scenarios.fan_out_ours(kids, k, a.rate, a.duration, a.profile_messages,
                                    a.timeout_scale, profile=files)
    out: dict = {"k": k, "run": result}
    if result.get("status") != "ok":
        say(f"profile run: {result.get('status')}")
    handled = files.get("handled", {})  # marked lines each printed: what it handled
    for name, key, spec in (("sender", "snd", profiling.SEND_PATH),
                            ("receiver", "r1", profiling.RECEIVE_PATH)):
        path = files[key]
        if not handled.get(key):
            out[name] = {"status": "no chat line went through it"}
        elif os.path.exists(path):
            out[name] = profiling.analyse(path, handled[key], spec)
        else:
            out[name] = {"status": "no profile written"}
    return out


# --- the table ------------------------------------------------------------------------------


def fmt(value, spec: str = ".2f", missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def render(r: dict) -> str:
    m = r["machine"]
    lines = [f"p2pchat benchmark, {m['date']}: {m['cores']} cores ({m['cpu']}), Python "
             f"{m['python']}, Twisted {m['twisted']}; load before {m['load_before']:.2f}; "
             f"{r['elapsed_s']:.0f} s"]
    if "mesh" in r:
        sizes = list(r["mesh"])
        lines += ["", f"Mesh formation (median of {r['settings']['trials']}), seconds"]
        lines.append(f"  {'N':<40}" + "".join(f"{n:>10}" for n in sizes))
        for key, label in (("from_last_up", "last peer up -> full mesh"),
                           ("from_last_listening", "  from its listening, by its log"),
                           ("from_last_spawn", "last peer spawned -> full mesh"),
                           ("all_up", "first spawned -> all peers up"),
                           ("cpu_s_per_peer", "CPU per peer until full (or timed out), s"),
                           ("thrown_away", "connections thrown away (log lines)"),
                           ("one_line_each_s", "then one line from each, to all, s"),
                           ("one_line_each_lost", "  lost"), ("one_line_each_twice", "  twice")):
            lines.append(f"  {label:<40}" + "".join(
                f"{fmt(r['mesh'][n].get(key)):>10}" if r["mesh"][n].get(key) is not None
                else f"{r['mesh'][n]['status'][:9]:>10}" for n in sizes))
        notes = [f"N={n}: {e['status']}" for n, e in r["mesh"].items() if e["status"] != "ok"]
        if notes:
            lines.append("  " + "; ".join(notes))
    if "fanout" in r:
        ks = list(r["fanout"])
        rate = r["settings"]["rate"]
        lines += ["", f"Fan-out: one sender, K receivers (saturation: as fast as the sender "
                  f"takes them; latency: {rate:.0f}/s for {r['settings']['duration']:g} s)"]
        lines.append(f"  {'K':<40}" + "".join(f"{k:>14}" for k in ks))

        def row(label, get):
            cells = []
            for k in ks:
                try:
                    cells.append(f"{get(r['fanout'][k]):>14}")
                except (KeyError, TypeError):
                    cells.append(f"{'n/a':>14}")
            lines.append(f"  {label:<40}" + "".join(cells))

        def k_of(e):
            return next(k for k in ks if r["fanout"][k] is e)

        def sat(side):
            return lambda e: (f"{e[side]['saturation']['msgs_per_s']:.0f}"
                              if e[side]["saturation"].get("msgs_per_s")
                              else e[side]["saturation"]["status"])

        def lat(side):
            return lambda e: (f"{e[side]['at_rate']['latency_p50_ms']:.1f} / "
                              f"{e[side]['at_rate']['latency_p99_ms']:.1f}")

        def losses(side):
            return lambda e: (f"{e[side]['at_rate']['lost'] + e[side]['saturation']['lost']} / "
                              f"{e[side]['at_rate']['duplicated'] + e[side]['saturation']['duplicated']}")

        def cpu(side):
            return lambda e: (f"{e[side]['saturation']['sender_cpu_us_per_msg']:.1f} / "
                              f"{e[side]['saturation']['receiver_cpu_us_per_msg']:.1f}")

        row("messages sent at saturation (baseline)", lambda e: (
            f"{e['p2pchat']['saturation']['sent']} ({e['baseline']['saturation']['sent']})"))
        row("p2pchat msgs/s at saturation", sat("p2pchat"))
        row("baseline msgs/s at saturation", sat("baseline"))
        row("p2pchat / baseline", lambda e: f"{e['ratio']:.0%}")
        row("p2pchat CPU us/msg: sender / receiver", cpu("p2pchat"))
        row("baseline CPU us/msg: sender / receiver", cpu("baseline"))
        row(f"p2pchat latency p50 / p99 ms @{rate:.0f}/s", lat("p2pchat"))
        row(f"baseline latency p50 / p99 ms @{rate:.0f}/s", lat("baseline"))
        row("p2pchat lost / duplicated", losses("p2pchat"))
        row("baseline lost / duplicated", losses("baseline"))
        notes = [f"K={k} {side}: {e[side].get('status')}"
                 + (f" ({e[side]['links']}/{e[side]['links_wanted']} links up)"
                    if "links" in e[side] else "")
                 for k, e in r["fanout"].items()
                 for side in ("p2pchat", "baseline") if e[side].get("status") != "ok"]
        if notes:
            lines.append("  " + "; ".join(notes))
    if "cost" in r:
        c = r["cost"]
        lines += ["", "Cost of an idle peer"]
        if c.get("status") in ("ok", "mesh broke during the window"):
            lines.append(f"  {'RSS alone (0 connections)':<40}{fmt(c['idle_rss_mb'], '.1f'):>10} MB")
            # the room has links + 1 peers; past 12 each links to about --links of them
            lp = c.get("links_per_peer") or {}
            room = f"{c['links'] + 1} peers" + (
                f" x {lp['direct_median']:g} links" if lp.get("answered") else "")
            lines.append(f"  {'RSS, %s, median (max)' % room:<40}"
                         f"{fmt(c['meshed_rss_mb_median'], '.1f'):>10} MB "
                         f"({fmt(c['meshed_rss_mb_max'], '.1f')})")
            if c.get("meshed_pss_mb_median") is not None:
                lines.append(f"  {'PSS / USS, %s, median' % room:<40}"
                             f"{fmt(c['meshed_pss_mb_median'], '.1f'):>10} / "
                             f"{fmt(c['meshed_uss_mb_median'], '.1f')} MB")
            lines.append(f"  {'CPU alone, over %.0f s' % c['window_s']:<40}"
                         f"{fmt(c['idle_cpu_pct'], '.2f'):>10} %")
            lines.append(f"  {'CPU, %s, median (max)' % room:<40}"
                         f"{fmt(c['meshed_cpu_pct_median'], '.2f'):>10} % "
                         f"({fmt(c['meshed_cpu_pct_max'], '.2f')})")
            if c["status"] != "ok":
                lines.append(f"  ({c['status']})")
        else:
            lines.append(f"  {c.get('status')}")
    if "profile" in r:
        p = r["profile"]
        lines += ["", f"Profile (cProfile) of a fan-out to K={p['k']}: "
                  f"{scenarios.summary(p['run'])}"]
        for name in ("sender", "receiver"):
            if "hot_path" in p.get(name, {}):
                lines += [""] + profiling.render(name, p[name])
            else:
                lines.append(f"{name}: {p.get(name, {}).get('status')}")
    if "search" in r:
        lines += ["", search_bench.render(r["search"])]
    if "reference" in r:
        lines += ["", reference.render(r["reference"])]
    if "files" in r:
        lines += ["", files_bench.render(r["files"])]
    if "year" in r:
        lines += ["", year_bench.render(r["year"])]
    if "day" in r:
        lines += ["", day_bench.render(r["day"])]
    if "stall" in r:
        lines += ["", stall.render(r["stall"])]
    if "gossip" in r:
        lines += ["", gossip_bench.render(r["gossip"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    a = options(argv)
    install_signal_handlers()

    def say(text: str) -> None:
        if not a.quiet:
            print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    workdir = tempfile.mkdtemp(prefix="p2pchat-bench-")
    precompile()
    kids = Children(workdir)
    started = time.monotonic()
    result: dict = {"machine": machine(), "settings": {
        "mesh_sizes": a.mesh_sizes, "trials": a.trials, "fanout": a.fanout, "rate": a.rate,
        "duration": a.duration,
        "messages": {str(k): a.messages_for(k) for k in a.fanout}, "cost_links": a.cost_links,
        "idle_seconds": a.idle_seconds, "quick": a.quick, "phases": a.phases}}
    try:
        if "mesh" in a.phases:
            result["mesh"] = scenarios.mesh_formation(kids, a.mesh_sizes, a.trials,
                                                      a.timeout_scale, say)
        if "fanout" in a.phases:
            result["fanout"] = scenarios.fan_out(kids, a.fanout, a.rate, a.duration,
                                                 a.messages_for, a.timeout_scale, say)
        if "cost" in a.phases:
            result["cost"] = scenarios.cost(kids, a.cost_links, a.idle_seconds,
                                            a.timeout_scale, say)
        if "profile" in a.phases:
            result["profile"] = run_profile(kids, a, workdir, say)
        if "search" in a.phases:
            say(f"search: filling a history file with {a.search_lines} lines")
            result["search"] = search_bench.run(a.search_lines, 1 if a.quick else 5)
        if "reference" in a.phases:
            result["reference"] = reference.run(kids, a.reference, workdir, a.reference_lines,
                                                a.trials, a.timeout_scale, say)
        if "files" in a.phases:
            size = (256 if a.quick and a.files_mb == 1024 else a.files_mb) << 20
            result["files"] = files_bench.run(kids, size, workdir, say, a.timeout_scale)
        if "year" in a.phases:
            result["year"] = year_bench.run(a.year_lines, 1 if a.quick else a.year_starts,
                                            a.timeout_scale, say)
        if "day" in a.phases:
            result["day"] = day_bench.run(a.day_lines, a.timeout_scale, say, a.day_run_lines)
        if "stall" in a.phases:
            result["stall"] = stall.run(kids, a.timeout_scale, say, a.stall_day_lines,
                                        a.stall_file_mb)
        if "gossip" in a.phases:
            say("gossip: bytes per line in a chain, a ring and a full mesh of 10")
            result["gossip"] = gossip_bench.run(10, 20 if a.quick else 100)
    except KeyboardInterrupt:
        say("interrupted: stopping every peer")
        result["interrupted"] = True
    finally:
        kids.kill_all()
        result["elapsed_s"] = time.monotonic() - started
        if a.keep:
            say(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if a.json:
        print(json.dumps(result, indent=2))
    else:
        print(render(result))
    if a.record and not result.get("interrupted"):
        runs = trend.record(result, a.record)
        say(f"figures recorded in {trend.RUNS} (run {a.record!r}); chart: "
            f"{trend.chart(runs)}")
    return 130 if result.get("interrupted") else 0
