"""Assembly: the service tree twistd runs.

``twistd -n p2pchat ...`` parses ``Options`` (options.py; named here for the twistd plugin),
calls ``makeService``, and runs the reactor.  The node's service owns the sockets (TCP
listener, multicast), the face's service owns the screen or stdio.  Stopping says goodbye
first (leave lines and a leave datagram), then closes, within GOODBYE_TIMEOUT.

service.py is the top of the import graph: it imports the faces (lazily, only the one that
runs), and nothing imports it (tests/test_imports.py).
"""

from __future__ import annotations

import gc
import os
import sys
from typing import IO, Any, cast

from p2pchat import latetls

latetls.defer_tls()  # first, before anything imports twisted.internet.tcp (latetls.py)

from twisted.application.service import MultiService, Service
from twisted.internet import defer, error
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IListeningPort, ITCPTransport
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from p2pchat import datadir, giveback, lateness, logs, settling, startup, turn
from p2pchat.activity import SETTINGS_NAME, Settings
from p2pchat.discovery import BeaconProtocol
from p2pchat.errors import StartError, stop_reactor
from p2pchat.files.terms import MAX_FILE_SIZE
from p2pchat.files.later import FilesLaterService
from p2pchat.flow import close_within
from p2pchat.identity import PINS_NAME, PINS_SAVE_DELAY, Identity, Pins
from p2pchat.ignore import IGNORED_NAME, Ignores
from p2pchat.keeper import Reach, build_reach
from p2pchat.lull import Lull
from p2pchat.dial import Dialer
from p2pchat.mesh import MAX_INBOUND, PeerProtocol, PeerServerFactory
from p2pchat.node import HEARTBEAT_INTERVAL, Node
from p2pchat.store import (
    FLUSH_DELAY,
    HISTORY_MAX_AGE,
    HISTORY_MAX_BYTES,
    HISTORY_MAX_LINES,
    STORE_NAME,
    UPKEEP_INTERVAL,
    Store,
)
from p2pchat.nick import NickKeeper, start_nick
from p2pchat.notifyopts import DEFAULT_OUTPUTS, HIGHLIGHTS_NAME, NotifyConfig
from p2pchat.options import PORT_RANGE, Options
from p2pchat.sealterms import SEALED_NAME
from p2pchat.trust import Trust

log = Logger()

#: How long shutdown waits for peers to take our leave lines before cutting the links.
GOODBYE_TIMEOUT = 2.0
#: How often the peer table is swept for silent peers.
SWEEP_INTERVAL = 1.0
#: Connections the kernel queues for our listener before we accept them.  Twisted's default,
#: 50, overflowed when a crowd dialed one peer at once: the kernel dropped their SYNs and each
#: dial waited out TCP's retransmission (1 s, then 3 s), often past DIAL_TIMEOUT, and redialed.
LISTEN_BACKLOG = MAX_INBOUND

__all__ = ["ChatService", "NodeService", "Options", "StartError", "makeService"]


class NodeService(Service):
    """Owns the node's sockets and timers: the TCP listener, the dialer, discovery."""

    def __init__(self, node: Node, reactor: Any, port: int | None, multicast: tuple[str, int],
                 interface: str | None, interfaces: list[str] | None = None) -> None:
        self.node = node
        self.reactor = reactor
        self.wanted_port = port
        self.group, self.group_port = multicast
        self.interface = interface
        #: every address given to --interface (a peer on several LANs: one each)
        self.interfaces = interfaces or ([interface] if interface else [])
        self.more_listeners: list[IListeningPort] = []
        self.listener: IListeningPort | None = None
        self.udp: IListeningPort | None = None
        self.server = PeerServerFactory(node, reactor)
        self.dialer = Dialer(node, reactor, reactor, bind_host=interface)
        self.beacons = BeaconProtocol(node, self.group, self.group_port, interface, reactor,
                                      interfaces=self.interfaces or None)
        self._loops: list[LoopingCall] = []
        #: static peers and Tor (keeper.build_reach), if the service was given them
        self.reach: Reach | None = None
        #: start-up's freed heap given back a moment after start (giveback.py)
        self._give_back: Any = None

    def startService(self) -> None:
        self.listener = listener = self._listen_tcp()
        self.node.port = cast(IPv4Address, listener.getHost()).port
        for host in self.interfaces[1:]:  # the same port on each further address given
            try:
                self.more_listeners.append(self.reactor.listenTCP(self.node.port, self.server,
                                                                  interface=host))
            except error.CannotListenError as e:
                self._stop_more()
                listener.stopListening()
                raise StartError(f"can't listen on {host}:{self.node.port}: "
                                 f"{e.socketError}") from None
        try:
            self.udp = self.reactor.listenMulticast(self.group_port, self.beacons,
                                                    listenMultiple=True)
        except error.CannotListenError as e:
            listener.stopListening()
            self._stop_more()
            raise StartError(f"can't listen for peers on UDP port {self.group_port}: "
                             f"{e.socketError}") from None
        self.node.dialer = self.dialer
        self.node.announcer = self.beacons
        self.node.neighbours.listen_first()
        for call, every in ((self.node.sweep, SWEEP_INTERVAL),
                            (self.node.heartbeat, HEARTBEAT_INTERVAL)):
            loop = LoopingCall(call)
            loop.clock = self.reactor
            loop.start(every, now=False)
            self._loops.append(loop)
        if self.reach is not None:
            self.reach.start()
        self._give_back = giveback.give_back_later(self.reactor)
        self._loops.append(settling.start(self.reactor))  # memory back once settled
        log.info("{nick} ({peer}) listening on TCP port {port}", nick=self.node.nick,
                 peer=self.node.peer_id, port=self.node.port)
        super().startService()

    def _stop_more(self) -> None:
        for port in self.more_listeners:
            port.stopListening()
        self.more_listeners.clear()

    def _listen_tcp(self) -> IListeningPort:
        host = self.interfaces[0] if self.interfaces else ""
        ports = PORT_RANGE if self.wanted_port is None else [self.wanted_port]
        last = None
        for port in ports:
            try:
                return self.reactor.listenTCP(port, self.server, backlog=LISTEN_BACKLOG,
                                              interface=host)
            except error.CannotListenError as e:
                last = e
        where = (f"port {self.wanted_port}" if self.wanted_port is not None
                 else f"any port from {PORT_RANGE[0]} to {PORT_RANGE[-1]}")
        raise StartError(f"can't listen on TCP {where}: {last.socketError if last else '?'}")

    def stopService(self) -> defer.Deferred:
        super().stopService()
        if self._give_back is not None and self._give_back.active():
            self._give_back.cancel()
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops.clear()
        self.dialer.stop()
        reach = self.reach
        if reach is not None:
            reach.stop()
        links = self.node.say_goodbye()
        self.beacons.say_leave()
        protos: set[PeerProtocol] = set(self.server.open) | set(self.dialer.outgoing)
        protos |= reach.connections() if reach is not None else set()
        protos.update(link for link in links if isinstance(link, PeerProtocol))
        closing = [p.closed for p in protos]
        for proto in protos:
            close_after_goodbye(proto)

        def done(_: object) -> defer.Deferred[Any]:
            if self.node.store is not None:
                self.node.store.close()
            self.node.trust.pins.flush()
            stopped = self._stop_listening()
            return stopped.addCallback(lambda _: reach.close()) if reach else stopped

        return close_within(self.reactor, GOODBYE_TIMEOUT, closing,
                            lambda: self._cut(protos)).addCallback(done)

    def _cut(self, protos: set[PeerProtocol]) -> None:
        """What is still open when GOODBYE_TIMEOUT is up: reset, so the stop is bounded."""
        for proto in protos:
            if proto.transport is not None and proto.connected:
                cast(ITCPTransport, proto.transport).abortConnection()

    def _stop_listening(self) -> defer.Deferred[Any]:
        stops: list[defer.Deferred[object]] = []
        for port in (self.listener, self.udp, *self.more_listeners):
            if port is not None:
                stops.append(defer.maybeDeferred(port.stopListening))
        self.listener = self.udp = None
        self.more_listeners = []
        return defer.DeferredList(stops, consumeErrors=True)


def close_after_goodbye(proto: PeerProtocol) -> None:
    """Close a link as soon as our leave line is on its way (``PeerProtocol.hang_up``)."""
    proto.hang_up()


class ChatService(MultiService):
    """The whole peer: the node's service, then the face's (so the face stops first)."""

    def __init__(self, node: Node, node_service: NodeService, face: Service | None) -> None:
        super().__init__()
        self.node = node
        self.node_service = node_service
        node_service.setServiceParent(self)
        if face is not None:
            face.setServiceParent(self)

    #: The pidfile we wrote (a daemon without --pidfile), removed when we stop.
    pidfile: str | None = None
    #: twistd's --pidfile, removed if we fail to start (twistd would leave it).
    twistd_pidfile: str | None = None
    #: The data dir's lock file (``lock_data_dir``), held open for as long as we run.
    lock: object = None

    def startService(self) -> None:
        try:
            super().startService()
        except StartError as e:
            # Under twistd: one clear line on the terminal (the screen given back first) and
            # a non-zero exit, not a traceback.
            for service in reversed(list(self)):
                if service.running and service is not self.node_service:
                    service.stopService()
            self._remove_pidfile()
            if self.twistd_pidfile:  # twistd removes its own only after a clean run
                try:
                    os.unlink(self.twistd_pidfile)
                except OSError:
                    pass
            startup.fail(f"p2pchat: {e}")
        startup.started(f"p2pchat: {self.node.nick} runs in the background (pid {os.getpid()}"
                        f"), listening on TCP port {self.node.port}")

    def stopService(self) -> defer.Deferred:
        return defer.maybeDeferred(super().stopService).addBoth(self._remove_pidfile)

    def _remove_pidfile(self, passed: object = None) -> object:
        if self.pidfile is not None:
            try:
                os.unlink(self.pidfile)
            except OSError:
                pass
            self.pidfile = None
        return passed


def make_face(ui: str, node: Node, reactor: Any, data_dir: str,
              notify: NotifyConfig | None = None) -> Service | None:
    """The face --ui names (the console only on a terminal, else the line face), or None.
    ``notify``: the console's notifications (--notify, --notify-hide-text)."""
    if ui == "none":
        return None
    if ui == "console":
        if not (sys.__stdin__ and sys.__stdin__.isatty() and sys.__stdout__
                and sys.__stdout__.isatty()):
            sys.stderr.write("p2pchat: no terminal for the console; using --ui lines\n")
        else:
            from p2pchat.console import ConsoleService  # urwid only when the console runs

            return ConsoleService(node, reactor, data_dir, lambda: stop_reactor(reactor),
                                  notify=notify)
    from p2pchat.lines import LineFaceService

    return LineFaceService(node, reactor, lambda: stop_reactor(reactor))


def lock_data_dir(data_dir: str) -> IO[str]:
    """One peer per data dir: two would share a key, and so a peer id, and its history."""
    import fcntl

    path = os.path.join(data_dir, datadir.LOCK_NAME)
    try:
        handle = os.fdopen(datadir.open_private(path), "r+")
    except OSError as e:
        startup.fail(f"p2pchat: can't open the lock file {path}: {e.strerror}")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        startup.fail(f"p2pchat: another p2pchat is running with the data dir {data_dir}; "
                     "give each peer its own --data-dir")
    return handle


def write_pidfile(path: str) -> None:
    """The daemon's pid, for ``kill -TERM $(cat DATA-DIR/twistd.pid)``."""
    fd = datadir.open_private(path)
    with os.fdopen(fd, "w") as f:
        f.truncate()
        f.write(f"{os.getpid()}\n")


def open_store(data_dir: str, reactor: Any, sent_age: float, max_lines: int = HISTORY_MAX_LINES,
               max_days: float = HISTORY_MAX_AGE / 86400,
               max_mb: float = HISTORY_MAX_BYTES / 2**20) -> Store:
    """The history file, pruned to its limits (and kept to them while running, a step every
    UPKEEP_INTERVAL seconds); a clear exit if it can't be used."""
    import sqlite3

    path = os.path.join(data_dir, STORE_NAME)
    try:
        store = Store(path, call_soon=lambda f: reactor.callLater(FLUSH_DELAY, f),
                      next_turn=lambda f: reactor.callLater(0, f),
                      max_lines=max_lines, max_age=max_days * 86400,
                      max_bytes=int(max_mb * 2**20))
        store.prune(reactor.seconds(), sent_age=sent_age)
    except sqlite3.Error as e:
        startup.fail(f"p2pchat: can't use the history file {path}: {e} "
                     "(is another p2pchat using this --data-dir?)")
    store.turn = turn.shared(reactor)  # its steps share each reactor turn with the others'
    store.wait_for_lulls(Lull(reactor.seconds))  # and come after the lines (lull.py)
    loop = LoopingCall(lambda: store.upkeep(reactor.seconds()))
    loop.clock = reactor
    loop.start(UPKEEP_INTERVAL, now=False)
    store.upkeep_loop = loop
    store.index.index_in_steps(reactor)  # an older file: indexed for /search, in steps
    return store


def makeService(options: Options, reactor: Any = None) -> ChatService:
    """The peer twistd runs: the data dir locked, identity, pins, history, node, its sockets,
    the face and the IRC face, as the options say."""
    if reactor is None:
        from twisted.internet import reactor  # noqa: F811 (the running one, chosen by twistd)
    data_dir = options["data-dir"]
    datadir.make_private()  # before anything is created: every file ours alone
    try:
        warning = datadir.prepare(data_dir)
    except datadir.DataDirError as e:
        startup.fail(f"p2pchat: {e}", 2)
    if warning:
        log.warn("{text}", text=warning)
        if options.daemon:  # no face will show it: say it before the terminal is left
            sys.stderr.write(f"p2pchat: warning: {warning}\n")
    if options.daemon:
        startup.detach(os.path.join(data_dir, logs.LOG_NAME), reactor)
    lock = lock_data_dir(data_dir)
    try:
        identity = Identity.load_or_create(data_dir)
    except (OSError, ValueError) as e:
        startup.fail(f"p2pchat: can't load or make the identity in {data_dir}: {e}")
    pins = Pins(os.path.join(data_dir, PINS_NAME),
                call_soon=lambda f: reactor.callLater(PINS_SAVE_DELAY, f))
    trust = Trust(pins, options["secure-only"])
    store = open_store(data_dir, reactor, options["catchup-age"], options["history-lines"],
                       options["history-days"], options["history-mb"])
    given = options["username"] if options.get("username-given", True) else None
    node = Node(start_nick(data_dir, given, options["username"]), reactor,
                log_lines=options["catchup-lines"],
                log_age=options["catchup-age"], identity=identity, trust=trust, store=store)
    node.neighbours.cap = options.get("links", node.neighbours.cap)
    node.ignores = Ignores(os.path.join(data_dir, IGNORED_NAME))
    node.sealing.open_store(os.path.join(data_dir, SEALED_NAME))
    node.activity.settings = Settings(os.path.join(data_dir, SETTINGS_NAME))
    node.subscribe(NickKeeper(data_dir))
    node_service = NodeService(node, reactor, options["port"], options["multicast"],
                               options["interface"], options.get("interfaces"))
    try:
        node_service.reach = build_reach(node, reactor, data_dir, options.get("peer", []),
                                         options["interface"], bool(options.get("tor")),
                                         options.get("tor-control"), options.get("torrc"))
    except StartError as e:
        startup.fail(f"p2pchat: {e}")
    notify = NotifyConfig(options.get("notify", DEFAULT_OUTPUTS),
                          bool(options.get("notify-hide-text")),
                          os.path.join(data_dir, HIGHLIGHTS_NAME))
    face = make_face(options["ui"], node, reactor, options["data-dir"], notify)
    chat = ChatService(node, node_service, face)
    node.files.configure(options.get("download-dir") or os.path.join(data_dir, "downloads"),
                         data_dir, options.get("max-file-size", MAX_FILE_SIZE), reactor,
                         options["interface"], options.get("file-rate", 0))
    FilesLaterService(node.files, reactor, options["interface"]).setServiceParent(chat)
    chat.lock = lock  # held for as long as the process runs
    if options.pidfile is not None:
        write_pidfile(options.pidfile)
        chat.pidfile = options.pidfile
    elif options.parent is not None and options.parent.get("pidfile"):
        chat.twistd_pidfile = os.path.abspath(options.parent["pidfile"])
    if warning:
        reactor.callWhenRunning(node.notice, warning)  # once the face is there to show it
    # What start-up made (modules, classes, functions: most of the heap) is never garbage:
    # out of the collector's sight, a full collection no longer walks it (10-20 ms held).
    gc.freeze()
    if lateness.wanted():  # the stall probe, only when the bench asks (P2PCHAT_STALL_PROBE)
        reactor.callWhenRunning(lateness.StallProbe(reactor).start)
    if options["irc"] is not None:
        from p2pchat.irc import IrcService

        host, port = options["irc"]
        IrcService(node, reactor, host, port, options["irc-password"]).setServiceParent(chat)
    return chat
