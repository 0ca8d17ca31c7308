"""CPU per call of the sans-I/O B2BUA alone: the benchmark's call, scripted, no socket.

What is measured
----------------
The call of ``bench_b2bua.py`` (SIPp's ``uac_1s.xml`` and ``uas_answer.xml``,
same configuration, imported from it: one group of 100 fixed-URI members
reaching one SIPp member, the same limits) is replayed into one
:class:`~huntgroup.engine.b2bua.B2BUA` as bytes, the way the asyncio driver hands
them over, on a virtual clock:

1. the caller's INVITE with a G.711 offer (SIPp's text, byte for byte);
2. the member's 200 with its answer to the INVITE the B2BUA sent it;
3. the caller's ACK to the 200 the B2BUA sent back;
4. one second later the caller's BYE, and the member's 200 to the BYE the
   B2BUA sent it.

Calls start at ``--rate`` calls/s of virtual time, so about ``rate`` calls
are in progress at once, like in the live benchmark. After every input the
harness asks :meth:`~huntgroup.engine.b2bua.B2BUA.get_timer` (the driver
re-arms its timer after each one) and fires every timer that is due. Media
commands are dropped (no socket): ``bench_b2bua.py`` measures them live. The
harness checks every call ended with both 200s, so a change that breaks the
flow fails here instead of looking fast.

Two measures:

- ``--time``: CPU seconds (``time.process_time``) for ``--calls`` calls after
  ``--warmup`` calls, repeated ``--repeat`` times; prints the median and the
  spread per call. Sensitive to whatever else runs on the machine.
- ``--callgrind``: instructions per call under ``valgrind --tool=callgrind``
  (the same whatever else runs): two runs, ``--warmup`` calls and
  ``--warmup + --calls`` calls, and the difference divided by ``--calls``, so
  start-up (imports, configuration) cancels out.

Both set the garbage collector as ``node.py`` does after start-up (everything
frozen, gen0 threshold 20,000).

``--tree PATH`` measures another checkout (a frozen copy of main, for an A/B):
the harness runs itself in a child with ``PYTHONPATH=PATH``.

Run (no root, no network)::

    python benchmarks/bench_b2bua_core.py --time [--tree /tmp/base] [--calls 2000]
    python benchmarks/bench_b2bua_core.py --callgrind [--tree /tmp/base] [--calls 200]
"""

from __future__ import annotations

import argparse
import gc
import heapq
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# One source of truth: the live benchmark's addresses, group and limits.
from bench_b2bua import (
    HOLD_SECONDS,
    HOST,
    HUNTGROUP_CONFIG,
    PILOT,
    SERVER_PORT,
    UAC_PORT,
    UAS_PORT,
)

ROOT = Path(__file__).resolve().parent.parent


def _msg(lines: list[str], body: bytes = b"") -> bytes:
    head = "\r\n".join([*lines, f"Content-Length: {len(body)}", "", ""])
    return head.encode() + body


def _offer(port: int) -> bytes:
    return (
        "v=0\r\n"
        f"o=bench 53655765 2353687637 IN IP4 {HOST}\r\n"
        "s=-\r\n"
        f"c=IN IP4 {HOST}\r\n"
        "t=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 8\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
    ).encode()


def _answer(port: int) -> bytes:
    return (
        "v=0\r\n"
        f"o=member 53655765 2353687637 IN IP4 {HOST}\r\n"
        "s=-\r\n"
        f"c=IN IP4 {HOST}\r\n"
        "t=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
    ).encode()


_HEADER = re.compile(rb"^([A-Za-z-]+):[ \t]*(.*?)\r$", re.M)


def _headers(data: bytes) -> dict[bytes, list[bytes]]:
    head = data.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    found: dict[bytes, list[bytes]] = {}
    for name, value in _HEADER.findall(head):
        found.setdefault(name.lower(), []).append(value)
    return found


def _copied(request: bytes, status: str, extra: list[str], body: bytes, tag: str) -> bytes:
    """A response to ``request`` the way SIPp's [last_*:] keywords build it."""
    h = _headers(request)
    to = h[b"to"][0].decode()
    if tag and ";tag=" not in to:
        to += f";tag={tag}"
    lines = [f"SIP/2.0 {status}"]
    lines += [f"Via: {v.decode()}" for v in h[b"via"]]
    lines += [
        f"From: {h[b'from'][0].decode()}",
        f"To: {to}",
        f"Call-ID: {h[b'call-id'][0].decode()}",
        f"CSeq: {h[b'cseq'][0].decode()}",
    ]
    lines += [f"Record-Route: {v.decode()}" for v in h.get(b"record-route", [])]
    return _msg(lines + extra, body)


class Bench:
    """One B2BUA, the virtual clock, and the calls of the script."""

    def __init__(self, rate: float) -> None:
        import random

        from huntgroup.config.loader import load_config_text
        from huntgroup.engine.b2bua import B2BUA, Transmit
        from huntgroup.engine.sip.address import Peer
        from huntgroup.media.offer_answer import MediaPlanner

        cfg = load_config_text(HUNTGROUP_CONFIG, "bench.yaml", ROOT)
        media = cfg.server.media
        planner = MediaPlanner(
            media.address, media.port_range, random.Random(2), mode=media.mode,
            port_rng=random.Random(3),
        )  # fmt: skip
        self.b2b = B2BUA(
            cfg,
            now=0.0,
            locals_=[Peer(HOST, SERVER_PORT, "UDP")],
            rng=random.Random(1),
            secret=b"bench-secret-0123456789abcdef0123",
            media=planner,
            wall=1.8e9,
            node_id="bench/0",
        )
        self.transmit = Transmit
        self.caller = Peer(HOST, UAC_PORT, "UDP")
        self.member = Peer(HOST, UAS_PORT, "UDP")
        self.rate = rate
        self.now = 0.0
        self.events: list[tuple[float, int, Callable[[], None]]] = []
        self.seq = 0
        self.started = 0
        self.done = 0
        self.calls: dict[str, dict[str, bytes]] = {}  # SIPp Call-ID -> what the caller keeps
        self.due = self.b2b.get_timer()

    # -- the driver: one input, its outputs, the timer re-armed
    def _input(self, data: bytes, source: object) -> None:
        outputs = self.b2b.receive_datagram(data, source, now=self.now)  # type: ignore[arg-type]
        self._route(outputs)

    def _route(self, outputs: list[object]) -> None:
        for out in outputs:
            if isinstance(out, self.transmit):
                port = out.destination.port
                if port == UAC_PORT:
                    self._to_caller(out.data)
                elif port == UAS_PORT:
                    self._to_member(out.data)
        self.due = self.b2b.get_timer()  # the driver re-arms its one timer

    def _later(self, at: float, what: Callable[[], None]) -> None:
        self.seq += 1
        heapq.heappush(self.events, (at, self.seq, what))

    def _timers(self, until: float) -> None:
        """Fire the armed timer while it is due before ``until`` (as the loop would)."""
        while self.due is not None and self.due <= until:
            self.now = max(self.now, self.due)
            self._route(self.b2b.handle_timer(now=self.now))

    # -- SIPp, the caller (uac_1s.xml)
    def start_call(self, n: int) -> None:
        call_id = f"{n}-4242@{HOST}"
        tag = f"4242SIPpTag00{n}"
        self.calls[call_id] = {"tag": tag.encode()}
        invite = _msg(
            [
                f"INVITE sip:{PILOT}@{HOST}:{SERVER_PORT} SIP/2.0",
                f"Via: SIP/2.0/UDP {HOST}:{UAC_PORT};branch=z9hG4bK-4242-{n}-0",
                f'From: "bench" <sip:0600000000@{HOST}:{UAC_PORT}>;tag={tag}',
                f"To: <sip:{PILOT}@{HOST}:{SERVER_PORT}>",
                f"Call-ID: {call_id}",
                "CSeq: 1 INVITE",
                f"Contact: <sip:0600000000@{HOST}:{UAC_PORT};transport=udp>",
                "Max-Forwards: 70",
                "Subject: bench",
                "Content-Type: application/sdp",
            ],
            _offer(6000 + 2 * (n % 1000)),
        )
        self._input(invite, self.caller)

    def _to_caller(self, data: bytes) -> None:
        if not data.startswith(b"SIP/2.0 200"):
            return  # 100, 180: SIPp takes them and waits
        h = _headers(data)
        call_id = h[b"call-id"][0].decode()
        call = self.calls.get(call_id)
        if call is None:
            return
        cseq = h[b"cseq"][0]
        if cseq.endswith(b"BYE"):
            self.calls.pop(call_id)
            self.done += 1
            return
        if "to" in call:
            return  # a retransmitted 200: SIPp acknowledges it again (not in this script)
        contact = re.search(rb"<([^>]*)>", h[b"contact"][0])
        assert contact is not None
        call["to"] = h[b"to"][0]
        call["uri"] = contact.group(1)
        n = call_id.split("-", 1)[0]
        self._input(self._caller_request("ACK", 1, call_id, call, f"{n}-1"), self.caller)
        self._later(self.now + HOLD_SECONDS, lambda: self._bye(call_id))

    def _caller_request(self, method: str, cseq: int, call_id: str, call: dict[str, bytes],
                        branch: str) -> bytes:  # fmt: skip
        return _msg(
            [
                f"{method} {call['uri'].decode()} SIP/2.0",
                f"Via: SIP/2.0/UDP {HOST}:{UAC_PORT};branch=z9hG4bK-4242-{branch}",
                f'From: "bench" <sip:0600000000@{HOST}:{UAC_PORT}>;tag={call["tag"].decode()}',
                f"To: {call['to'].decode()}",
                f"Call-ID: {call_id}",
                f"CSeq: {cseq} {method}",
                f"Contact: <sip:0600000000@{HOST}:{UAC_PORT};transport=udp>",
                "Max-Forwards: 70",
            ]
        )

    def _bye(self, call_id: str) -> None:
        call = self.calls[call_id]
        n = call_id.split("-", 1)[0]
        self._input(self._caller_request("BYE", 2, call_id, call, f"{n}-2"), self.caller)

    # -- SIPp, the member (uas_answer.xml)
    def _to_member(self, data: bytes) -> None:
        contact = f"Contact: <sip:uas@{HOST}:{UAS_PORT};transport=udp>"
        if data.startswith(b"INVITE "):
            tag = f"4242SIPpTag01{self.seq}"
            ok = _copied(data, "200 OK", [contact, "Content-Type: application/sdp"],
                         _answer(8000 + 2 * (self.seq % 1000)), tag)  # fmt: skip
            self._input(ok, self.member)
        elif data.startswith(b"BYE "):
            self._input(_copied(data, "200 OK", [contact], b"", ""), self.member)

    # -- the schedule
    def run(self, calls: int) -> None:
        """Start ``calls`` more calls at ``rate`` per second; return when all ended."""
        first = self.started
        start = self.now
        for i in range(calls):
            n = first + i
            self._later(start + i / self.rate, lambda n=n: self.start_call(n))  # type: ignore[misc]
        self.started += calls
        while self.events:
            at, _, what = heapq.heappop(self.events)
            self._timers(at)
            self.now = max(self.now, at)
            what()
        self._timers(self.now + 40.0)  # the end of every transaction (timer K, J)
        if self.done != self.started or self.calls:
            raise SystemExit(f"{self.started - self.done} calls did not end with both 200s")


def _like_the_node() -> None:
    """The collector as ``node.py`` sets it after start-up (frozen, high gen0 threshold)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def measure_time(rate: float, warmup: int, calls: int, repeat: int) -> dict[str, object]:
    """CPU seconds per call, ``repeat`` times, after a warm-up."""
    bench = Bench(rate)
    bench.run(warmup)
    _like_the_node()
    per_call: list[float] = []
    for _ in range(repeat):
        t0 = time.process_time()
        bench.run(calls)
        per_call.append((time.process_time() - t0) / calls * 1000)
    return {
        "cpu_ms_per_call": round(statistics.median(per_call), 4),
        "min": round(min(per_call), 4),
        "max": round(max(per_call), 4),
        "runs": [round(x, 4) for x in per_call],
    }


def _instructions(tree: Path, calls: int, rate: float) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            sys.executable, __file__, "--script", str(calls), "--rate", str(rate),
        ]  # fmt: skip
        # One BLAS thread (media/g711 imports numpy): OpenBLAS's idle threads spin
        # for a while and their instructions would be counted, differently each run.
        env = {
            **os.environ,
            "PYTHONPATH": str(tree),
            "PYTHONHASHSEED": "0",
            "OPENBLAS_NUM_THREADS": "1",
        }
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        for line in out.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise SystemExit("no totals in callgrind's output")


def measure_callgrind(tree: Path, rate: float, warmup: int, calls: int) -> dict[str, object]:
    base = _instructions(tree, warmup, rate)
    full = _instructions(tree, warmup + calls, rate)
    return {"instructions_per_call": (full - base) // calls, "calls": calls, "warmup": warmup}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--time", action="store_true", help="CPU ms per call")
    mode.add_argument("--callgrind", action="store_true", help="instructions per call")
    mode.add_argument("--script", type=int, metavar="N", help=argparse.SUPPRESS)
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout to measure")
    parser.add_argument("--rate", type=float, default=300.0, help="calls/s of virtual time")
    parser.add_argument("--calls", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.script is not None:  # under valgrind: just the script
        bench = Bench(args.rate)
        _like_the_node()
        bench.run(args.script)
        return
    tree = args.tree.resolve()
    if args.callgrind:
        result = measure_callgrind(tree, args.rate, args.warmup or 100, args.calls or 300)
    elif tree != ROOT and not os.environ.get("_BENCH_CORE_CHILD"):  # the other tree's code
        env = {**os.environ, "PYTHONPATH": str(tree), "_BENCH_CORE_CHILD": "1"}
        child = subprocess.run(
            [sys.executable, __file__, *sys.argv[1:]], env=env, check=True, capture_output=True
        )
        result = json.loads(child.stdout)
        result.pop("tree", None)
    else:
        result = measure_time(args.rate, args.warmup or 500, args.calls or 1500, args.repeat)
    print(json.dumps({"tree": str(tree), **result}))


if __name__ == "__main__":
    main()
