"""Whatever fails while handling one message stays with it (issue 9, point 1).

A request whose handling raises gets a final response (400 when the message
is at fault, 500 otherwise), its transaction ends on the normal timers, and no
state outlives it. The property tests throw hostile bytes into every header
and parameter, through the sans-I/O B2BUA with the clock scripted, of:

- out-of-dialog requests: REGISTER and INVITE (with their Authorization and
  Proxy-Authorization computed against a real challenge);
- in-dialog requests of an established call (BYE, re-INVITE, INFO), a CANCEL
  of a ringing call, and the responses of a member leg (180, 200, 486).

The peers behave (:func:`settle`: they ACK, answer BYE and CANCEL), so every
transaction ends on its RFC 3261 timers; the tables are checked right after
64·T1 (no margin beyond it: every timer a well-behaved exchange leaves is at
most 64·T1 long, and they all start when the hostile message is handled).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from huntgroup.config.models import Config
from huntgroup.engine.b2bua import B2BUA
from huntgroup.engine.sip.message import Message, Request, Response
from huntgroup.engine.sip.parser import SipParseError, parse_datagram
from tests.support.b2bua_peers import (
    B2B_PEER,
    CALLER_NUMBER,
    DOMAIN,
    HOST,
    LINE_A,
    PASSWORD,
    PILOT,
    Network,
    Phone,
    UacCall,
    UasCall,
    build,
    digest_authorization,
    make_config,
    response_bytes,
    sdp,
)

UPSTREAM_PORT = 7900
EXTERNAL = "0611223344"
CRLF = b"\r\n"


def config() -> Config:
    # LINE_A never registers: unavailable, so a call to the pilot gets 480 at once
    cfg = make_config("linear", members=0, member_lines=[LINE_A], queue={"when_empty": "overflow"})
    server = cfg.server.model_copy(update={"upstream": f"sip:{HOST}:{UPSTREAM_PORT}"})
    return cfg.model_copy(update={"server": server})


def tables(b2b: B2BUA) -> dict[str, int]:
    """Every per-call and per-request table of the B2BUA, and the RTP ports."""
    return {
        "transactions": len(b2b.layer),
        **b2b.index.sizes(),
        "untried": len(b2b.untried),
        "timers": len(b2b.timer_heap),
        "events": len(b2b.events),
        "out": len(b2b.out),
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


_BRANCH = re.compile(r";\s*branch\s*=\s*([^;,\s]+)", re.IGNORECASE)


def _branch(message: Message) -> str | None:
    vias = message.headers.get_all("Via")
    match = _BRANCH.search(vias[0]) if vias else None
    return match.group(1) if match else None


def finals_to(net: Network, since: int, request: Request) -> set[bytes]:
    """Distinct final responses to this very request (its Call-ID, CSeq and branch)."""
    found: set[bytes] = set()
    for _, out in net.transmits[since:]:
        try:
            message = parse_datagram(out.data)
        except SipParseError:
            continue
        if (
            isinstance(message, Response)
            and message.status >= 200
            and message.call_id == request.call_id
            and message.cseq.method == request.method
            and message.cseq.number == request.cseq.number
            and _branch(message) == _branch(request)
        ):
            found.add(out.data)
    return found


def advance_past_transactions(net: Network) -> None:
    """Set-up only (before a baseline): the silent exchanges of building a template
    (challenges nobody ACKs) end on their timers, at most 2 x 64*T1 later."""
    t1 = net.config.server.timers.t1
    for _ in range(2):
        net.advance(64 * t1 + 1)


def after_64_t1(net: Network) -> None:
    """Right after 64*T1: when every transaction of a well-behaved exchange is over."""
    net.advance(64 * net.config.server.timers.t1)


# ------------------------------------------------------------ well-behaved peers


@dataclass
class Peers:
    """How the phones around the B2BUA answer (see :func:`settle`)."""

    busy: set[str] = field(default_factory=set)  # phones that answer a new INVITE 486
    pending: dict[str, tuple[Phone, Request]] = field(default_factory=dict)  # ringing
    answered: dict[str, Response] = field(default_factory=dict)  # 2xx to INVITEs, by Call-ID


def _ack_for(phone: Phone, response: Response) -> bytes:
    """The ACK of a response to an INVITE: a 2xx's is a new transaction to its
    Contact; a failure's reuses the INVITE's Via (same branch, §17.1.1.3)."""
    if response.status < 300:
        contacts = response.contacts
        target = str(contacts[0].uri) if contacts else f"sip:{HOST}:{B2B_PEER.port}"
        via = phone.via(phone.branch())
    else:
        target = f"sip:{DOMAIN}"
        via = response.headers.get_all("Via")[0]
    headers = [
        ("Via", via),
        ("Max-Forwards", "70"),
        ("From", response.headers.get("From") or ""),
        ("To", response.headers.get("To") or ""),
        ("Call-ID", response.call_id),
        ("CSeq", f"{response.cseq.number} ACK"),
    ]
    return build(f"ACK {target} SIP/2.0", headers)


def settle(net: Network, peers: Peers) -> None:
    """Let every phone answer what it received, until nobody has anything to answer.

    A response to an INVITE is ACKed (a 2xx is remembered); a new INVITE is
    answered 486 by a busy phone, else keeps ringing (``peers.pending``); a
    CANCEL gets 200 and its INVITE 487; a re-INVITE gets 200 with SDP; any
    other request gets 200.
    """
    for _ in range(500):
        busy = [phone for phone in net.phones.values() if phone.inbox]
        if not busy:
            return
        for phone in busy:
            item = phone.inbox.pop(0)
            message = item.message
            if isinstance(message, Response):
                if message.cseq.method == "INVITE" and message.status >= 200:
                    if message.status < 300:
                        peers.answered[message.call_id] = message
                    phone.send(_ack_for(phone, message))
                continue
            if message.method == "ACK":
                continue
            if message.method == "INVITE" and message.to.tag is None:
                if phone.name in peers.busy:
                    phone.respond(message, 486)
                else:
                    peers.pending[message.call_id] = (phone, message)
            elif message.method == "INVITE":
                phone.respond(message, 200, body=sdp(30000 + phone.peer.port), contact=True)
            elif message.method == "CANCEL":
                phone.respond(message, 200)
                ringing = peers.pending.pop(message.call_id, None)
                if ringing is not None:
                    ringing[0].respond(ringing[1], 487)
            else:
                phone.respond(message, 200)
    raise AssertionError("the peers never settle")


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


@pytest.mark.native_incompatible(
    "patches the core's handle on the instance: a compiled RoutingCore has no instance dict"
)
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


@pytest.mark.native_incompatible(
    "monkeypatches lines.authenticated: compiled callers call the original directly"
)
def test_a_register_handler_that_raises_answers_500(monkeypatch: pytest.MonkeyPatch) -> None:
    net = Network(config())
    alice = net.phone("alice", 7101, LINE_A)
    baseline = tables(net.b2b)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise KeyError("registrar")

    monkeypatch.setattr("huntgroup.engine.b2bua.lines.authenticated", broken)
    alice.register(LINE_A, call_id="r@test", cseq=1)
    assert alice.response(500, "REGISTER")
    assert not alice.inbox
    advance_past_transactions(net)
    assert tables(net.b2b) == baseline


@pytest.mark.native_incompatible(
    "monkeypatches facade.dispatch_request and make_response: compiled callers call the originals"
)
def test_a_request_that_cannot_even_be_answered_is_dropped_not_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    net = Network(config())
    alice = net.phone("alice", 7101, LINE_A)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("no answer possible")

    monkeypatch.setattr("huntgroup.engine.b2bua.facade.dispatch_request", broken)
    monkeypatch.setattr("huntgroup.engine.b2bua.facade.make_response", broken)
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
    upstream = net.phone("upstream", UPSTREAM_PORT, "core")
    peers = Peers(busy={"upstream"})
    template = _template(net, alice, kind)
    advance_past_transactions(net)
    alice.drop()
    upstream.drop()
    baseline = tables(net.b2b)
    data = _mutate(template, line, segment, offset, hostile)
    since = len(net.transmits)
    outputs = net.b2b.receive_datagram(data, alice.peer, now=net.now)  # never raises
    net._route(outputs)
    settle(net, peers)
    try:
        request = parse_datagram(data)
    except SipParseError:
        request = None
    after_64_t1(net)
    if isinstance(request, Request) and request.method != "ACK":
        got = finals_to(net, since, request)
        assert len(got) == 1, (data, [parse_datagram(g).status for g in got])  # type: ignore[union-attr]
    assert tables(net.b2b) == baseline, (data, tables(net.b2b))
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


# ------------------------------------- hostile bytes in a call: in-dialog, CANCEL, responses

CALL_KINDS = ["bye", "reinvite", "info", "cancel", "r180", "r200", "r486"]


@dataclass
class CallScene:
    """A call from ``caller`` to the pilot, ringing member m1 or bridged to it, and a
    valid message of ``kind`` for it (not sent): the template to mutate."""

    net: Network
    peers: Peers
    caller: Phone
    member: Phone
    call: UacCall
    invite: Request  # the caller's INVITE
    uas: UasCall  # the member's side of its INVITE
    template: Template
    sender: Phone


def _template_of(kind: str, data: bytes) -> Template:
    head, _, body = data.partition(CRLF + CRLF)
    lines = [x for x in head.split(CRLF) if not x.lower().startswith(b"content-length")]
    return Template(kind, lines, body)


def call_scene(kind: str) -> CallScene:
    net = Network(make_config("linear", members=1))  # m1 at 127.0.0.1:7001
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    member = net.phone("m1", 7001, "m1")
    peers = Peers()
    call = caller.invite(PILOT)
    invite = parse_datagram(call.invite_bytes)
    assert isinstance(invite, Request)
    uas = member.answering(member.request("INVITE"))
    uas.reply(180)
    sender = caller
    if kind in ("bye", "reinvite", "info"):
        uas.reply(200)
        call.ack(caller.response(200))
        method = {"bye": "BYE", "reinvite": "INVITE", "info": "INFO"}[kind]
        body = {"reinvite": sdp(10002, session=2), "info": b"Signal=5\r\nDuration=160\r\n"}
        content_type = "application/dtmf-relay" if kind == "info" else "application/sdp"
        data = call.in_dialog(method, body=body.get(kind, b""), content_type=content_type)
    elif kind == "cancel":
        headers = [
            ("Via", caller.via(call.branch)),
            ("Max-Forwards", "70"),
            ("From", call.from_header),
            ("To", f"<{call.ruri}>"),
            ("Call-ID", call.call_id),
            ("CSeq", f"{call.invite_cseq} CANCEL"),
        ]
        data = build(f"CANCEL {call.ruri} SIP/2.0", headers)
        peers.pending[uas.invite.call_id] = (member, uas.invite)
    else:
        status = int(kind[1:])
        data = response_bytes(
            uas.invite,
            status,
            {180: "Ringing", 200: "OK", 486: "Busy Here"}[status],
            to_tag=uas.tag,
            contact=member.contact if status < 300 else None,
            body=sdp(27001) if status == 200 else b"",
        )
        sender = member
        peers.pending[uas.invite.call_id] = (member, uas.invite)
    caller.drop()
    member.drop()
    template = _template_of(kind, data)
    return CallScene(net, peers, caller, member, call, invite, uas, template, sender)


def end_the_call(scene: CallScene) -> None:
    """Whatever the hostile message did, end the call the way real peers would."""
    net, peers, call, uas = scene.net, scene.peers, scene.call, scene.uas
    settle(net, peers)
    if net.b2b.index.calls and uas.invite.call_id in peers.pending:  # m1 still rings: it answers
        del peers.pending[uas.invite.call_id]
        uas.reply(200)
        settle(net, peers)
    if net.b2b.index.calls and uas.answered:  # m1 hangs up (its own CSeq: untouched)
        uas.bye()
        settle(net, peers)
    if net.b2b.index.calls and call.call_id in peers.answered:  # the caller hangs up
        call.confirmed(peers.answered[call.call_id])
        call.cseq = max(call.cseq, 10**6)  # above any CSeq a mutation may have left
        call.bye()
        settle(net, peers)
    if net.b2b.index.calls and call.call_id not in peers.answered:  # the caller gives up
        call.cancel()
        settle(net, peers)


@st.composite
def call_cases(draw: st.DrawFn) -> tuple[str, int, int, int, bytes]:
    return (
        draw(st.sampled_from(CALL_KINDS)),
        draw(st.integers(0, 10)),
        draw(st.integers(0, 40)),
        draw(st.integers(0, 200)),
        draw(HOSTILE),
    )


def check_hostile_in_call(case: tuple[str, int, int, int, bytes]) -> None:
    kind, line, segment, offset, hostile = case
    scene = call_scene(kind)
    net = scene.net
    empty = {name: 0 for name in tables(net.b2b)}
    data = _mutate(scene.template, line, segment, offset, hostile)
    since = len(net.transmits)
    outputs = net.b2b.receive_datagram(data, scene.sender.peer, now=net.now)  # never raises
    net._route(outputs)
    end_the_call(scene)
    after_64_t1(net)
    try:
        message: Message | None = parse_datagram(data)
    except SipParseError:
        message = None
    if isinstance(message, Request) and message.method != "ACK":
        got = finals_to(net, since, message)
        assert len(got) == 1, (data, [parse_datagram(g).status for g in got])  # type: ignore[union-attr]
    assert len(finals_to(net, 0, scene.invite)) == 1, data  # the caller's INVITE: one final
    assert tables(net.b2b) == empty, (data, tables(net.b2b))
    assert net.b2b.counters.internal_errors == 0, data


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(call_cases())
def test_hostile_bytes_in_a_call_get_one_final_and_leave_nothing(
    case: tuple[str, int, int, int, bytes],
) -> None:
    """In-dialog requests, a CANCEL and a member's responses, mutated: one final for a
    request, the call still ends, and every table is empty right after 64*T1."""
    check_hostile_in_call(case)


@pytest.mark.parametrize("kind", CALL_KINDS)
def test_the_unmutated_call_templates_work(kind: str) -> None:
    """The property above starts from messages that do what they say."""
    scene = call_scene(kind)
    net = scene.net
    scene.sender.send(_mutate(scene.template, 0, 0, 0, b""))
    calls_left = len(net.b2b.index.calls)
    expected = {"bye": 0, "cancel": 0, "r486": 0}.get(kind, 1)  # m1 declines: 480
    assert calls_left == expected, (kind, calls_left)
    if kind == "r200":
        assert scene.caller.has(200)
    end_the_call(scene)
    after_64_t1(net)
    assert not any(tables(net.b2b).values()), tables(net.b2b)


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


@pytest.mark.native_incompatible(
    "monkeypatches facade.on_cancel: compiled callers call the original directly"
)
def test_a_cancel_whose_handling_raises_answers_500(monkeypatch: pytest.MonkeyPatch) -> None:
    net = Network(make_config("linear", members=1))
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    call = caller.invite(PILOT)
    assert caller.response(180)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("huntgroup.engine.b2bua.facade.on_cancel", broken)
    call.cancel()
    assert caller.response(500, "CANCEL")
    monkeypatch.undo()
    net.advance(64 * net.config.server.timers.t1 + 1)
    assert [k.method for k in net.b2b.layer._transactions if k.server] == ["INVITE"]
