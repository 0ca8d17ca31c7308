"""Hostile datagrams: nothing raises out of the B2BUA, and a call in progress survives.

DESIGN.md §3: bad input from the network gets an answer or is dropped; it never
kills the server and never loses another call's state. Each example sets up a
bridged call, throws random bytes and mutated SIP messages at the B2BUA (with
the clock moving between them), then checks the call still ends properly and
that, once every timer has run, no call and no RTP port is left behind.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from huntgroup.engine.b2bua import Transmit
from huntgroup.engine.b2bua.call_records import RecordOutput
from huntgroup.engine.sip.address import Peer
from huntgroup.media.commands import CloseMedia, OpenPort, PlayMusic, StartRelay
from tests.support.b2bua_peers import (
    CALLER_NUMBER,
    DOMAIN,
    LINE_A,
    PILOT,
    Network,
    UacCall,
    UasCall,
    build,
    make_config,
    sdp,
)

FUZZER = Peer("127.0.0.1", 6666, "UDP")


def _headers(method: str, ruri: str, *, n: int, to_tag: str | None = None) -> list[tuple[str, str]]:
    to = f"<{ruri}>" + (f";tag={to_tag}" if to_tag else "")
    return [
        ("Via", f"SIP/2.0/UDP 127.0.0.1:6666;branch=z9hG4bK-fz-{n};rport"),
        ("Max-Forwards", "70"),
        ("From", f'"Fuzz" <sip:0655555555@{DOMAIN}>;tag=fz{n}'),
        ("To", to),
        ("Call-ID", f"fuzz-{n}@test"),
        ("CSeq", f"{n} {method}"),
        ("Contact", "<sip:fuzz@127.0.0.1:6666>"),
    ]


TEMPLATES: list[bytes] = [
    build(
        f"INVITE sip:{PILOT}@{DOMAIN} SIP/2.0",
        [*_headers("INVITE", f"sip:{PILOT}@{DOMAIN}", n=1), ("Content-Type", "application/sdp")],
        sdp(12000),
    ),
    build(
        f"INVITE sip:{LINE_A}@{DOMAIN} SIP/2.0",
        [*_headers("INVITE", f"sip:{LINE_A}@{DOMAIN}", n=2), ("Content-Type", "application/sdp")],
        sdp(12002),
    ),
    build(f"REGISTER sip:{DOMAIN} SIP/2.0", _headers("REGISTER", f"sip:{LINE_A}@{DOMAIN}", n=3)),
    build(f"OPTIONS sip:{DOMAIN} SIP/2.0", _headers("OPTIONS", f"sip:{DOMAIN}", n=4)),
    build(
        f"BYE sip:{PILOT}@{DOMAIN} SIP/2.0",
        _headers("BYE", f"sip:{PILOT}@{DOMAIN}", n=5, to_tag="t5"),
    ),
    build(f"CANCEL sip:{PILOT}@{DOMAIN} SIP/2.0", _headers("CANCEL", f"sip:{PILOT}@{DOMAIN}", n=1)),
    build(
        f"ACK sip:{PILOT}@{DOMAIN} SIP/2.0",
        _headers("ACK", f"sip:{PILOT}@{DOMAIN}", n=1, to_tag="t1"),
    ),
    build(
        f"INFO sip:{PILOT}@{DOMAIN} SIP/2.0",
        _headers("INFO", f"sip:{PILOT}@{DOMAIN}", n=7, to_tag="t7"),
        b"Signal=1\r\n",
    ),
    build(
        "SIP/2.0 200 OK", _headers("INVITE", f"sip:{PILOT}@{DOMAIN}", n=8, to_tag="t8"), sdp(12008)
    ),
    build("SIP/2.0 180 Ringing", _headers("INVITE", f"sip:{PILOT}@{DOMAIN}", n=9, to_tag="t9")),
]

NASTY_LINES = [
    b"Via: SIP/2.0/UDP [::1]:0;branch=z9hG4bK;maddr=255.255.255.255",
    b"Via: SIP/2.0/TCP 127.0.0.1:65536;branch=z9hG4bKx",
    b"Content-Length: 99999",
    b"Content-Length: -1",
    b"CSeq: 4294967296 INVITE",
    b"Max-Forwards: 0",
    b"Max-Forwards: -5",
    b"Expires: 99999999999999",
    b"Contact: *",
    b"Contact: <sip:%00@127.0.0.1>;expires=0",
    b"To: <sip:0140000000@voip.example.net>;tag=",
    b"From: sip:x@y;tag=a;tag=b",
    b'Authorization: Digest username="0102030405", response="x"',
    b'Content-Type: application/sdp; charset="\xff"',
    b"Route: <sip:127.0.0.1:5060;lr>",
    b"Record-Route: <sip:evil@127.0.0.1:1>",
    b"\xc3\x28: \xa0\xa1",
    b" continuation",
]


@st.composite
def mutated(draw: st.DrawFn, templates: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(templates)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "delete", "insert", "line", "truncate", "dup"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] = draw(st.integers(0, 255))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 40))]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=20))
        elif op == "truncate":
            del data[i:]
        elif op == "dup":
            data[i:i] = data[i : i + draw(st.integers(1, 200))]
        else:
            lines = bytes(data).split(b"\r\n")
            j = draw(st.integers(0, len(lines) - 1))
            lines[j] = draw(st.sampled_from(NASTY_LINES))
            data = bytearray(b"\r\n".join(lines))
    return bytes(data)


def protected_call(net: Network) -> tuple[UacCall, UasCall]:
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    m1 = net.phone("m1", 7001, "m1")
    call = caller.invite(PILOT)
    leg = m1.answering(m1.request("INVITE"))
    leg.reply(200)
    m1.request("ACK")
    call.ack(caller.response(200))
    caller.drop()
    m1.drop()
    return call, leg


def finish(net: Network, call: UacCall, leg: UasCall) -> None:
    """The protected call still hangs up cleanly; then nothing is left behind."""
    caller, m1 = call.phone, leg.phone
    caller.drop()
    m1.drop()
    call.bye()
    bye_ok = caller.response(200, "BYE")
    assert bye_ok.call_id == call.call_id
    bye = m1.request("BYE")
    assert bye.call_id == leg.invite.call_id and bye.to.tag == leg.tag
    m1.respond(bye, 200, to_tag=leg.tag)
    net.advance(2000)  # every fuzz-made call times out (max_wait, Timer B, no ACK...)
    assert net.b2b.active_calls == 0
    assert net.b2b.records.tracks == {}, "every call that ended gave its record"
    assert net.b2b.records.waiting.groups == {}, "no caller is left waiting in a queue"
    assert net.ports_in_use == 0
    assert net.b2b.get_timer() is None or net.b2b.get_timer() > net.now  # type: ignore[operator]


def deliver_all(net: Network, datagrams: list[tuple[bytes, float, Peer]]) -> None:
    for data, dt, source in datagrams:
        outputs = net.deliver(data, source)
        for out in outputs:
            assert isinstance(
                out, Transmit | PlayMusic | StartRelay | OpenPort | CloseMedia | RecordOutput
            )
        net.advance(dt)


SOURCES = st.sampled_from(
    [
        FUZZER,
        Peer("127.0.0.1", 6000, "UDP"),
        Peer("127.0.0.1", 7001, "UDP"),
        Peer("::1", 5060, "UDP"),
        Peer("127.0.0.1", 6666, "TCP"),
    ]
)
GAPS = st.sampled_from([0.0, 0.0, 0.01, 0.5, 4.0, 33.0])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.binary(max_size=300), GAPS, SOURCES), max_size=8))
def test_random_bytes_never_raise_and_never_lose_the_call(
    datagrams: list[tuple[bytes, float, Peer]],
) -> None:
    net = Network(make_config("linear", members=3))
    call, leg = protected_call(net)
    deliver_all(net, datagrams)
    finish(net, call, leg)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(mutated(TEMPLATES), GAPS, SOURCES), min_size=1, max_size=8))
def test_mutated_messages_never_raise_and_never_lose_the_call(
    datagrams: list[tuple[bytes, float, Peer]],
) -> None:
    net = Network(make_config("linear", members=3))
    call, leg = protected_call(net)
    deliver_all(net, datagrams)
    finish(net, call, leg)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_copies_of_the_calls_own_messages_are_harmless(data: st.DataObject) -> None:
    """Garbled retransmissions of the protected call's INVITE and of the member's 200."""
    net = Network(make_config("linear", members=3))
    call, leg = protected_call(net)
    own = [call.invite_bytes, leg.extra_sent[-1]]
    datagrams = data.draw(
        st.lists(st.tuples(mutated(own), GAPS, st.just(call.phone.peer)), min_size=1, max_size=6)
    )
    deliver_all(net, datagrams)
    finish(net, call, leg)


def test_templates_are_valid_before_mutation() -> None:
    """The fuzz starts from messages the B2BUA accepts (else mutations test little)."""
    net = Network(make_config("linear", members=3))
    fuzzer = net.phone("fuzzer", 6666, "fuzz")
    for template in TEMPLATES:
        net.deliver(template, FUZZER)
    assert fuzzer.has(180) or fuzzer.has(200, method="INVITE")
    assert fuzzer.has(401, method="REGISTER")
    assert fuzzer.has(200, method="OPTIONS")
    assert fuzzer.has(481, method="BYE")
    assert fuzzer.has(481, method="INFO")
    assert not fuzzer.unparsable
