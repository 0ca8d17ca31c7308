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

    from huntgroup.engine.sip.uri import parse_hostport
    from huntgroup.errors import RemoteProtocolError

    assert parse_hostport("192.0.2.7:5061") == ("192.0.2.7", 5061)
    before = parse_hostport.cache_info().hits
    assert parse_hostport("192.0.2.7:5061") == ("192.0.2.7", 5061)
    assert parse_hostport.cache_info().hits == before + 1
    for _ in range(2):  # a bad one is refused every time, never remembered as good
        with pytest.raises(RemoteProtocolError):
            parse_hostport("bad host:5060")


def test_the_sdp_hold_address_check_is_memoized() -> None:
    from huntgroup.media import sdp

    assert sdp.Connection("0.0.0.0").is_unspecified
    before = sdp._unspecified.cache_info().hits
    assert sdp.Connection("0.0.0.0").is_unspecified
    assert sdp._unspecified.cache_info().hits == before + 1
    assert not sdp.Connection("192.0.2.7").is_unspecified
    assert not sdp.Connection("not.an.ip").is_unspecified


def test_the_nat_address_check_is_memoized() -> None:
    from huntgroup.media import nat

    assert nat.unverified_media("10.1.2.3", "192.0.2.7") == "192.0.2.7"
    before = nat._ip.cache_info().hits
    assert nat.unverified_media("10.1.2.3", "192.0.2.7") == "192.0.2.7"
    assert nat._ip.cache_info().hits >= before + 2
    assert nat.unverified_media("93.184.216.34", "93.184.216.34") is None  # public, vouched
