"""Look-ups asked for every message are memoized (issue 14): ``address.ip_of``, the
driver's ``resolver.is_address``, ``uri.parse_hostport`` and the SDP hold check, about
the same few peers over and over."""

from __future__ import annotations

import ipaddress

from huntgroup.engine.aio.resolver import is_address
from huntgroup.engine.sip.address import ip_of


def test_ip_of_answers_a_repeated_host_from_its_memo_and_still_parses() -> None:
    first = ip_of("192.0.2.7")
    assert first == ipaddress.ip_address("192.0.2.7")
    assert ip_of("192.0.2.7") is first  # the same object: not parsed again
    assert ip_of("[::ffff:192.0.2.7]") == first  # an IPv4 mapping undone
    assert ip_of("pbx.example.net") is None


def test_is_address_answers_a_repeated_host_from_its_memo() -> None:
    assert is_address("198.51.100.93")
    before = is_address.cache_info().hits
    assert is_address("198.51.100.93")
    assert is_address.cache_info().hits == before + 1
    assert not is_address("memo-test.example.net")


def test_parse_hostport_answers_a_repeated_sent_by_from_its_memo_and_still_refuses() -> None:
    import pytest

    from huntgroup.engine.sip import uri
    from huntgroup.engine.sip.uri import parse_hostport
    from huntgroup.errors import RemoteProtocolError

    assert parse_hostport("192.0.2.7:5061") == ("192.0.2.7", 5061)
    before = uri._hostport_memo.cache_info().hits
    assert parse_hostport("192.0.2.7:5061") == ("192.0.2.7", 5061)
    assert uri._hostport_memo.cache_info().hits == before + 1
    for _ in range(2):  # a bad one is refused every time, never remembered as good
        with pytest.raises(RemoteProtocolError):
            parse_hostport("bad host:5060")


def test_the_sdp_hold_address_check_is_memoized() -> None:
    from huntgroup.media import sdp

    assert sdp.Connection("0.0.0.0").is_unspecified
    before = sdp._unspecified_memo.cache_info().hits
    assert sdp.Connection("0.0.0.0").is_unspecified
    assert sdp._unspecified_memo.cache_info().hits == before + 1
    assert not sdp.Connection("192.0.2.7").is_unspecified
    assert not sdp.Connection("not.an.ip").is_unspecified


def test_the_nat_address_check_is_memoized() -> None:
    from huntgroup.media import nat

    assert nat.unverified_media("10.1.2.3", "192.0.2.7") == "192.0.2.7"
    before = nat._ip_memo.cache_info().hits
    assert nat.unverified_media("10.1.2.3", "192.0.2.7") == "192.0.2.7"
    assert nat._ip_memo.cache_info().hits >= before + 2
    assert nat.unverified_media("93.184.216.34", "93.184.216.34") is None  # public, vouched


def test_long_keys_are_parsed_but_not_memoized() -> None:
    """Review L3: unique names up to the 8192-byte line limit would hold 32-64 MB in the
    memos; past 255 (host:port) or 64 (address) characters they are parsed uncached."""
    from huntgroup.engine.sip import uri
    from huntgroup.media import nat, sdp

    long_name = "a" * 200 + "." + "b" * 60 + ".example.net"
    size = uri._hostport_memo.cache_info().currsize
    assert uri.parse_hostport(f"{long_name}:5070") == (long_name, 5070)
    assert uri._hostport_memo.cache_info().currsize == size
    short = uri.parse_hostport("memo-l3.example.net:5070")
    assert short == ("memo-l3.example.net", 5070)
    assert uri._hostport_memo.cache_info().currsize == size + 1

    host = "h" * 65
    size = nat._ip_memo.cache_info().currsize
    assert nat._ip(host) is None
    assert nat._ip("fe80::1%" + "e" * 60) == ipaddress.ip_address("fe80::1")
    assert nat._ip_memo.cache_info().currsize == size
    size = sdp._unspecified_memo.cache_info().currsize
    assert not sdp.Connection(host).is_unspecified
    assert sdp.Connection("::%" + "e" * 62).is_unspecified
    assert sdp._unspecified_memo.cache_info().currsize == size
