"""Running real peers as a user would (``twistd -n p2pchat ...``) and reading their output."""

from __future__ import annotations

import queue
import subprocess
import threading
import time

from tests.support import child_env, peer_args


class PeerProcess:
    """One ``twistd -n p2pchat --ui lines`` child on loopback; its stdout read line by line."""

    def __init__(self, nick: str, multicast: tuple[str, int], data_dir: str, *extra: str,
                 ui: str = "lines") -> None:
        self.nick = nick
        self.proc = subprocess.Popen(
            peer_args(nick, multicast, data_dir, ui, *extra), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env())
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            self._queue.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self._queue.put(None)

    def _drain(self) -> None:
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return
            if line is not None:
                self.lines.append(line)

    def send(self, text: str) -> None:
        self.proc.stdin.write(text.encode("utf-8") + b"\n")
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        self.proc.stdin.close()

    def wait_for(self, predicate, timeout: float = 10.0) -> list[str]:
        """Wait until predicate(lines so far) is true; fail with the output so far."""
        deadline = time.monotonic() + timeout
        while True:
            self._drain()
            if predicate(self.lines):
                return self.lines
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.nick}: not seen in {timeout} s; output:\n"
                                     + "\n".join(self.lines) + "\nstderr:\n" + self.stderr())
            time.sleep(0.02)

    def wait_line(self, fragment: str, timeout: float = 10.0) -> None:
        self.wait_for(lambda lines: any(fragment in line for line in lines), timeout)

    def count(self, fragment: str) -> int:
        self._drain()
        return sum(1 for line in self.lines if fragment in line)

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        return self.proc.stderr.read().decode("utf-8", "replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except Exception:
                pass
