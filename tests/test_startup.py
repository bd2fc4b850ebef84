"""Start-up and shutdown of real ``twistd`` processes: a quick /quit whose leave is seen, the
daemon (``twistd p2pchat --ui none`` without ``-n``) and the refusal of a face without ``-n``,
one clear line for every start-up failure, and private file modes whatever the umask.

Every peer here uses ``--interface 127.0.0.1`` and a multicast group of its own."""

from __future__ import annotations

import os
import shutil
import signal
import site
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytest_twisted

from p2pchat.identity import Identity
from tests.processes import PeerProcess
from tests.support import ROOT, InProcessPeer, child_env, fresh_multicast, peer_args, wait_for

#: Longest wait for any one step of a process (start, link, exit).
DEADLINE = 20.0
#: /quit with one linked peer on loopback: gone within this (it took 2 s when links waited
#: for the peer's TLS close_notify).
QUIT_WITHIN = 0.5


def wait_until(what: str, check, deadline: float = DEADLINE):
    end = time.monotonic() + deadline
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"not seen within {deadline} s: {what}")
        time.sleep(0.02)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for init to reap it counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    """A twistd that must return by itself (a refusal, a failure, a daemon's first process)."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=DEADLINE,
                          env=child_env(), stdin=subprocess.DEVNULL, **kw)


def daemon_args(nick: str, multicast: tuple[str, int], data_dir: str, *extra: str) -> list[str]:
    """``peer_args`` without ``-n``: twistd p2pchat ... (a daemon)."""
    argv = peer_args(nick, multicast, data_dir, "none", *extra)
    argv.remove("-n")
    return argv


@pytest.fixture
def busy_port():
    """A TCP port on loopback something else listens on."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        yield holder.getsockname()[1]
    finally:
        holder.close()


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in text
    return lines[0]


# --- quitting -------------------------------------------------------------------------------


def test_quit_is_quick_and_the_leave_is_seen(tmp_path: Path) -> None:
    group = fresh_multicast()
    alice = PeerProcess("alice", group, str(tmp_path / "alice"))
    bob = PeerProcess("bob", group, str(tmp_path / "bob"))
    try:
        alice.wait_line("* bob joined", DEADLINE)
        bob.wait_line("* alice joined", DEADLINE)
        started = time.monotonic()
        alice.send("/quit")
        assert alice.proc.wait(DEADLINE) == 0
        took = time.monotonic() - started
        bob.wait_line("* alice left", 5)
        assert bob.count("* alice left (") == 0, bob.lines  # a goodbye, not a lost link
        assert took <= QUIT_WITHIN, f"/quit took {took:.2f} s"
    finally:
        alice.stop()
        bob.stop()


# --- daemon mode ----------------------------------------------------------------------------


def test_daemon_runs_headless_and_leaves_on_sigterm(tmp_path: Path) -> None:
    group = fresh_multicast()
    data = tmp_path / "dave"
    alice = PeerProcess("alice", group, str(tmp_path / "alice"))
    pid = None
    try:
        first = run(daemon_args("dave", group, str(data)))
        assert first.returncode == 0, first.stderr
        assert "dave runs in the background" in one_line(first.stdout)
        assert first.stderr == ""
        pidfile = data / "twistd.pid"
        pid = int(pidfile.read_text())
        assert alive(pid)
        assert f"pid {pid}" in first.stdout
        alice.wait_line("* dave joined", DEADLINE)
        log = data / "p2pchat.log"
        wait_until("the daemon's log", lambda: "listening on TCP port" in log.read_text())

        os.kill(pid, signal.SIGTERM)
        wait_until("the daemon's exit", lambda: not alive(pid))
        alice.wait_line("* dave left", 5)
        assert alice.count("* dave left (") == 0, alice.lines  # it said goodbye
        assert not pidfile.exists()
        assert "Traceback" not in log.read_text()
    finally:
        if pid is None and (data / "twistd.pid").exists():
            pid = int((data / "twistd.pid").read_text())
        if pid is not None and alive(pid):
            os.kill(pid, signal.SIGKILL)
        alice.stop()


def test_daemon_start_failure_is_one_line_on_the_terminal(tmp_path: Path, busy_port) -> None:
    group = fresh_multicast()
    data = tmp_path / "dave"
    done = run(daemon_args("dave", group, str(data), "--port", str(busy_port)))
    assert done.returncode == 1
    assert f"can't listen on TCP port {busy_port}" in one_line(done.stderr)
    assert not (data / "twistd.pid").exists()
    mine = tmp_path / "my.pid"  # twistd's own --pidfile: not left behind either
    argv = daemon_args("dave", group, str(data), "--port", str(busy_port))
    done = run([argv[0], "--pidfile", str(mine), *argv[1:]])
    assert done.returncode == 1
    assert f"can't listen on TCP port {busy_port}" in one_line(done.stderr)
    assert not mine.exists()


@pytest.mark.parametrize("ui, face", [("console", "the console"), ("lines", "the line face")])
def test_a_face_without_n_is_refused_at_once(tmp_path: Path, ui: str, face: str) -> None:
    argv = peer_args("dave", fresh_multicast(), str(tmp_path / "dave"), ui)
    argv.remove("-n")
    started = time.monotonic()
    done = run(argv)
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert line == (f"p2pchat: {face} needs a terminal: run `twistd -n p2pchat`, or add "
                    "`--ui none` to run it as a daemon")
    assert time.monotonic() - started < 10
    assert not (tmp_path / "dave").exists()  # refused before anything: no daemon behind
    if ui == "console":
        assert f"    {line}\n" in (ROOT / "README.rst").read_text(encoding="utf-8")


def test_n_after_the_plugin_name_gets_a_hint(tmp_path: Path) -> None:
    argv = daemon_args("dave", fresh_multicast(), str(tmp_path / "dave"), "-n")
    done = run(argv)
    assert done.returncode == 2
    assert "put it before p2pchat (twistd -n p2pchat ...)" in one_line(done.stderr)


def test_a_daemon_logging_to_stdout_is_refused(tmp_path: Path) -> None:
    argv = daemon_args("dave", fresh_multicast(), str(tmp_path / "dave"))
    done = run([argv[0], "--logfile", "-", *argv[1:]])
    assert done.returncode == 2
    assert "a daemon can't log to stdout" in one_line(done.stderr)


# --- start-up failures ----------------------------------------------------------------------


@pytest.mark.parametrize("ui", ["lines", "none"])
def test_port_in_use_is_one_line(tmp_path: Path, busy_port, ui: str) -> None:
    done = run(peer_args("dave", fresh_multicast(), str(tmp_path / "d"), ui)
               + ["--port", str(busy_port)])
    assert done.returncode == 1
    assert "Traceback" not in done.stdout
    assert one_line(done.stderr) == (f"p2pchat: can't listen on TCP port {busy_port}: "
                                     "[Errno 98] Address already in use")


def bad_dirs(tmp_path: Path) -> dict[str, tuple[str, str]]:
    afile = tmp_path / "afile"
    afile.write_text("x")
    return {"under /proc": ("/proc/nope", "can't make the data dir /proc/nope"),
            "a file": (str(afile), "is not a directory"),
            "under a file": (str(afile / "sub"), "a part of that path is a file")}


@pytest.mark.parametrize("case", ["under /proc", "a file", "under a file"])
@pytest.mark.parametrize("ui", ["lines", "none"])
def test_bad_data_dir_is_one_line(tmp_path: Path, case: str, ui: str) -> None:
    path, why = bad_dirs(tmp_path)[case]
    done = run(peer_args("dave", fresh_multicast(), path, ui))
    assert done.returncode == 2
    assert why in one_line(done.stderr)
    assert "Traceback" not in done.stdout


# --- file modes -----------------------------------------------------------------------------


def modes(folder: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir() if p.is_file()}


def test_every_file_is_private_under_umask_000(tmp_path: Path) -> None:
    group = fresh_multicast()
    data = tmp_path / "new" / "alice"
    loose = lambda: os.umask(0)  # noqa: E731 (the child's umask, before exec)
    proc = subprocess.Popen(peer_args("alice", group, str(data)), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(),
                            preexec_fn=loose)
    bob = PeerProcess("bob", group, str(tmp_path / "bob"))
    try:
        bob.wait_line("* alice joined", DEADLINE)
        proc.stdin.write(b"a private line\n")
        proc.stdin.flush()
        bob.wait_line("<alice> a private line", DEADLINE)
        wait_until("alice's pins written", lambda: (data / "pins.json").exists())
        running = modes(data)
        for name in ("history.sqlite3", "p2pchat.log", "lock", "identity.key", "pins.json"):
            assert name in running, running
        proc.stdin.write(b"/quit\n")
        proc.stdin.flush()
        assert proc.wait(DEADLINE) == 0
        after = modes(data)
        assert {name: oct(mode) for name, mode in {**running, **after}.items()
                if mode != 0o600} == {}
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert stat.S_IMODE(data.parent.stat().st_mode) == 0o700  # made for it, as private
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()
        bob.stop()


def test_the_log_is_private_whatever_the_umask(tmp_path: Path) -> None:
    """twistd's --umask is applied after the log is opened, and a rotated log is a new file:
    the log sets its own mode."""
    from twisted.logger import Logger, globalLogPublisher

    from p2pchat import logs

    path = tmp_path / "p2pchat.log"
    before = os.umask(0o022)
    saved = dict(logs._settings)
    try:
        logs.configure(str(path), False)
        observer = logs.observer()
        globalLogPublisher.addObserver(observer)
        try:
            Logger().info("a line")
        finally:
            globalLogPublisher.removeObserver(observer)
    finally:
        os.umask(before)
        logs._settings.update(saved)
    assert path.read_text().count("a line") == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_loose_files_made_private_and_an_open_data_dir_warned(tmp_path: Path) -> None:
    """Files left 0644 by an older run (or another umask) go back to 0600 at start; a data
    dir others can read is the user's to change: a warning, in the log and on the screen."""
    data = tmp_path / "alice"
    group = fresh_multicast()
    first = PeerProcess("alice", group, str(data))
    try:
        first.wait_line("you are alice", DEADLINE)
        first.send("/quit")
        assert first.proc.wait(DEADLINE) == 0
    finally:
        first.stop()
    os.chmod(data, 0o755)
    # (no identity.crt: it is made at the first TLS link, latetls.py; the loop above has it)
    for name in ("history.sqlite3", "identity.key", "p2pchat.log", "lock"):
        os.chmod(data / name, 0o644)
    alice = PeerProcess("alice", group, str(data))
    try:
        alice.wait_line("you are alice", DEADLINE)
        alice.wait_line("can be read by others (mode 0755)", DEADLINE)
        loose = {name: oct(mode) for name, mode in modes(data).items() if mode != 0o600}
        assert loose == {}
        assert "can be read by others" in (data / "p2pchat.log").read_text()
        assert stat.S_IMODE(data.stat().st_mode) == 0o755  # the user's own: warned, not changed
    finally:
        alice.stop()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
@pytest.mark.parametrize("option, said", [
    ("--port", "p2pchat: can't listen on TCP port {port}: [Errno 98] Address already in use"),
    # the IRC port fails once the console has taken the screen: the line comes after it
    ("--irc", "p2pchat: can't listen for IRC clients on 127.0.0.1:{port}: [Errno 98]")])
def test_console_start_failure_is_shown(tmp_path: Path, busy_port, option: str,
                                         said: str) -> None:
    """A port in use, with the console: one line on the terminal (once the screen is given
    back) and status 1; it used to be only in the log."""
    from tests.test_console_e2e import Tmux

    server = Tmux(tmp_path)
    try:
        server.start("alice", peer_args("alice", fresh_multicast(), str(tmp_path / "alice"),
                                        "console", option, str(busy_port)))
        wait_until("alice's exit", lambda: server.exit_status("alice") is not None)
        assert server.exit_status("alice") == 1
        screen = server.tmux("capture-pane", "-p", "-S", "-", "-t", "t:alice")
        assert said.format(port=busy_port) in screen
        assert "#general" not in screen and "Traceback" not in screen
    finally:
        server.close()


@pytest_twisted.ensureDeferred
async def test_a_tls_link_the_node_closes_is_closed() -> None:
    """``link.close`` on a TLS link (a duplicate, a peer that left) must close it: TLS's
    loseConnection sends nothing while the link's back-pressure producer is registered."""
    group = fresh_multicast()
    a = InProcessPeer("alice", group, identity=Identity.generate())
    b = InProcessPeer("bob", group, identity=Identity.generate())
    try:
        await a.start()
        await b.start()
        await wait_for(lambda: len(a.node.links) == 1 and len(b.node.links) == 1, timeout=10)
        link = next(iter(a.node.links.values())).wire
        assert link.tls, "not a TLS link"
        link.close("a test")
        await wait_for(lambda: link.closed.called, timeout=2)
    finally:
        await a.stop()
        await b.stop()


# --- bin/p2pchat ----------------------------------------------------------------------------


def test_installed_p2pchat_runs_without_its_venv_activated(tmp_path: Path) -> None:
    """pip install into a venv, then run its bin/p2pchat by absolute path from elsewhere,
    with a PATH that has neither the venv nor any twistd: its own Python runs twistd."""
    source = tmp_path / "source"  # a copy: the build leaves build/ and *.egg-info behind
    for name in ("setup.py", "README.rst"):
        source.mkdir(exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    for name in ("p2pchat", "twisted", "bin"):
        shutil.copytree(ROOT / name, source / name,
                        ignore=shutil.ignore_patterns("__pycache__", "dropin.cache"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, timeout=120)
    # Twisted and the rest as this Python has them, even when it is itself a venv (CI's):
    # --system-site-packages only reaches the base interpreter's.
    inner = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    Path(inner, "outer-site.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                          "--no-deps", str(source)], capture_output=True, text=True,
                         timeout=300, env=env)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    script = venv / "bin" / "p2pchat"
    assert script.read_text().splitlines()[0] == f"#!{venv / 'bin' / 'python'}"
    bare = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    shown = subprocess.run([str(script), "--help"], capture_output=True, text=True,
                           timeout=60, env=bare, cwd="/")
    assert shown.returncode == 0, shown.stderr
    assert "--username" in shown.stdout and "twistd -n p2pchat" in shown.stdout
    bad = subprocess.run([str(script), "--port", "x"], capture_output=True, text=True,
                         timeout=60, env=bare, cwd="/")
    assert bad.returncode == 2
    assert one_line(bad.stderr) == ("twistd p2pchat: --port must be a number, not 'x' "
                                    "(see: twistd p2pchat --help)")


# --- the README's commands ------------------------------------------------------------------


def readme_commands() -> list[str]:
    """The literal blocks at the top of README.rst: the set-up commands."""
    text = (ROOT / "README.rst").read_text(encoding="utf-8")
    top = text[:text.index(".. contents::")]
    return [line.strip() for line in top.splitlines() if line.startswith("    ")
            and ("pip install" in line)]


def test_the_readmes_bad_option_line_is_what_is_printed(tmp_path: Path) -> None:
    done = run(peer_args("dave", fresh_multicast(), str(tmp_path / "d")) + ["--port", "abc"])
    assert done.returncode == 2
    assert f"    {one_line(done.stderr)}\n" in (ROOT / "README.rst").read_text(encoding="utf-8")


def test_ci_runs_exactly_the_readmes_test_command() -> None:
    install, tests = readme_commands()[:2]
    assert install.startswith("python3 -m venv .venv && . .venv/bin/activate && pip install . ")
    assert tests.endswith("&& python -m pytest")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert ci[-1] == tests


def test_lan_sandbox_has_only_loopback_with_multicast_routed() -> None:
    tool = ROOT / "tools" / "lan-sandbox"
    done = subprocess.run([str(tool), "sh", "-c", "ip -o link; ip route show table all"],
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0 and "unshare" in done.stderr:
        pytest.skip(f"no network namespaces here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    links = [line.split(":")[1].strip() for line in done.stdout.splitlines() if ": <" in line]
    assert links == ["lo"]
    assert "224.0.0.0/4 dev lo" in done.stdout
