"""Out-of-call requests to the B2BUA: each gets the status RFC 3261 and DESIGN.md ask for."""

from __future__ import annotations

import pytest

from huntgroup.engine.b2bua import Transmit
from huntgroup.engine.sip.address import Peer
from tests.support.b2bua_peers import (
    CALLER_NUMBER,
    DOMAIN,
    PILOT,
    Network,
    allow_of,
    build,
    make_config,
    sdp,
)

ALLOWED = {
    "INVITE",
    "ACK",
    "CANCEL",
    "BYE",
    "OPTIONS",
    "REGISTER",
    "INFO",
    "UPDATE",
    "REFER",
    "SUBSCRIBE",
    "NOTIFY",
}


@pytest.fixture
def net() -> Network:
    return Network(make_config())


def test_options_is_answered_200_with_allow(net: Network) -> None:
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    caller.simple("OPTIONS", f"sip:{DOMAIN}")
    ok = caller.response(200, "OPTIONS")
    assert allow_of(ok) == ALLOWED
    assert ok.headers.get("Accept") == "application/sdp"
    assert ok.to.tag, "a final response to a request without To tag carries one"
    caller.quiet()
    assert net.b2b.active_calls == 0


def test_options_with_max_forwards_zero_is_still_answered(net: Network) -> None:
    """§16.3 item 3: an element may answer an OPTIONS with Max-Forwards 0 itself."""
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    caller.simple("OPTIONS", f"sip:{DOMAIN}", max_forwards=0)
    caller.response(200, "OPTIONS")


def test_unknown_method_gets_501_with_allow(net: Network) -> None:
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    caller.simple("FROBNICATE", f"sip:{PILOT}@{DOMAIN}")
    reply = caller.response(501, "FROBNICATE")
    assert allow_of(reply) == ALLOWED
    caller.quiet()


def test_known_but_unsupported_method_gets_405(net: Network) -> None:
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    caller.simple("MESSAGE", f"sip:{PILOT}@{DOMAIN}", body=b"hello")
    reply = caller.response(405, "MESSAGE")
    assert allow_of(reply) == ALLOWED


def test_invite_to_unknown_number_gets_404(net: Network) -> None:
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    call = caller.invite("0199999999")
    not_found = caller.response(404)
    assert not_found.call_id == call.call_id
    assert not_found.to.tag
    call.ack_failure(not_found)
    caller.quiet()
    assert net.b2b.active_calls == 0
    assert net.ports_in_use == 0


def test_final_error_is_retransmitted_until_acked(net: Network) -> None:
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    caller.invite("0199999999")
    net.advance(0.6)  # Timer G (T1 = 0.5 s) fired once
    assert caller.count(404) == 2
    net.advance(40)  # Timer H (64*T1) ends the transaction: at most a handful more
    sent = caller.count(404)
    assert 5 <= sent <= 12
    net.advance(40)
    assert caller.count(404) == sent


def test_final_error_stops_after_ack(net: Network) -> None:
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    call = caller.invite("0199999998")
    refused = caller.response(404)
    call.ack_failure(refused)
    net.advance(60)
    assert caller.count(404) == 1
    caller.quiet()


def test_malformed_request_with_readable_headers_gets_400_at_source(net: Network) -> None:
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    data = build(
        f"INVITE sip:{PILOT}@{DOMAIN} SIP/2.0",
        [
            ("Via", "SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK-bad-1;rport"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:{CALLER_NUMBER}@{DOMAIN}>;tag=a1"),
            ("To", f"<sip:{PILOT}@{DOMAIN}>"),
            ("Call-ID", "bad-1@test"),
            ("CSeq", "one INVITE"),
        ],
        sdp(10000),
    )
    out = caller.send(data)
    assert len(out) == 1 and isinstance(out[0], Transmit)
    assert out[0].destination == caller.peer
    # The 400 copies the request's fields as received, the broken CSeq included.
    assert len(caller.unparsable) == 1
    bad = caller.unparsable[0]
    assert bad.startswith(b"SIP/2.0 400 ")
    assert b"Call-ID: bad-1@test\r\n" in bad
    assert b"branch=z9hG4bK-bad-1" in bad
    assert net.b2b.active_calls == 0
    assert net.ports_in_use == 0


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\xff garbage \r\n\r\n",
        b"INVITE\r\n\r\n",
        b"SIP/2.0 200 OK\r\n\r\n",
        b"INVITE sip:x SIP/2.0\r\nVia: nonsense\r\n\r\n",
        b"ACK sip:x@y SIP/2.0\r\nCSeq: x\r\n\r\n",
        b"\r\n\r\n",
    ],
)
def test_unreadable_datagram_is_dropped_without_exception(net: Network, data: bytes) -> None:
    out = net.deliver(data, Peer("127.0.0.1", 6000, "UDP"))
    assert all(isinstance(o, Transmit) for o in out)
    assert net.b2b.active_calls == 0


def test_invite_without_g711_gets_488(net: Network) -> None:
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    call = caller.invite(PILOT, body=sdp(10000, codecs=[(18, "G729")], event=None))
    refused = caller.response(488)
    call.ack_failure(refused)
    for member in range(1, 4):
        assert net.phones.get(("127.0.0.1", 7000 + member)) is None
    assert not net.stray, "no member was rung"
    assert net.ports_in_use == 0
    assert net.b2b.active_calls == 0


def test_invite_without_sdp_gets_488(net: Network) -> None:
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    caller.invite(PILOT, body=b"")
    caller.response(488)
    assert not net.stray
    assert net.ports_in_use == 0


def test_invite_with_other_body_type_gets_415(net: Network) -> None:
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    caller.invite(PILOT, content_type="text/plain")
    caller.response(415)
    assert net.ports_in_use == 0


def test_max_forwards_zero_gets_483(net: Network) -> None:
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    caller.invite(PILOT, max_forwards=0)
    caller.response(483)
    caller.quiet()
    assert not net.stray
    assert net.b2b.active_calls == 0


def test_max_forwards_is_decremented_toward_members(net: Network) -> None:
    m1 = net.phone("m1", 7001)
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    caller.invite(PILOT, max_forwards=5)
    assert m1.request("INVITE").max_forwards == 4


def test_out_of_dialog_bye_gets_481(net: Network) -> None:
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    caller.simple("BYE", f"sip:{PILOT}@{DOMAIN}")
    caller.response(481, "BYE")
    caller.simple("BYE", f"sip:{PILOT}@{DOMAIN}", to_tag="no-such-dialog")
    caller.response(481, "BYE")
    caller.quiet()


def test_cancel_for_unknown_transaction_gets_481(net: Network) -> None:
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    caller.simple("CANCEL", f"sip:{PILOT}@{DOMAIN}")
    caller.response(481, "CANCEL")


def test_no_rtp_port_left_for_members_ends_the_call_cleanly() -> None:
    from huntgroup.media.ports import PortAllocator
    from tests.support.b2bua_peers import CALLER_NUMBER, PILOT, Network, make_config

    net = Network(make_config("linear", members=2))
    net.b2b.media.ports = PortAllocator((40000, 40001))  # one pair: the caller's only
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    caller.invite(PILOT)
    final = caller.response(480)  # every member unreachable: linear ends at once
    assert final.status == 480
    assert net.b2b.active_calls == 0
    assert net.b2b.media.ports.in_use == 0
    caller.invite(PILOT)  # and the next caller is served the same way, no leak
    caller.response(480)


def test_no_rtp_port_left_for_the_caller_gets_503_and_takes_nothing() -> None:
    """Running out of RTP ports is a local condition (PortsExhausted), answered as today:
    503 Service Unavailable, without Retry-After, and no call kept."""
    from huntgroup.media.ports import PortAllocator

    net = Network(make_config("linear", members=1))
    ports = PortAllocator((40000, 40001))
    ports.allocate()  # the only pair is taken
    net.b2b.media.ports = ports
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    call = caller.invite(PILOT)
    refused = caller.response(503)
    assert refused.reason == "Service Unavailable"
    assert refused.headers.get("Retry-After") is None
    call.ack_failure(refused)
    assert net.b2b.active_calls == 0
    assert ports.in_use == 1
    assert net.b2b.counters.internal_errors == 0


def test_no_rtp_port_left_for_an_outgoing_leg_gets_the_caller_503() -> None:
    from huntgroup.media.ports import PortAllocator
    from tests.engine.b2bua.test_b2bua_upstream import (
        UPSTREAM_PORT,
        authorised_invite,
        upstream_config,
    )

    net = Network(upstream_config())
    upstream = net.phone("upstream", UPSTREAM_PORT, "core")
    net.b2b.media.ports = PortAllocator((40000, 40001))  # one pair: the caller's only
    alice, call = authorised_invite(net)
    refused = alice.response(503)
    assert refused.reason == "Service Unavailable"
    call.ack_failure(refused)
    upstream.quiet()
    assert net.b2b.active_calls == 0
    assert net.b2b.media.ports.in_use == 0
