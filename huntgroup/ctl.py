"""``huntgroup ctl``: the operators' JSON API from a shell.

Theory of operation
-------------------
``ctl`` is a small HTTP client (the standard library's ``urllib``, nothing
else) of the admin listener's API (:mod:`huntgroup.admin.api`, described in
``huntgroup/admin/openapi.yaml``). It finds the listener with ``--url``, or
from the configuration file (``--config``: ``server.admin.listen``, a
wildcard address read as loopback), and the bearer token the way the server
does (:func:`huntgroup.admin.token.read_token`: the variable named by
``server.admin.token_env``, or ``server.admin.token_file``), unless
``--token-file`` names one.

The views (``status``, ``queues``, ``members GROUP``, ``calls``) print plain
aligned tables, or the API's JSON with ``--json``; ``login``, ``logout``,
``pause``, ``unpause`` and ``reload`` print what the server answered.

Exit status: 0 done (a request that changed nothing is done too: the server
says so); 1 refused or not found (the server's answer on stderr; a bad
configuration file or token too); 3 the listener cannot be reached (or no
``--url``/``--config`` says where it is); 2 a usage error (argparse).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from huntgroup.admin.request_guard import CLIENT_HEADER
from huntgroup.admin.token import AdminTokenError, read_token
from huntgroup.config.loader import load_config
from huntgroup.config.models import AdminConfig
from huntgroup.errors import ConfigError

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_UNREACHABLE = 3  # not 2: argparse's usage errors
TIMEOUT = 10.0
"""Seconds to wait for an answer (a reload reads and checks the file)."""
MAX_ANSWER = 16 * 1024 * 1024
"""The largest answer read, in bytes."""
VIEWS = ("status", "queues", "members", "calls")
CONTROLS = ("login", "logout", "pause", "unpause")


class CtlError(Exception):
    """A failure to report on stderr with its exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


# ------------------------------------------------------------------ arguments
def _common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--url", default=default, help="the admin listener, e.g. http://127.0.0.1:9090"
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=default,
        help="the server's configuration: the listener and its token from server.admin",
    )
    parser.add_argument(
        "--token-file", metavar="FILE", default=default, help="read the bearer token from FILE"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="print the API's JSON instead of a table",
    )


def configure(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``huntgroup ctl`` (options before or after the action)."""
    _common(parser, suppress=False)
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    helps = {
        "status": "the node: draining or not, its gauges and readiness",
        "queues": "per group: callers waiting, the oldest wait, free members",
        "members": "the members of GROUP: state, time in state, pause reason, talk time",
        "calls": "the calls in progress",
        "login": "log MEMBER in to GROUP",
        "logout": "log MEMBER out of GROUP",
        "pause": "pause MEMBER in GROUP (it stays in, is offered no call)",
        "unpause": "unpause MEMBER in GROUP",
        "reload": "read the configuration file again, as SIGHUP (prints what changed)",
    }
    for action, text in helps.items():
        p = sub.add_parser(action, help=text, description=text)
        _common(p, suppress=True)
        if action == "members" or action in CONTROLS:
            p.add_argument("group", metavar="GROUP")
        if action in CONTROLS:
            p.add_argument(
                "member", metavar="MEMBER", help="its line number, or the URI of a uri: member"
            )
            p.add_argument("--reason", default="", help="why (at most 128 characters)")


# ----------------------------------------------------------------- the target
def listener_url(admin: AdminConfig) -> str:
    """The URL of the listener ``admin`` describes (a wildcard address: loopback)."""
    where = admin.host_port
    if where is None:
        raise CtlError("server.admin.listen is not set: the admin listener is off", EXIT_REFUSED)
    host, port = where
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def target(args: argparse.Namespace) -> tuple[str, str | None]:
    """The listener's base URL and the token (None: send none)."""
    admin: AdminConfig | None = None
    if args.config is not None:
        try:
            admin = load_config(args.config).server.admin
        except ConfigError as err:
            problems = "; ".join(str(p) for p in err.problems) or str(err)
            raise CtlError(f"cannot read {args.config}: {problems}", EXIT_REFUSED) from None
    if args.url is not None:
        url = args.url.rstrip("/")
    elif admin is not None:
        url = listener_url(admin)
    else:
        raise CtlError("where is the server? give --url URL or --config FILE", EXIT_UNREACHABLE)
    try:
        if args.token_file is not None:
            token = read_token(AdminConfig(token_file=args.token_file))
        else:
            token = read_token(admin) if admin is not None else None
    except AdminTokenError as err:
        raise CtlError(str(err), EXIT_REFUSED) from None
    return url, token


# ------------------------------------------------------------------- requests
def request(
    url: str, token: str | None, method: str, path: str, body: dict[str, str] | None = None
) -> tuple[int, Any]:
    """``method path`` on the API: (status, decoded JSON answer)."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Accept": "application/json", CLIENT_HEADER: "ctl"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as answer:
            status, raw = answer.status, answer.read(MAX_ANSWER)
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read(MAX_ANSWER)
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise CtlError(f"cannot reach {url}: {reason}", EXIT_UNREACHABLE) from None
    try:
        return status, json.loads(raw)
    except ValueError:
        raise CtlError(f"{url}{path}: not a JSON answer ({status})", EXIT_REFUSED) from None


# ------------------------------------------------------------------- printing
def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Plain aligned columns; numbers to the right."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    numeric = [
        bool(rows) and all(isinstance(r[i], int | float) for r in rows) for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        out = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(out).rstrip()

    return "\n".join([line(list(headers)), *(line(r) for r in cells)])


def _cell(value: object) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.0f}" if value == int(value) else f"{value:.1f}"
    return str(value)


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _print_status(view: dict[str, Any]) -> None:
    ready = view.get("ready", {})
    rows = [(k, v) for k, v in view.items() if k != "ready"]
    rows += [(f"ready.{k}", v) for k, v in ready.items()]
    print(
        table(
            ["KEY", "VALUE"], [(k, _cell(v).lower() if isinstance(v, bool) else v) for k, v in rows]
        )
    )


def _print_queues(view: dict[str, Any]) -> None:
    queues = view["queues"]
    print(
        table(
            ["GROUP", "PILOT", "ALGORITHM", "CALLERS", "OLDEST", "MEMBERS", "FREE"],
            [
                (
                    q["group"],
                    q["pilot"],
                    q["algorithm"],
                    q["callers"],
                    duration(q["oldest_wait_seconds"]),
                    q["members_total"],
                    q["members_free"],
                )
                for q in queues
            ],
        )
    )
    waiting = [(q["group"], w) for q in queues for w in q["waiting"]]
    if waiting:
        print()
        print(
            table(
                ["GROUP", "POSITION", "CALLER", "WAIT", "CALL"],
                [
                    (g, w["position"], w["caller"], duration(w["wait_seconds"]), w["call_id"])
                    for g, w in waiting
                ],
            )
        )


def _print_members(view: dict[str, Any]) -> None:
    print(
        table(
            ["MEMBER", "NAME", "STATE", "FOR", "REASON", "JOINED", "TALK", "ANSWERED"],
            [
                (
                    m["member"],
                    m["name"],
                    m["state"],
                    duration(m["state_seconds"]),
                    m["paused_reason"],
                    None
                    if m["joined_at"] is None
                    else time.strftime("%Y-%m-%d %H:%M", time.localtime(m["joined_at"])),
                    duration(m["talk_seconds"]),
                    m["answered"],
                )
                for m in view["members"]
            ],
        )
    )


def _print_calls(view: dict[str, Any]) -> None:
    print(
        table(
            ["CALL", "CALLER", "CALLEE", "GROUP", "STATE", "MEMBER", "AGE"],
            [
                (
                    c["call_id"],
                    c["caller"],
                    c["callee"],
                    c["group"],
                    c["state"],
                    c["member"],
                    duration(c["age_seconds"]),
                )
                for c in view["calls"]
            ],
        )
    )


PRINTERS = {
    "status": _print_status,
    "queues": _print_queues,
    "members": _print_members,
    "calls": _print_calls,
}


# ------------------------------------------------------------------------ run
def run(args: argparse.Namespace) -> int:
    """``huntgroup ctl ACTION``; returns the exit status (see the module docstring)."""
    try:
        return _run(args)
    except CtlError as err:
        print(f"huntgroup ctl: {err}", file=sys.stderr)
        return err.status


def _run(args: argparse.Namespace) -> int:
    url, token = target(args)
    action: str = args.action
    if action in VIEWS:
        path = "/api/v1/" + (
            f"members/{quote(args.group, safe='')}" if action == "members" else action
        )
        status, answer = request(url, token, "GET", path)
        if status != 200:
            return _refused(status, answer)
        if args.json:
            print(json.dumps(answer, indent=2, ensure_ascii=False))
        else:
            PRINTERS[action](answer)
        return EXIT_OK
    if action in CONTROLS:
        path = (
            f"/api/v1/members/{quote(args.group, safe='')}/{quote(args.member, safe='')}/{action}"
        )
        body = {"reason": args.reason} if args.reason else None
        status, answer = request(url, token, "POST", path, body)
    else:  # reload
        status, answer = request(url, token, "POST", "/api/v1/reload")
    if args.json:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
    if status != 200:
        return _refused(status, answer)
    if not args.json:
        if action == "reload":
            print("\n".join(answer["changes"]) or "reloaded: the file did not change")
        else:
            print(answer["message"])
    return EXIT_OK


def _refused(status: int, answer: Any) -> int:
    message = answer.get("error") if isinstance(answer, dict) else None
    if status == 401:
        message = f"{message or 'unauthorized'} (--token-file, or the token of --config)"
    print(f"huntgroup ctl: {status}: {message or answer}", file=sys.stderr)
    return EXIT_REFUSED
