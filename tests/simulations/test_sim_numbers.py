"""Caller numbers of simulated calls: one formula for both drivers, bulk or one by one."""

from __future__ import annotations

import numpy as np

from huntgroup.simulations.live.plan import outgoing_number
from huntgroup.simulations.model.numbers import (
    DIRECT_PREFIX,
    caller_number_of,
    caller_numbers,
)


def test_the_numbers_are_the_documented_ones() -> None:
    # (|g| * 1,000,003 + k) mod 10^8 on 8 digits, after the prefix
    assert caller_number_of(0, 5) == "0600000005"
    assert caller_number_of(1, 0) == "0601000003"
    assert caller_number_of(-1, 2, DIRECT_PREFIX) == "0701000005"
    assert caller_number_of(150, 7) == "0650000457"  # 150,000,450 + 7 wraps at 10^8
    assert outgoing_number(0, 3) == "0901000006"  # the member's index + 1


def test_bulk_numbers_are_the_one_by_one_numbers() -> None:
    for g in (0, 3, 99):
        calls = np.arange(2_000, dtype=np.int64)
        bulk = caller_numbers(g, calls)
        assert bulk == [caller_number_of(g, int(k)) for k in calls]
        assert len(set(bulk)) == len(bulk)


def test_a_prefix_is_taken_literally() -> None:
    assert caller_number_of(0, 1, "%d") == "%d00000001"
