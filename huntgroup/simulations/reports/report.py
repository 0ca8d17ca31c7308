"""Writing a simulation's results: summary.json, calls.jsonl, PNG plots, one HTML report.

Theory of operation
-------------------
Everything here is a pure function of the results (the list of replications
and the aggregated summary), so the same seed writes the same files. Plots use
matplotlib's object API on the Agg canvas (no global pyplot state, no display
needed); the HTML report inlines them as base64 ``data:`` URIs so that it is
a single self-contained file.

Files written in the output directory:

- ``summary.json``: ``{"groups": {...}, "scenario": {...}}``;
- ``calls.jsonl``: one JSON object per call and replication;
- ``wait_times.png``, ``queue_length.png``, ``members.png``;
- ``report.html``.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from huntgroup.simulations.virtual.driver import CallRecord, RunResult

PLOTS = ("wait_times.png", "queue_length.png", "members.png")


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def call_line(rec: CallRecord, replication: int) -> dict[str, Any]:
    """One line of calls.jsonl."""
    return {
        "replication": replication,
        "call": rec.call,
        "group": rec.group,
        "origin": rec.origin,
        "arrival": _r(rec.arrival),
        "offers": [{"member": o.member, "at": _r(o.at), "outcome": o.outcome} for o in rec.offers],
        "answered_by": rec.answered_by,
        "wait": _r(rec.wait),
        "talk": _r(rec.talk),
        "outcome": rec.outcome,
        "forwarded_to": rec.forwarded_to,
        "forwarded_from": rec.forwarded_from,
        "forward_refused": rec.forward_refused,
    }


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def write_calls(path: Path, runs: Sequence[RunResult]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for run in runs:
            for rec in sorted(run.calls, key=lambda c: (c.arrival, c.call)):
                out.write(json.dumps(call_line(rec, run.replication)) + "\n")


# ------------------------------------------------------------------------ plots
def new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure; matplotlib is imported here, when a plot is drawn, because it
    is an optional dependency (``pip install huntgroup[sim]``)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def plot_wait_times(path: Path, runs: Sequence[RunResult], groups: Sequence[str]) -> None:
    fig = new_figure(8, 4)
    ax = fig.add_subplot()
    for g in groups:
        waits = [w for r in runs for c in r.calls if c.group == g and (w := c.wait) is not None]
        if waits:
            ax.hist(waits, bins=40, alpha=0.6, label=f"{g} ({len(waits)} answered)")
    ax.set_xlabel("wait before answer (s)")
    ax.set_ylabel("calls")
    ax.set_title("Wait-time distribution (answered calls, all replications)")
    if ax.has_data():
        ax.legend()
    fig.savefig(path)


def plot_queue_length(path: Path, run: RunResult, end: float) -> None:
    fig = new_figure(8, 4)
    ax = fig.add_subplot()
    for g, series in run.queue_lengths.items():
        times = [t for t, _ in series] + [end]
        values = [n for _, n in series] + [series[-1][1]]
        ax.step(times, values, where="post", label=g)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("callers in queue")
    ax.set_title(f"Queue length over time (replication {run.replication})")
    if ax.has_data():
        ax.legend()
    fig.savefig(path)


def plot_members(path: Path, summary: dict[str, Any]) -> None:
    groups = summary["groups"]
    fig = new_figure(10, 3.2 * max(1, len(groups)))
    axes = fig.subplots(max(1, len(groups)), 2, squeeze=False)
    for row, (name, g) in enumerate(groups.items()):
        members = list(g["members"])
        labels = [m[-12:] for m in members]
        x = list(range(len(members)))
        answers = [g["members"][m]["answers"] for m in members]
        talk = [g["members"][m]["talk_time"] / 60 for m in members]
        axes[row][0].bar(x, answers)
        axes[row][0].set_title(f"{name}: calls answered per member")
        axes[row][1].bar(x, talk, color="tab:orange")
        axes[row][1].set_title(f"{name}: talk time per member (min)")
        for ax in axes[row]:
            if len(x) <= 20:
                ax.set_xticks(x, labels, rotation=90 if len(x) > 8 else 0, fontsize=7)
            else:  # too many to name: number them by position
                ax.set_xlabel("member (1 = first position)")
                ax.set_xticks([i for i in x if i % 10 == 0], [str(i + 1) for i in x if i % 10 == 0])
    fig.savefig(path)


# ------------------------------------------------------------------------- html
def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.1f}"
    return html.escape(str(value))


def _with_ci(d: dict[str, Any], key: str) -> str:
    ci = d.get(f"{key}_ci95")
    return _fmt(d.get(key)) + (f" ± {_fmt(ci)}" if ci is not None else "")


GROUP_ROWS = (
    "offered",
    "answered",
    "abandoned",
    "timed_out",
    "rejected_full",
    "forwarded",
    "no_answer",
    "unfinished",
    "wait_probability",
    "mean_queue_length",
    "fairness",
)


def group_table(g: dict[str, Any]) -> str:
    rows = [f"<tr><th>{k}</th><td>{_with_ci(g, k)}</td></tr>" for k in GROUP_ROWS]
    rows += [
        f"<tr><th>wait {k}</th><td>{_with_ci(g['wait'], k)}</td></tr>"
        for k in ("mean", "p50", "p90", "p95", "max")
    ]
    rows += [
        f"<tr><th>service level {k} s</th><td>{_with_ci(g['service_level'], k)}</td></tr>"
        for k in ("10", "20", "30")
    ]
    return "<table>" + "".join(rows) + "</table>"


def member_table(g: dict[str, Any]) -> str:
    head = (
        "<tr><th>member</th><th>offers</th><th>answers</th><th>talk (s)</th><th>occupancy</th></tr>"
    )
    rows = [
        f"<tr><td>{html.escape(m)}</td>"
        + "".join(
            f"<td>{_with_ci(s, k)}</td>" for k in ("offers", "answers", "talk_time", "occupancy")
        )
        + "</tr>"
        for m, s in g["members"].items()
    ]
    return "<table>" + head + "".join(rows) + "</table>"


def embedded_image(path: Path) -> str:
    """An HTML ``<img>`` with the PNG at ``path`` inline (the report is one file)."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


_CSS = (
    "body{font-family:sans-serif;margin:2em;max-width:70em}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
    "td,th{border:1px solid #ccc;padding:0.2em 0.6em;text-align:right}"
    "th{background:#f4f4f4}img{max-width:100%}"
)


def html_report(
    summary: dict[str, Any], images: Sequence[Path], extra_sections: Sequence[str] = ()
) -> str:
    meta = summary.get("scenario", {})
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>huntgroup simulation</title><style>{_CSS}</style></head><body>",
        "<h1>huntgroup simulation</h1>",
        "<p>" + html.escape(", ".join(f"{k}: {v}" for k, v in meta.items())) + "</p>",
    ]
    for name, g in summary["groups"].items():
        parts.append(f"<h2>Group {html.escape(name)}</h2>")
        parts.append(group_table(g))
        parts.append("<h3>Members</h3>" + member_table(g))
    for image in images:
        parts.append(f"<h2>{html.escape(image.stem.replace('_', ' '))}</h2>{embedded_image(image)}")
    parts += list(extra_sections)
    parts.append("</body></html>")
    return "\n".join(parts)


def write_outputs(
    out_dir: Path,
    summary: dict[str, Any],
    runs: Sequence[RunResult],
    *,
    end: float,
    extra_sections: Sequence[str] = (),
) -> None:
    """Write every output file of one simulation into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "summary.json", summary)
    write_calls(out_dir / "calls.jsonl", runs)
    groups = list(summary["groups"])
    plot_wait_times(out_dir / PLOTS[0], runs, groups)
    plot_queue_length(out_dir / PLOTS[1], runs[0], end)
    plot_members(out_dir / PLOTS[2], summary)
    page = html_report(summary, [out_dir / p for p in PLOTS], extra_sections)
    (out_dir / "report.html").write_text(page, encoding="utf-8")
