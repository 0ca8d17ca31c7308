"""Whatever fails while handling one message stays with it (issue 9, point 1).

A request whose handling raises gets a final response (400 when the message
is at fault, 500 otherwise), its transaction ends on the normal timers, and no
state outlives it. The property test throws hostile bytes into every header
and parameter of REGISTER and INVITE (with their Authorization and
Proxy-Authorization) through the sans-I/O B2BUA, with the clock scripted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest
from b2bua_peers import (
    CALLER_NUMBER,
    DOMAIN,
    HOST,
    LINE_A,
    PASSWORD,
    PILOT,
    Network,
    Phone,
    digest_authorization,
    make_config,
    sdp,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from huntgroup.config.models import Config
from huntgroup.engine.b2bua import B2BUA
from huntgroup.engine.sip.message import Request, Response
from huntgroup.engine.sip.parser import SipParseError, parse_datagram

UPSTREAM_PORT = 7900
EXTERNAL = "0611223344"
CRLF = b"\r\n"


def config() -> Config:
    cfg = make_config("linear", members=0, member_lines=[LINE_A])
    server = cfg.server.model_copy(update={"upstream": f"sip:{HOST}:{UPSTREAM_PORT}"})
    return cfg.model_copy(update={"server": server})


def tables(b2b: B2BUA) -> dict[str, int]:
    """Every per-call and per-request table of the B2BUA, and the RTP ports."""
    return {
        "transactions": len(b2b.layer),
        "calls": len(b2b._calls),
        "by_core": len(b2b._by_core),
        "by_server_tx": len(b2b._by_server_tx),
        "by_client_tx": len(b2b._by_client_tx),
        "dialogs": len(b2b._dialogs),
        "legs_by_call_id": len(b2b._legs_by_call_id),
        "relays": len(b2b._relays),
        "orphans": len(b2b._orphans),
        "untried": len(b2b._untried),
        "updates": len(b2b._updates),
        "update_retries": len(b2b._update_retries),
        "retransmit_heap": len(b2b._retransmit_heap),
        "events": len(b2b._events),
        "out": len(b2b._out),
        "rtp_ports": b2b.media.ports.in_use,
        "core_calls": len(b2b.core._calls),
        "queued": sum(len(b2b.core.store.queue(g.name)) for g in b2b.config.groups),
    }


def finals(net: Network, since: int, call_id: str, method: str) -> set[bytes]:
    """Distinct final responses to (call_id, method) sent since transmit ``since``."""
    found: set[bytes] = set()
    for _, out in net.transmits[since:]:
        try:
            message = parse_datagram(out.data)
        except SipParseError:
            continue
        if (
            isinstance(message, Response)
            and message.status >= 200
            and message.call_id == call_id
            and message.cseq.method == method
        ):
            found.add(out.data)
    return found


def advance_past_transactions(net: Network) -> None:
    """64*T1 after every final answer: a refused INVITE's final waits for its ACK,
    a call to the silent upstream ends on timer B, then its final waits too."""
    t1 = net.config.server.timers.t1
    for _ in range(4):
        net.advance(64 * t1 + 1)


# ------------------------------------------------------------------ the 0xFF byte


def challenge_of(phone: Phone, number: str) -> str:
    phone.register(number, call_id="c-" + phone.new_id("reg"), cseq=1)
    challenge = phone.response(401, "REGISTER")
    return challenge.headers.get_all("WWW-Authenticate")[0]


def register_bytes(phone: Phone, authorization: bytes, call_id: str = "hostile@test") -> bytes:
    uri = f"sip:{LINE_A}@{DOMAIN}"
    head = (
        f"REGISTER sip:{DOMAIN} SIP/2.0\r\n"
        f"Via: {phone.via(phone.branch())}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <{uri}>;tag=ff1\r\nTo: <{uri}>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 2 REGISTER\r\n"
        f"Contact: <sip:{LINE_A}@{HOST}:{phone.peer.port}>\r\n"
    ).encode()
    return head + b"Authorization: " + authorization + b"\r\nContent-Length: 0\r\n\r\n"


@pytest.mark.parametrize("param", ["cnonce", "uri", "username", "opaque"])
def test_a_0xff_byte_in_a_quoted_digest_parameter_gets_400_and_leaves_nothing(param: str) -> None:
    net = Network(config())
    alice = net.phone("alice", 7101, LINE_A)
    value = digest_authorization(
        challenge_of(alice, LINE_A),
        username=LINE_A,
        password=PASSWORD,
        method="REGISTER",
        uri=f"sip:{DOMAIN}",
    ).encode()
    advance_past_transactions(net)
    baseline = tables(net.b2b)
    hostile = value.replace(f'{param}="'.encode(), f'{param}="\xff'.encode("latin-1"), 1)
    if param == "opaque":
        hostile = value + b', opaque="x\xffy"'
    assert hostile != value
    alice.send(register_bytes(alice, hostile))
    assert alice.response(400, "REGISTER")
    advance_past_transactions(net)
    assert tables(net.b2b) == baseline


# --------------------------------------------------------- a bug in a handler


def test_a_handler_that_raises_answers_500_once_and_logs_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    net = Network(config())
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    baseline = tables(net.b2b)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(net.b2b.core, "handle", broken)  # the core fails on CallArrived
    with caplog.at_level(logging.INFO, logger="huntgroup"):
        call = caller.invite(PILOT)
    refused = caller.response(500)
    call.ack_failure(refused)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "RuntimeError: a bug" in warnings[0].getMessage()
    assert not any(r.exc_info for r in warnings), "no traceback at WARNING"
    assert net.b2b.counters.internal_errors == 1
    assert net.b2b.counters.request_errors == 1
    monkeypatch.undo()
    advance_past_transactions(net)
    assert tables(net.b2b) == baseline
    caller.drop()
    caller.invite(PILOT)  # the next call is handled as usual (no member: 480)
    assert caller.response(480)


def test_a_register_handler_that_raises_answers_500(monkeypatch: pytest.MonkeyPatch) -> None:
    net = Network(config())
    alice = net.phone("alice", 7101, LINE_A)
    baseline = tables(net.b2b)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise KeyError("registrar")

    monkeypatch.setattr(net.b2b, "_authenticated", broken)
    alice.register(LINE_A, call_id="r@test", cseq=1)
    assert alice.response(500, "REGISTER")
    assert not alice.inbox
    advance_past_transactions(net)
    assert tables(net.b2b) == baseline


def test_a_request_that_cannot_even_be_answered_is_dropped_not_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    net = Network(config())
    alice = net.phone("alice", 7101, LINE_A)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("no answer possible")

    monkeypatch.setattr(net.b2b, "_dispatch_request", broken)
    monkeypatch.setattr("huntgroup.engine.b2bua.make_response", broken)
    alice.register(LINE_A, call_id="r@test", cseq=1)
    assert len(net.b2b.layer) == 0, "the server transaction is abandoned at once"


# ------------------------------------------------------------- hostile bytes


HOSTILE = st.one_of(
    st.binary(min_size=1, max_size=12),
    st.sampled_from(
        [b"\xff", b"\x00", b"\x80", b"\xc3", b"\xed\xa0\x80", b"\r\n", b"\r", b"\n", b'"', b"\\"]
    ),
    st.sampled_from([b";", b",", b"=", b"<", b">", b"@", b":", b"%", b"%ff", b" ", b"\t"]),
)


@dataclass(frozen=True)
class Template:
    kind: str
    lines: list[bytes]  # the request line, then each header line
    body: bytes


def _template(net: Network, phone: Phone, kind: str) -> Template:
    """A valid request of ``kind``, with credentials answering a real challenge."""
    via = phone.via(phone.branch() + "-h")
    if kind == "register":
        uri = f"sip:{LINE_A}@{DOMAIN}"
        auth = digest_authorization(
            challenge_of(phone, LINE_A),
            username=LINE_A,
            password=PASSWORD,
            method="REGISTER",
            uri=f"sip:{DOMAIN}",
        )
        lines = [
            f"REGISTER sip:{DOMAIN} SIP/2.0",
            f"Via: {via}",
            "Max-Forwards: 70",
            f"From: <{uri}>;tag=h1",
            f"To: <{uri}>",
            "Call-ID: hostile@test",
            "CSeq: 2 REGISTER",
            f"Contact: <sip:{LINE_A}@{HOST}:{phone.peer.port}>;expires=600",
            "Expires: 600",
            f"Authorization: {auth}",
        ]
        return Template(kind, [x.encode() for x in lines], b"")
    number = {"outgoing": EXTERNAL, "feature": "*52", "pilot": PILOT, "line": LINE_A}[kind]
    ruri = f"sip:{number}@{DOMAIN}"
    extra: list[str] = []
    if kind in ("outgoing", "feature"):
        first = phone.invite(number)
        challenge = phone.response(407)
        first.ack_failure(challenge)
        auth = digest_authorization(
            challenge.headers.get_all("Proxy-Authenticate")[0],
            username=LINE_A,
            password=PASSWORD,
            method="INVITE",
            uri=ruri,
        )
        extra = [f"Proxy-Authorization: {auth}"]
    body = sdp(10000)
    lines = [
        f"INVITE {ruri} SIP/2.0",
        f"Via: {via}",
        "Max-Forwards: 70",
        f'From: "Alice" <sip:{LINE_A}@{DOMAIN}>;tag=h2',
        f"To: <{ruri}>",
        "Call-ID: hostile@test",
        "CSeq: 7 INVITE",
        f"Contact: <sip:{LINE_A}@{HOST}:{phone.peer.port}>",
        "Content-Type: application/sdp",
        *extra,
    ]
    return Template(kind, [x.encode() for x in lines], body)


def _mutate(template: Template, line: int, segment: int, offset: int, hostile: bytes) -> bytes:
    """Insert ``hostile`` into one parameter (a ``;`` or ``,`` separated piece) of one line."""
    lines = list(template.lines)
    text = lines[line % len(lines)]
    cuts = [0] + [i + 1 for i, c in enumerate(text) if c in b";, :"] + [len(text)]
    start = cuts[segment % (len(cuts) - 1)]
    end = cuts[segment % (len(cuts) - 1) + 1]
    pos = start + offset % max(end - start, 1)
    lines[line % len(lines)] = text[:pos] + hostile + text[pos:]
    body = template.body
    head = CRLF.join(lines) + CRLF + f"Content-Length: {len(body)}".encode() + CRLF + CRLF
    return head + body


@st.composite
def hostile_cases(draw: st.DrawFn) -> tuple[str, int, int, int, bytes]:
    kind = draw(st.sampled_from(["register", "outgoing", "feature", "pilot", "line"]))
    return (
        kind,
        draw(st.one_of(st.just(-1), st.integers(0, 10))),  # -1: the last line, the credentials
        draw(st.integers(0, 40)),
        draw(st.integers(0, 200)),
        draw(HOSTILE),
    )


def check_hostile(case: tuple[str, int, int, int, bytes]) -> None:
    kind, line, segment, offset, hostile = case
    net = Network(config())
    alice = net.phone("alice", 7101, LINE_A)
    template = _template(net, alice, kind)
    advance_past_transactions(net)
    alice.drop()
    baseline = tables(net.b2b)
    data = _mutate(template, line, segment, offset, hostile)
    since = len(net.transmits)
    outputs = net.b2b.receive_datagram(data, alice.peer, now=net.now)  # never raises
    net._route(outputs)
    try:
        request = parse_datagram(data)
    except SipParseError:
        request = None
    advance_past_transactions(net)
    if isinstance(request, Request) and request.method != "ACK":
        got = finals(net, since, request.call_id, request.method)
        assert len(got) == 1, (data, [parse_datagram(g).status for g in got])  # type: ignore[union-attr]
    assert tables(net.b2b) == baseline, data
    assert net.b2b.counters.internal_errors == 0, data
    # the per-source and per-line failure counts end on their own timers too
    guard = net.b2b.guard
    net.advance(guard.forget_after + 1)
    assert len(guard) == 0


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(hostile_cases())
def test_hostile_bytes_in_any_header_or_parameter_get_one_final_and_leave_nothing(
    case: tuple[str, int, int, int, bytes],
) -> None:
    check_hostile(case)


@pytest.mark.parametrize("kind", ["register", "outgoing", "feature", "pilot", "line"])
def test_the_unmutated_templates_are_accepted(kind: str) -> None:
    """The property above starts from requests that work (else it would test little)."""
    net = Network(config())
    alice = net.phone("alice", 7101, LINE_A)
    template = _template(net, alice, kind)
    alice.drop()
    since = len(net.transmits)
    alice.send(_mutate(template, 0, 0, 0, b""))
    statuses = {
        parse_datagram(data).status  # type: ignore[union-attr]
        for data in finals(net, since, "hostile@test", template.lines[0].split()[0].decode())
    }
    expected = {"register": 200, "outgoing": None, "feature": 200, "pilot": 480, "line": 480}
    assert statuses == ({expected[kind]} if expected[kind] else set()), statuses


def test_a_cancel_whose_handling_raises_answers_500(monkeypatch: pytest.MonkeyPatch) -> None:
    net = Network(make_config("linear", members=1))
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    call = caller.invite(PILOT)
    assert caller.response(180)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(net.b2b, "_cancel", broken)
    call.cancel()
    assert caller.response(500, "CANCEL")
    monkeypatch.undo()
    net.advance(64 * net.config.server.timers.t1 + 1)
    assert [k.method for k in net.b2b.layer._transactions if k.server] == ["INVITE"]
