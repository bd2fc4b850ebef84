"""/search: the query and its filters, the newest first, hostile text, the LIKE fallback, an
older file indexed in steps on upgrade, the search in a thread, and what the faces show."""

from __future__ import annotations

import os
import sqlite3
import threading
import time

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from p2pchat import index as index_module
from p2pchat.chat import Chat
from p2pchat.face import CommandFace
from p2pchat.history import MemoryHistory
from p2pchat.interfaces import Refused, SearchHit, StoredLine
from p2pchat.search import USAGE, SEARCH_MAX_HITS, Query, day_start, fts_text, parse_query
from p2pchat.store import Store
from p2pchat.wire import Message, encode_message
from tests import test_irc
from tests.fakechat import FakeChat

#: noon local time on 2026-03-10, and a day
DAY = 86400.0
T0 = time.mktime((2026, 3, 10, 12, 0, 0, 0, 0, -1))

HOSTILE = ['"', '""', "*", "NEAR(a b)", "NEAR(", "-x", "a -b", "AND", "OR", "NOT x", "x OR",
           "^start", "text:x", "{a b}", "(", ")", "a + b", "'; drop table lines; --", "%",
           "_", "\\", "col:*", '"unterminated', "a*", "NEAR(\"a\" \"b\", 2)"]


def at(n: int, text: str, nick: str = "ann", room: str = "general", when: float = T0,
       sender: str = "a_1") -> StoredLine:
    return StoredLine(f"id{n}", room, sender, nick, text, False, False, when)


def in_a_thread(f, *args):
    """deferToThread without the reactor (trial and pytest-twisted share the reactor in the
    suite): ``f`` runs in a thread of its own, joined; its result as a fired Deferred."""
    out: list = []

    def run() -> None:
        try:
            out.append(defer.succeed(f(*args)))
        except Exception:
            out.append(defer.fail())

    thread = threading.Thread(target=run, name="SearchTestThread")
    thread.start()
    thread.join(30)
    return out[0]


def opened(path: str, **kw: object) -> Store:
    """A Store whose searches run in_a_thread."""
    store = Store(path, **kw)
    store.index.in_thread = in_a_thread
    return store


def texts(hits: list[SearchHit]) -> list[str]:
    return [hit.text for hit in hits]


class _Searches:
    """The same searches over each history: FTS5, the LIKE fallback, and memory."""

    def make(self) -> object:
        raise NotImplementedError

    def setUp(self) -> None:
        self.history = self.make()
        lines = [
            at(1, "deploy the build", "ann", "general", T0 - 2 * DAY),
            at(2, "the build is green", "bob", "ops", T0 - DAY, "b_1"),
            at(3, "Deploy done, BUILD fine", "ann", "ops", T0),
            at(4, "lunch?", "bob", "general", T0 + DAY, "b_1"),
            at(5, "build again tomorrow", "carol", "@b_1", T0 + 2 * DAY, "c_1"),
        ]
        for line in lines:
            self.history.remember(line)

    def tearDown(self) -> None:
        self.history.close()

    @defer.inlineCallbacks
    def find(self, **kw: object):
        hits = yield self.history.search(Query(**kw), SEARCH_MAX_HITS)
        return texts(hits)

    @defer.inlineCallbacks
    def test_words_all_required_any_case_newest_first(self):
        self.assertEqual((yield self.find(words=("build",))),
                         ["build again tomorrow", "Deploy done, BUILD fine",
                          "the build is green", "deploy the build"])
        self.assertEqual((yield self.find(words=("DEPLOY", "build"))),
                         ["Deploy done, BUILD fine", "deploy the build"])
        self.assertEqual((yield self.find(words=("nothing",))), [])

    @defer.inlineCallbacks
    def test_from(self):
        self.assertEqual((yield self.find(words=("build",), nick="BOB")),
                         ["the build is green"])
        self.assertEqual((yield self.find(nick="bob")), ["lunch?", "the build is green"])

    @defer.inlineCallbacks
    def test_in(self):
        self.assertEqual((yield self.find(words=("build",), rooms=("ops",))),
                         ["Deploy done, BUILD fine", "the build is green"])
        self.assertEqual((yield self.find(words=("build",), rooms=("@b_1",))),
                         ["build again tomorrow"])

    @defer.inlineCallbacks
    def test_before_and_after(self):
        self.assertEqual((yield self.find(words=("build",), before=T0)),
                         ["the build is green", "deploy the build"])
        self.assertEqual((yield self.find(words=("build",), after=T0)),
                         ["build again tomorrow", "Deploy done, BUILD fine"])
        self.assertEqual((yield self.find(words=("build",), after=T0 - DAY, before=T0 + DAY)),
                         ["Deploy done, BUILD fine", "the build is green"])

    @defer.inlineCallbacks
    def test_ignored_authors_left_out(self):
        self.assertEqual((yield self.find(words=("build",), skip=("a_1", "c_1"))),
                         ["the build is green"])

    @defer.inlineCallbacks
    def test_ranked_by_time_not_by_arrival_and_bounded(self):
        # lines arriving late (a catch-up) with older times rank by their time
        for n in range(SEARCH_MAX_HITS + 10):
            self.history.remember(at(100 + n, f"zebra {n}", when=T0 + 10 * DAY - n * 60))
        self.history.remember(at(999, "zebra newest", when=T0 + 11 * DAY))
        self.history.remember(at(998, "zebra oldest", when=T0 - 100 * DAY))
        hits = yield self.find(words=("zebra",))
        self.assertEqual(len(hits), SEARCH_MAX_HITS)
        self.assertEqual(hits[:3], ["zebra newest", "zebra 0", "zebra 1"])
        self.assertNotIn("zebra oldest", hits)

    @defer.inlineCallbacks
    def test_hostile_words_never_fail(self):
        self.history.remember(at(50, 'he said "NEAR(a b)" -x * 100% a_b'))
        for word in HOSTILE:
            hits = yield self.history.search(Query(words=tuple(word.split())), 50)
            self.assertIsInstance(hits, list, word)
        self.assertEqual((yield self.find(words=("said",))), ['he said "NEAR(a b)" -x * 100% a_b'])


class StoreSearches(_Searches, TestCase):
    fts = True

    def make(self) -> Store:
        path = self.mktemp()
        os.makedirs(path)
        store = opened(os.path.join(path, "h.sqlite3"), fts=self.fts)
        self.assertEqual(store.index.fts, self.fts)
        return store

    @defer.inlineCallbacks
    def test_runs_off_the_reactor_thread(self):
        names: list[str] = []
        self.history.index.on_thread = names.append
        hits = yield self.find(words=("lunch",))
        self.assertEqual(hits, ["lunch?"])
        self.assertEqual(len(names), 1)
        self.assertNotEqual(names[0], threading.current_thread().name)
        self.assertEqual(names[0], "SearchTestThread")

    def test_the_chat_searches_in_the_reactors_thread_pool(self) -> None:
        from twisted.internet.threads import deferToThread

        store = Store(self.mktemp() + ".sqlite3")
        self.addCleanup(store.close)
        self.assertIs(store.index.in_thread, deferToThread)

    @defer.inlineCallbacks
    def test_new_lines_are_indexed_once_even_in_a_file_of_an_older_build(self):
        """New lines go into the index a moment after their commit (index.add_new, or first
        thing in a search); the per-row trigger of an older build is dropped when the file is
        opened, else they'd be in it twice."""
        path = os.path.join(self.mktemp(), "h.sqlite3")
        os.makedirs(os.path.dirname(path))
        opened(path).close()
        db = sqlite3.connect(path)
        db.execute("create trigger lines_fts_new after insert on lines begin insert into "
                   "lines_fts(rowid, text) values (new.rowid, new.text); end")
        db.commit()
        db.close()
        store = opened(path)
        self.addCleanup(store.close)
        self.assertIsNone(store._db.execute(
            "select 1 from sqlite_master where name = 'lines_fts_new'").fetchone())
        store.remember(at(1, "zebra crossing"))
        store.remember(at(2, "a zebra again"))
        hits = yield store.search(Query(words=("zebra",)), 10)
        self.assertEqual(sorted(h.text for h in hits), ["a zebra again", "zebra crossing"])
        count = store._db.execute("select count(*) from lines_fts where lines_fts match 'zebra'"
                                  ).fetchone()[0]
        self.assertEqual(count, 2)

    @defer.inlineCallbacks
    def test_a_line_kept_as_its_bytes_is_found_by_its_text(self):
        msg = Message(type="chat", sender_id="d_1", username="dan",
                      content="signed words here", id="m-raw", timestamp=T0,
                      sequence=3)
        self.history.remember(StoredLine("m-raw", "general", "d_1", "dan", "signed words here",
                                         False, False, T0, 3, encode_message(msg), "KEY"))
        self.assertEqual((yield self.find(words=("signed",))), ["signed words here"])

    @defer.inlineCallbacks
    def test_pruned_lines_leave_the_index(self):
        self.history.prune(now=T0 + 0.5 * DAY, max_age=DAY * 1.0)  # keeps T0 - 0.5 day on
        self.assertEqual((yield self.find(words=("build",))),
                         ["build again tomorrow", "Deploy done, BUILD fine"])
        if self.fts:
            # (columnsize=0: the index can't be counted whole, only matched)
            rows = self.history._db.execute("select count(*) from lines_fts where lines_fts "
                                            "match '\"build\"'").fetchone()[0]
            self.assertEqual(rows, 2)


class FallbackSearches(StoreSearches):
    """Forced as where the sqlite3 build lacks FTS5: LIKE over the lines, same answers."""

    fts = False

    def test_no_index_is_made(self) -> None:
        found = self.history._db.execute(
            "select 1 from sqlite_master where name = 'lines_fts'").fetchone()
        self.assertIsNone(found)


class MemorySearches(_Searches, TestCase):
    def make(self) -> MemoryHistory:
        return MemoryHistory()


class QueryParsing(TestCase):
    def test_filters_and_words(self) -> None:
        query = parse_query("deploy From:bob in:#ops before:2026-03-10 after:2026-03-01 x")
        assert isinstance(query, Query)
        self.assertEqual(query.words, ("deploy", "x"))
        self.assertEqual((query.nick, query.room), ("bob", "#ops"))
        self.assertEqual(query.before, day_start("2026-03-10"))
        # after: the whole day is past: from the start of the next one (local time)
        self.assertEqual(query.after, time.mktime((2026, 3, 2, 0, 0, 0, 0, 0, -1)))

    def test_bad_queries_say_why(self) -> None:
        self.assertIn("usage", parse_query("   "))
        self.assertIn("not a date", parse_query("x before:2026-13-01"))
        self.assertIn("not a date", parse_query("x after:yesterday"))
        self.assertIn("the most", parse_query("x " * 30))
        self.assertIn("the most", parse_query("y" * 500))

    def test_words_are_quoted_as_fts5_strings(self) -> None:
        self.assertEqual(fts_text(['a"b', "NEAR("]), '"a""b" "NEAR("')


def indexed(store: Store) -> int:
    """Index entries of the word every line has (columnsize=0: the index can't be counted
    whole, only matched; a line indexed twice is matched twice)."""
    return store._db.execute("select count(*) from lines_fts where lines_fts match "
                             "'\"old\"'").fetchone()[0]


class Indexing(TestCase):
    """A file of before the index: indexed once, in steps, on upgrade."""

    def setUp(self) -> None:
        path = self.mktemp()
        os.makedirs(path)
        self.path = os.path.join(path, "h.sqlite3")
        store = Store(self.path)
        store.close()
        db = sqlite3.connect(self.path)
        db.execute("drop trigger lines_fts_gone")
        db.execute("drop trigger if exists lines_fts_new")  # (an older build had one)
        db.execute("drop table lines_fts")
        db.execute("delete from settings where key = 'search_index'")
        self.count = int(index_module.INDEX_STEP * 2.5)
        db.executemany("insert into lines values (?,?,?,?,?,0,0,?,null,null,null)",
                       [(f"id{n}", "general", "a_1", "ann", f"old line {n} word{n % 7}",
                         T0 + n) for n in range(self.count)])
        db.commit()
        db.close()

    @defer.inlineCallbacks
    def test_an_older_file_is_indexed_in_steps_and_once(self):
        store = opened(self.path)
        self.addCleanup(store.close)
        self.assertEqual(store.indexing(), 0)
        hits = yield store.search(Query(words=("old",)), 50)
        self.assertEqual(hits, [])  # not indexed yet (the face says how far it got)
        store.remember(at(-1, "old news, new line", when=T0 + 10 * DAY))
        clock = Clock()
        store.index.index_in_steps(clock)
        self.assertEqual(store.index.steps, 0)  # not in the caller's turn
        clock.advance(0)  # (the real reactor runs one step per turn; Clock runs them all)
        self.assertEqual(store.index.steps, 3)  # 2.5 steps' worth
        self.assertIsNone(store.indexing())
        self.assertFalse(store.index.loop.running)
        hits = yield store.search(Query(words=("old",)), 10 * self.count)
        self.assertEqual(len(hits), self.count + 1)
        self.assertEqual(hits[0].text, "old news, new line")
        rows = indexed(store)
        self.assertEqual(rows, self.count + 1)  # nothing indexed twice
        store.close()
        again = Store(self.path)
        self.addCleanup(again.close)
        self.assertIsNone(again.indexing())  # once: not again at the next start

    def test_each_step_is_bounded(self) -> None:
        store = Store(self.path)
        self.addCleanup(store.close)
        self.assertTrue(store.index.step())
        rows = indexed(store)
        self.assertEqual(rows, index_module.INDEX_STEP)
        self.assertEqual(store.indexing(), int(100 * index_module.INDEX_STEP / self.count))

    @defer.inlineCallbacks
    def test_lines_pruned_before_the_upgrade_reached_them_break_nothing(self):
        """Lines deleted (or pruned) before the upgrade reached them are not told to the index
        (a contentless index told to delete what it never held called itself malformed, and
        every later prune failed); the rest is indexed and found."""
        store = opened(self.path, max_lines=2 * index_module.INDEX_STEP - 100)
        self.addCleanup(store.close)
        failed: list[Exception] = []
        store._upkeep_failed = failed.append  # type: ignore[method-assign]
        gone = self.count - 2 * index_module.INDEX_STEP  # the last half step
        with store._db:  # none of them indexed yet
            store._db.execute("delete from lines where rowid > ?", (2 * index_module.INDEX_STEP,))
        store.line_count = self.count - gone
        store.upkeep(T0 + self.count)  # prunes the oldest 100 (not indexed either)
        self.assertEqual(failed, [])
        while store.index.step():
            pass
        hits = yield store.search(Query(words=("old",)), 10 * self.count)
        self.assertEqual(len(hits), self.count - gone - 100)
        store._db.execute("insert into lines_fts(lines_fts) values ('integrity-check')")

    def test_an_interrupted_upgrade_goes_on_where_it_stopped(self) -> None:
        store = Store(self.path)
        store.index.step()
        store.close()
        again = Store(self.path)
        self.addCleanup(again.close)
        self.assertEqual(again.index.upto, index_module.INDEX_STEP)
        while again.index.step():
            pass
        rows = indexed(again)
        self.assertEqual(rows, self.count)


class _Ignores:
    def entries(self) -> list:
        return []


class _Node:
    def __init__(self, store: object) -> None:
        self.store = store
        self.ignores = _Ignores()


class _Failing:
    def __init__(self, how: str) -> None:
        self.how = how

    def search(self, query: Query, limit: int):
        if self.how == "raise":
            raise sqlite3.DatabaseError("database disk image is malformed")
        return defer.fail(sqlite3.OperationalError("database is locked"))

    def indexing(self) -> None:
        return None


class ChatSearch(TestCase):
    """The verb: a bad query or a failing search is a Refused, never an exception."""

    def chat(self, store: object) -> Chat:
        return Chat(_Node(store))  # type: ignore[arg-type]

    @defer.inlineCallbacks
    def test_hostile_queries_on_the_real_file(self):
        path = self.mktemp()
        os.makedirs(path)
        store = opened(os.path.join(path, "h.sqlite3"))
        self.addCleanup(store.close)
        store.remember(at(1, "hello world"))
        chat = self.chat(store)
        for text in HOSTILE:
            found = yield chat.search(text)
            self.assertIsInstance(found, list, text)
        self.assertEqual(texts((yield chat.search("hello in:#general"))), ["hello world"])

    @defer.inlineCallbacks
    def test_sqlite_errors_become_a_refusal(self):
        for how in ("raise", "fail"):
            found = yield self.chat(_Failing(how)).search("x")
            self.assertIsInstance(found, Refused)
            self.assertIn("search failed", found.why)

    @defer.inlineCallbacks
    def test_a_bad_query_is_a_refusal(self):
        found = yield self.chat(MemoryHistory()).search("x before:soon")
        self.assertIsInstance(found, Refused)
        self.assertIn("YYYY-MM-DD", found.why)


class FaceSearch(TestCase):
    class Plain(CommandFace):
        def __init__(self, chat: FakeChat) -> None:
            self.node = chat
            self.info: list[str] = []

        def show_info(self, lines: list[str]) -> None:
            self.info.extend(lines)

        def show_error(self, text: str) -> None:
            self.info.append("ERROR " + text)

    def test_results_as_info_lines_newest_first(self) -> None:
        chat = FakeChat()
        chat.lines = [at(1, "first build", "ann", when=T0),
                      at(2, "second build", "bob", "ops", T0 + 60)]
        face = self.Plain(chat)
        face.handle_input("/search build")
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(T0 + 60))
        self.assertEqual(face.info[0], "search build: 2 lines, newest first")
        self.assertEqual(face.info[1], f"  [1] {stamp} #ops <bob> second build")
        self.assertIn("[2] ", face.info[2])
        self.assertIn("#general <ann> first build", face.info[2])
        self.assertEqual(face.info[-1], "end of search (/context N: the lines around result N)")
        face.info.clear()
        chat.indexing = 40
        face.handle_input("/search nothing")
        self.assertEqual(face.info, ["no lines found for nothing (indexing: 40% done)"])
        face.info.clear()
        face.handle_input("/search")
        self.assertEqual(face.info, ["ERROR usage: /search WORDS"])


class IrcSearch(test_irc.IrcTestCase):
    """``/msg *p2pchat search WORDS`` (answered by *p2pchat) and ``/quote SEARCH WORDS``
    (answered in notices), over the node's history."""

    BOT = ":*p2pchat!p2pchat@p2pchat PRIVMSG alice :"

    def test_search_by_message_and_by_quote(self) -> None:
        bob = self.link("bob_1", "bob")
        self.hear(bob, "chat", "the build is green")
        self.hear(bob, "chat", "lunch")
        client = self.client()
        client.lines()
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.clock.seconds()))
        client.send("PRIVMSG *p2pchat :search build from:bob")
        self.assertEqual(client.lines(), [
            self.BOT + "search build from:bob: 1 line, newest first",
            self.BOT + f"  {stamp} #general <bob> the build is green",
            self.BOT + "end of search"])
        client.send('SEARCH NEAR( "x', "SEARCH", "SEARCH x before:never")
        self.assertEqual(client.lines(), [
            ':p2pchat NOTICE alice :no lines found for NEAR( "x',
            ":p2pchat NOTICE alice :" + USAGE,
            ":p2pchat NOTICE alice :before:never is not a date; dates are YYYY-MM-DD "
            "(local time)"])


class EveryFace(TestCase):
    """The console and the line face show the same /search answer (face.py)."""

    def test_console_and_line_face(self) -> None:
        from tests.test_faces import Console, Lines

        for face in (Console(), Lines()):
            face.chat.lines = [at(1, "the build is green", "bob", "ops", T0)]
            shown = "\n".join(face.enter("/search green in:#ops"))
            self.assertIn("search green in:#ops: 1 line, newest first", shown)
            self.assertIn("#ops <bob> the build is green", shown)
            self.assertIn("end of search", shown)
