"""Transfers on the B2BUA: REFER blind and attended (RFC 3515, 3891, 4488), NOTIFY sipfrag.

World: group Support (pilot 0140000000) whose one member is line A (alice, registered
at 127.0.0.1:7101); group Sales (pilot 0150000000) whose member is the fixed URI m2;
line B (bob) registered at 7102; an upstream at 7900. The caller calls Support, alice
answers, then transfers.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from huntgroup.config.models import Config, GroupConfig, LineConfig, MemberConfig
from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.message import Request, Response
from huntgroup.media.call_media import MediaMode
from huntgroup.media.commands import PlayMusic, StartRelay
from huntgroup.media.sdp import audio_endpoint, parse_sdp
from huntgroup.queue.core import CallState as CoreState
from tests.engine.b2bua.test_b2bua_lines import register
from tests.support.b2bua_peers import (
    CALLER_NUMBER,
    DOMAIN,
    HOST,
    LINE_A,
    LINE_B,
    PASSWORD,
    PILOT,
    Network,
    Phone,
    UacCall,
    UasCall,
    build,
    make_config,
    member_uri,
    sdp,
)

SALES = "0150000000"
OUTSIDE = "0699887766"
UPSTREAM_PORT = 7900


def config(*, upstream: bool = False, sales_music: str | None = None) -> Config:
    """The world's configuration; ``upstream`` at 127.0.0.1 makes that address a trusted
    one, so lines calling from it are no longer recognised by address (attended tests)."""
    cfg = make_config("linear", members=0, member_lines=[LINE_A], wrap_up=0)
    sales = GroupConfig(
        name="Sales",
        pilot=SALES,
        algorithm="linear",
        members=(MemberConfig(uri=member_uri(2), position=1),),
        queue={"music": sales_music},
    )
    lines = tuple(
        LineConfig(number=n, password=PASSWORD, no_answer_timeout=200) if n == LINE_B else line
        for line in cfg.lines
        for n in [line.number]
    )
    server = cfg.server
    if upstream:
        server = server.model_copy(update={"upstream": f"sip:{HOST}:{UPSTREAM_PORT}"})
    return cfg.model_copy(update={"groups": (*cfg.groups, sales), "lines": lines, "server": server})


class World:
    def __init__(self, cfg: Config | None = None, *, media_mode: MediaMode = "relay") -> None:
        self.net = Network(cfg or config(), media_mode=media_mode)
        self.alice = self.net.phone("alice", 7101, LINE_A)
        self.bob = self.net.phone("bob", 7102, LINE_B)
        self.m2 = self.net.phone("m2", 7002, "m2")
        self.caller = self.net.phone("caller", 6000, CALLER_NUMBER)
        self.upstream = self.net.phone("upstream", UPSTREAM_PORT, "core")
        assert register(self.alice, LINE_A, PASSWORD, call_id="ra@test").status == 200
        assert register(self.bob, LINE_B, PASSWORD, call_id="rb@test").status == 200

    def call_alice(self) -> tuple[UacCall, UasCall]:
        """The caller calls Support; alice answers: bridged."""
        call = self.caller.invite(PILOT)
        leg = self.alice.answering(self.alice.request("INVITE"))
        leg.reply(200, rtp=20101)
        self.alice.request("ACK")
        call.ack(self.caller.response(200))
        self.caller.drop()
        return call, leg


def member_request(
    phone: Phone,
    leg: UasCall,
    method: str,
    headers: list[tuple[str, str]],
    body: bytes = b"",
) -> None:
    """``phone`` sends ``method`` in the dialog of ``leg`` (a call it answered)."""
    inv = leg.invite
    leg.cseq += 1
    contacts = inv.contacts
    target = str(contacts[0].uri) if contacts else str(inv.from_.uri)
    items = [
        ("Via", phone.via(phone.branch())),
        ("Max-Forwards", "70"),
        ("From", f"{inv.headers.get('To')};tag={leg.tag}"),
        ("To", inv.headers.get("From") or ""),
        ("Call-ID", inv.call_id),
        ("CSeq", f"{leg.cseq} {method}"),
        ("Contact", phone.contact),
        *headers,
    ]
    phone.send(build(f"{method} {target} SIP/2.0", items, body))


def refer(phone: Phone, leg: UasCall, refer_to: str, *extra: tuple[str, str]) -> Response:
    """``phone`` sends REFER in the dialog of ``leg`` (a call it answered); its answer."""
    member_request(phone, leg, "REFER", [("Refer-To", refer_to), *extra])
    return phone.response(next(s for s in (202, 400, 403, 404, 416, 491) if phone.has(s)), "REFER")


def notifies(phone: Phone, *, answer: bool = True) -> list[tuple[str, str]]:
    """The unread NOTIFYs of ``phone``: (sipfrag status line, Subscription-State); each
    answered 200 when ``answer``."""
    out: list[tuple[str, str]] = []
    while phone.has("NOTIFY"):
        notify = phone.request("NOTIFY")
        assert notify.headers.get("Event") == "refer"
        assert notify.content_type == "message/sipfrag;version=2.0"
        assert notify.headers.get("Contact")
        out.append((notify.body.decode().strip(), notify.headers.get("Subscription-State") or ""))
        if answer:
            phone.respond(notify, 200)
    return out


def order(phone: Phone) -> list[str]:
    """Requests ``phone`` received, in order (NOTIFY with its sipfrag status)."""
    out: list[str] = []
    for item in phone.log:
        message = item.message
        if isinstance(message, Request) and message.method != "ACK":
            extra = f" {message.body.decode().split()[1]}" if message.method == "NOTIFY" else ""
            out.append(message.method + extra)
    return out


# ---------------------------------------------------------------------- blind


def test_blind_transfer_to_a_pilot_notifies_then_frees_the_member() -> None:
    w = World(config(sales_music="/moh/sales.wav"))
    call, leg = w.call_alice()
    before = len(w.net.media)
    accepted = refer(w.alice, leg, f"<sip:{SALES}@{DOMAIN}>")
    assert accepted.status == 202
    assert accepted.headers.get("Refer-Sub") is None
    assert notifies(w.alice) == [("SIP/2.0 100 Trying", "active;expires=120")]
    # the core freed alice at once; the caller hears Sales' music while Sales hunts
    assert w.net.b2b.core.store.active_calls(LINE_A) == frozenset()
    music = [m for m in w.net.media[before:] if isinstance(m, PlayMusic)]
    assert music and music[0].music == "/moh/sales.wav"
    w.alice.quiet()  # no BYE yet: the NOTIFYs still need alice's dialog
    offer = w.m2.answering(w.m2.request("INVITE"))
    offer.reply(200, rtp=20002)
    w.m2.request("ACK")
    assert notifies(w.alice) == [("SIP/2.0 200 OK", "terminated;reason=noresource")]
    bye = w.alice.request("BYE")
    w.alice.respond(bye, 200)
    assert order(w.alice)[-3:] == ["NOTIFY 100", "NOTIFY 200", "BYE"]
    relay = w.net.relays[-1]
    assert relay.member_remote == (HOST, 20002)
    w.caller.quiet()  # the caller was never hung up on
    core = w.net.b2b.core
    (core_id,) = core.call_ids()
    assert core.call_state(core_id) is CoreState.CONNECTED
    assert core.group_of_call(core_id) == "Sales"
    call.bye()
    w.caller.response(200, "BYE")
    w.m2.respond(w.m2.request("BYE"), 200)
    w.net.advance(64)
    assert w.net.b2b.active_calls == 0
    assert w.net.ports_in_use == 0


def test_blind_transfer_to_a_busy_line_reports_486_and_the_caller_gets_what_it_gets() -> None:
    w = World()
    call, leg = w.call_alice()
    assert refer(w.alice, leg, f"<sip:{LINE_B}@{DOMAIN}>").status == 202
    notifies(w.alice)
    ringing = w.bob.answering(w.bob.request("INVITE"))
    ringing.reply(486)
    w.bob.request("ACK")
    assert notifies(w.alice) == [("SIP/2.0 486 Busy Here", "terminated;reason=noresource")]
    w.alice.request("BYE")
    w.caller.request("BYE")  # a line without forward_busy: the call ends
    assert w.net.b2b.active_calls == 0
    assert call.call_id


def test_blind_transfer_out_through_the_upstream_for_a_line() -> None:
    w = World(config(upstream=True))
    _call, leg = w.call_alice()
    assert refer(w.alice, leg, f"<sip:{OUTSIDE}@elsewhere.example;user=phone>").status == 202
    invite = w.upstream.request("INVITE")
    assert invite.uri.user == OUTSIDE  # type: ignore[union-attr]
    assert invite.uri.host == HOST  # type: ignore[union-attr]  # ours, not the Refer-To's
    out = w.upstream.answering(invite)
    out.reply(200, rtp=20900)
    w.upstream.request("ACK")
    assert [s for s, _ in notifies(w.alice)] == ["SIP/2.0 100 Trying", "SIP/2.0 200 OK"]
    w.alice.request("BYE")


def test_a_member_at_a_fixed_uri_may_not_transfer_out() -> None:
    cfg = config(upstream=True)
    support = cfg.groups[0].model_copy(
        update={"members": (MemberConfig(uri=member_uri(1), position=1),)}
    )
    w = World(cfg.model_copy(update={"groups": (support, cfg.groups[1])}))
    m1 = w.net.phone("m1", 7001, "m1")
    w.caller.invite(PILOT)
    leg = m1.answering(m1.request("INVITE"))
    leg.reply(200)
    m1.request("ACK")
    assert refer(m1, leg, f"<sip:{OUTSIDE}@{DOMAIN}>").status == 403
    w.upstream.quiet()
    assert refer(m1, leg, f"<sip:{SALES}@{DOMAIN}>").status == 202  # ours: allowed


def test_no_outside_transfer_without_an_upstream() -> None:
    w = World()
    _call, leg = w.call_alice()
    assert refer(w.alice, leg, f"<sip:{OUTSIDE}@{DOMAIN}>").status == 403
    w.alice.quiet()


def test_refer_from_the_callers_side_or_out_of_dialog_is_refused() -> None:
    w = World()
    call, _leg = w.call_alice()
    headers = ("Refer-To", f"<sip:{SALES}@{DOMAIN}>")
    data = call.in_dialog("REFER").replace(
        b"Content-Length", f"{headers[0]}: {headers[1]}\r\nContent-Length".encode()
    )
    w.caller.send(data)
    assert w.caller.response(403, "REFER")
    w.caller.simple("REFER", f"sip:{PILOT}@{DOMAIN}", extra=[headers])
    assert w.caller.response(403, "REFER")
    w.upstream.quiet()
    w.alice.quiet()


def test_refer_from_another_host_in_the_members_dialog_is_refused() -> None:
    w = World()
    _call, leg = w.call_alice()
    inv = leg.invite  # eve knows the dialog, and sends from 127.0.0.2
    data = build(
        f"REFER {inv.contacts[0].uri} SIP/2.0",
        [
            ("Via", "SIP/2.0/UDP 127.0.0.2:7101;branch=z9hG4bK-eve;rport"),
            ("Max-Forwards", "70"),
            ("From", f"{inv.headers.get('To')};tag={leg.tag}"),
            ("To", inv.headers.get("From") or ""),
            ("Call-ID", inv.call_id),
            ("CSeq", "500 REFER"),
            ("Refer-To", f"<sip:{OUTSIDE}@{DOMAIN}>"),
        ],
    )
    outputs = w.net.b2b.receive_datagram(data, Peer("127.0.0.2", 7101, "UDP"), now=w.net.now)
    assert b"403" in outputs[0].data.split(b"\r\n")[0]  # type: ignore[union-attr]
    w.upstream.quiet()


@pytest.mark.parametrize(
    ("refer_to", "status"),
    [
        ("<sip:@>", 400),
        ("<http://example.com/>", 416),
        (f"<sip:{DOMAIN}>", 404),
        (f"<sip:{SALES}@{DOMAIN}?Replaces=broken>", 400),
    ],
)
def test_a_bad_refer_to_is_refused_and_nothing_changes(refer_to: str, status: int) -> None:
    w = World()
    _call, leg = w.call_alice()
    assert refer(w.alice, leg, refer_to).status == status
    w.alice.quiet()
    assert w.net.b2b.core.store.active_calls(LINE_A)


def test_refer_sub_false_sends_no_notify_and_says_so() -> None:
    w = World()
    _call, leg = w.call_alice()
    accepted = refer(
        w.alice,
        leg,
        f"<sip:{SALES}@{DOMAIN}>",
        ("Refer-Sub", "false"),
        ("Require", "norefersub"),
    )
    assert accepted.status == 202
    assert accepted.headers.get("Refer-Sub") == "false"
    assert accepted.headers.get("Supported") == "norefersub"
    offer = w.m2.answering(w.m2.request("INVITE"))
    offer.reply(200)
    w.m2.request("ACK")
    assert order(w.alice)[-1] == "BYE"
    assert "NOTIFY" not in " ".join(order(w.alice))


def test_the_caller_hanging_up_during_the_transfer_is_reported_487() -> None:
    w = World()
    call, leg = w.call_alice()
    refer(w.alice, leg, f"<sip:{SALES}@{DOMAIN}>")
    notifies(w.alice)
    w.m2.request("INVITE")
    call.bye()
    assert notifies(w.alice) == [("SIP/2.0 487 Request Terminated", "terminated;reason=noresource")]
    w.alice.request("BYE")
    assert w.net.b2b.active_calls == 0


def test_a_transfer_not_settled_in_time_ends_its_subscription() -> None:
    w = World()
    _call, leg = w.call_alice()
    refer(w.alice, leg, f"<sip:{LINE_B}@{DOMAIN}>")
    notifies(w.alice)
    w.bob.answering(w.bob.request("INVITE")).reply(180)
    w.net.advance(119)
    w.alice.quiet()
    w.net.advance(2)
    assert notifies(w.alice) == [("SIP/2.0 100 Trying", "terminated;reason=timeout")]
    w.alice.request("BYE")
    assert w.net.b2b.active_calls == 1  # the call itself goes on ringing bob


def test_the_transferor_hanging_up_first_is_fine() -> None:
    w = World()
    _call, leg = w.call_alice()
    refer(w.alice, leg, f"<sip:{SALES}@{DOMAIN}>")
    notifies(w.alice)
    leg.bye()
    w.alice.response(200, "BYE")
    offer = w.m2.answering(w.m2.request("INVITE"))
    offer.reply(200)
    w.m2.request("ACK")
    w.alice.quiet()  # neither NOTIFY nor BYE to a dialog that is gone
    w.caller.quiet()
    assert w.net.b2b.active_calls == 1


def test_a_notify_refused_by_the_transferor_ends_the_subscription() -> None:
    w = World()
    _call, leg = w.call_alice()
    refer(w.alice, leg, f"<sip:{SALES}@{DOMAIN}>")
    w.alice.respond(w.alice.request("NOTIFY"), 481)
    offer = w.m2.answering(w.m2.request("INVITE"))
    offer.reply(200)
    w.m2.request("ACK")
    assert order(w.alice)[-2:] == ["NOTIFY 100", "BYE"]  # no NOTIFY 200, the BYE all the same


def test_a_second_refer_after_the_transfer_is_refused() -> None:
    w = World()
    _call, leg = w.call_alice()
    refer(w.alice, leg, f"<sip:{SALES}@{DOMAIN}>")
    assert refer(w.alice, leg, f"<sip:{LINE_B}@{DOMAIN}>").status == 403


# ------------------------------------------------------------- the caller's side


def caller_sends(call: UacCall, method: str, *headers: tuple[str, str]) -> None:
    data = call.in_dialog(method)
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers)
    call.phone.send(data.replace(b"Content-Length", f"{extra}Content-Length".encode()))


def bob_calls_alice(w: World) -> tuple[UacCall, UasCall]:
    """Line B (authenticated: it calls from where it registered) calls Support."""
    call = w.bob.invite(PILOT, rtp=30102)
    leg = w.alice.answering(w.alice.request("INVITE"))
    leg.reply(200, rtp=20101)
    w.alice.request("ACK")
    call.ack(w.bob.response(200))
    w.bob.drop()
    return call, leg


def test_an_authenticated_caller_refer_is_passed_on_to_the_member_and_notifies_come_back() -> None:
    w = World()
    call, leg = bob_calls_alice(w)
    caller_sends(call, "REFER", ("Refer-To", f"<sip:{SALES}@evil.example>"))
    passed = w.alice.request("REFER")
    assert passed.headers.get("Refer-To") == f"<sip:{SALES}@{DOMAIN}>"  # through us
    assert passed.headers.get("Referred-By") == f"<sip:{LINE_B}@{DOMAIN}>"
    w.alice.respond(passed, 202)
    assert w.bob.response(202, "REFER")
    frag = b"SIP/2.0 200 OK\r\n"
    member_request(
        w.alice,
        leg,
        "NOTIFY",
        [
            ("Event", "refer;id=2"),  # the CSeq of the REFER the member got
            ("Subscription-State", "terminated;reason=noresource"),
            ("Content-Type", "message/sipfrag;version=2.0"),
        ],
        frag,
    )
    notify = w.bob.request("NOTIFY")
    assert notify.body == frag
    assert notify.headers.get("Event") == f"refer;id={call.cseq}"  # the caller's REFER
    assert notify.headers.get("Subscription-State") == "terminated;reason=noresource"
    assert notify.content_type == "message/sipfrag;version=2.0"
    w.bob.respond(notify, 200)
    assert w.alice.response(200, "NOTIFY")
    leg.bye()  # the member's phone hangs up once its own call to Sales is up
    w.bob.request("BYE")
    assert w.net.b2b.active_calls == 0


@pytest.mark.parametrize(
    ("refer_to", "status"),
    [
        (f"<sip:{OUTSIDE}@{DOMAIN}>", 403),  # no upstream: nothing goes out
        ("<sip:@>", 400),
    ],
)
def test_a_caller_refer_that_may_not_be_passed_on(refer_to: str, status: int) -> None:
    w = World()
    call, _leg = bob_calls_alice(w)
    caller_sends(call, "REFER", ("Refer-To", refer_to))
    assert w.bob.response(status, "REFER")
    w.alice.quiet()


def test_a_caller_refer_from_another_host_is_refused() -> None:
    w = World()
    call, _leg = bob_calls_alice(w)
    data = call.in_dialog("REFER").replace(
        b"Content-Length", f"Refer-To: <sip:{SALES}@{DOMAIN}>\r\nContent-Length".encode()
    )
    outputs = w.net.b2b.receive_datagram(data, Peer("127.0.0.2", 7102, "UDP"), now=w.net.now)
    assert b" 403 " in outputs[0].data.split(b"\r\n")[0]  # type: ignore[union-attr]
    w.alice.quiet()


def test_a_notify_nobody_asked_for_gets_481() -> None:
    w = World()
    _call, leg = w.call_alice()
    member_request(w.alice, leg, "NOTIFY", [("Event", "refer")])
    assert w.alice.response(481, "NOTIFY")
    w.caller.quiet()


# ------------------------------------------------------------------- attended


def consult(w: World, phone: Phone | None = None, *, rtp: int = 30101) -> tuple[UacCall, UasCall]:
    """``phone`` (a line; alice by default) calls Sales itself; m2 answers: the
    consultation call."""
    phone = phone or w.alice
    consultation = phone.invite(SALES, rtp=rtp)
    m2_leg = w.m2.answering(w.m2.request("INVITE"))
    m2_leg.reply(200, rtp=20002)
    w.m2.request("ACK")
    consultation.ack(phone.response(200))
    return consultation, m2_leg


def replaces_uri(consultation: UacCall, *, swap: bool = False, extra: str = "") -> str:
    to_tag, from_tag = consultation.remote_tag, consultation.from_tag
    if swap:
        to_tag, from_tag = from_tag, to_tag
    cid = consultation.call_id.replace("@", "%40")
    return (
        f"<sip:{SALES}@{DOMAIN}?Replaces={cid}%3Bto-tag%3D{to_tag}%3Bfrom-tag%3D{from_tag}{extra}>"
    )


def blind_transfer_to_sales(w: World, leg: UasCall) -> None:
    """alice, on ``leg``, blind-transfers the caller to the Sales pilot: m2 answers, the
    NOTIFYs come and go, alice's dialog ends."""
    assert refer(w.alice, leg, f"<sip:{SALES}@{DOMAIN}>").status == 202
    notifies(w.alice)
    offer = w.m2.answering(w.m2.request("INVITE"))
    offer.reply(200, rtp=20002)
    w.m2.request("ACK")
    notifies(w.alice)
    w.alice.respond(w.alice.request("BYE"), 200)


def join_m2(w: World, leg: UasCall) -> tuple[UacCall, UasCall]:
    """alice, on ``leg``, consults m2 on Sales and REFERs the caller to it: her
    consultation call ends and m2's leg (returned with the consultation call) is
    re-INVITEd onto the caller's call, answered and ACKed."""
    consultation, m2_leg = consult(w)
    assert refer(w.alice, leg, replaces_uri(consultation)).status == 202
    w.alice.respond(w.alice.request("BYE"), 200)
    reinvite = w.m2.request("INVITE")
    w.m2.respond(reinvite, 200, to_tag=m2_leg.tag, body=sdp(20002, session=2))
    w.m2.request("ACK")
    return consultation, m2_leg


def attended_transfer(w: World, leg: UasCall) -> UacCall:
    """:func:`join_m2`, then alice's NOTIFYs and her first call's end: returns the
    consultation call."""
    consultation, _ = join_m2(w, leg)
    notifies(w.alice)
    w.alice.respond(w.alice.request("BYE"), 200)
    return consultation


def caller_hangs_up_on_m2(w: World, call: UacCall) -> None:
    """The transferred caller hangs up; m2, the member it talked to, gets the BYE."""
    call.bye()
    w.caller.response(200, "BYE")
    w.m2.respond(w.m2.request("BYE"), 200)


@pytest.mark.parametrize("swap", [False, True])
def test_attended_transfer_joins_the_caller_with_the_consulted_member(swap: bool) -> None:
    w = World()
    call, leg = w.call_alice()
    consultation, m2_leg = consult(w)
    core = w.net.b2b.core
    assert refer(w.alice, leg, replaces_uri(consultation, swap=swap)).status == 202
    # alice's consultation call ends; m2 is re-INVITEd toward call 1's member port
    bye = w.alice.request("BYE")
    assert bye.call_id == consultation.call_id
    w.alice.respond(bye, 200)
    reinvite = w.m2.request("INVITE")
    assert reinvite.call_id == m2_leg.invite.call_id
    assert b"m=audio" in reinvite.body
    w.m2.respond(reinvite, 200, to_tag=m2_leg.tag, body=sdp(20002, session=2))
    w.m2.request("ACK")
    first: StartRelay = w.net.relays[0]  # call 1, the caller with alice
    assert f"m=audio {first.member_port} ".encode() in reinvite.body  # call 1's member port
    relay = w.net.relays[-1]
    assert (relay.session, relay.caller_port) == (first.session, first.caller_port)
    assert relay.member_remote == (HOST, 20002)
    assert [s for s, _ in notifies(w.alice)] == ["SIP/2.0 100 Trying", "SIP/2.0 200 OK"]
    final_bye = w.alice.request("BYE")
    assert final_bye.call_id == leg.invite.call_id
    w.caller.quiet()
    # the core: alice freed, m2 on the joined call, one call left
    assert core.store.active_calls(LINE_A) == frozenset()
    (joined,) = core.call_ids()
    assert core.store.active_calls(member_uri(2)) == frozenset({joined})
    # the caller and m2 talk; the caller hangs up, m2 gets BYE in its own dialog
    call.bye()
    w.caller.response(200, "BYE")
    m2_bye = w.m2.request("BYE")
    assert m2_bye.call_id == m2_leg.invite.call_id
    w.m2.respond(m2_bye, 200)
    w.net.advance(64)
    assert w.net.b2b.active_calls == 0
    assert w.net.ports_in_use == 0
    assert core.call_ids() == []


def test_attended_transfer_naming_an_unknown_dialog_gets_notify_481_and_nothing_changes() -> None:
    w = World()
    _call, leg = w.call_alice()
    relays = len(w.net.relays)
    uri = f"<sip:{SALES}@{DOMAIN}?Replaces=nope%40x%3Bto-tag%3D1%3Bfrom-tag%3D2>"
    assert refer(w.alice, leg, uri).status == 202
    assert notifies(w.alice) == [
        ("SIP/2.0 481 Call/Transaction Does Not Exist", "terminated;reason=noresource")
    ]
    w.alice.quiet()
    w.caller.quiet()
    assert len(w.net.relays) == relays
    assert w.net.b2b.core.store.active_calls(LINE_A)
    # and a later blind transfer still works
    assert refer(w.alice, leg, f"<sip:{SALES}@{DOMAIN}>").status == 202


def test_attended_transfer_to_a_consultation_not_answered_yet_gets_481() -> None:
    w = World()
    _call, leg = w.call_alice()
    consultation = w.alice.invite(SALES, rtp=30101)
    w.m2.answering(w.m2.request("INVITE")).reply(180)
    ringing = w.alice.response(180)
    consultation.remote_tag = ringing.to.tag
    assert refer(w.alice, leg, replaces_uri(consultation)).status == 202
    assert [s for s, _ in notifies(w.alice)] == ["SIP/2.0 481 Call/Transaction Does Not Exist"]


def test_attended_transfer_early_only_on_an_answered_dialog_gets_486() -> None:
    w = World()
    _call, leg = w.call_alice()
    consultation, _ = consult(w)
    assert refer(w.alice, leg, replaces_uri(consultation, extra="%3Bearly-only")).status == 202
    assert [s for s, _ in notifies(w.alice)] == ["SIP/2.0 486 Busy Here"]


def test_replaces_naming_someone_elses_dialog_is_as_unknown() -> None:
    w = World()
    _call, leg = w.call_alice()
    consultation = w.bob.invite(SALES, rtp=30102)  # bob's call, not alice's
    m2_leg = w.m2.answering(w.m2.request("INVITE"))
    m2_leg.reply(200)
    w.m2.request("ACK")
    consultation.ack(w.bob.response(200))
    w.bob.drop()
    assert refer(w.alice, leg, replaces_uri(consultation)).status == 202
    assert [s for s, _ in notifies(w.alice)] == ["SIP/2.0 481 Call/Transaction Does Not Exist"]
    w.bob.quiet()
    w.m2.quiet()


@pytest.mark.parametrize(
    ("replaces", "status"),
    [
        (None, 403),  # a dialog of ours: calls are joined by REFER only
        ("nope@x;to-tag=1;from-tag=2", 481),
        ("nope@x;to-tag=1", 400),
    ],
)
def test_an_invite_with_replaces_never_becomes_a_new_call(
    replaces: str | None, status: int
) -> None:
    w = World()
    call, _leg = w.call_alice()
    value = replaces or f"{call.call_id};to-tag={call.remote_tag};from-tag={call.from_tag}"
    other = w.bob.invite(SALES, extra=[("Replaces", value)])
    other.ack_failure(w.bob.response(status))
    w.m2.quiet()  # Sales was never rung
    assert w.net.b2b.active_calls == 1


# ---------------------------------------------------------------- direct media


def music_offer_port(body: bytes) -> int:
    """The port of our re-INVITE moving a phone onto the music (``a=sendonly``, ours)."""
    offer = parse_sdp(body)
    assert offer.origin.username == "huntgroup"
    assert offer.media[0].direction(offer.direction) == "sendonly"
    endpoint = audio_endpoint(offer)
    assert endpoint is not None and endpoint[0] == HOST
    return endpoint[1]


def test_direct_media_blind_transfer_plays_the_targets_music_then_goes_end_to_end() -> None:
    w = World(config(sales_music="/moh/sales.wav"), media_mode="direct")
    call, leg = w.call_alice()
    assert not w.net.relays and w.net.ports_in_use == 0  # end to end with alice
    refer(w.alice, leg, f"<sip:{SALES}@{DOMAIN}>")
    # the caller is moved onto a port of ours, and hears Sales' music there
    onto_music = w.caller.request("INVITE")
    port = music_offer_port(onto_music.body)
    assert w.net.ports_in_use == 2
    recvonly = sdp(10000).replace(b"sendrecv", b"recvonly")
    w.caller.respond(onto_music, 200, to_tag=call.from_tag, body=recvonly)
    w.caller.request("ACK")
    music = w.net.music[-1]
    assert (music.port, music.remote, music.music) == (port, (HOST, 10000), "/moh/sales.wav")
    invite = w.m2.request("INVITE")
    assert audio_endpoint(parse_sdp(invite.body)) == (HOST, 10000)  # the caller's own RTP
    w.m2.answering(invite).reply(200, rtp=20002)
    w.m2.request("ACK")
    relay = w.net.relays[-1]  # the caller's audio reaches m2 until the switch
    assert (relay.caller_port, relay.member_remote) == (port, (HOST, 20002))
    reinvite = w.caller.request("INVITE")  # the caller learns where m2 wants its RTP
    assert audio_endpoint(parse_sdp(reinvite.body)) == (HOST, 20002)
    assert parse_sdp(reinvite.body).origin.username == "huntgroup"
    w.caller.respond(reinvite, 200, to_tag=call.from_tag, body=sdp(10000))
    w.caller.request("ACK")
    assert [s for s, _ in notifies(w.alice)] == ["SIP/2.0 100 Trying", "SIP/2.0 200 OK"]
    w.alice.request("BYE")
    assert w.net.ports_in_use == 0  # end to end again


def test_direct_media_a_caller_offering_anew_meanwhile_is_answered_from_the_music_port() -> None:
    w = World(media_mode="direct")
    call, leg = w.call_alice()
    refer(w.alice, leg, f"<sip:{SALES}@{DOMAIN}>")
    onto_music = w.caller.request("INVITE")
    port = music_offer_port(onto_music.body)
    recvonly = sdp(10000).replace(b"sendrecv", b"recvonly")
    w.caller.respond(onto_music, 200, to_tag=call.from_tag, body=recvonly)
    w.caller.request("ACK")
    version = parse_sdp(onto_music.body).origin.session_version
    call.reinvite(sdp(10006))  # a refresh, the caller's RTP moved
    answer = parse_sdp(w.caller.response(200).body)
    assert audio_endpoint(answer) == (HOST, port), "the port it was moved onto"
    assert answer.origin.session_version == version + 1
    assert w.net.music[-1].remote == (HOST, 10006)  # the music follows the caller
    m2_leg = w.m2.answering(w.m2.request("INVITE"))  # rung before the caller moved
    m2_leg.reply(200, rtp=20002)
    w.m2.request("ACK")
    reinvite = w.caller.request("INVITE")
    w.caller.respond(reinvite, 200, to_tag=call.from_tag, body=sdp(10006))
    w.caller.request("ACK")
    told = w.m2.request("INVITE")  # m2 learns where the caller is now
    assert audio_endpoint(parse_sdp(told.body)) == (HOST, 10006)


def test_direct_media_the_target_answering_before_the_caller_moved_to_the_music() -> None:
    w = World(media_mode="direct")
    call, leg = w.call_alice()
    refer(w.alice, leg, f"<sip:{SALES}@{DOMAIN}>")
    onto_music = w.caller.request("INVITE")
    w.m2.answering(w.m2.request("INVITE")).reply(200, rtp=20002)
    w.m2.request("ACK")
    w.caller.respond(onto_music, 200, to_tag=call.from_tag, body=sdp(10000))
    w.caller.request("ACK")
    assert isinstance(w.net.media[-1], StartRelay)  # bridged: no music any more
    w.net.advance(1.01)  # the re-INVITE toward m2 waited for ours to be answered
    reinvite = w.caller.request("INVITE")
    assert audio_endpoint(parse_sdp(reinvite.body)) == (HOST, 20002)
    w.caller.respond(reinvite, 200, to_tag=call.from_tag, body=sdp(10000))
    w.caller.request("ACK")
    assert w.net.ports_in_use == 0


def test_direct_media_a_transfer_with_no_port_free_leaves_the_caller_in_silence() -> None:
    w = World(media_mode="direct")
    call, leg = w.call_alice()
    planner = w.net.b2b.media
    taken = [planner.ports.allocate() for _ in range(planner.ports.available)]
    refer(w.alice, leg, f"<sip:{SALES}@{DOMAIN}>")
    w.caller.quiet()  # not moved: nowhere to move it to
    for port in taken:
        planner.ports.release(port)
    w.m2.answering(w.m2.request("INVITE")).reply(200, rtp=20002)
    w.m2.request("ACK")
    reinvite = w.caller.request("INVITE")  # end to end with m2 straight away
    assert audio_endpoint(parse_sdp(reinvite.body)) == (HOST, 20002)
    w.caller.respond(reinvite, 200, to_tag=call.from_tag, body=sdp(10000))
    w.caller.request("ACK")
    assert w.net.ports_in_use == 0


@pytest.mark.parametrize("media_mode", ["relay", "direct"])
def test_a_member_that_held_before_its_blind_transfer_leaves_no_hold_behind(
    media_mode: MediaMode,
) -> None:
    w = World(media_mode=media_mode)
    call, leg = w.call_alice()
    w.alice.send(leg.in_dialog("INVITE", body=sdp(20101).replace(b"sendrecv", b"sendonly")))
    w.alice.response(200)
    if media_mode == "direct":  # the caller was moved onto the music of the hold
        onto_music = w.caller.request("INVITE")
        recvonly = sdp(10000).replace(b"sendrecv", b"recvonly")
        w.caller.respond(onto_music, 200, to_tag=call.from_tag, body=recvonly)
        w.caller.request("ACK")
    refer(w.alice, leg, f"<sip:{SALES}@{DOMAIN}>")
    w.m2.answering(w.m2.request("INVITE")).reply(200, rtp=20002)
    w.m2.request("ACK")
    relay = w.net.media[-1]
    assert isinstance(relay, StartRelay), "the caller and m2 talk: no music of a hold"
    assert relay.member_remote == (HOST, 20002)


def test_direct_media_attended_transfer_gives_each_side_the_others_media() -> None:
    w = World(media_mode="direct")
    call, leg = w.call_alice()
    consultation, m2_leg = consult(w)
    assert refer(w.alice, leg, replaces_uri(consultation)).status == 202
    w.alice.respond(w.alice.request("BYE"), 200)
    reinvite = w.m2.request("INVITE")
    assert audio_endpoint(parse_sdp(reinvite.body)) == (HOST, 10000)  # the caller's RTP
    w.m2.respond(reinvite, 200, to_tag=m2_leg.tag, body=sdp(20002, session=2))
    w.m2.request("ACK")
    toward_caller = w.caller.request("INVITE")
    assert audio_endpoint(parse_sdp(toward_caller.body)) == (HOST, 20002)
    w.caller.respond(toward_caller, 200, to_tag=call.from_tag, body=sdp(10000))
    w.caller.request("ACK")
    assert [s for s, _ in notifies(w.alice)] == ["SIP/2.0 100 Trying", "SIP/2.0 200 OK"]
    w.alice.request("BYE")


@pytest.mark.parametrize("refusals", [1, 2])
def test_direct_media_a_glare_on_the_callers_re_invite_after_a_join_is_retried(
    refusals: int,
) -> None:
    """The caller learns where the joined member wants its RTP even when its phone
    answers our re-INVITE 491 (RFC 3261 §14.1: retried after 0-2 s, media end to end)."""
    w = World(media_mode="direct")
    call, leg = w.call_alice()
    join_m2(w, leg)
    for _ in range(refusals):
        w.caller.respond(w.caller.request("INVITE"), 491, to_tag=call.from_tag)
        w.caller.request("ACK")
        w.net.advance(2.01)
    toward_caller = w.caller.request("INVITE")
    assert audio_endpoint(parse_sdp(toward_caller.body)) == (HOST, 20002)
    w.caller.respond(toward_caller, 200, to_tag=call.from_tag, body=sdp(10000))
    w.caller.request("ACK")
    assert [s for s, _ in notifies(w.alice)] == ["SIP/2.0 100 Trying", "SIP/2.0 200 OK"]
    w.alice.request("BYE")
    assert w.net.ports_in_use == 0


def test_direct_media_a_caller_moving_its_media_after_a_join_re_invites_the_member() -> None:
    w = World(media_mode="direct")
    call, leg = w.call_alice()
    _, m2_leg = join_m2(w, leg)
    toward_caller = w.caller.request("INVITE")
    w.caller.respond(toward_caller, 200, to_tag=call.from_tag, body=sdp(10004))  # moved
    w.caller.request("ACK")
    toward_m2 = w.m2.request("INVITE")  # m2 learns where the caller wants its RTP now
    assert toward_m2.call_id == m2_leg.invite.call_id
    assert audio_endpoint(parse_sdp(toward_m2.body)) == (HOST, 10004)
    w.m2.respond(toward_m2, 200, to_tag=m2_leg.tag, body=sdp(20002, session=2))
    w.m2.request("ACK")
    w.caller.quiet()


# ----------------------------------------------------- attended, the caller's side


def bob_consults_sales(w: World) -> tuple[UacCall, UasCall]:
    """Line B calls Sales too (call 2, the consultation); m2 answers."""
    consultation, m2_leg = consult(w, w.bob, rtp=30104)
    w.bob.drop()
    return consultation, m2_leg


def caller_joins(w: World, call: UacCall, consultation: UacCall) -> None:
    """Line B sends REFER with Replaces naming call 2 in call 1: accepted (202), call 2
    ends (our BYE, answered)."""
    caller_sends(call, "REFER", ("Refer-To", replaces_uri(consultation)))
    assert w.bob.response(202, "REFER")
    bye = w.bob.request("BYE")
    assert bye.call_id == consultation.call_id
    w.bob.respond(bye, 200)


def test_a_callers_attended_transfer_joins_its_two_members() -> None:
    w = World()
    call, alice_leg = bob_calls_alice(w)
    consultation, m2_leg = bob_consults_sales(w)
    core = w.net.b2b.core
    c1, c2 = core.store.active_calls(LINE_A), core.store.active_calls(member_uri(2))
    first: StartRelay = w.net.relays[0]  # call 1: bob with alice
    caller_joins(w, call, consultation)
    reinvite = w.m2.request("INVITE")  # m2, in its own dialog, onto call 1's caller port
    assert reinvite.call_id == m2_leg.invite.call_id
    assert audio_endpoint(parse_sdp(reinvite.body)) == (HOST, first.caller_port)
    assert parse_sdp(reinvite.body).origin.session_version == 2  # m2's o= session, one up
    assert reinvite.headers.get("Session-Expires")  # a re-INVITE refreshes the session
    w.alice.quiet()  # alice keeps talking to our member port: nothing to tell her
    w.m2.respond(reinvite, 200, to_tag=m2_leg.tag, body=sdp(20002, session=2))
    w.m2.request("ACK")
    relay = w.net.relays[-1]
    assert (relay.session, relay.caller_port, relay.member_port) == (
        first.session,
        first.caller_port,
        first.member_port,
    )
    assert (relay.caller_remote, relay.member_remote) == ((HOST, 20002), (HOST, 20101))
    assert [s for s, _ in notifies(w.bob)] == ["SIP/2.0 100 Trying", "SIP/2.0 200 OK"]
    final_bye = w.bob.request("BYE")
    assert final_bye.call_id == call.call_id
    w.bob.respond(final_bye, 200)
    # m2 is the caller's side now, and no line of ours: it may not transfer the call
    assert refer(w.m2, m2_leg, f"<sip:{LINE_B}@{DOMAIN}>").status == 403
    # the core: both members still on their calls, line B on none
    assert core.store.active_calls(LINE_A) == c1 and core.store.active_calls(member_uri(2)) == c2
    assert core.store.active_calls(LINE_B) == frozenset()
    # m2 hangs up: alice gets BYE in her own dialog; both calls end in the core
    m2_leg.bye()
    assert w.m2.response(200, "BYE")
    alice_bye = w.alice.request("BYE")
    assert alice_bye.call_id == alice_leg.invite.call_id
    w.alice.respond(alice_bye, 200)
    w.net.advance(64)
    assert w.net.b2b.active_calls == 0 and w.net.ports_in_use == 0
    assert core.call_ids() == []
    assert all(size == 0 for size in w.net.b2b.index.sizes().values())


def test_direct_media_a_callers_attended_transfer_gives_each_member_the_others_media() -> None:
    w = World(media_mode="direct")
    call, alice_leg = bob_calls_alice(w)
    consultation, m2_leg = bob_consults_sales(w)
    assert w.net.ports_in_use == 0
    caller_joins(w, call, consultation)
    toward_m2 = w.m2.request("INVITE")
    assert audio_endpoint(parse_sdp(toward_m2.body)) == (HOST, 20101)  # alice's RTP
    w.m2.respond(toward_m2, 200, to_tag=m2_leg.tag, body=sdp(20002, session=2))
    w.m2.request("ACK")
    toward_alice = w.alice.request("INVITE")  # and alice learns m2's
    assert toward_alice.call_id == alice_leg.invite.call_id
    offered = parse_sdp(toward_alice.body)
    assert audio_endpoint(offered) == (HOST, 20002)
    assert offered.origin.username == "huntgroup" and offered.origin.session_version > 1
    w.alice.respond(toward_alice, 200, to_tag=alice_leg.tag, body=sdp(20101))
    w.alice.request("ACK")
    assert [s for s, _ in notifies(w.bob)] == ["SIP/2.0 100 Trying", "SIP/2.0 200 OK"]
    w.bob.respond(w.bob.request("BYE"), 200)
    w.m2.quiet()
    assert w.net.ports_in_use == 0 and not w.net.relays
    alice_leg.bye()
    w.m2.respond(w.m2.request("BYE"), 200)
    assert w.net.b2b.active_calls == 0


def test_a_callers_attended_transfer_refused_by_the_consulted_member_ends_the_joined_call() -> None:
    w = World()
    call, _alice_leg = bob_calls_alice(w)
    consultation, m2_leg = bob_consults_sales(w)
    caller_joins(w, call, consultation)
    w.m2.respond(w.m2.request("INVITE"), 488, to_tag=m2_leg.tag)
    w.m2.request("ACK")
    assert [s for s, _ in notifies(w.bob)][-1] == "SIP/2.0 488 Not Acceptable Here"
    w.bob.respond(w.bob.request("BYE"), 200)
    w.m2.respond(w.m2.request("BYE"), 200)
    w.alice.respond(w.alice.request("BYE"), 200)
    w.net.advance(64)
    assert w.net.b2b.active_calls == 0 and w.net.b2b.core.call_ids() == []


def test_a_callers_transferor_hanging_up_after_the_202_does_not_stop_the_join() -> None:
    w = World()
    call, _alice_leg = bob_calls_alice(w)
    consultation, m2_leg = bob_consults_sales(w)
    caller_joins(w, call, consultation)
    call.bye()
    assert w.bob.response(200, "BYE")
    reinvite = w.m2.request("INVITE")
    w.m2.respond(reinvite, 200, to_tag=m2_leg.tag, body=sdp(20002, session=2))
    w.m2.request("ACK")
    assert w.net.relays[-1].caller_remote == (HOST, 20002)
    w.bob.drop()
    w.bob.quiet()  # no NOTIFY, no BYE to a dialog that is gone
    assert w.net.b2b.active_calls == 1


def bob_holds(w: World, call: UacCall) -> None:
    """Line B puts call 1 on hold (answered here), as phones do before consulting."""
    call.reinvite(sdp(30102).replace(b"sendrecv", b"sendonly"))
    call.ack(w.bob.response(200))


def test_a_callers_hold_before_its_attended_transfer_ends_with_it() -> None:
    w = World()
    call, _alice_leg = bob_calls_alice(w)
    bob_holds(w, call)
    assert isinstance(w.net.media[-1], PlayMusic)  # alice hears the music of the hold
    consultation, m2_leg = bob_consults_sales(w)
    caller_joins(w, call, consultation)
    w.m2.respond(w.m2.request("INVITE"), 200, to_tag=m2_leg.tag, body=sdp(20002, session=2))
    w.m2.request("ACK")
    relay = w.net.media[-1]
    assert isinstance(relay, StartRelay), "alice and m2 talk: no music"
    assert (relay.caller_remote, relay.member_remote) == ((HOST, 20002), (HOST, 20101))


def test_direct_media_a_callers_hold_before_its_attended_transfer_then_end_to_end() -> None:
    w = World(media_mode="direct")
    call, alice_leg = bob_calls_alice(w)
    bob_holds(w, call)
    onto_music = w.alice.request("INVITE")  # alice moved onto our music port
    recvonly = sdp(20101).replace(b"sendrecv", b"recvonly")
    w.alice.respond(onto_music, 200, to_tag=alice_leg.tag, body=recvonly)
    w.alice.request("ACK")
    consultation, m2_leg = bob_consults_sales(w)
    caller_joins(w, call, consultation)
    toward_m2 = w.m2.request("INVITE")  # our caller port of call 1: alice is anchored there
    ours = audio_endpoint(parse_sdp(toward_m2.body))
    assert ours is not None and ours[0] == HOST and ours[1] >= 40000, "a port of ours"
    w.m2.respond(toward_m2, 200, to_tag=m2_leg.tag, body=sdp(20002, session=2))
    w.m2.request("ACK")
    toward_alice = w.alice.request("INVITE")  # alice: end to end with m2, sendrecv again
    assert audio_endpoint(parse_sdp(toward_alice.body)) == (HOST, 20002)
    w.alice.respond(toward_alice, 200, to_tag=alice_leg.tag, body=sdp(20101))
    w.alice.request("ACK")
    again = w.m2.request("INVITE")  # and m2 learns alice's own address
    assert audio_endpoint(parse_sdp(again.body)) == (HOST, 20101)
    w.m2.respond(again, 200, to_tag=m2_leg.tag, body=sdp(20002, session=2))
    w.m2.request("ACK")
    assert w.net.ports_in_use == 0, "end to end: our ports went back"


@pytest.mark.parametrize("case", ["unknown", "not its own", "early", "early-only"])
def test_a_callers_attended_transfer_that_cannot_join_notifies_why(case: str) -> None:
    w = World()
    call, _alice_leg = bob_calls_alice(w)
    expected = "SIP/2.0 481 Call/Transaction Does Not Exist"
    if case == "unknown":
        uri = f"<sip:{SALES}@{DOMAIN}?Replaces=nope%40x%3Bto-tag%3D1%3Bfrom-tag%3D2>"
    elif case == "not its own":  # the caller's call 1 itself, seen from alice's side
        other = w.caller.invite(SALES, rtp=10000)
        leg = w.m2.answering(w.m2.request("INVITE"))
        leg.reply(200)
        w.m2.request("ACK")
        other.ack(w.caller.response(200))
        uri = replaces_uri(other)
    elif case == "early":
        ringing = w.bob.invite(SALES, rtp=30104)
        w.m2.answering(w.m2.request("INVITE")).reply(180)
        ringing.remote_tag = w.bob.response(180).to.tag
        uri = replaces_uri(ringing)
    else:
        consultation, _ = bob_consults_sales(w)
        uri = replaces_uri(consultation, extra="%3Bearly-only")
        expected = "SIP/2.0 486 Busy Here"
    caller_sends(call, "REFER", ("Refer-To", uri))
    assert w.bob.response(202, "REFER")
    assert notifies(w.bob) == [(expected, "terminated;reason=noresource")]
    assert not w.bob.has("BYE")
    w.alice.quiet()
    assert w.net.b2b.core.store.active_calls(LINE_B)  # nothing changed


# ---------------------------------------------------------------------- hostile

_PIECE = st.text("0123456789%;=@-.abXY3BD", max_size=12)
HOSTILE_REFER_TO = st.one_of(
    st.text(max_size=120).map(lambda t: t.replace("\r", "").replace("\n", "")),
    st.builds(lambda u: f"<sip:{u}@{DOMAIN}>", st.text("0123456789+*#%-.()ab", max_size=16)),
    st.builds(lambda u: f"tel:{u}", st.text("0123456789+-.", min_size=1, max_size=16)),
    st.builds(
        lambda cid, a, b, tail: (
            f"<sip:{SALES}@{DOMAIN}?Replaces={cid}%3Bto-tag%3D{a}%3Bfrom-tag%3D{b}{tail}>"
        ),
        _PIECE,
        _PIECE,
        _PIECE,
        st.sampled_from(["", "%3Bearly-only", "%3Bearly-only%3Dx", "&Replaces=x", "%FF", "%3B"]),
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=HOSTILE_REFER_TO)
def test_any_refer_to_gets_a_final_answer_and_no_internal_error(value: str) -> None:
    w = World(config(upstream=True))
    _call, leg = w.call_alice()
    inv = leg.invite
    leg.cseq += 1
    w.alice.send(
        build(
            f"REFER {inv.contacts[0].uri} SIP/2.0",
            [
                ("Via", w.alice.via(w.alice.branch())),
                ("Max-Forwards", "70"),
                ("From", f"{inv.headers.get('To')};tag={leg.tag}"),
                ("To", inv.headers.get("From") or ""),
                ("Call-ID", inv.call_id),
                ("CSeq", f"{leg.cseq} REFER"),
                ("Refer-To", value),
            ],
        )
    )
    replies = (r.message for r in w.alice.log)
    answers = [m for m in replies if isinstance(m, Response) and m.cseq.method == "REFER"]
    if answers:  # a value the parser refuses as a message is dropped or answered 400 there
        assert answers[-1].status in (202, 400, 403, 404, 416)
    assert w.net.b2b.counters.internal_errors == 0
    assert w.net.b2b.counters.request_errors == 0 or answers[-1].status == 400


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=HOSTILE_REFER_TO)
def test_any_refer_to_from_the_callers_side_gets_a_final_answer(value: str) -> None:
    w = World()
    call, _leg = bob_calls_alice(w)
    consultation, _m2_leg = bob_consults_sales(w)
    if "Replaces=" in value:  # now and then, the right dialog in a hostile tail
        value = value.replace("Replaces=", f"Replaces={consultation.call_id}%3B", 1)
    data = call.in_dialog("REFER")
    w.bob.send(data.replace(b"Content-Length", f"Refer-To: {value}\r\nContent-Length".encode()))
    replies = (r.message for r in w.bob.log)
    answers = [m for m in replies if isinstance(m, Response) and m.cseq.method == "REFER"]
    if answers:
        assert answers[-1].status in (202, 400, 403, 404, 416)
    assert w.net.b2b.counters.internal_errors == 0
