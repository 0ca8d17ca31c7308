"""One simulation from a scenario file to its output directory.

Theory of operation
-------------------
``run_simulation`` is the whole command: load and validate the scenario,
simulate its replications (``replications.simulate``), write the outputs
(``report``), and with ``compare`` run the same scenario once per algorithm
with common random numbers (``compare``). ``run_live_simulation`` is the
``--live`` variant: the scenario played as SIP calls against a running server
(see ``live``), written to the same files. ``progress`` draws a bar on stderr.

Imports go one way: ``cli`` -> ``runner`` -> ``compare`` -> ``report`` and
``replications``; nothing below imports this module.
"""

from __future__ import annotations

import html
import sys
from pathlib import Path
from typing import Any, TextIO

from huntgroup.simulations.live import LiveOptions, parse_target, run_live
from huntgroup.simulations.model.scenario import load_scenario
from huntgroup.simulations.reports.compare import compare_algorithms
from huntgroup.simulations.reports.report import write_outputs
from huntgroup.simulations.virtual.metrics import summarize_run
from huntgroup.simulations.virtual.replications import scenario_meta, simulate


class ProgressBar:
    """A one-line text bar redrawn in place on a terminal stream."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self._last = ""

    def __call__(self, label: str, fraction: float) -> None:
        filled = int(self.width * max(0.0, min(1.0, fraction)))
        line = f"\r{label:<22} [{'#' * filled}{'.' * (self.width - filled)}] {fraction:4.0%}"
        if line != self._last:
            self._last = line
            self.stream.write(line)
            self.stream.flush()

    def close(self) -> None:
        if self._last:
            self.stream.write("\n")
            self.stream.flush()
            self._last = ""


def run_simulation(
    scenario_path: str | Path,
    out_dir: str | Path,
    *,
    compare: bool = False,
    progress: bool = False,
    jobs: int = 1,
) -> dict[str, Any]:
    """Simulate a scenario file and write its outputs in ``out_dir``; ``jobs``: worker
    processes for the replications (and ``compare``'s algorithms), 0 for one per CPU.

    Returns the summary (as in summary.json); with ``compare`` it also holds
    ``"compare": {"algorithms": {ALGORITHM: {"groups": ...}}}``. Raises
    ConfigError (with file:line problems) for a bad scenario or groups file.
    """
    scenario = load_scenario(scenario_path)
    out = Path(out_dir)
    bar = ProgressBar() if progress else None
    try:
        summary, runs = simulate(scenario, progress=bar, jobs=jobs)
        sections: list[str] = []
        result: dict[str, Any] = dict(summary)
        if compare:
            table, section = compare_algorithms(scenario, out, progress=bar, jobs=jobs)
            sections.append(section)
            result["compare"] = table
        end = scenario.duration + scenario.drain
        write_outputs(
            out, summary, runs, end=min(end, max(r.end for r in runs)), extra_sections=sections
        )
    finally:
        if bar is not None:
            bar.close()
    return result


def run_live_simulation(
    scenario_path: str | Path,
    out_dir: str | Path,
    *,
    target: str,
    speed: float = 1.0,
    bind: str = "127.0.0.1",
    max_calls: int = 1000,
    progress: bool = False,
) -> dict[str, Any]:
    """Play a scenario file live against ``target`` (HOST:PORT) and write its outputs.

    Returns the summary (as in summary.json, with a ``"live"`` section).
    Raises ConfigError for a bad scenario, LiveError when the scenario cannot
    be played live or the server or a member cannot be reached.
    """
    scenario = load_scenario(scenario_path)
    options = LiveOptions(parse_target(target), speed=speed, bind=bind, max_calls=max_calls)
    bar = ProgressBar() if progress else None
    try:
        tick = None if bar is None else (lambda fraction: bar("live", fraction))
        live = run_live(scenario, options, progress=tick)
    finally:
        if bar is not None:
            bar.close()
    summary = dict(summarize_run(live.run, scenario))
    summary["scenario"] = {**scenario_meta(scenario), "replications": 1, "mode": "live"}
    summary["live"] = live.stats
    write_outputs(
        Path(out_dir),
        summary,
        [live.run],
        end=live.run.end,
        extra_sections=[live_section(live.stats)],
    )
    return summary


def live_section(stats: dict[str, Any]) -> str:
    """The report's "Live run" section: where and how the calls were placed."""
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in stats.items()
        if k != "members"
    )
    return f"<h2>Live run</h2><table>{rows}</table>"
