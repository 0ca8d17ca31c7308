"""The string-method fast paths that stand in for regular expressions (issue 14) give
the regular expression's answer on any text, hostile or not.

A regular-expression call costs a few thousand instructions of set-up; the hot
checks (tokens, words, Max-Forwards digits, the SDP ``m=``, ``o=`` and ``t=``
fields) take the usual text with ``str.isascii``/``isalnum``/``isdigit`` and leave
everything else to the expression. Each property compares the two on random text
drawn from an alphabet of the characters at the classes' edges (and any text)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from huntgroup.engine.sip import grammar, parser
from huntgroup.media import sdp
from huntgroup.media.sdp import SdpSyntaxError

EDGES = "aZ09-.!%*_+`'~()<>:\\\"/[]?{}#$&^|;=@, \t\r\n\x00\x7f\u00e9\u0661\u00b2\udcff"
texts = st.one_of(st.text(alphabet=EDGES, max_size=12), st.text(max_size=12))


@settings(max_examples=2000, deadline=None)
@given(texts)
def test_token_and_word_are_the_expressions(text: str) -> None:
    assert grammar.is_token(text) == (grammar._TOKEN_RE.fullmatch(text) is not None)
    assert grammar.is_word(text) == (grammar._WORD_RE.fullmatch(text) is not None)
    assert sdp._is_token(text) == (sdp._TOKEN.fullmatch(text) is not None)
    assert sdp._is_digits(text) == (sdp._DIGITS.fullmatch(text) is not None)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.text(alphabet="0123456789\u0661 +-", max_size=5), texts))
def test_max_forwards_is_read_as_before(value: str) -> None:
    head = (
        "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
        "From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS"
    )
    index = parser._split_head(head, parser.ParserLimits())[2]
    index["max-forwards"] = (value,)
    try:
        grammar.parse_uint(value, what="Max-Forwards", maximum=255)
    except Exception as exc:
        expected: str | None = str(exc)
    else:
        expected = None
    try:
        parser._validate_headers(index)
    except Exception as exc:
        assert str(exc) == expected
    else:
        assert expected is None


def test_the_usual_protocols_match_the_expression() -> None:
    for proto in sdp._USUAL_PROTOS:
        assert sdp._PROTO.fullmatch(proto)


def _media_before(value: str) -> sdp.MediaDescription:
    """``_parse_media`` as it was, with the regular expressions only."""
    parts = value.split(" ")
    if len(parts) < 4 or not all(parts):
        raise SdpSyntaxError(f"m={value!r}: expected 'media port proto format...'")
    media, port_text, proto, *formats = parts
    m = sdp._PORT.fullmatch(port_text)
    if not sdp._TOKEN.fullmatch(media) or m is None or int(m.group(1)) > 65535:
        raise SdpSyntaxError(f"m={value!r}: bad media type or port")
    if not sdp._PROTO.fullmatch(proto):
        raise SdpSyntaxError(f"m={value!r}: bad transport protocol")
    if not all(sdp._TOKEN.fullmatch(f) for f in formats):
        raise SdpSyntaxError(f"m={value!r}: bad format list")
    count = int(m.group(2)) if m.group(2) is not None else None
    if count == 0:
        raise SdpSyntaxError(f"m={value!r}: port count 0")
    return sdp.MediaDescription(media, int(m.group(1)), proto, tuple(formats), count)


fields = st.one_of(
    st.sampled_from(["audio", "video", "0", "8", "101", "RTP/AVP", "RTP/SAVPF", "6000", "70000"]),
    st.text(alphabet="09aZ/.-+_ \u0661\u00b2#", max_size=8),
)


@settings(max_examples=2000, deadline=None)
@given(st.lists(fields, min_size=0, max_size=7).map(" ".join))
def test_a_media_line_is_read_as_before(value: str) -> None:
    def outcome(parse: object) -> object:
        try:
            return parse(value)  # type: ignore[operator]
        except SdpSyntaxError as exc:
            return ("error", str(exc), exc.status)

    assert outcome(sdp._parse_media) == outcome(_media_before)


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet="0123456789 \u0661\u00b2x", max_size=44))
def test_times_and_origins_are_read_as_before(value: str) -> None:
    parts = value.split(" ")
    before = len(parts) == 2 and all(re.fullmatch(r"[0-9]{1,20}", p) for p in parts)
    try:
        sdp._parse_time(value)
    except SdpSyntaxError:
        assert not before
    else:
        assert before


class _Spy:
    """Stands for a compiled pattern and counts its uses."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.calls = 0

    def fullmatch(self, text: str) -> re.Match[str] | None:
        self.calls += 1
        return self.pattern.fullmatch(text)


def test_the_usual_values_run_no_regular_expression(monkeypatch: object) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    spies = {
        (grammar, "_TOKEN_RE"): _Spy(grammar._TOKEN_RE),
        (grammar, "_WORD_RE"): _Spy(grammar._WORD_RE),
        (sdp, "_TOKEN"): _Spy(sdp._TOKEN),
        (sdp, "_PORT"): _Spy(sdp._PORT),
        (sdp, "_PROTO"): _Spy(sdp._PROTO),
        (sdp, "_DIGITS"): _Spy(sdp._DIGITS),
    }
    for (module, name), spy in spies.items():
        monkeypatch.setattr(module, name, spy)
    assert grammar.is_token("4242SIPpTag001") and grammar.is_token("INVITE")
    assert grammar.is_word("a84b4c76e66710")
    sdp._parse_media("audio 6000 RTP/AVP 0 8 101")
    sdp._parse_origin("bench 53655765 2353687637 IN IP4 127.0.0.1")
    sdp._parse_time("0 0")
    assert [spy.calls for spy in spies.values()] == [0] * len(spies)
    assert not grammar.is_token("a b") and spies[(grammar, "_TOKEN_RE")].calls == 1


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet='sip:ab@1.;=<>" \t\\,', max_size=16))
def test_an_address_uri_is_refused_as_before(text: str) -> None:
    from huntgroup.engine.sip import fields
    from huntgroup.errors import RemoteProtocolError

    def outcome(value: str) -> object:
        try:
            return fields._split_address(value)
        except RemoteProtocolError as exc:
            return str(exc)

    value = text.strip(" \t")
    if not value:
        return
    result = outcome(value)
    if not isinstance(result, str):  # accepted: the URI holds none of the five
        assert fields._NOT_IN_URI.search(result[1]) is None
    elif result == "Invalid address: bad URI":
        lt = value.find("<")
        uri = value[lt + 1 : value.find(">", lt)] if lt >= 0 else value.partition(";")[0]
        assert fields._NOT_IN_URI.search(uri.strip(" \t")) is not None


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=60), st.sampled_from([b"", b";tag=shed-1", b"; TAG = x", b";Tag=SHED-2"]))
def test_the_shed_checks_answer_as_the_expressions(noise: bytes, tail: bytes) -> None:
    from huntgroup.engine.b2bua import shedding

    data = b"ACK sip:a SIP/2.0\r\nTo: <sip:b>" + tail + noise + b"\r\n\r\n"
    expected = shedding._SHED_ACK.search(data, 0, 4096) is not None
    assert (b"shed-" in data[:4096].lower()) or not expected
    to = b"<sip:b>" + tail + noise
    assert (b";" in to) or shedding._TO_TAG.search(to) is None
