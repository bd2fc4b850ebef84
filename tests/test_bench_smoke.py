"""The benchmark runs (at a tiny size) and produces its figures, with nothing lost or
duplicated.  No timing thresholds here: timings live in ``python -m bench``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support import ROOT, child_env

ARGS = ["--only", "mesh,fanout", "--mesh-sizes", "3", "--trials", "1", "--fanout", "1",
        "--rate", "100", "--duration", "1", "--messages", "200", "--json", "--quiet"]


def test_bench_produces_figures() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "bench", *ARGS], cwd=str(ROOT),
                            env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the bench kills its peers on SIGTERM
        out, err = proc.communicate(timeout=15)
        raise AssertionError(f"bench did not finish in 60 s: {err.decode()[-2000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    result = json.loads(out)

    mesh = result["mesh"]["3"]
    assert mesh["status"] == "ok", mesh
    assert mesh["from_last_up"] is not None and mesh["from_last_spawn"] is not None
    # the same from the peers' own clocks (their logs' "listening" stamps, to the us): it
    # can't be later than the face's line, read by the bench after the peer wrote it
    assert mesh["from_last_listening"] >= mesh["from_last_up"] - 0.05, mesh

    fan = result["fanout"]["1"]
    for side in ("p2pchat", "baseline"):
        runs = fan[side]
        assert runs["status"] == "ok", (side, runs)
        for run in (runs["at_rate"], runs["saturation"]):
            assert run["lost"] == 0 and run["duplicated"] == 0, (side, run)
        assert runs["saturation"]["msgs_per_s"] > 0
        sat = runs["saturation"]
        for who in ("sender", "receiver"):
            # Some CPU went into each message (a figure of 0 was a clock too coarse to see
            # it), and no more than the run's wall time (one-thread processes; more would
            # be counting what the process did before the run).
            used_s = sat[f"{who}_cpu_us_per_msg"] * sat["sent"] / 1e6
            assert 0 < used_s <= sat["cpu_window_s"] * 1.05 + 0.005, (side, who, sat)
        assert runs["at_rate"]["latency_p99_ms"] is not None
    assert fan["ratio"] > 0


def test_hotpath_bench_produces_figures() -> None:
    out = subprocess.run([sys.executable, "-m", "bench.hotpath", "--lines", "300",
                          "--rounds", "1", "--links", "3", "--json"], cwd=str(ROOT),
                         env=child_env(), capture_output=True, timeout=120, check=True).stdout
    result = json.loads(out)
    for path in ("receive", "send"):
        assert result[path]["lines"] == 300
        assert result[path]["us_per_line"] > 0 and result[path]["baseline_us_per_line"] > 0
    assert result["send"]["links"] == 3
    assert result["floor"]["us_per_line"] > 0


def test_rows_bench_produces_figures() -> None:
    out = subprocess.run([sys.executable, "-m", "bench.rows", "--lines", "600", "--rounds", "1",
                          "--history", "600", "--json"], cwd=str(ROOT), env=child_env(),
                         capture_output=True, timeout=120, check=True).stdout
    figures = json.loads(out)["figures"]
    assert set(figures) == {"new file", "a file of 600 lines"}
    for got in figures.values():
        assert got["heard_us_per_line"] > 0 and got["said_us_per_line"] > 0
        assert got["search_us_per_line"] > 0  # the later /search index, counted apart


def test_readrows_prototype_produces_figures() -> None:
    """The read-a-row prototype (bench/readrows.py) runs beside today's Store and prints a
    figure for each layout; its own checks (/history 50 in order, hand-on from the right
    sequence) passed."""
    out = subprocess.run([sys.executable, "-m", "bench.readrows", "--lines", "600",
                          "--rounds", "1", "--read-lines", "64"], cwd=str(ROOT),
                         env=child_env(), capture_output=True, timeout=120, check=True).stdout
    text = out.decode()
    for name in ("today (Store, a row a line)", "read a row: blob + runs",
                 "a commit's reads a row: blob + runs", "read a row: log + runs"):
        assert name in text
    assert text.count("history 50 ms") == 3


def test_search_bench_produces_figures() -> None:
    """The /search scenario (``--only search``), at a tiny size: every search ran and found
    lines where the file has them."""
    out = subprocess.run([sys.executable, "-m", "bench", "--only", "search", "--search-lines",
                          "3000", "--quick", "--json", "--quiet"], cwd=str(ROOT),
                         env=child_env(), capture_output=True, timeout=120, check=True).stdout
    result = json.loads(out)["search"]
    assert result["lines"] == 3000 and result["fts"] is True
    for name, figures in result["searches"].items():
        assert figures["median_ms"] >= 0, name
    assert result["searches"]["common_word"]["hits"] == 31  # one line in 97 of 3000
    assert result["searches"]["rare_word"]["hits"] == 1
    assert result["searches"]["word_from_nick"]["hits"] > 0


def test_reference_phase_says_why_it_is_skipped(tmp_path) -> None:
    """Without a checkout of the reference (or go, or root), the phase is one clear line."""
    from bench import reference

    assert "no --reference DIR" in reference.missing(None)
    why = reference.missing(str(tmp_path))
    assert why and ("not a checkout" in why or "no go" in why), why
    proc = subprocess.run([sys.executable, "-m", "bench", "--only", "reference", "--reference",
                           str(tmp_path), "--quiet"], cwd=str(ROOT), env=child_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Side by side with the reference Go peer: skipped: " in proc.stdout, proc.stdout


def test_reference_table() -> None:
    from bench import reference

    side = {"share": 1.0, "share_min": 1.0, "lines_per_s": 9000.0,
            "sender_cpu_us_per_line": 40.0, "receiver_cpu_us_per_line": None}
    text = reference.render({"go": "go1.19", "lines": 5000, "trials": [{}, {}],
                             "reference": dict(side, share=0.5, lines_per_s=6000.0),
                             "p2pchat": side, "ratio": 1.5})
    assert "50.0% (100%)" in text and "100.0% (100%)" in text
    assert "1.50x" in text and "median of 2" in text
    assert "sender CPU us/line, all of it" in text  # the history's work behind the burst


def test_reference_day_and_year_figures_are_charted(tmp_path) -> None:
    from bench import trend

    side = {"share": 1.0, "lines_per_s": 30000.0, "sender_cpu_all_us_per_line": 35.0,
            "receiver_cpu_all_us_per_line": 26.0}
    figs = trend.figures({
        "reference": {"status": "ok", "p2pchat": side, "reference": side, "ratio": 1.8},
        "day": {"status": "ok", "seconds_from_spawn": 19.0},
        "year": {"start_s": {"slower": 0.04}, "history_50_ms": {"median": 0.2},
                 "bytes_per_line": 387.0}})
    assert figs["beside the reference: our delivered rate / theirs"]["value"] == 1.8
    assert figs["beside the reference: our receiver CPU a line, all of it"]["value"] == 26.0
    assert figs["a day of catch-up: seconds from spawn"]["value"] == 19.0
    assert figs["a year of history: bytes a line"]["value"] == 387.0
def test_files_bench_produces_figures() -> None:
    """``python -m bench --only files`` at 8 MB: both pushes finish, figures come."""
    out = subprocess.run([sys.executable, "-m", "bench", "--only", "files", "--files-mb", "8",
                          "--json", "--quiet"], cwd=str(ROOT), env=child_env(),
                         capture_output=True, timeout=180, check=True).stdout
    files = json.loads(out)["files"]
    assert files["baseline"]["status"] == "ok", files
    assert files["p2pchat"]["status"] == "ok", files
    assert files["ratio"] > 0
    assert files["p2pchat"]["pings_lost"] == 0
    assert set(files["p2pchat"]["rss_peak_mb"]) == {"alice", "bob"}
def test_runs_are_kept_and_charted(tmp_path) -> None:
    """bench.trend: a result's figures go into the runs file (merged under one label) and
    the chart shows them against the previous run's."""
    from bench import trend

    runs_path, chart_path = str(tmp_path / "runs.json"), str(tmp_path / "chart.svg")
    old = {"machine": {"date": "d0", "load_before": 1.0},
           "mesh": {"50": {"status": "ok", "from_last_up": 2.0, "from_last_spawn": 7.0}}}
    trend.record(old, "before", runs_path)
    new = {"machine": {"date": "d1", "load_before": 2.0},
           "mesh": {"50": {"status": "ok", "from_last_up": 1.0, "from_last_spawn": 6.0}}}
    trend.record(new, "now", runs_path)
    trend.record({"machine": {"date": "d1", "load_before": 3.0},
                  "stall": {"paste": {"status": "ok", "worst_ms": 12.5},
                            "file": {"status": "n/a (not built)"}}}, "now", runs_path)
    runs = trend.load(runs_path)
    assert [r["label"] for r in runs] == ["before", "now"]
    figs = runs[-1]["figures"]
    assert figs["mesh N=50: last peer up -> full mesh"]["value"] == 1.0
    assert figs["stall: paste"]["value"] == 12.5
    assert figs["stall: file"] == {"value": None, "unit": "ms", "better": "lower",
                                   "note": "n/a (not built)"}
    _, prev = trend.previous(runs, "mesh N=50: last peer up -> full mesh")
    assert prev is not None and prev["value"] == 2.0
    svg = open(trend.chart(runs, chart_path), encoding="utf-8").read()
    assert svg.startswith("<svg") and "2.00 s" in svg and "1.00 s" in svg
    assert "n/a (not built)" in svg


def test_a_peer_is_up_when_its_log_says_it_listens(tmp_path) -> None:
    from bench.procs import Child
    from bench.scenarios import listening_at

    (tmp_path / "p2pchat.log").write_text(
        "2026-12-03T13:35:34.250000+0000 [p2pchat.service#info] twistd starting up\n"
        "2026-12-03T13:35:34.500000+0000 [p2pchat.service#info] m84 (5frobt4ogo57zgca) "
        "listening on TCP port 45549\n", encoding="utf-8")
    child = Child.__new__(Child)
    child.argv = ["twistd", "-n", "p2pchat", "--data-dir", str(tmp_path)]
    assert listening_at(child) == 1796304934.5
    child.argv = ["twistd", "-n", "p2pchat", "--data-dir", str(tmp_path / "none")]
    assert listening_at(child) is None


def test_stall_probe_lines_are_read_after_the_mark(tmp_path) -> None:
    from bench import holds as stall

    log = tmp_path / "p2pchat.log"
    log.write_bytes(b"x [p2pchat.lateness#info] stall probe: worst 80.0 ms late, 70.0 ms of "
                    b"CPU between ticks, in the last 1.0 s (worst since start 80.0 ms late)\n")
    mark = stall.log_end(str(log))
    with open(log, "ab") as f:
        f.write(b"x stall probe: worst 3.5 ms late, 3.0 ms of CPU between ticks, in ...\n"
                b"x stall probe: worst 12.0 ms late, 1.5 ms of CPU between ticks, in ...\n")
    assert stall.worst_since(str(log), mark) == 3.0
    assert stall.worst_since(str(log), mark, cpu=False) == 12.0
    assert stall.worst_since(str(log), stall.log_end(str(log))) is None


def test_stall_bench_produces_figures() -> None:
    """``--only stall`` (a small catch-up and file): every case ran (the probe's log lines
    were found, in both peers of each).  No thresholds: the figures live in the bench."""
    out = subprocess.run([sys.executable, "-m", "bench", "--only", "stall", "--json",
                          "--quiet", "--stall-day-lines", "2000", "--stall-file-mb", "4"],
                         cwd=str(ROOT), env=child_env(), capture_output=True,
                         timeout=240, check=True).stdout
    result = json.loads(out)["stall"]
    for case in ("idle", "receive", "catchup", "burst", "paste", "file"):
        assert result[case]["status"] == "ok", (case, result[case])
        assert result[case]["worst_ms"] is not None, (case, result[case])
    for case in ("catchup", "file"):
        for side in ("sender_worst_ms", "receiver_worst_ms"):
            assert result[case][side] is not None, (case, side, result[case])
    assert (result["catchup"]["lines"], result["catchup"]["duplicates"]) == (2000, 0)
    assert result["file"]["size_mb"] == 4


def test_reference_table_says_what_held_the_sender() -> None:
    """Running, waiting for a core, idle: the sender's shares of the burst, of the run with
    the median rate (a table row; '-' where the scheduler's figures are missing)."""
    from bench import reference

    runs = [{"lines_per_s": 1.0, "sender_shares": (0.1, 0.2, 0.7)},
            {"lines_per_s": 3.0, "sender_shares": (0.3, 0.3, 0.4)},
            {"lines_per_s": 2.0, "sender_shares": (0.25, 0.5, 0.25)}, {"lines_per_s": 9.0}]
    assert reference._median_shares(runs) == (0.25, 0.5, 0.25)
    assert reference._median_shares([{"lines_per_s": 1.0}]) is None
    side = {"share": 1.0, "share_min": 1.0, "lines_per_s": 9000.0,
            "sender_cpu_us_per_line": 40.0, "receiver_cpu_us_per_line": None}
    text = reference.render({"go": "go1.19", "lines": 5000, "trials": [{}],
                             "reference": dict(side, sender_shares=None),
                             "p2pchat": dict(side, sender_shares=(0.25, 0.5, 0.25))})
    row = next(line for line in text.splitlines() if "waiting for a core" in line)
    assert row.split()[-2:] == ["-", "25/50/25%"]


def test_a_childs_stdin_pipe_takes_a_whole_burst(tmp_path) -> None:
    """A burst is written to a child's stdin at once: its pipe is widened (the default
    64 KiB held the sender back whenever the bench, busy itself, was late to refill it)."""
    import fcntl

    from bench.procs import STDIN_PIPE_BYTES, Child

    child = Child("cat", ["cat"], str(tmp_path))
    try:
        F_GETPIPE_SZ = 1032
        assert fcntl.fcntl(child.stdin_fd, F_GETPIPE_SZ) >= STDIN_PIPE_BYTES
        burst = b"x" * (STDIN_PIPE_BYTES - 1)  # taken in one write, the child reading nothing
        assert os.write(child.stdin_fd, burst) == len(burst)
    finally:
        child.kill()
        child.reap()
