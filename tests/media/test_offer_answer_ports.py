"""Running out of RTP ports is a local condition: the planner raises PortsExhausted, not a
protocol error (the B2BUA maps it to 503, tests/engine/b2bua/test_b2bua_requests.py)."""

from __future__ import annotations

import random

import pytest

from huntgroup.errors import ProtocolError
from huntgroup.media.offer_answer import MediaPlanner
from huntgroup.media.ports import PortsExhausted
from tests.support.b2bua_peers import sdp


def test_no_port_for_the_caller_raises_ports_exhausted() -> None:
    planner = MediaPlanner("192.0.2.5", (20000, 20001), random.Random(1))
    planner.ports.allocate()  # the only pair
    with pytest.raises(PortsExhausted) as info:
        planner.caller_offer(sdp(4000), "application/sdp")
    assert not isinstance(info.value, ProtocolError)
    assert planner.ports.in_use == 1


def test_no_port_for_the_members_raises_ports_exhausted_and_keeps_the_caller_port() -> None:
    planner = MediaPlanner("192.0.2.5", (20000, 20001), random.Random(1))
    media = planner.caller_offer(sdp(4000), "application/sdp")
    with pytest.raises(PortsExhausted):
        planner.member_offer(media)
    assert planner.ports.in_use == 1
    planner.close(media)
    assert planner.ports.in_use == 0


def test_a_bad_offer_is_still_a_protocol_error() -> None:
    planner = MediaPlanner("192.0.2.5", (20000, 20001), random.Random(1))
    with pytest.raises(ProtocolError) as info:
        planner.caller_offer(b"", "application/sdp")
    assert info.value.status == 488
