"""Assembly: the command-line options and the service tree twistd runs.

``twistd -n p2pchat ...`` parses ``Options``, calls ``makeService``, and runs the reactor.  The
node's service owns the sockets (TCP listener, multicast), the face's service owns the screen or
stdio.  Stopping says goodbye first (leave lines and a leave datagram), then closes.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import sys

from twisted.application.service import MultiService, Service
from twisted.internet import defer, error
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python import usage

from p2pchat import datadir, logs, startup
from p2pchat.catchup import LOG_AGE, LOG_LINES
from p2pchat.discovery import DEFAULT_GROUP, DEFAULT_PORT, BeaconProtocol
from p2pchat.identity import PINS_NAME, PINS_SAVE_DELAY, Identity, Pins
from p2pchat.ignore import IGNORED_NAME, Ignores
from p2pchat.mesh import Dialer, PeerProtocol, PeerServerFactory
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
from p2pchat.trust import Trust
from p2pchat.wire import nick_problem

log = Logger()

#: With no --port, the first free port in this range is taken (as the reference does).
PORT_RANGE = range(8080, 9000)
#: How long shutdown waits for peers to take our leave lines before cutting the links.
GOODBYE_TIMEOUT = 2.0
#: How often the peer table is swept for silent peers.
SWEEP_INTERVAL = 1.0

UIS = ("console", "lines", "none")


def default_nick() -> str:
    try:
        name = getpass.getuser()
    except Exception:
        name = "guest"
    name = "".join(ch for ch in name if not ch.isspace())[:20]
    return name if nick_problem(name) is None else "guest"


def default_data_dir() -> str:
    import platformdirs

    return platformdirs.user_data_dir("p2pchat", appauthor=False)


class Options(usage.Options):
    synopsis = "[options]   (as: twistd -n p2pchat [options]; or twistd p2pchat --ui none)"
    longdesc = ("A serverless, IRC-style chat for a local network: peers find each other by "
                "UDP multicast and talk over direct TCP connections.  Run it in the "
                "foreground with twistd's -n (twistd -n p2pchat --username carol): the console "
                "and the line face need the terminal.  Without -n, only --ui none runs, as a "
                "daemon: its log goes to DATA-DIR/p2pchat.log, its pid to DATA-DIR/twistd.pid "
                "(or --pidfile), and kill -TERM makes it leave the chat and exit.")

    #: Set under twistd: detach (``startup.detach``) and write ``pidfile`` ourselves.
    daemon = False
    pidfile: str | None = None

    optParameters = [
        ["username", "u", None, "your nick: 1-20 characters, no spaces [default: login name]"],
        ["port", "p", None,
         "TCP port to listen on; 0 = any free port [default: first free in 8080-8999]"],
        ["multicast", "m", f"{DEFAULT_GROUP}:{DEFAULT_PORT}",
         "multicast group and UDP port for discovery, GROUP:PORT"],
        ["interface", "i", None,
         "IPv4 address of the interface to send and join on (and to listen on for TCP) "
         "[default: the system's choice; TCP on all]"],
        ["ui", None, "console", "the face: console (full screen), lines (stdin/stdout), none"],
        ["data-dir", "d", None, "where your key, the pinned keys of others and the log are "
         "kept [default: the user's data dir]"],
        ["irc", None, None, "also run a local IRC server here, HOST:PORT (or PORT: on "
         "127.0.0.1), so an IRC client can be the face"],
        ["irc-password", None, None, "password IRC clients must give (required for a "
         "non-loopback --irc)"],
        ["catchup-lines", None, str(LOG_LINES),
         "how many of your recent lines are kept to resend to peers that missed them"],
        ["catchup-age", None, f"{LOG_AGE:g}",
         "seconds your lines are kept to resend to peers that missed them"],
        ["history-lines", None, str(HISTORY_MAX_LINES), "most lines kept in the history file"],
        ["history-days", None, f"{HISTORY_MAX_AGE / 86400:g}",
         "days lines are kept in the history file"],
        ["history-mb", None, f"{HISTORY_MAX_BYTES / 2**20:g}",
         "most megabytes the history file holds (the oldest lines go first)"],
    ]
    optFlags = [
        ["debug", None, "log debug detail too"],
        ["secure-only", None, "refuse peers without encryption (base peers, such as the Go "
         "reference)"],
    ]

    def parseOptions(self, options=None) -> None:
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            if self.parent is None:
                raise
            # Under twistd: one clear line, not the whole help text (twistd's default).
            hint = ("; -n is twistd's: put it before p2pchat (twistd -n p2pchat ...)"
                    if str(e) == "option -n not recognized" else "")
            sys.stderr.write(f"twistd p2pchat: {e}{hint} (see: twistd p2pchat --help)\n")
            raise SystemExit(2)

    def postOptions(self) -> None:
        self["username-given"] = self["username"] is not None  # else the kept nick (nick.py)
        nick = self["username"] if self["username"] is not None else default_nick()
        problem = nick_problem(nick)
        if problem:
            raise usage.UsageError(f"--username {nick!r}: {problem}")
        self["username"] = nick
        self["port"] = _port(self["port"])
        self["multicast"] = _multicast(self["multicast"])
        if self["interface"] is not None:
            self["interface"] = _ipv4(self["interface"], "--interface")
        self["catchup-lines"] = int(_positive(self["catchup-lines"], "--catchup-lines"))
        self["catchup-age"] = _positive(self["catchup-age"], "--catchup-age")
        self["history-lines"] = int(_positive(self["history-lines"], "--history-lines"))
        self["history-days"] = _positive(self["history-days"], "--history-days")
        self["history-mb"] = _positive(self["history-mb"], "--history-mb")
        if self["ui"] not in UIS:
            raise usage.UsageError(f"--ui must be one of {', '.join(UIS)}, not {self['ui']!r}")
        self._irc_options()
        self["data-dir"] = os.path.abspath(os.path.expanduser(
            self["data-dir"] or default_data_dir()))
        if self.parent is not None:
            self._adjust_twistd(self.parent)

    def _irc_options(self) -> None:
        if self["irc"] is None:
            if self["irc-password"] is not None:
                raise usage.UsageError("--irc-password needs --irc")
            return
        from p2pchat.irc import check_irc_bind, parse_irc_address  # only with --irc: 13 ms

        try:
            self["irc"] = parse_irc_address(self["irc"])
            warning = check_irc_bind(self["irc"][0], self["irc-password"])
        except ValueError as e:
            raise usage.UsageError(str(e)) from None
        if warning:
            sys.stderr.write(f"p2pchat: warning: {warning}\n")

    def _adjust_twistd(self, twistd: usage.Options) -> None:
        self.daemon = not (twistd.get("nodaemon") or twistd.get("debug"))
        if self.daemon:
            self._as_daemon(twistd)
        # Several peers may run in one directory: no twistd.pid unless asked for (a daemon
        # writes DATA-DIR/twistd.pid itself, once it holds the data dir's lock).
        if twistd.get("pidfile") == "twistd.pid":
            twistd["pidfile"] = ""
            if self.daemon:
                self.pidfile = os.path.join(self["data-dir"], datadir.PIDFILE_NAME)
        # twistd -n logs to stdout, where the faces draw: log to a file instead (or, headless
        # in the foreground, stay on stdout), filtered by level.  An explicit --logfile or
        # --logger wins.
        if twistd.get("logger") is None and twistd.get("logfile") is None:
            on_stdout = self["ui"] == "none" and not self.daemon
            path = None if on_stdout else os.path.join(self["data-dir"], logs.LOG_NAME)
            logs.configure(path, self["debug"])
            twistd["logger"] = "p2pchat.logs.observer"

    def _as_daemon(self, twistd: usage.Options) -> None:
        """Without -n: refuse at once what can't run detached (a face needs the terminal: the
        console would spin on a closed stdin), else detach ourselves (see ``startup``)."""
        if self["ui"] != "none":
            face = "the console" if self["ui"] == "console" else "the line face"
            sys.stderr.write(f"p2pchat: {face} needs a terminal: run `twistd -n p2pchat`, or "
                             "add `--ui none` to run it as a daemon\n")
            raise SystemExit(2)
        if twistd.get("logfile") == "-":
            sys.stderr.write("p2pchat: a daemon can't log to stdout (--logfile -): give a "
                             "file, or run `twistd -n p2pchat`\n")
            raise SystemExit(2)
        twistd["nodaemon"] = True  # twistd must not fork again


def _port(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        port = int(text)
    except ValueError:
        raise usage.UsageError(f"--port must be a number, not {text!r}") from None
    if not 0 <= port <= 65535:
        raise usage.UsageError(f"--port must be from 0 to 65535, not {port}")
    return port


def _positive(text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise usage.UsageError(f"{option} must be a number, not {text!r}") from None
    if not 0 < value < 1e9:
        raise usage.UsageError(f"{option} must be more than 0, not {text}")
    return value


def _ipv4(text: str, option: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise usage.UsageError(f"{option} must be an IPv4 address, not {text!r}") from None


def _multicast(text: str) -> tuple[str, int]:
    group, sep, port_text = text.rpartition(":")
    if not sep:
        raise usage.UsageError(f"--multicast must be GROUP:PORT, not {text!r}")
    group = _ipv4(group, "--multicast")
    if not ipaddress.IPv4Address(group).is_multicast:
        raise usage.UsageError(f"--multicast group {group} is not a multicast address "
                               "(224.0.0.0 to 239.255.255.255)")
    try:
        port = int(port_text)
    except ValueError:
        raise usage.UsageError(f"--multicast port must be a number, not {port_text!r}") from None
    if not 1 <= port <= 65535:
        raise usage.UsageError(f"--multicast port must be from 1 to 65535, not {port}")
    return group, port


class StartError(Exception):
    """The node can't start (a port in use, no multicast); the text is for the user."""


class NodeService(Service):
    """Owns the node's sockets and timers: the TCP listener, the dialer, discovery."""

    def __init__(self, node: Node, reactor, port: int | None, multicast: tuple[str, int],
                 interface: str | None) -> None:
        self.node = node
        self.reactor = reactor
        self.wanted_port = port
        self.group, self.group_port = multicast
        self.interface = interface
        self.listener = None
        self.udp = None
        self.server = PeerServerFactory(node, reactor)
        self.dialer = Dialer(node, reactor, reactor, bind_host=interface)
        self.beacons = BeaconProtocol(node, self.group, self.group_port, interface, reactor)
        self._loops: list[LoopingCall] = []

    def startService(self) -> None:
        self.listener = self._listen_tcp()
        self.node.port = self.listener.getHost().port
        try:
            self.udp = self.reactor.listenMulticast(self.group_port, self.beacons,
                                                    listenMultiple=True)
        except error.CannotListenError as e:
            self.listener.stopListening()
            raise StartError(f"can't listen for peers on UDP port {self.group_port}: "
                             f"{e.socketError}") from None
        self.node.dialer = self.dialer
        self.node.announcer = self.beacons
        for call, every in ((self.node.sweep, SWEEP_INTERVAL),
                            (self.node.heartbeat, HEARTBEAT_INTERVAL)):
            loop = LoopingCall(call)
            loop.clock = self.reactor
            loop.start(every, now=False)
            self._loops.append(loop)
        log.info("{nick} ({peer}) listening on TCP port {port}", nick=self.node.nick,
                 peer=self.node.peer_id, port=self.node.port)
        super().startService()

    def _listen_tcp(self):
        host = self.interface or ""
        ports = PORT_RANGE if self.wanted_port is None else [self.wanted_port]
        last = None
        for port in ports:
            try:
                return self.reactor.listenTCP(port, self.server, interface=host)
            except error.CannotListenError as e:
                last = e
        where = (f"port {self.wanted_port}" if self.wanted_port is not None
                 else f"any port from {PORT_RANGE[0]} to {PORT_RANGE[-1]}")
        raise StartError(f"can't listen on TCP {where}: {last.socketError if last else '?'}")

    def stopService(self) -> defer.Deferred:
        super().stopService()
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops.clear()
        self.dialer.stop()
        links = self.node.say_goodbye()
        self.beacons.say_leave()
        protos: set[PeerProtocol] = set(self.server.open) | set(self.dialer.outgoing)
        protos.update(link for link in links if isinstance(link, PeerProtocol))
        closing = [p.closed for p in protos]
        for proto in protos:
            close_after_goodbye(proto)
        waited = defer.DeferredList(closing, consumeErrors=True)
        timer = self.reactor.callLater(GOODBYE_TIMEOUT, self._cut, protos)

        def done(_):
            if timer.active():
                timer.cancel()
            if self.node.store is not None:
                self.node.store.close()
            self.node.trust.pins.flush()
            return self._stop_listening()

        return waited.addBoth(done)

    def _cut(self, protos: set[PeerProtocol]) -> None:
        for proto in protos:
            if proto.transport is not None and proto.connected:
                proto.transport.abortConnection()

    def _stop_listening(self) -> defer.Deferred:
        stops = []
        for port in (self.listener, self.udp):
            if port is not None:
                stops.append(defer.maybeDeferred(port.stopListening))
        self.listener = self.udp = None
        return defer.DeferredList(stops, consumeErrors=True)


def close_after_goodbye(proto: PeerProtocol) -> None:
    """Close a link as soon as what we wrote to it (our leave line) is on its way, without
    waiting for the peer, so /quit is quick.

    A bare ``loseConnection`` on a TLS link sends nothing while a producer (the link's
    back-pressure) is registered, and then waits for the peer's close_notify: every quit took
    the whole GOODBYE_TIMEOUT.  Here the producer goes, the TLS layer writes what is pending
    and its close_notify, and the TCP connection under it is closed once its buffer is written
    (a FIN, not a reset: the kernel still delivers the leave line).  Not waiting for the peer's
    close_notify is allowed (RFC 8446 6.1); we read nothing more from a link we are leaving."""
    transport = proto.transport
    if transport is None or not proto.connected:
        return
    if hasattr(transport, "unregisterProducer"):
        transport.unregisterProducer()
    transport.loseConnection()
    tls = getattr(transport, "protocol", None) if getattr(transport, "TLS", False) else None
    under = getattr(tls, "transport", None)
    if under is not None:
        under.loseConnection()  # the TCP connection under TLS: FIN once its buffer is out


def stop_reactor(reactor) -> None:
    """Stop the reactor once, however many faces ask."""
    try:
        reactor.stop()
    except error.ReactorNotRunning:
        pass


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


def make_face(ui: str, node: Node, reactor, data_dir: str) -> Service | None:
    if ui == "none":
        return None
    if ui == "console":
        if not (sys.__stdin__ and sys.__stdin__.isatty() and sys.__stdout__
                and sys.__stdout__.isatty()):
            sys.stderr.write("p2pchat: no terminal for the console; using --ui lines\n")
        else:
            from p2pchat.console import ConsoleService  # urwid only when the console runs

            return ConsoleService(node, reactor, data_dir, lambda: stop_reactor(reactor))
    from p2pchat.lines import LineFaceService

    return LineFaceService(node, reactor, lambda: stop_reactor(reactor))


def lock_data_dir(data_dir: str):
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


def open_store(data_dir: str, reactor, sent_age: float, max_lines: int = HISTORY_MAX_LINES,
               max_days: float = HISTORY_MAX_AGE / 86400,
               max_mb: float = HISTORY_MAX_BYTES / 2**20) -> Store:
    """The history file, pruned to its limits (and kept to them while running, a step every
    UPKEEP_INTERVAL seconds); a clear exit if it can't be used."""
    import sqlite3

    path = os.path.join(data_dir, STORE_NAME)
    try:
        store = Store(path, call_soon=lambda f: reactor.callLater(FLUSH_DELAY, f),
                      max_lines=max_lines, max_age=max_days * 86400,
                      max_bytes=int(max_mb * 2**20))
        store.prune(reactor.seconds(), sent_age=sent_age)
    except sqlite3.Error as e:
        startup.fail(f"p2pchat: can't use the history file {path}: {e} "
                     "(is another p2pchat using this --data-dir?)")
    loop = LoopingCall(lambda: store.upkeep(reactor.seconds()))
    loop.clock = reactor
    loop.start(UPKEEP_INTERVAL, now=False)
    store.upkeep_loop = loop
    return store


def makeService(options: Options, reactor=None) -> ChatService:
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
    node.ignores = Ignores(os.path.join(data_dir, IGNORED_NAME))
    node.subscribe(NickKeeper(data_dir))
    node_service = NodeService(node, reactor, options["port"], options["multicast"],
                               options["interface"])
    face = make_face(options["ui"], node, reactor, options["data-dir"])
    chat = ChatService(node, node_service, face)
    chat.lock = lock  # held for as long as the process runs
    if options.pidfile is not None:
        write_pidfile(options.pidfile)
        chat.pidfile = options.pidfile
    elif options.parent is not None and options.parent.get("pidfile"):
        chat.twistd_pidfile = os.path.abspath(options.parent["pidfile"])
    if warning:
        reactor.callWhenRunning(node.notice, warning)  # once the face is there to show it
    if options["irc"] is not None:
        from p2pchat.irc import IrcService

        host, port = options["irc"]
        IrcService(node, reactor, host, port, options["irc-password"]).setServiceParent(chat)
    return chat
