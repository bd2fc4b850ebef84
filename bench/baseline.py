"""The baseline: a bare Twisted ``LineReceiver`` relay doing the fan-out p2pchat does, with no
JSON, no ids, no checks.  Same shape as the peers under test: the sender reads lines on stdin
and writes each to K TCP connections; each receiver prints every line it gets on stdout.

    python -m bench.baseline recv              # prints "- listening on port N"
    python -m bench.baseline send PORT,PORT    # dials 127.0.0.1:PORT each, prints "- ready K"

TCP on 127.0.0.1 only.  End of stdin ends either role.
"""

from __future__ import annotations

import sys

from twisted.internet import reactor, stdio
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver

LOOPBACK = "127.0.0.1"


class Stdout(LineReceiver):
    """stdin/stdout of this process; stdin lines go to ``on_line``; EOF stops the reactor."""

    delimiter = b"\n"
    MAX_LENGTH = 1 << 16

    def __init__(self, on_line=None) -> None:
        self.on_line = on_line

    def lineReceived(self, line: bytes) -> None:
        if self.on_line is not None:
            self.on_line(line)

    def connectionLost(self, reason=None) -> None:
        if reactor.running:
            reactor.stop()


class Printer(LineReceiver):
    """A receiver's connection: every line straight to stdout."""

    delimiter = b"\n"
    MAX_LENGTH = 1 << 16

    def __init__(self, out: Stdout) -> None:
        self.out = out

    def lineReceived(self, line: bytes) -> None:
        self.out.transport.write(line + b"\n")


class Relay(LineReceiver):
    """The sender's end of one connection (it only writes)."""

    delimiter = b"\n"


def recv() -> None:
    out = Stdout()
    stdio.StandardIO(out)
    factory = Factory.forProtocol(lambda: Printer(out))
    port = reactor.listenTCP(0, factory, interface=LOOPBACK)
    out.transport.write(f"- listening on port {port.getHost().port}\n".encode())
    reactor.run()


def send(ports: list[int]) -> None:
    links: list[Relay] = []

    def fan_out(line: bytes) -> None:
        for link in links:
            link.sendLine(line)

    out = Stdout(fan_out)
    stdio.StandardIO(out)

    def connected(proto: Relay) -> None:
        links.append(proto)
        if len(links) == len(ports):
            out.transport.write(f"- ready {len(links)}\n".encode())

    def failed(failure) -> None:
        out.transport.write(f"! {failure.getErrorMessage()}\n".encode())
        reactor.stop()

    for port in ports:
        endpoint = TCP4ClientEndpoint(reactor, LOOPBACK, port, timeout=5,
                                      bindAddress=(LOOPBACK, 0))
        connectProtocol(endpoint, Relay()).addCallbacks(connected, failed)
    reactor.run()


def main(argv: list[str]) -> int:
    if argv[:1] == ["recv"]:
        recv()
    elif argv[:1] == ["send"] and len(argv) == 2:
        send([int(p) for p in argv[1].split(",") if p])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
