"""ClaimLedger: which claims a node holds, writes, renews and releases (explicit ``now``)."""

from __future__ import annotations

import pytest

from huntgroup.queue.state.claims import ClaimLedger, ClaimWrite
from huntgroup.queue.state.journal import JournalingStore


def ledger() -> ClaimLedger:
    return ClaimLedger(JournalingStore("A"), lease=6.0)


def test_a_granted_claim_follows_the_call_from_ringing_to_talking_to_release() -> None:
    led = ledger()
    store = led.store
    store.set_ringing("m1", "c1", True)
    assert led.changes(now=0.0) == []  # wanted, not granted yet: never written
    led.granted("m1", "c1")
    assert led.changes(now=0.0) == []
    store.set_ringing("m1", "c1", False)
    store.set_active("m1", "c1", True)
    assert led.changes(now=1.0) == [ClaimWrite("m1", "c1", "t", 6.0)]
    assert led.changes(now=1.0) == []
    store.set_active("m1", "c1", False)
    assert led.changes(now=9.0) == [ClaimWrite("m1", "c1", "", 0.0)]
    assert led.held == {}


def test_a_wrap_up_keeps_the_member_claimed_for_its_rest() -> None:
    led = ledger()
    store = led.store
    store.set_active("m1", "c1", True)
    assert led.changes(now=0.0) == [ClaimWrite("m1", "c1", "t", 6.0)]  # a call of its own
    store.set_active("m1", "c1", False)
    store.set_wrap_up_until("m1", 30.0)
    assert led.changes(now=20.0) == [ClaimWrite("m1", "c1", "w", 10.0)]
    assert led.held == {}  # not renewed: it ends with the wrap-up


def test_an_offer_ended_before_its_grant_is_released_at_once() -> None:
    led = ledger()
    led.granted("m1", "c1")  # the store granted it after the core gave up on it
    assert led.changes(now=0.0) == [ClaimWrite("m1", "c1", "", 0.0)]


def test_renewals_renew_every_claim_held_and_lost_claims_are_dropped() -> None:
    led = ledger()
    for member, call in (("m1", "c1"), ("m2", "c2")):
        led.store.set_ringing(member, call, True)
        led.granted(member, call)
    assert led.renewals(now=0.0) == [
        ClaimWrite("m1", "c1", "r", 6.0),
        ClaimWrite("m2", "c2", "r", 6.0),
    ]
    led.lost("m2", "c2")
    assert led.renewals(now=1.0) == [ClaimWrite("m1", "c1", "r", 6.0)]


def test_a_lease_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ClaimLedger(JournalingStore("A"), lease=0)
