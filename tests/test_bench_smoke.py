"""The benchmark runs (at a tiny size) and produces its figures, with nothing lost or
duplicated.  No timing thresholds here: timings live in ``python -m bench``."""

from __future__ import annotations

import json
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

    fan = result["fanout"]["1"]
    for side in ("p2pchat", "baseline"):
        runs = fan[side]
        assert runs["status"] == "ok", (side, runs)
        for run in (runs["at_rate"], runs["saturation"]):
            assert run["lost"] == 0 and run["duplicated"] == 0, (side, run)
        assert runs["saturation"]["msgs_per_s"] > 0
        assert runs["at_rate"]["latency_p99_ms"] is not None
    assert fan["ratio"] > 0
