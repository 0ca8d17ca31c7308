"""Issue 12: the B2BUA's control and views (sans-I/O, scripted time)."""

from __future__ import annotations

import pytest

from huntgroup.engine.b2bua.call_records import MemberChange, RecordOutput
from huntgroup.engine.b2bua.context import Output
from huntgroup.engine.b2bua.control import MAX_REASON, ControlResult
from tests.engine.b2bua.test_b2bua_feature_codes import dial, world
from tests.support.b2bua_peers import (
    CALLER_NUMBER,
    GROUP,
    LINE_A,
    PILOT,
    Network,
    make_config,
    member_uri,
)


def changes(outputs: list[Output] | list[object]) -> list[MemberChange]:
    return [
        out.record
        for out in outputs
        if isinstance(out, RecordOutput) and isinstance(out.record, MemberChange)
    ]


class World:
    def __init__(self, algorithm: str = "linear", **group: object) -> None:
        self.net = Network(make_config(algorithm, **group), now=1000.0)
        self.caller = self.net.phone("caller", 6000, CALLER_NUMBER)
        self.m = {i: self.net.phone(f"m{i}", 7000 + i, f"m{i}") for i in (1, 2, 3)}

    def control(
        self, op: str, member: str, reason: str = "", group: str = GROUP
    ) -> tuple[ControlResult, list[Output]]:
        result, outputs = self.net.b2b.control(op, group, member, reason=reason, now=self.net.now)
        self.net._route(outputs)
        return result, outputs


def test_a_paused_member_is_not_rung_and_the_pause_is_recorded() -> None:
    w = World("linear")
    result, outputs = w.control("pause", member_uri(1), "lunch")
    assert result == ControlResult(200, f"member {member_uri(1)} in group {GROUP} paused")
    assert changes(outputs) == [MemberChange(1000.0, GROUP, member_uri(1), "pause", "lunch", "api")]
    w.caller.invite(PILOT)
    assert not w.m[1].has("INVITE")
    assert w.m[2].request("INVITE")
    members = {v["member"]: v for v in w.net.b2b.view_members(GROUP, now=1030.0) or []}
    assert members[member_uri(1)]["state"] == "paused"
    assert members[member_uri(1)]["paused_reason"] == "lunch"
    assert members[member_uri(1)]["state_seconds"] == 30.0
    assert members[member_uri(2)]["state"] == "ringing"


def test_a_repeated_request_is_answered_200_and_changes_nothing() -> None:
    w = World()
    w.control("pause", member_uri(1), "lunch")
    result, outputs = w.control("pause", member_uri(1), "other")
    assert result.status == 200 and "paused already (lunch)" in result.message
    assert changes(outputs) == []
    result, outputs = w.control("login", member_uri(2))
    assert result.status == 200 and "logged in already" in result.message
    assert changes(outputs) == []
    result, _ = w.control("unpause", member_uri(3))
    assert result.status == 200 and "not paused" in result.message


@pytest.mark.parametrize(
    ("op", "group", "member", "reason", "status"),
    [
        ("pause", "Nope", member_uri(1), "", 404),
        ("pause", GROUP, "sip:nobody@127.0.0.1", "", 404),
        ("pause", GROUP, LINE_A, "", 404),  # a line, but no member of this group
        ("explode", GROUP, member_uri(1), "", 400),
        ("pause", GROUP, member_uri(1), "x" * (MAX_REASON + 1), 400),
        ("pause", GROUP, member_uri(1), "lunch\r\nX-Injected: 1", 400),
        ("pause", GROUP, member_uri(1), "bell\x07", 400),
        ("pause", GROUP, member_uri(1), "rtl\u202eevil", 400),
        ("pause", GROUP, member_uri(1), "lone \ud800 surrogate", 400),
        ("pause", GROUP, member_uri(1), "private \ue000 use", 400),
    ],
)
def test_bad_requests_are_refused_and_change_nothing(
    op: str, group: str, member: str, reason: str, status: int
) -> None:
    w = World()
    result, outputs = w.net.b2b.control(op, group, member, reason=reason, now=1000.0)
    assert result.status == status
    assert result.message
    assert outputs == []
    assert w.net.b2b.core.paused(GROUP, member_uri(1)) is None


def test_a_reason_of_the_longest_length_in_any_script_is_taken() -> None:
    w = World()
    reason = "pause déjeuner ☕ " + "é" * (MAX_REASON - 17)
    assert len(reason) == MAX_REASON
    result, outputs = w.control("pause", member_uri(1), reason)
    assert result.status == 200
    assert changes(outputs)[0].reason == reason


def test_a_logged_out_member_cannot_be_paused_409() -> None:
    w = World()
    result, outputs = w.control("logout", member_uri(1), "end of shift")
    assert result.status == 200
    assert changes(outputs) == [
        MemberChange(1000.0, GROUP, member_uri(1), "logout", "end of shift", "api")
    ]
    result, outputs = w.control("pause", member_uri(1))
    assert result.status == 409 and "log it in" in result.message
    assert outputs == []


def test_a_uri_member_logs_out_and_in_and_unpausing_serves_the_queue() -> None:
    w = World("ring_all")
    for i in (2, 3):
        w.control("logout", member_uri(i))
    w.control("pause", member_uri(1), "break")
    w.caller.invite(PILOT)
    assert w.caller.response(200)  # queued with music
    for i in (1, 2, 3):
        assert not w.m[i].has("INVITE")
    queues = w.net.b2b.view_queues(now=1012.0)
    assert queues[0]["callers"] == 1
    assert queues[0]["oldest_wait_seconds"] == 12.0
    assert queues[0]["members_free"] == 0 and queues[0]["members_total"] == 3
    assert queues[0]["waiting"][0]["caller"] == CALLER_NUMBER
    assert queues[0]["waiting"][0]["position"] == 1
    [call] = w.net.b2b.view_calls(now=1012.0)
    assert call["state"] == "queued" and call["group"] == GROUP and call["age_seconds"] == 12.0
    assert queues[0]["waiting"][0]["call_id"] == call["call_id"]
    w.net.at(1020.0)
    result, outputs = w.control("login", member_uri(3))
    assert result.status == 200
    assert changes(outputs) == [MemberChange(1020.0, GROUP, member_uri(3), "login", "", "api")]
    assert w.m[3].request("INVITE")
    assert not w.m[1].has("INVITE")
    [call] = w.net.b2b.view_calls(now=1021.0)
    assert call["state"] == "ringing"
    members = {v["member"]: v for v in w.net.b2b.view_members(GROUP, now=1021.0) or []}
    assert members[member_uri(3)]["state"] == "ringing"
    assert members[member_uri(3)]["state_seconds"] == 1.0
    assert members[member_uri(3)]["joined_at"] == 1020.0
    assert members[member_uri(2)]["state"] == "logged_out"
    assert members[member_uri(2)]["joined_at"] is None


def test_unknown_group_views_are_none_and_status_has_the_gauges() -> None:
    w = World()
    assert w.net.b2b.view_members("Nope", now=1000.0) is None
    w.control("pause", member_uri(1))
    status = w.net.b2b.view_status(now=1000.0)
    assert status["draining"] is False
    assert status["members_paused"] == 1
    assert status["state_store"] == "memory"
    assert status["calls_active"] == 0 and status["groups"] == 1
    w.net.shutdown(grace=5)
    assert w.net.b2b.view_status(now=1001.0)["draining"] is True


def test_the_feature_codes_are_recorded_with_their_origin() -> None:
    net, alice, _caller = world()
    call = dial(alice, "*52")
    call.ack(alice.response(200))
    assert net.member_changes == [MemberChange(0.0, GROUP, LINE_A, "logout", "", "phone")]
    alice.drop()
    net.advance(1)
    call = dial(alice, "*51")
    call.ack(alice.response(200))
    assert net.member_changes[1:] == [MemberChange(1.0, GROUP, LINE_A, "login", "", "phone")]


def test_a_reload_that_changes_joined_is_recorded() -> None:
    w = World()
    cfg = w.net.config
    group = cfg.groups[0]
    members = tuple(
        m.model_copy(update={"joined": False}) if m.position == 2 else m for m in group.members
    )
    flipped = cfg.model_copy(update={"groups": (group.model_copy(update={"members": members}),)})
    outputs = w.net.b2b.reload(flipped, now=1005.0)
    assert changes(outputs) == [MemberChange(1005.0, GROUP, member_uri(2), "logout", "", "reload")]
