"""Transfers in the group core: blind (CallTransferred) and attended (CallsJoined)."""

from __future__ import annotations

from typing import Any

import pytest

from huntgroup.config.models import MemberConfig
from huntgroup.queue.actions import (
    Bridge,
    Forward,
    Hold,
    Identity,
    Reroute,
    Ring,
    Ringback,
)
from huntgroup.queue.core import CallState
from huntgroup.queue.events import (
    CallAnswered,
    CallArrived,
    CallHungUp,
    CallsJoined,
    CallTransferred,
    DirectCallArrived,
    MemberAnswered,
    OutgoingCallStarted,
)
from tests.support.core_harness import Harness, m, make_config

G_PILOT, H_PILOT = "0140000000", "0150000000"
CALLER = Identity("0611111111", "Caller")


def group(name: str, pilot: str, *members: int, **options: Any) -> dict[str, Any]:
    return {
        "name": name,
        "pilot": pilot,
        "members": [MemberConfig(line=m(i), position=p) for p, i in enumerate(members, 1)],
        **options,
    }


def connected(h: Harness, call: str, member: str, *, at: float) -> None:
    h.ev(CallArrived(call, "G", CALLER.number, CALLER.display_name), at=at)
    assert h.ev(MemberAnswered(call, member), at=at) == [Bridge(call, member)]


def test_blind_transfer_to_a_pilot_frees_the_member_and_enters_that_group() -> None:
    cfg = make_config("linear", members=1, wrap_up=5, groups=[group("H", H_PILOT, 2)])
    h = Harness(cfg)
    connected(h, "c", m(1), at=0)
    out = h.ev(CallTransferred("c", m(1), H_PILOT), at=40)
    assert out == [
        Reroute("c", H_PILOT, "transfer", "H", ()),
        Ringback("c"),
        Ring("c", m(2), CALLER, "H", 15),
    ]
    # m1's talk time stopped at the transfer; it is in wrap-up, then free
    assert h.core.talk_time("G", m(1), now=100) == pytest.approx(40)
    assert not h.core.is_free("G", m(1), now=44)
    assert h.core.is_free("G", m(1), now=45)
    assert h.core.group_of_call("c") == "H"
    # m2 starts its own talk time when it answers
    assert h.ev(MemberAnswered("c", m(2)), at=50) == [Bridge("c", m(2))]
    assert h.core.talk_time("H", m(2), now=60) == pytest.approx(10)
    h.ev(CallHungUp("c"), at=70)
    assert h.core.talk_time("G", m(1), now=100) == pytest.approx(40)
    assert h.core.talk_time("H", m(2), now=100) == pytest.approx(20)
    assert h.core.call_ids() == []


def test_a_transferred_call_queues_fifo_by_the_time_of_the_transfer() -> None:
    cfg = make_config(
        "linear",
        members=1,
        groups=[group("H", H_PILOT, 2, queue={"max_length": 5, "music": "/moh/h.wav"})],
    )
    h = Harness(cfg)
    h.ev(OutgoingCallStarted("busy", m(2)))
    h.ev(CallAnswered("busy"))
    h.ev(CallArrived("early", "H", "0622222222"), at=1)  # waits in H before the transfer
    connected(h, "c", m(1), at=2)
    assert h.ev(CallTransferred("c", m(1), H_PILOT), at=10) == [
        Reroute("c", H_PILOT, "transfer", "H", ()),
        Hold("c", True, "/moh/h.wav"),  # the caller hears H's music
    ]
    h.ev(CallArrived("late", "H", "0633333333"), at=11)
    assert h.core.queue("H") == ["early", "c", "late"]
    h.ev(CallHungUp("busy"), at=20)
    assert [call for _, call, member in h.rings(since=20)] == ["early"]


def test_blind_transfer_back_to_the_group_it_came_from_is_no_loop() -> None:
    h = Harness(make_config("linear", members=2, wrap_up=10))
    connected(h, "c", m(1), at=0)
    assert h.ev(CallTransferred("c", m(1), G_PILOT), at=5) == [
        Reroute("c", G_PILOT, "transfer", "G", ()),
        Ringback("c"),
        Ring("c", m(2), CALLER, "G", 15),  # m1 is in its wrap-up
    ]
    assert h.core.call_state("c") is CallState.HUNTING


def test_blind_transfer_to_a_line_rings_that_line() -> None:
    cfg = make_config("linear", members=1, lines=[{"number": m(4), "no_answer_timeout": 7}])
    h = Harness(cfg)
    connected(h, "c", m(1), at=0)
    assert h.ev(CallTransferred("c", m(1), m(4)), at=3) == [
        Reroute("c", m(4), "transfer", None, ()),
        Ring("c", m(4), CALLER, None, 7),
    ]
    assert h.ev(MemberAnswered("c", m(4)), at=4) == [Bridge("c", m(4))]


def test_blind_transfer_to_an_outside_number_leaves_the_core() -> None:
    h = Harness(make_config("linear", members=1))
    connected(h, "c", m(1), at=0)
    assert h.ev(CallTransferred("c", m(1), "0699999999"), at=3) == [
        Forward("c", "0699999999", "transfer")
    ]
    assert h.core.call_ids() == []
    assert h.core.is_free("G", m(1), now=3)


@pytest.mark.parametrize(
    "event",
    [
        CallTransferred("c", m(2), H_PILOT),  # not the member connected to it
        CallTransferred("nope", m(1), H_PILOT),  # no such call
        CallTransferred("c", m(1), ""),  # no target
        CallsJoined("c", m(1), "nope"),  # no consultation call
        CallsJoined("c", m(2), "c"),
    ],
)
def test_a_transfer_that_does_not_match_changes_nothing(event: Any) -> None:
    cfg = make_config("linear", members=2, groups=[group("H", H_PILOT, 3)])
    h = Harness(cfg)
    connected(h, "c", m(1), at=0)
    assert h.ev(event, at=5) == []
    assert h.core.call_state("c") is CallState.CONNECTED
    assert h.core.store.active_calls(m(1)) == frozenset({"c"})


def test_a_transfer_of_a_call_still_ringing_changes_nothing() -> None:
    h = Harness(make_config("linear", members=1))
    h.ev(CallArrived("c", "G", CALLER.number))
    assert h.ev(CallTransferred("c", m(1), H_PILOT), at=1) == []
    assert h.core.offers_of("c") == [m(1)]


def test_attended_transfer_frees_the_transferor_and_keeps_the_consultation_running() -> None:
    cfg = make_config("linear", members=1, wrap_up=5, groups=[group("H", H_PILOT, 2)])
    h = Harness(cfg)
    connected(h, "c1", m(1), at=0)
    # m1 consults: it calls H's pilot itself; m2 answers at 12
    h.ev(CallArrived("c2", "H", m(1), "", True), at=10)
    assert h.ev(MemberAnswered("c2", m(2)), at=12) == [Bridge("c2", m(2))]
    assert h.ev(CallsJoined("c1", m(1), "c2"), at=30) == []
    assert h.core.call_ids() == ["c2"]
    assert h.core.store.active_calls(m(1)) == frozenset()
    assert h.core.talk_time("G", m(1), now=100) == pytest.approx(30)
    assert not h.core.is_free("G", m(1), now=34)  # its wrap-up
    # m2's talk time runs on from its own answer
    assert h.core.talk_time("H", m(2), now=40) == pytest.approx(28)
    h.ev(CallHungUp("c2"), at=50)
    assert h.core.talk_time("H", m(2), now=100) == pytest.approx(38)
    assert h.core.call_ids() == []


def test_attended_transfer_to_a_line_called_directly() -> None:
    h = Harness(make_config("linear", members=1))
    connected(h, "c1", m(1), at=0)
    h.ev(DirectCallArrived("c2", m(5), m(1), "", True), at=1)
    h.ev(MemberAnswered("c2", m(5)), at=2)
    h.ev(CallsJoined("c1", m(1), "c2"), at=3)
    assert h.core.call_ids() == ["c2"]
    assert h.core.store.active_calls(m(5)) == frozenset({"c2"})
    assert h.core.is_free("G", m(1), now=3)
