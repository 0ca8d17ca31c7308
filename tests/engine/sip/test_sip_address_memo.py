"""Look-ups asked for every message are memoized (issue 14): ``address.ip_of``, the
driver's ``resolver.is_address``, ``uri.parse_hostport`` and the SDP hold check, about
the same few peers over and over, each in a bounded memo (:mod:`huntgroup.memo`)."""

from __future__ import annotations

import ipaddress

import pytest

from huntgroup.engine.aio.resolver import is_address
from huntgroup.engine.sip import uri
from huntgroup.engine.sip.address import ip_of
from huntgroup.errors import RemoteProtocolError
from huntgroup.media import nat, sdp
from huntgroup.memo import memo_of


def test_ip_of_answers_a_repeated_host_from_its_memo_and_still_parses() -> None:
    first = ip_of("192.0.2.7")
    assert first == ipaddress.ip_address("192.0.2.7")
    assert ip_of("192.0.2.7") is first  # the same object: not parsed again
    assert ip_of("[::ffff:192.0.2.7]") == first  # an IPv4 mapping undone
    assert ip_of("pbx.example.net") is None


def test_is_address_answers_a_repeated_host_from_its_memo() -> None:
    assert is_address("198.51.100.93")
    assert "198.51.100.93" in memo_of(is_address)
    assert is_address("198.51.100.93")
    assert not is_address("memo-test.example.net")


def test_parse_hostport_answers_a_repeated_sent_by_from_its_memo_and_still_refuses() -> None:
    assert uri.parse_hostport("192.0.2.7:5061") == ("192.0.2.7", 5061)
    memo = memo_of(uri.parse_hostport)
    first = memo["192.0.2.7:5061"]
    assert uri.parse_hostport("192.0.2.7:5061") is first
    for _ in range(2):  # a bad one is refused every time, never remembered as good
        with pytest.raises(RemoteProtocolError):
            uri.parse_hostport("bad host:5060")
    assert "bad host:5060" not in memo


def test_the_sdp_hold_address_check_is_memoized() -> None:
    assert sdp.Connection("0.0.0.0").is_unspecified
    assert memo_of(sdp._unspecified)["0.0.0.0"] is True
    assert sdp.Connection("0.0.0.0").is_unspecified
    assert not sdp.Connection("192.0.2.7").is_unspecified
    assert not sdp.Connection("not.an.ip").is_unspecified


def test_the_nat_address_check_is_memoized() -> None:
    assert nat.unverified_media("10.1.2.3", "192.0.2.7") == "192.0.2.7"
    assert memo_of(nat._ip)["192.0.2.7"] == ipaddress.ip_address("192.0.2.7")
    assert memo_of(nat._ip)["10.1.2.3"] == ipaddress.ip_address("10.1.2.3")
    assert nat.unverified_media("10.1.2.3", "192.0.2.7") == "192.0.2.7"
    assert nat.unverified_media("93.184.216.34", "93.184.216.34") is None  # public, vouched


def test_long_keys_are_parsed_but_not_memoized() -> None:
    """Review L3: unique names up to the 8192-byte line limit would hold 32-64 MB in the
    memos; past 256 (host:port) or 64 (address) characters they are parsed uncached."""
    long_name = "a" * 200 + "." + "b" * 60 + ".example.net"
    memo = memo_of(uri.parse_hostport)
    assert uri.parse_hostport(f"{long_name}:5070") == (long_name, 5070)
    assert f"{long_name}:5070" not in memo
    short = uri.parse_hostport("memo-l3.example.net:5070")
    assert short == ("memo-l3.example.net", 5070)
    assert "memo-l3.example.net:5070" in memo

    host = "h" * 65
    assert nat._ip(host) is None
    assert nat._ip("fe80::1%" + "e" * 60) == ipaddress.ip_address("fe80::1")
    assert host not in memo_of(nat._ip)
    assert "fe80::1%" + "e" * 60 not in memo_of(nat._ip)
    assert not sdp.Connection(host).is_unspecified
    assert sdp.Connection("::%" + "e" * 62).is_unspecified
    assert host not in memo_of(sdp._unspecified)
    assert "::%" + "e" * 62 not in memo_of(sdp._unspecified)
