"""Message model, URIs, fields, parsing and framing."""

from __future__ import annotations

import random

import pytest

from huntgroup.engine.sip import (
    AbsoluteUri,
    Headers,
    ParserLimits,
    Peer,
    Request,
    Response,
    SipParseError,
    SipUri,
    StreamParser,
    TelUri,
    check_max_forwards,
    detect_loop,
    error_response,
    loop_key,
    make_cancel,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
    next_hop_max_forwards,
    parse_datagram,
    parse_name_address,
    parse_uri,
    parse_via,
    response_destination,
    stamp_via,
    with_top_via,
)
from huntgroup.errors import LocalProtocolError, RemoteProtocolError

INVITE = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "Bob" <sip:bob@example.com>\r\n'
    b"From: Alice <sip:alice@example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.example.com>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def parse_request(data: bytes) -> Request:
    message = parse_datagram(data)
    assert isinstance(message, Request)
    return message


# ---- URIs ------------------------------------------------------------------


def test_sip_uri_parts() -> None:
    uri = parse_uri("sips:alice:secret@Example.COM:5061;transport=tcp;lr?subject=hi&x=%20")
    assert isinstance(uri, SipUri)
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        "sips",
        "alice",
        "secret",
        "example.com",
        5061,
    )
    assert uri.params == (("transport", "tcp"), ("lr", None))
    assert uri.param("transport") == "tcp" and uri.param("lr") == "" and uri.param("x") is None
    assert uri.headers == (("subject", "hi"), ("x", "%20"))
    assert uri.secure
    assert parse_uri(str(uri)) == uri


def test_ipv6_and_tel_and_other_schemes() -> None:
    v6 = parse_uri("sip:[2001:DB8::1]:5070;maddr=[2001:db8::2]")
    assert isinstance(v6, SipUri) and v6.host == "[2001:db8::1]" and v6.port == 5070
    assert str(v6) == "sip:[2001:db8::1]:5070;maddr=[2001:db8::2]"
    tel = parse_uri("tel:+33-1-40-00-00-00;phone-context=example.com")
    assert isinstance(tel, TelUri) and tel.is_global and tel.params[0][0] == "phone-context"
    assert str(tel) == "tel:+33-1-40-00-00-00;phone-context=example.com"
    other = parse_uri("urn:service:sos")
    assert isinstance(other, AbsoluteUri) and str(other) == "urn:service:sos"


@pytest.mark.parametrize(
    "text",
    [
        "bob@example.com",
        "sip:",
        "sip:bob@",
        "sip:@example.com",
        "sip:a@b@c",
        "sip:bob@exa mple.com",
        "sip:bob@example.com:99999",
        "sip:bob@example.com:port",
        "sip:[::1",
        "sip:[zz::1]",
        "sip:bob@-bad-.com",
        "sip:bob@example.com;=x",
        "sip:bob%zz@example.com",
        "sip:bob@example.com?novalue",
        "tel:",
        "tel:+",
        "1sip:x",
    ],
)
def test_bad_uris(text: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_uri(text)
    assert info.value.status == 400


# ---- fields -------------------------------------------------------------------


def test_via_fields() -> None:
    via = parse_via(
        "SIP / 2.0 / udp 192.0.2.1:5062 ; branch=z9hG4bKx ;rport;"
        "received=192.0.2.9;ttl=16;maddr=224.0.0.1"
    )
    assert (via.transport, via.host, via.port, via.sent_by) == (
        "UDP",
        "192.0.2.1",
        5062,
        "192.0.2.1:5062",
    )
    assert via.branch == "z9hG4bKx" and via.has_rport and via.rport is None
    assert via.received == "192.0.2.9" and via.ttl == 16 and via.maddr == "224.0.0.1"
    assert parse_via(str(via)) == via
    assert parse_via("SIP/2.0/UDP [2001:db8::9]:5060;rport=4000").rport == 4000
    for bad in (
        "SIP/2.0/UDP",
        "SIP/2.0 host",
        "SIP/3.0/UDP host",
        "SIP/2.0/UDP host;branch",
        "SIP/2.0/UDP host;received=not-an-ip",
        "SIP/2.0/UDP host;ttl=300",
        "SIP/2.0/UDP host;rport=x",
        "SIP/2.0/UDP host;;",
    ):
        with pytest.raises(RemoteProtocolError):
            parse_via(bad)


def test_name_addresses() -> None:
    a = parse_name_address(
        '"A \\"quoted\\" name" <sip:a@example.com;transport=tcp>;tag=x;expires=60'
    )
    assert a.display_name == 'A "quoted" name'
    assert a.tag == "x" and a.param("expires") == "60"
    assert isinstance(a.uri, SipUri) and a.uri.param("transport") == "tcp"
    assert parse_name_address(str(a)) == a
    b = parse_name_address("sip:b@example.com;tag=y")
    assert b.display_name is None and b.tag == "y" and isinstance(b.uri, SipUri)
    assert b.uri.params == ()  # without <>, ;params belong to the header
    c = parse_name_address("Bob Smith <tel:+1234>")
    assert c.display_name == "Bob Smith" and isinstance(c.uri, TelUri)
    assert parse_name_address(str(b.with_tag("z"))).tag == "z"
    for bad in (
        '"open <sip:a@b>',
        "Bob, Smith <sip:a@b>",
        "< sip:a@b>",
        "sip:a@b?x=y",
        "<sip:a@b",
        "",
        "<sip:a@b>;tag",
    ):
        with pytest.raises(RemoteProtocolError):
            parse_name_address(bad)


# ---- headers ---------------------------------------------------------------------


def test_headers_are_ordered_case_insensitive_and_expand_compact_forms() -> None:
    h = Headers([("v", "SIP/2.0/UDP a"), ("X-Custom", "1"), ("VIA", "SIP/2.0/UDP b"), ("i", "c")])
    assert list(h) == [
        ("Via", "SIP/2.0/UDP a"),
        ("X-Custom", "1"),
        ("Via", "SIP/2.0/UDP b"),
        ("Call-ID", "c"),
    ]
    assert h.get("via") == "SIP/2.0/UDP a" and h.get_all("V") == ["SIP/2.0/UDP a", "SIP/2.0/UDP b"]
    assert "x-custom" in h and "Missing" not in h and h.get("Missing") is None
    assert next(iter(h.with_prepended("Via", "SIP/2.0/UDP z"))) == ("Via", "SIP/2.0/UDP z")
    assert h.without_first("Via").get_all("Via") == ["SIP/2.0/UDP b"]
    assert h.with_first_replaced("Via", "SIP/2.0/UDP q").get_all("Via") == [
        "SIP/2.0/UDP q",
        "SIP/2.0/UDP b",
    ]
    assert next(iter(h.with_replaced("via", "SIP/2.0/UDP n"))) == ("Via", "SIP/2.0/UDP n")
    assert "Via" not in h.without("v") and len(h) == 4  # original unchanged
    with pytest.raises(LocalProtocolError):
        h.with_added("Bad Name", "x")
    with pytest.raises(LocalProtocolError):
        h.with_added("X", "a\r\nInjected: 1")


# ---- parsing ------------------------------------------------------------------------


def test_parse_and_serialise_round_trip() -> None:
    m = parse_request(INVITE)
    assert m.method == "INVITE" and m.body == b"v=0\n"
    assert m.to.display_name == "Bob" and m.from_.display_name == "Alice"
    assert m.cseq.number == 314159 and m.max_forwards == 70
    wire = m.to_bytes()
    assert wire == INVITE
    assert parse_datagram(wire) == m


def test_folding_and_comma_lists() -> None:
    data = INVITE.replace(
        b"Contact: <sip:alice@pc33.example.com>\r\n",
        b'Contact: <sip:a@x.example.com>,\r\n "Two, Too" <sip:b@y.example.com>;q=0.5\r\n'
        b"Route: <sip:p1.example.com;lr>,<sip:p2.example.com;lr>\r\n"
        b"Subject: hello,\r\n\tworld\r\n",
    )
    m = parse_request(data)
    assert [c.display_name for c in m.contacts] == [None, "Two, Too"]
    assert len(m.routes) == 2
    assert m.headers.get("Subject") == "hello, world"  # not a list header: one value


def test_leading_crlf_and_missing_content_length_on_udp() -> None:
    data = b"\r\n\r\n" + INVITE.replace(b"Content-Length: 4\r\n", b"")
    assert parse_request(data).body == b"v=0\n"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"", 400),
        (b"INVITE sip:a@b SIP/2.0\r\n", 400),
        (INVITE.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), 505),
        (INVITE.replace(b"SIP/2.0\r\n", b"HTTP/1.1\r\n", 1), 400),
        (INVITE.replace(b"sip:bob@example.com SIP", b"http://example.com/ SIP"), 416),
        (INVITE.replace(b"Call-ID: a84b4c76e66710@pc33.example.com\r\n", b""), 400),
        (INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: 256"), 400),
        (INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: 314159"), 400),
        (INVITE.replace(b"Content-Length: 4", b"Content-Length: 4\r\nl: 4"), 400),
        (INVITE.replace(b"Max-Forwards: 70\r\n", b" folded: first\r\n"), 400),
        (INVITE.replace(b"Max-Forwards: 70", b"Max Forwards: 70"), 400),
        (INVITE.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\nX: y\r\n"), 400),
        (INVITE.replace(b"Call-ID: a84b", b"Call-ID: a 84b"), 400),
        (INVITE.replace(b"<sip:alice@pc33.example.com>", b"*, <sip:a@b>"), 400),
        (b"SIP/2.0 99 Odd\r\nVia: SIP/2.0/UDP a\r\n\r\n", 400),
    ],
)
def test_malformed_datagrams(data: bytes, status: int) -> None:
    with pytest.raises(SipParseError) as info:
        parse_datagram(data)
    assert info.value.status == status


def test_limits() -> None:
    with pytest.raises(SipParseError) as info:
        parse_datagram(INVITE + b"x" * 70000)
    assert info.value.status == 413
    assert info.value.partial is not None and info.value.partial.method == "INVITE"
    response = error_response(info.value)
    assert response is not None and response.status == 413
    many = INVITE.replace(b"\r\n\r\n", b"\r\n" + b"X-A: 1\r\n" * 300 + b"\r\n")
    with pytest.raises(SipParseError) as info:
        parse_datagram(many)
    assert info.value.status == 400
    long_line = INVITE.replace(b"\r\n\r\n", b"\r\nX-A: " + b"a" * 9000 + b"\r\n\r\n")
    with pytest.raises(SipParseError):
        parse_datagram(long_line)
    assert isinstance(
        parse_datagram(long_line, limits=ParserLimits(max_line_length=10000)), Request
    )


# ---- stream framing --------------------------------------------------------------


def test_stream_parser_frames_byte_by_byte_and_skips_keepalives() -> None:
    parser = StreamParser()
    stream = b"\r\n\r\n" + INVITE + b"\r\n" + INVITE
    out = [m for b in stream for m in parser.feed(bytes([b]))]
    assert len(out) == 2 and out[0] == out[1] == parse_datagram(INVITE)
    assert parser.buffered == 0
    assert parser.feed(INVITE[:20]) == [] and parser.buffered == 20
    assert len(parser.feed(INVITE[20:] + INVITE)) == 2


def test_stream_parser_requires_content_length_and_stays_broken() -> None:
    parser = StreamParser()
    with pytest.raises(SipParseError) as info:
        parser.feed(INVITE.replace(b"Content-Length: 4\r\n", b""))
    assert info.value.status == 400 and "Content-Length" in str(info.value)
    with pytest.raises(SipParseError):
        parser.feed(INVITE)


def test_stream_parser_size_limits() -> None:
    parser = StreamParser(limits=ParserLimits(max_message_size=1024))
    with pytest.raises(SipParseError) as info:
        parser.feed(INVITE.replace(b"Content-Length: 4", b"Content-Length: 5000"))
    assert info.value.status == 413 and error_response(info.value) is not None
    endless = StreamParser(limits=ParserLimits(max_message_size=1024))
    endless.feed(b"INVITE sip:a@b SIP/2.0\r\n")
    with pytest.raises(SipParseError) as info:
        for _ in range(200):
            endless.feed(b"X-Junk: 0123456789\r\n")
    assert info.value.status == 413


# ---- builders -----------------------------------------------------------------------


def test_make_response_copies_the_right_headers() -> None:
    request = parse_request(
        INVITE.replace(
            b"Max-Forwards: 70\r\n",
            b"Via: SIP/2.0/UDP second.example.com;branch=z9hG4bK2\r\n"
            b"Record-Route: <sip:p.example.com;lr>\r\n",
        )
    )
    ringing = make_response(request, 180, to_tag="abc")
    assert ringing.reason == "Ringing"
    assert ringing.headers.get_all("Via") == request.headers.get_all("Via")
    assert ringing.to.tag == "abc" and ringing.from_ == request.from_
    assert ringing.call_id == request.call_id and ringing.cseq == request.cseq
    assert ringing.record_routes == request.record_routes
    trying = make_response(request, 100, to_tag="abc")
    assert trying.to.tag is None and "Record-Route" not in trying.headers
    busy = make_response(request, 486, "Busy", to_tag="abc", headers=[("Retry-After", "30")])
    assert busy.reason == "Busy" and busy.headers.get("Retry-After") == "30"
    assert (
        make_response(
            request.__class__(
                request.method,
                request.uri,
                request.headers.with_replaced("To", "<sip:b@c>;tag=old"),
            ),
            200,
            to_tag="new",
        ).to.tag
        == "old"
    )
    assert isinstance(parse_datagram(busy.to_bytes()), Response)
    with pytest.raises(LocalProtocolError):
        make_response(request, 700)


def test_make_cancel_and_ids() -> None:
    request = parse_request(INVITE)
    cancel = make_cancel(request)
    assert cancel.method == "CANCEL" and cancel.uri == request.uri
    assert cancel.top_via == request.top_via and cancel.cseq.method == "CANCEL"
    assert cancel.cseq.number == request.cseq.number
    rng = random.Random(1)
    branch = new_branch(rng)
    assert branch.startswith("z9hG4bK") and len(branch) == 23
    assert new_branch(random.Random(1)) == branch  # injected randomness: reproducible
    assert new_tag(rng) != new_tag(rng)
    assert new_call_id(rng, "example.com").endswith("@example.com")
    pushed = with_top_via(request, parse_via(f"SIP/2.0/UDP me.example.com;branch={branch}"))
    assert pushed.top_via.host == "me.example.com" and len(pushed.vias) == 2


# ---- routing ------------------------------------------------------------------------


def test_stamp_and_response_destination() -> None:
    request = parse_request(INVITE)
    source = Peer("192.0.2.50", 5066)
    stamped = stamp_via(request, source)
    via = stamped.top_via
    assert via.received == "192.0.2.50" and not via.has_rport
    assert response_destination(via, source) == source  # symmetric, rport or not
    rport = parse_request(INVITE.replace(b";branch", b";rport;branch"))
    via = stamp_via(rport, source).top_via
    assert (via.received, via.rport) == ("192.0.2.50", 5066)
    assert response_destination(via, source) == Peer("192.0.2.50", 5066, "UDP")
    same = stamp_via(request, Peer("pc33.example.com", 5060))
    assert same == request  # sent-by is the source: nothing to add
    maddr = parse_via("SIP/2.0/UDP a.example.com:5070;maddr=224.0.1.75;branch=z9hG4bKm")
    assert response_destination(maddr, source) == source  # maddr is never followed
    tcp = Peer("192.0.2.50", 40000, "TCP")
    assert response_destination(parse_via("SIP/2.0/TCP a.example.com"), tcp) == tcp
    v6 = parse_via("SIP/2.0/UDP host;received=2001:db8::5")
    assert response_destination(v6, source) == source


def test_max_forwards_and_loops() -> None:
    request = parse_request(INVITE)
    assert check_max_forwards(request) is None and next_hop_max_forwards(request) == 69
    zero = parse_request(INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: 0"))
    assert check_max_forwards(zero) == 483 and next_hop_max_forwards(zero) == 0
    options = parse_request(
        INVITE.replace(b"INVITE sip", b"OPTIONS sip")
        .replace(b"314159 INVITE", b"314159 OPTIONS")
        .replace(b"Max-Forwards: 70", b"Max-Forwards: 0")
    )
    assert check_max_forwards(options) is None
    none = parse_request(INVITE.replace(b"Max-Forwards: 70\r\n", b""))
    assert check_max_forwards(none) is None and next_hop_max_forwards(none) == 70
    # We forward: our Via carries the loop key. Coming back unchanged is a loop...
    ours = {"proxy.example.com"}
    branch = new_branch(random.Random(3), suffix=loop_key(request))
    forwarded = with_top_via(request, parse_via(f"SIP/2.0/UDP proxy.example.com;branch={branch}"))
    assert not detect_loop(request, ours)
    back = with_top_via(forwarded, parse_via("SIP/2.0/UDP other.example.com;branch=z9hG4bKo"))
    assert detect_loop(back, ours)
    # ...but a spiral (new Request-URI) is not.
    spiral = Request(back.method, parse_uri("sip:carol@example.com"), back.headers)
    assert not detect_loop(spiral, ours)


def test_stream_keepalive_pings_are_counted_and_are_not_a_message() -> None:
    """RFC 5626 §3.5.1: a double CRLF between messages is a ping (the driver pongs)."""
    parser = StreamParser()
    assert parser.feed(b"\r\n\r\n") == [] and parser.take_pings() == 1
    assert not parser.in_message and parser.take_pings() == 0
    for piece in (b"\r", b"\n\r", b"\n"):  # split anywhere
        assert parser.feed(piece) == []
        assert not parser.in_message
    assert parser.take_pings() == 1
    parser.feed(b"\r\n\r\n\r\n\r\n\r\n")  # two pings and half of a third
    assert parser.take_pings() == 2
    parser.feed(b"\r\nOPTIONS sip:a@b SIP/2.0\r\n")  # the half CRLF then a message begins
    assert parser.take_pings() == 1 and parser.in_message
    parser.feed(b"Via: SIP/2.0/TCP h;branch=z9hG4bKk\r\nFrom: <sip:a@b>;tag=1\r\n")
    messages = parser.feed(
        b"To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n\r\n"
    )
    assert len(messages) == 1 and not parser.in_message and parser.take_pings() == 0
    parser.feed(b"\r\nINV")  # one CRLF after the message, then a new one
    assert parser.in_message and parser.take_pings() == 1
