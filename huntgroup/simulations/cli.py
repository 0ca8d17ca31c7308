"""``huntgroup simulate``: the command-line entry of the virtual-time simulator.

``add_parser(subparsers)`` registers the subcommand on the main parser and
``main_simulate(args)`` runs it: exit status 0 on success, 1 with every
problem printed as ``file:line:column: path: message`` for a bad scenario or
groups file, 1 with a message when the output directory cannot be written.
With ``--live --target HOST:PORT`` the scenario is played as SIP calls
against a running server (exit status 1 with a message when it cannot be).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from huntgroup.errors import ConfigError

MAX_JOBS = 256  # as huntgroup.simulations.virtual.parallel (not imported here: scipy)

__all__ = ["add_parser", "main_simulate"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``simulate`` arguments to its sub-parser."""
    parser.add_argument("scenario", help="scenario YAML file")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also run the scenario once per algorithm, with common random numbers",
    )
    parser.add_argument(
        "--progress",
        action="store_true",
        help="draw a progress bar on stderr even when it is not a terminal",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="run the replications (and --compare's algorithms) in N worker processes, "
        "0 for one per CPU; the results are the same as with 1 (the default)",
    )
    live = parser.add_argument_group("live mode (real SIP calls against 'huntgroup serve')")
    live.add_argument(
        "--live",
        action="store_true",
        help="place the scenario's calls as SIP calls, in real time, against --target",
    )
    live.add_argument("--target", metavar="HOST:PORT", help="the server's UDP address")
    live.add_argument(
        "--speed",
        type=float,
        default=None,
        metavar="X",
        help="play X times faster: times (talk, delays, patience, duration) divided by X",
    )
    live.add_argument(
        "--bind",
        default=None,
        metavar="ADDR",
        help="address the callers and line members listen on (default 127.0.0.1)",
    )
    live.add_argument(
        "--max-calls",
        type=int,
        default=None,
        metavar="N",
        help="refuse scenarios that place more than N calls (default 1000)",
    )


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``simulate`` subcommand to an ``add_subparsers()`` object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="simulate calls in virtual time through the group core",
        description=(
            "Simulate a scenario (arrivals, talk times, patience, member behaviour) in "
            "virtual time through the same routing core that 'serve' uses, and write "
            "summary.json, calls.jsonl, plots and report.html in DIR."
        ),
    )
    configure(parser)
    parser.set_defaults(handler=main_simulate)
    return parser


def _live_usage_error(args: argparse.Namespace) -> str | None:
    live_only = [
        name
        for name in ("target", "speed", "bind", "max_calls")
        if getattr(args, name, None) is not None
    ]
    jobs = getattr(args, "jobs", None)
    if not getattr(args, "live", False):
        if live_only:
            flag = "--" + live_only[0].replace("_", "-")
            return f"{flag} only goes with --live"
        if jobs is not None and not 0 <= jobs <= MAX_JOBS:
            return f"--jobs takes 0 (one per CPU) to {MAX_JOBS}, not {jobs}"
        return None
    if jobs is not None:
        return "--jobs cannot be combined with --live (the calls are placed in real time)"
    if args.target is None:
        return "--live needs --target HOST:PORT (the address of a running 'huntgroup serve')"
    if args.compare:
        return "--compare cannot be combined with --live"
    return None


PLOTS_MISSING = (
    "the report's plots need matplotlib, which the server does not install: "
    "pip install 'huntgroup[sim]'"
)


def _plots_missing() -> str | None:
    """Why the report cannot be drawn here, checked before any call is simulated."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return PLOTS_MISSING
    return None


def main_simulate(args: argparse.Namespace) -> int:
    # imported here: the runner costs ~1 s of start-up (scipy) to every huntgroup command
    from huntgroup.simulations.live.sip import LiveError
    from huntgroup.simulations.runner import run_live_simulation, run_simulation

    progress = bool(args.progress) or sys.stderr.isatty()
    usage = _live_usage_error(args) or _plots_missing()
    if usage is not None:
        print(f"huntgroup simulate: {usage}", file=sys.stderr)
        return 1
    try:
        if getattr(args, "live", False):
            summary = run_live_simulation(
                args.scenario,
                args.out,
                target=args.target,
                speed=1.0 if args.speed is None else args.speed,
                bind=args.bind or "127.0.0.1",
                max_calls=1000 if args.max_calls is None else args.max_calls,
                progress=progress,
            )
        else:
            summary = run_simulation(
                args.scenario,
                args.out,
                compare=args.compare,
                progress=progress,
                jobs=1 if args.jobs is None else args.jobs,
            )
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except LiveError as exc:
        print(f"huntgroup simulate --live: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"huntgroup simulate: cannot write outputs: {exc}", file=sys.stderr)
        return 1
    for name, g in summary["groups"].items():
        wait = g["wait"]["mean"]
        shown = "-" if wait is None else f"{wait:.1f} s"
        print(
            f"{name}: offered {g['offered']:g}, answered {g['answered']:g}, "
            f"abandoned {g['abandoned']:g}, mean wait {shown}"
        )
    print(f"results in {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m huntgroup.simulations.cli``) until the main CLI has it."""
    parser = argparse.ArgumentParser(prog="huntgroup")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return main_simulate(args)


if __name__ == "__main__":
    sys.exit(main())
