"""Call records built by hand, for the tests of the report sinks (files, PostgreSQL)."""

from __future__ import annotations

from huntgroup.engine.b2bua.call_records import CallRecord, MemberChange, OfferRecord

T0 = 1_800_000_000.0
"""A wall-clock epoch for records made by hand."""


def record(i: int, *, offers: int = 2) -> CallRecord:
    """The ``i``-th answered call to Support (``call-{i}@test``): ``offers`` offers, the last
    one answered by ``m{offers}``."""
    return CallRecord(
        call_id=f"call-{i}@test",
        node="node-a",
        kind="group",
        group="Support",
        pilot="0140000000",
        caller="0612345678",
        callee="0140000000",
        identity="0612345678",
        arrival=T0 + i,
        answer=T0 + i + 5,
        end=T0 + i + 65,
        wait=5.0,
        talk=60.0,
        member=f"m{offers}",
        outcome="answered",
        release_code=200,
        offers=tuple(
            OfferRecord(f"m{k + 1}", T0 + i + k, "answered" if k == offers - 1 else "no_answer")
            for k in range(offers)
        ),
        hangup="caller",
    )


ANSWERED = CallRecord(
    call_id="abc@host",
    node="node-a",
    kind="group",
    group="Support",
    pilot="0140000000",
    caller="0612345678",
    callee="0140000000",
    identity="0612345678",
    arrival=T0,
    answer=T0 + 12,
    end=T0 + 72,
    wait=12.0,
    talk=60.0,
    member="m2",
    outcome="answered",
    release_code=200,
    offers=(OfferRecord("m1", T0, "no_answer", T0 + 10), OfferRecord("m2", T0 + 10, "answered")),
    hangup="member",
    position=2,
)
"""An answered call with its position in the queue and an unanswered first offer."""

PAUSE = MemberChange(T0, "Support", "m1", "pause", "lunch", "api")
