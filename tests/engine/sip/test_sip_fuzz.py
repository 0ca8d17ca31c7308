"""Property tests: the parser either parses or raises RemoteProtocolError,
nothing else, whatever the bytes; and what it parses serialises back."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from huntgroup.engine.sip import Request, Response, StreamParser, error_response, parse_datagram
from huntgroup.engine.sip.parser import SipParseError
from huntgroup.errors import RemoteProtocolError

SEEDS = [
    p.read_bytes().replace(b"\n", b"\r\n")
    for p in sorted((Path(__file__).parent / "torture").glob("*/*.sip"))
]
SEEDS.append(
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\nTo: Bob <sip:bob@example.com>\r\n"
    b'From: "Al" <sip:alice@example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710\r\nCSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@[2001:db8::1]:5070;transport=udp>\r\nContent-Length: 0\r\n\r\n"
)
SIP_ALPHABET = b' \t\r\n:;,<>"\\@/=%?[]*.-0123456789SIPvV'


def check(data: bytes) -> None:
    try:
        message = parse_datagram(data)
    except SipParseError as exc:
        assert 400 <= exc.status < 600
        response = error_response(exc)
        if response is not None:
            assert response.to_bytes().startswith(b"SIP/2.0 ")
        return
    assert isinstance(message, Request | Response)
    # What parsed serialises to something that parses to the same message.
    assert parse_datagram(message.to_bytes()) == message


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "dup"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] = draw(st.sampled_from(SIP_ALPHABET + bytes([0, 0x80, 0xFF])))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(max_size=8)) or bytes(
                [draw(st.sampled_from(SIP_ALPHABET))]
            )
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 12))]
        else:
            end = pos + draw(st.integers(1, 40))
            data[pos:pos] = data[pos:end]
    return bytes(data)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_messages_parse_or_raise_remote_protocol_error(data: bytes) -> None:
    check(data)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_parse_or_raise_remote_protocol_error(data: bytes) -> None:
    check(data)


@settings(max_examples=300, deadline=None)
@given(mutated(), st.lists(st.integers(1, 64), min_size=1, max_size=30))
def test_stream_parser_never_raises_anything_else(data: bytes, cuts: list[int]) -> None:
    parser = StreamParser()
    pos = 0
    try:
        for size in [*cuts, len(data)]:
            for message in parser.feed(data[pos : pos + size]):
                assert isinstance(message, Request | Response)
            pos += size
    except RemoteProtocolError as exc:
        assert 400 <= exc.status < 600
