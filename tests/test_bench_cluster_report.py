"""bench_cluster's report: runs saved by several short invocations merged into one."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_cluster
from bench_cluster import Point


def _point(setup: str, nodes_cpu: float, redis_cpu: float = 0.0, rate: int = 80) -> Point:
    calls = rate * 10
    commands = {"evalsha": 3 * calls, "hset": 6 * calls} if setup != "memory" else {}
    return Point(
        setup=setup, rate=rate, calls=calls, successful=calls, failed=0, seconds=11.1,
        cpu_nodes=nodes_cpu, cpu_redis=redis_cpu, cpu_kamailio=0.0, idle_cpu_per_s=0.0,
        redis_ops=sum(commands.values()), redis_commands=commands,
    )  # fmt: skip


def _run(command: str, points: dict[str, list[Point]], rate: int = 80) -> dict[str, Any]:
    return {
        "command": command,
        "rate": rate,
        "setups": list(points),
        "points": {s: [asdict(p) for p in ps] for s, ps in points.items()},
        "held": {},
        "seconds": 60,
    }


def test_merged_runs_give_one_table_with_the_verdict_and_commands_by_kind(
    capsys: pytest.CaptureFixture[str],
) -> None:
    side_by_side = _run(
        "a",
        {
            "memory": [_point("memory", 4.0), _point("memory", 4.2), _point("memory", 3.8)],
            "redis": [_point("redis", x, 0.4) for x in (4.4, 4.6, 4.2)],
        },
    )
    held = _run("c", {"memory": [], "redis": []}, rate=100) | {"held": {"memory": 100}}
    assert bench_cluster._report([side_by_side, held], "merge", write=False) == 0
    out = capsys.readouterr().out
    assert "| one node, memory store | 100 | 5.00 (4.75-5.25) (3/3 runs held)" in out
    assert "+20% CPU per call" in out and "within the 25%" in out
    assert "evalsha 3.00" in out and "hset 6.00" in out
    assert "- `a`\n- `c`" in out


def test_runs_at_different_rates_are_not_merged(capsys: pytest.CaptureFixture[str]) -> None:
    one = _run("a", {"memory": [_point("memory", 4.0)]})
    other = _run("b", {"redis": [_point("redis", 4.0, rate=100)]}, rate=100)
    assert bench_cluster._report([one, other], "merge", write=False) == 1
    assert "different rates" in capsys.readouterr().out
