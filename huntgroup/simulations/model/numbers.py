"""The caller numbers of simulated calls: unique per call, the same in both drivers.

The k-th call of traffic g comes from ``prefix`` + 8 digits, ``(|g| * 1,000,003 +
k) mod 10^8``: a number an admin can read in a call record and trace back to its
call. The virtual driver makes the numbers of a run's pilot calls in bulk
(:func:`caller_numbers`, numpy); one call's number (:func:`caller_number_of`)
comes from the same formula on one key.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

PILOT_PREFIX = "06"  # a call to a pilot
DIRECT_PREFIX = "07"  # a direct call to a line (the live driver keys these by member)
OUTGOING_PREFIX = "09"  # a member's own outgoing call (g: the member's index + 1)
_STRIDE = 1_000_003  # a prime: the traffics' ranges interleave rather than overlap
_SPAN = 100_000_000  # 8 digits


def _digits(g: int, k: Any) -> Any:
    """The 8 digits of the k-th call(s) of traffic ``g``: ``k`` an int or a numpy array."""
    return (abs(g) * _STRIDE + k) % _SPAN


def caller_numbers(g: int, calls: npt.NDArray[np.int64], prefix: str = PILOT_PREFIX) -> list[str]:
    """The numbers of the calls ``calls`` (their index k) of traffic ``g``."""
    pattern = prefix.replace("%", "%%") + "%08d"
    return [pattern % n for n in _digits(g, calls).tolist()]


def caller_number_of(g: int, k: int, prefix: str = PILOT_PREFIX) -> str:
    """The number of the k-th call of traffic ``g`` (one call: no array made)."""
    return f"{prefix}{_digits(g, k):08d}"
