"""The RTP port allocator: even ports, pairs, random order, cooled reuse, exhaustion, no leak."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from huntgroup.errors import MediaError
from huntgroup.media.ports import PortAllocator, PortError, PortsExhausted, parse_port_range


def test_even_ports_with_room_for_rtcp() -> None:
    ports = PortAllocator("20001-20008", rng=random.Random(1))  # odd LOW: starts at 20002
    assert ports.capacity == 3  # 20008 has no RTCP port
    got = [ports.allocate() for _ in range(3)]
    assert sorted(got) == [20002, 20004, 20006]
    assert all(p % 2 == 0 and p + 1 <= 20008 for p in got)
    with pytest.raises(PortsExhausted, match="all 3 RTP port pairs") as info:
        ports.allocate()
    assert isinstance(info.value, MediaError)


def test_release_returns_the_port_and_reuses_it_last() -> None:
    ports = PortAllocator((30000, 30007), rng=random.Random(7))  # 4 pairs: 2 may cool down
    a, b = ports.allocate(), ports.allocate()
    ports.release(a)
    never_used = {30000, 30002, 30004, 30006} - {a, b}
    assert {ports.allocate(), ports.allocate()} == never_used
    assert ports.allocate() == a  # the released port comes back after the never-used ones
    assert ports.is_allocated(b)
    with pytest.raises(PortsExhausted):
        ports.allocate()
    ports.release(b)
    with pytest.raises(PortError, match="not allocated"):
        ports.release(b)
    with pytest.raises(PortError, match="not allocated"):
        ports.release(12345)


def test_ports_are_handed_out_in_a_random_order_reproducible_under_a_seed() -> None:
    """The next call's port cannot be guessed from the last one's (RTP hijacking)."""

    def order(seed: int) -> list[int]:
        ports = PortAllocator((20000, 20999), rng=random.Random(seed))
        return [ports.allocate() for _ in range(ports.capacity)]

    first = order(42)
    assert sorted(first) == list(range(20000, 20999, 2)), "every pair, once"
    assert first == order(42), "the same seed gives the same order"
    assert first != order(43)
    steps = [b - a for a, b in itertools.pairwise(first)]
    assert steps.count(2) < len(steps) // 10, "mostly the next pair up: predictable"
    assert first[:20] != sorted(first[:20]) and first[:20] != sorted(first[:20], reverse=True)


def test_released_pairs_cool_down_before_the_draw_takes_them_again() -> None:
    """A pair just released is not handed out while half the range has not cooled."""
    for seed in range(20):
        ports = PortAllocator((20000, 20039), rng=random.Random(seed))  # 20 pairs, 10 cool
        first = ports.allocate()
        ports.release(first)
        others = [ports.allocate() for _ in range(19)]
        assert first not in others, "a pair just released came back while others were free"
        assert ports.allocate() == first
        for port in [first, *others]:
            ports.release(port)
        held = [ports.allocate() for _ in range(20)]
        for port in held[:10]:
            ports.release(port)
        again = [ports.allocate() for _ in range(10)]
        assert again == held[:10], "all pool pairs in use: the longest cooled come first"
        ports.release(again[0])  # the only free pair: it comes straight back
        assert ports.allocate() == again[0]


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
    ports = PortAllocator((low, low + size - 1), rng=random.Random(seed + 1))
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
