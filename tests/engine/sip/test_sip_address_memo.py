"""Look-ups asked for every message are memoized (issue 14): ``address.ip_of`` and the
driver's ``resolver.is_address``, about the same few peers over and over."""

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
