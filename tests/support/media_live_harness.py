"""Live media tests: the real ``huntgroup serve`` process, hand-written SIP peers, RTP sockets.

Everything here talks to the server over loopback UDP only, exactly as a phone
would: the server is a subprocess started from a YAML file, the callers and
members are small SIP user agents that write their requests and responses out
by hand (so a test can send anything, malformed included), read what they
receive with huntgroup's parser (:mod:`tests.support.sip_messages`) and offer
SDP built by the live simulator's :func:`~huntgroup.simulations.live.sip.audio_offer`;
RTP is read from plain sockets. Every wait is
bounded by a deadline so that a missing message fails the test instead of
hanging it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import yaml

from huntgroup.media.g711 import Codec
from huntgroup.media.rtp import InvalidRtpPacket, RtpPacket
from huntgroup.media.sdp import parse_sdp
from huntgroup.simulations.live.sip import audio_offer
from tests.support.sip_harness import answers_options
from tests.support.sip_messages import SipMessage, parse_message
from tests.support.waiting import WaitTimeout, wait_until

LOOPBACK = "127.0.0.1"
PILOT = "0140000000"
PACKET_INTERVAL = 0.020
_SO_TIMESTAMPNS = 35  # Linux: kernel receive time of each datagram (struct timespec)
_ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------- music
TONES_HZ = (350.0, 523.0, 697.0, 941.0, 1209.0, 1477.0, 1633.0)
SEGMENT_SECONDS = 0.19
FADE_SECONDS = 0.01


def tone_sequence(rate: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Known tones, one after the other, each faded in and out (float, full scale 1.0).

    The loop lasts 7 x 0.19 s = 1.33 s: not a whole number of 20 ms frames, so the
    frame that crosses the end of the loop is exercised. Each segment fades to
    zero at both ends so the signal is smooth (resampling has nothing to smear).
    """
    n = round(SEGMENT_SECONDS * rate)
    t = np.arange(n) / rate
    fade = round(FADE_SECONDS * rate)
    env = np.ones(n)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    env[:fade], env[-fade:] = ramp, ramp[::-1]
    return np.concatenate([0.3 * np.sin(2 * np.pi * f * t) * env for f in TONES_HZ])


def write_tone_wav(path: Path, rate: int) -> Path:
    sf.write(os.fspath(path), tone_sequence(rate), rate, subtype="PCM_16", format="WAV")
    return path


# --------------------------------------------------------------------- server
@dataclass
class ServerProcess:
    """``python -m huntgroup serve --config FILE`` on loopback, with its SIP address."""

    process: subprocess.Popen[bytes]
    log_path: Path
    sip: tuple[str, int]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern: str, *, timeout: float = 10.0) -> str:
        """The first match of ``pattern`` in the log, once it is there (fails after ``timeout``)."""
        found = wait_until(
            lambda: re.search(pattern, self.log()),
            timeout=timeout,
            interval=0.02,
            message=lambda: f"no {pattern!r} in the log:\n{self.log()}",
        )
        return found.group(0)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    close = stop  # so that closing_all() ends the process too


def make_config(
    *,
    rtp_ports: tuple[int, int],
    members: list[dict[str, Any]],
    music: Path | None = None,
    max_wait: float = 60,
) -> dict[str, Any]:
    return {
        "server": {
            "listen": [f"udp:{LOOPBACK}:0"],
            "domain": "test.invalid",
            "media": {"address": LOOPBACK, "rtp_ports": f"{rtp_ports[0]}-{rtp_ports[1]}"},
            "shutdown_grace": 0,
        },
        "groups": [
            {
                "name": "Live",
                "pilot": PILOT,
                "algorithm": "linear",
                "no_answer_timeout": 10,
                "wrap_up": 0,
                "queue": {
                    "max_length": 5,
                    "max_wait": max_wait,
                    "music": None if music is None else os.fspath(music),
                },
                "members": members,
            }
        ],
    }


def start_server(tmp_path: Path, config: dict[str, Any]) -> ServerProcess:
    """Start the server, wait for its UDP port in the log and for an OPTIONS 200."""
    cfg_path = tmp_path / "huntgroup.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    log_path = tmp_path / "server.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "huntgroup", "serve", "--config", str(cfg_path)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )

    # Generous: a loaded 2-core machine can take seconds to start the server.
    def listening() -> re.Match[bytes] | None:
        found = re.search(rb"listening on udp:127\.0\.0\.1:(\d+)", log_path.read_bytes())
        if found is None and process.poll() is not None:
            raise AssertionError(f"server did not start:\n{log_path.read_text()}")
        return found

    try:
        port = int(wait_until(listening, timeout=60, interval=0.02).group(1))
    except AssertionError:
        process.kill()
        raise
    server = ServerProcess(process, log_path, (LOOPBACK, port))
    if not answers_options(process, port):
        server.stop()
        raise AssertionError(f"server never answered OPTIONS:\n{server.log()}")
    return server


# ------------------------------------------------------------------------ SIP
def sdp_offer(port: int, codecs: tuple[str, ...] = ("PCMU",)) -> bytes:
    """An SDP audio offer from 127.0.0.1:port (``codecs`` by name) with telephone-event 101."""
    return audio_offer(
        LOOPBACK, port, 1, codecs=tuple(Codec(name) for name in codecs), telephone_event=101
    )


def sdp_audio(body: bytes | str) -> tuple[str, int, list[int]]:
    """The connection address, port and payload types of the audio stream of an SDP."""
    sdp = parse_sdp(body)
    audio = next((m for m in sdp.media if m.media == "audio"), None)
    connection = None if audio is None else sdp.connection_of(audio)
    assert audio and connection, f"no audio stream in SDP:\n{sdp}"
    return connection.address, audio.port, [int(x) for x in audio.formats]


class SipUA:
    """A hand-written SIP user agent on its own UDP socket (caller or member)."""

    _counter = itertools.count(1)

    def __init__(self, name: str, server: tuple[str, int], *, host: str = LOOPBACK) -> None:
        """``host``: the loopback address it sends from (127.0.0.2 stands for another host)."""
        self.name = name
        self.server = server
        self.host = host
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.port = int(self.sock.getsockname()[1])
        self.pending: list[SipMessage] = []

    def close(self) -> None:
        self.sock.close()

    def new_call_id(self) -> str:
        return f"{self.name}-{next(self._counter)}-{os.getpid()}@{LOOPBACK}"

    def branch(self) -> str:
        return f"z9hG4bK{self.name}{next(self._counter)}x{random.getrandbits(32):08x}"

    def send(self, data: bytes, to: tuple[str, int] | None = None) -> None:
        self.sock.sendto(data, to or self.server)

    def request(
        self,
        method: str,
        uri: str,
        call_id: str,
        cseq: int,
        *,
        from_tag: str = "ft",
        to_tag: str | None = None,
        body: bytes = b"",
        branch: str | None = None,
    ) -> bytes:
        to = f"<sip:{PILOT}@test.invalid>" + (f";tag={to_tag}" if to_tag else "")
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self.port};branch={branch or self.branch()}",
            "Max-Forwards: 70",
            f'From: "{self.name}" <sip:0611223344@{LOOPBACK}>;tag={from_tag}',
            f"To: {to}",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:{self.name}@{self.host}:{self.port}>",
        ]
        return _wire(lines, body)

    def response(
        self, request: SipMessage, status: int, reason: str, *, tag: str, body: bytes = b""
    ) -> bytes:
        lines = [f"SIP/2.0 {status} {reason}"]
        lines += [f"Via: {v}" for v in request.all("Via")]
        to = request.header("To") or ""
        if ";tag=" not in to and status > 100:
            to += f";tag={tag}"
        lines += [
            f"From: {request.header('From')}",
            f"To: {to}",
            f"Call-ID: {request.call_id}",
            f"CSeq: {request.header('CSeq')}",
            f"Contact: <sip:{self.name}@{self.host}:{self.port}>",
        ]
        return _wire(lines, body)

    def wait(self, match: Callable[[SipMessage], bool], *, timeout: float = 5.0) -> SipMessage:
        """The first message (kept or new) that ``match`` accepts; others are kept."""
        for i, message in enumerate(self.pending):
            if match(message):
                return self.pending.pop(i)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                break
            if not data.strip():
                continue
            message = parse_message(data, source=(addr[0], addr[1]))
            if match(message):
                return message
            self.pending.append(message)
        raise TimeoutError(f"{self.name}: no matching SIP message; kept {self.pending!r}")


def _wire(lines: list[str], body: bytes) -> bytes:
    """The start line and headers ``lines``, then the SDP ``body`` with its length."""
    if body:
        lines = [*lines, "Content-Type: application/sdp"]
    lines = [*lines, f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class CallerCall:
    """One call placed by :func:`call_pilot`, answered by the server."""

    ua: SipUA
    call_id: str
    to_tag: str
    contact: str
    server_rtp: tuple[str, int]
    payload_types: list[int]
    cseq: int = 1

    def hang_up(self) -> None:
        self.cseq += 1
        self.ua.send(
            self.ua.request("BYE", self.contact, self.call_id, self.cseq, to_tag=self.to_tag)
        )
        cseq = self.cseq
        ok = self.ua.wait(
            lambda m: not m.is_request and m.call_id == self.call_id and m.cseq == (cseq, "BYE")
        )
        assert ok.status == 200, ok.start


def invite_pilot(ua: SipUA, rtp_port: int, codecs: tuple[str, ...]) -> str:
    call_id = ua.new_call_id()
    body = sdp_offer(rtp_port, codecs)
    ua.send(ua.request("INVITE", f"sip:{PILOT}@test.invalid", call_id, 1, body=body))
    return call_id


def await_answer(ua: SipUA, call_id: str, *, timeout: float = 5.0) -> CallerCall:
    """Wait for the 200 to our INVITE, ACK it, and describe the call."""

    def final(m: SipMessage) -> bool:
        return (not m.is_request) and m.call_id == call_id and (m.status or 0) >= 200

    ok = ua.wait(final, timeout=timeout)
    assert ok.status == 200, f"INVITE answered {ok.start}"
    to_tag = ok.tag("To")
    assert to_tag
    contact = re.search(r"<([^>]+)>", ok.header("Contact") or "")
    assert contact
    ua.send(ua.request("ACK", contact.group(1), call_id, 1, to_tag=to_tag))
    address, port, pts = sdp_audio(ok.body)
    return CallerCall(ua, call_id, to_tag, contact.group(1), (address, port), pts)


def answer_invite(
    member: SipUA,
    rtp_port: int,
    *,
    ring_for: float = 0.0,
    codecs: tuple[str, ...] = ("PCMU",),
    timeout: float = 5.0,
) -> tuple[SipMessage, tuple[str, int]]:
    """Member side: wait for the server's INVITE, answer 180 (then 200 after ``ring_for``).

    Returns the INVITE and the engine's RTP address from its SDP offer. The ACK
    that follows our 200 is awaited too.
    """
    invite = member.wait(lambda m: m.is_request and m.method == "INVITE", timeout=timeout)
    tag = f"mt{next(SipUA._counter)}"
    member.send(member.response(invite, 180, "Ringing", tag=tag), invite.source)
    if ring_for:
        time.sleep(ring_for)  # the behaviour: the member lets it ring that long
    member.send(
        member.response(invite, 200, "OK", tag=tag, body=sdp_offer(rtp_port, codecs)),
        invite.source,
    )
    call_id = invite.call_id
    member.wait(lambda m: m.is_request and m.method == "ACK" and m.call_id == call_id)
    address, port, _ = sdp_audio(invite.body)
    return invite, (address, port)


def answer_bye(ua: SipUA, call_id: str, *, timeout: float = 5.0) -> None:
    bye = ua.wait(
        lambda m: m.is_request and m.method == "BYE" and m.call_id == call_id, timeout=timeout
    )
    ua.send(ua.response(bye, 200, "OK", tag=bye.tag("To") or "x"), bye.source)


# ------------------------------------------------------------------------ RTP
@dataclass(frozen=True)
class Arrival:
    at: float  # seconds (kernel receive time where available)
    packet: RtpPacket
    source: tuple[str, int]


@dataclass
class RtpSocket:
    """A UDP socket that records every RTP packet it receives, in a thread."""

    sock: socket.socket = field(
        default_factory=lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    )
    arrivals: list[Arrival] = field(default_factory=list)
    junk: list[bytes] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _kernel_time: bool = False
    host: str = LOOPBACK  # the loopback address it is bound to

    def __post_init__(self) -> None:
        self.sock.bind((self.host, 0))
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
                self._kernel_time = True
        self.sock.settimeout(0.05)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, ancillary, _flags, addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(16))
            except TimeoutError:
                continue
            except OSError:
                return
            at = time.time()
            for level, kind, cdata in ancillary:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(cdata) >= 16:
                    sec, nsec = struct.unpack("qq", cdata[:16])
                    at = sec + nsec / 1e9
            try:
                packet = RtpPacket.parse(data)
            except InvalidRtpPacket:
                self.junk.append(data)
                continue
            self.arrivals.append(Arrival(at, packet, (addr[0], addr[1])))

    def sendto(self, data: bytes, to: tuple[str, int]) -> None:
        self.sock.sendto(data, to)

    def wait_for(self, count: int, *, timeout: float = 10.0, since: int = 0) -> list[Arrival]:
        """Wait until ``count`` packets arrived after index ``since``; return them all.

        The timeout only bounds a failure (the caller's assertions then say
        what is missing): it is generous, for a loaded machine.
        """
        self.wait_until(lambda arrivals: len(arrivals) - since >= count, timeout=timeout)
        return self.arrivals[since:]

    def wait_until(
        self, done: Callable[[list[Arrival]], bool], *, timeout: float = 10.0
    ) -> list[Arrival]:
        """Wait (at most ``timeout`` s) until ``done(arrivals)`` holds; return the arrivals."""
        with contextlib.suppress(WaitTimeout):  # the caller's assertions say what is missing
            wait_until(lambda: done(list(self.arrivals)), timeout=timeout)
        return list(self.arrivals)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.sock.close()


def rtp(pt: int, seq: int, ts: int, ssrc: int, payload: bytes, *, marker: bool = False) -> bytes:
    return RtpPacket(pt, seq % 65536, ts % (1 << 32), ssrc, payload, marker=marker).to_bytes()


@contextlib.contextmanager
def closing_all(*things: Any) -> Iterator[None]:
    try:
        yield
    finally:
        for thing in things:
            with contextlib.suppress(Exception):
                thing.close()
