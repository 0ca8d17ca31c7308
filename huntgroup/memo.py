"""Bounded memos for pure parsers fed by the network.

Theory of operation
-------------------
The SIP codec and the SDP code parse the same few values in every message (the
peers' addresses, header names, ``From``/``To``/``Via`` values, the codec lines of
an offer). Their parsers are pure and return immutable values, so each keeps a
memo: ``text -> result``. Because the text comes from the network, every memo
obeys the same two bounds, set here once:

- **a key longer than ``max_key`` characters is computed and never stored**:
  unique long values (up to the parser's 8 KiB line limit) cannot make the memos
  hold megabytes;
- **at most ``maxsize`` entries**: when a new key finds the memo full, the memo
  is emptied first (one policy for every memo: no per-entry bookkeeping on a hit,
  and a flood of unique keys costs one ``clear`` per ``maxsize`` misses).

A result is stored only when the parser returns; a key it refuses (raises) is
refused again next time, never remembered. A hit costs one dictionary look-up
in C: the memo is a ``dict`` whose ``__missing__`` runs the parser, and the
memoized function is its bound ``__getitem__`` (no Python frame on a hit).

This module is a leaf (it imports nothing of huntgroup): ``engine.sip`` and
``media``, themselves leaves, both use it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")

MAX_KEY = 256
"""Longest key memoized by default: longer than the header values, URIs and host names
peers repeat (a DNS name is at most 253 characters), far below the 8 KiB line limit."""
MAX_ADDRESS_KEY = 64
"""Longest key of the memos about IP addresses (an IPv6 address with a zone fits)."""
MAX_SIZE = 4096
"""Entries of a memo, by default."""


class BoundedMemo(dict[str, V], Generic[V]):
    """``key -> compute(key)``, with at most ``maxsize`` entries, none of them with a key
    longer than ``max_key``. Read it with ``memo[key]`` (or the bound ``__getitem__``)."""

    __slots__ = ("compute", "max_key", "maxsize")

    def __init__(
        self, compute: Callable[[str], V], *, maxsize: int = MAX_SIZE, max_key: int = MAX_KEY
    ) -> None:
        super().__init__()
        if maxsize < 1 or max_key < 0:
            raise ValueError("a memo needs maxsize >= 1 and max_key >= 0")
        self.compute = compute
        self.maxsize = maxsize
        self.max_key = max_key

    def __missing__(self, key: str) -> V:
        value = self.compute(key)
        if len(key) <= self.max_key:
            if len(self) >= self.maxsize:
                self.clear()
            self[key] = value
        return value


def bounded_memo(
    *, maxsize: int = MAX_SIZE, max_key: int = MAX_KEY
) -> Callable[[Callable[[str], V]], Callable[[str], V]]:
    """Decorator: the function, memoized in a :class:`BoundedMemo` (its ``__getitem__``;
    :func:`memo_of` gives the memo back)."""

    def wrap(compute: Callable[[str], V]) -> Callable[[str], V]:
        return BoundedMemo(compute, maxsize=maxsize, max_key=max_key).__getitem__

    return wrap


def memo_of(function: Callable[[str], V]) -> BoundedMemo[V]:
    """The memo behind a function made by :func:`bounded_memo` (for tests and tools)."""
    memo = getattr(function, "__self__", None)
    if not isinstance(memo, BoundedMemo):
        raise TypeError(f"{function!r} is not a bounded memo")
    return memo
