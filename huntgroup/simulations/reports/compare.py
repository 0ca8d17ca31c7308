"""``--compare``: the same scenario once per algorithm, side by side.

Theory of operation
-------------------
Each algorithm gets a copy of the configuration whose every group uses it; the
scenario is otherwise untouched. Because every random number is keyed by what
it is for (``distributions``), the runs share their arrivals, talk times,
patience and members' reactions to a given offer: the differences between
columns come from the algorithms, not from the noise (common random numbers).
Each run writes its full outputs in ``DIR/compare/ALGORITHM/``; the
side-by-side table goes to ``DIR/compare.json`` and ``DIR/compare.md``, the
plot to ``DIR/compare.png``, and both into the main HTML report.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from huntgroup.config.models import ALGORITHMS, Config
from huntgroup.simulations.model.scenario import Scenario
from huntgroup.simulations.reports.report import (
    embedded_image,
    new_figure,
    write_json,
    write_outputs,
)
from huntgroup.simulations.virtual.replications import ProgressFn, simulate_variants

ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("offered", ("offered",)),
    ("answered", ("answered",)),
    ("abandoned", ("abandoned",)),
    ("timed_out", ("timed_out",)),
    ("rejected_full", ("rejected_full",)),
    ("forwarded", ("forwarded",)),
    ("no_answer", ("no_answer",)),
    ("wait mean (s)", ("wait", "mean")),
    ("wait p90 (s)", ("wait", "p90")),
    ("service level 20 s", ("service_level", "20")),
    ("mean queue length", ("mean_queue_length",)),
    ("fairness (Jain)", ("fairness",)),
)


def with_algorithm(config: Config, algorithm: str) -> Config:
    """The same configuration with every group using ``algorithm``."""
    groups = tuple(g.model_copy(update={"algorithm": algorithm}) for g in config.groups)
    return config.model_copy(update={"groups": groups})


def _get(summary: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = summary
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def markdown_table(table: dict[str, Any]) -> str:
    algorithms = list(table["algorithms"])
    lines: list[str] = []
    groups = list(next(iter(table["algorithms"].values()))["groups"]) if algorithms else []
    for group in groups:
        lines += [f"### {group}", "", "| | " + " | ".join(algorithms) + " |"]
        lines.append("|---" * (len(algorithms) + 1) + "|")
        for label, path in ROWS:
            cells = [_cell(_get(table["algorithms"][a]["groups"][group], path)) for a in algorithms]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def html_table(table: dict[str, Any]) -> str:
    algorithms = list(table["algorithms"])
    parts = ["<h2>Algorithms compared (common random numbers)</h2>"]
    groups = list(next(iter(table["algorithms"].values()))["groups"]) if algorithms else []
    for group in groups:
        parts.append(f"<h3>{html.escape(group)}</h3><table><tr><th></th>")
        parts += [f"<th>{a}</th>" for a in algorithms]
        parts.append("</tr>")
        for label, path in ROWS:
            cells = [_cell(_get(table["algorithms"][a]["groups"][group], path)) for a in algorithms]
            parts.append(
                f"<tr><th>{html.escape(label)}</th>"
                + "".join(f"<td>{c}</td>" for c in cells)
                + "</tr>"
            )
        parts.append("</table>")
    return "".join(parts)


def plot_compare(path: Path, table: dict[str, Any]) -> None:
    algorithms = list(table["algorithms"])
    groups = list(next(iter(table["algorithms"].values()))["groups"]) if algorithms else []
    panels = (
        ("mean wait (s)", ("wait", "mean"), 1.0),
        ("service level 20 s (%)", ("service_level", "20"), 100.0),
        ("fairness (Jain)", ("fairness",), 1.0),
    )
    fig = new_figure(12, 3.5)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    width = 0.8 / max(1, len(groups))
    for ax, (title, key, scale) in zip(axes, panels, strict=True):
        for gi, group in enumerate(groups):
            values = []
            for a in algorithms:
                v = _get(table["algorithms"][a]["groups"][group], key)
                values.append(0.0 if v is None else float(v) * scale)
            ax.bar([i + gi * width for i in range(len(algorithms))], values, width, label=group)
        ax.set_title(title)
        ax.set_xticks(range(len(algorithms)), algorithms, rotation=30, fontsize=8)
    if groups:
        axes[0].legend(fontsize=7)
    fig.savefig(path)


def compare_algorithms(
    scenario: Scenario, out_dir: Path, *, progress: ProgressFn | None = None, jobs: int = 1
) -> tuple[dict[str, Any], str]:
    """Run the scenario once per algorithm; write the comparison; return (table, html).
    ``jobs``: worker processes for every replication of every algorithm (1: here)."""
    table: dict[str, Any] = {"algorithms": {}}
    variants = [
        (scenario.with_config(with_algorithm(scenario.config, a)), f"compare {a}")
        for a in ALGORITHMS
    ]
    results = simulate_variants(variants, progress=progress, jobs=jobs)
    for algorithm, (summary, runs) in zip(ALGORITHMS, results, strict=True):
        end = min(scenario.duration + scenario.drain, max(r.end for r in runs))
        write_outputs(out_dir / "compare" / algorithm, summary, runs, end=end)
        table["algorithms"][algorithm] = {"groups": summary["groups"]}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "compare.json", table)
    (out_dir / "compare.md").write_text(markdown_table(table), encoding="utf-8")
    plot_compare(out_dir / "compare.png", table)
    return table, html_table(table) + embedded_image(out_dir / "compare.png")
