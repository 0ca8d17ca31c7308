"""What reading and writing one SIP message costs, counted rather than timed (issue 14).

The lines of Python run while a usual INVITE is parsed and while a response is
built and written, counted by a tracer (no wall clock). They hold the cuts of
issue 14: the parser checks the required fields and that no single field is given
twice in C (a key set, a count of values) and runs the loops that name the culprit
only for a message that fails; a response copies its request's fields by lookup key;
the writer joins the fields in C, with no Python step per field.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

from huntgroup.engine.sip import parser
from huntgroup.engine.sip.message import Request, make_response
from huntgroup.engine.sip.parser import SipParseError, parse_datagram

INVITE = (
    b"INVITE sip:0140000000@127.0.0.1:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4242-1-0\r\n"
    b'From: "bench" <sip:0600000000@127.0.0.1:5061>;tag=4242SIPpTag001\r\n'
    b"To: <sip:0140000000@127.0.0.1:5060>\r\n"
    b"Call-ID: 1-4242@127.0.0.1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:0600000000@127.0.0.1:5061;transport=udp>\r\n"
    b"Max-Forwards: 70\r\n"
    b"Subject: bench\r\n"
    b"User-Agent: a\r\nAccept: application/sdp\r\nAllow: INVITE, ACK, BYE\r\n"
    b"Supported: timer\r\nX-One: 1\r\nX-Two: 2\r\nX-Three: 3\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def _lines(run: Callable[[], object], where: str) -> int:
    """Lines of Python run by ``run()`` in functions defined in a file under ``where``."""
    count = 0

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        return local if where in frame.f_code.co_filename else None

    sys.settrace(tracer)
    try:
        run()
    finally:
        sys.settrace(None)
    return count


def test_validating_a_usual_request_runs_no_loop_over_the_required_or_single_fields() -> None:
    parse_datagram(INVITE)  # the memos are warm, as in a call
    index = _index(INVITE)
    lines = _lines(lambda: parser._validate_headers(index), "sip/parser.py")
    # 55 lines in Python 3.11; the loops over the 5 required and the 7 single fields
    # ran 11 more
    assert lines <= 58, lines


def _index(data: bytes) -> parser.Index:
    head = data.split(b"\r\n\r\n")[0].decode()
    return parser._split_head(head, parser.ParserLimits())[2]


def test_the_culprit_is_still_named() -> None:
    for data, error in (
        (INVITE.replace(b"CSeq: 1 INVITE\r\n", b""), "Missing CSeq header"),
        (INVITE.replace(b"Subject", b"To: <sip:a@b>\r\nSubject"), "Several To headers"),
        (INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: 256"), "too large"),
        (INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: \xd9\xa1"), "Max-Forwards"),
    ):
        try:
            parse_datagram(data)
        except SipParseError as exc:
            assert error in str(exc), (error, exc)
        else:
            raise AssertionError(f"{error}: parsed")
    assert parse_datagram(INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: 007")) is not None


def test_writing_a_response_runs_no_python_step_per_field() -> None:
    request = parse_datagram(INVITE)
    assert isinstance(request, Request)
    response = make_response(request, 200, to_tag="abc")
    few = _lines(response.to_bytes, "sip/message.py")
    many = make_response(request, 200, to_tag="abc", headers=[("X-A", str(i)) for i in range(20)])
    assert _lines(many.to_bytes, "sip/message.py") == few  # 20 more fields, no more lines
    assert response.to_bytes().count(b"Content-Length") == 1


def test_an_address_read_for_the_first_time_runs_no_python_step_per_character() -> None:
    from huntgroup.engine.sip.fields import parse_name_address
    from huntgroup.memo import memo_of

    parse = memo_of(parse_name_address).compute  # the parser behind the memo: a miss
    short = '"ab" <sip:0600000000@127.0.0.1:5061>;tag=1'
    long = '"' + "a" * 40 + '" <sip:0600000000@127.0.0.1:5061>;tag=1'
    parse(short)  # the URI's own memo is warm, as in a call
    assert _lines(lambda: parse(long), "sip/") == _lines(lambda: parse(short), "sip/")
    assert parse('"a\\"b" <sip:x@y>').display_name == 'a"b'  # an escape: the loop


@pytest.mark.native_incompatible("counts Python frames and lines: a compiled module runs none")
def test_the_start_line_of_a_usual_request_is_checked_once_without_the_version_pattern(
    monkeypatch: Any,
) -> None:
    calls: list[str] = []
    real_is_token = parser.is_token
    real_version = parser._VERSION

    class Version:
        def fullmatch(self, text: str) -> object:
            calls.append(f"version {text}")
            return real_version.fullmatch(text)

    def is_token(text: str) -> bool:
        calls.append(f"token {text}")
        return real_is_token(text)

    monkeypatch.setattr(parser, "is_token", is_token)
    monkeypatch.setattr(parser, "_VERSION", Version())
    parse_datagram(INVITE)
    assert calls == ["token INVITE"]  # the method once; "SIP/2.0" needs no pattern
    calls.clear()
    parse_datagram(INVITE.replace(b"SIP/2.0\r\n", b"sip/2.0\r\n", 1))  # any case: allowed
    assert calls == ["token INVITE", "version sip/2.0"]


@pytest.mark.native_incompatible("counts Python frames: a compiled module runs none")
def test_a_typed_view_is_two_python_frames() -> None:
    request = parse_datagram(INVITE)
    assert isinstance(request, Request)
    request.cseq, request.top_via  # noqa: B018  (the memos are warm, as in a call)
    frames = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal frames
        frames += event == "call"

    for read in (lambda: request.top_via, lambda: request.cseq, lambda: request.call_id):
        frames = 0
        sys.settrace(tracer)
        try:
            read()
        finally:
            sys.settrace(None)
        assert frames == 3, frames  # the lambda, the property, the index read (no helper)


@pytest.mark.native_incompatible("counts Python frames: a compiled module runs none")
def test_building_header_fields_is_one_python_frame_whatever_their_number() -> None:
    from huntgroup.engine.sip.headers import Headers
    from huntgroup.errors import LocalProtocolError

    fields = [("X-A", str(i)) for i in range(20)]
    Headers(fields)  # the names' memo is warm
    frames = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal frames
        frames += event == "call"

    sys.settrace(tracer)
    try:
        Headers(fields)
    finally:
        sys.settrace(None)
    assert frames == 1, frames  # __init__ only (was a check_field frame per field)
    for bad_field in (("X:A", "1"), ("X-A", "a\r\nb")):
        try:
            Headers([bad_field])
        except LocalProtocolError:
            pass
        else:
            raise AssertionError(bad_field)
