"""Dialog rules of RFC 3261 §12.2.2, §14.2 and §15.1.2 at the B2BUA's caller side."""

from __future__ import annotations

from tests.support.b2bua_peers import (
    CALLER_NUMBER,
    PILOT,
    Network,
    Phone,
    UacCall,
    UasCall,
    make_config,
    sdp,
)


def bridged(algorithm: str = "linear") -> tuple[Network, UacCall, UasCall]:
    net = Network(make_config(algorithm))
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    m1 = net.phone("m1", 7001, "m1")
    call = caller.invite(PILOT)
    leg = m1.answering(m1.request("INVITE"))
    leg.reply(200)
    m1.request("ACK")
    call.ack(caller.response(200))
    caller.drop()
    return net, call, leg


def ringing() -> tuple[Network, UacCall, list[Phone]]:
    net = Network(make_config("ring_all"))
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    members = [net.phone(f"m{i}", 7000 + i, f"m{i}") for i in (1, 2, 3)]
    call = caller.invite(PILOT)
    for phone in members:
        phone.answering(phone.request("INVITE")).reply(180)
    ringing = caller.response(180)
    call.confirmed(ringing)
    call.remote_target = "sip:huntgroup@127.0.0.1:5060"
    caller.drop()
    return net, call, members


def test_bye_in_early_dialog_ends_the_call_and_cancels_members() -> None:
    net, call, members = ringing()
    call.bye()
    call.phone.response(200, "BYE")
    assert call.phone.has(480) or call.phone.has(487)
    for phone in members:
        phone.request("CANCEL")
    assert net.ports_in_use == 0


def test_bye_in_early_dialog_answers_the_invite_with_487() -> None:
    _net, call, _members = ringing()
    call.bye()
    call.phone.response(487)


def test_options_inside_a_dialog_gets_200() -> None:
    _net, call, _leg = bridged()
    call.phone.send(call.in_dialog("OPTIONS"))
    call.phone.response(200, "OPTIONS")


def test_second_reinvite_while_one_is_pending_is_refused() -> None:
    _net, call, leg = bridged()
    call.reinvite(sdp(10000))
    call.reinvite(sdp(10000))
    assert leg.phone.count("INVITE") == 2  # the initial INVITE and the first re-INVITE
    assert call.phone.has(500) or call.phone.has(491)


def test_request_with_old_cseq_is_refused_with_500() -> None:
    _net, call, leg = bridged()
    call.info(b"x")
    info = leg.phone.request("INFO")
    leg.phone.respond(info, 200, to_tag=leg.tag)
    call.cseq = 0  # the next request reuses CSeq 1, below the INVITE's and the INFO's
    call.bye()
    call.phone.response(500, "BYE")
    assert not leg.phone.has("BYE")
