"""The plugin's options: defaults, validation, and what they change in twistd's own."""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import TestCase

from p2pchat import logs, options
from p2pchat.service import Options
from tests.support import child_env, twistd


class Parsing(TestCase):
    def parse(self, *args: str) -> Options:
        options = Options()
        options.parseOptions(["--data-dir", self.mktemp(), *args])
        return options

    def bad(self, *args: str, why: str) -> None:
        with self.assertRaises(usage.UsageError) as caught:
            self.parse(*args)
        self.assertIn(why, str(caught.exception))

    def test_defaults(self) -> None:
        o = self.parse("--username", "carol")
        self.assertEqual((o["username"], o["port"], o["multicast"], o["interface"], o["ui"]),
                         ("carol", None, ("224.0.0.1", 9999), None, "console"))
        self.assertFalse(o["debug"])

    def test_default_data_dir_is_the_users(self) -> None:
        o = Options()
        o.parseOptions(["--username", "carol"])
        self.assertIn("p2pchat", o["data-dir"])
        self.assertTrue(os.path.isabs(o["data-dir"]))

    def test_values(self) -> None:
        o = self.parse("-u", "dave", "--port", "0", "--multicast", "239.1.2.3:4000",
                       "--interface", "127.0.0.1", "--ui", "lines", "--debug")
        self.assertEqual((o["port"], o["multicast"], o["interface"], o["ui"], o["debug"]),
                         (0, ("239.1.2.3", 4000), "127.0.0.1", "lines", True))

    def test_rejections(self) -> None:
        self.bad("--username", "two words", why="spaces")
        self.bad("--username", "x" * 21, why="at most 20")
        self.bad("--username", "", why="at least one")
        self.bad("--port", "http", why="must be a number")
        self.bad("--port", "70000", why="0 to 65535")
        self.bad("--multicast", "224.0.0.1", why="GROUP:PORT")
        self.bad("--multicast", "10.0.0.1:9999", why="not a multicast address")
        self.bad("--multicast", "224.0.0.1:x", why="port must be a number")
        self.bad("--interface", "eth0", why="IPv4 address")
        self.bad("--ui", "gui", why="--ui must be one of")
        self.bad("--irc-password", "x", why="needs --irc")
        self.bad("--irc", "0.0.0.0:6667", why="--irc")
        self.bad("--catchup-lines", "0", why="more than 0")
        self.bad("--catchup-age", "soon", why="must be a number")

    def test_irc(self) -> None:
        self.assertEqual(self.parse("--irc", "6667")["irc"], ("127.0.0.1", 6667))
        self.assertEqual(self.parse("--irc", "127.0.0.1:7000")["irc"], ("127.0.0.1", 7000))
        self.assertIsNone(self.parse()["irc"])

    def test_peers_tor_and_torrc(self) -> None:
        o = self.parse("--peer", "10.0.0.2:8080", "--peer=[fd00::2]:9000")
        self.assertEqual(o["peer"], [("10.0.0.2", 8080), ("fd00::2", 9000)])
        self.assertEqual(self.parse()["peer"], [])
        self.bad("--peer", "10.0.0.2", why="HOST:PORT")
        self.bad("--tor", "--tor-control", "tcp:127.0.0.1:9051", why="not both")
        for good in ("tcp:127.0.0.1:9051", "unix:/run/tor/control"):
            self.assertEqual(self.parse("--tor-control", good)["tor-control"], good)
        for junk in ("junk", "tcp:host", "tcp::9051", "tcp:h:99999", "unix:"):
            self.bad("--tor-control", junk, why="--tor-control")
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("TestingTorNetwork 1\n")
        self.bad("--torrc", path, why="--torrc is for the Tor that --tor starts")
        self.assertEqual(self.parse("--tor", "--torrc", path)["torrc"],
                         [("TestingTorNetwork", "1")])
        self.bad("--tor", "--torrc", path + ".missing", why="can't read it")

    def test_tor_missing_is_one_clear_line(self) -> None:
        from twisted.internet.task import Clock

        from p2pchat import onion
        from p2pchat.errors import StartError
        from p2pchat.identity import Identity
        from p2pchat.keeper import build_reach
        from p2pchat.node import Node

        self.patch(onion.shutil, "which", lambda name: None)
        self.patch(onion, "TOR_PLACES", ())
        with self.assertRaises(StartError) as caught:
            onion.tor_binary()
        self.assertIn("apt-get install tor", str(caught.exception))
        node = Node("alice", Clock(), identity=Identity.load_or_create(self.mktemp()))
        data = self.mktemp()
        os.makedirs(data)
        with self.assertRaises(StartError):
            build_reach(node, Clock(), data, [], None, True, None, None)
        # --tor-control needs no tor program here
        reach = build_reach(node, Clock(), data, [("10.0.0.2", 8080)], None, False,
                            "tcp:127.0.0.1:9051", None)
        self.assertIsNotNone(reach.keeper.onion)
        self.assertEqual([c.address for c in reach.keeper.book.contacts], ["10.0.0.2:8080"])


class AddressParsers(TestCase):
    """The one port rule behind --port, --multicast and --irc (options.parse_port): the same
    words everywhere, only the lowest port differs (--port 0 means any free port)."""

    def test_one_port_rule_for_every_option(self) -> None:
        for text, why in (("x", "--irc port must be a number, not 'x'"),
                          ("0", "--irc port must be from 1 to 65535, not 0"),
                          ("65536", "--irc port must be from 1 to 65535, not 65536")):
            with self.assertRaises(ValueError) as caught:
                options.parse_irc_address(f"127.0.0.1:{text}")
            self.assertEqual(str(caught.exception), why)
        with self.assertRaises(ValueError) as caught:
            options.parse_multicast("239.1.2.3:0")
        self.assertEqual(str(caught.exception), "--multicast port must be from 1 to 65535, not 0")
        self.assertEqual(options.parse_port("0", "--port", lowest=0), 0)
        self.assertEqual(options.parse_port("65535", "--port", lowest=0), 65535)

    def test_irc_face_uses_the_same_parsers(self) -> None:
        """irc.py takes its address parser and bind rule from here: one definition."""
        from p2pchat import irc

        self.assertIs(irc.parse_irc_address, options.parse_irc_address)
        self.assertIs(irc.check_irc_bind, options.check_irc_bind)

    def test_service_names_the_options_for_twistd(self) -> None:
        from p2pchat import service

        self.assertIs(service.Options, options.Options)


class UnderTwistd(TestCase):
    def test_pidfile_off_and_log_to_the_data_dir(self) -> None:
        parent = usage.Options()
        parent.update({"pidfile": "twistd.pid", "logfile": None, "logger": None,
                       "nodaemon": True})
        options = Options()
        options.parent = parent
        data = self.mktemp()
        options.parseOptions(["--username", "x", "--ui", "lines", "--data-dir", data])
        self.assertEqual(parent["pidfile"], "")
        self.assertEqual(parent["logger"], "p2pchat.logs.observer")
        self.assertEqual(logs.log_path(), os.path.join(os.path.abspath(data), "p2pchat.log"))

    def test_explicit_logfile_respected(self) -> None:
        parent = usage.Options()
        parent.update({"pidfile": "my.pid", "logfile": "-", "logger": None, "nodaemon": True})
        options = Options()
        options.parent = parent
        options.parseOptions(["--username", "x", "--data-dir", self.mktemp()])
        self.assertEqual((parent["pidfile"], parent["logger"]), ("my.pid", None))

    def test_plugin_listed(self) -> None:
        names = [p.tapname for p in getPlugins(IServiceMaker)]
        self.assertIn("p2pchat", names)

    def test_twistd_help_lists_it_and_documents_every_option(self) -> None:
        out = subprocess.run([twistd(), "--help"], capture_output=True, env=child_env(),
                             timeout=60).stdout.decode()
        self.assertIn("p2pchat", out)
        out = subprocess.run([twistd(), "p2pchat", "--help"], capture_output=True,
                             env=child_env(), timeout=60).stdout.decode()
        for option in ("--username", "--port", "--multicast", "--interface", "--ui",
                       "--data-dir", "--debug", "--secure-only", "--irc", "--irc-password",
                       "--catchup-lines", "--catchup-age"):
            self.assertIn(option, out)
        # The faces need the terminal: the help says to run in the foreground, and how not to.
        self.assertIn("twistd -n p2pchat", out)
        self.assertIn("--ui none", out)


def test_several_interfaces() -> None:
    from p2pchat.options import Options
    o = Options()
    o.parseOptions(["--username", "x", "--interface", "10.0.1.2,10.0.2.2"])
    assert (o["interface"], o["interfaces"]) == (None, ["10.0.1.2", "10.0.2.2"])
    o = Options()
    o.parseOptions(["--username", "x", "--interface", "10.0.1.2"])
    assert (o["interface"], o["interfaces"]) == ("10.0.1.2", ["10.0.1.2"])


class DownloadDir(TestCase):
    """Without --download-dir the user's download dir is looked up (platformdirs) when a file
    first lands, not at start: an idle peer does without platformdirs (0.4 MB)."""

    def test_parsing_leaves_platformdirs_unimported_until_the_dir_is_used(self) -> None:
        code = ("import os, sys\n"
                "from p2pchat.options import Options\n"
                "o = Options(); o.parseOptions(['--data-dir', sys.argv[1]])\n"
                "print('parsed', 'platformdirs' in sys.modules)\n"
                "where = os.path.join(o['download-dir'], 'f')\n"
                "import platformdirs\n"
                "print('dir', where == os.path.join(platformdirs.user_downloads_dir(), 'f'),"
                " str(o['download-dir']) == os.fspath(o['download-dir']))\n")
        done = subprocess.run([sys.executable, "-c", code, self.mktemp()],
                              capture_output=True, text=True, env=child_env(), timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.split("\n")[:2], ["parsed False", "dir True True"])

    def test_a_given_dir_is_taken_as_it_is(self) -> None:
        o = Options()
        o.parseOptions(["--data-dir", self.mktemp(), "--download-dir", "~/got"])
        self.assertEqual(o["download-dir"], os.path.expanduser("~/got"))
