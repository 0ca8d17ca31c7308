"""server.limits: max calls at once and new calls per second, as the B2BUA applies them."""

from __future__ import annotations

import pytest
from b2bua.b2bua_peers import PILOT, Network, make_config

from huntgroup.engine.admission import CallAdmission


def test_max_calls_counts_the_calls_in_progress() -> None:
    admission = CallAdmission(2, None, now=0.0)
    assert admission.admit(0, now=0.0) is None
    assert admission.admit(1, now=0.0) is None
    refusal = admission.admit(2, now=0.0)
    assert refusal is not None and refusal.retry_after == 5 and "max_calls" in refusal.reason


def test_the_rate_is_a_bucket_of_one_second_refilled_continuously() -> None:
    admission = CallAdmission(None, 4, now=0.0)
    assert [admission.admit(0, now=0.0) is None for _ in range(5)] == [True] * 4 + [False]
    assert admission.admit(0, now=0.1) is not None, "0.1 s at 4/s: 0.4 token, not enough"
    assert admission.admit(0, now=0.25) is None, "0.25 s: 1 token back (a refusal took none)"
    assert admission.admit(0, now=0.25) is not None
    assert [admission.admit(0, now=10.0) is None for _ in range(5)] == [True] * 4 + [False], (
        "never more than one second's worth"
    )


def test_no_limits_admit_everything() -> None:
    admission = CallAdmission(None, None, now=0.0)
    assert all(admission.admit(n, now=0.0) is None for n in range(10_000))


@pytest.mark.parametrize(
    ("limits", "retry"), [({"max_calls": 1}, "5"), ({"max_call_rate": 1}, "1")]
)
def test_the_b2bua_refuses_new_calls_beyond_the_limits_and_keeps_the_others(
    limits: dict[str, float], retry: str
) -> None:
    config = make_config("linear", members=2)
    config = config.model_copy(
        update={
            "server": config.server.model_copy(
                update={"limits": config.server.limits.model_validate(limits)}
            )
        }
    )
    net = Network(config)
    m1, m2 = net.phone("m1", 7001, "m1"), net.phone("m2", 7002, "m2")
    first_phone, second_phone = (
        net.phone("a", 6001, "0600000001"),
        net.phone("b", 6002, "0600000002"),
    )
    first = first_phone.invite(PILOT)
    m1.request("INVITE")
    second_phone.invite(PILOT)
    refused = second_phone.response(503)
    assert refused.headers.get("Retry-After") == retry
    assert not m2.has("INVITE"), "the refused call rang nobody"
    assert net.b2b.active_calls == 1 and net.b2b.counters.over_limits == 1
    first.cancel()
    first_phone.response(200, "CANCEL")
    net.advance(1.0)  # the first call is gone and a second has passed: room again
    second_phone.invite(PILOT)
    assert m1.has("INVITE") or m2.has("INVITE")
    assert net.b2b.counters.over_limits == 1
