"""Reading the cProfile files of a profiled fan-out: the top functions by own and cumulative
time, and the hot path (parse, validate, dedup, encode, write, event fan-out to the line face)
as microseconds per message."""

from __future__ import annotations

import os
import pstats

#: (label, file suffix, function name) of the hot path, in call order.  Times are cumulative
#: (the function and what it calls), per message handled by that process.
RECEIVE_PATH = [
    ("LineReceiver.dataReceived (split lines)", "twisted/protocols/basic.py", "dataReceived"),
    ("PeerProtocol.lineReceived (all of it)", "p2pchat/mesh.py", "lineReceived"),
    ("  PeerProtocol._throttle (flood bucket)", "p2pchat/mesh.py", "_throttle"),
    ("  parse_message (parse + validate)", "p2pchat/wire.py", "parse_message"),
    ("    json.loads", "json/__init__.py", "loads"),
    ("    parse_time", "p2pchat/wire.py", "parse_time"),
    ("    _string", "p2pchat/wire.py", "_string"),
    ("  Node.message_received", "p2pchat/node.py", "message_received"),
    ("    Room.accept (dedup)", "p2pchat/room.py", "accept"),
    ("    CatchUp.schedule_ack", "p2pchat/syncing.py", "schedule_ack"),
    ("    printable", "p2pchat/wire.py", "printable"),
    ("    Node.emit (event fan-out)", "p2pchat/node.py", "emit"),
    ("      LineFace.on_event", "p2pchat/lines.py", "on_event"),
    ("        format_event", "p2pchat/lines.py", "format_event"),
    ("          clock_text (strftime)", "p2pchat/lines.py", "clock_text"),
    ("        LineFace._write (stdout)", "p2pchat/lines.py", "_write"),
]
SEND_PATH = [
    ("LineFace.lineReceived (stdin)", "p2pchat/lines.py", "lineReceived"),
    ("  parse_input", "p2pchat/commands.py", "parse_input"),
    ("  Chat._say", "p2pchat/chat.py", "_say"),
    ("    Sender.message (build)", "p2pchat/sending.py", "message"),
    ("      new_message_id", "p2pchat/wire.py", "new_message_id"),
    ("      sign_line (Ed25519)", "p2pchat/relay.py", "sign_line"),
    ("    Room.accept", "p2pchat/room.py", "accept"),
    ("    Sender.publish", "p2pchat/sending.py", "publish"),
    ("      SentLog.append", "p2pchat/catchup.py", "append"),
    ("        encode_message (once)", "p2pchat/wire.py", "encode_message"),
    ("          json.dumps", "json/__init__.py", "dumps"),
    ("          format_time", "p2pchat/wire.py", "format_time"),
    ("      Sender.pump (a link behind)", "p2pchat/sending.py", "pump"),
    ("      PeerProtocol.send_bytes (x K)", "p2pchat/mesh.py", "send_bytes"),
    ("        transport.write", "twisted/internet/abstract.py", "write"),
    ("    Node.emit (own line)", "p2pchat/node.py", "emit"),
    ("      format_event", "p2pchat/lines.py", "format_event"),
    ("socket send (doWrite)", "twisted/internet/abstract.py", "doWrite"),
]


def _short(key: tuple[str, int, str]) -> str:
    filename, line, func = key
    if filename == "~":
        return func
    parts = filename.replace(os.sep, "/").split("/")
    for anchor in ("p2pchat", "twisted", "json", "bench"):
        if anchor in parts:
            i = len(parts) - 1 - parts[::-1].index(anchor)
            return f"{'/'.join(parts[i:])}:{line}({func})"
    return f"{parts[-1]}:{line}({func})"


#: Waiting, not working: the reactor's poll.
IDLE = {("~", "<method 'poll' of 'select.epoll' objects>"),
        ("~", "<method 'poll' of 'select.poll' objects>"),
        ("~", "<built-in method select.select>")}
#: Start-up (imports, class creation), not the hot path.
STARTUP = ("<frozen importlib", "<built-in method marshal.", "<built-in method builtins.compile",
           "<built-in method builtins.exec", "<built-in method builtins.__build_class__",
           "<built-in method posix.stat", "<built-in method _imp.", "sre_compile", "_compiler.py",
           "_parser.py", "<built-in method io.open_code", "<method 'read' of '_io.BufferedReader")


def _is_startup(key: tuple[str, int, str]) -> bool:
    text = f"{key[0]}:{key[2]}"
    return (any(mark in text for mark in STARTUP) or "/re/" in key[0]
            or key[2] in ("<module>", "<built-in method builtins.__import__>"))


def analyse(path: str, messages: int, path_spec: list[tuple[str, str, str]],
            top: int = 12) -> dict:
    """Figures from one profile file; ``messages``: how many chat lines it handled.  The
    tables leave out the reactor's idle wait and the start-up (imports), and any frame whose
    cumulative time holds the idle wait (the reactor's run loop and its callers)."""
    stats = pstats.Stats(path)
    raw = stats.stats  # {(file, line, func): (cc, nc, tt, ct, callers)}
    idle = sum(v[2] for k, v in raw.items() if (k[0], k[2]) in IDLE)
    startup = sum(v[2] for k, v in raw.items() if _is_startup(k))
    total = sum(v[2] for v in raw.values()) - idle
    busy = total - startup
    rows = [(k, v[1], v[2], v[3]) for k, v in raw.items()
            if (k[0], k[2]) not in IDLE and not _is_startup(k) and v[3] < busy]

    def table(index: int) -> list[dict]:
        chosen = sorted(rows, key=lambda r: r[index], reverse=True)[:top]
        return [{"function": _short(k), "calls": n, "own_s": tt, "cum_s": ct,
                 "own_us_per_msg": 1e6 * tt / messages, "cum_us_per_msg": 1e6 * ct / messages}
                for k, n, tt, ct in chosen]

    hot = []
    for label, suffix, func in path_spec:
        matches = [(k, v) for k, v in raw.items()
                   if k[2] == func and k[0].replace(os.sep, "/").endswith(suffix)]
        if not matches:
            continue
        calls = sum(v[1] for _, v in matches)
        cum = sum(v[3] for _, v in matches)
        own = sum(v[2] for _, v in matches)
        hot.append({"step": label, "calls": calls, "calls_per_msg": calls / messages,
                    "cum_us_per_msg": 1e6 * cum / messages,
                    "own_us_per_msg": 1e6 * own / messages})
    return {"file": path, "messages": messages, "total_s": total, "idle_s": idle,
            "startup_s": startup, "busy_s": busy, "us_per_msg_all": 1e6 * busy / messages,
            "by_own": table(2), "by_cum": table(3), "hot_path": hot}


def render(name: str, a: dict) -> list[str]:
    out = [f"{name}: {a['messages']} chat lines; CPU {a['total_s']:.2f} s in all, of which "
           f"{a['startup_s']:.2f} s start-up (imports); the rest is {a['us_per_msg_all']:.0f} us "
           f"per chat line (reactor idle wait, {a['idle_s']:.2f} s, left out)",
           "  hot path (cumulative, us per chat line; calls per line):"]
    for h in a["hot_path"]:
        out.append(f"    {h['step']:<44} {h['cum_us_per_msg']:8.1f} us  "
                   f"(own {h['own_us_per_msg']:6.1f})  x{h['calls_per_msg']:.2f}")
    for title, key, field in (("by own time", "by_own", "own"), ("by cumulative time",
                                                                   "by_cum", "cum")):
        out.append(f"  top {len(a[key])} {title}:")
        out.append(f"    {'function':<58} {'calls':>8} {'own s':>7} {'cum s':>7} "
                   f"{'us/line':>8}")
        for r in a[key]:
            out.append(f"    {r['function'][:58]:<58} {r['calls']:>8} {r['own_s']:7.3f} "
                       f"{r['cum_s']:7.3f} {r[field + '_us_per_msg']:8.1f}")
    return out
