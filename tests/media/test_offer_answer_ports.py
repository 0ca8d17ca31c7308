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


def test_no_music_on_ports_given_back() -> None:
    """Direct mode, media end to end: the call's ports went back to the allocator and may
    be another call's now, so music to either side must not name them (no other call is
    touched); the call stays silent until it is anchored again."""
    planner = MediaPlanner("192.0.2.5", (20000, 20003), random.Random(1), mode="direct")
    media = planner.caller_offer(sdp(4000), "application/sdp")
    planner.member_offer(media)
    assert planner.play_music(media, None), "music while anchored"
    planner.bypass(media)
    assert planner.ports.in_use == 0
    other = planner.caller_offer(sdp(4002), "application/sdp")  # takes a port given back
    assert planner.play_music(media, None) == []
    assert planner.play_music(media, None, side="member") == []
    planner.close(other)
