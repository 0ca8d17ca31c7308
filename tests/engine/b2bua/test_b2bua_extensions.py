"""Option tags at the B2BUA (RFC 3261 §8.2.2.3, RFC 3262, RFC 4028): 420 Bad Extension with
``Unsupported``, what ``Supported`` says in our responses and INVITEs, a member's unasked
reliable provisional."""

from __future__ import annotations

from huntgroup.engine.sip.extensions import SUPPORTED, option_tags
from huntgroup.engine.sip.message import Message
from tests.support.b2bua_peers import (
    CALLER_NUMBER,
    DOMAIN,
    PILOT,
    Network,
    UacCall,
    UasCall,
    build,
    make_config,
    sdp,
)


def tags(message: Message, header: str) -> set[str]:
    return {t.lower() for t in option_tags(message, header)}


def world() -> Network:
    net = Network(make_config("linear"))
    net.phone("caller", 6000, CALLER_NUMBER)
    for i in (1, 2, 3):
        net.phone(f"m{i}", 7000 + i, f"m{i}")
    return net


def test_invite_requiring_100rel_gets_420_unsupported_100rel() -> None:
    net = world()
    caller = net.phones[("127.0.0.1", 6000)]
    call = caller.invite(PILOT, extra=[("Supported", "100rel"), ("Require", "100rel")])
    refused = caller.response(420)
    assert refused.headers.get_all("Unsupported") == ["100rel"]
    assert "100rel" not in tags(refused, "Supported")
    assert "timer" in tags(refused, "Supported")
    call.ack_failure(refused)
    caller.quiet()
    assert net.b2b.active_calls == 0 and net.ports_in_use == 0
    assert not net.phones[("127.0.0.1", 7001)].has("INVITE"), "no member is rung"


def test_420_lists_exactly_the_unknown_tags_of_several() -> None:
    net = world()
    caller = net.phones[("127.0.0.1", 6000)]
    caller.invite(PILOT, extra=[("Require", "timer, 100rel"), ("Require", "foo, Timer")])
    refused = caller.response(420)
    assert option_tags(refused, "Unsupported") == ("100rel", "foo")


def test_require_timer_alone_is_accepted() -> None:
    net = world()
    caller = net.phones[("127.0.0.1", 6000)]
    caller.invite(PILOT, extra=[("Supported", "timer"), ("Require", "timer")])
    assert caller.has(180)
    assert not caller.has(420)
    assert net.phones[("127.0.0.1", 7001)].has("INVITE")


def test_proxy_require_is_ignored_by_us_as_uas() -> None:
    net = world()
    caller = net.phones[("127.0.0.1", 6000)]
    caller.invite(PILOT, extra=[("Proxy-Require", "100rel, foo")])
    assert caller.has(180)
    assert not caller.has(420)


def test_malformed_require_is_a_400() -> None:
    net = world()
    caller = net.phones[("127.0.0.1", 6000)]
    caller.invite(PILOT, extra=[("Require", "100rel,,foo")])
    caller.response(400)
    assert net.b2b.active_calls == 0


def test_options_and_register_are_checked_too() -> None:
    net = world()
    caller = net.phones[("127.0.0.1", 6000)]
    caller.simple("OPTIONS", f"sip:{DOMAIN}", extra=[("Require", "gruu")])
    assert option_tags(caller.response(420, "OPTIONS"), "Unsupported") == ("gruu",)
    caller.simple("REGISTER", f"sip:{DOMAIN}", extra=[("Require", "outbound")])
    assert option_tags(caller.response(420, "REGISTER"), "Unsupported") == ("outbound",)


def test_options_200_says_what_we_support() -> None:
    net = world()
    caller = net.phones[("127.0.0.1", 6000)]
    caller.simple("OPTIONS", f"sip:{DOMAIN}")
    ok = caller.response(200, "OPTIONS")
    assert tags(ok, "Supported") == set(SUPPORTED)


def bridged() -> tuple[Network, UacCall, UasCall]:
    net = world()
    caller = net.phones[("127.0.0.1", 6000)]
    m1 = net.phones[("127.0.0.1", 7001)]
    call = caller.invite(PILOT)
    leg = m1.answering(m1.request("INVITE"))
    leg.reply(200)
    m1.request("ACK")
    ok = caller.response(200)
    call.ack(ok)
    caller.drop()
    return net, call, leg


def test_200_to_the_caller_lists_supported_without_100rel() -> None:
    net = world()
    caller = net.phones[("127.0.0.1", 6000)]
    m1 = net.phones[("127.0.0.1", 7001)]
    caller.invite(PILOT, extra=[("Supported", "100rel, timer")])
    m1.answering(m1.request("INVITE")).reply(200)
    ok = caller.response(200)
    assert "100rel" not in tags(ok, "Supported")
    assert "timer" in tags(ok, "Supported")
    assert not ok.headers.get("RSeq"), "never a reliable response"


def test_our_invites_to_members_never_offer_or_require_100rel() -> None:
    net = world()
    caller = net.phones[("127.0.0.1", 6000)]
    caller.invite(PILOT, extra=[("Supported", "100rel"), ("Require", "timer")])
    invite = net.phones[("127.0.0.1", 7001)].request("INVITE")
    assert tags(invite, "Supported") == set(SUPPORTED)
    assert tags(invite, "Require") == set()
    assert not invite.headers.get("Proxy-Require")


def test_reinvite_with_an_unknown_require_gets_420_and_nothing_is_relayed() -> None:
    _net, call, leg = bridged()
    data = call.in_dialog("INVITE", body=sdp(10002))
    data = data.replace(b"\r\nContact:", b"\r\nRequire: 100rel, precondition\r\nContact:", 1)
    call.phone.send(data)
    refused = call.phone.response(420)
    assert option_tags(refused, "Unsupported") == ("100rel", "precondition")
    assert refused.to.tag == call.remote_tag, "in the dialog: the same To tag"
    assert leg.phone.count("INVITE") == 1, "the member never sees it"
    # the dialog goes on: a later re-INVITE without it is relayed
    call.reinvite(sdp(10004))
    assert leg.phone.count("INVITE") == 2


def test_in_dialog_options_says_what_we_support() -> None:
    _net, call, _leg = bridged()
    call.phone.send(call.in_dialog("OPTIONS"))
    assert tags(call.phone.response(200, "OPTIONS"), "Supported") == set(SUPPORTED)


def test_member_reliable_18x_unasked_is_taken_as_a_plain_provisional() -> None:
    """RFC 3262 §3: a UAS must not send a reliable provisional to a UAC that did not
    offer 100rel. We do not PRACK it (we cannot): the 180 still rings the caller, and the
    member's later 200 bridges as usual."""
    net = world()
    caller = net.phones[("127.0.0.1", 6000)]
    m1 = net.phones[("127.0.0.1", 7001)]
    call = caller.invite(PILOT)
    invite = m1.request("INVITE")
    leg = m1.answering(invite)
    headers = [
        ("Via", invite.headers.get("Via") or ""),
        ("From", invite.headers.get("From") or ""),
        ("To", f"{invite.headers.get('To')};tag={leg.tag}"),
        ("Call-ID", invite.call_id),
        ("CSeq", f"{invite.cseq.number} INVITE"),
        ("Contact", m1.contact),
        ("Require", "100rel"),
        ("RSeq", "1"),
    ]
    m1.send(build("SIP/2.0 180 Ringing", headers))
    assert caller.has(180)
    assert not m1.has("PRACK")
    leg.reply(200)
    m1.request("ACK")
    call.ack(caller.response(200))
    assert net.relays
