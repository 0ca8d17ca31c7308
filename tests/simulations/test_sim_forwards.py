"""Forwards to our own numbers in virtual time: the simulator follows the chain the core follows.

A call that overflows from group A to group B has a record in each: in A with the
outcome of the forward and ``forwarded_to``; in B with ``origin: forward``,
``forwarded_from: A`` and the outcome it finally had. A forward past
``server.limits.max_internal_forwards`` ends as the live server ends it: 483.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from huntgroup.simulations.model.scenario import Scenario, load_scenario
from huntgroup.simulations.runner import run_simulation
from huntgroup.simulations.virtual.driver import CallRecord, RunResult, run_replication
from huntgroup.simulations.virtual.metrics import summarize_run
from tests.support.sim_helpers import member_number, write_scenario

M1, M2, M3 = member_number(1), member_number(2), member_number(3)
PILOTS = {"A": "0140000000", "B": "0150000000", "C": "0160000000"}


def chain(limit: int = 5, **a_options: Any) -> dict[str, Any]:
    """A (m1) -> B (m2) -> C (m3), each forwarding after its linear pass."""

    def group(name: str, member: str, forward_to: str | None) -> dict[str, Any]:
        return {
            "name": name,
            "pilot": PILOTS[name],
            "algorithm": "linear",
            "no_answer_timeout": 10,
            "members": [{"line": member, "position": 1}],
            "no_answer": {"forward_to": forward_to},
        }

    a = {**group("A", M1, PILOTS["B"]), **a_options}
    return {
        "server": {"limits": {"max_internal_forwards": limit}},
        "lines": [{"number": n, "password": "pw"} for n in (M1, M2, M3)],
        "groups": [a, group("B", M2, PILOTS["C"]), group("C", M3, None)],
    }


def scenario(
    tmp_path: Path,
    config: dict[str, Any],
    members: dict[str, Any],
    *,
    arrivals: str = "10\n",
    talk: float = 60,
    patience: float | None = None,
) -> Scenario:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "calls.csv").write_text(arrivals)
    traffic = {"group": "A", "arrivals": {"trace": "calls.csv"}, "talk_time": talk}
    if patience is not None:
        traffic["patience"] = patience
    path = write_scenario(tmp_path, config, duration=600, traffic=[traffic], members=members)
    return load_scenario(path)


def by_group(run: RunResult) -> dict[str | None, list[CallRecord]]:
    out: dict[str | None, list[CallRecord]] = {}
    for rec in run.calls:
        out.setdefault(rec.group, []).append(rec)
    return out


NOBODY_IN_A = {"default": {"answer_probability": 1.0}, M1: {"answer_probability": 0.0}}


def test_a_call_forwarded_from_a_to_b_is_recorded_in_both(tmp_path: Path) -> None:
    sc = scenario(tmp_path, chain(), NOBODY_IN_A)
    run = run_replication(sc, 0)
    calls = by_group(run)
    assert set(calls) == {"A", "B"}
    (in_a,), (in_b,) = calls["A"], calls["B"]
    assert in_a.call == in_b.call == "A#1"
    assert (in_a.outcome, in_a.forwarded_to, in_a.forward_refused) == (
        "forwarded",
        "0150000000",
        None,
    )
    assert [(o.member, o.at, o.outcome) for o in in_a.offers] == [(M1, 10.0, "no_answer")]
    assert (in_b.origin, in_b.forwarded_from, in_b.arrival) == ("forward", "A", 20.0)
    assert [(o.member, o.at, o.outcome) for o in in_b.offers] == [(M2, 20.0, "answered")]
    assert (in_b.outcome, in_b.answered_by, in_b.wait, in_b.talk) == ("answered", M2, 0.0, 60.0)
    groups = summarize_run(run, sc)["groups"]
    assert list(groups) == ["A", "B"]
    assert (groups["A"]["offered"], groups["A"]["forwarded"], groups["A"]["answered"]) == (1, 1, 0)
    assert (groups["B"]["offered"], groups["B"]["answered"]) == (1, 1)
    assert groups["B"]["members"][M2]["answers"] == 1
    assert groups["B"]["mean_queue_length"] == 0.0  # B's queue is followed too


def test_a_full_queue_overflows_into_b_and_b_queues_the_caller(tmp_path: Path) -> None:
    config = chain(queue={"max_length": 0, "overflow_to": PILOTS["B"]})
    config["groups"][1]["members"] = [{"line": M1, "position": 1}]  # B shares A's member
    sc = scenario(tmp_path, config, {"default": {"answer_probability": 1.0}}, arrivals="10\n11\n")
    calls = by_group(run_replication(sc, 0))
    first, second = calls["A"]
    assert (first.outcome, first.answered_by) == ("answered", M1)
    assert (second.outcome, second.forwarded_to, second.offers) == (
        "rejected_full",
        "0150000000",
        [],
    )
    (in_b,) = calls["B"]
    # m1 is on the first call: the second waits in B's queue until it hangs up at 70
    assert (in_b.call, in_b.origin, in_b.arrival) == ("A#2", "forward", 11.0)
    assert (in_b.answered_by, in_b.answered_at, in_b.wait) == (M1, 70.0, 59.0)


def test_the_callers_patience_follows_the_call_into_b(tmp_path: Path) -> None:
    members = {**NOBODY_IN_A, M2: {"answer_delay": {"fixed": 30}}}
    sc = scenario(tmp_path, chain(), members, patience=15)
    calls = by_group(run_replication(sc, 0))
    (in_a,), (in_b,) = calls["A"], calls["B"]
    assert in_a.outcome == "forwarded"
    assert (in_b.outcome, in_b.ended_at) == ("abandoned", 25.0)  # 15 s after the caller dialled
    assert [(o.member, o.outcome) for o in in_b.offers] == [(M2, "cancelled")]


def test_a_chain_past_max_internal_forwards_ends_with_483_as_on_the_server(
    tmp_path: Path,
) -> None:
    nobody = {"default": {"answer_probability": 0.0}}
    sc = scenario(tmp_path, chain(limit=1), nobody)
    calls = by_group(run_replication(sc, 0))
    assert set(calls) == {"A", "B"}  # the forward to C is refused
    (in_b,) = calls["B"]
    assert (in_b.outcome, in_b.forwarded_to, in_b.forward_refused) == (
        "forwarded",
        "0160000000",
        483,
    )
    assert in_b.ended_at == 30.0
    # one forward more is allowed: the call reaches C
    sc = scenario(tmp_path / "two", chain(limit=2), nobody)
    calls = by_group(run_replication(sc, 0))
    assert set(calls) == {"A", "B", "C"}
    assert calls["B"][0].forward_refused is None
    assert (calls["C"][0].forwarded_from, calls["C"][0].outcome) == ("B", "no_answer")


def test_calls_jsonl_links_the_records_of_a_forwarded_call(tmp_path: Path) -> None:
    path = write_scenario(
        tmp_path,
        chain(limit=1),
        duration=600,
        traffic=[{"group": "A", "arrivals": {"trace": "calls.csv"}, "talk_time": 60}],
        members={"default": {"answer_probability": 0.0}},
    )
    (tmp_path / "calls.csv").write_text("10\n")
    summary = run_simulation(path, tmp_path / "out")
    lines = [json.loads(x) for x in (tmp_path / "out" / "calls.jsonl").read_text().splitlines()]
    picked = ["group", "origin", "outcome", "forwarded_to", "forwarded_from", "forward_refused"]
    assert [[line[k] for k in picked] for line in lines] == [
        ["A", "pilot", "forwarded", "0150000000", None, None],
        ["B", "forward", "forwarded", "0160000000", "A", 483],
    ]
    assert {line["call"] for line in lines} == {"A#1"}
    assert summary["groups"]["B"]["offered"] == 1
