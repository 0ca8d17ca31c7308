"""The sans-I/O B2BUA fed a fixed script of inputs: CPU per call without sockets (docs/native.md).

``record N FILE``: N plain calls (caller INVITE to the pilot, one member rings
and answers, ACKs, 2 s of talk, the caller hangs up; timers run until the
transactions are gone) through ``tests/support/b2bua_peers.Network``; every input
the B2BUA took (datagram and source, or a timer) is written to FILE.

``replay FILE [--reps K]``: a fresh B2BUA of the same configuration and seeds is
fed the same inputs K times (outputs dropped, no phone parses anything): the work
of the B2BUA alone, routing core included. One JSON line: CPU seconds of each
replay and which modules were compiled. Under ``valgrind --tool=callgrind``,
``--reps 0`` and ``--reps 1`` differ by exactly one replay.

The script's messages must be those of the build that replays them: record with
the interpreted tree and replay on both (the seeds make the B2BUA's own tags and
branches the same on every build).
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _network() -> object:
    sys.path.append(str(ROOT))  # tests.support; huntgroup comes from PYTHONPATH first
    from tests.support.b2bua_peers import Network, make_config

    return Network(make_config("linear"))


def record(calls: int, path: Path) -> None:
    from tests.support.b2bua_peers import CALLER_NUMBER, PILOT

    net = _network()
    b2b = net.b2b  # type: ignore[attr-defined]
    script: list[tuple[str, float, bytes, str, int, str]] = []
    receive, timer = b2b.receive_datagram, b2b.handle_timer

    def rec_receive(data: bytes, source: object, *, now: float) -> object:
        script.append(("d", now, data, source.host, source.port, source.transport))  # type: ignore[attr-defined]
        return receive(data, source, now=now)

    def rec_timer(*, now: float) -> object:
        script.append(("t", now, b"", "", 0, ""))
        return timer(now=now)

    b2b.receive_datagram, b2b.handle_timer = rec_receive, rec_timer
    caller = net.phone("caller", 6000, CALLER_NUMBER)  # type: ignore[attr-defined]
    m1 = net.phone("m1", 7001, "m1")  # type: ignore[attr-defined]
    for _ in range(calls):
        call = caller.invite(PILOT)
        leg = m1.answering(m1.request("INVITE"))
        leg.reply(180)
        leg.reply(200)
        m1.request("ACK")
        call.ack(caller.response(200))
        net.advance(2.0)  # type: ignore[attr-defined]
        call.bye()
        m1.respond(m1.request("BYE"), 200)
        caller.response(200, "BYE")
        caller.drop()
        m1.drop()
        net.advance(40.0)  # type: ignore[attr-defined]
    path.write_bytes(pickle.dumps(script))
    sent = len(net.transmits)  # type: ignore[attr-defined]
    print(json.dumps({"inputs": len(script), "calls": calls, "transmits": sent}))


def replay(path: Path, reps: int) -> None:
    from huntgroup.engine.sip.address import Peer

    script = pickle.loads(path.read_bytes())
    peers: dict[tuple[str, int, str], Peer] = {}
    inputs = []
    for kind, now, data, host, port, transport in script:
        peer = peers.setdefault((host, port, transport), Peer(host, port, transport))
        inputs.append((kind, now, data, peer))
    seconds = []
    outputs = 0
    for _ in range(reps):
        b2b = _network().b2b  # type: ignore[attr-defined]
        receive, timer = b2b.receive_datagram, b2b.handle_timer
        outputs = 0
        t0 = time.process_time()
        for kind, now, data, peer in inputs:
            if kind == "d":
                outputs += len(receive(data, peer, now=now))
            else:
                outputs += len(timer(now=now))
        seconds.append(time.process_time() - t0)
    import huntgroup.engine.b2bua.facade as facade
    import huntgroup.engine.sip.parser as parser
    import huntgroup.queue.core as core

    compiled = [m.__name__ for m in (facade, parser, core) if str(m.__file__).endswith(".so")]
    print(
        json.dumps(
            {
                "seconds": seconds,
                "compiled": compiled,
                "inputs": len(inputs),
                "outputs": outputs if reps else 0,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("record", "replay"))
    parser.add_argument("file", type=Path)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    if args.mode == "record":
        record(args.calls, args.file)
    else:
        replay(args.file, args.reps)


if __name__ == "__main__":
    main()
