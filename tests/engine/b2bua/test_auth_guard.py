"""AuthGuard: failed authentications per source and per line, lockouts with back-off."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from huntgroup.engine.b2bua.auth_guard import AuthGuard


def guard(**kwargs: float) -> AuthGuard:
    settings_: dict[str, float] = {
        "window": 300.0,
        "max_failures_per_source": 5,
        "max_failures_per_line": 3,
        "lockout_base": 60.0,
        "lockout_max": 600.0,
        "max_entries": 100,
    }
    settings_.update(kwargs)
    return AuthGuard(**settings_)  # type: ignore[arg-type]


def test_a_line_is_locked_after_its_maximum_then_backs_off_exponentially() -> None:
    g = guard()
    assert g.failed("10.0.0.1", "L", now=0.0) == []
    assert g.failed("10.0.0.2", "L", now=1.0) == []
    [lockout] = g.failed("10.0.0.3", "L", now=2.0)
    assert (lockout.kind, lockout.key, lockout.failures, lockout.seconds) == ("line", "L", 3, 60.0)
    assert g.locked("10.0.0.9", "L", now=2.0) == 60
    assert g.locked("10.0.0.9", "L", now=61.5) == 1  # rounded up
    assert g.locked("10.0.0.9", "L", now=62.0) is None
    assert g.locked("10.0.0.9", "other", now=10.0) is None
    durations = []
    now = 62.0
    for _ in range(6):
        for i in range(3):
            found = g.failed(f"10.1.0.{i}", "L", now=now)
        durations.append(found[0].seconds)
        now += found[0].seconds
    assert durations == [120.0, 240.0, 480.0, 600.0, 600.0, 600.0]


def test_failures_outside_the_window_do_not_add_up() -> None:
    g = guard()
    for t in (0.0, 1.0):
        g.failed("10.0.0.1", "L", now=t)
    assert g.failed("10.0.0.1", "L", now=400.0) == []  # the window started again
    assert g.locked("10.0.0.1", "L", now=400.0) is None


def test_a_source_is_locked_for_every_line() -> None:
    g = guard()
    for i in range(4):
        assert g.failed("10.0.0.1", f"L{i}", now=float(i)) == []
    [lockout] = g.failed("10.0.0.1", "L9", now=4.0)
    assert lockout.kind == "source"
    assert g.locked("10.0.0.1", "anything", now=5.0) == 59
    assert g.locked("10.0.0.2", "anything", now=5.0) is None


def test_a_lines_registered_hosts_are_spared_its_lockout_not_their_own() -> None:
    g = guard()
    for i in range(3):
        g.failed(f"10.0.0.{i}", "L", now=0.0)
    assert g.locked("192.0.2.1", "L", now=1.0) == 59
    assert (
        g.locked(
            "192.0.2.1",
            "L",
            now=1.0,
            address="udp 192.0.2.1:5060",
            line_addresses={"udp 192.0.2.1:5060"},
        )
        is None
    )


def test_success_resets_the_lines_count_not_the_sources() -> None:
    g = guard()
    for i in range(2):
        g.failed("10.0.0.1", "L", now=float(i))
    g.succeeded("L")
    assert g.failed("10.0.0.1", "L", now=3.0) == []  # the line's count started again
    g.failed("10.0.0.1", "M", now=4.0)
    [lockout] = g.failed("10.0.0.1", "N", now=5.0)  # the source's 5th failure
    assert lockout.kind == "source"


def test_tables_are_bounded_and_entries_end_on_the_timer() -> None:
    g = guard(max_entries=10, max_failures_per_source=1000)
    for i in range(50):
        g.failed(f"10.0.{i}.1", f"L{i}", now=float(i))
        assert len(g.sources.entries) <= 10 and len(g.lines.entries) <= 10
    due = g.get_timer()
    assert due == 40.0 + g.forget_after  # the oldest entry kept
    g.handle_timer(now=due - 0.001)
    assert len(g) == 20
    g.handle_timer(now=due)
    assert len(g) == 18
    g.handle_timer(now=49.0 + g.forget_after)
    assert len(g) == 0 and g.get_timer() is None


@pytest.mark.parametrize(
    "bad",
    [
        {"window": 0.0},
        {"lockout_base": 0.0},
        {"lockout_max": 10.0},
        {"max_failures_per_line": 0},
        {"max_entries": 0},
    ],
)
def test_bad_settings_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        guard(**bad)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 5), st.floats(0, 200)), min_size=1, max_size=80
    )
)
def test_no_entry_outlives_its_deadline_and_no_lockout_exceeds_the_max(
    events: list[tuple[int, int, float]],
) -> None:
    g = guard(max_entries=4)
    now = 0.0
    for source, line, dt in events:
        now += dt
        for lockout in g.failed(f"s{source}", f"l{line}", now=now):
            assert 60.0 <= lockout.seconds <= 600.0
        assert len(g.sources.entries) <= 4 and len(g.lines.entries) <= 4
        wait = g.locked(f"s{source}", f"l{line}", now=now)
        assert wait is None or 0 < wait <= 600
    g.handle_timer(now=now + g.forget_after)
    assert len(g) == 0


def test_a_source_lockout_spares_the_lines_registered_from_it() -> None:
    """Review finding 1: failures for other numbers from a phone's address lock the
    source, not the line that has a live binding from it (keyed by source and line)."""
    g = guard()
    for i in range(5):
        g.failed("192.0.2.1", f"unknown{i}", now=float(i))
    assert g.locked("192.0.2.1", "other", now=5.0) == 59
    assert (
        g.locked(
            "192.0.2.1",
            "L",
            now=5.0,
            address="udp 192.0.2.1:5060",
            line_addresses={"udp 192.0.2.1:5060"},
        )
        is None
    )


def test_failures_for_a_registered_line_from_its_host_count_under_the_pair() -> None:
    g = guard()
    for i in range(2):
        assert (
            g.failed(
                "192.0.2.1",
                "L",
                now=float(i),
                address="udp 192.0.2.1:5060",
                line_addresses={"udp 192.0.2.1:5060"},
            )
            == []
        )
    found = g.failed(
        "192.0.2.1",
        "L",
        now=2.0,
        address="udp 192.0.2.1:5060",
        line_addresses={"udp 192.0.2.1:5060"},
    )
    assert {(x.kind, x.what) for x in found} == {
        ("pair", "line L from udp 192.0.2.1:5060"),
        ("line", "line L"),
    }
    assert (
        g.locked(
            "192.0.2.1",
            "L",
            now=3.0,
            address="udp 192.0.2.1:5060",
            line_addresses={"udp 192.0.2.1:5060"},
        )
        == 59
    )
    assert g.locked("192.0.2.1", "M", now=3.0) is None  # the source is not locked
    assert g.locked("192.0.2.7", "L", now=3.0) == 59  # they count for the line too


def test_trusted_peers_skip_the_source_count_not_the_line_count() -> None:
    g = guard()
    for i in range(10):
        g.failed("192.0.2.1", f"L{i % 3}", now=float(i), trusted=True)
    assert "192.0.2.1" not in g.sources.entries
    assert g.locked("192.0.2.1", "other", now=10.0, trusted=True) is None
    assert g.locked("192.0.2.1", "L0", now=10.0, trusted=True) is not None


def test_ipv6_sources_count_per_64() -> None:
    """Review finding 5: the same key as the connection caps (connections.source_of)."""
    g = guard()
    for i in range(5):
        g.failed(f"2001:db8::{i + 1}", f"L{i}", now=float(i))
    assert g.locked("2001:db8::ffff:1", "x", now=5.0) == 59
    assert g.locked("2001:db8:0:1::1", "x", now=5.0) is None
    assert list(g.sources.entries) == ["2001:db8::/64"]


PHONE = "udp 192.0.2.1:5060"


def test_only_the_bindings_exact_address_is_spared_not_its_host() -> None:
    """Review 2, A: another port of the phone's host (an office NAT, a blind UDP spoofer)
    counts as a stranger: its failures lock the line and the host, never the pair, and
    the phone at its exact address keeps authenticating."""
    g = guard()
    for i in range(5):
        g.failed(
            "192.0.2.1", "L", now=float(i), address="udp 192.0.2.1:7199", line_addresses={PHONE}
        )
    assert "line L from udp 192.0.2.1:7199" not in g.pairs.entries
    assert g.locked("192.0.2.1", "L", now=5.0, address="udp 192.0.2.1:7199") == 59
    assert g.locked("192.0.2.1", "M", now=5.0, address="udp 192.0.2.1:7199") == 59  # the host
    assert g.locked("192.0.2.1", "L", now=5.0, address=PHONE, line_addresses={PHONE}) is None
    # another transport on the same host and port is another address too
    assert g.locked("192.0.2.1", "L", now=5.0, address="tcp 192.0.2.1:5060", line_addresses={PHONE})


def test_address_of_keys_transport_host_and_port() -> None:
    from huntgroup.engine.b2bua.auth_guard import address_of

    assert address_of("UDP", "192.0.2.1", 5060) == "udp 192.0.2.1:5060"
    assert address_of("tls", "2001:db8::1", 5061) == "tls [2001:db8::1]:5061"
