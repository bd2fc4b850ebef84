"""The console end to end, in real pseudo-terminals: two ``twistd -n p2pchat --ui console``
peers on loopback, each in a tmux window of a private tmux server.  What one types appears on
the other's screen; no log line is ever drawn; /quit and Ctrl-C leave with status 0.

Needs tmux (CI installs it); skipped with a reason when it is missing.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.support import child_env, fresh_multicast, peer_args

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None,
                                reason="tmux is not installed (apt-get install tmux)")

COLS, ROWS = 120, 35
#: Longest wait for any one thing on a screen (start-up, a line crossing, shutdown).
DEADLINE = 20.0
#: A twisted log line, as textFileLogObserver writes it: "2024-01-01T10:00:00+0000 [...]".
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} \[")


class Tmux:
    """A tmux server of its own (unique socket), with one window per peer.

    Each peer runs under ``sh``, which writes its exit status to a file: tmux's own
    ``pane_dead_status`` proved unreliable (now and then it never reaps the exited process)."""

    def __init__(self, status_dir: Path) -> None:
        self.socket = f"p2pchat-e2e-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.status_dir = status_dir
        self.pids: list[int] = []
        self.socket_path = ""
        self.tmux("new-session", "-d", "-s", "t", "-x", str(COLS), "-y", str(ROWS),
                  "-n", "holder", "exec sleep 600")
        self.tmux("set-option", "-g", "default-shell", "/bin/sh")
        self.tmux("set-option", "-g", "remain-on-exit", "on")
        self.socket_path = self.tmux("display", "-p", "#{socket_path}").strip()

    def tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args],
                              capture_output=True, text=True, timeout=10, env=child_env())
        if done.returncode != 0:
            raise AssertionError(f"tmux {args[0]} failed: {done.stderr.strip()}")
        return done.stdout

    def _status_file(self, name: str) -> Path:
        return self.status_dir / f"{name}.status"

    def start(self, name: str, argv: list[str]) -> None:
        status = shlex.quote(str(self._status_file(name)))
        self.tmux("new-window", "-d", "-t", "t", "-n", name,
                  f"{shlex.join(argv)}; echo $? > {status}")
        # The pane's shell leads its own process group, twistd included.
        self.pids.append(int(self.tmux("display", "-p", "-t", f"t:{name}", "#{pane_pid}")))

    def screen(self, name: str) -> str:
        return self.tmux("capture-pane", "-p", "-t", f"t:{name}")

    def send(self, name: str, *keys: str) -> None:
        self.tmux("send-keys", "-t", f"t:{name}", *keys)

    def paste(self, name: str, text: str) -> None:
        """Paste ``text`` as a terminal does: tmux wraps it in the bracketed paste markers
        when the program turned mode 2004 on (``-p``); newlines arrive as Enter (CR)."""
        path = self.status_dir / f"paste-{uuid.uuid4().hex[:8]}.txt"
        path.write_text(text, encoding="utf-8")
        self.tmux("load-buffer", "-b", "paste", str(path))
        self.tmux("paste-buffer", "-p", "-d", "-b", "paste", "-t", f"t:{name}")

    def type(self, name: str, text: str) -> None:
        self.tmux("send-keys", "-t", f"t:{name}", "-l", text)
        self.send(name, "Enter")

    def exit_status(self, name: str) -> int | None:
        """The peer's exit status once it ended, else None."""
        try:
            text = self._status_file(name).read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text else None

    def close(self) -> None:
        for pid in self.pids:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.tmux("kill-server")
        except (AssertionError, subprocess.TimeoutExpired):
            pass
        if self.socket_path:
            Path(self.socket_path).unlink(missing_ok=True)


def wait_until(what: str, check, deadline: float = DEADLINE):
    """Poll ``check()`` until it returns something true; fail with ``what`` at the deadline."""
    end = time.monotonic() + deadline
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"not seen within {deadline} s: {what}")
        time.sleep(0.1)


@pytest.fixture
def tmux(tmp_path: Path):
    server = Tmux(tmp_path)
    try:
        yield server
    finally:
        server.close()


def expect(tmux: Tmux, data: Path, what: str, check):
    """``wait_until``, and on a timeout a failure that shows every screen and log tail."""
    try:
        return wait_until(what, check)
    except AssertionError as e:
        parts = [str(e)]
        for name in ("alice", "bob"):
            log = data / name / "p2pchat.log"
            tail = log.read_text(encoding="utf-8")[-2500:] if log.exists() else "(no log)"
            try:
                screen = tmux.screen(name)
            except AssertionError as gone:
                screen = str(gone)
            parts += [f"--- {name}'s screen:", screen.rstrip(), f"--- {name}'s log:", tail]
        raise AssertionError("\n".join(parts)) from None


def screen_if(tmux: Tmux, name: str, pattern: str) -> str | None:
    """The screen of ``name`` if ``pattern`` is on it."""
    screen = tmux.screen(name)
    return screen if re.search(pattern, screen) else None


def assert_no_log_lines(screen: str, who: str) -> None:
    for line in screen.splitlines():
        assert not LOG_LINE.search(line), f"a log line on {who}'s screen: {line!r}"
        assert "Traceback" not in line, f"a traceback on {who}'s screen: {line!r}"


def test_two_console_peers_chat_and_leave(tmux: Tmux, tmp_path: Path) -> None:
    multicast = fresh_multicast()
    for nick in ("alice", "bob"):
        tmux.start(nick, peer_args(nick, multicast, str(tmp_path / nick), ui="console"))

    # Both consoles up and linked: each status bar counts one connected peer.
    for nick in ("alice", "bob"):
        expect(tmux, tmp_path, f"{nick}'s console linked",
               lambda n=nick: "peers 1/1" in tmux.screen(n))

    tmux.type("alice", "hello from alice 日本語 😀")
    said = r"alice hello from alice 日本語 😀"
    bob_screen = expect(tmux, tmp_path, "alice's line on bob's screen",
                        lambda: screen_if(tmux, "bob", said))
    assert "--> alice joined" in bob_screen
    tmux.type("bob", "/me waves")
    expect(tmux, tmp_path, "bob's action on alice's screen",
           lambda: "* bob waves" in tmux.screen("alice"))

    for nick in ("alice", "bob"):
        assert_no_log_lines(tmux.screen(nick), nick)
        # The log went to the data dir instead (twistd -n would have used the screen).
        log = (tmp_path / nick / "p2pchat.log").read_text(encoding="utf-8")
        assert "listening on TCP port" in log

    # /quit: exit status 0, the peer is told (a goodbye, not a lost connection).
    tmux.type("alice", "/quit")
    assert expect(tmux, tmp_path, "alice's exit", lambda: tmux.exit_status("alice") is not None)
    assert tmux.exit_status("alice") == 0
    expect(tmux, tmp_path, "alice's goodbye on bob's screen",
           lambda: re.search(r"<-- alice left(?! \()", tmux.screen("bob")))
    # The terminal was given back: the chat is no longer drawn on it.
    assert "#general" not in tmux.screen("alice")

    # Ctrl-C leaves as cleanly.
    assert_no_log_lines(tmux.screen("bob"), "bob")
    tmux.send("bob", "C-c")
    expect(tmux, tmp_path, "bob's exit", lambda: tmux.exit_status("bob") is not None)
    assert tmux.exit_status("bob") == 0
    assert "#general" not in tmux.screen("bob")


def test_rooms_and_a_private_talk(tmux: Tmux, tmp_path: Path) -> None:
    """Both peers /join #ops: a line said there is in the other's #ops conversation; a /msg
    opens a private conversation on the other side (counted, not shown until switched to)."""
    multicast = fresh_multicast()
    for nick in ("alice", "bob"):
        tmux.start(nick, peer_args(nick, multicast, str(tmp_path / nick), ui="console"))
    for nick in ("alice", "bob"):
        expect(tmux, tmp_path, f"{nick}'s console linked",
               lambda n=nick: "peers 1/1" in tmux.screen(n))

    tmux.type("bob", "/join #ops")
    expect(tmux, tmp_path, "bob in #ops", lambda: "│ #ops │" in tmux.screen("bob"))
    tmux.type("alice", "/join #ops")
    # bob is listed as there when alice joins (or, if his rooms line came late, joins after).
    expect(tmux, tmp_path, "alice in #ops with bob",
           lambda: screen_if(tmux, "alice", r"(also here: bob|bob joined #ops)[\s\S]*│ #ops │"))
    expect(tmux, tmp_path, "bob sees alice join #ops",
           lambda: "alice joined #ops" in tmux.screen("bob"))

    tmux.type("alice", "ops line from alice")
    expect(tmux, tmp_path, "alice's #ops line on bob's #ops screen",
           lambda: screen_if(tmux, "bob", r"alice ops line from alice[\s\S]*│ #ops │"))
    # bob acknowledges it: the pending mark on alice's own line goes.
    expect(tmux, tmp_path, "alice's line delivered (no pending mark)",
           lambda: screen_if(tmux, "alice", r"alice ops line from alice +│")
           and "⧗" not in tmux.screen("alice"))

    tmux.type("alice", "/msg bob a private word")
    expect(tmux, tmp_path, "a private conversation on bob's side, counted",
           lambda: screen_if(tmux, "bob", r"3 alice +1!"))
    assert "a private word" not in tmux.screen("bob")  # not switched to it
    tmux.send("bob", "M-3")
    expect(tmux, tmp_path, "bob shows the private conversation",
           lambda: screen_if(tmux, "bob", r"alice a private word[\s\S]*bob │ alice │"))
    tmux.type("bob", "a private answer")
    expect(tmux, tmp_path, "bob's answer counted in alice's private conversation",
           lambda: screen_if(tmux, "alice", r"3 bob +1!"))
    # Ctrl-N from #ops: the next conversation, the private talk.
    tmux.send("alice", "C-n")
    expect(tmux, tmp_path, "alice shows the private conversation",
           lambda: screen_if(tmux, "alice", r"bob a private answer[\s\S]*alice │ bob │"))

    for nick in ("alice", "bob"):
        assert_no_log_lines(tmux.screen(nick), nick)
        tmux.type(nick, "/quit")
    for nick in ("alice", "bob"):
        expect(tmux, tmp_path, f"{nick}'s exit", lambda n=nick: tmux.exit_status(n) is not None)
        assert tmux.exit_status(nick) == 0


def start_linked(tmux: Tmux, tmp_path: Path) -> None:
    multicast = fresh_multicast()
    for nick in ("alice", "bob"):
        tmux.start(nick, peer_args(nick, multicast, str(tmp_path / nick), ui="console"))
    for nick in ("alice", "bob"):
        expect(tmux, tmp_path, f"{nick}'s console linked",
               lambda n=nick: "peers 1/1" in tmux.screen(n))


def quit_both(tmux: Tmux, tmp_path: Path) -> None:
    for nick in ("alice", "bob"):
        assert_no_log_lines(tmux.screen(nick), nick)
        assert "connection lost" not in tmux.screen(nick)
        tmux.type(nick, "/quit")
    for nick in ("alice", "bob"):
        expect(tmux, tmp_path, f"{nick}'s exit", lambda n=nick: tmux.exit_status(n) is not None)
        assert tmux.exit_status(nick) == 0


def test_a_paste_of_20000_characters(tmux: Tmux, tmp_path: Path) -> None:
    """One pasted line of 20,000 characters: the screen keeps up, the line is refused with a
    message when sent, and the link stays up (issue 14.2: the old input line froze the peer
    for seconds and its links dropped)."""
    start_linked(tmux, tmp_path)
    tmux.paste("alice", "p" * 20_000)
    expect(tmux, tmp_path, "the status bar counting the pasted bytes",
           lambda: "20000/4000 bytes: too long" in tmux.screen("alice"))
    tmux.send("alice", "Enter")
    expect(tmux, tmp_path, "the line refused",
           lambda: screen_if(tmux, "alice", r"that line is 20000 bytes; the limit is 4000"))
    # The input is free again, and the link carries a line both ways.
    tmux.type("alice", "still here")
    expect(tmux, tmp_path, "alice's next line on bob's screen",
           lambda: "alice still here" in tmux.screen("bob"))
    tmux.type("bob", "me too")
    expect(tmux, tmp_path, "bob's answer on alice's screen",
           lambda: "bob me too" in tmux.screen("alice"))
    assert "pppppppppp" not in tmux.screen("bob")
    quit_both(tmux, tmp_path)


def test_a_pasted_block_is_asked_about(tmux: Tmux, tmp_path: Path) -> None:
    """Five pasted lines, one of them /quit: the console asks; Ctrl-Y says all five as text
    (the /quit too, and alice stays); a second paste, answered Ctrl-N, says nothing."""
    start_linked(tmux, tmp_path)
    block = "block one\nblock two\n/quit\nblock four\nblock five\n"
    tmux.paste("alice", block)
    expect(tmux, tmp_path, "the paste question",
           lambda: "Paste 5 lines? [ctrl-y] Yes [ctrl-n] No" in tmux.screen("alice"))
    assert "block one" not in tmux.screen("bob")
    tmux.send("alice", "C-y")
    expect(tmux, tmp_path, "the five lines on bob's screen",
           lambda: screen_if(tmux, "bob", r"alice block one[\s\S]*alice block two[\s\S]*"
                                          r"alice /quit[\s\S]*alice block four[\s\S]*"
                                          r"alice block five"))
    assert tmux.exit_status("alice") is None  # /quit was text
    assert "Paste 5 lines?" not in tmux.screen("alice")

    tmux.paste("alice", "dropped one\ndropped two\n")
    expect(tmux, tmp_path, "the second paste question",
           lambda: "Paste 2 lines?" in tmux.screen("alice"))
    tmux.send("alice", "C-n")
    expect(tmux, tmp_path, "the paste dropped",
           lambda: "paste of 2 lines dropped" in tmux.screen("alice"))
    # Without the markers (as from a terminal that has no bracketed paste): one read that
    # holds an Enter before more keys is a paste too.
    tmux.send("alice", "-l", "burst one\rburst two\r")
    expect(tmux, tmp_path, "the question for an unbracketed paste",
           lambda: "Paste 2 lines?" in tmux.screen("alice"))
    tmux.send("alice", "C-n")
    expect(tmux, tmp_path, "the unbracketed paste dropped",
           lambda: tmux.screen("alice").count("paste of 2 lines dropped") == 2)
    tmux.type("alice", "after the paste")
    expect(tmux, tmp_path, "the next line on bob's screen",
           lambda: "alice after the paste" in tmux.screen("bob"))
    assert "dropped one" not in tmux.screen("bob")
    assert "burst one" not in tmux.screen("bob")
    assert "│ #general │" in tmux.screen("alice")  # Ctrl-N did not switch conversations
    quit_both(tmux, tmp_path)
