"""Every log line about a call carries its call id, group and event (for --log-format json).

A call to group A is forwarded to group B's pilot, answered there, then hung up by the
caller: each ``call k…`` line names the call and the group it is at *then*, member
steps name the member, and the last line of the call is ``ended``. The text of the
lines is unchanged (the text format shows only the message).
"""

from __future__ import annotations

import logging

import pytest

from huntgroup.engine.b2bua.call_log import EVENTS
from tests.engine.b2bua.test_b2bua_forward_chains import (
    B_PILOT,
    chain,
    forwarded_to_b_and_answered,
)
from tests.support.b2bua_peers import CALLER_NUMBER, PILOT, Network


def call_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("call k")]


def test_each_step_of_a_forwarded_call_names_its_call_group_event_and_member(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="huntgroup.calls")
    net = Network(chain(5))
    caller, m1, m2, call = forwarded_to_b_and_answered(net)
    call.bye()
    caller.response(200, "BYE")

    lines = call_lines(caplog)
    assert lines, caplog.text
    key = lines[0].getMessage().split(":")[0].removeprefix("call ")
    steps = [
        (vars(r)["call_id"], vars(r)["group"], vars(r)["event"], vars(r).get("member"))
        for r in lines
    ]
    assert all(step[0] == key for step in steps), steps
    assert all(step[2] in EVENTS for step in steps), steps
    events = [step[2] for step in steps]
    assert events[0] == "arrived" and events[-1] == "ended", events
    assert events.count("ended") == 1
    by_event = {step[2]: step for step in steps}
    assert by_event["arrived"][1] == "A"
    assert by_event["forwarded"][1] == "A"  # logged while still at A's pilot
    assert by_event["rerouted"][1] == "B"
    assert by_event["bridged"][1:] == ("B", "bridged", m2.uri)
    ringing = [step for step in steps if step[2] == "ringing"]
    assert [(s[1], s[3]) for s in ringing] == [("A", m1.uri), ("B", m2.uri)]
    assert by_event["not_taken"][1:] == ("A", "not_taken", m1.uri)
    assert by_event["answered"][1:] == ("B", "answered", m2.uri)
    assert by_event["caller_hangup"][1] == "B" and by_event["ended"][1] == "B"
    # the text lines are what they were
    assert f"call {key}: {CALLER_NUMBER} -> group B ({B_PILOT})" in caplog.text
    assert f"call {key}: ended" in caplog.text


def test_an_invite_refused_before_it_is_a_call_names_the_group_and_no_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="huntgroup.calls")
    config = chain(5)
    limits = config.server.limits.model_copy(update={"max_calls": 1})
    net = Network(
        config.model_copy(update={"server": config.server.model_copy(update={"limits": limits})})
    )
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    other = net.phone("other", 6001, "0611111112")
    caller.invite(PILOT)
    other.invite(B_PILOT)
    other.response(503)
    refused = [r for r in caplog.records if getattr(r, "event", None) == "refused"]
    assert [(vars(r)["call_id"], vars(r)["group"]) for r in refused] == [(None, "B")]


EVERY_CALL = {"arrived", "rerouted", "ringing", "answered", "bridged", "caller_hangup", "ended"}


@pytest.mark.native_incompatible(
    "monkeypatches the modules' about(): compiled callers call the original directly"
)
def test_the_fields_of_a_silenced_line_are_not_built(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14: with INFO off (``--log-level WARNING``, the benchmark's), the routed,
    ringing, answered, bridged, hung-up and ended lines cost no ``about()`` (a dict and
    a group look-up each)."""
    from huntgroup.engine.b2bua import caller_leg, core_actions, member_legs, relay, teardown

    built: list[str] = []

    def counting(ctx: object, call: object, event: str, member: str = "") -> dict[str, object]:
        built.append(event)
        return {"call_id": None, "group": None, "event": event}

    for module in (caller_leg, core_actions, member_legs, relay, teardown):
        monkeypatch.setattr(module, "about", counting)
    caplog.set_level(logging.WARNING, logger="huntgroup.calls")
    net = Network(chain(5))
    caller, _, _, call = forwarded_to_b_and_answered(net)
    call.bye()
    caller.response(200, "BYE")
    # the lines of every call; rarer ones (a forward, an offer not taken) still build theirs
    assert not set(built) & EVERY_CALL, built
    assert not call_lines(caplog)

    caplog.set_level(logging.INFO, logger="huntgroup.calls")
    net = Network(chain(5))
    caller, _, _, call = forwarded_to_b_and_answered(net)
    call.bye()
    caller.response(200, "BYE")
    assert [e for e in built if e in EVERY_CALL] == [
        "arrived",
        "ringing",
        "rerouted",
        "ringing",
        "answered",
        "bridged",
        "caller_hangup",
        "ended",
    ]
