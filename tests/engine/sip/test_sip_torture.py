"""RFC 4475 §3.1.1 (valid) and §3.1.2 (invalid) torture messages through the parser.

The messages live in ``torture/valid`` and ``torture/invalid``, transcribed in
the RFC's own notation: ``<allOneLine>`` blocks are joined without line breaks,
``<repeat count=N>x</repeat>`` repeats ``x``, ``<hex>..</hex>`` gives raw
octets, and every line break is CRLF.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from huntgroup.engine.sip import (
    Request,
    Response,
    SipParseError,
    SipUri,
    StreamParser,
    error_response,
    parse_datagram,
    unescape,
)

TORTURE = Path(__file__).parent / "torture"


def load(name: str) -> bytes:
    """The octets of torture message ``name`` (e.g. ``valid/wsinv``)."""
    text = (TORTURE / f"{name}.sip").read_text(encoding="utf-8")
    text = re.sub(
        r"<allOneLine>\n(.*?)\n</allOneLine>",
        lambda m: m.group(1).replace("\n", ""),
        text,
        flags=re.S,
    )
    text = re.sub(
        r"<repeat count=(\d+)>(.*?)</repeat>",
        lambda m: m.group(2) * int(m.group(1)),
        text,
        flags=re.S,
    )
    text = text.replace("\n", "\r\n")
    out = bytearray()
    for i, part in enumerate(re.split(r"<hex>(.*?)</hex>", text, flags=re.S)):
        out += bytes.fromhex(part) if i % 2 else part.encode("utf-8")
    return bytes(out)


def request(name: str) -> Request:
    message = parse_datagram(load(f"valid/{name}"))
    assert isinstance(message, Request)
    return message


def sip_uri(uri: object) -> SipUri:
    assert isinstance(uri, SipUri)
    return uri


VALID = sorted(p.stem for p in (TORTURE / "valid").glob("*.sip"))
INVALID = sorted(p.stem for p in (TORTURE / "invalid").glob("*.sip"))


def test_all_messages_are_present() -> None:
    assert len(VALID) == 13  # §3.1.1.1 - §3.1.1.13
    assert len(INVALID) == 19  # §3.1.2.1 - §3.1.2.19


@pytest.mark.parametrize("name", VALID)
def test_valid_messages_parse_and_round_trip(name: str) -> None:
    message = parse_datagram(load(f"valid/{name}"))
    again = parse_datagram(message.to_bytes())
    assert again == message


@pytest.mark.parametrize("name", [n for n in VALID if n != "dblreq"])
def test_valid_messages_frame_on_a_stream(name: str) -> None:
    data = load(f"valid/{name}")
    if b"Content-Length" not in data and b"\r\nl:" not in data and b"\r\nL:" not in data:
        pytest.fail(f"{name} has no Content-Length")
    parser = StreamParser()
    messages = [m for i in range(0, len(data), 7) for m in parser.feed(data[i : i + 7])]
    assert messages == [parse_datagram(data)]


def test_wsinv_short_tortuous_invite() -> None:
    m = request("wsinv")
    assert m.method == "INVITE"
    uri = sip_uri(m.uri)
    assert (uri.user, uri.host, uri.params) == (
        "vivekg",
        "chair-dnrc.example.com",
        (("unknownparam", None),),
    )
    assert m.to.tag == "1918181833n"
    assert m.from_.display_name == 'J Rosenberg \\"'
    assert m.from_.tag == "98asjd8"
    assert m.max_forwards == 68
    assert m.cseq.number == 9 and m.cseq.method == "INVITE"
    assert [(v.transport, v.host, v.branch) for v in m.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert m.headers.get("Subject") == ""
    assert m.headers.get("newfangledheader") == "newfangled value continued newfangled value"
    assert m.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    (contact,) = m.contacts
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    (route,) = m.routes
    assert sip_uri(route.uri).has_param("lr")
    assert len(m.body) == 150


def test_intmeth_wide_range_of_valid_characters() -> None:
    m = request("intmeth")
    # An unknown method: an endpoint answers 501 at a higher layer.
    assert m.method == "!interesting-Method0123456789_*+`.%indeed'~"
    uri = sip_uri(m.uri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert m.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert m.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert m.from_.tag == "_token~1'+`*%!-."
    assert m.from_.param("fromParam''~+*_!.-%") == '"работающий"'
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert m.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert m.max_forwards == 255
    assert m.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_esc01_escapes_are_kept_and_can_be_resolved() -> None:
    m = request("esc01")
    assert unescape(sip_uri(m.uri).user or "") == "sips:user@example.com"
    assert unescape(sip_uri(m.to.uri).user or "") == "user"
    assert unescape(sip_uri(m.from_.uri).user or "") == "I have spaces"
    contact = sip_uri(m.contacts[0].uri)
    assert contact.params == (("%6C%72", None), ("n%61me", "v%61lue%25%34%31"))
    assert unescape("v%61lue%25%34%31") == "value%41"  # never unescaped twice
    assert m.headers.get("Call-ID") == "esc01.239409asdfakjkn23onasd0-3234"  # from "i:"
    assert m.content_type == "application/sdp"  # from "C:"


def test_escnull_keeps_nulls_in_user_parts() -> None:
    m = request("escnull")
    assert [sip_uri(c.uri).user for c in m.contacts] == ["%00", "%00%00"]
    assert unescape("null-%00-null") == "null-\x00-null"


def test_esc02_percent_is_not_an_escape_outside_uris() -> None:
    m = request("esc02")
    # Unknown method "RE%47IST%45R" is not REGISTER: an endpoint answers 501.
    assert m.method == "RE%47IST%45R"
    assert m.to.display_name == "%Z%45"
    assert [sip_uri(c.uri).user for c in m.contacts] == ["alias1", "alias3"]
    assert m.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_lwsdisp_display_name_without_space() -> None:
    assert request("lwsdisp").from_.display_name == "caller"


def test_longreq_long_values() -> None:
    m = request("longreq")
    assert len(m.vias) == 34
    assert m.vias[0].host == "sip33.example.com" and m.vias[32].host == "sip1.example.com"
    assert m.vias[33].received == "192.0.2.5"
    assert sip_uri(m.to.uri).port == 6000
    assert m.from_.tag == "12" + "982" * 50 + "424"


def test_dblreq_ignores_octets_after_content_length() -> None:
    m = request("dblreq")
    assert m.method == "REGISTER" and m.body == b""


def test_semiuri_user_with_semicolon() -> None:
    m = request("semiuri")
    assert sip_uri(m.uri).user == "user;par=u%40example.net"
    assert sip_uri(m.uri).params == ()
    assert len(m.headers.get_all("Accept")) == 6


def test_transports_unknown_transport_is_kept() -> None:
    m = request("transports")
    assert [v.transport for v in m.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def test_mpart01_binary_body() -> None:
    m = request("mpart01")
    assert len(m.body) == 553
    assert m.top_via.has_rport and m.top_via.rport is None
    assert m.body.startswith(b"--7a9cbec02ceef655\r\n")


def test_unreason_and_noreason_responses() -> None:
    unreason = parse_datagram(load("valid/unreason"))
    assert isinstance(unreason, Response)
    assert unreason.status == 200
    assert unreason.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    noreason = parse_datagram(load("valid/noreason"))
    assert isinstance(noreason, Response)
    assert (noreason.status, noreason.reason) == (100, "")


# Expected status and a word of the reason for each §3.1.2 message.
INVALID_EXPECTED = {
    "badinv01": (400, "Via"),  # empty Via and Contact parameters
    "clerr": (400, "Content-Length"),  # Content-Length larger than the datagram
    "ncl": (400, "Content-Length"),  # negative Content-Length
    "scalar02": (400, "CSeq"),  # CSeq, Max-Forwards, Expires past their bounds
    "scalarlg": (400, "CSeq"),  # a response: nothing to answer, but still refused
    "quotbal": (400, "To"),  # unterminated quoted string
    "ltgtruri": (400, "Request-URI"),  # <> around the Request-URI
    "lwsruri": (400, "Request-Line"),  # space inside the Request-URI
    "lwsstart": (400, "Request-Line"),  # several SP between elements
    "trws": (400, "Request-Line"),  # SP at the end of the Request-Line
    "escruri": (400, "Request-URI"),  # headers in the Request-URI
    "baddate": (400, "Date"),  # time zone other than GMT
    "regbadct": (400, "<>"),  # URI with '?' outside <>
    "badaspec": (400, "To"),  # spaces inside <>
    "baddn": (400, "From"),  # non-token characters in an unquoted display name
    "badvers": (505, "SIP/7.0"),
    "mismatch01": (400, "CSeq"),
    "mismatch02": (400, "CSeq"),
    "bigcode": (400, "status code"),
}


def test_every_invalid_message_has_an_expectation() -> None:
    assert sorted(INVALID_EXPECTED) == INVALID


@pytest.mark.parametrize("name", INVALID)
def test_invalid_messages_are_refused_with_a_status(name: str) -> None:
    status, word = INVALID_EXPECTED[name]
    with pytest.raises(SipParseError) as info:
        parse_datagram(load(f"invalid/{name}"))
    assert info.value.status == status
    assert word in str(info.value)


@pytest.mark.parametrize("name", [n for n in INVALID if n not in ("scalarlg", "bigcode")])
def test_invalid_requests_get_an_error_response(name: str) -> None:
    data = load(f"invalid/{name}")
    with pytest.raises(SipParseError) as info:
        parse_datagram(data)
    response = error_response(info.value)
    assert response is not None
    assert response.status == info.value.status
    # The identifying fields are copied exactly as received.
    for header in ("From", "To", "Call-ID", "CSeq"):
        value = response.headers.get(header)
        assert value is not None and value.encode() in data
    assert response.to_bytes().startswith(f"SIP/2.0 {info.value.status} ".encode())


@pytest.mark.parametrize("name", ["scalarlg", "bigcode"])
def test_invalid_responses_get_no_response(name: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_datagram(load(f"invalid/{name}"))
    assert error_response(info.value) is None
