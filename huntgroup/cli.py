"""The ``huntgroup`` command line.

Each subcommand is a :class:`Command`: a name, a one-line help, a function
that adds its arguments to its sub-parser, and a function that runs it and
returns the exit status. :data:`COMMANDS` is the table that :func:`main`
builds the parser from, so adding ``serve``, ``simulate`` or ``moh`` is one
new ``Command`` in that table (its functions may live in their own module).

Exit status: 0 success, 1 the input is invalid or unreadable (with every
problem on stderr), 2 bad command-line usage. :func:`main` returns the status
instead of exiting, so it can be tested with an argument list and used as
``sys.exit(main())``; expected errors never show a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from huntgroup import __version__
from huntgroup.config.diff import config_changes
from huntgroup.config.loader import config_warnings, load_config, summarize
from huntgroup.config.schema import json_schema
from huntgroup.ctl import configure as configure_ctl
from huntgroup.ctl import run as run_ctl
from huntgroup.engine.aio.file_checks import FILE_CHECKS
from huntgroup.engine.aio.json_logs import LOG_FORMATS, capture_python_output, log_formatter
from huntgroup.errors import ConfigError, ConfigProblem, MediaError, StateError
from huntgroup.media.audio import convert_file
from huntgroup.simulations.cli import configure as configure_simulate
from huntgroup.simulations.cli import main_simulate

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


@dataclass(frozen=True, slots=True)
class Command:
    """One subcommand: ``configure`` adds its arguments, ``run`` returns the exit status."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def format_problem(problem: ConfigProblem) -> str:
    """``FILE:LINE:COL: field.path: message``; ``FILE: message`` when there is no position."""
    if problem.line == 0:
        return f"{problem.file}: {problem.message}"
    return str(problem)


def report_config_error(error: ConfigError) -> None:
    """Print every problem of ``error`` on stderr, one per line."""
    for problem in error.problems:
        print(format_problem(problem), file=sys.stderr)


# -- check -----------------------------------------------------------------


def _configure_check(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the YAML configuration file to check")


def _run_check(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.file, checks=FILE_CHECKS)
    except ConfigError as error:
        report_config_error(error)
        return EXIT_INVALID
    for warning in config_warnings(cfg):
        print(f"{args.file}: {warning}", file=sys.stderr)
    print(summarize(cfg))
    return EXIT_OK


# -- diff ------------------------------------------------------------------


def _configure_diff(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("old", metavar="OLD", help="the configuration running now")
    parser.add_argument("new", metavar="NEW", help="the configuration to reload")


def _run_diff(args: argparse.Namespace) -> int:
    changes = config_changes(
        load_config(args.old, checks=FILE_CHECKS), load_config(args.new, checks=FILE_CHECKS)
    )  # main() reports
    for change in changes:
        print(change)
    if not changes:
        print("no change")
    return EXIT_OK


# -- schema ----------------------------------------------------------------


def _configure_schema(parser: argparse.ArgumentParser) -> None:
    del parser  # no arguments


def _run_schema(args: argparse.Namespace) -> int:
    del args
    print(json.dumps(json_schema(), indent=2, ensure_ascii=False))
    return EXIT_OK


# -- serve -----------------------------------------------------------------


def _configure_serve(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE", help="the YAML configuration")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=LOG_FORMATS,
        help="text lines (the default), or one JSON object per line (docs/operations.md)",
    )


def _run_serve(args: argparse.Namespace) -> int:
    # The server (the B2BUA, the media engine, the Redis client) is imported when it
    # runs: at module level it would add about 0.5 s to every other command and --help.
    from huntgroup.admin.token import AdminTokenError
    from huntgroup.engine.b2bua.connections import ResourceLimitError
    from huntgroup.node import serve

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(log_formatter(args.log_format))
    logging.basicConfig(level=args.log_level, handlers=[handler])
    json_lines = args.log_format == "json"  # then every line on stderr is one object
    if json_lines:
        capture_python_output()
    try:
        cfg = load_config(args.config, checks=FILE_CHECKS)
    except ConfigError as error:
        problems = [format_problem(problem) for problem in error.problems]
        return _serve_failed(problems, "huntgroup.config", json_lines=json_lines)
    try:
        return asyncio.run(serve(cfg, config_path=args.config))
    except (OSError, StateError, ResourceLimitError, AdminTokenError) as err:
        return _serve_failed([f"huntgroup serve: {err}"], "huntgroup.server", json_lines=json_lines)


def _serve_failed(lines: list[str], logger: str, *, json_lines: bool) -> int:
    """Why ``serve`` stops: plain lines on stderr, or error records (JSON lines) with
    ``--log-format json``; the exit status."""
    for line in lines:
        if json_lines:
            logging.getLogger(logger).error("%s", line)
        else:
            print(line, file=sys.stderr)
    return EXIT_INVALID


# -- moh -------------------------------------------------------------------


def _configure_moh(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="moh_command", metavar="ACTION", required=True)
    convert = sub.add_parser(
        "convert", help="write the 8 kHz, mono, 16-bit PCM WAV of any audio file"
    )
    convert.add_argument("src", metavar="IN", help="an audio file (WAV, FLAC, OGG, MP3...)")
    convert.add_argument("dst", metavar="OUT.wav", help="the WAV file to write")


def _run_moh(args: argparse.Namespace) -> int:
    try:
        seconds = convert_file(args.src, args.dst)
    except MediaError as err:
        print(f"huntgroup moh convert: {err}", file=sys.stderr)
        return EXIT_INVALID
    print(f"wrote {args.dst}: {seconds:.1f} s, 8 kHz, mono, 16-bit PCM")
    return EXIT_OK


# -- records ---------------------------------------------------------------


def _configure_records(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="records_command", metavar="ACTION", required=True)
    init = sub.add_parser(
        "init-db",
        help="create the call-record tables and indexes in PostgreSQL (safe to run again)",
    )
    source = init.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--config", metavar="FILE", help="the YAML configuration: its records.postgres DSN"
    )
    source.add_argument("--dsn", help="a libpq connection string or URI")


def _run_records(args: argparse.Namespace) -> int:
    # psycopg and the sinks are imported when this runs: not at every --help.
    from huntgroup.engine.aio.records.schema import init_db
    from huntgroup.engine.aio.records.sinks import resolve_dsn

    dsn = args.dsn
    if dsn is None:
        cfg = load_config(args.config)  # ConfigError: reported by main()
        if cfg.records.postgres is None:
            print(f"huntgroup records: {args.config}: no records.postgres", file=sys.stderr)
            return EXIT_INVALID
        dsn = resolve_dsn(cfg.records.postgres)
    try:
        init_db(dsn)
    except Exception as err:  # psycopg.Error: the server, the credentials, the rights
        print(f"huntgroup records init-db: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_INVALID
    print("call-record schema ready (tables calls, call_offers, member_changes)")
    return EXIT_OK


# -- simulate --------------------------------------------------------------


COMMANDS: tuple[Command, ...] = (
    Command(
        "check",
        "validate a configuration file and print a one-line summary",
        _configure_check,
        _run_check,
    ),
    Command(
        "diff",
        "what reloading NEW in place of OLD would change (lines, groups, members, settings)",
        _configure_diff,
        _run_diff,
    ),
    Command(
        "schema",
        "print the JSON Schema of the configuration file (for editors)",
        _configure_schema,
        _run_schema,
    ),
    Command("serve", "run the SIP server on a configuration file", _configure_serve, _run_serve),
    Command(
        "ctl",
        "the running server: status, queues, members, calls; login, logout, pause, "
        "unpause a member; reload",
        configure_ctl,
        run_ctl,
    ),
    Command("moh", "hold music tools (convert)", _configure_moh, _run_moh),
    Command("records", "call-record tools (init-db)", _configure_records, _run_records),
    Command(
        "simulate",
        "simulate a QA scenario in virtual time through the routing core",
        configure_simulate,
        main_simulate,
    ),
)


def build_parser(commands: Sequence[Command] = COMMANDS) -> argparse.ArgumentParser:
    """The argument parser with one sub-parser per command of ``commands``."""
    parser = argparse.ArgumentParser(
        prog="huntgroup",
        description="SIP hunt groups: serve, check and simulate call distribution.",
    )
    parser.add_argument("--version", action="version", version=f"huntgroup {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in commands:
        sub_parser = sub.add_parser(command.name, help=command.help, description=command.help)
        command.configure(sub_parser)
        sub_parser.set_defaults(run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse exits on --help, --version and usage errors
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    run: Callable[[argparse.Namespace], int] | None = getattr(args, "run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return run(args)
    except ConfigError as error:
        report_config_error(error)
        return EXIT_INVALID
    except BrokenPipeError:  # e.g. `huntgroup schema | head`
        return EXIT_OK
