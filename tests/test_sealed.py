"""Sealed private lines, the pure parts: sealing and opening (sealed.py), what carriers hold
and refuse (carrier.py), the pins that keep the keys sealed to (identity.py)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from p2pchat import wire
from p2pchat.carrier import SEALED_AGE, Bag, Opened
from p2pchat.catchup import Delivery
from p2pchat.identity import Identity, Pins, peer_id_for
from p2pchat.relay import sign_line
from p2pchat.sealed import (LINE, MAX_BODY_CHARS, MAX_SKEW, RECEIPT, Item, Sealer, check_time,
                            parse_item, verify)
from p2pchat.wire import Message, WireError

NOW = 1_700_000_000.0
ALICE, CAROL, MALLORY = Identity.generate(), Identity.generate(), Identity.generate()


def private_line(author: Identity, to: Identity, text: str = "meet at noon",
                 **fields: object) -> bytes:
    """``author``'s signed private line to ``to``, as sent (the bytes a sealed item holds)."""
    base: dict = dict(id="m1", type="private", sender_id=author.peer_id, username="alice",
                      content=text, timestamp=NOW, sequence=7, metadata={"to": to.peer_id})
    base.update(fields)
    msg = Message(**base)
    msg.metadata["sig"] = sign_line(author, msg)
    return wire.encode_message(msg)[:-1]


def sealed(text: str = "meet at noon", author: Identity = ALICE) -> Item:
    return Sealer(author).seal(private_line(author, CAROL, text), CAROL.peer_id,
                               CAROL.public_key_b64(), NOW)


# --- sealing and opening ----------------------------------------------------------------------


def test_a_sealed_line_opens_for_its_recipient_only() -> None:
    item = sealed()
    assert verify(item) == ALICE.fingerprint
    assert (item.kind, item.to, item.author, item.pk) == (
        LINE, CAROL.peer_id, ALICE.peer_id, ALICE.public_key_b64())
    msg, raw = Sealer(CAROL).open(item)
    assert (msg.content, msg.sender_id, raw) == ("meet at noon", ALICE.peer_id,
                                                 private_line(ALICE, CAROL))
    assert "meet at noon" not in json.dumps(item.metadata())  # a carrier sees ciphertext
    with pytest.raises(WireError, match="not a sealed line to us"):
        Sealer(MALLORY).open(item)
    # ... nor with the item readdressed to her (the signature would fail first, at carriers)
    with pytest.raises(WireError, match="can't be opened"):
        Sealer(MALLORY).open(dataclasses.replace(item, to=MALLORY.peer_id))


def test_an_item_travels_as_its_metadata() -> None:
    item = sealed()
    through = wire.parse_message(wire.encode_message(
        Message(id="x", type="sealed", sender_id="bob", metadata=item.metadata()))[:-1])
    assert parse_item(through.metadata) == item


@pytest.mark.parametrize("change", [
    {"to": MALLORY.peer_id}, {"author": MALLORY.peer_id}, {"id": "other"}, {"ts": NOW + 1},
    {"kind": RECEIPT}, {"pk": MALLORY.public_key_b64()}])
def test_a_field_changed_is_refused(change: dict) -> None:
    with pytest.raises(WireError):
        verify(dataclasses.replace(sealed(), **change))


def test_an_item_signed_by_another_key_in_the_authors_name_is_refused() -> None:
    forged = dataclasses.replace(sealed(author=MALLORY), author=ALICE.peer_id, sig="")
    forged = dataclasses.replace(forged, sig=MALLORY.sign(forged.payload()))
    with pytest.raises(WireError, match="not its author's"):
        verify(forged)


def test_tampered_ciphertext_or_signature_refused() -> None:
    item = sealed()
    body = item.body[:10] + ("A" if item.body[10] != "A" else "B") + item.body[11:]
    with pytest.raises(WireError, match="signature"):
        verify(dataclasses.replace(item, body=body))
    sig = ("A" if item.sig[0] != "A" else "B") + item.sig[1:]
    with pytest.raises(WireError, match="signature"):
        verify(dataclasses.replace(item, sig=sig))
    with pytest.raises(WireError):
        verify(dataclasses.replace(item, sig="not base64!"))


def test_the_line_inside_must_be_its_authors_signed_line_to_us() -> None:
    # mallory seals alice's words under her own item: the line inside is not hers
    forged = Sealer(MALLORY).seal(private_line(ALICE, CAROL), CAROL.peer_id,
                                  CAROL.public_key_b64(), NOW)
    verify(forged)  # the item itself is mallory's, and checks out
    with pytest.raises(WireError, match="not a private line of its author"):
        Sealer(CAROL).open(forged)
    # a line claiming to be mallory's but signed by another key
    unsigned = private_line(ALICE, CAROL, sender_id=MALLORY.peer_id)
    item = Sealer(MALLORY).seal(unsigned, CAROL.peer_id, CAROL.public_key_b64(), NOW)
    with pytest.raises(WireError, match="not signed by its author"):
        Sealer(CAROL).open(item)
    # alice's own line to someone else, sealed to carol
    other = Sealer(ALICE).seal(private_line(ALICE, MALLORY), CAROL.peer_id,
                               CAROL.public_key_b64(), NOW)
    with pytest.raises(WireError, match="not to us"):
        Sealer(CAROL).open(other)
    # a room line is not a private line
    room = Sealer(ALICE).seal(private_line(ALICE, CAROL, type="chat"), CAROL.peer_id,
                              CAROL.public_key_b64(), NOW)
    with pytest.raises(WireError, match="not a private line"):
        Sealer(CAROL).open(room)


def test_never_sealed_to_a_key_that_is_not_the_recipients() -> None:
    with pytest.raises(WireError, match="not the recipient's"):
        Sealer(ALICE).seal(private_line(ALICE, CAROL), CAROL.peer_id,
                           MALLORY.public_key_b64(), NOW)


def test_a_line_too_long_to_seal_is_refused() -> None:
    with pytest.raises(WireError, match="too long"):
        Sealer(ALICE).seal(b"x" * MAX_BODY_CHARS, CAROL.peer_id, CAROL.public_key_b64(), NOW)


def test_a_receipt_is_the_recipients_signed_item_to_the_author() -> None:
    item = sealed()
    receipt = Sealer(CAROL).receipt(item, NOW + 5)
    assert (receipt.kind, receipt.to, receipt.author, receipt.body) == (
        RECEIPT, ALICE.peer_id, CAROL.peer_id, item.id)
    assert verify(receipt) == CAROL.fingerprint
    assert parse_item(receipt.metadata()) == receipt


@pytest.mark.parametrize("change", [
    {"kind": "gift"}, {"id": ""}, {"id": "x" * 200}, {"ts": True}, {"ts": float("nan")},
    {"ts": "now"}, {"body": "x" * (MAX_BODY_CHARS + 1)}, {"sig": None}, {"from": 5}])
def test_malformed_items_refused(change: dict) -> None:
    meta = {**sealed().metadata(), **change}
    with pytest.raises(WireError):
        parse_item(meta)


def test_a_receipt_body_is_an_id() -> None:
    meta = {**Sealer(CAROL).receipt(sealed(), NOW).metadata(), "body": "x" * 1000}
    with pytest.raises(WireError):
        parse_item(meta)


def test_old_and_future_items_refused() -> None:
    item = sealed()
    check_time(item, NOW + SEALED_AGE - 1, SEALED_AGE)
    with pytest.raises(WireError, match="older"):
        check_time(item, NOW + SEALED_AGE + 1, SEALED_AGE)
    with pytest.raises(WireError, match="future"):
        check_time(item, NOW - MAX_SKEW - 1, SEALED_AGE)


# --- carriers' bags ---------------------------------------------------------------------------


def item_for(to: str, n: int, ts: float = NOW, body: str = "x") -> Item:
    return Item(LINE, f"i{to}{n}", to, "author", "pk", ts, body, "sig")


def test_a_bag_holds_so_many_items_per_recipient() -> None:
    bag = Bag(per_peer=3)
    assert [bag.add(item_for("carol", n), NOW).held for n in range(4)] == [True] * 3 + [False]
    assert "3 items are held" in bag.add(item_for("carol", 9), NOW).why
    assert bag.add(item_for("dave", 0), NOW).held  # another recipient still has room
    assert [i.id for i in bag.for_peer("carol")] == ["icarol0", "icarol1", "icarol2"]
    assert not bag.add(item_for("carol", 0), NOW).held  # held already


def test_a_full_bag_drops_the_oldest_of_the_most_crowded_recipient() -> None:
    bag = Bag(per_peer=10, total=5)
    for n in range(4):
        bag.add(item_for("flood", n), NOW)
    bag.add(item_for("carol", 0), NOW)
    taken = bag.add(item_for("dave", 0), NOW)
    assert taken.held and [i.id for i in taken.dropped] == ["iflood0"]
    assert len(bag) == 5 and "icarol0" in bag and "iflood0" not in bag


def test_a_bag_is_bounded_in_bytes() -> None:
    one = item_for("a", 0).size
    bag = Bag(total_bytes=3 * one)
    for n in range(3):
        assert bag.add(item_for(f"p{n}", 0), NOW).held
    taken = bag.add(item_for("p9", 0), NOW)
    assert taken.held and len(taken.dropped) == 1 and bag.bytes <= 3 * one
    assert not bag.add(item_for("big", 0, body="x" * 4 * one), NOW).held


def test_a_bag_refuses_and_drops_what_is_too_old() -> None:
    bag = Bag(max_age=100.0)
    assert not bag.add(item_for("carol", 0, ts=NOW - 101), NOW).held
    bag.add(item_for("carol", 1, ts=NOW - 50), NOW)
    bag.add(item_for("carol", 2, ts=NOW), NOW)
    assert [i.id for i in bag.expire(NOW + 60)] == ["icarol1"]
    assert [i.id for i in bag.all()] == ["icarol2"] and bag.bytes == item_for("c", 0).size


def test_only_the_recipients_receipt_drops_a_line() -> None:
    bag = Bag()
    line = sealed()
    bag.add(line, NOW)
    forged = Sealer(MALLORY).receipt(line, NOW)  # mallory is not its recipient
    assert bag.answered(forged) is None and line.id in bag
    assert bag.answered(Sealer(CAROL).receipt(line, NOW)) == line
    assert line.id not in bag and len(bag) == 0


def test_opened_ids_refuse_replays_for_as_long_as_items_are_carried() -> None:
    opened = Opened(limit=3, max_age=100.0)
    opened.add("a", NOW)
    assert "a" in opened and "b" not in opened
    assert opened.add("b", NOW + 10) == [] and opened.add("c", NOW + 20) == []
    assert opened.add("d", NOW + 30) == ["a"]
    assert opened.expire(NOW + 115) == ["b"] and len(opened) == 2


# --- delivery by receipt ------------------------------------------------------------------


def test_a_receipt_delivers_one_line_once() -> None:
    delivery = Delivery()
    delivery.expect(5, "m5", {"carol"}, private=True)
    delivery.expect(6, "m6", {"carol", "dave"})
    assert delivery.received(5, "dave") is None
    assert delivery.received(5, "carol") == "m5"
    assert delivery.received(5, "carol") is None  # told once
    assert delivery.private_waiting("carol") == 0
    assert delivery.acked("carol", 5) == []  # the ack after it tells nothing again
    assert delivery.received(6, "carol") is None and delivery.acked("dave", 6) == ["m6"]


# --- pins keep keys ---------------------------------------------------------------------------


def test_pins_keep_the_key_and_find_it_by_peer_id(tmp_path) -> None:
    path = str(tmp_path / "pins.json")
    pins = Pins(path)
    assert pins.pin("carol", CAROL.fingerprint, pk=CAROL.public_key_b64())
    assert pins.public_key(CAROL.peer_id) == CAROL.public_key_b64()
    assert pins.public_key(ALICE.peer_id) is None
    again = Pins(path)
    assert again.public_key(CAROL.peer_id) == CAROL.public_key_b64()
    assert json.loads((tmp_path / "pins.json").read_text())["carol"]["pk"] == \
        CAROL.public_key_b64()


def test_a_key_that_is_not_the_pinned_ones_is_never_kept(tmp_path) -> None:
    pins = Pins(str(tmp_path / "pins.json"))
    pins.pin("carol", CAROL.fingerprint, pk=MALLORY.public_key_b64())
    pins.touch("carol", CAROL.fingerprint, MALLORY.public_key_b64())
    assert pins.public_key(CAROL.peer_id) is None
    (tmp_path / "bad.json").write_text(json.dumps(
        {"carol": {"fp": CAROL.fingerprint, "seen": NOW, "pk": MALLORY.public_key_b64()}}))
    assert Pins(str(tmp_path / "bad.json")).public_key(CAROL.peer_id) is None


@pytest.mark.parametrize("old", [
    {"carol": CAROL.fingerprint},  # the first format
    {"carol": {"fp": CAROL.fingerprint, "seen": NOW, "trusted": False}},  # before keys
])
def test_pins_of_earlier_formats_load_and_take_the_key_when_seen(tmp_path, old: dict) -> None:
    path = tmp_path / "pins.json"
    path.write_text(json.dumps(old))
    pins = Pins(str(path), now=lambda: NOW)
    assert pins.get("carol") == CAROL.fingerprint and pins.public_key(CAROL.peer_id) is None
    pins.touch("carol", CAROL.fingerprint, CAROL.public_key_b64())  # carol links again
    assert pins.public_key(CAROL.peer_id) == CAROL.public_key_b64()
    saved = json.loads(path.read_text())["carol"]
    assert saved["fp"] == CAROL.fingerprint and saved["pk"] == CAROL.public_key_b64()
    assert peer_id_for(saved["fp"]) == CAROL.peer_id
