"""The caller numbers of simulated calls: unique per call, the same in both drivers.

The k-th call of traffic g comes from ``prefix`` + 8 digits, ``(|g| * 1,000,003 +
k) mod 10^8``: a number an admin can read in a call record and trace back to its
call. The virtual driver makes the numbers of a run's pilot calls in bulk
(:func:`caller_numbers`, numpy); one call's number (:func:`caller_number_of`)
is the same function on one key.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

PILOT_PREFIX = "06"  # a call to a pilot
DIRECT_PREFIX = "07"  # a direct call to a line (the live driver keys these by member)
OUTGOING_PREFIX = "09"  # a member's own outgoing call (g: the member's index + 1)
_STRIDE = 1_000_003  # a prime: the traffics' ranges interleave rather than overlap
_SPAN = 100_000_000  # 8 digits


def caller_numbers(g: int, calls: npt.NDArray[np.int64], prefix: str = PILOT_PREFIX) -> list[str]:
    """The numbers of the calls ``calls`` (their index k) of traffic ``g``."""
    digits = ((abs(g) * _STRIDE + calls) % _SPAN).tolist()
    pattern = prefix.replace("%", "%%") + "%08d"
    return [pattern % n for n in digits]


def caller_number_of(g: int, k: int, prefix: str = PILOT_PREFIX) -> str:
    """The number of the k-th call of traffic ``g``."""
    return caller_numbers(g, np.array([k], dtype=np.int64), prefix)[0]
