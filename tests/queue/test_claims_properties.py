"""Property test of the claim step (several nodes): random grants, refusals and losses.

A random scenario drives one core with ``claims`` on: arrivals, claims granted
or refused in any order, ringing offers lost (a conflict after a Redis
outage), answers, refusals, hang-ups and time. An observer checks, from the
actions alone, that a member is rung only once its claim for that call was
granted, rings for at most one call, and that every call ends exactly once
with nothing left claimed or ringing.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from huntgroup.config.models import ALGORITHMS
from huntgroup.queue.actions import Action, Bridge, Cancel, Claim, Forward, Release, Ring
from huntgroup.queue.events import (
    CallArrived,
    CallHungUp,
    ClaimGranted,
    ClaimRefused,
    MemberAnswered,
    MemberFailed,
)
from tests.support.core_harness import LINES, Harness, make_config

ops = st.lists(
    st.tuples(
        st.sampled_from(["arrive", "grant", "refuse", "lose", "answer", "decline", "hangup"]),
        st.integers(0, 10_000),
        st.floats(0, 20),
    ),
    max_size=50,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    algorithm=st.sampled_from(ALGORITHMS),
    members=st.integers(1, 3),
    call_waiting=st.booleans(),
    script=ops,
)
def test_a_member_rings_only_when_claimed_and_for_one_call(
    algorithm: str, members: int, call_waiting: bool, script: list[tuple[str, int, float]]
) -> None:
    cfg = make_config(
        algorithm,
        members=members,
        call_waiting=call_waiting,
        no_answer_timeout=5,
        queue={"max_length": 3, "max_wait": 60},
    )
    h = Harness(cfg)
    h.core.claims = True
    pending: list[tuple[str, str]] = []  # claims asked, not answered
    granted: set[tuple[str, str]] = set()
    ringing: dict[str, set[str]] = {}  # member -> calls it rings for
    ended: set[str] = set()
    calls: list[str] = []

    def step(actions: list[Action]) -> None:
        for a in actions:
            match a:
                case Claim(call, member):
                    assert call not in ended
                    assert not ringing.get(member), f"{member} claimed while it rings"
                    pending.append((call, member))  # again after an offer ran out: both answer
                case Ring(call, member):
                    assert (call, member) in granted, f"{member} rung for {call} unclaimed"
                    granted.discard((call, member))
                    calls_ringing = ringing.setdefault(member, set())
                    calls_ringing.add(call)
                    assert len(calls_ringing) == 1, f"{member} rings for {calls_ringing}"
                case Cancel(call, member) | Bridge(call, member):
                    ringing.get(member, set()).discard(call)
                case Release(call) | Forward(call):
                    assert call not in ended, f"{call} ended twice"
                    ended.add(call)

    for op, pick, dt in script:
        step(h.at(h.now + dt))
        live = [c for c in calls if c not in ended]
        rung = [(c, m) for m, cs in ringing.items() for c in cs if c in live]
        if op == "arrive":
            cid = f"c{len(calls) + 1}"
            calls.append(cid)
            step(h.ev(CallArrived(cid, "G", "0611111111")))
        elif op in ("grant", "refuse") and pending:
            call, member = pending.pop(pick % len(pending))
            if op == "grant":
                granted.add((call, member))
                step(h.ev(ClaimGranted(call, member)))
                granted.discard((call, member))  # a late grant rings nothing
            else:
                step(h.ev(ClaimRefused(call, member)))
        elif op == "lose" and rung:
            call, member = rung[pick % len(rung)]
            step(h.ev(ClaimRefused(call, member)))
            assert call not in ringing.get(member, set()), "a lost claim keeps ringing"
        elif op in ("answer", "decline") and rung:
            call, member = rung[pick % len(rung)]
            if op == "answer":
                step(h.ev(MemberAnswered(call, member)))
            else:
                ringing[member].discard(call)
                step(h.ev(MemberFailed(call, member, 486)))
        elif op == "hangup" and live:
            call = live[pick % len(live)]
            step(h.ev(CallHungUp(call)))
            ended.add(call)
            for cs in ringing.values():
                cs.discard(call)
        for member, cs in ringing.items():
            assert cs == {c for c in cs if member in h.core.offers_of(c)}

    for call in calls:
        if call not in ended:
            step(h.ev(CallHungUp(call)))
            ended.add(call)
    step(h.at(h.now + 100))
    for member in LINES[:members]:
        assert not h.core.store.is_ringing(member), f"{member} still ringing"
        assert not h.core.store.is_on_call(member)
    assert all(h.core.call_state(c) is None for c in calls)
