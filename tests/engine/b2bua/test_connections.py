"""TCP/TLS connection bookkeeping: the descriptor budget, the caps, the report throttle,
and the open-files limit raised at start."""

from __future__ import annotations

import logging
import resource

import pytest

from huntgroup.config.models import Config, ConnectionsConfig, MediaConfig, ServerConfig
from huntgroup.engine.aio.server import connection_limiter, raise_open_files_limit
from huntgroup.engine.b2bua.connections import (
    MIN_CONNECTIONS,
    RESERVED_DESCRIPTORS,
    ConnectionLimiter,
    ReportThrottle,
    ResourceLimitError,
    connection_budget,
    source_of,
)


def test_budget_keeps_every_rtp_port_and_a_margin_out_of_the_connections() -> None:
    assert connection_budget(20000, rtp_ports=1000, max_total=None) == (
        20000 - 1000 - RESERVED_DESCRIPTORS
    )
    assert connection_budget(20000, rtp_ports=1000, max_total=5000) == 5000
    fits = 20000 - 1000 - RESERVED_DESCRIPTORS
    assert connection_budget(20000, rtp_ports=1000, max_total=fits) == fits


def test_a_cap_that_does_not_fit_beside_the_media_is_refused_with_what_to_change() -> None:
    with pytest.raises(ResourceLimitError) as info:
        connection_budget(1024, rtp_ports=1000, max_total=500)
    text = str(info.value)
    assert "server.connections.max_total (500)" in text
    assert "1024 descriptors - 1000 RTP ports" in text and "leave 0" in text
    assert "ulimit -Hn" in text and "server.media.rtp_ports" in text
    with pytest.raises(ResourceLimitError, match="minimum of"):
        connection_budget(1024, rtp_ports=1024 - RESERVED_DESCRIPTORS - MIN_CONNECTIONS + 1,
                          max_total=None)  # fmt: skip
    assert (
        connection_budget(
            1024, rtp_ports=1024 - RESERVED_DESCRIPTORS - MIN_CONNECTIONS, max_total=None
        )
        == MIN_CONNECTIONS
    )


def test_sources_are_addresses_and_ipv6_counts_per_64() -> None:
    assert source_of("192.0.2.7") == "192.0.2.7"
    assert source_of("2001:db8:1:2:aaaa::1") == source_of("2001:db8:1:2:bbbb::9")
    assert source_of("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert source_of("2001:db8:1:3::1") != source_of("2001:db8:1:2::1")
    assert source_of("::ffff:192.0.2.7") == "192.0.2.7"
    assert source_of("fe80::1%eth0") == "fe80::/64"


def test_limiter_caps_per_source_and_in_total() -> None:
    limiter = ConnectionLimiter(max_per_source=2, max_total=4)
    assert [limiter.accept("a") for _ in range(3)] == [None, None, "per-source"]
    assert limiter.accept("b") is None
    assert limiter.connect()  # one of ours: counts in the total only
    assert limiter.open == 4
    assert limiter.accept("c") == "total" and not limiter.connect()
    limiter.release(None)
    assert limiter.accept("c") is None
    for source in ("a", "a", "b", "c"):
        limiter.release(source)
    assert limiter.open == 0 and limiter.sources == 0  # no entry outlives its connections
    assert limiter.held_by("a") == 0


def test_accepted_connections_never_take_the_outgoing_reserve() -> None:
    limiter = ConnectionLimiter(max_per_source=100, max_total=6, outgoing_reserve=2)
    assert limiter.max_accepted == 4
    assert [limiter.accept(f"10.0.0.{i}") for i in range(5)] == [None] * 4 + ["total"]
    assert limiter.connect() and limiter.connect()  # the reserve is there for our own
    assert not limiter.connect() and limiter.open == 6
    limiter.release(None)
    limiter.release(None)
    assert limiter.accept("10.0.0.9") == "total"  # free places, but only the reserve's
    limiter.release("10.0.0.0")
    assert limiter.accept("10.0.0.9") is None
    # our own connections may also use free places beyond the reserve...
    limiter.release("10.0.0.9")
    assert [limiter.connect() for _ in range(3)] == [True, True, True]
    # ...and then accepted ones are held by the total cap
    assert limiter.accept("10.0.0.9") == "total"
    with pytest.raises(ValueError):
        ConnectionLimiter(max_per_source=1, max_total=2, outgoing_reserve=2)


def test_the_outgoing_reserve_counts_in_the_descriptor_budget() -> None:
    budget = connection_budget(20000, rtp_ports=1000, max_total=None, outgoing_reserve=32)
    assert budget == 20000 - 1000 - RESERVED_DESCRIPTORS  # the reserve is within it
    tight = 1024 - RESERVED_DESCRIPTORS - MIN_CONNECTIONS - 32
    assert connection_budget(1024, rtp_ports=tight, max_total=None, outgoing_reserve=32) == (
        MIN_CONNECTIONS + 32
    )
    with pytest.raises(ResourceLimitError, match=r"outgoing_reserve \(32\)"):
        connection_budget(1024, rtp_ports=tight + 1, max_total=None, outgoing_reserve=32)
    with pytest.raises(ResourceLimitError, match="leaves no place for incoming"):
        connection_budget(20000, rtp_ports=1000, max_total=32, outgoing_reserve=32)


def test_a_max_total_within_the_outgoing_reserve_is_refused_by_the_config() -> None:
    assert ConnectionsConfig().outgoing_reserve == 32
    with pytest.raises(ValueError, match="must be above outgoing_reserve"):
        ConnectionsConfig(max_total=10, outgoing_reserve=10)
    assert ConnectionsConfig(max_total=10, outgoing_reserve=0).outgoing_reserve == 0


def test_report_throttle_holds_back_and_counts() -> None:
    throttle = ReportThrottle(10.0)
    assert throttle.due(now=0.0) == 0
    assert [throttle.due(now=t) for t in (1.0, 2.0, 9.9)] == [None, None, None]
    assert throttle.due(now=10.0) == 3
    assert throttle.due(now=10.5) is None
    assert throttle.due(now=25.0) == 1


def test_open_files_limit_raised_to_the_hard_limit_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, 512)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        with caplog.at_level(logging.INFO, logger="huntgroup.server"):
            limit = raise_open_files_limit()
        now_soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        assert limit == now_soft
        if hard != resource.RLIM_INFINITY:
            assert now_soft == hard
        assert f"open files: limit raised from {lowered} to {now_soft}" in caplog.text
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_server_caps_come_from_the_config_and_the_limit() -> None:
    def config(**connections: object) -> Config:
        return Config(
            server=ServerConfig(
                media=MediaConfig(rtp_ports="20000-20999"),
                connections=ConnectionsConfig(**connections),  # type: ignore[arg-type]
            )
        )

    limiter = connection_limiter(config(max_per_source=5, max_total=100))
    assert (limiter.max_per_source, limiter.max_total) == (5, 100)
    assert (limiter.outgoing_reserve, limiter.max_accepted) == (32, 68)
    limiter = connection_limiter(config(max_total=100, outgoing_reserve=4))
    assert limiter.max_accepted == 96
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    derived = connection_limiter(config())
    if hard != resource.RLIM_INFINITY:
        assert derived.max_total == hard - 1000 - RESERVED_DESCRIPTORS
    with pytest.raises(ResourceLimitError):
        connection_limiter(config(max_total=10**9))
