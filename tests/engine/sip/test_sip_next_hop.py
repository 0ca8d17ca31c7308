"""Response routing: a response goes back where its request came from, never where the
request's Via says (no reflection at third parties, no connection opened on a Via's say-so).
"""

from __future__ import annotations

import pytest

from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.fields import parse_via
from huntgroup.engine.sip.layer import TransactionLayer
from huntgroup.engine.sip.message import Request, make_response
from huntgroup.engine.sip.next_hop import response_destination, stamp_via
from huntgroup.engine.sip.parser import parse_datagram
from huntgroup.engine.sip.transaction import SendMessage

SOURCE = Peer("192.0.2.50", 5066, "UDP")

STEERING_VIAS = [
    # maddr: the response (and its retransmissions) to a victim of the sender's choosing
    "SIP/2.0/UDP 192.0.2.50:5066;maddr=198.51.100.7;branch=z9hG4bKa",
    "SIP/2.0/UDP 192.0.2.50:5066;maddr=victim.example.com;rport;branch=z9hG4bKb",
    # a transport the request did not arrive on: a TCP connection to any host and port
    "SIP/2.0/TCP 198.51.100.7:22;branch=z9hG4bKc",
    "SIP/2.0/TLS 198.51.100.7:443;branch=z9hG4bKd",
    # sent-by elsewhere, with and without rport
    "SIP/2.0/UDP 198.51.100.7:53;branch=z9hG4bKe",
    "SIP/2.0/UDP victim.example.com:9;rport=53;received=198.51.100.7;branch=z9hG4bKf",
    "SIP/2.0/UDP [2001:db8::7]:5060;branch=z9hG4bKg",
]


def request_with(via: str) -> bytes:
    return (
        "OPTIONS sip:ping@voip.example.net SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:a@example.com>;tag=f1\r\n"
        "To: <sip:ping@voip.example.net>\r\n"
        "Call-ID: steer@test\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


@pytest.mark.parametrize("via", STEERING_VIAS)
def test_a_udp_request_is_answered_over_udp_at_its_real_source(via: str) -> None:
    assert response_destination(parse_via(via), SOURCE) == SOURCE
    request = parse_datagram(request_with(via))
    assert isinstance(request, Request)
    stamped = stamp_via(request, SOURCE)
    assert response_destination(stamped.top_via, SOURCE) == SOURCE


@pytest.mark.parametrize("transport", ["TCP", "TLS"])
@pytest.mark.parametrize("via", STEERING_VIAS)
def test_a_stream_request_is_answered_on_its_connection(via: str, transport: str) -> None:
    connection = Peer("192.0.2.50", 40000, transport)
    assert response_destination(parse_via(via), connection) == connection


def test_symmetric_routing_without_rport() -> None:
    """RFC 3581 behaviour even when the sender did not ask: the source port, not 5060."""
    via = parse_via("SIP/2.0/UDP 192.0.2.50;branch=z9hG4bKh")
    assert response_destination(via, SOURCE) == Peer("192.0.2.50", 5066, "UDP")


@pytest.mark.parametrize("method", ["OPTIONS", "INVITE"])
def test_every_response_and_retransmission_of_a_transaction_goes_to_the_source(
    method: str,
) -> None:
    """The transaction layer: 100, final response, retransmissions until the timers end."""
    layer = TransactionLayer()
    data = request_with("SIP/2.0/TCP 198.51.100.7:5060;maddr=198.51.100.8;branch=z9hG4bKi")
    data = data.replace(b"OPTIONS", method.encode())
    request = parse_datagram(data)
    assert isinstance(request, Request)
    actions = layer.receive(request, SOURCE, now=0.0)
    (key,) = {a.key for a in actions if hasattr(a, "key") and a.key is not None}
    sent = [a for a in actions if isinstance(a, SendMessage)]
    stamped = layer.request_of(key)
    sent += [
        a
        for a in layer.send_response(key, make_response(stamped, 486, to_tag="t"), now=0.0)
        if isinstance(a, SendMessage)
    ]
    now = 0.0
    while (due := layer.get_timer()) is not None and now < 100:
        now = due
        sent += [a for a in layer.handle_timer(now=now) if isinstance(a, SendMessage)]
    assert len(layer) == 0
    assert sent, "something was answered"
    assert {a.destination for a in sent} == {SOURCE}
