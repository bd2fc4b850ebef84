"""The handshake machine on its own: events in, actions out, no socket, no node, no clock."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from p2pchat import handshake as hs
from p2pchat.handshake import HANDSHAKE_TIMEOUT, Handshake, Stage
from p2pchat.wire import CAP_OURS, CAP_TLS, JOIN, STARTTLS, Message

FP = "ab" * 32


def msg(type: str = JOIN, sender: str = "zed_1", fp: str = "", caps: tuple[str, ...] = (),
        content: str = "") -> Message:
    return Message(id="m1", type=type, sender_id=sender, username="zed", fp=fp, caps=caps,
                   content=content)


def kinds(actions: list[hs.Action]) -> list[type]:
    return [type(a) for a in actions]


class Listener(TestCase):
    def test_a_plain_join_asks_the_node_then_goes_live_and_hands_the_join_on(self) -> None:
        h = Handshake(outgoing=False, have_key=True)
        self.assertEqual(h.connected(), [hs.ArmTimer(HANDSHAKE_TIMEOUT)])
        join = msg(caps=(CAP_OURS,))
        acts = h.receive(join)
        self.assertEqual(acts, [hs.Learn("zed_1", "zed", (CAP_OURS,)),
                                hs.Offer("zed_1", "zed", "")])
        self.assertIs(h.stage, Stage.OFFERED)
        self.assertEqual(h.offered(None), [hs.GoLive()])
        self.assertFalse(h.ready)
        self.assertEqual(h.linked(True), [hs.Deliver(join)])
        self.assertTrue(h.ready)
        self.assertEqual(h.receive(msg(type="chat")), [])  # a live link's lines don't come here
        self.assertTrue(h.lost())
        self.assertIs(h.stage, Stage.LOST)
        self.assertTrue(h.was_ready)

    def test_a_join_with_a_key_gets_starttls_and_tls_as_server(self) -> None:
        h = Handshake(outgoing=False, have_key=True)
        h.connected()
        acts = h.receive(msg(fp=FP, caps=(CAP_OURS, CAP_TLS)))
        self.assertEqual(acts[-1], hs.Offer("zed_1", "zed", FP))
        self.assertEqual(h.offered(None), [hs.SendStartTLS(), hs.StartTLS(server=True)])
        self.assertIs(h.stage, Stage.TLS)
        self.assertEqual(h.tls_done(FP), [hs.Proven(FP), hs.GoLive()])
        self.assertEqual(kinds(h.linked(True)), [hs.Deliver])

    def test_without_a_key_of_ours_a_tls_peer_is_plain(self) -> None:
        h = Handshake(outgoing=False, have_key=False)
        acts = h.receive(msg(fp=FP, caps=(CAP_TLS,)))
        self.assertEqual(acts[-1], hs.Offer("zed_1", "zed", ""))
        self.assertEqual(h.offered(None), [hs.GoLive()])

    def test_plaintext_after_the_join_of_a_tls_peer_is_injection(self) -> None:
        h = Handshake(outgoing=False, have_key=True)
        h.receive(msg(fp=FP, caps=(CAP_TLS,)), more=True)
        acts = h.offered(None)
        self.assertEqual(kinds(acts), [hs.Note, hs.Drop])
        self.assertEqual(acts[0].kind, "plaintext after starttls")
        self.assertTrue(acts[1].abort)
        self.assertIs(h.stage, Stage.REFUSED)
        self.assertNotIn(hs.StartTLS(server=True), acts)

    def test_more_lines_after_a_plain_join_are_fine(self) -> None:
        h = Handshake(outgoing=False, have_key=True)
        h.receive(msg(caps=(CAP_OURS,)), more=True)
        self.assertEqual(h.offered(None), [hs.GoLive()])

    def test_the_node_refusing_the_offer_refuses_before_tls(self) -> None:
        h = Handshake(outgoing=False, have_key=True)
        h.receive(msg(fp=FP, caps=(CAP_TLS,)))
        self.assertEqual(h.offered("no slot"), [hs.Refuse("no slot")])
        self.assertIs(h.stage, Stage.REFUSED)
        self.assertEqual(h.tls_done(FP), [])
        self.assertFalse(h.lost())
        self.assertFalse(h.was_ready)

    def test_a_first_line_that_is_not_a_join_closes(self) -> None:
        h = Handshake(outgoing=False, have_key=True)
        acts = h.receive(msg(type="chat"))
        self.assertEqual(kinds(acts), [hs.Note, hs.Drop])
        self.assertFalse(acts[1].abort)
        self.assertEqual(h.receive(msg()), [])  # a join after it is not read

    def test_a_bad_first_line_closes_a_bad_later_one_does_not(self) -> None:
        h = Handshake(outgoing=False, have_key=True)
        self.assertEqual(h.bad_line(), [hs.Drop(abort=False)])
        other = Handshake(outgoing=False, have_key=True)
        other.receive(msg(fp=FP, caps=(CAP_TLS,)))
        other.offered(None)
        self.assertEqual(other.bad_line(), [])

    def test_a_wrong_certificate_is_dropped(self) -> None:
        for shown in ("", "cd" * 32):
            h = Handshake(outgoing=False, have_key=True)
            h.receive(msg(fp=FP, caps=(CAP_TLS,)))
            h.offered(None)
            acts = h.tls_done(shown)
            self.assertEqual(kinds(acts), [hs.Note, hs.Drop])
            self.assertEqual(acts[0].kind, "wrong certificate")
            self.assertIs(h.stage, Stage.REFUSED)

    def test_the_node_not_taking_the_link_leaves_it_refused(self) -> None:
        h = Handshake(outgoing=False, have_key=False)
        h.receive(msg())
        h.offered(None)
        self.assertEqual(h.linked(False), [])
        self.assertIs(h.stage, Stage.REFUSED)
        self.assertIsNone(h.first)

    def test_timeout_before_ready_only(self) -> None:
        h = Handshake(outgoing=False, have_key=True, timeout=3.0)
        acts = h.timeout()
        self.assertEqual(kinds(acts), [hs.Note, hs.Drop])
        self.assertEqual(acts[0].fields, {"t": 3.0})
        # heard within the timeout, or a timer that rang late (we were starved): re-armed
        slow = Handshake(outgoing=False, have_key=True, timeout=3.0)
        self.assertEqual(slow.timeout(quiet=1.0, age=10.0), [hs.ArmTimer(after=2.0)])
        self.assertEqual(slow.timeout(quiet=5.0, age=5.0, late=2.0), [hs.ArmTimer(3.0)])
        self.assertEqual(kinds(slow.timeout(quiet=5.0, age=5.0, late=0.1)), [hs.Note, hs.Drop])
        # past the hard limit, nothing re-arms it
        old = Handshake(outgoing=False, have_key=True, timeout=3.0)
        self.assertEqual(kinds(old.timeout(quiet=0.0, age=3.0 * hs.HANDSHAKE_MAX_FACTOR,
                                           late=5.0)), [hs.Note, hs.Drop])
        live = Handshake(outgoing=False, have_key=False)
        live.receive(msg())
        live.offered(None)
        live.linked(True)
        self.assertEqual(live.timeout(), [])
        self.assertTrue(live.ready)


class Dialer(TestCase):
    def test_plain_dial_sends_its_join_and_goes_live(self) -> None:
        h = Handshake(outgoing=True, have_key=True, peer_id="zed_1", caps=(CAP_OURS,))
        self.assertEqual(h.connected(), [hs.SendJoin(), hs.GoLive()])
        self.assertEqual(h.linked(True), [])  # no held line on the dialer's side
        self.assertTrue(h.ready)

    def test_tls_dial_waits_for_starttls_then_tls_as_client(self) -> None:
        h = Handshake(outgoing=True, have_key=True, peer_id="zed_1", caps=(CAP_TLS,),
                      expect_fp=FP)
        self.assertEqual(h.connected(), [hs.SendJoin(), hs.ArmTimer(HANDSHAKE_TIMEOUT)])
        self.assertIs(h.stage, Stage.AWAIT_STARTTLS)
        self.assertEqual(h.receive(msg(type=STARTTLS)), [hs.StartTLS(server=False)])
        self.assertEqual(h.tls_done(FP), [hs.Proven(FP), hs.GoLive()])

    def test_the_fingerprint_of_starttls_is_used_when_the_beacon_had_none(self) -> None:
        h = Handshake(outgoing=True, have_key=True, peer_id="zed_1", caps=(CAP_TLS,))
        h.connected()
        h.receive(msg(type=STARTTLS, fp=FP))
        self.assertEqual(h.expect_fp, FP)
        self.assertEqual(kinds(h.tls_done(FP)), [hs.Proven, hs.GoLive])

    def test_plaintext_after_starttls_is_injection(self) -> None:
        """The dialer-side STARTTLS injection guard: a line queued behind ``starttls`` would
        be read as if TLS protected it."""
        h = Handshake(outgoing=True, have_key=True, peer_id="zed_1", caps=(CAP_TLS,),
                      expect_fp=FP)
        h.connected()
        acts = h.receive(msg(type=STARTTLS), more=True)
        self.assertEqual(kinds(acts), [hs.Note, hs.Drop])
        self.assertEqual(acts[0].kind, "plaintext after starttls")
        self.assertIs(h.stage, Stage.REFUSED)
        self.assertEqual(h.tls_done(FP), [])

    def test_anything_but_starttls_from_the_peer_is_dropped(self) -> None:
        for line in (msg(type="chat"), msg(type=STARTTLS, sender="other_1")):
            h = Handshake(outgoing=True, have_key=True, peer_id="zed_1", caps=(CAP_TLS,))
            h.connected()
            acts = h.receive(line)
            self.assertEqual(kinds(acts), [hs.Note, hs.Drop])
            self.assertEqual(acts[0].kind, "not starttls")

    def test_a_refused_line_closes_and_says_why(self) -> None:
        h = Handshake(outgoing=True, have_key=True, peer_id="zed_1", caps=(CAP_TLS,))
        h.connected()
        acts = h.refused_line(msg(type="refused", content="no slot\x1b[2J"))
        self.assertEqual(acts[-1], hs.Close("it refused the link: no slot\ufffd[2J"))
        self.assertIs(h.stage, Stage.REFUSED)
        self.assertEqual(h.refused_by, "no slot\ufffd[2J")  # shown, never obeyed
        self.assertEqual(Handshake(True, True, "zed_1").refused_line(msg(type="refused"))[-1],
                         hs.Close("it refused the link: no reason given"))
