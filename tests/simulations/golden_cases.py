"""Fixed-seed scenarios whose results are pinned (``golden/*.json``): a change of the
simulator's speed must not change a single number.

Each case is simulated (every replication, through ``simulate``) and reduced to a
fingerprint: the aggregated summary as it is, the SHA-256 of the calls.jsonl it writes,
and per replication the queue-length series, the joined intervals, the members' own
calls, the number of events, the end and the outgoing calls skipped.

The goldens were written by the code before the simulator's fast paths (issue 14);
rewrite them only for a change meant to alter results:
``python -m tests.simulations.golden_cases`` (from the repository root).
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from huntgroup.config.models import ALGORITHMS
from huntgroup.simulations.model.scenario import Scenario, load_scenario
from huntgroup.simulations.reports.compare import with_algorithm
from huntgroup.simulations.reports.report import write_calls
from huntgroup.simulations.virtual.driver import RunResult
from huntgroup.simulations.virtual.replications import simulate

GOLDEN = Path(__file__).parent / "golden"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scenarios"

P = {name: f"01{i}0000000" for i, name in enumerate(("Front", "Back", "Ring", "Circ", "RR"), 4)}


def line(i: int) -> str:
    return f"0102{i:06d}"


def bench_day(directory: Path) -> Scenario:
    """The benchmark's group (100 members, round robin, 42 Erlangs), for 6 hours."""
    numbers = [line(i) for i in range(1, 101)]
    groups = {
        "lines": [{"number": n, "password": "x"} for n in numbers],
        "groups": [
            {
                "name": "Support",
                "pilot": "0999999999",
                "algorithm": "round_robin",
                "no_answer_timeout": 15,
                "queue": {"max_length": 1000, "max_wait": 600},
                "members": [{"line": n, "position": i + 1} for i, n in enumerate(numbers)],
            }
        ],
    }
    scenario = {
        "config": groups,
        "duration": 6 * 3600,
        "seed": 1,
        "traffic": [
            {
                "group": "Support",
                "arrivals": {"poisson": {"per_hour": 20_000 / 24}},
                "talk_time": {"exponential": {"mean": 180}},
                "patience": {"exponential": {"mean": 120}},
            }
        ],
        "members": {
            "default": {"answer_probability": 0.9, "answer_delay": {"exponential": {"mean": 5}}}
        },
    }
    path = directory / "bench_day.yaml"
    path.write_text(yaml.safe_dump(scenario))
    return load_scenario(path)


def centre_config() -> dict[str, Any]:
    """Five groups that reach each other: priorities, overflow and no-answer forwards (a
    chain longer than ``max_internal_forwards``), hunted direct calls, call waiting,
    wrap-up, a URI member, ``when_empty: overflow`` and line forwards."""
    uri = "sip:desk@example.org"

    def members(*keys: int | str) -> list[dict[str, Any]]:
        return [
            {"uri": k, "position": p} if isinstance(k, str) else {"line": line(k), "position": p}
            for p, k in enumerate(keys, 1)
        ]

    return {
        "server": {"limits": {"max_internal_forwards": 2}},
        "lines": [
            {
                "number": line(i),
                "password": "pw",
                **(
                    {"forward_busy": P["Ring"], "forward_no_answer": "0611111111"} if i == 5 else {}
                ),
            }
            for i in range(1, 13)
        ],
        "groups": [
            {
                "name": "Front",
                "pilot": P["Front"],
                "algorithm": "linear",
                "priority": 5,
                "no_answer_timeout": 8,
                "wrap_up": 5,
                "queue": {"max_length": 3, "max_wait": 40, "overflow_to": P["Back"]},
                "no_answer": {"forward_to": P["Back"], "after": 30},
                "members": members(1, 2, 3, 4),
            },
            {
                "name": "Back",
                "pilot": P["Back"],
                "algorithm": "least_active",
                "call_waiting": True,
                "hunt_direct_calls": True,
                "queue": {"max_length": 5, "max_wait": 90, "overflow_to": "0600000000"},
                "members": members(3, 4, 5, 6, 7, 8),
            },
            {
                "name": "Ring",
                "pilot": P["Ring"],
                "algorithm": "ring_all",
                "no_answer_timeout": 12,
                "queue": {"max_length": 4, "max_wait": 60, "when_empty": "overflow"},
                "members": members(9, 10),
            },
            {
                "name": "Circ",
                "pilot": P["Circ"],
                "algorithm": "circular",
                "pilot_as_caller_id": True,
                "wrap_up": 3,
                "queue": {"max_length": 2, "max_wait": 30},
                "no_answer": {"forward_to": P["Front"], "after": 20},
                "members": members(11, 12, uri),
            },
            {
                "name": "RR",
                "pilot": P["RR"],
                "algorithm": "round_robin",
                "priority": -1,
                "queue": {"max_length": 6, "max_wait": 100, "overflow_to": P["Circ"]},
                "members": members(1, 5, 9, 11),
            },
        ],
    }


def centre(directory: Path, algorithm: str | None = None) -> Scenario:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ring.csv").write_text(
        "\n".join(str(27.5 * k + (k % 7) * 1.25) for k in range(1, 390)) + "\n"
    )
    (directory / "talk.csv").write_text("seconds\n30\n45\n60\n90\n120\n240\n600\n")
    scenario = {
        "config": centre_config(),
        "duration": 3 * 3600,
        "warmup": 600,
        "drain": 1800,
        "seed": 11,
        "replications": 2,
        "traffic": [
            {
                "group": "Front",
                "arrivals": {"poisson": {"per_hour": 150}},
                "talk_time": {"lognormal": {"mean": 120, "sigma": 0.7}},
                "patience": {"exponential": {"mean": 60}},
            },
            {
                "group": "Back",
                "arrivals": {"profile": {"per_hour": [40 + 5 * h for h in range(24)]}},
                "talk_time": {"exponential": {"mean": 200}},
            },
            {
                "group": "Ring",
                "arrivals": {"trace": "ring.csv"},
                "talk_time": {"empirical": "talk.csv"},
                "patience": {"fixed": 25},
            },
            {
                "group": "Circ",
                "arrivals": {"poisson": {"per_hour": 50}},
                "talk_time": 90,
                "patience": {"exponential": {"mean": 45}},
            },
            {
                "group": "RR",
                "arrivals": {"poisson": {"per_hour": 70}},
                "talk_time": {"fixed": 150},
            },
        ],
        "members": {
            "default": {"answer_probability": 0.85, "answer_delay": {"exponential": {"mean": 4}}},
            line(2): {
                "answer_probability": 0.5,
                "on_no_answer": "decline",
                "answer_delay": {"fixed": 2},
            },
            line(3): {"direct_calls": {"per_hour": 6, "talk_time": {"fixed": 60}}},
            line(5): {"direct_calls": {"per_hour": 8, "talk_time": {"exponential": {"mean": 80}}}},
            line(6): {"joined": [[0, 3600], [5400, None]]},
            line(7): {
                "outgoing_calls": {"per_hour": 4, "talk_time": {"exponential": {"mean": 200}}}
            },
            line(9): {"joined": [[1800, 7200]], "answer_delay": {"fixed": 0}},
            line(10): {"answer_probability": 0.3},
            "sip:desk@example.org": {"answer_probability": 1.0, "answer_delay": {"fixed": 1}},
        },
    }
    name = f"centre-{algorithm or 'own'}.yaml"
    (directory / name).write_text(yaml.safe_dump(scenario, sort_keys=False))
    sc = load_scenario(directory / name)
    return sc if algorithm is None else sc.with_config(with_algorithm(sc.config, algorithm))


def support_day(directory: Path) -> Scenario:
    """The example scenario: two groups, traces, schedules, own calls (``directory``
    unused)."""
    return load_scenario(EXAMPLES / "support-day.yaml")


def _cases() -> dict[str, Callable[[Path], Scenario]]:
    cases: dict[str, Callable[[Path], Scenario]] = {
        "bench_day": bench_day,
        "support_day": support_day,
        "centre": centre,
    }
    for algorithm in ALGORITHMS:
        cases[f"centre_{algorithm}"] = functools.partial(centre, algorithm=algorithm)
    return cases


CASES = _cases()


def _sha(data: Any) -> str:
    """Of the repr: exact floats, infinities included."""
    return hashlib.sha256(repr(data).encode()).hexdigest()


def _run_print(run: RunResult) -> dict[str, Any]:
    return {
        "events": run.events,
        "end": run.end,
        "outgoing_skipped": run.outgoing_skipped,
        "calls": len(run.calls),
        "queue_lengths": _sha(sorted(run.queue_lengths.items())),
        "joined": _sha(sorted([list(k), v] for k, v in run.joined.items())),
        "own_calls": _sha(run.own_calls),
    }


def fingerprint(scenario: Scenario, directory: Path) -> dict[str, Any]:
    """What a case must reproduce exactly (see the module docstring)."""
    summary, runs = simulate(scenario)
    summary["scenario"]["file"] = Path(summary["scenario"]["file"]).name  # not the directory
    calls = directory / "calls.jsonl"
    write_calls(calls, runs)
    result = {
        "summary": summary,
        "calls_sha256": hashlib.sha256(calls.read_bytes()).hexdigest(),
        "runs": [_run_print(r) for r in runs],
    }
    normalised: dict[str, Any] = json.loads(json.dumps(result, allow_nan=False))
    return normalised


def golden_path(case: str) -> Path:
    return GOLDEN / f"{case}.json"


def write_goldens(directory: Path) -> None:
    GOLDEN.mkdir(exist_ok=True)
    for case, build in CASES.items():
        work = directory / case
        work.mkdir(parents=True)
        found = fingerprint(build(work), work)
        golden_path(case).write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
        sys.stdout.write(f"{case}: {found['calls_sha256']}\n")


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        write_goldens(Path(tmp))
