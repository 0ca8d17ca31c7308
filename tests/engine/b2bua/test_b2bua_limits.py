"""server.limits in the B2BUA: a call beyond them gets 503 and rings nobody."""

from __future__ import annotations

import pytest
from b2bua_peers import PILOT, Network, make_config


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
