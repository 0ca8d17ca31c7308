"""SipTraffic (engine/b2bua/stats.py): every SIP message in and out counted once, by method
or status code, on the full path and on the stateless refusals taken from the bytes."""

from __future__ import annotations

from huntgroup.engine.b2bua import Transmit
from tests.engine.b2bua.test_b2bua_limits import limited
from tests.support.b2bua_peers import PILOT, Network, make_config


def sent(net: Network) -> int:
    return sum(1 for _, out in net.transmits if isinstance(out, Transmit))


def counted_out(net: Network) -> int:
    traffic = net.b2b.traffic
    return sum(traffic.requests_out.values()) + sum(traffic.responses_out.values())


def test_a_call_counts_each_request_and_response_where_it_passes() -> None:
    net = Network(make_config("linear", members=1))
    m1 = net.phone("m1", 7001, "m1")
    caller = net.phone("a", 6001, "0600000001")
    call = caller.invite(PILOT)
    leg = m1.answering(m1.request("INVITE"))
    leg.reply(180)
    leg.reply(200, rtp=27001)
    m1.request("ACK")
    call.ack(caller.response(200))
    call.bye()
    caller.response(200, "BYE")
    m1.request("BYE")
    traffic = net.b2b.traffic
    assert traffic.requests_in["INVITE"] == 1
    assert traffic.requests_in["ACK"] == 1 and traffic.requests_in["BYE"] == 1
    assert traffic.responses_in == {180: 1, 200: 1}
    assert traffic.requests_out["INVITE"] == 1
    assert traffic.requests_out["ACK"] == 1 and traffic.requests_out["BYE"] == 1
    assert traffic.responses_out[180] == 1
    assert traffic.responses_out[200] == 2  # the caller's INVITE, then its BYE
    assert counted_out(net) == sent(net), "every datagram sent is counted once"
    received = sum(traffic.requests_in.values()) + sum(traffic.responses_in.values())
    assert received == net.b2b.counters.messages_in


def test_a_refusal_from_the_bytes_counts_its_invite_and_its_503() -> None:
    net = limited(max_loop_lag=0.1)
    for i in range(10):  # the driver reports a loop 300 ms late for 1 s
        net.b2b.admission.loop_lag(0.3, now=net.now + i * 0.1)
    net.advance(1.0)
    caller = net.phone("b", 6002, "0600000002")
    caller.invite(PILOT)
    caller.response(503)
    traffic = net.b2b.traffic
    assert net.b2b.counters.overload_refused == 1
    assert traffic.requests_in["INVITE"] == 1
    assert traffic.responses_out == {503: 1}
    assert counted_out(net) == sent(net)


def test_an_unknown_method_counts_as_other() -> None:
    net = Network(make_config("linear", members=1))
    phone = net.phone("a", 6001, "0600000001")
    phone.send(
        (
            f"FROB sip:{PILOT}@127.0.0.1 SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:6001;branch=z9hG4bK-frob\r\n"
            "From: <sip:0600000001@127.0.0.1>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\n"
            "Call-ID: frob-1\r\nCSeq: 1 FROB\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        ).encode()
    )
    phone.response(501, "FROB")
    traffic = net.b2b.traffic
    assert traffic.requests_in["other"] == 1
    assert "FROB" not in traffic.requests_in
    assert traffic.responses_out == {501: 1}
