"""``huntgroup simulate``: the command-line entry of the virtual-time simulator.

``add_parser(subparsers)`` registers the subcommand on the main parser and
``main_simulate(args)`` runs it: exit status 0 on success, 1 with every
problem printed as ``file:line:column: path: message`` for a bad scenario or
groups file, 1 with a message when the output directory cannot be written.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from huntgroup.errors import ConfigError
from huntgroup.simulations.runner import run_simulation

__all__ = ["add_parser", "main_simulate", "run_simulation"]


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


def main_simulate(args: argparse.Namespace) -> int:
    progress = bool(args.progress) or sys.stderr.isatty()
    try:
        summary = run_simulation(args.scenario, args.out, compare=args.compare, progress=progress)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
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
