"""Helpers shared by the integration and end-to-end tests.

Every test peer sends multicast only on loopback (``--interface 127.0.0.1``: outgoing interface
and group membership on 127.0.0.1) to a group and port of its own, so tests never reach a real
interface and never hear each other.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
from pathlib import Path

from twisted.internet import defer, reactor as global_reactor
from twisted.internet.task import deferLater

from p2pchat.service import NodeService
from p2pchat.identity import Identity
from p2pchat.node import Node
from p2pchat.store import Store
from p2pchat.trust import Trust

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"


def fresh_multicast() -> tuple[str, int]:
    """A group and UDP port no other test uses (random in the site-local range)."""
    rng = random.SystemRandom()
    return f"239.255.{rng.randrange(1, 255)}.{rng.randrange(1, 255)}", rng.randrange(20000, 60000)


def twistd() -> str:
    """The twistd next to this Python (the one pip installed with twisted)."""
    here = Path(sys.executable).parent / "twistd"
    return str(here) if here.exists() else (shutil.which("twistd") or "twistd")


def child_env() -> dict[str, str]:
    """Environment for a twistd child: this checkout first on the path, so its plugin and
    package are the ones run, installed or not."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def peer_args(nick: str, multicast: tuple[str, int], data_dir: str, ui: str = "lines",
              *extra: str) -> list[str]:
    """The command line of one test peer on loopback."""
    group, port = multicast
    return [twistd(), "-n", "p2pchat", "--username", nick, "--ui", ui, "--port", "0",
            "--interface", LOOPBACK, "--multicast", f"{group}:{port}",
            "--data-dir", data_dir, *extra]


class InProcessPeer:
    """A whole node (sockets and all, no face) in this process's reactor, on loopback."""

    def __init__(self, nick: str, multicast: tuple[str, int], reactor=global_reactor,
                 identity: Identity | None = None, trust: Trust | None = None,
                 store: Store | None = None) -> None:
        self.node = Node(nick, reactor, identity=identity, trust=trust, store=store)
        self.service = NodeService(self.node, reactor, 0, multicast, LOOPBACK)
        self.events: list = []
        self.node.subscribe(self.events.append)

    def start(self) -> defer.Deferred:
        self.service.startService()
        return self.service.beacons.joined

    def stop(self) -> defer.Deferred:
        if not self.service.running and self.service.listener is None:
            return defer.succeed(None)  # never started, or stopped already
        return defer.maybeDeferred(self.service.stopService)


async def wait_for(predicate, timeout: float = 10.0, step: float = 0.02,
                   reactor=global_reactor) -> None:
    """Wait (on the reactor) until ``predicate()`` is true; fail after ``timeout`` seconds."""
    waited = 0.0
    while not predicate():
        if waited >= timeout:
            raise AssertionError(f"not true after {timeout} s: {predicate}")
        await deferLater(reactor, step, lambda: None)
        waited += step
