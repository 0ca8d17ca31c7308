"""Transfers through a real ``huntgroup serve``: baresip's blind transfer, SIPp's attended one.

Blind: a hand-written caller (with an RTP socket) calls the pilot of Support, whose
member is a real baresip 1.0 line; baresip answers, then transfers the call (its
``transfer`` command, REFER) to the pilot of Sales, whose member is a hand-written
UAS. Checked: baresip gets 202, then ``NOTIFY 100 Trying``, then ``NOTIFY 200 OK``,
then BYE, in that order (its SIP trace); the caller is never hung up on and hears
the Sales member's RTP afterwards.

The same blind transfer in direct media mode: the caller, end to end with
baresip, is re-INVITEd onto a port of the server and hears music there while
Sales is rung, then re-INVITEd toward Sales (end to end again).

baresip 1.0.0 has blind transfer only (no Replaces, no attended transfer): the
attended transfers, from a member and from the caller's side (a line joining
the member it called with the one it consulted), are driven by hand-written
user agents instead (SIPp's scenario language cannot build the Replaces value
out of the tags of another call).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from huntgroup.engine.sip import digest
from tests.support.media_live_harness import (
    RtpSocket,
    SipUA,
    answer_bye,
    answer_invite,
    await_answer,
    closing_all,
    invite_pilot,
    rtp,
    sdp_audio,
    sdp_offer,
)
from tests.support.ports import PortAllocator
from tests.support.sip_harness import (
    DOMAIN,
    HOST,
    Baresip,
    HuntgroupServer,
    group,
    server_config,
)
from tests.support.sip_messages import SipMessage
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]

LINE = "0102030405"
PASSWORD = "s3cret"
PILOT = "0140000000"  # Support: the baresip line
SALES = "0150000000"  # Sales: a hand-written member
MEMBER_SSRC = 0x5A1E5


def requests_in_trace(phone: Baresip) -> list[str]:
    """The requests ``phone`` received, in order, from its SIP trace (``-s``): the method,
    and for a NOTIFY the status of its sipfrag."""
    out: list[str] = []
    to_phone = re.compile(rf"UDP \S+ -> 127\.0\.0\.1:{phone.sip_port}$")
    for block in re.split(r"\n(?=UDP \S+ -> \S+)", phone.log()):  # one block per message
        head = block.split("\n", 1)
        if len(head) < 2 or not to_phone.match(head[0].strip()):
            continue
        start = re.search(r"^([A-Z]+) sip:\S+ SIP/2\.0", head[1], re.M)
        if start is None:
            continue
        method = start.group(1)
        if method == "NOTIFY":
            frag = re.search(r"SIP/2\.0 (\d{3}) ", head[1].split("\n", 1)[1])
            method += f" {frag.group(1) if frag else '?'}"
        out.append(method)
    return out


def support_and_sales(
    ports: PortAllocator,
    start_server: Callable[[dict[str, Any]], HuntgroupServer],
    lines: list[dict[str, Any]],
    mode: str = "relay",
) -> tuple[HuntgroupServer, SipUA]:
    """A server (media ``mode``) with ``lines``, whose Support group is line ``LINE`` and
    whose Sales group is a hand-written member (returned, to answer Sales' calls)."""
    sales = SipUA("sales", (HOST, 0))
    config = server_config(
        ports,
        lines=lines,
        groups=[
            group("Support", PILOT, "linear", [LINE], no_answer_timeout=10),
            group("Sales", SALES, "linear", [f"sip:sales@{HOST}:{sales.port}"]),
        ],
    )
    config["server"]["media"]["mode"] = mode
    server = start_server(config)
    sales.server = (HOST, server.port)
    return server, sales


def baresip_in_support(
    tmp_path: Path,
    ports: PortAllocator,
    baresips: list[Baresip],
    start_server: Callable[[dict[str, Any]], HuntgroupServer],
    mode: str,
) -> tuple[HuntgroupServer, Baresip, SipUA]:
    """A server (media ``mode``) whose Support group is a registered baresip line and
    whose Sales group is a hand-written member (returned, to answer Sales' calls)."""
    ha1 = hashlib.md5(f"{LINE}:{DOMAIN}:{PASSWORD}".encode()).hexdigest()
    lines = [{"number": LINE, "name": "baresip", "ha1_md5": ha1}]
    server, sales = support_and_sales(ports, start_server, lines, mode)
    phone = Baresip(
        workdir=tmp_path / "baresip",
        number=LINE,
        password=PASSWORD,
        registrar_port=server.port,
        sip_port=ports.port(),
        ctrl_port=ports.port(),
        sip_trace=True,
    )
    baresips.append(phone.start())
    phone.wait_registered()
    return server, phone, sales


def test_baresip_blind_transfer_to_a_pilot(
    tmp_path: Path,
    ports: PortAllocator,
    baresips: list[Baresip],
    start_server: Callable[[dict[str, Any]], HuntgroupServer],
) -> None:
    server, phone, sales = baresip_in_support(tmp_path, ports, baresips, start_server, "relay")

    caller = SipUA("caller", (HOST, server.port))
    caller_audio, sales_audio = RtpSocket(), RtpSocket()
    with closing_all(caller, sales, caller_audio, sales_audio):
        call_id = invite_pilot(caller, caller_audio.port, ("PCMU",))
        call = await_answer(caller, call_id, timeout=15)
        wait_until(lambda: "Call established" in phone.log(), timeout=10)

        phone.command("transfer", f"sip:{SALES}@{DOMAIN}")  # fails unless baresip says ok
        leg, engine_rtp = answer_invite(sales, sales_audio.port, timeout=15)

        # baresip: 202 (its log), NOTIFY 100, NOTIFY 200, then BYE
        def transferred() -> bool:
            received = requests_in_trace(phone)
            return "NOTIFY 200" in received and "BYE" in received[received.index("NOTIFY 200") :]

        wait_until(transferred, timeout=10, message=lambda: phone.log()[-6000:])
        received = requests_in_trace(phone)
        assert [r for r in received if r.startswith(("NOTIFY", "BYE"))][-3:] == [
            "NOTIFY 100",
            "NOTIFY 200",
            "BYE",
        ], received
        assert re.search(r"SIP/2\.0 202 Accepted", phone.log())

        # the caller is still in its call, and hears Sales now
        for i in range(25):
            sales_audio.sendto(rtp(0, 500 + i, 160 * i, MEMBER_SSRC, bytes([i]) * 160), engine_rtp)
            time.sleep(0.005)  # a pace, not a burst
        heard = caller_audio.wait_until(
            lambda arrivals: sum(a.packet.ssrc == MEMBER_SSRC for a in arrivals) >= 20
        )
        assert sum(a.packet.ssrc == MEMBER_SSRC for a in heard) >= 20
        assert not any(m.is_request and m.method == "BYE" for m in caller.pending), (
            "the caller was hung up on"
        )
        call.hang_up()
        answer_bye(sales, leg.call_id)
    server.wait_for_log(r"transfer by 0102030405 done \(200\)")


def test_baresip_blind_transfer_in_direct_media_mode_plays_the_targets_music(
    tmp_path: Path,
    ports: PortAllocator,
    baresips: list[Baresip],
    start_server: Callable[[dict[str, Any]], HuntgroupServer],
) -> None:
    """``server.media.mode: direct``: the caller talks to baresip end to end; on the
    transfer it is re-INVITEd onto a port of the server and hears music there while
    Sales is rung; once Sales answers it is re-INVITEd toward Sales, end to end."""
    server, phone, sales = baresip_in_support(tmp_path, ports, baresips, start_server, "direct")
    low, high = (int(p) for p in server.config["server"]["media"]["rtp_ports"].split("-"))

    caller = SipUA("caller", (HOST, server.port))
    caller_audio, sales_audio = RtpSocket(), RtpSocket()
    with closing_all(caller, sales, caller_audio, sales_audio):
        call_id = invite_pilot(caller, caller_audio.port, ("PCMU",))
        call = await_answer(caller, call_id, timeout=15)
        assert not low <= call.server_rtp[1] <= high, "end to end with baresip"
        wait_until(lambda: "Call established" in phone.log(), timeout=10)

        phone.command("transfer", f"sip:{SALES}@{DOMAIN}")

        def reinvite_of_caller() -> SipMessage:
            return caller.wait(
                lambda m: m.is_request and m.method == "INVITE" and m.call_id == call_id,
                timeout=10,
            )

        def accept(reinvite: SipMessage) -> None:
            body = sdp_offer(caller_audio.port)
            caller.send(
                caller.response(reinvite, 200, "OK", tag=call.to_tag, body=body), reinvite.source
            )
            cseq = reinvite.cseq
            caller.wait(lambda m: m.is_request and m.method == "ACK" and m.cseq[0] == cseq[0])

        onto_music = reinvite_of_caller()
        address, music_port, _ = sdp_audio(onto_music.body)
        assert address == HOST and low <= music_port <= high, "a port of the server"
        assert "a=sendonly" in onto_music.body
        accept(onto_music)
        ours = (HOST, music_port)
        music = caller_audio.wait_until(  # the music, from our port (baresip may still send)
            lambda arrivals: sum(a.source == ours for a in arrivals) >= 25
        )
        assert sum(a.source == ours for a in music) >= 25

        leg, offered = answer_invite(sales, sales_audio.port, timeout=15)
        assert offered == (HOST, caller_audio.port), "Sales is offered the caller's own RTP"
        toward_sales = reinvite_of_caller()
        assert sdp_audio(toward_sales.body)[:2] == (HOST, sales_audio.port)
        accept(toward_sales)
        server.wait_for_log(r": media end to end")
        for i in range(25):  # Sales talks to the caller directly
            sales_audio.sendto(rtp(0, 500 + i, 160 * i, MEMBER_SSRC, bytes([i]) * 160), offered)
            time.sleep(0.005)  # a pace, not a burst
        heard = caller_audio.wait_until(
            lambda arrivals: sum(a.packet.ssrc == MEMBER_SSRC for a in arrivals) >= 20
        )
        assert sum(a.packet.ssrc == MEMBER_SSRC for a in heard) >= 20

        def transferred() -> bool:
            received = requests_in_trace(phone)
            return "NOTIFY 200" in received and "BYE" in received[received.index("NOTIFY 200") :]

        wait_until(transferred, timeout=10, message=lambda: phone.log()[-6000:])
        assert not any(m.is_request and m.method == "BYE" for m in caller.pending), (
            "the caller was hung up on"
        )
        call.hang_up()
        answer_bye(sales, leg.call_id)
    server.wait_for_log(r"transfer by 0102030405 done \(200\)")


CALLER_LINE = "0102030406"


def test_baresip_caller_transfers_the_baresip_member_it_called(
    tmp_path: Path,
    ports: PortAllocator,
    baresips: list[Baresip],
    start_server: Callable[[dict[str, Any]], HuntgroupServer],
) -> None:
    """The caller is a line too (baresip L): its REFER goes on to the member's baresip
    (M), which calls Sales through the server itself and hangs up the first call."""

    def md5(number: str) -> str:
        return hashlib.md5(f"{number}:{DOMAIN}:{PASSWORD}".encode()).hexdigest()

    lines = [
        {"number": LINE, "name": "member", "ha1_md5": md5(LINE)},
        {"number": CALLER_LINE, "name": "caller", "ha1_md5": md5(CALLER_LINE)},
    ]
    server, sales = support_and_sales(ports, start_server, lines)
    phones = {
        number: Baresip(
            workdir=tmp_path / f"baresip-{number}",
            number=number,
            password=PASSWORD,
            registrar_port=server.port,
            sip_port=ports.port(),
            ctrl_port=ports.port(),
            sip_trace=True,
        )
        for number in (LINE, CALLER_LINE)
    }
    for phone in phones.values():
        baresips.append(phone.start())
    for phone in phones.values():
        phone.wait_registered()
    member, caller = phones[LINE], phones[CALLER_LINE]
    with closing_all(sales):
        caller.command("dial", f"sip:{PILOT}@{DOMAIN}")
        wait_until(lambda: "Call established" in member.log(), timeout=15)
        wait_until(lambda: "Call established" in caller.log(), timeout=15)
        caller.command("transfer", f"sip:{SALES}@{DOMAIN}")
        invite = sales.wait(lambda m: m.method == "INVITE", timeout=15)
        assert f"sip:{LINE}" in (invite.header("From") or "")  # the member calls Sales
        tag = "s1"
        sales.send(sales.response(invite, 200, "OK", tag=tag, body=sdp_offer(40000)), invite.source)
        sales.wait(lambda m: m.method == "ACK", timeout=10)

        def settled() -> bool:  # the NOTIFYs came back to the caller; the first call ended
            received = requests_in_trace(caller)
            return "NOTIFY 200" in received and "BYE" in requests_in_trace(member)

        wait_until(settled, timeout=15, message=lambda: caller.log()[-6000:])
        notifies = [r for r in requests_in_trace(caller) if r.startswith("NOTIFY")]
        assert notifies == ["NOTIFY 100", "NOTIFY 200"], notifies
        assert "REFER" in requests_in_trace(member)
    server.wait_for_log(r"transfers 0102030405 to 0150000000 \(REFER passed on\)")


# ------------------------------------------------------------------ attended


class Line(SipUA):
    """A hand-written phone registered as one of our lines, that answers and transfers."""

    def __init__(self, server: tuple[str, int], number: str) -> None:
        super().__init__(f"line{number}", server)
        self.number = number
        self.cseq = itertools.count(1)

    def message(self, start: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
        items = [*headers]
        if body:
            items.append(("Content-Type", "application/sdp"))
        items.append(("Content-Length", str(len(body))))
        text = start + "\r\n" + "".join(f"{n}: {v}\r\n" for n, v in items) + "\r\n"
        return text.encode() + body

    def out_of_dialog(
        self,
        method: str,
        uri: str,
        to: str,
        call_id: str,
        *extra: tuple[str, str],
        body: bytes = b"",
    ) -> bytes:
        return self.message(
            f"{method} {uri} SIP/2.0",
            [
                ("Via", f"SIP/2.0/UDP {self.host}:{self.port};branch={self.branch()};rport"),
                ("Max-Forwards", "70"),
                ("From", f"<sip:{self.number}@{DOMAIN}>;tag=t{call_id[:8]}"),
                ("To", to),
                ("Call-ID", call_id),
                ("CSeq", f"{next(self.cseq)} {method}"),
                ("Contact", f"<sip:{self.number}@{self.host}:{self.port}>"),
                *extra,
            ],
            body,
        )

    def register(self) -> None:
        call_id = self.new_call_id()
        aor = f"<sip:{self.number}@{DOMAIN}>"
        self.send(self.out_of_dialog("REGISTER", f"sip:{DOMAIN}", aor, call_id))
        challenge = self.wait(lambda m: m.status == 401)
        value = challenge.all("WWW-Authenticate")[0]
        answer = digest.authorization(
            digest.parse_challenge(value),
            username=self.number,
            password=PASSWORD,
            method="REGISTER",
            uri=f"sip:{DOMAIN}",
            cnonce="c0ffee",
            nc=1,
        )
        self.send(
            self.out_of_dialog("REGISTER", f"sip:{DOMAIN}", aor, call_id, ("Authorization", answer))
        )
        assert self.wait(lambda m: m.status is not None and m.status >= 200).status == 200

    def respond(self, request: SipMessage, status: int, tag: str, body: bytes = b"") -> None:
        self.send(self.response(request, status, "OK", tag=tag, body=body), request.source)

    def in_dialog(
        self, invite: SipMessage, tag: str, method: str, cseq: int, *extra: tuple[str, str]
    ) -> bytes:
        """A request in the dialog of ``invite``, which this phone answered with ``tag``."""
        contact = re.search(r"<([^>]+)>", invite.header("Contact") or "")
        assert contact
        return self.message(
            f"{method} {contact.group(1)} SIP/2.0",
            [
                ("Via", f"SIP/2.0/UDP {self.host}:{self.port};branch={self.branch()};rport"),
                ("Max-Forwards", "70"),
                ("From", f"{invite.header('To')};tag={tag}"),
                ("To", invite.header("From") or ""),
                ("Call-ID", invite.call_id),
                ("CSeq", f"{cseq} {method}"),
                ("Contact", f"<sip:{self.number}@{self.host}:{self.port}>"),
                *extra,
            ],
        )


def hear_each_other(
    sales_audio: RtpSocket,
    sales_target: tuple[str, int],
    other_audio: RtpSocket,
    other_target: tuple[str, int],
) -> None:
    """The Sales member and the party it was joined with send each other 25 packets (to
    where their SDP says), paced: each hears at least 20 of the other's."""
    for i in range(25):
        sales_audio.sendto(rtp(0, 700 + i, 160 * i, MEMBER_SSRC, bytes([i]) * 160), sales_target)
        other_audio.sendto(rtp(0, 100 + i, 160 * i, 0xCA11, bytes([i]) * 160), other_target)
        time.sleep(0.005)  # a pace, not a burst
    for audio, ssrc in ((other_audio, MEMBER_SSRC), (sales_audio, 0xCA11)):

        def enough(arrivals: list[Any], ssrc: int = ssrc) -> bool:
            return sum(a.packet.ssrc == ssrc for a in arrivals) >= 20

        assert enough(audio.wait_until(enough))


def settle(
    transferor: Line, first: str, consultation: str, sales: SipUA, leg2: SipMessage, sales_rtp: int
) -> SipMessage:
    """After an attended REFER: ``transferor`` gets (and answers 200) ``NOTIFY 100``, our
    BYE of call ``consultation``, ``NOTIFY 200`` and our BYE of call ``first``, in that
    order; meanwhile the Sales member answers our re-INVITE of ``leg2`` (returned) with
    ``sales_rtp``."""
    events: list[str] = []
    reinvite: SipMessage | None = None
    deadline = time.monotonic() + 15
    while not {"NOTIFY 200", f"BYE {first}"} <= set(events):
        assert time.monotonic() < deadline, events
        message = transferor.wait(lambda m: m.is_request, timeout=10)
        if message.method == "NOTIFY":
            assert message.header("Event") == "refer"
            events.append(f"NOTIFY {message.body.split()[1]}")
        else:
            events.append(f"{message.method} {message.call_id}")
        transferor.respond(message, 200, "x")
        if reinvite is None:  # the Sales member is moved: our re-INVITE
            with contextlib.suppress(TimeoutError):
                reinvite = sales.wait(
                    lambda m: m.method == "INVITE" and m.call_id == leg2.call_id, timeout=0.5
                )
                body = sdp_offer(sales_rtp)
                tag = leg2.tag("To") or "s"
                sales.send(sales.response(reinvite, 200, "OK", tag=tag, body=body), reinvite.source)
    assert events == [
        "NOTIFY 100",
        f"BYE {consultation}",  # the consultation ends
        "NOTIFY 200",
        f"BYE {first}",  # then the transferor's part of call 1
    ], events
    assert reinvite is not None
    return reinvite


def test_attended_transfer_joins_the_caller_with_the_consulted_member(
    tmp_path: Path,
    ports: PortAllocator,
    start_server: Callable[[dict[str, Any]], HuntgroupServer],
) -> None:
    lines = [{"number": LINE, "name": "agent", "password": PASSWORD}]
    server, sales = support_and_sales(ports, start_server, lines)
    agent = Line((HOST, server.port), LINE)
    caller = SipUA("caller", (HOST, server.port))
    caller_audio, agent_audio, sales_audio = RtpSocket(), RtpSocket(), RtpSocket()
    with closing_all(agent, caller, sales, caller_audio, agent_audio, sales_audio):
        agent.register()
        # call 1: the caller reaches the agent through Support
        call_id = invite_pilot(caller, caller_audio.port, ("PCMU",))
        leg1 = agent.wait(lambda m: m.method == "INVITE", timeout=10)
        agent.respond(leg1, 200, "a1", sdp_offer(agent_audio.port))
        agent.wait(lambda m: m.method == "ACK" and m.call_id == leg1.call_id)
        call = await_answer(caller, call_id, timeout=10)
        # call 2: the agent consults Sales itself; the Sales member answers
        consult_id = agent.new_call_id()
        agent.send(
            agent.out_of_dialog(
                "INVITE",
                f"sip:{SALES}@{DOMAIN}",
                f"<sip:{SALES}@{DOMAIN}>",
                consult_id,
                body=sdp_offer(agent_audio.port + 2),
            )
        )
        leg2, _ = answer_invite(sales, sales_audio.port, timeout=10)
        ok = agent.wait(lambda m: m.status == 200 and m.call_id == consult_id, timeout=10)
        our_tag, agent_tag = ok.tag("To"), ok.tag("From")
        contact = re.search(r"<([^>]+)>", ok.header("Contact") or "")
        assert contact and our_tag and agent_tag
        ack = agent.out_of_dialog("ACK", contact.group(1), ok.header("To") or "", consult_id)
        agent.send(ack.replace(b"CSeq: 3 ACK", b"CSeq: 2 ACK"))
        # the agent transfers call 1 to the consultation (REFER with Replaces)
        replaces = f"{consult_id.replace('@', '%40')}%3Bto-tag%3D{our_tag}%3Bfrom-tag%3D{agent_tag}"
        agent.send(
            agent.in_dialog(
                leg1, "a1", "REFER", 2, ("Refer-To", f"<sip:{SALES}@{DOMAIN}?Replaces={replaces}>")
            )
        )
        assert agent.wait(lambda m: m.cseq == (2, "REFER"), timeout=5).status == 202
        reinvite = settle(agent, leg1.call_id, consult_id, sales, leg2, sales_audio.port)
        _, engine_rtp, _ = sdp_audio(reinvite.body)
        # the caller and the Sales member hear each other
        hear_each_other(sales_audio, (HOST, engine_rtp), caller_audio, call.server_rtp)
        call.hang_up()
        answer_bye(sales, leg2.call_id)


@pytest.mark.parametrize("mode", ["relay", "direct"])
def test_attended_transfer_from_the_callers_side_joins_its_two_members(
    mode: str,
    tmp_path: Path,
    ports: PortAllocator,
    start_server: Callable[[dict[str, Any]], HuntgroupServer],
) -> None:
    """A line (hand-written) calls the agent through Support (call 1), consults Sales
    (call 2), then REFERs in call 1 with Replaces naming call 2: the agent and the Sales
    member are joined (through the server in relay mode, end to end in direct mode),
    and the line is hung up on both calls."""
    lines = [
        {"number": LINE, "name": "agent", "password": PASSWORD},
        {"number": CALLER_LINE, "name": "caller", "password": PASSWORD},
    ]
    server, sales = support_and_sales(ports, start_server, lines, mode)
    agent = Line((HOST, server.port), LINE)
    line = Line((HOST, server.port), CALLER_LINE)
    line_audio, agent_audio, sales_audio = RtpSocket(), RtpSocket(), RtpSocket()
    with closing_all(agent, line, sales, line_audio, agent_audio, sales_audio):
        agent.register()
        line.register()

        def contact_of(message: SipMessage) -> str:
            found = re.search(r"<([^>]+)>", message.header("Contact") or "")
            assert found
            return found.group(1)

        def ack(invite: bytes, ok: SipMessage) -> None:
            """The line's ACK of ``ok``, the 200 to its ``invite`` (the same CSeq)."""
            cseq = re.search(rb"CSeq: (\d+) INVITE", invite)
            assert cseq
            data = line.out_of_dialog("ACK", contact_of(ok), ok.header("To") or "", ok.call_id)
            line.send(re.sub(rb"CSeq: \d+ ACK", b"CSeq: " + cseq.group(1) + b" ACK", data))

        # call 1: the line reaches the agent through Support
        call_id1 = line.new_call_id()
        invite1 = line.out_of_dialog(
            "INVITE",
            f"sip:{PILOT}@{DOMAIN}",
            f"<sip:{PILOT}@{DOMAIN}>",
            call_id1,
            body=sdp_offer(line_audio.port),
        )
        line.send(invite1)
        leg1 = agent.wait(lambda m: m.method == "INVITE", timeout=10)
        agent.respond(leg1, 200, "a1", sdp_offer(agent_audio.port))
        agent.wait(lambda m: m.method == "ACK" and m.call_id == leg1.call_id)
        ok1 = line.wait(lambda m: m.status == 200 and m.call_id == call_id1, timeout=10)
        ack(invite1, ok1)
        _, engine_toward_agent, _ = sdp_audio(leg1.body)
        # call 2: the line consults Sales; the Sales member answers
        consult_id = line.new_call_id()
        invite2 = line.out_of_dialog(
            "INVITE",
            f"sip:{SALES}@{DOMAIN}",
            f"<sip:{SALES}@{DOMAIN}>",
            consult_id,
            body=sdp_offer(line_audio.port + 2),
        )
        line.send(invite2)
        leg2, _ = answer_invite(sales, sales_audio.port, timeout=10)
        ok2 = line.wait(lambda m: m.status == 200 and m.call_id == consult_id, timeout=10)
        ack(invite2, ok2)
        our_tag, line_tag = ok2.tag("To"), ok2.tag("From")
        assert our_tag and line_tag
        # the line REFERs in call 1, naming call 2
        replaces = f"{consult_id.replace('@', '%40')}%3Bto-tag%3D{our_tag}%3Bfrom-tag%3D{line_tag}"
        refer = line.out_of_dialog(
            "REFER",
            contact_of(ok1),
            ok1.header("To") or "",
            call_id1,
            ("Refer-To", f"<sip:{SALES}@{DOMAIN}?Replaces={replaces}>"),
        )
        line.send(refer)
        assert line.wait(lambda m: m.cseq_method == "REFER", timeout=5).status == 202
        reinvite = settle(line, call_id1, consult_id, sales, leg2, sales_audio.port)
        _, engine_toward_sales, _ = sdp_audio(reinvite.body)
        if mode == "direct":  # the agent learns where the Sales member wants its RTP
            assert engine_toward_sales == agent_audio.port, "Sales got the agent's own RTP"
            toward_agent = agent.wait(
                lambda m: m.method == "INVITE" and m.call_id == leg1.call_id, timeout=10
            )
            _, engine_toward_agent, _ = sdp_audio(toward_agent.body)
            assert engine_toward_agent == sales_audio.port
            agent.respond(toward_agent, 200, "a1", sdp_offer(agent_audio.port))
            agent.wait(lambda m: m.method == "ACK" and m.call_id == leg1.call_id)
            server.wait_for_log(r": media end to end")
        # the agent and the Sales member hear each other
        hear_each_other(
            sales_audio, (HOST, engine_toward_sales), agent_audio, (HOST, engine_toward_agent)
        )
        agent.send(agent.in_dialog(leg1, "a1", "BYE", 2))  # the agent hangs up
        answer_bye(sales, leg2.call_id)
    server.wait_for_log(r"joins 0102030405 with sip:sales@")
