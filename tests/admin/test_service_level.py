"""Service level today: the accounting (hand-built call records with the fields of
COMMON.md's CallRecord) and the local-day reset of the wallboard's report sink."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

import pytest

from huntgroup.admin.service_level import ServiceLevels
from huntgroup.admin.wallboard_data import TodaysServiceLevels

NOON = datetime.datetime(2026, 12, 7, 12, 0, 0).timestamp()  # local time


@dataclass(frozen=True)
class Record:
    """A call record as the records helper defines it (COMMON.md field names)."""

    outcome: str
    wait: float
    group: str | None = "sales"
    kind: str = "group"
    end: float = NOON
    call_id: str = "c1"
    node: str = "n1"
    pilot: str | None = "600"
    caller: str = "0611000001"
    callee: str = "600"
    identity: str = "0611000001"
    arrival: float = NOON - 30
    answer: float | None = None
    talk: float = 0.0
    member: str | None = None
    release_code: int = 200
    offers: tuple[object, ...] = field(default=())


def test_answered_within_the_threshold_over_answered_and_late_unanswered() -> None:
    levels = ServiceLevels(20, ["sales", "support"])
    for record in (
        Record("answered", 5),
        Record("answered", 20),  # exactly N: within
        Record("answered", 20.5),  # late: counted, not within
        Record("abandoned", 45),  # late abandon: against the group
        Record("timeout", 120),  # max_wait: against the group
        Record("no_answer", 30),
        Record("forwarded", 25),
        Record("abandoned", 3),  # short abandon: not counted
        Record("queue_full", 0),  # never entered the queue
        Record("refused", 0),
        Record("answered", 1, kind="direct", group=None),  # not a group call
        Record("answered", 1, group="unknown"),  # a group it was not told about
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
    levels.add(Record("answered", 1, group="a"))
    levels.add(Record("answered", 1, group="b"))
    levels.regroup(["b", "c"])  # a reload: a removed, c added, b kept
    assert levels.of("a").counted == 0 and levels.of("b").counted == 1
    levels.add(Record("answered", 1, group="c"))
    assert levels.of("c").percent == 100.0
    levels.reset()
    assert levels.of("b").counted == 0 and levels.of("c").counted == 0
    with pytest.raises(ValueError, match="positive"):
        ServiceLevels(0, [])


def test_today_starts_afresh_at_local_midnight() -> None:
    today = TodaysServiceLevels(20, ["sales"], wall=NOON)
    today.call_ended(Record("answered", 5, end=NOON))
    late = datetime.datetime(2026, 12, 7, 23, 59, 59).timestamp()
    today.call_ended(Record("abandoned", 40, end=late))
    assert today.levels.of("sales").counted == 2
    after_midnight = datetime.datetime(2026, 12, 8, 0, 0, 1).timestamp()
    today.call_ended(Record("answered", 5, end=after_midnight))  # a new day: reset first
    assert today.day == datetime.date(2026, 12, 8)
    sales = today.levels.of("sales")
    assert (sales.answered, sales.unanswered_after) == (1, 0)
    today.call_ended(Record("answered", 50, end=late))  # yesterday's, delivered late
    assert today.levels.of("sales").counted == 1
    next_noon = datetime.datetime(2026, 12, 9, 12, 0, 0).timestamp()
    assert today.roll(next_noon) == datetime.date(2026, 12, 9)  # a snapshot rolls it too
    assert today.levels.of("sales").counted == 0
    today.member_changed(object())  # member changes are not counted
