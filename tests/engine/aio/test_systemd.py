"""The sd_notify protocol: addresses, messages, the watchdog, and a real datagram socket."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
from collections.abc import Iterator

import pytest

from huntgroup.engine.aio.systemd import (
    Notifier,
    message,
    socket_address,
    status_line,
    watchdog_interval,
)
from tests.support.waiting import async_wait_until


@pytest.fixture
def abstract() -> Iterator[tuple[str, socket.socket]]:
    """A datagram socket in the abstract namespace, as ``$NOTIFY_SOCKET`` names it."""
    name = f"huntgroup-test-{secrets.token_hex(8)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(5)
    try:
        yield f"@{name}", sock
    finally:
        sock.close()


def test_addresses_a_path_or_an_abstract_name() -> None:
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@huntgroup/notify") == b"\0huntgroup/notify"
    assert socket_address("@") is None
    assert socket_address("vsock:2:1234") is None
    assert socket_address("relative/path") is None


def test_a_message_is_key_value_lines_with_no_line_break_inside_a_value() -> None:
    assert message({"READY": "1", "STATUS": "2 call(s), 0 queued"}) == (
        b"READY=1\nSTATUS=2 call(s), 0 queued\n"
    )
    assert message({"STATUS": "one\ntwo\r\nthree"}) == b"STATUS=one two three\n"
    for bad in ("", "ready", "A=B"):
        with pytest.raises(ValueError, match="bad sd_notify field name"):
            message({bad: "1"})


def test_the_watchdog_interval_is_half_of_watchdog_usec_for_our_pid_only() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}, 42) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, 42) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "41"}, 42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, 42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, 42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "-5"}, 42) is None
    assert watchdog_interval({}, 42) is None


def test_status_line() -> None:
    gauges = {"calls_active": 3, "queued": 1, "contacts": 9}
    assert status_line(gauges, draining=False) == "3 call(s), 1 queued"
    assert status_line(gauges, draining=True) == "draining: 3 call(s), 1 queued"


def test_not_under_systemd_nothing_is_sent() -> None:
    notifier = Notifier.from_environment({"WATCHDOG_USEC": "1000000"})
    assert not notifier.active and notifier.watchdog is None
    notifier.ready("x")
    notifier.stopping()
    notifier.close()


def test_ready_and_stopping_reach_an_abstract_socket(abstract: tuple[str, socket.socket]) -> None:
    name, sock = abstract
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": name})
    assert notifier.active
    try:
        notifier.ready("0 call(s), 0 queued")
        assert sock.recv(4096) == b"READY=1\nSTATUS=0 call(s), 0 queued\n"
        notifier.status("0 call(s), 0 queued")  # unchanged: not sent again
        notifier.stopping("draining: 1 call(s), 0 queued")
        assert sock.recv(4096) == b"STOPPING=1\nSTATUS=draining: 1 call(s), 0 queued\n"
    finally:
        notifier.close()


def test_a_socket_that_is_gone_is_logged_once_and_never_fails_the_server(
    caplog: pytest.LogCaptureFixture,
) -> None:
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": "/nonexistent/huntgroup/notify"})
    caplog.set_level(logging.DEBUG, logger="huntgroup.systemd")
    notifier.ready()
    notifier.stopping()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "could not notify systemd" in warnings[0].getMessage()
    notifier.close()


def test_an_unsupported_address_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not notifier.active
    assert "unsupported address" in caplog.text


def test_the_watchdog_pings_from_the_loop_and_a_reload_is_bracketed(
    abstract: tuple[str, socket.socket],
) -> None:
    name, sock = abstract
    sock.setblocking(False)
    received: list[bytes] = []

    def drain() -> list[bytes]:
        try:
            while True:
                received.append(sock.recv(4096))
        except BlockingIOError:
            return received

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        notifier = Notifier.from_environment(
            {"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "20000"}, pid=1
        )
        assert notifier.watchdog == 0.01
        calls = [0]
        notifier.ready("0 call(s), 0 queued")
        notifier.start(loop, lambda: f"{calls[0]} call(s), 0 queued")
        await async_wait_until(lambda: drain().count(b"WATCHDOG=1\n") >= 3, timeout=30)
        # a loop stuck in a callback (here this one, for 10 periods) sends no ping: the
        # pings come from the loop itself, which is what makes the watchdog worth having
        pinged = drain().count(b"WATCHDOG=1\n")
        time.sleep(0.1)  # the stuck callback, not a synchronisation
        assert drain().count(b"WATCHDOG=1\n") == pinged
        await async_wait_until(lambda: drain().count(b"WATCHDOG=1\n") > pinged, timeout=30)
        calls[0] = 2
        await async_wait_until(lambda: b"STATUS=2 call(s), 0 queued\n" in drain(), timeout=30)
        received.clear()

        async def failing_reload() -> None:
            raise RuntimeError("the reload failed")

        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        with pytest.raises(RuntimeError):
            await notifier.reload(failing_reload())
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        notices = [m for m in drain() if m != b"WATCHDOG=1\n"]
        fields = dict(line.split("=", 1) for line in notices[0].decode().splitlines())
        assert fields["RELOADING"] == "1" and before <= int(fields["MONOTONIC_USEC"]) <= after
        assert notices[1] == b"READY=1\nSTATUS=2 call(s), 0 queued\n"
        notifier.close()
        assert not notifier.active
        notifier.ready()  # closed: a no-op

    asyncio.run(scenario())


def test_a_failing_status_line_does_not_stop_the_watchdog(
    abstract: tuple[str, socket.socket], caplog: pytest.LogCaptureFixture
) -> None:
    name, sock = abstract
    sock.setblocking(False)
    pings: list[bytes] = []

    def broken() -> str:
        raise RuntimeError("no gauges")

    def drain() -> int:
        try:
            while True:
                pings.append(sock.recv(4096))
        except BlockingIOError:
            return pings.count(b"WATCHDOG=1\n")

    async def scenario() -> None:
        notifier = Notifier.from_environment({"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "20000"})
        notifier.start(asyncio.get_running_loop(), broken)
        await async_wait_until(lambda: drain() >= 3, timeout=30)
        notifier.close()

    asyncio.run(scenario())
    assert "the STATUS= line failed" in caplog.text
