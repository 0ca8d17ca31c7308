"""``huntgroup serve --log-format json`` with a real SIPp call: every line is one JSON object.

A SIPp caller (its number full of characters a URI allows but a log reader may not
like: a quote, escapes) calls a group; m1 is busy, m2 answers. A hostile datagram
(quotes, backslashes, escape sequences, a NUL, a bare CR) is thrown in first: it is
logged as malformed. Every line the server writes must parse as JSON, and the call's
lines must carry one call id and the group. (The SIP parser lets no line break through
to a log line; the formatter's escaping of line breaks, control characters and the
like is tested in ``tests/engine/aio/test_json_logs.py``.)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.ports import PortAllocator
from tests.support.sip_harness import (
    HOST,
    REPO_ROOT,
    HuntgroupServer,
    Sipp,
    group,
    server_config,
)

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]

PILOT = "0140000000"
CALLER = "0611'!~*()+$,%22%0A"  # legal in a SIP URI's user part, odd in a log
HOSTILE = (
    b"INVITE sip:" + PILOT.encode() + b"@127.0.0.1 SIP/2.0\r\n"
    b'Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK"\\\x1b[31m\r\n'
    b'From: "\\"}\x00\x7f\xff" <sip:a"b@x>;tag=1\r\n'
    b"To: <sip:" + PILOT.encode() + b"@127.0.0.1>\r\n"
    b'Call-ID: {"level": "FAKE"}\r\rCSeq: 1 INVITE\r\n'
    b"Content-Length: 0\r\n\r\n"
)


def json_lines(server: HuntgroupServer) -> list[dict[str, Any]]:
    text = server.log_file.read_bytes().decode("ascii")  # ensure_ascii: nothing else
    lines = text.split("\n")
    assert lines[-1] == "", "the log ends with a line break"
    return [json.loads(line) for line in lines[:-1]]


def test_every_line_is_json_and_a_calls_lines_share_its_id_and_group(
    sipp: Sipp, ports: PortAllocator, start_server: Callable[..., HuntgroupServer]
) -> None:
    m1 = sipp.member("m1", "busy")
    m2 = sipp.member("m2", "answer", answer_ms=100)
    config = server_config(ports, groups=[group("Support", PILOT, "linear", [m1.uri, m2.uri])])
    server = start_server(config, "--log-format", "json")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(HOSTILE, (HOST, server.port))
    caller = sipp.call("caller", server.port, PILOT, caller=CALLER, duration_ms=300)
    caller.expect_success()
    server.wait_for_log(r'"event": "ended"')
    assert server.stop() == 0

    entries = json_lines(server)
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= entry.keys(), entry
        assert entry["time"].endswith("Z") and len(entry["time"]) == len("2026-12-07T06:38:51.123Z")
    calls = [e for e in entries if e["message"].startswith("call k")]
    keys = {e["message"].split(":")[0].removeprefix("call ") for e in calls}
    assert len(keys) == 1, keys  # one call (the hostile datagram never became one)
    (key,) = keys
    assert {(e["call_id"], e["group"]) for e in calls} == {(key, "Support")}
    events = [e["event"] for e in calls]
    assert events[0] == "arrived" and events[-1] == "ended", events
    assert {"ringing", "not_taken", "answered", "bridged", "caller_hangup"} <= set(events)
    assert [e["member"] for e in calls if e["event"] == "ringing"] == [m1.uri, m2.uri]
    assert CALLER in calls[0]["message"]
    assert any(e["message"].startswith("stats: ") for e in entries)
    assert any(e["message"].startswith("malformed SIP from 127.0.0.1:") for e in entries)


def test_the_error_that_stops_the_server_at_start_is_a_json_line_too(
    ports: PortAllocator, tmp_path: Path
) -> None:
    config = server_config(ports)
    server = HuntgroupServer(config, tmp_path / "server", args=("--log-format", "json"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((HOST, server.port))  # the server's SIP port is in use
        try:
            assert server.launch().wait(timeout=60) == 1
        finally:
            server.kill()
    entries = json_lines(server)
    assert entries[-1]["level"] == "ERROR", entries
    assert entries[-1]["message"].startswith("huntgroup serve: "), entries


def test_a_configuration_that_cannot_load_is_reported_in_json_lines(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("server:\n  shutdown_grace: -1\ngroups: 7\n")
    serve = [sys.executable, "-m", "huntgroup", "serve", "--config", str(config)]
    done = subprocess.run(
        [*serve, "--log-format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert done.returncode == 1
    entries = [json.loads(line) for line in done.stderr.splitlines()]
    assert len(entries) >= 2, done.stderr
    assert {(e["level"], e["logger"]) for e in entries} == {("ERROR", "huntgroup.config")}
    assert all(e["message"].startswith(f"{config}:") for e in entries), entries
    assert any("shutdown_grace" in e["message"] for e in entries), entries
