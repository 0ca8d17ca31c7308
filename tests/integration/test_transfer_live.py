"""Transfers through a real ``huntgroup serve``: baresip's blind transfer, SIPp's attended one.

Blind: a hand-written caller (with an RTP socket) calls the pilot of Support, whose
member is a real baresip 1.0 line; baresip answers, then transfers the call (its
``transfer`` command, REFER) to the pilot of Sales, whose member is a hand-written
UAS. Checked: baresip gets 202, then ``NOTIFY 100 Trying``, then ``NOTIFY 200 OK``,
then BYE, in that order (its SIP trace); the caller is never hung up on and hears
the Sales member's RTP afterwards.

baresip 1.0.0 has blind transfer only (no Replaces, no attended transfer): the
attended transfer is driven by hand-written user agents instead (SIPp's scenario
language cannot build the Replaces value out of the tags of another call).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.media_live_harness import (
    RtpSocket,
    SipUA,
    answer_bye,
    answer_invite,
    await_answer,
    closing_all,
    invite_pilot,
    rtp,
)
from tests.support.ports import PortAllocator
from tests.support.sip_harness import (
    DOMAIN,
    HOST,
    Baresip,
    HuntgroupServer,
    baresip_binary,
    group,
    server_config,
)
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]

LINE = "0102030405"
PASSWORD = "s3cret"
PILOT = "0140000000"  # Support: the baresip line
SALES = "0150000000"  # Sales: a hand-written member
MEMBER_SSRC = 0x5A1E5


@pytest.fixture
def baresips() -> Iterator[list[Baresip]]:
    baresip_binary()  # fails with the install hint when missing
    phones: list[Baresip] = []
    yield phones
    for phone in phones:
        phone.stop()


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


def test_baresip_blind_transfer_to_a_pilot(
    tmp_path: Path,
    ports: PortAllocator,
    baresips: list[Baresip],
    start_server: Callable[[dict[str, Any]], HuntgroupServer],
) -> None:
    sales = SipUA("sales", (HOST, 0))
    ha1 = hashlib.md5(f"{LINE}:{DOMAIN}:{PASSWORD}".encode()).hexdigest()
    config = server_config(
        ports,
        lines=[{"number": LINE, "name": "baresip", "ha1_md5": ha1}],
        groups=[
            group("Support", PILOT, "linear", [LINE], no_answer_timeout=10),
            group("Sales", SALES, "linear", [f"sip:sales@{HOST}:{sales.port}"]),
        ],
    )
    server = start_server(config)
    sales.server = (HOST, server.port)
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

    caller = SipUA("caller", (HOST, server.port))
    caller_audio, sales_audio = RtpSocket(), RtpSocket()
    with closing_all(caller, sales, caller_audio, sales_audio):
        call_id = invite_pilot(caller, caller_audio.port, ("PCMU",))
        call = await_answer(caller, call_id, timeout=15)
        wait_until(lambda: "Call established" in phone.log(), timeout=10)

        answer = phone.command("transfer", f"sip:{SALES}@{DOMAIN}")
        assert answer.get("ok"), answer
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
