"""The reads done many times per message (issue 14) answer as before, with less work:
the transaction key hashes and compares in C, the typed views of a message read its
fields straight from the lookup index, ``Via.branch`` and ``NameAddress.tag`` scan the
parameters inline."""

from __future__ import annotations

import pytest

from huntgroup.engine.sip.fields import parse_name_address, parse_via
from huntgroup.engine.sip.headers import Headers
from huntgroup.engine.sip.message import Request
from huntgroup.engine.sip.parser import parse_datagram
from huntgroup.engine.sip.transaction import TransactionKey
from huntgroup.engine.sip.uri import parse_uri
from huntgroup.errors import RemoteProtocolError


def test_a_transaction_key_hashes_and_compares_as_a_tuple() -> None:
    assert TransactionKey.__hash__ is tuple.__hash__  # no Python frame per look-up
    key = TransactionKey("z9hG4bK-1", "192.0.2.1:5060", "ACK", server=True)
    same = TransactionKey("z9hG4bK-1", "192.0.2.1:5060", "ACK", True)
    assert key == same and hash(key) == hash(same) and {key: 1}[same] == 1
    invite = key._replace(method="INVITE")
    assert invite.method == "INVITE" and invite.server and invite != key
    assert key != TransactionKey("z9hG4bK-1", "192.0.2.1:5060", "ACK", server=False)


def test_branch_and_tag_are_read_in_any_case_first_one_wins() -> None:
    via = parse_via("SIP/2.0/UDP 192.0.2.1;BRANCH=z9hG4bK-a;branch=z9hG4bK-b")
    assert via.branch == "z9hG4bK-a"
    assert parse_via("SIP/2.0/UDP 192.0.2.1;rport").branch is None
    assert parse_name_address("<sip:a@b>;Tag=x1;tag=x2").tag == "x1"
    assert parse_name_address("<sip:a@b>").tag is None


def test_the_typed_views_read_the_first_field_and_name_a_missing_one() -> None:
    data = (
        b"OPTIONS sip:a@192.0.2.1 SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK-top\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.3;branch=z9hG4bK-second\r\n"
        b"f: <sip:b@192.0.2.2>;tag=t1\r\nt: <sip:a@192.0.2.1>\r\ni: fast-views@x\r\n"
        b"CSeq: 7 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    message = parse_datagram(data)
    assert message.top_via.branch == "z9hG4bK-top"
    assert message.from_.tag == "t1" and message.to.tag is None
    assert message.call_id == "fast-views@x"
    assert (message.cseq.number, message.cseq.method) == (7, "OPTIONS")
    bare = Request("OPTIONS", parse_uri("sip:a@b"), Headers([("Via", "SIP/2.0/UDP h")]))
    for view, name in (("from_", "From"), ("to", "To"), ("call_id", "Call-ID"), ("cseq", "CSeq")):
        with pytest.raises(RemoteProtocolError, match=f"Missing {name} header"):
            getattr(bare, view)
    with pytest.raises(RemoteProtocolError, match="Missing Via header"):
        _ = Request("OPTIONS", parse_uri("sip:a@b"), Headers()).top_via
