"""Every command-line option and address parser, in one place: ``Options`` (what twistd hands
``service.makeService``), and the parsers for ports, IPv4 and multicast addresses, ``--irc``'s
HOST:PORT and the rule for where the IRC face may listen.

The parsers are plain functions (text in, value out, ValueError with the text for the user), so
a service can check the same rule again at start.  Nothing here imports a face or service.py.
"""

from __future__ import annotations

import getpass
import os
import sys
from typing import Sequence

from twisted.python import usage

from p2pchat import datadir, logs
from p2pchat.catchup import LOG_AGE, LOG_LINES
from p2pchat.contacts import parse_peer_address
from p2pchat.discovery import DEFAULT_GROUP, DEFAULT_PORT
from p2pchat.files.terms import MAX_FILE_SIZE, parse_size
from p2pchat.neighbours import DEFAULT_LINKS, FULL_MESH_UP_TO, MIN_LINKS
from p2pchat.notifyopts import DEFAULT_OUTPUTS, OUTPUTS, parse_outputs
from p2pchat.store import HISTORY_MAX_AGE, HISTORY_MAX_BYTES, HISTORY_MAX_LINES
from p2pchat.addresses import (  # noqa: F401 (re-exported: the parsers' one home is addresses.py)
    LOOPBACK,
    MAX_PORT,
    check_irc_bind,
    is_loopback,
    parse_ipv4,
    parse_irc_address,
    parse_multicast,
    parse_port,
    parse_positive,
)
from p2pchat.wire import MAX_NICK_CHARS, nick_problem

#: With no --port, the first free port in this range is taken (as the reference does).
PORT_RANGE = range(8080, 9000)
#: The faces ``--ui`` may name (``--irc`` is one more, beside any of them).
UIS = ("console", "lines", "none")
# --- the command line -----------------------------------------------------------------------


def default_nick() -> str:
    """The login name, if it makes a nick (else ``guest``)."""
    try:
        name = getpass.getuser()
    except Exception:
        name = "guest"
    name = "".join(ch for ch in name if not ch.isspace())[:MAX_NICK_CHARS]
    return name if nick_problem(name) is None else "guest"


def default_download_dir() -> str:
    """The user's download dir (platformdirs: ``~/Downloads`` or what XDG says)."""
    import platformdirs

    return platformdirs.user_downloads_dir()


class UserDownloads(os.PathLike[str]):
    """``--download-dir`` when not given: the user's download dir, looked up (platformdirs)
    the first time a file lands, not at start (platformdirs held 0.4 MB of an idle peer that
    never receives a file; README "Performance").  The file code uses it as a path (``os``
    takes it; ``str`` shows it)."""

    def __init__(self) -> None:
        self._path: str | None = None

    def __fspath__(self) -> str:
        if self._path is None:
            self._path = os.path.abspath(os.path.expanduser(default_download_dir()))
        return self._path

    __str__ = __fspath__

    def __repr__(self) -> str:
        return f"UserDownloads({self._path!r})"


def default_data_dir() -> str:
    """The user's data dir for p2pchat (platformdirs: ~/.local/share/p2pchat on Linux)."""
    import platformdirs

    return platformdirs.user_data_dir("p2pchat", appauthor=False)


def parse_links(text: str) -> int:
    """``--links``: 0 (no cap), or at least MIN_LINKS; ValueError says what is wrong."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"--links must be a whole number, not {text!r}") from None
    if value != 0 and not MIN_LINKS <= value <= 256:
        raise ValueError(f"--links must be 0 (link to everyone) or {MIN_LINKS}-256, "
                         f"not {value}")
    return value


class Options(usage.Options):
    """``twistd p2pchat``'s command line; ``postOptions`` leaves every value parsed (ports as
    ints, addresses normalised), so ``makeService`` checks nothing again."""

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

    def __init__(self) -> None:
        super().__init__()
        self["peer"] = []

    def opt_peer(self, text: str) -> None:
        """a static peer to dial, HOST:PORT (repeatable; kept in the data dir): for routed
        networks and VPNs, where multicast does not reach"""
        try:
            self["peer"].append(parse_peer_address(text))
        except ValueError as e:
            raise usage.UsageError(str(e)) from None

    optParameters = [
        ["username", "u", None, "your nick: 1-20 characters, no spaces "
         "[default: the nick you had last time, else your login name]"],
        ["port", "p", None,
         "TCP port to listen on; 0 = any free port "
         f"[default: first free in {PORT_RANGE[0]}-{PORT_RANGE[-1]}]"],
        ["multicast", "m", f"{DEFAULT_GROUP}:{DEFAULT_PORT}",
         "multicast group and UDP port for discovery, GROUP:PORT"],
        ["interface", "i", None,
         "IPv4 address of the interface to send and join on (and to listen on for TCP); "
         "several, comma-separated, for a peer on several LANs "
         "[default: every interface that takes multicast; TCP on all]"],
        ["ui", None, "console", "the face: console (full screen), lines (stdin/stdout), none"],
        ["data-dir", "d", None, "where your key, the pinned keys of others and the log are "
         "kept [default: the user's data dir]"],
        ["irc", None, None, "also run a local IRC server here, HOST:PORT (or PORT: on "
         "127.0.0.1), so an IRC client can be the face"],
        ["irc-password", None, None, "password IRC clients must give (required for a "
         "non-loopback --irc)"],
        ["catchup-lines", None, str(LOG_LINES),
         "how many of your recent lines are kept to resend to peers that missed them (and "
         "how many of an absent author's lines you hand on per sync)"],
        ["catchup-age", None, f"{LOG_AGE:g}",
         "seconds your lines are kept to resend to peers that missed them"],
        ["history-lines", None, str(HISTORY_MAX_LINES), "most lines kept in the history file"],
        ["history-days", None, f"{HISTORY_MAX_AGE / 86400:g}",
         "days lines are kept in the history file"],
        ["notify", None, ",".join(DEFAULT_OUTPUTS), "how the console tells you of a mention, "
         "a private line or a highlight word: any of " + ",".join(OUTPUTS)
         + " (bell; the terminal's OSC 777, OSC 9, OSC 99 (kitty); notify-send)"],
        ["tor-control", None, None, "use the running Tor whose control port is here "
         "(tcp:127.0.0.1:9051, unix:/run/tor/control) for an onion service and onion contacts"],
        ["torrc", None, None, "a file of torrc lines (Key value) for the Tor that --tor starts "
         "(e.g. a private test network's)"],
        ["history-mb", None, f"{HISTORY_MAX_BYTES / 2**20:g}",
         "most megabytes the history file holds (the oldest lines go first)"],
        ["download-dir", None, None, "where received files land [the user's download dir]"],
        ["max-file-size", None, f"{MAX_FILE_SIZE >> 30}G",
         "offers to us larger than this are refused (4G, 500M, bytes)"],
        ["file-rate", None, "0", "most bytes per second each file we send goes at (10M, "
         "500k; 0: no limit)"],
        ["links", None, str(DEFAULT_LINKS), f"in a room of over {FULL_MESH_UP_TO} peers, how "
         "many peers to keep a link to (the rest are reached through them); 0: link to "
         f"everyone [at least {MIN_LINKS}]"],
    ]
    optFlags = [
        ["debug", None, "log debug detail too"],
        ["tor", None, "start a Tor of our own (the system's tor) for an onion service and "
         "onion contacts (/invite, /connect INVITE)"],
        ["notify-hide-text", None, "notifications say who, not what"],
        ["secure-only", None, "refuse peers without encryption (base peers, such as the Go "
         "reference)"],
    ]

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
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
        try:
            if self["port"] is not None:
                self["port"] = parse_port(self["port"], "--port", lowest=0)
            self["multicast"] = parse_multicast(self["multicast"])
            # One address (the usual case) stays as it was; several: ``interfaces``.
            self["interfaces"] = []
            if self["interface"] is not None:
                self["interfaces"] = [parse_ipv4(a.strip(), "--interface")
                                      for a in self["interface"].split(",")]
                self["interface"] = (self["interfaces"][0] if len(self["interfaces"]) == 1
                                     else None)
            for name in ("catchup-lines", "catchup-age", "history-lines", "history-days",
                         "history-mb"):
                value = parse_positive(self[name], f"--{name}")
                self[name] = int(value) if name.endswith("-lines") else value
            if self["ui"] not in UIS:
                raise ValueError(f"--ui must be one of {', '.join(UIS)}, not {self['ui']!r}")
            self["notify"] = parse_outputs(self["notify"])
            self["max-file-size"] = parse_size(self["max-file-size"])
            self["file-rate"] = (0 if self["file-rate"].strip() == "0"
                                 else parse_size(self["file-rate"], "--file-rate"))
            self["links"] = parse_links(self["links"])
            self._irc_options()
            self._tor_options()
        except ValueError as e:
            raise usage.UsageError(str(e)) from None
        self["data-dir"] = os.path.abspath(os.path.expanduser(
            self["data-dir"] or default_data_dir()))
        self["download-dir"] = (os.path.abspath(os.path.expanduser(self["download-dir"]))
                                if self["download-dir"] else UserDownloads())
        if self.parent is not None:
            self._adjust_twistd(self.parent)

    def _tor_options(self) -> None:
        """--tor, --tor-control and --torrc; ValueError says what is wrong."""
        if self["tor"] and self["tor-control"]:
            raise ValueError("--tor starts a Tor, --tor-control uses a running one: not both")
        if self["tor-control"] is not None:
            from p2pchat.onion import parse_tor_control  # (onion.py: only with Tor)

            self["tor-control"] = parse_tor_control(self["tor-control"])
        if self["torrc"] is not None:
            if not self["tor"]:
                raise ValueError("--torrc is for the Tor that --tor starts")
            from p2pchat.onion import read_torrc

            self["torrc"] = read_torrc(self["torrc"])

    def _irc_options(self) -> None:
        """--irc and --irc-password; ValueError says what is wrong."""
        if self["irc"] is None:
            if self["irc-password"] is not None:
                raise usage.UsageError("--irc-password needs --irc")
            return
        self["irc"] = parse_irc_address(self["irc"])
        warning = check_irc_bind(self["irc"][0], self["irc-password"])
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
