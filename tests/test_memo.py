"""The bounded memo (:mod:`huntgroup.memo`) and every memo of a parser fed by the
network: overlong keys are computed but never stored, the number of entries is
bounded, and the results are those of the function itself."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from huntgroup.engine.aio import resolver
from huntgroup.engine.sip import address, fields, headers, parser, uri
from huntgroup.errors import HuntgroupError
from huntgroup.media import nat, sdp
from huntgroup.memo import MAX_ADDRESS_KEY, MAX_KEY, BoundedMemo, bounded_memo, memo_of


def test_a_long_key_is_computed_every_time_and_never_stored() -> None:
    calls: list[str] = []

    @bounded_memo(maxsize=8, max_key=5)
    def upper(text: str) -> str:
        calls.append(text)
        return text.upper()

    assert upper("abcde") == "ABCDE"
    assert upper("abcde") == "ABCDE"
    assert calls == ["abcde"]  # 5 characters: remembered
    assert upper("abcdef") == "ABCDEF"
    assert upper("abcdef") == "ABCDEF"
    assert calls == ["abcde", "abcdef", "abcdef"]  # 6: computed each time
    assert dict(memo_of(upper)) == {"abcde": "ABCDE"}


def test_the_number_of_entries_never_passes_maxsize() -> None:
    memo = BoundedMemo(str.upper, maxsize=4, max_key=10)
    for i in range(100):
        assert memo[f"k{i}"] == f"K{i}"
        assert len(memo) <= 4
    assert memo["k99"] == "K99"
    assert "k99" in memo  # the newest key survives the emptying


def test_a_refused_key_is_refused_again_never_stored() -> None:
    def strict(text: str) -> int:
        if not text.isdigit():
            raise ValueError(text)
        return int(text)

    memo = BoundedMemo(strict)
    for _ in range(2):
        with pytest.raises(ValueError):
            memo["x1"]
    assert memo["12"] == 12
    assert dict(memo) == {"12": 12}


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        BoundedMemo(str.upper, maxsize=0)
    with pytest.raises(TypeError):
        memo_of(str.upper)


# Every memo whose key may come from the network: (function, a good short key).
NETWORK_MEMOS: list[tuple[Callable[[str], object], str]] = [
    (uri.parse_uri, "sip:alice@192.0.2.1:5060"),
    (uri.parse_hostport, "192.0.2.1:5060"),
    (address.ip_of, "192.0.2.1"),
    (address.bracket, "2001:db8::1"),
    (resolver.is_address, "192.0.2.1"),
    (fields._is_ip, "192.0.2.1"),
    (fields.parse_via, "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-memo"),
    (fields.parse_name_address, '"A" <sip:a@192.0.2.1>;tag=memo'),
    (fields.parse_cseq, "1 INVITE"),
    (fields.parse_call_id, "memo@192.0.2.1"),
    (headers.canonical_name, "v"),
    (headers._key, "Call-ID"),
    (headers._checked_name, "X-Memo"),
    (parser._field_name, "Max-Forwards "),
    (sdp._unspecified, "0.0.0.0"),
    (sdp._addr_type_of, "192.0.2.1"),
    (sdp._parse_rtpmap, "0 PCMU/8000"),
    (sdp._parse_connection, "IN IP4 192.0.2.1"),
    (sdp._parse_attribute, "rtpmap:8 PCMA/8000"),
    (nat._ip, "192.0.2.1"),
]


@pytest.mark.parametrize(
    ("function", "key"), NETWORK_MEMOS, ids=[memo_of(f).compute.__name__ for f, _ in NETWORK_MEMOS]
)
def test_every_network_memo_is_bounded_and_answers_as_its_function(
    function: Callable[[str], object], key: str
) -> None:
    memo = memo_of(function)
    assert memo.maxsize <= 4096
    assert memo.max_key in (MAX_KEY, MAX_ADDRESS_KEY)
    assert function(key) == memo.compute(key)
    assert key in memo
    long_key = LONG_VALID.get(memo.compute.__name__)
    if long_key is not None:  # a key the parser takes: computed, answered, not stored
        assert len(long_key) > memo.max_key
        assert function(long_key) == memo.compute(long_key)
        assert long_key not in memo
        return
    long_key = key + " " * (memo.max_key + 1 - len(key))
    try:
        expected: object = memo.compute(long_key)
    except (HuntgroupError, ValueError) as error:
        with pytest.raises(type(error)):
            function(long_key)
    else:
        assert function(long_key) == expected
    assert long_key not in memo


# Memos whose parser refuses the padded key: a long key it takes instead, so the bound
# itself (not the refusal) keeps it out. (sdp._parse_connection takes no key that long:
# its address is an IP address.)
LONG_VALID = {
    "parse_uri": "sip:" + "a" * 300 + "@192.0.2.1",
    "parse_hostport": "a." * 130 + "example:5060",
    "_checked_name": "X-" + "a" * 300,
}


def test_the_connection_memo_takes_no_key_over_its_bound() -> None:
    memo = memo_of(sdp._parse_connection)
    longest = "IN IP6 " + "ffff:" * 7 + "ffff"
    assert len(longest) <= memo.max_key
    with pytest.raises(HuntgroupError):
        sdp._parse_connection("IN IP4 " + "a." * 130 + "example")
