"""Live mode: members' direct and outgoing calls against a real ``huntgroup serve``.

The server's ``server.upstream`` points at a free loopback port, which the
live run plays. Timers of the served configuration are divided by the speed
(10); the scenario's configuration has them as written, so the live run and
the virtual run of the scenario compare call by call.

The scenario (seed 41) is built around the own calls its streams give line
A: direct calls at 9.3, 29.6 and 32.0 (5 s of talk), outgoing calls at 25.0
and 45.0 (9 s of talk); line C (never answers) gets direct calls at 38.9 and
39.8. Group calls are placed so that A is busy with its own calls when they
arrive; every event the outcome depends on is about a scenario second (0.1 s
real) or more from the next.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from huntgroup.simulations.live import (
    LiveOptions,
    caller_number,
    live_problems,
    parse_target,
    plan_calls,
    plan_direct_calls,
    plan_outgoing_calls,
    run_live,
)
from huntgroup.simulations.live.sip import LiveError
from huntgroup.simulations.model.scenario import load_scenario
from huntgroup.simulations.runner import run_live_simulation, run_simulation
from huntgroup.simulations.virtual.driver import CallRecord, run_replication
from tests.support.live_helpers import OUTCOMES, serving
from tests.support.ports import free_port, free_port_range

SPEED = 10.0
A, B, C = "0102000021", "0102000022", "0102000023"
DESK, BACK = "0140000020", "0140000021"


@dataclass(frozen=True)
class Server:
    port: int
    upstream: int
    groups: Path  # the configuration as the scenarios name it (timers not scaled)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


def own_config(port: int, upstream: int, *, scale: float) -> dict[str, Any]:
    return {
        "server": {
            "listen": [f"udp:127.0.0.1:{port}"],
            "domain": "own.test",
            "upstream": f"sip:127.0.0.1:{upstream}",
            "media": {"address": "127.0.0.1", "rtp_ports": "{}-{}".format(*free_port_range(200))},
            "shutdown_grace": 0,
        },
        "lines": [
            {"number": A, "password": "pw-a", "no_answer_timeout": 20 / scale},
            {"number": B, "password": "pw-b", "no_answer_timeout": 20 / scale},
            {
                "number": C,
                "password": "pw-c",
                "no_answer_timeout": 20 / scale,
                "forward_no_answer": "0999000000",
            },
        ],
        "groups": [
            {
                "name": "Desk",
                "pilot": DESK,
                "algorithm": "linear",
                "hunt_direct_calls": True,
                "no_answer_timeout": 15 / scale,
                "queue": {"max_length": 5, "max_wait": 120 / scale},
                "members": [{"line": A, "position": 1}, {"line": B, "position": 2}],
            },
            {
                "name": "Back",
                "pilot": BACK,
                "algorithm": "linear",
                "no_answer_timeout": 15 / scale,
                "queue": {"max_length": 5, "max_wait": 120 / scale},
                "members": [{"line": A, "position": 1}, {"line": C, "position": 2}],
            },
        ],
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("own-calls-server")
    port, upstream = free_port(), free_port()
    groups = directory / "groups.yaml"
    groups.write_text(yaml.safe_dump(own_config(port, upstream, scale=1.0)))
    with serving(directory, own_config(port, upstream, scale=SPEED), port):
        yield Server(port, upstream, groups)


def own_calls_scenario(directory: Path, server: Server) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "groups.yaml").write_text(server.groups.read_text())
    # Desk: A free at 2; A on its direct call at 11.5, on its outgoing call at 26.5,
    # on a Back call at 46.5. Back at 41 keeps A on a call over its outgoing call at 45.
    (directory / "desk.csv").write_text("2\n11.5\n26.5\n46.5\n")
    (directory / "back.csv").write_text("41\n")
    doc = {
        "config": "groups.yaml",
        "duration": 60,
        "drain": 20,
        "seed": 41,
        "traffic": [
            {"group": "Desk", "arrivals": {"trace": "desk.csv"}, "talk_time": 1},
            {"group": "Back", "arrivals": {"trace": "back.csv"}, "talk_time": 8},
        ],
        "members": {
            "default": {"answer_delay": 1},
            A: {
                "direct_calls": {"per_hour": 180, "talk_time": 5},
                "outgoing_calls": {"per_hour": 180, "talk_time": 9},
            },
            C: {"answer_probability": 0, "direct_calls": {"per_hour": 120, "talk_time": 4}},
        },
    }
    path = directory / "scenario.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def offers(calls: list[CallRecord]) -> list[tuple[str, str, list[tuple[str, str]]]]:
    ordered = sorted(calls, key=lambda c: (c.arrival, c.call))
    return [(c.call, c.origin, [(o.member, o.outcome) for o in c.offers]) for c in ordered]


# ------------------------------------------------------------------- live runs
@pytest.mark.integration
def test_own_calls_live_match_the_virtual_run(server: Server, tmp_path: Path) -> None:
    path = own_calls_scenario(tmp_path, server)
    scenario = load_scenario(path)
    # the plan is the one the module doc describes (the driver's streams, seed 41)
    direct = plan_direct_calls(scenario)
    assert [round(r.arrival, 1) for r in direct[A]] == [9.3, 29.6, 32.0]
    assert [round(r.arrival, 1) for r in direct[C]] == [38.9, 39.8]
    assert [(c.member, round(c.planned, 1)) for c in plan_outgoing_calls(scenario)] == [
        (A, 25.0),
        (A, 45.0),
    ]

    live = run_live(scenario, LiveOptions(parse_target(server.target), speed=SPEED))
    virtual = run_replication(scenario, 0)

    # Same offers, same reactions, call by call, hunted direct calls included.
    assert offers(live.run.calls) == offers(virtual.calls)
    by_call = {c.call: c for c in live.run.calls}
    assert [c.outcome for c in live.run.calls] == ["answered"] * len(live.run.calls)

    # A is busy during its own calls: Desk calls arriving then go to B.
    assert by_call["Desk#1"].answered_by == A  # A free: position 1 takes it
    for call in ("Desk#2", "Desk#3", "Desk#4"):  # A on a direct, outgoing, Back call
        assert [(o.member, o.outcome) for o in by_call[call].offers] == [(B, "answered")]

    # A busy: its direct calls from outside are hunted to Desk (hunt_direct_calls),
    # B takes the first, the second waits in the queue until A's outgoing call ends.
    hunted = [c for c in live.run.calls if c.origin == "direct"]
    assert [(c.call, c.group, c.answered_by) for c in hunted] == [
        (f"direct:{A}#2", "Desk", B),
        (f"direct:{A}#3", "Desk", A),
    ]
    queued = by_call[f"direct:{A}#3"]
    assert queued.offers[0].at == pytest.approx(33.96, abs=1.0)  # A's outgoing call ended
    assert max(n for _, n in live.run.queue_lengths["Desk"]) == 1

    # Own calls, as the driver records them: A's first direct call (its line took
    # it), its first outgoing call; the second was due while A was on a Back call.
    def own(calls: list[tuple[str, str, float, float]]) -> list[tuple[str, str]]:
        return [(kind, member) for kind, member, _, _ in sorted(calls, key=lambda c: c[2])]

    assert own(live.run.own_calls) == own(virtual.own_calls) == [("direct", A), ("outgoing", A)]
    for (_, _, ls, le), (_, _, vs, ve) in zip(
        sorted(live.run.own_calls, key=lambda c: c[2]),
        sorted(virtual.own_calls, key=lambda c: c[2]),
        strict=True,
    ):
        assert ls == pytest.approx(vs, abs=1.0) and le == pytest.approx(ve, abs=1.0)
    assert live.run.outgoing_skipped == virtual.outgoing_skipped == 1

    # The outgoing call reached the played upstream, from A's number, and was hung up.
    assert live.stats["upstream"] == {
        "address": f"127.0.0.1:{server.upstream}",
        "invites": 1,
        "byes": 1,
        "unmatched": 0,
    }
    assert live.stats["outgoing_calls"] == {
        "planned": 2,
        "skipped": 1,
        "answered": 1,
        "reached_upstream": 1,
        "failed": {},
    }
    # C never answers: its first direct call follows forward_no_answer (302), the
    # second finds the line ringing and gets 486 (busy, no forward_busy).
    assert live.stats["direct_calls"] == {
        "planned": 5,
        "answered_by_line": 1,
        "hunted": 2,
        "outcomes": {"answered": 1, "forwarded": 1, "no_answer": 1},
    }
    assert live.stats["members"][C]["answers"] == 0
    assert live.stats["unmatched_invites"] == 0
    assert live.stats["unexpected_statuses"] == {}


@pytest.mark.integration
def test_the_outputs_count_hunted_direct_calls_in_the_group(server: Server, tmp_path: Path) -> None:
    path = own_calls_scenario(tmp_path, server)
    live = run_live_simulation(path, tmp_path / "live", target=server.target, speed=SPEED)
    virtual = run_simulation(path, tmp_path / "virtual")
    desk, vdesk = live["groups"]["Desk"], virtual["groups"]["Desk"]
    assert desk["offered"] == vdesk["offered"] == 6  # 4 to the pilot, 2 hunted
    assert sum(desk[k] for k in OUTCOMES) == desk["offered"]
    for member in (A, B):
        mine, theirs = desk["members"][member], vdesk["members"][member]
        assert (mine["offers"], mine["answers"]) == (theirs["offers"], theirs["answers"])
        assert mine["occupancy"] == pytest.approx(theirs["occupancy"], abs=0.05)
    assert desk["fairness"] == pytest.approx(vdesk["fairness"], abs=0.05)
    lines = [json.loads(x) for x in (tmp_path / "live" / "calls.jsonl").read_text().splitlines()]
    direct = [c for c in lines if c["origin"] == "direct"]
    assert [(c["call"], c["group"]) for c in direct] == [
        (f"direct:{A}#2", "Desk"),
        (f"direct:{A}#3", "Desk"),
    ]
    assert (
        json.loads((tmp_path / "live" / "summary.json").read_text())["live"]["upstream"]["invites"]
        == 1
    )


# ---------------------------------------------------------- plans (no server)
def scenario_file(
    tmp_path: Path, server: dict[str, Any], members: list[dict[str, Any]], **behaviours: Any
) -> Path:
    config = {
        "server": server,
        "lines": [{"number": A, "password": "pw"}],
        "groups": [{"name": "G", "pilot": DESK, "members": members}],
    }
    (tmp_path / "groups.yaml").write_text(yaml.safe_dump(config))
    doc = {
        "config": "groups.yaml",
        "duration": 600,
        "traffic": [{"group": "G", "arrivals": {"poisson": {"per_hour": 60}}, "talk_time": 5}],
        "members": behaviours,
    }
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


OWN = {"per_hour": 30, "talk_time": 5}
FIXED = "sip:m1@127.0.0.1:5999"


def test_live_refuses_own_calls_it_cannot_play(tmp_path: Path) -> None:
    members = [{"line": A, "position": 1}, {"uri": FIXED, "position": 2}]
    options = LiveOptions(("127.0.0.1", 5060))

    def problems(upstream: str | None, **behaviours: Any) -> str:
        path = scenario_file(tmp_path, {"upstream": upstream}, members, **behaviours)
        return "\n".join(live_problems(load_scenario(path), options))

    # a fixed URI has no number: no direct calls to it, no calls from it
    text = problems("sip:127.0.0.1:5070", **{FIXED: {"direct_calls": OWN}})
    assert f"member {FIXED}: direct_calls need a line member" in text
    text = problems("sip:127.0.0.1:5070", **{FIXED: {"outgoing_calls": OWN}})
    assert f"member {FIXED}: outgoing_calls need a line member" in text
    assert "has no number of its own" in text
    # outgoing calls need an upstream the run can play
    text = problems(None, **{A: {"outgoing_calls": OWN}})
    assert f"outgoing_calls of {A}: server.upstream is null" in text
    text = problems("sip:core.example.net:5060", **{A: {"outgoing_calls": OWN}})
    assert "server.upstream sip:core.example.net:5060: the live run plays the upstream" in text
    text = problems("sip:192.0.2.7:5060", **{A: {"outgoing_calls": OWN}})
    assert "must be a loopback address or the --bind address (127.0.0.1)" in text
    text = problems("sip:127.0.0.1:5070;transport=tcp", **{A: {"outgoing_calls": OWN}})
    assert "only an upstream over UDP" in text
    text = problems("sip:127.0.0.1:5999", **{A: {"outgoing_calls": OWN}})
    assert f"server.upstream and member {FIXED} share 127.0.0.1:5999" in text
    # what can be played is not refused: direct calls need no upstream at all
    assert problems(None, **{A: {"direct_calls": OWN}}) == ""
    assert problems("sip:localhost:5070", **{A: {"direct_calls": OWN, "outgoing_calls": OWN}}) == ""
    # own calls count against --max-calls
    path = scenario_file(
        tmp_path, {"upstream": "sip:127.0.0.1:5070"}, members, **{A: {"outgoing_calls": OWN}}
    )
    scenario = load_scenario(path)
    total = len(plan_calls(scenario)) + len(plan_outgoing_calls(scenario))
    assert len(plan_outgoing_calls(scenario)) > 0
    limited = LiveOptions(("127.0.0.1", 5060), max_calls=total - 1)
    assert f"places {total} calls" in "\n".join(live_problems(scenario, limited))
    path = scenario_file(tmp_path, {"upstream": None}, members, **{A: {"outgoing_calls": OWN}})
    with pytest.raises(LiveError, match=r"server\.upstream is null"):
        run_live(load_scenario(path), options)


def test_planned_numbers_are_unique_and_follow_the_driver(tmp_path: Path) -> None:
    # group 1's calls and member 0's direct calls share their driver keys' magnitude:
    # the live caller numbers must still differ (06... vs 07...)
    config = {
        "lines": [{"number": A, "password": "pw"}, {"number": B, "password": "pw"}],
        "groups": [
            {"name": "G0", "pilot": DESK, "members": [{"line": A, "position": 1}]},
            {"name": "G1", "pilot": BACK, "members": [{"line": B, "position": 1}]},
        ],
    }
    (tmp_path / "groups.yaml").write_text(yaml.safe_dump(config))
    traffic = {"arrivals": {"poisson": {"per_hour": 600}}, "talk_time": 5}
    doc = {
        "config": "groups.yaml",
        "duration": 600,
        "seed": 5,
        "traffic": [{"group": "G0", **traffic}, {"group": "G1", **traffic}],
        "members": {A: {"direct_calls": {"per_hour": 600, "talk_time": 5}}},
    }
    (tmp_path / "scenario.yaml").write_text(yaml.safe_dump(doc))
    scenario = load_scenario(tmp_path / "scenario.yaml")
    calls, direct = plan_calls(scenario), plan_direct_calls(scenario)[A]
    assert {c.keys[1] for c in calls if c.group == "G1"} & {r.keys[1] for r in direct}
    numbers = [caller_number(r) for r in (*calls, *direct)]
    assert len(set(numbers)) == len(numbers)
    assert all(caller_number(r).startswith("07") for r in direct)
    # the direct calls are the driver's: same times, same talk times, same keys
    virtual = run_replication(scenario, 0)
    answered = sorted(s for kind, m, s, _ in virtual.own_calls if kind == "direct" and m == A)
    assert answered and all(any(abs(s - r.arrival) < 1e-9 for r in direct) for s in answered)
    assert [r.keys for r in direct] == [(-1, k) for k in range(len(direct))]
