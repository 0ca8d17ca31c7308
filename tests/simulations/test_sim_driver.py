"""The event-heap driver: member behaviour, callers, schedules and own calls."""

from __future__ import annotations

import gc
import itertools
from pathlib import Path
from typing import Any

import pytest

from huntgroup.queue.core import RoutingCore
from huntgroup.simulations.model.scenario import Scenario, load_scenario
from huntgroup.simulations.virtual import driver
from huntgroup.simulations.virtual.driver import (
    RunResult,
    arrival_records,
    caller_number,
    run_replication,
)
from tests.support.sim_helpers import groups_config, member_number, write_scenario

M1, M2, M3 = member_number(1), member_number(2), member_number(3)


def scenario(
    tmp_path: Path,
    *,
    members: int = 3,
    group: dict[str, Any] | None = None,
    traffic: dict[str, Any] | None = None,
    behaviours: dict[str, Any] | None = None,
    **fields: Any,
) -> Scenario:
    cfg = groups_config(members, **(group or {}))
    t = {
        "group": "G",
        "arrivals": {"poisson": {"per_hour": 60}},
        "talk_time": {"exponential": {"mean": 120}},
        **(traffic or {}),
    }
    fields.setdefault("duration", 7200)
    path = write_scenario(tmp_path, cfg, traffic=[t], members=behaviours or {}, **fields)
    return load_scenario(path)


def run(sc: Scenario, replication: int = 0) -> RunResult:
    return run_replication(sc, replication)


def test_immediate_answer_has_zero_wait_and_follows_a_ring(tmp_path: Path) -> None:
    sc = scenario(tmp_path, traffic={"arrivals": {"poisson": {"per_hour": 5}}})
    result = run(sc)
    first = min(result.calls, key=lambda c: c.arrival)
    assert first.outcome == "answered" and first.wait == 0.0
    assert [o.outcome for o in first.offers] == ["answered"]
    assert first.offers[0].at == first.arrival == first.answered_at


def test_fixed_answer_delay_is_the_wait_of_an_unqueued_call(tmp_path: Path) -> None:
    sc = scenario(
        tmp_path,
        traffic={"arrivals": {"poisson": {"per_hour": 5}}, "talk_time": {"fixed": 30}},
        behaviours={"default": {"answer_delay": {"fixed": 3}}},
    )
    result = run(sc)
    assert result.calls
    for c in result.calls:
        assert c.outcome == "answered"
        if len(c.offers) == 1 and c.offers[0].at == c.arrival:
            assert c.wait == pytest.approx(3.0)
        assert c.talk == pytest.approx(30.0)


def test_patience_makes_callers_abandon(tmp_path: Path) -> None:
    sc = scenario(
        tmp_path,
        group={"max_wait": 300},
        traffic={"patience": {"fixed": 10}},
        behaviours={"default": {"answer_probability": 0.0}},
    )
    result = run(sc)
    outcomes = {c.outcome for c in result.calls}
    assert outcomes <= {"abandoned", "rejected_full"} and "abandoned" in outcomes
    for c in result.calls:
        if c.outcome == "abandoned":
            assert c.ended_at == pytest.approx(c.arrival + 10)
            assert all(o.outcome in ("no_answer", "cancelled") for o in c.offers)


def test_max_wait_times_calls_out_and_a_full_queue_rejects(tmp_path: Path) -> None:
    sc = scenario(
        tmp_path,
        group={"max_wait": 30, "max_length": 1, "algorithm": "ring_all"},
        traffic={"arrivals": {"poisson": {"per_hour": 600}}},
        behaviours={"default": {"answer_probability": 0.0}},
        duration=600,
    )
    result = run(sc)
    outcomes = [c.outcome for c in result.calls]
    assert set(outcomes) == {"timed_out", "rejected_full"}
    for c in result.calls:
        if c.outcome == "timed_out":
            assert c.ended_at == pytest.approx(c.arrival + 30)
        else:
            assert c.ended_at == c.arrival and not c.offers


def test_no_answer_timeout_and_decline(tmp_path: Path) -> None:
    (tmp_path / "one.csv").write_text("100\n")
    sc = scenario(
        tmp_path,
        group={"algorithm": "linear", "no_answer_timeout": 15, "max_wait": None},
        traffic={"arrivals": {"trace": "one.csv"}},
        behaviours={
            "default": {"answer_probability": 0.0},
            M2: {"on_no_answer": "decline", "answer_delay": {"fixed": 2}},
        },
    )
    (call,) = run(sc).calls
    assert [(o.member, o.at, o.outcome) for o in call.offers] == [
        (M1, 100.0, "no_answer"),
        (M2, 115.0, "declined"),
        (M3, 117.0, "no_answer"),
    ]
    assert call.outcome == "no_answer" and call.ended_at == pytest.approx(132.0)


def test_linear_forwards_after_its_pass(tmp_path: Path) -> None:
    (tmp_path / "one.csv").write_text("10\n")
    sc = scenario(
        tmp_path,
        group={"algorithm": "linear", "no_answer": {"forward_to": "0199999999"}},
        traffic={"arrivals": {"trace": "one.csv"}},
        behaviours={"default": {"answer_probability": 0.0}},
    )
    (call,) = run(sc).calls
    assert call.outcome == "forwarded" and call.forwarded_to == "0199999999"


def test_availability_schedule_is_honoured(tmp_path: Path) -> None:
    config = groups_config(3, algorithm="ring_all")
    config["groups"][0]["members"][2]["joined"] = False
    path = write_scenario(
        tmp_path,
        config,
        duration=4000,
        traffic=[
            {
                "group": "G",
                "arrivals": {"poisson": {"per_hour": 600}},
                "talk_time": {"fixed": 5},
            }
        ],
        members={
            "default": {"answer_delay": {"exponential": {"mean": 2}}},
            M2: {"joined": [[0, 1000], [2000, 3000]]},
            M3: {"joined": [[500, None]]},
        },
    )
    result = run(load_scenario(path))
    offers = [(o.member, o.at) for c in result.calls for o in c.offers]
    m2 = [t for m, t in offers if m == M2]
    m3 = [t for m, t in offers if m == M3]
    assert all(0 <= t < 1000 or 2000 <= t < 3000 for t in m2)
    assert any(t < 1000 for t in m2) and any(2000 <= t < 3000 for t in m2)
    assert m3 and min(m3) >= 500
    assert any(m == M1 for m, _ in offers)
    # the summary's joined time follows the schedule too
    assert result.joined[("G", M2)] == [(0, 1000), (2000, 3000)]


def test_a_member_logged_out_in_the_config_is_never_offered(tmp_path: Path) -> None:
    config = groups_config(2, algorithm="ring_all")
    config["groups"][0]["members"][1]["joined"] = False
    path = write_scenario(
        tmp_path,
        config,
        duration=3600,
        traffic=[{"group": "G", "arrivals": {"poisson": {"per_hour": 120}}, "talk_time": 30}],
    )
    result = run(load_scenario(path))
    assert result.calls
    assert all(o.member == M1 for c in result.calls for o in c.offers)


def test_outgoing_calls_keep_a_member_busy(tmp_path: Path) -> None:
    sc = scenario(
        tmp_path,
        members=2,
        traffic={"arrivals": {"poisson": {"per_hour": 20}}, "talk_time": 60},
        behaviours={M1: {"outgoing_calls": {"per_hour": 20, "talk_time": {"fixed": 300}}}},
        duration=7200,
    )
    result = run(sc)
    outgoing = [(s, e) for kind, m, s, e in result.own_calls if kind == "outgoing" and m == M1]
    assert len(outgoing) > 5
    assert any(o.member == M1 for c in result.calls for o in c.offers)
    for c in result.calls:
        for o in c.offers:
            if o.member == M1:
                assert not any(s <= o.at < e for s, e in outgoing)
    # a member on a group call does not dial out: those attempts are dropped
    starts = [s for s, _ in outgoing]
    assert starts == sorted(starts)
    assert all(e1 <= s2 for (_, e1), (s2, _) in itertools.pairwise(outgoing))


def test_direct_calls_busy_members_and_hunt_direct_calls(tmp_path: Path) -> None:
    sc = scenario(
        tmp_path,
        group={"hunt_direct_calls": True},
        traffic={"arrivals": {"poisson": {"per_hour": 30}}, "talk_time": 60},
        behaviours={M1: {"direct_calls": {"per_hour": 40, "talk_time": {"fixed": 200}}}},
        duration=7200,
    )
    result = run(sc)
    direct = [x for x in result.own_calls if x[0] == "direct"]
    assert direct and all(m == M1 for _, m, _, _ in direct)
    hunted = [c for c in result.calls if c.origin == "direct"]
    assert hunted, "a direct call to a busy member is hunted to the group"
    assert all(c.group == "G" and c.call.startswith("direct:") for c in hunted)
    assert any(o.member != M1 for c in hunted for o in c.offers)


def test_trace_replays_its_times_and_empirical_talk_uses_the_samples(tmp_path: Path) -> None:
    (tmp_path / "trace.csv").write_text("arrival\n" + "\n".join(["5", "60.5", "61", "7300"]))
    (tmp_path / "talk.csv").write_text("11\n22\n33\n")
    sc = scenario(
        tmp_path,
        traffic={"arrivals": {"trace": "trace.csv"}, "talk_time": {"empirical": "talk.csv"}},
    )
    for replication in (0, 1):
        calls = run(sc, replication).calls
        assert [c.arrival for c in calls] == [5.0, 60.5, 61.0]  # 7300 is past the duration
        assert all(c.talk in (11.0, 22.0, 33.0) for c in calls)


def test_profile_arrivals_follow_the_hour_of_day(tmp_path: Path) -> None:
    rates = [0.0] * 24
    rates[1], rates[3] = 300.0, 100.0
    sc = scenario(
        tmp_path, traffic={"arrivals": {"profile": {"per_hour": rates}}}, duration=4 * 3600
    )
    hours = [int(c.arrival // 3600) for c in run(sc).calls]
    assert set(hours) == {1, 3}
    assert hours.count(1) > hours.count(3) * 1.5


def test_calls_open_when_the_run_stops_are_unfinished(tmp_path: Path) -> None:
    sc = scenario(
        tmp_path,
        group={"max_wait": None, "max_length": 1000},
        traffic={"arrivals": {"poisson": {"per_hour": 3600}}, "talk_time": {"fixed": 1000}},
        duration=100,
        drain=0,
    )
    calls = run(sc).calls
    outcomes = {c.outcome for c in calls}
    assert outcomes == {"answered", "unfinished"}
    assert all(c.talk is None for c in calls)  # nobody finished talking
    assert sum(c.outcome == "answered" for c in calls) == 3


def test_same_seed_same_run_other_seed_other_run(tmp_path: Path) -> None:
    behaviours = {
        "default": {"answer_probability": 0.7, "answer_delay": {"exponential": {"mean": 5}}}
    }
    sc = scenario(
        tmp_path, behaviours=behaviours, traffic={"patience": {"exponential": {"mean": 60}}}
    )

    def trace(r: RunResult) -> list[tuple[Any, ...]]:
        return [
            (
                c.call,
                c.arrival,
                c.outcome,
                c.answered_by,
                c.ended_at,
                [(o.member, o.at) for o in c.offers],
            )
            for c in r.calls
        ]

    assert trace(run(sc)) == trace(run(sc))
    assert trace(run(sc, 0)) != trace(run(sc, 1))
    other = scenario(
        tmp_path / "b",
        behaviours=behaviours,
        seed=99,
        traffic={"patience": {"exponential": {"mean": 60}}},
    )
    assert trace(run(other)) != trace(run(sc))


def busy_scenario(tmp_path: Path) -> Scenario:
    return scenario(
        tmp_path,
        members=4,
        group={"queue": {"max_length": 10, "max_wait": 60}, "no_answer_timeout": 10},
        traffic={
            "arrivals": {"poisson": {"per_hour": 200}},
            "patience": {"exponential": {"mean": 40}},
        },
        behaviours={
            "default": {"answer_probability": 0.6, "answer_delay": {"exponential": {"mean": 6}}}
        },
        duration=6 * 3600,  # some 5,000 events: progress is told every 4,096
    )


def test_the_collector_is_off_during_a_run_and_as_it_was_after(tmp_path: Path) -> None:
    sc = busy_scenario(tmp_path)
    seen: list[bool] = []
    run_replication(sc, 0, progress=lambda _: seen.append(gc.isenabled()))
    assert seen and not any(seen)
    assert gc.isenabled()
    gc.disable()
    try:
        run_replication(sc, 0)
        assert not gc.isenabled()  # left off, as it was
    finally:
        gc.enable()


def test_a_run_makes_no_cyclic_garbage(tmp_path: Path) -> None:
    """What makes turning the collector off during a run free: nothing is left for it."""
    sc = busy_scenario(tmp_path)
    gc.collect()
    result = run_replication(sc, 0)
    assert len(result.calls) > 300
    assert gc.collect() == 0


@pytest.mark.native_incompatible  # an interpreted RoutingCore subclass: refused compiled
def test_the_core_is_asked_for_its_timer_only_when_it_could_come_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = itertools.count()
    fed = itertools.count()

    class Counting(RoutingCore):
        def get_timer(self) -> float | None:
            next(asked)
            return super().get_timer()

        def handle(self, event: Any, *, now: float) -> Any:
            next(fed)
            return super().handle(event, now=now)

        def handle_call_arrived(self, call_id: str, group: str, caller: str, *, now: float) -> Any:
            next(fed)
            return super().handle_call_arrived(call_id, group, caller, now=now)

        def handle_member_answered(self, call_id: str, member: str, *, now: float) -> Any:
            next(fed)
            return super().handle_member_answered(call_id, member, now=now)

        def handle_call_hung_up(self, call_id: str, *, now: float) -> Any:
            next(fed)
            return super().handle_call_hung_up(call_id, now=now)

    monkeypatch.setattr(driver, "RoutingCore", Counting)
    result = run_replication(busy_scenario(tmp_path), 0)
    assert len(result.calls) > 300
    assert next(asked) < next(fed) / 2  # not after every input


def test_the_callers_numbers_made_in_bulk_are_those_of_each_call(tmp_path: Path) -> None:
    sc = busy_scenario(tmp_path)
    records = arrival_records(sc, sc.seed, 0)
    run = driver._Run(sc, 0, None)
    run.draw_states(records)
    assert [run.callers[r.keys[0]][r.keys[1]] for r in records] == [
        caller_number(r) for r in records
    ]
