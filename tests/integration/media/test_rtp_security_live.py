"""RTP hijacking and dead calls, against the live server (docs/security.md).

*Hijacking.* An attacker on another port of the same host sprays the server's
RTP ports with RTP before the legitimate peers send anything, while a caller
hears the hold music and while a call is bridged. The relay latches only onto
the address each side's SDP named: the attacker receives nothing, the music
and the relayed audio go on unchanged, and the stranger counter
(``dropped_unexpected_source`` of the stats line) goes up.

*Dead calls.* A bridged call whose phones stop sending RTP, with no BYE, is
ended by ``server.media.rtp_timeout``: BYE to both sides, and the member is
offered the next call.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from huntgroup.media.rtp import seq_diff
from tests.support.media_live_harness import (
    LOOPBACK,
    PILOT,
    RtpSocket,
    ServerProcess,
    SipUA,
    answer_bye,
    answer_invite,
    await_answer,
    closing_all,
    invite_pilot,
    make_config,
    rtp,
    sdp_audio,
    sdp_offer,
    start_server,
)
from tests.support.ports import free_port_range
from tests.support.waiting import WaitTimeout, wait_until

pytestmark = pytest.mark.integration

CALLER_SSRC, MEMBER_SSRC, ATTACKER_SSRC = 0x0CA11E12, 0x0E3BE12, 0x0BADBAD0


def stats(server: ServerProcess) -> dict[str, int]:
    """The counters of a stats line logged on SIGUSR1, once it is there."""
    before = len(re.findall(r"stats: ", server.log()))
    server.process.send_signal(signal.SIGUSR1)

    def lines_now() -> list[str]:
        found: list[str] = re.findall(r"stats: (.*)", server.log())
        return found if len(found) > before else []

    lines = wait_until(
        lines_now, timeout=10, interval=0.02, message=lambda: f"no stats line:\n{server.log()}"
    )
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", lines[-1])}


class Sprayer:
    """An attacker's socket sending RTP at ``targets`` in a thread, every 5 ms."""

    def __init__(self, targets: list[tuple[str, int]]) -> None:
        self.audio = RtpSocket()
        self.targets = targets
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sprayer:
        self._thread.start()
        # the first packets are out before the legitimate peers send anything
        with contextlib.suppress(WaitTimeout):  # the test's assertions say what is missing
            wait_until(lambda: self.sent >= 10 * len(self.targets), timeout=5, interval=0.005)
        return self

    def _run(self) -> None:
        for i in itertools.count():
            if self._stop.is_set() or i >= 2000:  # bounded: 10 s at most
                return
            for target in self.targets:
                self.audio.sendto(rtp(0, i, 160 * i, ATTACKER_SSRC, b"\x55" * 160), target)
                self.sent += 1
            time.sleep(0.005)  # an attacker's stream, paced like RTP: the behaviour

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        time.sleep(0.1)  # what is in flight arrives, or not: the test checks a silence
        self.audio.close()


def talk(
    pairs: list[tuple[RtpSocket, tuple[str, int], int]], count: int, *, first: int = 0
) -> None:
    """Each (socket, server port, SSRC) sends ``count`` packets with distinct payloads."""
    for i in range(first, first + count):
        for sock, to, ssrc in pairs:
            sock.sendto(rtp(0, 100 + i, 160 * i, ssrc, bytes([i % 256]) * 160), to)
        time.sleep(0.01)  # the peers talk at an RTP-like pace, not in one burst


def payloads(sock: RtpSocket, ssrc: int) -> list[bytes]:
    return [a.packet.payload for a in sock.arrivals if a.packet.ssrc == ssrc]


def test_a_stranger_spraying_the_port_during_hold_music_gets_nothing(tmp_path: Path) -> None:
    cfg = make_config(
        rtp_ports=free_port_range(8),
        # the only member is logged out: the caller waits in the queue with music
        members=[{"uri": f"sip:agent@{LOOPBACK}:9", "position": 1, "joined": False}],
    )
    server = start_server(tmp_path, cfg)
    caller, caller_audio = SipUA("caller", server.sip), RtpSocket()
    with closing_all(caller_audio, caller, server):
        call = await_answer(caller, invite_pilot(caller, caller_audio.port, ("PCMU",)))
        with Sprayer([call.server_rtp]) as attacker:
            talk([(caller_audio, call.server_rtp, CALLER_SSRC)], 50)  # the caller talks too
            since = len(caller_audio.arrivals)
            caller_audio.wait_for(50, since=since)
        counters = stats(server)
        call.hang_up()
        music = list(caller_audio.arrivals)

    assert attacker.sent >= 20
    assert not attacker.audio.arrivals, "the music went to the attacker"
    assert not attacker.audio.junk
    # The caller's music went on, unchanged: one stream, no packet lost to the attacker.
    assert len(music) >= 60, "the caller stopped hearing the music"
    assert {a.source for a in music} == {call.server_rtp}
    assert {a.packet.ssrc for a in music} == {music[0].packet.ssrc}
    steps = {seq_diff(b.packet.sequence, a.packet.sequence) for a, b in itertools.pairwise(music)}
    assert steps == {1}, f"sequence steps {sorted(steps)}"
    assert not payloads(caller_audio, ATTACKER_SSRC)
    assert counters["dropped_unexpected_source"] >= attacker.sent // 2
    assert "Traceback" not in server.log()


def test_a_stranger_spraying_both_ports_of_a_bridged_call_gets_nothing(tmp_path: Path) -> None:
    member = SipUA("member", ("0.0.0.0", 0))
    server = start_server(
        tmp_path,
        make_config(
            rtp_ports=free_port_range(8),
            members=[{"uri": f"sip:agent@{LOOPBACK}:{member.port}", "position": 1}],
        ),
    )
    member.server = server.sip
    caller, caller_audio, member_audio = SipUA("caller", server.sip), RtpSocket(), RtpSocket()
    with closing_all(caller_audio, member_audio, caller, member, server):
        call_id = invite_pilot(caller, caller_audio.port, ("PCMU",))
        leg, engine_member_rtp = answer_invite(member, member_audio.port, ring_for=0.05)
        call = await_answer(caller, call_id)
        # The attacker knows (or guesses) both ports, and sprays them before either
        # phone has sent a packet: the old relay latched onto the first sender.
        with Sprayer([call.server_rtp, engine_member_rtp]) as attacker:
            talk(
                [
                    (caller_audio, call.server_rtp, CALLER_SSRC),
                    (member_audio, engine_member_rtp, MEMBER_SSRC),
                ],
                40,
            )
            member_audio.wait_until(lambda a: len(a) >= 40)
            caller_audio.wait_until(lambda a: len(a) >= 40)
        counters = stats(server)
        call.hang_up()
        answer_bye(member, leg.call_id)

    assert attacker.sent >= 40
    assert not attacker.audio.arrivals, "the attacker heard the call"
    # Each side hears exactly the other, every packet, in order, from our port.
    sent = [bytes([i]) * 160 for i in range(40)]
    assert payloads(member_audio, CALLER_SSRC) == sent, "the caller was muted"
    assert payloads(caller_audio, MEMBER_SSRC) == sent, "the member was muted"
    assert not payloads(member_audio, ATTACKER_SSRC) and not payloads(caller_audio, ATTACKER_SSRC)
    assert {a.source for a in member_audio.arrivals} == {engine_member_rtp}
    assert {a.source for a in caller_audio.arrivals} == {call.server_rtp}
    assert counters["relayed"] == 80
    assert counters["dropped_unexpected_source"] >= attacker.sent // 2
    assert "Traceback" not in server.log()


def _timeout_config(member_port: int, rtp_timeout: float | None) -> dict[str, Any]:
    cfg = make_config(
        rtp_ports=free_port_range(8),
        members=[{"uri": f"sip:agent@{LOOPBACK}:{member_port}", "position": 1}],
    )
    cfg["server"]["media"]["rtp_timeout"] = rtp_timeout
    return cfg


@pytest.mark.parametrize("silent", ["member", "both"])
def test_a_silent_bridged_call_is_ended_on_both_sides(tmp_path: Path, silent: str) -> None:
    """A lost BYE: the member's phone stops sending RTP (or both do), and nobody hangs up."""
    member = SipUA("member", ("0.0.0.0", 0))
    server = start_server(tmp_path, _timeout_config(member.port, 2))
    member.server = server.sip
    caller, caller_audio, member_audio = SipUA("caller", server.sip), RtpSocket(), RtpSocket()
    with closing_all(caller_audio, member_audio, caller, member, server):
        call_id = invite_pilot(caller, caller_audio.port, ("PCMU",))
        leg, engine_member_rtp = answer_invite(member, member_audio.port, ring_for=0.05)
        call = await_answer(caller, call_id)
        both = [
            (caller_audio, call.server_rtp, CALLER_SSRC),
            (member_audio, engine_member_rtp, MEMBER_SSRC),
        ]
        talk(both, 20)
        started = time.monotonic()
        # Then the member's phone is gone; the caller still talks (or is gone too).
        keep_talking = threading.Event()

        def caller_talks() -> None:
            for i in itertools.count(20):
                if keep_talking.is_set() or i > 1000:
                    return
                talk(both[:1], 1, first=i)

        talker = threading.Thread(target=caller_talks, daemon=True)
        if silent == "member":
            talker.start()
        try:
            # No BYE was sent: the server's own, to both sides, after about 2 s.
            answer_bye(caller, call_id, timeout=15)
            answer_bye(member, leg.call_id, timeout=5)
        finally:
            keep_talking.set()
            if talker.is_alive():
                talker.join(timeout=5)
        ended_after = time.monotonic() - started
        # Both silent: the first side to reach 2 s ends the call; the other's last packet may
        # have been read a little later (a loaded machine), so it is named only when it too
        # was silent for 2 s when the timer ran.
        who = "member" if silent == "member" else "(caller and the member|caller|member)"
        server.wait_log(rf"call \S+: no RTP from the {who} for 2 s")

        # The member is free: it is offered the next call at once.
        second = SipUA("second", server.sip)
        second_audio = RtpSocket()
        with closing_all(second, second_audio):
            second_id = invite_pilot(second, second_audio.port, ("PCMU",))
            leg2, _ = answer_invite(member, member_audio.port, timeout=10)
            call2 = await_answer(second, second_id)
            call2.hang_up()
            answer_bye(member, leg2.call_id)
        counters = stats(server)

    assert ended_after >= 1.5, "ended before the timeout"
    assert counters["rtp_timeouts"] == 1
    assert counters["rtp_ports_in_use"] == 0 and counters["calls_active"] == 0
    assert "Traceback" not in server.log()


def test_without_rtp_timeout_a_silent_call_stays(tmp_path: Path) -> None:
    """``rtp_timeout: 0`` disables it: a silent call is not ended."""
    member = SipUA("member", ("0.0.0.0", 0))
    server = start_server(tmp_path, _timeout_config(member.port, 0))
    member.server = server.sip
    caller, caller_audio, member_audio = SipUA("caller", server.sip), RtpSocket(), RtpSocket()
    with closing_all(caller_audio, member_audio, caller, member, server):
        call_id = invite_pilot(caller, caller_audio.port, ("PCMU",))
        leg, _ = answer_invite(member, member_audio.port, ring_for=0.05)
        call = await_answer(caller, call_id)
        with pytest.raises(TimeoutError):
            caller.wait(lambda m: m.is_request and m.method == "BYE", timeout=3)
        assert stats(server)["calls_active"] == 1
        call.hang_up()
        answer_bye(member, leg.call_id)


def test_a_caller_behind_nat_is_latched_from_its_sip_address_and_then_fixed(
    tmp_path: Path,
) -> None:
    """The caller's SDP names a private address; its RTP comes from where its SIP came from."""
    cfg = make_config(
        rtp_ports=free_port_range(8),
        members=[{"uri": f"sip:agent@{LOOPBACK}:9", "position": 1, "joined": False}],
    )
    server = start_server(tmp_path, cfg)
    caller, caller_audio = SipUA("caller", server.sip), RtpSocket()
    with closing_all(caller_audio, caller, server):
        call_id = caller.new_call_id()
        private = sdp_offer(4000).replace(f"IN IP4 {LOOPBACK}".encode(), b"IN IP4 10.1.2.3")
        caller.send(caller.request("INVITE", f"sip:{PILOT}@test.invalid", call_id, 1, body=private))
        call = await_answer(caller, call_id)
        time.sleep(0.3)  # the behaviour: some fifteen music packets are due meanwhile
        assert not caller_audio.arrivals, "the music goes to the private address until latched"
        # The NAT maps the phone's RTP to some port of the address its SIP came from.
        talk([(caller_audio, call.server_rtp, CALLER_SSRC)], 3)
        caller_audio.wait_for(25)
        with Sprayer([call.server_rtp]) as attacker:  # same IP, another port: too late
            since = len(caller_audio.arrivals)
            caller_audio.wait_for(25, since=since)
        counters = stats(server)
        call.hang_up()

    assert len(caller_audio.arrivals) >= 50, "the music follows the latched address"
    assert not attacker.audio.arrivals, "the latch moved to the attacker"
    assert counters["dropped_unexpected_source"] >= attacker.sent // 2


@pytest.mark.parametrize("latch_from", ["signalling ip", "sdp address"])
def test_a_forged_invite_naming_a_victim_sends_it_nothing_until_a_latch(
    tmp_path: Path, latch_from: str
) -> None:
    """RTP reflection (one spoofed INVITE): its SDP names 127.0.0.1:<victim>, its SIP
    comes from 127.0.0.2. The victim receives no music; once a packet comes from the
    caller's signalling IP (any port) or from the SDP address, the music goes there."""
    cfg = make_config(
        rtp_ports=free_port_range(8),
        members=[{"uri": f"sip:agent@{LOOPBACK}:9", "position": 1, "joined": False}],
    )
    server = start_server(tmp_path, cfg)
    caller = SipUA("caller", server.sip, host="127.0.0.2")
    victim, caller_audio = RtpSocket(), RtpSocket(host="127.0.0.2")
    with closing_all(victim, caller_audio, caller, server):
        call_id = caller.new_call_id()
        body = sdp_offer(victim.port)  # names 127.0.0.1, not where the INVITE came from
        caller.send(caller.request("INVITE", f"sip:{PILOT}@test.invalid", call_id, 1, body=body))
        call = await_answer(caller, call_id)
        time.sleep(0.5)  # some 25 music packets are due meanwhile
        reflected = len(victim.arrivals)
        latched = caller_audio if latch_from == "signalling ip" else victim
        other = victim if latched is caller_audio else caller_audio
        talk([(latched, call.server_rtp, CALLER_SSRC)], 1)
        latched.wait_for(25)
        counters = stats(server)
        call.hang_up()

    assert reflected == 0, "the music was reflected at the SDP address before any latch"
    assert len(latched.arrivals) >= 25, "the music did not follow the latched address"
    assert {a.source for a in latched.arrivals} == {call.server_rtp}
    assert not other.arrivals
    assert counters["music_packets"] >= 25
    assert "Traceback" not in server.log()


def test_an_alg_caller_latches_from_its_signalling_ip_and_its_call_stays(tmp_path: Path) -> None:
    """A SIP ALG / STUN phone: its SDP names an address (127.0.0.3) that is not where its
    SIP comes from (127.0.0.2); its NAT sends the RTP from another port of 127.0.0.2.
    Nothing goes to the SDP address; the RTP is latched, relayed both ways, and it
    counts as liveness: the rtp_timeout (2 s) does not end the call."""
    member = SipUA("member", ("0.0.0.0", 0))
    server = start_server(tmp_path, _timeout_config(member.port, 2))
    member.server = server.sip
    caller = SipUA("caller", server.sip, host="127.0.0.2")
    announced, caller_audio = RtpSocket(host="127.0.0.3"), RtpSocket(host="127.0.0.2")
    member_audio = RtpSocket()
    with closing_all(announced, caller_audio, member_audio, caller, member, server):
        call_id = caller.new_call_id()
        body = sdp_offer(announced.port).replace(f"IN IP4 {LOOPBACK}".encode(), b"IN IP4 127.0.0.3")
        caller.send(caller.request("INVITE", f"sip:{PILOT}@test.invalid", call_id, 1, body=body))
        leg, engine_member_rtp = answer_invite(member, member_audio.port, ring_for=0.05)
        call = await_answer(caller, call_id)
        # The member speaks first: the caller has not latched, nothing may go to 127.0.0.3.
        talk([(member_audio, engine_member_rtp, MEMBER_SSRC)], 10)
        both = [
            (caller_audio, call.server_rtp, CALLER_SSRC),
            (member_audio, engine_member_rtp, MEMBER_SSRC),
        ]
        talk(both, 300, first=10)  # 3 s or more: longer than rtp_timeout
        member_audio.wait_until(lambda a: len(a) >= 300)
        caller_audio.wait_until(lambda a: len(a) >= 300)
        with pytest.raises(TimeoutError):  # the call is still up
            caller.wait(lambda m: m.is_request and m.method == "BYE", timeout=0.5)
        counters = stats(server)
        call.hang_up()
        answer_bye(member, leg.call_id)

    assert not announced.arrivals and not announced.junk, "sent to the unverified SDP address"
    said = [bytes([i % 256]) * 160 for i in range(10, 310)]
    assert payloads(member_audio, CALLER_SSRC) == said, "the caller's RTP was not relayed"
    assert payloads(caller_audio, MEMBER_SSRC)[-300:] == said
    assert {a.source for a in caller_audio.arrivals} == {call.server_rtp}
    assert counters["rtp_timeouts"] == 0 and counters["calls_active"] == 1
    assert "Traceback" not in server.log()


def test_a_forged_udp_source_naming_its_own_address_gets_no_early_media_music(
    tmp_path: Path,
) -> None:
    """RTP reflection with a forged UDP source (second review, finding B): the INVITE
    "comes from" the victim's IP and names the victim's own address, so the address
    looks vouched for; with ``queue.answer: false`` (183, no ACK to wait for) the victim
    receives nothing. A real phone's first early-media packet from that address starts
    the music."""
    cfg = make_config(
        rtp_ports=free_port_range(8),
        members=[{"uri": f"sip:agent@{LOOPBACK}:9", "position": 1, "joined": False}],
    )
    cfg["groups"][0]["queue"]["answer"] = False
    server = start_server(tmp_path, cfg)
    forger, victim = SipUA("forger", server.sip), RtpSocket()  # both on the victim's IP
    with closing_all(victim, forger, server):
        call_id = forger.new_call_id()
        body = sdp_offer(victim.port)  # 127.0.0.1: the very IP the INVITE came from
        forger.send(forger.request("INVITE", f"sip:{PILOT}@test.invalid", call_id, 1, body=body))
        early = forger.wait(lambda m: not m.is_request and m.call_id == call_id and m.status == 183)
        server_rtp = sdp_audio(early.body)[:2]
        time.sleep(0.8)  # some 40 music packets are due meanwhile; no ACK ever comes
        reflected = len(victim.arrivals)
        held = stats(server)
        talk([(victim, server_rtp, CALLER_SSRC)], 1)  # a real phone's early media
        victim.wait_for(25)

    assert reflected == 0, "the music was reflected at a forged source's SDP address"
    assert held["music_packets"] == 0
    assert len(victim.arrivals) >= 25, "the music did not start at the caller's first packet"
    assert {a.source for a in victim.arrivals} == {server_rtp}
    assert victim.arrivals[0].packet.marker
    assert "Traceback" not in server.log()
