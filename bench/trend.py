"""The runs kept (``bench/runs.json``) and a chart of this run's figures against the previous
run's (``bench/performance.svg``), written by ``python -m bench --record``.

``runs.json`` is a list of runs, oldest first; each holds its date, the machine, the load seen
before it, and flat figures: ``{"mesh N=50: last peer up -> full mesh": {"value": 2.19,
"unit": "s", "better": "lower"}, ...}`` (``value`` null when the run had no figure, with a
``note`` such as ``timed out``).  A run compares against the newest earlier run that has the
figure.  The chart is plain SVG written here (one row per figure, the previous run's bar above
this run's, each row scaled to its larger value), so the bench needs no plotting library.
"""

from __future__ import annotations

import html
import json
import os
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = os.path.join(HERE, "runs.json")
CHART = os.path.join(HERE, "performance.svg")

Figures = dict[str, dict[str, Any]]


def _fig(out: Figures, name: str, value: float | None, unit: str, better: str,
         note: str = "") -> None:
    entry: dict[str, Any] = {"value": None if value is None else round(float(value), 4),
                             "unit": unit, "better": better}
    if note:
        entry["note"] = note
    out[name] = entry


def figures(r: dict) -> Figures:
    """The figures of one ``python -m bench`` result, flat and named."""
    out: Figures = {}
    for n, e in r.get("mesh", {}).items():
        note = "" if e.get("status") == "ok" else str(e.get("status"))
        _fig(out, f"mesh N={n}: last peer up -> full mesh", e.get("from_last_up"), "s",
             "lower", note)
        _fig(out, f"mesh N={n}: last spawn -> full mesh", e.get("from_last_spawn"), "s",
             "lower", note)
        if e.get("from_last_listening") is not None:  # the last peer's own clock (its log)
            _fig(out, f"mesh N={n}: last peer listening -> full mesh, by its log",
                 e["from_last_listening"], "s", "lower")
        if e.get("cpu_s_per_peer") is not None:
            _fig(out, f"mesh N={n}: CPU per peer to form it", e["cpu_s_per_peer"], "s", "lower")
        if e.get("one_line_each_s") is not None:
            _fig(out, f"mesh N={n}: one line from each reaches all", e["one_line_each_s"], "s",
                 "lower")
        if e.get("thrown_away") is not None:
            _fig(out, f"mesh N={n}: connections thrown away", e["thrown_away"], "", "lower")
    for k, e in r.get("fanout", {}).items():
        try:
            sat = e["p2pchat"]["saturation"]
            _fig(out, f"fan-out K={k}: msgs/s at saturation", sat.get("msgs_per_s"), "/s",
                 "higher")
            _fig(out, f"fan-out K={k}: share of the bare relay", 100 * e["ratio"], "%",
                 "higher")
            _fig(out, f"fan-out K={k}: p99 latency at rate",
                 e["p2pchat"]["at_rate"].get("latency_p99_ms"), "ms", "lower")
        except (KeyError, TypeError):
            _fig(out, f"fan-out K={k}: msgs/s at saturation", None, "/s", "higher",
                 str(e.get("p2pchat", {}).get("status")))
    c = r.get("cost")
    if c and c.get("status") in ("ok", "mesh broke during the window"):
        links = c["links"]
        _fig(out, "idle peer alone: RSS", c.get("idle_rss_mb"), "MB", "lower")
        _fig(out, f"idle peer with {links} links: RSS (median)", c.get("meshed_rss_mb_median"),
             "MB", "lower")
        _fig(out, "idle peer alone: CPU", c.get("idle_cpu_pct"), "%", "lower")
        _fig(out, f"idle peer with {links} links: CPU (median)",
             c.get("meshed_cpu_pct_median"), "%", "lower")
    ref = r.get("reference")
    if ref and ref.get("status") == "ok" and "p2pchat" in ref:
        _fig(out, "beside the reference: our delivered rate / theirs", ref.get("ratio"), "x",
             "higher")
        _fig(out, "beside the reference: our delivered lines/s", ref["p2pchat"]["lines_per_s"],
             "/s", "higher")
        for role in ("sender", "receiver"):
            _fig(out, f"beside the reference: our {role} CPU a line, all of it",
                 ref["p2pchat"].get(f"{role}_cpu_all_us_per_line"), "us", "lower")
    day = r.get("day")
    if day and day.get("status") == "ok":
        _fig(out, "a day of catch-up: seconds from spawn", day.get("seconds_from_spawn"), "s",
             "lower")
    year = r.get("year")
    if year and isinstance(year.get("start_s"), dict) and "slower" in year["start_s"]:
        _fig(out, "a year of history: start-up slower by", year["start_s"]["slower"], "s",
             "lower")
        _fig(out, "a year of history: /history 50 (median)", year["history_50_ms"]["median"],
             "ms", "lower")
        _fig(out, "a year of history: bytes a line", year.get("bytes_per_line"), "B", "lower")
    for key, e in r.get("stall", {}).items():
        _fig(out, f"stall: {key}", e.get("worst_ms"), "ms", "lower",
             "" if e.get("worst_ms") is not None else str(e.get("status")))
    return out


def load(path: str = RUNS) -> list[dict]:
    try:
        with open(path, encoding="utf-8") as f:
            runs = json.load(f)
    except (OSError, ValueError):
        return []
    return runs if isinstance(runs, list) else []


def record(r: dict, label: str, path: str = RUNS) -> list[dict]:
    """Add this result's figures to the runs file as a run called ``label``: a new run, or,
    when the newest run has that label, into it (so several ``--only`` invocations make one
    run).  Returns every run."""
    runs = load(path)
    m = r.get("machine", {})
    if runs and runs[-1].get("label") == label:
        run = runs[-1]
        if m.get("load_before") is not None:
            run["load_before"] = f"{run.get('load_before')}; {m['load_before']:.2f}"
        run["figures"].update(figures(r))
    else:
        runs.append({"date": m.get("date"), "label": label, "load_before": m.get("load_before"),
                     "machine": f"{m.get('cores')} cores ({m.get('cpu')}), Python "
                                f"{m.get('python')}, Twisted {m.get('twisted')}",
                     "figures": figures(r)})
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(runs, f, indent=1)
        f.write("\n")
    os.replace(path + ".tmp", path)
    return runs


def previous(runs: list[dict], name: str) -> tuple[dict | None, dict | None]:
    """The newest earlier run with a value for ``name``, and that figure."""
    for run in reversed(runs[:-1]):
        fig = run.get("figures", {}).get(name)
        if fig is not None and fig.get("value") is not None:
            return run, fig
    return None, None


def _fmt(fig: dict | None) -> str:
    if fig is None:
        return "-"
    if fig.get("value") is None:
        return str(fig.get("note") or "none")
    v = fig["value"]
    return f"{v:,.0f} {fig['unit']}" if abs(v) >= 100 else f"{v:.2f} {fig['unit']}"


def chart(runs: list[dict], path: str = CHART) -> str:
    """An SVG of the newest run's figures against the previous ones; returns its path."""
    if not runs:
        raise ValueError("no run to chart")
    this = runs[-1]
    names = list(this.get("figures", {}))
    row_h, label_w, bar_w, left = 34, 330, 360, 10
    width = left + label_w + bar_w + 170
    height = 60 + row_h * len(names) + 20
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{left}" y="20" font-size="15" font-weight="bold">p2pchat benchmark: '
             f'{html.escape(str(this.get("date")))} against the previous run</text>',
             f'<text x="{left}" y="40" fill="#555">{html.escape(str(this.get("machine")))}; '
             f'load before {this.get("load_before")}. Grey: previous run (date in brackets), '
             f'blue: this run; green/red: better/worse.</text>']
    for i, name in enumerate(names):
        y = 60 + i * row_h
        fig = this["figures"][name]
        old_run, old = previous(runs, name)
        values = [v for v in (fig.get("value"), old and old.get("value")) if v is not None]
        top = max(values) if values else 1.0
        top = top or 1.0
        parts.append(f'<text x="{left}" y="{y + 18}">{html.escape(name)} '
                     f'({"lower" if fig["better"] == "lower" else "higher"} is better)</text>')
        x0 = left + label_w
        if old is not None:
            w = bar_w * old["value"] / top
            parts.append(f'<rect x="{x0}" y="{y + 2}" width="{w:.1f}" height="12" fill="#bbb"/>')
            when = html.escape(str(old_run.get("date") if old_run else ""))
            parts.append(f'<text x="{x0 + w + 4:.1f}" y="{y + 12}" fill="#555">'
                         f'{html.escape(_fmt(old))} [{when}]</text>')
        if fig.get("value") is not None:
            w = bar_w * fig["value"] / top
            color = "#3b73b9"
            if old is not None:
                better = (fig["value"] < old["value"]) if fig["better"] == "lower" else (
                    fig["value"] > old["value"])
                color = "#2e8b3e" if better else "#c0392b"
                if fig["value"] == old["value"]:
                    color = "#3b73b9"
            parts.append(f'<rect x="{x0}" y="{y + 16}" width="{w:.1f}" height="12" '
                         f'fill="{color}"/>')
            parts.append(f'<text x="{x0 + w + 4:.1f}" y="{y + 26}">'
                         f'{html.escape(_fmt(fig))}</text>')
        else:
            parts.append(f'<text x="{x0}" y="{y + 26}" fill="#c0392b">'
                         f'{html.escape(_fmt(fig))}</text>')
    parts.append("</svg>")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(parts) + "\n")
    return path
