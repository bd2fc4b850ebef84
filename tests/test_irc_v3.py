"""IRCv3 on the IRC face: CAP negotiation (with and without 302), the tags (server-time,
message-tags' msgid, batch), echo-message, userhost-in-names, the history on JOIN in a batch,
CHATHISTORY, and a client without caps sent exactly what it was before."""

from __future__ import annotations

import calendar
import re
import time

from p2pchat.irc import caps, playback
from p2pchat.chat import HISTORY_MAX_SHOWN
from p2pchat.wire import CHAT
from tests.test_irc import START, Client, IrcTestCase

#: One tag list as message-tags defines it: ``@key[=value](;key[=value])* `` (a key: an
#: optional ``+``, an optional vendor/, then letters, digits and '-'; a value: no NUL, CR,
#: LF, ';' or space).
TAGS = re.compile(r"@(?:\+?(?:[A-Za-z0-9.-]+/)?[A-Za-z0-9-]+(?:=[^\0\r\n; ]*)?)"
                  r"(?:;\+?(?:[A-Za-z0-9.-]+/)?[A-Za-z0-9-]+(?:=[^\0\r\n; ]*)?)* ")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
ALL_CAPS = ("away-notify batch draft/chathistory echo-message message-tags multi-prefix "
            "server-time userhost-in-names")


def split_tags(line: str) -> tuple[dict[str, str], str]:
    """A line's tags (checked for their syntax) and the rest of it."""
    if not line.startswith("@"):
        return {}, line
    match = TAGS.match(line)
    assert match is not None, f"malformed tags: {line!r}"
    tags = dict(t.partition("=")[::2] for t in match.group(0)[1:-1].split(";"))
    return tags, line[match.end():]


def stamp(when: float) -> str:
    return time.strftime("%H:%M", time.localtime(when))


def utc(when: float) -> str:
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(when)))
            + f".{int(round(when * 1000)) % 1000:03d}Z")


class V3TestCase(IrcTestCase):
    def capable(self, *wanted: str, nick: str = "alice") -> Client:
        """A client that asked for ``wanted`` (all offered if none named) and registered."""
        client = Client(self.factory)
        client.send("CAP LS 302", f"NICK {nick}", "USER a 0 * :a",
                    f"CAP REQ :{' '.join(wanted) or ALL_CAPS}", "CAP END")
        return client

    def said_before(self) -> tuple[str, float, str, float]:
        """bob said a line, then we did a minute later, two minutes ago: their ids and
        times."""
        self.bob = self.link("bob_00000002", "bob")
        self.hear(self.bob, CHAT, "an old line")
        first = self.node.history("general", 1)[-1]
        self.clock.advance(60.25)
        self.node.say("my old line")
        second = self.node.history("general", 1)[-1]
        self.clock.advance(60)
        return first.id, first.when, second.id, second.when


class NegotiationTests(V3TestCase):
    def test_cap_ls_without_302_holds_registration_until_cap_end(self) -> None:
        client = Client(self.factory)
        client.send("CAP LS", "NICK alice", "USER a 0 * :a")
        self.assertEqual(client.lines(), [f":p2pchat CAP * LS :{ALL_CAPS}"])
        client.send("CAP END")
        self.assertEqual(client.commands()[0], "001")

    def test_cap_ls_302(self) -> None:
        client = Client(self.factory)
        client.send("CAP LS 302", "NICK alice", "USER a 0 * :a")
        self.assertEqual(client.lines(), [f":p2pchat CAP * LS :{ALL_CAPS}"])
        self.assertEqual(client.proto.cap_version, 302)
        client.send("CAP END")
        self.assertEqual(client.commands()[0], "001")

    def test_302_gives_values_and_cuts_a_long_list(self) -> None:
        offered = {f"vendor.example/cap-number-{i:02d}": "" for i in range(30)}
        offered["sasl"] = "PLAIN,EXTERNAL"
        self.patch(caps, "OFFERED", offered)
        old = Client(self.factory)
        old.send("CAP LS")
        (line,) = old.lines()
        self.assertRegex(line, "[: ]sasl ")
        self.assertNotIn("=", line)
        new = Client(self.factory)
        new.send("CAP LS 302")
        lines = new.lines()
        self.assertGreater(len(lines), 1)
        for line in lines[:-1]:
            self.assertTrue(line.startswith(":p2pchat CAP * LS * :"), line)
            self.assertLessEqual(len(line.encode()) + 2, 512)
        self.assertTrue(lines[-1].startswith(":p2pchat CAP * LS :"))
        names = " ".join(line.split(" :", 1)[1] for line in lines).split()
        self.assertEqual(sorted(names), sorted(
            [n for n in offered if n != "sasl"] + ["sasl=PLAIN,EXTERNAL"]))

    def test_req_acks_or_naks_the_whole_request_and_list_tells(self) -> None:
        client = Client(self.factory)
        client.send("CAP REQ :server-time batch")
        self.assertEqual(client.lines(), [":p2pchat CAP * ACK :server-time batch"])
        untagged = lambda: [split_tags(line)[1] for line in client.lines()]  # noqa: E731
        client.send("CAP REQ :echo-message no-such-cap")
        self.assertEqual(untagged(), [":p2pchat CAP * NAK :echo-message no-such-cap"])
        client.send("CAP LIST")
        self.assertEqual(untagged(), [":p2pchat CAP * LIST :batch server-time"])
        client.send("CAP REQ :-batch multi-prefix")
        self.assertEqual(untagged(), [":p2pchat CAP * ACK :-batch multi-prefix"])
        client.send("CAP REQ :", "CAP LIST")
        self.assertEqual(untagged(), [":p2pchat CAP * NAK :",
                                          ":p2pchat CAP * LIST :multi-prefix server-time"])

    def test_a_request_naming_too_many_caps_is_refused(self) -> None:
        client = Client(self.factory)
        client.send("CAP REQ :" + " ".join(["batch"] * (caps.MAX_CAP_REQ + 1)))
        (line,) = client.lines()
        self.assertTrue(line.startswith(":p2pchat CAP * NAK :batch batch"), line)
        self.assertEqual(client.proto.caps, set())

    def test_req_before_registration_holds_it_too(self) -> None:
        client = Client(self.factory)
        client.send("CAP REQ :server-time", "NICK alice", "USER a 0 * :a")
        self.assertEqual(client.commands(), ["CAP"])
        client.send("CAP END")
        lines = client.lines()
        self.assertIn(" 001 alice ", lines[0])
        client.send("CAP END")  # after registration: nothing
        self.assertEqual(client.lines(), [])

    def test_caps_asked_after_registration_take_effect(self) -> None:
        client = self.client()
        client.send("CAP REQ :server-time")
        self.assertEqual(client.lines(), [":p2pchat CAP alice ACK :server-time"])
        client.send("CAP LIST")
        tags, rest = split_tags(client.lines()[0])
        self.assertEqual(rest, ":p2pchat CAP alice LIST :server-time")
        self.assertRegex(tags["time"], TIME)

    def test_bad_cap_subcommand(self) -> None:
        client = Client(self.factory)
        client.send("CAP BOGUS")
        self.assertEqual(client.commands(), ["410"])

    def test_chathistory_in_005_only_for_a_client_that_asked(self) -> None:
        plain = self.client()
        capable = self.capable()
        self.assertNotIn("CHATHISTORY=", "".join(plain.lines()))
        isupport = [split_tags(line)[1] for line in capable.lines() if " 005 " in line]
        self.assertIn(f"CHATHISTORY={playback.CHATHISTORY_LIMIT}", isupport[0])
        self.assertIn("MSGREFTYPES=timestamp,msgid", isupport[0])


class WithoutCapsTests(V3TestCase):
    def test_a_client_without_cap_is_sent_what_it_was_before(self) -> None:
        """The lines as the IRC face sent them before IRCv3 (taken from that version)."""
        old_id, old_when, mine_id, mine_when = self.said_before()
        client = Client(self.factory)
        other = self.client()
        client.send("NICK alice", "USER alice 0 * :Real")
        lines = client.lines()
        self.assertEqual(lines[12:], [
            ":alice!alice_00000001@local JOIN #general",
            ":p2pchat 332 alice #general :the LAN room: everyone running p2pchat on this "
            "network is in it",
            ":p2pchat 353 alice = #general :alice bob",
            ":p2pchat 366 alice #general :End of /NAMES list",
            f":bob!bob_00000002@history PRIVMSG #general :[{stamp(old_when)}] an old line",
            f":alice!alice_00000001@local PRIVMSG #general :[{stamp(mine_when)}] my old line",
        ])
        self.assertEqual(lines[4], ":p2pchat 005 alice NETWORK=p2pchat CASEMAPPING=ascii "
                         "CHANTYPES=# CHANLIMIT=#:32 CHANNELLEN=33 NICKLEN=20 PREFIX=() "
                         "CHANMODES=,,,nt TARGMAX=PRIVMSG:8,NOTICE:8,JOIN:8,PART:8 :are "
                         "supported by this server")
        self.assertFalse(any(line.startswith("@") for line in lines))
        self.hear(self.bob, CHAT, "hello")
        self.private(self.bob, "psst")
        client.send("PRIVMSG #general :mine", "NOTICE #general :noted",
                    "PRIVMSG bob :to bob", "NAMES #general", "TAGMSG #general",
                    "@label=1 PRIVMSG #general :tagged", "CHATHISTORY LATEST #general * 5")
        other.send("PRIVMSG #general :from other")
        self.assertEqual(client.lines(), [
            ":bob!bob_00000002@10.0.0.5 PRIVMSG #general :hello",
            ":bob!bob_00000002@10.0.0.5 PRIVMSG alice :psst",
            ":p2pchat 353 alice = #general :alice bob",
            ":p2pchat 366 alice #general :End of /NAMES list",
            ":p2pchat 421 alice TAGMSG :Unknown command",
            ":p2pchat 421 alice CHATHISTORY :Unknown command",
            ":alice!alice_00000001@local PRIVMSG #general :from other",
        ])
        # The tagged line was read as a line (its tags dropped), said once.
        self.assertEqual([m.content for m in self.chats(self.bob)][-4:],
                         ["mine", "noted", "tagged", "from other"])


class TagTests(V3TestCase):
    def test_every_line_carries_well_formed_tags_and_chat_lines_their_own_time(self) -> None:
        old_id, old_when, mine_id, mine_when = self.said_before()
        client = self.capable()
        lines = client.lines()
        self.assertGreater(len(lines), 15)
        now = utc(self.clock.seconds())
        for line in lines[2:]:  # after CAP LS and CAP ACK (sent before the tags began)
            tags, _ = split_tags(line)
            self.assertRegex(tags.get("time", ""), TIME, line)
        played = [split_tags(line) for line in lines if " PRIVMSG " in line]
        self.assertEqual([rest for _, rest in played], [
            ":bob!bob_00000002@history PRIVMSG #general :an old line",
            ":alice!alice_00000001@local PRIVMSG #general :my old line"])
        self.assertEqual([(t["time"], t["msgid"]) for t, _ in played],
                         [(utc(old_when), old_id), (utc(mine_when), mine_id)])
        self.assertEqual(utc(mine_when), utc(START + 60.25))
        self.assertTrue(utc(mine_when).endswith(":20.250Z"))
        welcome = split_tags(lines[2])[0]
        self.assertEqual(welcome, {"time": now})  # not a chat line: the time it was sent
        # A live line: its own time, and its message id.
        self.clock.advance(5)
        self.hear(self.bob, CHAT, "hello")
        live = self.node.history("general", 1)[-1]
        (line,) = client.lines()
        tags, rest = split_tags(line)
        self.assertEqual(rest, ":bob!bob_00000002@10.0.0.5 PRIVMSG #general :hello")
        self.assertEqual(tags, {"time": utc(live.when), "msgid": live.id})
        self.private(self.bob, "psst")
        tags, rest = split_tags(client.lines()[0])
        self.assertEqual(rest, ":bob!bob_00000002@10.0.0.5 PRIVMSG alice :psst")
        self.assertEqual(set(tags), {"time", "msgid"})

    def test_server_time_alone_gives_no_msgid_and_msgid_needs_message_tags(self) -> None:
        self.said_before()
        timed = self.capable("server-time")
        tagged = self.capable("message-tags")
        for line in timed.lines()[2:]:
            self.assertEqual(set(split_tags(line)[0]), {"time"}, line)
        played = [split_tags(line) for line in tagged.lines() if " PRIVMSG " in line]
        self.assertEqual(len(played), 2)
        for tags, rest in played:
            self.assertEqual(set(tags), {"msgid"})
            self.assertIn(":[", rest)  # no server-time: the time stays written in the line

    def test_the_written_time_goes_only_for_a_client_with_server_time_and_batch(self) -> None:
        """irssi 1.4 asks for server-time (and multi-prefix) but shows the time a line came
        unless show_server_time is on: the history it is played keeps its written time."""
        old_id, old_when, mine_id, mine_when = self.said_before()
        irssi = self.capable("multi-prefix", "server-time")
        both = self.capable("server-time", "batch")
        played = [split_tags(line) for line in irssi.lines() if " PRIVMSG " in line]
        self.assertEqual([rest for _, rest in played], [
            f":bob!bob_00000002@history PRIVMSG #general :[{stamp(old_when)}] an old line",
            f":alice!alice_00000001@local PRIVMSG #general :[{stamp(mine_when)}] my old line"])
        self.assertEqual([tags["time"] for tags, _ in played], [utc(old_when), utc(mine_when)])
        played = [split_tags(line)[1] for line in both.lines() if " PRIVMSG " in line]
        self.assertEqual(played, [":bob!bob_00000002@history PRIVMSG #general :an old line",
                                  ":alice!alice_00000001@local PRIVMSG #general :my old line"])

    def test_tag_values_are_escaped(self) -> None:
        self.assertEqual(caps.escape_value("a;b c\\d\r\ne"), "a\\:b\\sc\\\\d\\r\\ne")
        line = caps.tags({caps.MESSAGE_TAGS, caps.SERVER_TIME}, 0.0, None, "x; y")
        self.assertEqual(line, "@time=1970-01-01T00:00:00.000Z;msgid=x\\:\\sy ")
        self.assertRegex(line, TAGS)
        self.assertEqual(caps.server_time(1.9996), "1970-01-01T00:00:02.000Z")
        self.assertEqual(caps.tags(set(), 0.0, 5.0, "id", "b1"), "")

    def test_tagmsg_is_read_and_dropped(self) -> None:
        client = self.capable("message-tags")
        client.lines()
        client.send("@+typing=active TAGMSG #general")
        self.assertEqual(client.lines(), [])


class EchoTests(V3TestCase):
    def test_own_lines_come_back_with_their_msgid_and_time(self) -> None:
        self.bob = self.link("bob_00000002", "bob")
        client = self.capable()
        other = self.client()
        client.lines()
        other.lines()
        client.send("PRIVMSG #general :hi all")
        said = self.chats(self.bob)[-1]
        tags, rest = split_tags(client.lines()[0])
        self.assertEqual(rest, ":alice!alice_00000001@local PRIVMSG #general :hi all")
        self.assertEqual(tags, {"time": utc(said.timestamp), "msgid": said.id})
        self.assertEqual(other.lines(), [":alice!alice_00000001@local PRIVMSG #general :hi all"])
        client.send("NOTICE #general :noted", "PRIVMSG #general :\x01ACTION waves\x01")
        self.assertEqual([split_tags(line)[1] for line in client.lines()], [
            ":alice!alice_00000001@local NOTICE #general :noted",
            ":alice!alice_00000001@local PRIVMSG #general :\x01ACTION waves\x01"])
        client.send("PRIVMSG bob :just you")
        tags, rest = split_tags(client.lines()[0])
        self.assertEqual(rest, ":alice!alice_00000001@local PRIVMSG bob :just you")
        self.assertEqual(tags["msgid"], self.privates(self.bob)[-1].id)

    def test_without_echo_message_nothing_comes_back(self) -> None:
        self.bob = self.link("bob_00000002", "bob")
        client = self.capable("server-time", "message-tags")
        client.lines()
        client.send("PRIVMSG #general :hi all", "PRIVMSG bob :just you")
        self.assertEqual(client.lines(), [])

    def test_a_refused_line_is_not_echoed(self) -> None:
        client = self.capable()  # nobody linked: the node refuses a private line to bob
        client.lines()
        client.send("PRIVMSG nobody :hello")
        (line,) = client.lines()
        self.assertTrue(split_tags(line)[1].startswith(":p2pchat 401 alice nobody :"), line)


class NamesTests(V3TestCase):
    def test_userhost_in_names_and_multi_prefix(self) -> None:
        self.link("bob_00000002", "bob")
        client = self.capable("userhost-in-names", "multi-prefix")
        names = [line for line in client.lines() if " 353 " in line]
        self.assertEqual(names, [":p2pchat 353 alice = #general "
                                 ":alice!alice_00000001@local bob!bob_00000002@10.0.0.5"])


class BatchTests(V3TestCase):
    def test_history_on_join_comes_in_a_closed_batch(self) -> None:
        self.said_before()
        client = self.capable("batch", "server-time", "message-tags")
        lines = [split_tags(line) for line in client.lines()]
        start = next(i for i, (_, rest) in enumerate(lines) if " BATCH +" in rest)
        _, head = lines[start]
        match = re.fullmatch(r":p2pchat BATCH \+(\S+) chathistory #general", head)
        assert match is not None, head
        ref = match.group(1)
        inside = lines[start + 1:start + 3]
        self.assertEqual([t["batch"] for t, _ in inside], [ref, ref])
        self.assertTrue(all(" PRIVMSG #general " in rest for _, rest in inside))
        self.assertEqual(lines[start + 3][1], f":p2pchat BATCH -{ref}")
        self.assertEqual(len(lines), start + 4)
        self.assertNotIn("batch", lines[start][0])

    def test_no_history_no_batch(self) -> None:
        client = self.capable("batch")
        self.assertNotIn("BATCH", " ".join(client.commands()))

    def test_each_batch_has_its_own_id(self) -> None:
        self.said_before()
        client = self.capable("batch", "draft/chathistory")
        client.lines()
        client.send("CHATHISTORY LATEST #general * 1", "CHATHISTORY LATEST #general * 1")
        opened = [line.split()[2] for line in client.lines() if " BATCH +" in line]
        self.assertEqual(len(opened), 2)
        self.assertNotEqual(opened[0], opened[1])


class ChatHistoryTests(V3TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.bob = self.link("bob_00000002", "bob")
        for i in range(10):
            self.hear(self.bob, CHAT, f"line {i}")
            self.clock.advance(10)
        self.lines = self.node.history("general", 100)
        self.assertEqual(len(self.lines), 10)
        self.client_ = self.capable()
        self.client_.lines()

    def ask(self, request: str) -> list[str]:
        """The texts of the lines one CHATHISTORY answers (checking its batch), or its FAIL."""
        self.client_.send(request)
        lines = [split_tags(line) for line in self.client_.lines()]
        if lines and lines[0][1].startswith(":p2pchat FAIL "):
            self.assertEqual(len(lines), 1)
            return [lines[0][1]]
        head = re.fullmatch(r":p2pchat BATCH \+(\S+) chathistory (\S+)", lines[0][1])
        assert head is not None, lines
        self.assertEqual(lines[-1][1], f":p2pchat BATCH -{head.group(1)}")
        out = []
        for tags, rest in lines[1:-1]:
            self.assertEqual(tags["batch"], head.group(1))
            self.assertRegex(tags["time"], TIME)
            found = [line for line in self.lines if line.id == tags["msgid"]]
            self.assertEqual(len(found), 1)
            self.assertEqual(tags["time"], utc(found[0].when))
            out.append(rest.split(" :", 1)[1])
        return out

    def texts(self, *numbers: int) -> list[str]:
        return [f"line {n}" for n in numbers]

    def test_latest(self) -> None:
        self.assertEqual(self.ask("CHATHISTORY LATEST #general * 3"), self.texts(7, 8, 9))
        self.assertEqual(self.ask(f"CHATHISTORY LATEST #general msgid={self.lines[6].id} 10"),
                         self.texts(7, 8, 9))
        when = utc(self.lines[7].when)
        self.assertEqual(self.ask(f"CHATHISTORY LATEST #general timestamp={when} 1"),
                         self.texts(9))
        self.assertEqual(self.ask("CHATHISTORY LATEST #general * 1000"),
                         self.texts(*range(10)))

    def test_before_and_after(self) -> None:
        self.assertEqual(self.ask(f"CHATHISTORY BEFORE #general msgid={self.lines[5].id} 2"),
                         self.texts(3, 4))
        self.assertEqual(self.ask(f"CHATHISTORY BEFORE #general msgid={self.lines[2].id} 5"),
                         self.texts(0, 1))
        self.assertEqual(self.ask(f"CHATHISTORY AFTER #general msgid={self.lines[5].id} 2"),
                         self.texts(6, 7))
        when = utc(self.lines[3].when)
        self.assertEqual(self.ask(f"CHATHISTORY AFTER #general timestamp={when} 3"),
                         self.texts(4, 5, 6))
        self.assertEqual(self.ask(f"CHATHISTORY BEFORE #general timestamp={when} 2"),
                         self.texts(1, 2))
        self.assertEqual(self.ask(f"CHATHISTORY AFTER #general msgid={self.lines[9].id} 2"),
                         [])

    def test_around_and_between(self) -> None:
        self.assertEqual(self.ask(f"CHATHISTORY AROUND #general msgid={self.lines[5].id} 3"),
                         self.texts(4, 5, 6))
        first, last = self.lines[2].id, self.lines[6].id
        self.assertEqual(self.ask(f"CHATHISTORY BETWEEN #general msgid={first} msgid={last} 2"),
                         self.texts(3, 4))
        self.assertEqual(self.ask(f"CHATHISTORY BETWEEN #general msgid={last} msgid={first} 2"),
                         self.texts(4, 5))

    def test_a_private_talk(self) -> None:
        self.private(self.bob, "psst")
        self.node.say_private("bob", "yes?")
        self.client_.lines()
        self.client_.send("CHATHISTORY LATEST bob * 5")
        rests = [split_tags(line)[1] for line in self.client_.lines()]
        self.assertEqual(rests[1:-1], [":bob!bob_00000002@history PRIVMSG alice :psst",
                                       ":alice!alice_00000001@local PRIVMSG bob :yes?"])
        self.assertIn(" chathistory bob", rests[0])

    def test_what_cant_be_answered_fails_clearly(self) -> None:
        fails = {
            "CHATHISTORY": "FAIL CHATHISTORY UNKNOWN_COMMAND * :",
            "CHATHISTORY FROB #general * 5": "FAIL CHATHISTORY UNKNOWN_COMMAND FROB :",
            "CHATHISTORY TARGETS timestamp=2020-01-01T00:00:00.000Z "
            "timestamp=2030-01-01T00:00:00.000Z 5":
                "FAIL CHATHISTORY UNKNOWN_COMMAND TARGETS :TARGETS is not answered",
            "CHATHISTORY LATEST #general *": "FAIL CHATHISTORY NEED_MORE_PARAMS LATEST :",
            "CHATHISTORY LATEST #general * 0": "FAIL CHATHISTORY INVALID_PARAMS LATEST 0 :",
            "CHATHISTORY LATEST #general * x": "FAIL CHATHISTORY INVALID_PARAMS LATEST x :",
            "CHATHISTORY BEFORE #general nonsense 5": "FAIL CHATHISTORY INVALID_PARAMS nonsense :",
            "CHATHISTORY BEFORE #general timestamp=yesterday 5":
                "FAIL CHATHISTORY INVALID_PARAMS timestamp=yesterday :",
            "CHATHISTORY BEFORE #general timestamp=2026-13-45T99:00:00.000Z 5":
                "FAIL CHATHISTORY INVALID_PARAMS timestamp=2026-13-45T99:00:00.000Z :",
            "CHATHISTORY AFTER #general msgid=0123456789abcdef 5":
                "FAIL CHATHISTORY MESSAGE_ERROR msgid=0123456789abcdef :no such message",
            "CHATHISTORY LATEST #Bad! * 5": "FAIL CHATHISTORY INVALID_TARGET LATEST #Bad! :",
            "CHATHISTORY LATEST nobody * 5": "FAIL CHATHISTORY INVALID_TARGET LATEST nobody :",
        }
        for request, expected in fails.items():
            (answer,) = self.ask(request)
            self.assertTrue(answer.startswith(":p2pchat " + expected), (request, answer))

    def test_beyond_the_window_fails_rather_than_answering_short(self) -> None:
        self.patch(playback, "CHATHISTORY_WINDOW", 5)  # the last 5: lines 5..9
        ids = [line.id for line in self.lines]
        self.assertEqual(self.ask("CHATHISTORY LATEST #general * 5"), self.texts(5, 6, 7, 8, 9))
        self.assertEqual(self.ask(f"CHATHISTORY BEFORE #general msgid={ids[8]} 3"),
                         self.texts(5, 6, 7))
        self.assertEqual(self.ask(f"CHATHISTORY AFTER #general msgid={ids[6]} 5"),
                         self.texts(7, 8, 9))
        for request in (f"CHATHISTORY BEFORE #general msgid={ids[7]} 3",
                        f"CHATHISTORY AFTER #general msgid={ids[2]} 3",
                        f"CHATHISTORY AFTER #general timestamp={utc(self.lines[2].when)} 3",
                        f"CHATHISTORY LATEST #general timestamp={utc(self.lines[2].when)} 3",
                        f"CHATHISTORY AROUND #general msgid={ids[6]} 5"):
            (answer,) = self.ask(request)
            self.assertTrue(answer.startswith(":p2pchat FAIL CHATHISTORY MESSAGE_ERROR "), answer)
        self.assertEqual(self.ask(f"CHATHISTORY AFTER #general timestamp="
                                  f"{utc(self.lines[6].when)} 2"), self.texts(7, 8))

    def test_a_large_limit_is_cut(self) -> None:
        self.patch(playback, "CHATHISTORY_LIMIT", 4)
        self.assertEqual(self.ask("CHATHISTORY LATEST #general * 100"), self.texts(6, 7, 8, 9))

    def test_the_window_is_what_the_node_gives_at_most(self) -> None:
        self.assertEqual(playback.CHATHISTORY_WINDOW, HISTORY_MAX_SHOWN)

    def test_parse_timestamp(self) -> None:
        self.assertEqual(playback.parse_timestamp("2023-11-14T22:13:20.500Z"), START + 0.5)
        self.assertEqual(playback.parse_timestamp("2023-11-14T22:13:20Z"), START)
        self.assertEqual(calendar.timegm(time.gmtime(START)), START)
        for bad in ("", "2023-11-14", "2023-11-14T22:13:20.500Zjunk", "9" * 40):
            self.assertIsNone(playback.parse_timestamp(bad), bad)
