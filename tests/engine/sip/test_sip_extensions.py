"""Option tags (RFC 3261 §8.2.2.3, §19.2, §20.32, §20.37, §20.40): parsing and the Require check."""

from __future__ import annotations

import pytest

from huntgroup.engine.sip.extensions import (
    MAX_LISTED,
    SUPPORTED,
    option_tags,
    supported_value,
    unsupported_required,
)
from huntgroup.engine.sip.parser import parse_datagram
from huntgroup.errors import ProtocolError


def request(method: str = "INVITE", *extra: str) -> object:
    lines = [
        f"{method} sip:0140000000@example.com SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK1",
        "Max-Forwards: 70",
        "From: <sip:a@example.com>;tag=1",
        "To: <sip:0140000000@example.com>",
        "Call-ID: x@test",
        f"CSeq: 1 {method}",
        *extra,
        "Content-Length: 0",
        "",
        "",
    ]
    return parse_datagram("\r\n".join(lines).encode())


def test_we_support_session_timers_and_not_100rel() -> None:
    assert "timer" in SUPPORTED
    assert "100rel" not in SUPPORTED
    assert supported_value() == ", ".join(sorted(SUPPORTED))


def test_no_require_means_nothing_unsupported() -> None:
    assert unsupported_required(request()) == ()  # type: ignore[arg-type]


def test_require_100rel_is_unsupported() -> None:
    assert unsupported_required(request("INVITE", "Require: 100rel")) == ("100rel",)  # type: ignore[arg-type]


def test_several_tags_list_exactly_the_unknown_ones_in_order_once() -> None:
    msg = request("INVITE", "Require: timer, 100rel", "Require: foo,100REL, Timer, bar")
    assert unsupported_required(msg) == ("100rel", "foo", "bar")  # type: ignore[arg-type]


def test_a_supported_tag_alone_passes_whatever_its_case() -> None:
    assert unsupported_required(request("UPDATE", "Require: TIMER")) == ()  # type: ignore[arg-type]


def test_proxy_require_is_not_the_uas_business() -> None:
    msg = request("INVITE", "Proxy-Require: foo, 100rel")
    assert unsupported_required(msg) == ()  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["ACK", "CANCEL"])
def test_ack_and_cancel_are_not_checked(method: str) -> None:
    assert unsupported_required(request(method, "Require: 100rel")) == ()  # type: ignore[arg-type]


def test_a_hostile_list_is_echoed_bounded() -> None:
    tags = ", ".join(f"x{i}" for i in range(200))
    found = unsupported_required(request("INVITE", f"Require: {tags}"))  # type: ignore[arg-type]
    assert found == tuple(f"x{i}" for i in range(MAX_LISTED))


@pytest.mark.parametrize("value", ["100rel,,timer", 'foo"bar', "a b", "<x>"])
def test_a_malformed_require_is_a_400(value: str) -> None:
    with pytest.raises(ProtocolError) as err:
        unsupported_required(request("INVITE", f"Require: {value}"))  # type: ignore[arg-type]
    assert err.value.status == 400


def test_option_tags_read_every_field_as_written() -> None:
    msg = request("OPTIONS", "Supported: timer, 100rel", "k: replaces")
    assert option_tags(msg, "Supported") == ("timer", "100rel", "replaces")  # type: ignore[arg-type]
