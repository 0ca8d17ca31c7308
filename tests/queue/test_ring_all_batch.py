"""Ring all offers its members in one action and one write of the store (issue 14)."""

from __future__ import annotations

from huntgroup.queue.actions import Cancel, Claim, Identity, Ring, RingAll
from huntgroup.queue.events import CallArrived, CallHungUp, MemberAnswered
from huntgroup.queue.state.journal import JournalingStore
from huntgroup.queue.state.store import MemoryStore
from tests.support.core_harness import Harness, m, make_config


def test_ring_all_is_one_action_for_every_free_member() -> None:
    h = Harness(make_config("ring_all", 4))
    h.ev(CallArrived("c1", "G", "0600000001"), at=1.0)
    raw = [a for _, a in h.raw if isinstance(a, Ring | RingAll)]
    assert raw == [RingAll("c1", (m(1), m(2), m(3), m(4)), Identity("0600000001"), "G", 15)]
    assert raw[0].rings() == [
        Ring("c1", m(i), Identity("0600000001"), "G", 15) for i in (1, 2, 3, 4)
    ]
    assert all(h.core.store.ringing(m(i)) == {"c1"} for i in (1, 2, 3, 4))
    assert h.core.offers_of("c1") == [m(1), m(2), m(3), m(4)]


def test_the_members_of_a_ring_all_are_busy_for_the_next_caller_then_free_again() -> None:
    h = Harness(make_config("ring_all", 3))
    h.ev(CallArrived("c1", "G", "0600000001"), at=1.0)
    h.ev(MemberAnswered("c1", m(2)), at=2.0)
    assert h.of(Cancel, "c1") == [Cancel("c1", m(1)), Cancel("c1", m(3))]
    h.ev(CallArrived("c2", "G", "0600000002"), at=3.0)
    assert [a.members for _, a in h.raw if isinstance(a, RingAll) and a.call_id == "c2"] == [
        (m(1), m(3))
    ]
    h.ev(CallHungUp("c2"), at=4.0)
    h.ev(CallHungUp("c1"), at=5.0)
    h.ev(CallArrived("c3", "G", "0600000003"), at=6.0)
    assert h.core.offers_of("c3") == [m(1), m(2), m(3)]


def test_one_member_rung_is_a_ring_and_claims_stay_one_per_member() -> None:
    h = Harness(make_config("ring_all", 1))
    h.ev(CallArrived("c1", "G", "0600000001"), at=1.0)
    assert [type(a) for _, a in h.raw if isinstance(a, Ring | RingAll)] == [Ring]
    claiming = Harness(make_config("ring_all", 3))
    claiming.core.claims = True
    claiming.ev(CallArrived("c1", "G", "0600000001"), at=1.0)
    assert [a.member for a in claiming.of(Claim)] == [m(1), m(2), m(3)]
    assert not claiming.of(Ring) and not claiming.of(RingAll)


def test_ringing_many_is_the_same_as_each_write_and_a_journal_records_each() -> None:
    one, many = MemoryStore(), MemoryStore()
    for member in ("a", "b"):
        one.set_ringing(member, "c1", True)
    many.set_ringing_many(["a", "b"], "c1")
    assert [many.ringing(x) for x in "ab"] == [one.ringing(x) for x in "ab"] == [{"c1"}] * 2
    assert many.touched == one.touched == {"a", "b"}
    journal = JournalingStore("n1")
    journal.set_ringing_many(["a", "b"], "c1")
    assert journal.ringing("a") == journal.ringing("b") == {"c1"}
    assert journal.pending == 2  # one journal entry per member rung
