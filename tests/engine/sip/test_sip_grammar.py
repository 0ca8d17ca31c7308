"""The one scanner (engine/sip/grammar.py): RFC 3261 §25.1 quoted strings and gen-values."""

from __future__ import annotations

import pytest

from huntgroup.engine.sip.grammar import parse_params, scan_quoted, scan_token, unquote
from huntgroup.errors import RemoteProtocolError


@pytest.mark.parametrize(
    ("text", "end"),
    [
        ('"" rest', 2),
        ('"a b\tc"', 7),
        ('"esc \\" quote" x', 14),
        ('"caf\u00e9"', 6),  # UTF8-NONASCII is qdtext
        ('"\\\\"', 4),
    ],
)
def test_scan_quoted_accepts_rfc3261_quoted_strings(text: str, end: int) -> None:
    assert scan_quoted(text, 0) == end


@pytest.mark.parametrize(
    "text",
    ['"unterminated', '"ctl\x01"', '"del\x7f"', '"cr\r"', '"esc\\\n"', '"\\\u00e9"', '"\\'],
)
def test_scan_quoted_refuses_what_rfc3261_does_not_allow(text: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        scan_quoted(text, 0)
    assert info.value.status == 400


def test_scan_token_and_unquote() -> None:
    assert scan_token("abc-1.x=y", 0) == 7
    assert scan_token("=y", 0) == 0
    assert unquote('"a\\"b"') == 'a"b'


@pytest.mark.parametrize(
    ("text", "params"),
    [
        (";lr;ttl=1", (("lr", None), ("ttl", "1"))),
        (";received=2001:db8::2;rport", (("received", "2001:db8::2"), ("rport", None))),
        (";maddr=[2001:db8::1]", (("maddr", "[2001:db8::1]"),)),
        (' ; x = "a;b" ;y', (("x", '"a;b"'), ("y", None))),
        (";host=example.com", (("host", "example.com"),)),
    ],
)
def test_parse_params_gen_values(text: str, params: tuple[tuple[str, str | None], ...]) -> None:
    assert parse_params(text, 0, what="test")[0] == params


@pytest.mark.parametrize(
    "text", [";x=", ";x=[::1", ";x=a<b", ";=v", ";x=sip:a@b", ';x="open', ";x=a b"]
)
def test_parse_params_refuses_what_is_no_gen_value(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_params(text, 0, what="test")
