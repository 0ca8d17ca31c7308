"""Fuzz a live ``huntgroup serve`` from inside a network namespace with only loopback.

Run as ``unshare -n python fuzz_in_netns.py --seed N --count N --workdir DIR``:
it brings ``lo`` up, refuses to go on if any other interface exists (so a
mutated address can never send traffic off the machine), starts the server,
sends mutated SIP over UDP and TCP, then checks that the server still answers
correctly, and prints one JSON line with the results.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

CONFIG = """
server:
  listen: ["udp:127.0.0.1:{port}", "tcp:127.0.0.1:{port}"]
  domain: fuzz.test
  media: {{address: 127.0.0.1, rtp_ports: "31000-31999"}}
lines:
  - {{number: "0102030405", password: "pw"}}
groups:
  - name: G
    pilot: "0140000000"
    algorithm: ring_all
    no_answer_timeout: 1
    queue: {{max_length: 2, max_wait: 3}}
    members:
      - {{uri: "sip:m1@127.0.0.1:{member}", position: 1}}
      - {{line: "0102030405", position: 2}}
"""

SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
)


def message(method: str, uri: str, *, branch: str, call_id: str, body: str = "") -> bytes:
    head = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK{branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f'From: "Fuzz" <sip:0611111111@127.0.0.1>;tag=f{branch}\r\n'
        f"To: <{uri}>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: 1 {method}\r\n"
        "Contact: <sip:fuzz@127.0.0.1:5999>\r\n"
    )
    if body:
        head += "Content-Type: application/sdp\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n" + body).encode()


def corpus(rng: random.Random) -> list[bytes]:
    uri = "sip:0140000000@127.0.0.1"
    return [
        message("INVITE", uri, branch="a1", call_id="c1@x", body=SDP),
        message("REGISTER", "sip:fuzz.test", branch="a2", call_id="c2@x"),
        message("OPTIONS", uri, branch="a3", call_id="c3@x"),
        message("BYE", uri, branch="a4", call_id="c4@x"),
        message("CANCEL", uri, branch="a1", call_id="c1@x"),
        message("INVITE", "sip:0102030405@127.0.0.1", branch="a5", call_id="c5@x", body=SDP),
    ]


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(8)
        pos = rng.randrange(len(b) + 1)
        if op == 0 and b:  # flip a byte
            b[min(pos, len(b) - 1)] = rng.randrange(256)
        elif op == 1:  # insert junk
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == 2:  # truncate
            del b[pos:]
        elif op == 3:  # duplicate a line
            lines = bytes(b).split(b"\r\n")
            if lines:
                i = rng.randrange(len(lines))
                lines.insert(i, lines[i])
                b = bytearray(b"\r\n".join(lines))
        elif op == 4:  # a huge header
            b[pos:pos] = b"X-Big: " + b"A" * rng.choice([100, 5000, 70000]) + b"\r\n"
        elif op == 5:  # tamper with numbers (ports, lengths, CSeq)
            text = bytes(b)
            for digits in (b"5999", b"70", b"Content-Length: ", b"CSeq: 1"):
                if digits in text and rng.random() < 0.5:
                    text = text.replace(digits, digits + str(rng.randrange(10**6)).encode(), 1)
            b = bytearray(text)
        elif op == 6:  # swap case / separators
            if b:
                i = rng.randrange(len(b))
                b[i : i + 1] = rng.choice([b":", b";", b",", b" ", b"\t", b"\r\n ", b"<", b">"])
        else:  # random bytes
            b = bytearray(rng.randbytes(rng.randint(0, 300)))
    return bytes(b)


def wait_for(sock: socket.socket, timeout: float) -> bytes | None:
    sock.settimeout(timeout)
    try:
        return sock.recv(65535)
    except TimeoutError:
        return None


def status_of(data: bytes | None) -> int | None:
    if not data or not data.startswith(b"SIP/2.0 "):
        return None
    return int(data[8:11])


def final_status(sock: socket.socket, call_id: str, limit: float) -> int | None:
    """The final status of our request ``call_id`` (late replies to fuzz are ignored)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        data = wait_for(sock, max(0.05, deadline - time.monotonic()))
        if data is None or f"Call-ID: {call_id}\r\n".encode() not in data:
            continue
        status = status_of(data)
        if status is not None and status >= 200:
            return status
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args()
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    interfaces = sorted(line.split(":")[1].strip().split("@")[0] for line in links.splitlines())
    if interfaces != ["lo"]:
        print(json.dumps({"error": f"not isolated: interfaces {interfaces}"}))
        return 2
    work = Path(args.workdir)
    port, member = free_port(), free_port()
    cfg = work / "fuzz.yaml"
    cfg.write_text(CONFIG.format(port=port, member=member))
    log = (work / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "huntgroup", "serve", "--config", str(cfg)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    result: dict[str, object] = {"port": port}
    rng = random.Random(args.seed)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    target = ("127.0.0.1", port)
    try:
        ping = message("OPTIONS", f"sip:x@127.0.0.1:{port}", branch="ping0", call_id="p0@x")
        ready_by = time.monotonic() + 60  # generous: a loaded machine starts Python slowly
        while True:
            sock.sendto(ping, target)
            if status_of(wait_for(sock, 0.1)) == 200:
                break
            if server.poll() is not None or time.monotonic() > ready_by:
                result["error"] = "server did not start"
                return 1
        seeds = corpus(rng)
        started = time.monotonic()
        sent = tcp_sent = 0
        while sent < args.count and time.monotonic() - started < args.seconds:
            data = mutate(rng.choice(seeds), rng)
            if len(data) <= 65000:
                sock.sendto(data, target)
                sent += 1
            if sent % 50 == 0:  # stream garbage over TCP too
                try:
                    with socket.create_connection(target, timeout=1) as tcp:
                        tcp.sendall(mutate(rng.choice(seeds), rng))
                        tcp_sent += 1
                except OSError:
                    pass
            if sent % 200 == 0:
                time.sleep(0.05)  # let the server breathe; drain replies
                sock.settimeout(0)
                try:
                    while True:
                        sock.recv(65535)
                except (BlockingIOError, TimeoutError):
                    pass
        result.update(sent=sent, tcp_sent=tcp_sent, alive=server.poll() is None)
        time.sleep(0.5)  # the last replies in flight land before the drain
        sock.settimeout(0)
        try:
            while True:
                sock.recv(65535)
        except (BlockingIOError, TimeoutError):
            pass
        # The server must still behave: OPTIONS 200, unknown number 404, bad SDP 488,
        # and a real call attempt to the pilot gets a final answer.
        checks = {}
        sock.sendto(message("OPTIONS", "sip:x@127.0.0.1", branch="ok1", call_id="k1@x"), target)
        checks["options"] = final_status(sock, "k1@x", 3)
        # The flood may have tripped the overload guard: new calls then get 503 with
        # Retry-After for a while (the designed answer), so an INVITE answered 503 is
        # tried again, with a new Call-ID, as a caller's phone would, for 30 s at most.
        shed: list[int] = []

        def invite(uri: str, name: str, body: str, limit: float) -> int | None:
            deadline = time.monotonic() + 30
            for attempt in itertools.count():
                call_id = f"{name}-{attempt}@x"
                branch = f"{name}{attempt}"
                sock.sendto(
                    message("INVITE", uri, branch=branch, call_id=call_id, body=body), target
                )
                status = final_status(sock, call_id, limit)
                if status != 503 or time.monotonic() > deadline:
                    return status
                shed.append(503)
                time.sleep(0.5)
            return None

        checks["unknown_number"] = invite("sip:0999999999@127.0.0.1", "k2", SDP, 3)
        bad_sdp = SDP.replace("RTP/AVP 0 101", "RTP/AVP 18").replace("PCMU", "G729")
        uri = "sip:0140000000@127.0.0.1"
        checks["no_common_codec"] = invite(uri, "k3", bad_sdp, 3)
        checks["pilot_call"] = invite(uri, "k4", SDP, 8)
        result["checks"] = checks
        result["shed_retries"] = len(shed)
        result["alive_after"] = server.poll() is None
    finally:
        server.terminate()
        try:
            result["exit"] = server.wait(timeout=40)
        except subprocess.TimeoutExpired:
            server.kill()
            result["exit"] = "killed"
        log.close()
        text = (work / "server.log").read_text(errors="replace")
        result["internal_errors"] = text.count("internal error")
        result["tracebacks"] = text.count("Traceback")
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
