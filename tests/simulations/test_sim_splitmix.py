"""The compiled build's draws (``splitmix``) are the interpreted ones, bit for bit."""

from __future__ import annotations

import random

import numpy as np

from huntgroup.simulations.model.distributions import prefix, prefixes, uniform_after
from huntgroup.simulations.model.splitmix import COMPILED, signed, uniform_after_native
from huntgroup.simulations.virtual import driver


def test_signed_states_are_the_same_bits() -> None:
    assert signed(0) == 0
    assert signed((1 << 63) - 1) == (1 << 63) - 1
    assert signed(1 << 63) == -(1 << 63)
    assert signed((1 << 64) - 1) == -1
    calls = np.arange(50, dtype=np.int64)
    plain = prefixes(3, calls, state=prefix(4, 5, 6))
    assert prefixes(3, calls, state=prefix(4, 5, 6), signed=True) == [signed(s) for s in plain]
    assert all(s & ((1 << 64) - 1) == p for s, p in zip(map(signed, plain), plain, strict=True))


def test_the_native_draws_are_the_draws_when_compiled() -> None:
    """``uniform_after_native`` gives ``uniform_after``'s very floats: compiled (mypyc)
    in wrapping 64-bit integers, interpreted in growing ones whose low bits are the same
    (the driver uses it only compiled: interpreted it is the slower of the two)."""
    assert driver.COMPILED is COMPILED
    rng = random.Random(14)
    edges = [0, 1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1]
    states = edges + [rng.getrandbits(64) for _ in range(20_000)]
    for state in states:
        a, b = rng.randrange(0, 5000), rng.randrange(0, 40)
        assert uniform_after_native(signed(state), a, b) == uniform_after(state, a, b)
