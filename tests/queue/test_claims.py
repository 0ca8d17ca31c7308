"""The group core's claim step (several nodes): Claim before Ring, granted or refused."""

from __future__ import annotations

from typing import Any

from huntgroup.config.models import Config, GroupConfig, LineConfig, MemberConfig
from huntgroup.queue.actions import Action, Cancel, Claim, Hold, Release, Ring
from huntgroup.queue.core import RoutingCore
from huntgroup.queue.events import (
    CallArrived,
    ClaimGranted,
    ClaimRefused,
    DirectCallArrived,
    MemberAnswered,
)
from huntgroup.queue.state.store import MemoryStore

LINES = ["0100000001", "0100000002", "0100000003"]


def config(algorithm: str = "linear", **group: Any) -> Config:
    fields: dict[str, Any] = {
        "name": "G",
        "pilot": "0140000000",
        "algorithm": algorithm,
        "members": [MemberConfig(line=n, position=i + 1) for i, n in enumerate(LINES)],
    }
    fields.update(group)
    lines = tuple(LineConfig(number=n, password="pw") for n in LINES)
    return Config(lines=lines, groups=(GroupConfig(**fields),))


def core(algorithm: str = "linear", *, claims: bool = True, **group: Any) -> RoutingCore:
    return RoutingCore(config(algorithm, **group), now=0.0, store=MemoryStore(), claims=claims)


def of(kind: type, actions: list[Action]) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def claims(actions: list[Action]) -> list[tuple[str, str, str | None, bool]]:
    return [(a.call_id, a.member, a.group, a.call_waiting) for a in of(Claim, actions)]


def test_without_claims_the_core_rings_at_once() -> None:
    c = core(claims=False)
    out = c.handle(CallArrived("c1", "G", "0611"), now=1.0)
    assert [a.member for a in of(Ring, out)] == [LINES[0]]
    assert not of(Claim, out)


def test_an_offer_claims_first_and_rings_once_granted() -> None:
    c = core()
    out = c.handle(CallArrived("c1", "G", "0611"), now=1.0)
    assert claims(out) == [("c1", LINES[0], "G", False)]
    assert not of(Ring, out)
    assert c.store.is_ringing(LINES[0])  # reserved here while the claim is asked
    out = c.handle(ClaimGranted("c1", LINES[0]), now=1.01)
    assert [(a.call_id, a.member) for a in of(Ring, out)] == [("c1", LINES[0])]
    out = c.handle(ClaimGranted("c1", LINES[0]), now=1.02)
    assert out == []  # a second answer changes nothing


def test_a_refused_claim_moves_on_without_penalty() -> None:
    c = core()
    c.handle(CallArrived("c1", "G", "0611"), now=1.0)
    out = c.handle(ClaimRefused("c1", LINES[0]), now=1.01)
    assert not of(Cancel, out)  # nothing was sent to it
    assert claims(out) == [("c1", LINES[1], "G", False)]
    assert not c.store.is_ringing(LINES[0])
    assert c.availability.is_reachable(LINES[0], now=1.01)  # no back-off


def test_a_claim_never_answered_ends_with_the_offer_timer() -> None:
    c = core(no_answer_timeout=10)
    c.handle(CallArrived("c1", "G", "0611"), now=0.0)
    assert c.get_timer() == 10.0
    out = c.handle_timer(now=10.0)
    assert claims(out) == [("c1", LINES[1], "G", False)]
    assert not c.store.is_ringing(LINES[0])
    assert c.handle(ClaimGranted("c1", LINES[0]), now=10.5) == []  # too late: no Ring


def test_ring_all_rings_only_the_members_granted() -> None:
    c = core("ring_all", call_waiting=True)
    out = c.handle(CallArrived("c1", "G", "0611"), now=1.0)
    assert [a.member for a in of(Claim, out)] == LINES
    assert all(a.call_waiting for a in of(Claim, out))
    assert of(Ring, c.handle(ClaimGranted("c1", LINES[0]), now=1.01))
    assert c.handle(ClaimRefused("c1", LINES[1]), now=1.01) == []  # others still ring
    assert of(Ring, c.handle(ClaimGranted("c1", LINES[2]), now=1.01))
    out = c.handle(MemberAnswered("c1", LINES[2]), now=2.0)
    assert [a.member for a in of(Cancel, out)] == [LINES[0]]


def test_a_claim_lost_while_ringing_cancels_the_offer() -> None:
    c = core()
    c.handle(CallArrived("c1", "G", "0611"), now=1.0)
    c.handle(ClaimGranted("c1", LINES[0]), now=1.0)
    out = c.handle(ClaimRefused("c1", LINES[0]), now=3.0)  # after a Redis outage
    assert of(Cancel, out) == [Cancel("c1", LINES[0])]
    assert claims(out) == [("c1", LINES[1], "G", False)]


def test_a_direct_call_whose_line_is_claimed_elsewhere_is_busy() -> None:
    c = core()
    out = c.handle(DirectCallArrived("d1", LINES[0], "0611"), now=1.0)
    assert claims(out) == [("d1", LINES[0], None, False)]
    out = c.handle(ClaimRefused("d1", LINES[0]), now=1.01)
    assert [(a.status, a.reason) for a in of(Release, out)] == [(486, "busy")]


def test_a_pass_whose_claims_were_all_refused_waits_instead_of_giving_up() -> None:
    c = core("linear", members=[MemberConfig(line=LINES[0], position=1)])
    c.handle(CallArrived("c1", "G", "0611"), now=1.0)
    out = c.handle(ClaimRefused("c1", LINES[0]), now=1.01)
    assert not of(Release, out)  # linear does not stop: nobody was free, the call waits
    assert of(Hold, out) and c.queue("G") == ["c1"]
    assert c.get_timer() == 2.01  # the member is left alone for CLAIM_RETRY seconds
    out = c.handle_timer(now=2.01)
    assert claims(out) == [("c1", LINES[0], "G", False)]  # then claimed again
    assert of(Ring, c.handle(ClaimGranted("c1", LINES[0]), now=2.02))
