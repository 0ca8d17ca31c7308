"""Deep fuzzing of every entry point that reads bytes from the network.

The test suite runs the same properties with a few hundred examples each; this
script runs them with as many as you like, each bounded in examples and in
time. Every input must be parsed or refused with its layer's own error type,
never raise anything else out of the layer; the B2BUA, fed hostile bytes in any
header or parameter of REGISTER and INVITE (credentials included), must answer
every request exactly once and be back at its baseline state after 64*T1.

Targets (the properties live in the test files named):

- ``sip``: the SIP parser, datagrams and streams (tests/engine/sip/test_sip_fuzz.py)
- ``digest``: Authorization values, then verify() (tests/engine/sip/test_digest_hardening.py)
- ``sdp``: parse_sdp, answer_offer, the media plan (tests/media/test_media_fuzz.py)
- ``rtp``: RtpPacket.parse (tests/media/test_media_fuzz.py)
- ``b2bua``: hostile requests through the sans-I/O B2BUA (tests/engine/b2bua/test_b2bua_hostile.py)
- ``b2bua-call``: hostile in-dialog requests, CANCELs and member responses in a call (same file)

Run:  .venv/bin/python benchmarks/fuzz_deep.py [--examples 20000] [--seconds 600]
                                               [--target sip --target b2bua ...] [--seed N]

Exit status 0 when every target held, 1 with the failing input (hypothesis
prints the shrunk example) otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the tests package


def targets() -> dict[str, tuple[st.SearchStrategy[Any], Callable[[Any], None]]]:
    """name -> (strategy, check); imported here so that --help needs no test module."""
    from tests.engine.b2bua import test_b2bua_hostile as hostile
    from tests.engine.sip import test_digest_hardening as digest
    from tests.engine.sip import test_sip_fuzz as sip
    from tests.media import test_media_fuzz as media

    def sip_stream(case: tuple[bytes, list[int]]) -> None:
        from huntgroup.engine.sip import Request, Response, StreamParser
        from huntgroup.errors import RemoteProtocolError

        data, cuts = case
        parser, pos = StreamParser(), 0
        try:
            for size in [*cuts, len(data)]:
                for message in parser.feed(data[pos : pos + size]):
                    assert isinstance(message, Request | Response)
                pos += size
        except RemoteProtocolError as exc:
            assert 400 <= exc.status < 600

    return {
        "sip": (st.one_of(sip.mutated(), st.binary(max_size=2000)), sip.check),
        "sip-stream": (
            st.tuples(sip.mutated(), st.lists(st.integers(1, 64), min_size=1, max_size=30)),
            sip_stream,
        ),
        "digest": (
            st.one_of(digest.mutated_headers(), st.text(max_size=300)),
            digest.check_digest_text,
        ),
        "sdp": (media.sdp_inputs(), media.check_sdp),
        "rtp": (media.rtp_inputs(), media.check_rtp),
        "b2bua": (hostile.hostile_cases(), hostile.check_hostile),
        "b2bua-call": (hostile.call_cases(), hostile.check_hostile_in_call),
    }


def run(
    name: str,
    strategy: st.SearchStrategy[Any],
    check: Callable[[Any], None],
    examples: int,
    seconds: float,
    seed_value: int | None,
) -> tuple[bool, int, float]:
    """Run one target in batches of at most 1,000 examples (each batch its own seed)
    until ``examples`` ran or ``seconds`` passed; (held, examples run, seconds)."""
    count = 0

    def counted(value: Any) -> None:
        nonlocal count
        count += 1
        check(value)

    started = time.monotonic()
    batch_number = 0
    while count < examples and time.monotonic() - started < seconds:
        test = settings(
            max_examples=min(1_000, examples - count),
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )(given(strategy)(counted))
        if seed_value is not None:
            test = seed(seed_value + batch_number)(test)
        batch_number += 1
        before = count
        try:
            test()
        except Exception as exc:  # hypothesis re-raises the shrunk failure
            print(f"{name}: FAILED after {count} examples: {type(exc).__name__}: {exc}")
            return False, count, time.monotonic() - started
        if count == before:
            break  # the strategy is exhausted
    return True, count, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=20_000, help="per target")
    parser.add_argument("--seconds", type=float, default=600.0, help="per target, at most")
    parser.add_argument("--target", action="append", help="repeatable; default: all")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    import logging

    logging.disable(logging.WARNING)  # the B2BUA logs refusals at INFO/WARNING
    chosen = targets()
    names = args.target or list(chosen)
    unknown = [n for n in names if n not in chosen]
    if unknown:
        parser.error(f"unknown target(s) {unknown}; known: {', '.join(chosen)}")
    held = True
    for name in names:
        strategy, check = chosen[name]
        ok, count, took = run(name, strategy, check, args.examples, args.seconds, args.seed)
        held &= ok
        print(f"{name}: {'ok' if ok else 'FAILED'}, {count} examples in {took:.1f} s", flush=True)
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())
