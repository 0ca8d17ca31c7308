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


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_the_received_content_length_is_dropped_wherever_it_stands(where: str) -> None:
    fields = [
        b"Via: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK-cl",
        b"From: <sip:b@192.0.2.2>;tag=t1",
        b"To: <sip:a@192.0.2.1>",
        b"Call-ID: cl@x",
        b"CSeq: 1 OPTIONS",
    ]
    at = {"first": 0, "middle": 2, "last": len(fields)}[where]
    fields.insert(at, b"l: 4")
    data = b"OPTIONS sip:a@192.0.2.1 SIP/2.0\r\n" + b"\r\n".join(fields) + b"\r\n\r\nbody"
    message = parse_datagram(data)
    names = [name for name, _ in message.headers]
    assert names == ["Via", "From", "To", "Call-ID", "CSeq"]
    assert "Content-Length" not in message.headers and message.body == b"body"
    assert message.headers.get("Call-ID") == "cl@x"


def test_a_copy_with_a_parameter_keeps_every_other_field() -> None:
    via = parse_via("SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bK-p;rport")
    stamped = via.with_param("rport", "5071").with_param("received", "2001:db8::2")
    assert (stamped.transport, stamped.host, stamped.port) == ("TCP", via.host, 5070)
    assert stamped.rport == 5071 and stamped.received == "2001:db8::2"
    assert via.rport is None  # the original is untouched
    to = parse_name_address('"Alice" <sip:a@b;transport=tcp>;x=1')
    tagged = to.with_tag("t9")
    assert (tagged.uri, tagged.display_name, tagged.tag) == (to.uri, "Alice", "t9")
    assert tagged.params == (("x", "1"), ("tag", "t9"))
