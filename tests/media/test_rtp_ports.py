"""The RTP port allocator: even ports, pairs, FIFO reuse, exhaustion, no leak."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from huntgroup.errors import MediaError
from huntgroup.media.ports import PortAllocator, PortError, PortsExhausted, parse_port_range


def test_even_ports_with_room_for_rtcp() -> None:
    ports = PortAllocator("20001-20008")  # odd LOW: starts at 20002; 20008 has no RTCP port
    assert ports.capacity == 3
    got = [ports.allocate() for _ in range(3)]
    assert got == [20002, 20004, 20006]
    assert all(p % 2 == 0 and p + 1 <= 20008 for p in got)
    with pytest.raises(PortsExhausted, match="all 3 RTP port pairs") as info:
        ports.allocate()
    assert isinstance(info.value, MediaError)


def test_release_returns_the_port_and_reuses_it_last() -> None:
    ports = PortAllocator((30000, 30007))
    a, b = ports.allocate(), ports.allocate()
    ports.release(a)
    assert ports.allocate() == 30004
    assert ports.allocate() == 30006
    assert ports.allocate() == a  # the released port comes back after the never-used ones
    assert ports.is_allocated(b)
    with pytest.raises(PortsExhausted):
        ports.allocate()
    ports.release(b)
    with pytest.raises(PortError, match="not allocated"):
        ports.release(b)
    with pytest.raises(PortError, match="not allocated"):
        ports.release(12345)


@pytest.mark.parametrize("text", ["", "20000", "a-b", "20010-20000", "0-10", "70000-70010", "5-5"])
def test_bad_ranges(text: str) -> None:
    with pytest.raises(PortError):
        PortAllocator(text)


def test_parse_port_range() -> None:
    assert parse_port_range("20000-20999") == (20000, 20999)
    assert parse_port_range(" 4000 - 4001 ") == (4000, 4001)


@settings(max_examples=60)
@given(
    low=st.integers(1024, 60000),
    size=st.integers(3, 40),
    seed=st.integers(0, 2**32),
    bias=st.floats(0.2, 0.8),
)
def test_no_leak_and_no_double_allocation(low: int, size: int, seed: int, bias: float) -> None:
    """Thousands of allocate/release steps, drawn from a seeded generator."""
    ports = PortAllocator((low, low + size - 1))
    capacity = ports.capacity
    held: list[int] = []
    rng = random.Random(seed)
    for _ in range(3000):
        allocate, pick = rng.random() < bias, rng.randrange(1000)
        if allocate:
            if len(held) == capacity:
                with pytest.raises(PortsExhausted):
                    ports.allocate()
                continue
            port = ports.allocate()
            assert port not in held
            assert port % 2 == 0 and low <= port and port + 1 <= low + size - 1
            held.append(port)
        elif held:
            ports.release(held.pop(pick % len(held)))
        assert ports.in_use == len(held)
        assert ports.available + ports.in_use == capacity
    for port in held:
        ports.release(port)
    assert ports.available == capacity
    assert sorted(ports.allocate() for _ in range(capacity)) == list(
        range(low + low % 2, low + size - 1, 2)
    )
