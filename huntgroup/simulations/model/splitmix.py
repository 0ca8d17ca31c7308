"""``uniform_after`` in native 64-bit integers, for the build compiled by mypyc.

Theory of operation
-------------------
:func:`~huntgroup.simulations.model.distributions.uniform_after` finishes a
SplitMix64 draw with Python integers masked to 64 bits: products of 128 bits,
arbitrary-precision arithmetic at every step. Compiled by mypyc
(``scripts/build_native.sh``, docs/native.md), the same code still works on
arbitrary-precision integers (about a tenth of a compiled simulation). This
module writes the same function in ``i64``, mypyc's native 64-bit integer:
compiled, its arithmetic wraps modulo 2**64 (C's two's complement, ``-fwrapv``),
which is what the masks do; the unsigned constants are written as the signed
integers of the same 64 bits, and a logical shift right is an arithmetic shift
masked to the bits kept. The result is the very same float, bit for bit (a test
compares them, on both builds).

Interpreted, ``i64`` is ``int`` and nothing wraps: the products grow past 64
bits, but every step reads only the low 64 bits of the one before (the shifts
are masked to the bits a 64-bit shift keeps, and the low bits of a sum or a
product depend on the low bits of its terms only), so the result is the same
float, more slowly than :func:`uniform_after`'s. The simulator uses this one
only when :data:`COMPILED`. It takes its states as signed 64-bit integers
(:func:`signed`; compiled, an ``i64`` argument of 2**63 or more would not fit).
"""

from __future__ import annotations

from types import FunctionType
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:  # a build-time tool only: the annotations are never evaluated
    from mypy_extensions import i64

_C1: Final = -7046029254386353131  # 0x9E3779B97F4A7C15 as a signed 64-bit integer
_C2: Final = -4658895280553007687  # 0xBF58476D1CE4E5B9
_C3: Final = -7723592293110705685  # 0x94D049BB133111EB
_LOW34: Final = (1 << 34) - 1  # the bits a logical shift right by 30 keeps
_LOW37: Final = (1 << 37) - 1  # by 27
_LOW33: Final = (1 << 33) - 1  # by 31
_LOW53: Final = (1 << 53) - 1  # by 11


def uniform_after_native(state: i64, a: i64, b: i64) -> float:
    """``uniform_after(state, a, b)`` for ``state`` given as :func:`signed` (quicker
    than it compiled only: see the module docstring)."""
    x: i64 = (state ^ a) + _C1
    x = (x ^ ((x >> 30) & _LOW34)) * _C2
    x = (x ^ ((x >> 27) & _LOW37)) * _C3
    x = (x ^ ((x >> 31) & _LOW33) ^ b) + _C1
    x = (x ^ ((x >> 30) & _LOW34)) * _C2
    x = (x ^ ((x >> 27) & _LOW37)) * _C3
    x = x ^ ((x >> 31) & _LOW33)
    return (float((x >> 11) & _LOW53) + 0.5) * (1.0 / 9007199254740992.0)


def signed(state: int) -> int:
    """A 64-bit hash state (0 <= state < 2**64) as the signed integer of its bits."""
    return state - (1 << 64) if state >> 63 else state


COMPILED: Final = not isinstance(uniform_after_native, FunctionType)
"""This module runs compiled (mypyc): :func:`uniform_after_native` is the quicker."""
