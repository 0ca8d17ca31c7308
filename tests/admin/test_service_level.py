"""Service level today: the accounting (hand-built call records) and the local-day reset of
the wallboard's report sink."""

from __future__ import annotations

import datetime

import pytest

from huntgroup.admin.service_level import ServiceLevels
from huntgroup.admin.wallboard_data import TodaysServiceLevels
from huntgroup.config.models import Config, GroupConfig
from huntgroup.engine.b2bua.call_records import CallRecord, OfferRecord

NOON = datetime.datetime(2026, 12, 7, 12, 0, 0).timestamp()  # local time


def _call(
    outcome: str,
    wait: float,
    *,
    group: str | None = "sales",
    kind: str = "group",
    end: float = NOON,
) -> CallRecord:
    """A call record as the B2BUA hands it to the report sinks, built by hand."""
    answered = outcome == "answered"
    arrival = end - wait - (30 if answered else 0)
    return CallRecord(
        call_id="c1",
        node="n1",
        kind=kind,
        group=group,
        pilot=None if group is None else "600",
        caller="0611000001",
        callee="600",
        identity="0611000001",
        arrival=arrival,
        answer=arrival + wait if answered else None,
        end=end,
        wait=wait,
        talk=30.0 if answered else 0.0,
        member="201" if answered else None,
        outcome=outcome,
        release_code=200 if answered else 480,
        offers=(OfferRecord("201", arrival, "answered" if answered else "no_answer"),),
    )


def test_answered_within_the_threshold_over_answered_and_late_unanswered() -> None:
    levels = ServiceLevels(20, ["sales", "support"])
    for record in (
        _call("answered", 5),
        _call("answered", 20),  # exactly N: within
        _call("answered", 20.5),  # late: counted, not within
        _call("abandoned", 45),  # late abandon: against the group
        _call("timeout", 120),  # max_wait: against the group
        _call("no_answer", 30),
        _call("forwarded", 25),
        _call("abandoned", 3),  # short abandon: not counted
        _call("queue_full", 0),  # never entered the queue
        _call("refused", 0),
        _call("answered", 1, kind="direct", group=None),  # not a group call
        _call("answered", 1, group="unknown"),  # a group it was not told about
    ):
        levels.add(record)
    sales = levels.of("sales")
    assert (sales.answered_within, sales.answered, sales.unanswered_after) == (2, 3, 4)
    assert sales.short_abandons == 1
    assert sales.counted == 7
    assert sales.percent == pytest.approx(100 * 2 / 7)
    assert sales.as_dict() == {
        "percent": 28.6,
        "answered_within": 2,
        "answered": 3,
        "unanswered_after": 4,
        "short_abandons": 1,
    }
    assert levels.of("support").percent is None  # no call: no percentage, not 100 %
    assert levels.of("support").as_dict()["percent"] is None


def test_reset_and_regroup() -> None:
    levels = ServiceLevels(10, ["a", "b"])
    levels.add(_call("answered", 1, group="a"))
    levels.add(_call("answered", 1, group="b"))
    levels.regroup(["b", "c"])  # a reload: a removed, c added, b kept
    assert levels.of("a").counted == 0 and levels.of("b").counted == 1
    levels.add(_call("answered", 1, group="c"))
    assert levels.of("c").percent == 100.0
    levels.reset()
    assert levels.of("b").counted == 0 and levels.of("c").counted == 0
    with pytest.raises(ValueError, match="positive"):
        ServiceLevels(0, [])


def _groups(*names: str) -> Config:
    return Config(groups=tuple(GroupConfig(name=n, pilot=f"60{i}") for i, n in enumerate(names)))


def test_today_starts_afresh_at_local_midnight() -> None:
    config = _groups("sales")
    today = TodaysServiceLevels(20, lambda: config, wall=NOON)
    today.call_ended(_call("answered", 5, end=NOON))
    late = datetime.datetime(2026, 12, 7, 23, 59, 59).timestamp()
    today.call_ended(_call("abandoned", 40, end=late))
    assert today.levels.of("sales").counted == 2
    after_midnight = datetime.datetime(2026, 12, 8, 0, 0, 1).timestamp()
    today.call_ended(_call("answered", 5, end=after_midnight))  # a new day: reset first
    assert today.day == datetime.date(2026, 12, 8)
    sales = today.levels.of("sales")
    assert (sales.answered, sales.unanswered_after) == (1, 0)
    today.call_ended(_call("answered", 50, end=late))  # yesterday's, delivered late
    assert today.levels.of("sales").counted == 1
    next_noon = datetime.datetime(2026, 12, 9, 12, 0, 0).timestamp()
    assert today.roll(next_noon) == datetime.date(2026, 12, 9)  # a snapshot rolls it too
    assert today.levels.of("sales").counted == 0
    today.member_changed(object())  # member changes are not counted


def test_today_follows_the_groups_of_a_reload() -> None:
    running = [_groups("sales", "support")]
    today = TodaysServiceLevels(20, lambda: running[0], wall=NOON)
    today.call_ended(_call("answered", 5, group="support"))
    today.call_ended(_call("answered", 5, group="new"))  # not a group yet: not counted
    running[0] = _groups("sales", "new")  # a reload: support removed, new added
    today.call_ended(_call("answered", 5, group="new"))
    today.call_ended(_call("answered", 5, group="support"))
    assert today.levels.of("new").counted == 1
    assert today.levels.of("support").counted == 0
