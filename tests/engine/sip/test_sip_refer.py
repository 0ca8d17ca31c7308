"""Refer-To, Replaces, Refer-Sub and sipfrag (RFC 3515, 3891, 4488, 3420)."""

from __future__ import annotations

import pytest

from huntgroup.engine.sip.message import Request
from huntgroup.engine.sip.parser import parse_datagram
from huntgroup.engine.sip.refer import (
    Replaces,
    parse_replaces,
    refer_target,
    sipfrag,
    wants_subscription,
)
from huntgroup.engine.sip.uri import SipUri, TelUri
from huntgroup.errors import RemoteProtocolError


def refer(*extra: str) -> Request:
    lines = [
        "REFER sip:srv@127.0.0.1 SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1",
        "Max-Forwards: 70",
        "From: <sip:0100000001@x>;tag=a",
        "To: <sip:srv@x>;tag=b",
        "Call-ID: c1@x",
        "CSeq: 2 REFER",
        "Contact: <sip:0100000001@127.0.0.1:5070>",
        *extra,
        "Content-Length: 0",
        "",
        "",
    ]
    request = parse_datagram("\r\n".join(lines).encode())
    assert isinstance(request, Request)
    return request


def test_a_blind_refer_to_names_a_sip_or_tel_uri() -> None:
    target = refer_target(refer("Refer-To: <sip:0150000000@example.com>"))
    assert isinstance(target.uri, SipUri) and target.uri.user == "0150000000"
    assert target.replaces is None
    compact = refer_target(refer("r: tel:+33150000000"))
    assert isinstance(compact.uri, TelUri)


def test_an_attended_refer_to_carries_an_escaped_replaces() -> None:
    value = (
        "Refer-To: <sip:0100000002@example.com"
        "?Replaces=abc%40host%3Bto-tag%3D7a%3Bfrom-tag%3D9b%3Bearly-only>"
    )
    target = refer_target(refer(value))
    assert target.replaces == Replaces("abc@host", "7a", "9b", early_only=True)


@pytest.mark.parametrize(
    "headers",
    [
        (),  # none
        ("Refer-To: <sip:1@x>", "Refer-To: <sip:2@x>"),  # two fields
        ("Refer-To: <sip:1@x>, <sip:2@x>",),  # two values
        ("Refer-To: <sip:1@x?Replaces=a%3Bto-tag%3D1>",),  # no from-tag
        ("Refer-To: <sip:1@x?Replaces=a%3Bto-tag%3D1%3Bfrom-tag%3D2&Replaces=b>",),
        ("Refer-To: <sip:1@x?Replaces=%FF%3Bto-tag%3D1%3Bfrom-tag%3D2>",),  # not UTF-8
        ("Refer-To: <sip:1@x?Replaces=%3Bto-tag%3D1%3Bfrom-tag%3D2>",),  # empty Call-ID
        ("Refer-To: sip:1@x>",),
    ],
)
def test_a_malformed_refer_to_is_a_400(headers: tuple[str, ...]) -> None:
    try:
        request = refer(*headers)
    except RemoteProtocolError:
        return  # the parser refused it already: 400 all the same
    with pytest.raises(RemoteProtocolError) as err:
        refer_target(request)
    assert err.value.status == 400


def test_a_refer_to_of_another_scheme_is_a_416() -> None:
    with pytest.raises(RemoteProtocolError) as err:
        refer_target(refer("Refer-To: <http://evil.example/>"))
    assert err.value.status == 416


@pytest.mark.parametrize(
    "value",
    [
        "",
        "abc",  # no tags
        "abc;to-tag=1;to-tag=2;from-tag=3",
        "abc;to-tag=;from-tag=3",
        "abc;to-tag=1;from-tag=3;early-only=yes",
        "a b;to-tag=1;from-tag=2",
        "x" * 600 + ";to-tag=1;from-tag=2",
    ],
)
def test_a_malformed_replaces_is_a_400(value: str) -> None:
    with pytest.raises(RemoteProtocolError) as err:
        parse_replaces(value)
    assert err.value.status == 400


def test_replaces_keeps_its_tags_in_either_order_and_ignores_other_params() -> None:
    assert parse_replaces("k@h ; from-tag=f ; x=y ; to-tag=t") == Replaces("k@h", "t", "f")


def test_refer_sub_false_turns_the_subscription_off() -> None:
    assert wants_subscription(refer()) is True
    assert wants_subscription(refer("Refer-Sub: true")) is True
    assert wants_subscription(refer("Refer-Sub: FALSE;x=1")) is False
    for bad in (("Refer-Sub: maybe",), ("Refer-Sub: false", "Refer-Sub: false")):
        with pytest.raises(RemoteProtocolError):
            wants_subscription(refer(*bad))


def test_sipfrag_is_one_status_line() -> None:
    assert sipfrag(100) == b"SIP/2.0 100 Trying\r\n"
    assert sipfrag(486) == b"SIP/2.0 486 Busy Here\r\n"
