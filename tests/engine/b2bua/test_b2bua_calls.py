"""Calls to a pilot through the B2BUA, message by message: hunting, answer, hang-up."""

from __future__ import annotations

from huntgroup.engine.sip.message import Response
from huntgroup.engine.sip.uri import SipUri
from huntgroup.media.commands import CloseMedia, ConfirmMedia, StartRelay
from huntgroup.media.sdp import parse_sdp
from tests.support.b2bua_peers import (
    CALLER_NUMBER,
    DOMAIN,
    GROUP,
    PILOT,
    Network,
    UacCall,
    UasCall,
    make_config,
    member_uri,
)


def sdp_port(body: bytes) -> int:
    return parse_sdp(body).media[0].port


class World:
    """A network with a caller at :6000 and members m1..m3 at :7001..:7003."""

    def __init__(self, algorithm: str = "linear", **group: object) -> None:
        self.net = Network(make_config(algorithm, **group))
        self.caller = self.net.phone("caller", 6000, CALLER_NUMBER)
        self.m = {i: self.net.phone(f"m{i}", 7000 + i, f"m{i}") for i in (1, 2, 3)}

    def call(self, **kw: object) -> UacCall:
        call = self.caller.invite(PILOT, **kw)  # type: ignore[arg-type]
        return call

    def silent_members(self, *which: int) -> None:
        for i in which:
            self.m[i].quiet()


def user_of(header_uri: object) -> str:
    assert isinstance(header_uri, SipUri)
    return header_uri.user or ""


# ------------------------------------------------------------------ linear


def test_linear_call_hunts_member_by_member_and_bridges() -> None:
    w = World("linear")
    net, caller, m = w.net, w.caller, w.m
    call = w.call()

    # The caller hears 180 at once (so no 100 Trying); m1 gets the first INVITE, nobody else.
    assert not caller.has(100)
    ringing = caller.response(180)
    assert ringing.to.tag
    caller.quiet()
    inv1 = m[1].request("INVITE")
    w.silent_members(1, 2, 3)
    assert str(inv1.uri) == member_uri(1)
    assert inv1.to.uri == inv1.uri
    assert user_of(inv1.from_.uri) == CALLER_NUMBER
    assert inv1.from_.display_name in (None, "")
    assert inv1.from_.tag
    assert inv1.headers.get("P-Asserted-Identity") is None  # an outside caller's From: a claim
    assert inv1.call_id != call.call_id, "each member leg is its own dialog"
    assert inv1.content_type == "application/sdp"
    offer_port = sdp_port(inv1.body)
    assert inv1.cseq.number == 1 and inv1.cseq.method == "INVITE"

    # m1 rings but does not answer within no_answer_timeout (15 s): CANCEL, then m2.
    leg1 = m[1].answering(inv1)
    leg1.reply(180)
    caller.quiet()  # the 180 was already sent
    net.at(14.9)
    m[1].drop(lambda msg: msg.to_bytes() == inv1.to_bytes())
    w.silent_members(1, 2, 3)
    net.at(15.0)
    cancel1 = m[1].request("CANCEL")
    assert cancel1.top_via.branch == inv1.top_via.branch
    assert cancel1.cseq.number == inv1.cseq.number and cancel1.cseq.method == "CANCEL"
    assert cancel1.call_id == inv1.call_id
    assert str(cancel1.uri) == str(inv1.uri)
    inv2 = m[2].request("INVITE")
    assert inv2.call_id not in (inv1.call_id, call.call_id)
    assert sdp_port(inv2.body) == offer_port, "every leg offers the same member port"
    m[1].respond(cancel1, 200)
    leg1.reply(487)
    ack1 = m[1].request("ACK")
    assert ack1.top_via.branch == inv1.top_via.branch, "a non-2xx ACK stays in the transaction"
    assert ack1.to.tag == leg1.tag

    # m2 is busy: ACKed in its transaction, m3 is rung at once.
    leg2 = m[2].answering(inv2)
    leg2.reply(486)
    ack2 = m[2].request("ACK")
    assert ack2.top_via.branch == inv2.top_via.branch
    assert ack2.to.tag == leg2.tag
    assert str(ack2.uri) == str(inv2.uri)
    inv3 = m[3].request("INVITE")
    caller.quiet()

    # m3 answers: ACK to m3 (new transaction), 200 with SDP to the caller, relay starts.
    leg3 = m[3].answering(inv3)
    leg3.reply(180)
    leg3.reply(200, rtp=27003)
    ack3 = m[3].request("ACK")
    assert ack3.top_via.branch != inv3.top_via.branch
    assert ack3.cseq.number == inv3.cseq.number and ack3.cseq.method == "ACK"
    assert ack3.to.tag == leg3.tag and ack3.from_.tag == inv3.from_.tag
    assert str(ack3.uri) == m[3].uri, "the ACK goes to the member's Contact"
    ok = caller.response(200)
    assert ok.to.tag == ringing.to.tag, "one dialog with the caller, same tag as the 180"
    assert ok.content_type == "application/sdp"
    caller_port = sdp_port(ok.body)
    assert ok.contacts and "127.0.0.1:5060" in str(ok.contacts[0].uri)
    relays = net.relays
    assert relays == [  # the caller (UDP: its source may be forged) is held until its ACK
        StartRelay(
            relays[0].session,
            caller_port,
            ("127.0.0.1", 10000),
            offer_port,
            ("127.0.0.1", 27003),
            caller_unconfirmed=True,
        )
    ]
    assert net.b2b.active_calls == 1

    # The caller ACKs (its media may flow); then hangs up: 200 to the caller, BYE to m3.
    call.ack(ok)
    assert net.media_of(ConfirmMedia) == [ConfirmMedia(relays[0].session, caller_port)]
    caller.quiet()
    w.silent_members(1, 2, 3)
    call.bye()
    bye_ok = caller.response(200, "BYE")
    assert bye_ok.to.tag == ok.to.tag
    bye3 = m[3].request("BYE")
    assert bye3.call_id == inv3.call_id
    assert bye3.from_.tag == inv3.from_.tag and bye3.to.tag == leg3.tag
    assert bye3.cseq.number > inv3.cseq.number
    assert str(bye3.uri) == m[3].uri
    m[3].respond(bye3, 200)
    assert net.closes and net.closes[-1].ports == (caller_port, offer_port)
    assert net.ports_in_use == 0
    assert net.b2b.active_calls == 0
    net.advance(100)
    caller.quiet()
    w.silent_members(1, 2, 3)


def answered_call(w: World, member: int = 1, **kw: object) -> tuple[UacCall, UasCall, Response]:
    """Caller -> pilot, ``member`` answers at once; returns (call, member leg, caller's 200)."""
    call = w.call(**kw)
    inv = w.m[member].request("INVITE")
    leg = w.m[member].answering(inv)
    leg.reply(200, rtp=27000 + member)
    w.m[member].request("ACK")
    ok = w.caller.response(200)
    call.ack(ok)
    w.caller.drop()
    return call, leg, ok


def test_member_bye_hangs_up_the_caller() -> None:
    w = World("linear")
    call, leg, ok = answered_call(w)
    leg.bye()
    w.m[1].response(200, "BYE")
    bye = w.caller.request("BYE")
    assert bye.call_id == call.call_id
    assert bye.from_.tag == ok.to.tag and bye.to.tag == call.from_tag
    assert str(bye.uri) == w.caller.uri, "the BYE goes to the caller's Contact"
    w.caller.respond(bye, 200)
    assert w.net.closes
    assert w.net.ports_in_use == 0
    assert w.net.b2b.active_calls == 0
    w.net.advance(100)
    w.caller.quiet()
    w.m[1].quiet()


def test_caller_bye_retransmission_gets_the_same_200() -> None:
    w = World("linear")
    call, _leg, _ok = answered_call(w)
    bye = call.in_dialog("BYE")
    w.caller.send(bye)
    w.caller.send(bye)
    assert w.caller.count(200, method="BYE") == 2
    assert w.m[1].count("BYE") == 1


def test_pilot_as_caller_id_shows_pilot_and_group_name() -> None:
    w = World("linear", pilot_as_caller_id=True)
    w.call(display="Jean Dupont")
    inv1 = w.m[1].request("INVITE")
    assert user_of(inv1.from_.uri) == PILOT
    assert inv1.from_.display_name == GROUP
    assert inv1.headers.get("P-Asserted-Identity") == f'"{GROUP}" <sip:{PILOT}@{DOMAIN}>'


def test_caller_display_name_is_kept_without_pilot_as_caller_id() -> None:
    w = World("linear")
    w.call(display="Jean Dupont")
    inv1 = w.m[1].request("INVITE")
    assert user_of(inv1.from_.uri) == CALLER_NUMBER
    assert inv1.from_.display_name == "Jean Dupont"
    assert inv1.headers.get("P-Asserted-Identity") is None  # nobody vouches for it


def test_linear_pass_exhausted_gives_480_to_caller() -> None:
    w = World("linear")
    call = w.call()
    for i in (1, 2, 3):
        inv = w.m[i].request("INVITE")
        w.m[i].answering(inv).reply(603 if i == 2 else 486)
        w.m[i].request("ACK")
    final = w.caller.response(480)
    call.ack_failure(final)
    assert w.net.ports_in_use == 0
    assert w.net.b2b.active_calls == 0


# ------------------------------------------------------- §9.1 CANCEL timing


def test_cancel_waits_for_a_provisional_response() -> None:
    """RFC 3261 §9.1: no CANCEL before a provisional; sent as soon as one arrives."""
    w = World("linear")
    w.call()
    inv1 = w.m[1].request("INVITE")
    w.net.at(15.0)
    assert not w.m[1].has("CANCEL"), "no CANCEL before m1 sent any provisional response"
    w.m[2].request("INVITE")
    leg1 = w.m[1].answering(inv1)
    leg1.reply(180)
    cancel = w.m[1].request("CANCEL")
    assert cancel.top_via.branch == inv1.top_via.branch
    w.m[1].respond(cancel, 200)
    leg1.reply(487)
    w.m[1].request("ACK")


def test_silent_member_leg_times_out_without_cancel() -> None:
    w = World("linear")
    w.call()
    w.m[1].request("INVITE")
    w.net.at(15.0)
    w.m[2].request("INVITE")
    w.net.at(40.0)  # Timer B (64*T1 = 32 s) ends m1's INVITE transaction
    assert w.m[1].count("CANCEL") == 0
    assert w.m[1].count("INVITE") > 1, "the INVITE was retransmitted over UDP"
    retransmits = w.m[1].count("INVITE")
    w.net.at(80.0)
    assert w.m[1].count("INVITE") == retransmits


def test_cancel_is_sent_after_100_trying() -> None:
    """§9.1: any provisional response, 100 included, allows the CANCEL."""
    w = World("linear")
    w.call()
    inv1 = w.m[1].request("INVITE")
    w.m[1].answering(inv1).reply(100)
    w.net.at(15.0)
    w.m[2].request("INVITE")
    cancel = w.m[1].request("CANCEL")
    assert cancel.top_via.branch == inv1.top_via.branch


def test_late_200_from_a_member_cancelled_before_any_provisional_gets_ack_and_bye() -> None:
    w = World("linear")
    w.call()
    inv1 = w.m[1].request("INVITE")
    w.net.at(15.0)
    w.m[2].request("INVITE")
    leg1 = w.m[1].answering(inv1)
    leg1.reply(200)
    ack = w.m[1].request("ACK")
    bye = w.m[1].request("BYE")
    assert ack.to.tag == bye.to.tag == leg1.tag
    assert not w.m[1].has("CANCEL")
    w.m[1].respond(bye, 200)
    w.caller.drop()
    assert not w.caller.has(200)


# ------------------------------------------------------------------ ring all


def test_ring_all_first_answer_wins_and_others_are_cancelled() -> None:
    w = World("ring_all")
    call = w.call()
    invs = {i: w.m[i].request("INVITE") for i in (1, 2, 3)}
    assert len({inv.call_id for inv in invs.values()}) == 3
    legs = {i: w.m[i].answering(invs[i]) for i in (1, 2, 3)}
    for i in (1, 2, 3):
        legs[i].reply(180)
    w.caller.response(180)
    w.caller.quiet()

    legs[2].reply(200, rtp=27002)
    w.m[2].request("ACK")
    for i in (1, 3):
        cancel = w.m[i].request("CANCEL")
        assert cancel.top_via.branch == invs[i].top_via.branch
    ok = w.caller.response(200)
    assert w.net.relays[-1].member_remote == ("127.0.0.1", 27002)
    call.ack(ok)

    # m1 answered before the CANCEL reached it: its late 200 gets ACK + BYE.
    legs[1].reply(200, rtp=27001)
    w.m[1].request("ACK")
    bye1 = w.m[1].request("BYE")
    assert bye1.to.tag == legs[1].tag
    w.m[1].respond(bye1, 200)
    # m3 accepts the CANCEL normally.
    cancel3 = w.m[3].take("CANCEL") if w.m[3].has("CANCEL") else None
    assert cancel3 is None
    legs[3].reply(487)
    w.m[3].request("ACK")
    # The caller stays connected to m2; nothing reaches the caller.
    w.caller.quiet()
    assert len(w.net.relays) == 1
    assert w.net.b2b.active_calls == 1
    for i in (1, 2, 3):
        w.m[i].drop(lambda msg: isinstance(msg, Response) and msg.cseq.method == "CANCEL")
    w.m[2].quiet()


def test_caller_cancel_while_members_ring() -> None:
    w = World("ring_all")
    call = w.call()
    invs = {i: w.m[i].request("INVITE") for i in (1, 2, 3)}
    legs = {i: w.m[i].answering(invs[i]) for i in (1, 2, 3)}
    for i in (1, 2, 3):
        legs[i].reply(180)
    w.caller.drop()
    assert w.net.ports_in_use == 2  # the caller-side and the member-side RTP ports

    call.cancel()
    cancel_ok = w.caller.response(200, "CANCEL")
    assert cancel_ok.cseq.method == "CANCEL"
    terminated = w.caller.response(487)
    assert terminated.call_id == call.call_id
    call.ack_failure(terminated)
    for i in (1, 2, 3):
        cancel = w.m[i].request("CANCEL")
        assert cancel.top_via.branch == invs[i].top_via.branch
        w.m[i].respond(cancel, 200)
        legs[i].reply(487)
        w.m[i].request("ACK")
    closes = [c for c in w.net.media if isinstance(c, CloseMedia)]
    assert len(closes) == 1
    assert w.net.ports_in_use == 0
    assert w.net.b2b.active_calls == 0
    w.net.advance(100)
    w.caller.quiet()
    for i in (1, 2, 3):
        w.m[i].quiet()


def test_caller_cancel_before_members_sent_provisional_still_cancels_them() -> None:
    w = World("ring_all")
    call = w.call()
    invs = {i: w.m[i].request("INVITE") for i in (1, 2, 3)}
    call.cancel()
    w.caller.response(487)
    legs = {i: w.m[i].answering(invs[i]) for i in (1, 2, 3)}
    for i in (1, 2, 3):
        legs[i].reply(180)
    for i in (1, 2, 3):
        cancel = w.m[i].request("CANCEL")
        assert cancel.top_via.branch == invs[i].top_via.branch


def test_member_answering_after_caller_cancelled_gets_ack_and_bye() -> None:
    w = World("ring_all")
    call = w.call()
    invs = {i: w.m[i].request("INVITE") for i in (1, 2, 3)}
    call.cancel()
    w.caller.response(487)
    leg = w.m[2].answering(invs[2])
    leg.reply(200)
    w.m[2].request("ACK")
    w.m[2].request("BYE")


def test_caller_cancel_after_answer_changes_nothing() -> None:
    w = World("linear")
    call, _leg, _ok = answered_call(w)
    call.cancel()
    w.caller.response(200, "CANCEL")
    assert not w.caller.has(487)
    assert w.net.b2b.active_calls == 1
    w.m[1].quiet()


# ---------------------------------------------------------- retransmissions


def test_200_to_caller_is_retransmitted_until_ack() -> None:
    w = World("linear")
    call = w.call()
    inv = w.m[1].request("INVITE")
    w.m[1].answering(inv).reply(200)
    assert w.caller.count(200) == 1
    w.net.advance(0.5)
    assert w.caller.count(200) == 2
    w.net.advance(1.0)
    assert w.caller.count(200) == 3
    w.net.advance(2.0)
    assert w.caller.count(200) == 4
    ok = w.caller.response(200)
    call.ack(ok)
    w.net.advance(60)
    assert w.caller.count(200) == 4
    assert w.net.b2b.active_calls == 1, "the ACKed call stays up"
    assert not w.caller.has("BYE")


def test_200_without_ack_hangs_up_after_64_t1() -> None:
    w = World("linear")
    w.call()
    inv = w.m[1].request("INVITE")
    leg = w.m[1].answering(inv)
    leg.reply(200)
    w.m[1].request("ACK")
    w.net.advance(31.9)
    assert not w.caller.has("BYE")
    w.net.advance(0.2)
    assert w.caller.has("BYE")
    bye = w.m[1].request("BYE")
    assert bye.to.tag == leg.tag
    assert w.net.ports_in_use == 0


def test_invite_retransmission_does_not_create_a_second_call() -> None:
    w = World("ring_all")
    call = w.call()
    call.retransmit_invite()
    assert w.caller.count(180) == 2, "the retransmission gets the last response (180) again"
    assert w.caller.count(100) == 0, "180 left at once: no 100 Trying is needed"
    assert w.net.b2b.active_calls == 1
    for i in (1, 2, 3):
        w.m[i].request("INVITE")
        w.m[i].quiet()
    w.net.advance(0.1)
    call.retransmit_invite()
    assert w.net.b2b.active_calls == 1
    for i in (1, 2, 3):
        w.m[i].quiet()


def test_invite_retransmission_after_200_does_not_create_a_second_call() -> None:
    w = World("linear")
    call = w.call()
    inv = w.m[1].request("INVITE")
    w.m[1].answering(inv).reply(200)
    w.m[1].request("ACK")
    call.retransmit_invite()
    assert w.net.b2b.active_calls == 1
    w.m[2].quiet()
    w.m[1].quiet()
    assert w.net.ports_in_use == 2


def test_member_200_retransmission_is_acked_again() -> None:
    """RFC 3261 §13.2.2.4: every 2xx retransmission gets the ACK again."""
    w = World("linear")
    w.call()
    inv = w.m[1].request("INVITE")
    leg = w.m[1].answering(inv)
    leg.reply(200)
    w.m[1].request("ACK")
    w.net.advance(0.5)
    leg.resend_last()  # our ACK was lost: the member resends its 200
    assert w.m[1].count("ACK") == 2


def test_member_200_retransmission_after_timer_m_is_acked_again() -> None:
    w = World("linear")
    call = w.call()
    inv = w.m[1].request("INVITE")
    leg = w.m[1].answering(inv)
    leg.reply(200)
    first_ack = w.m[1].request("ACK")
    call.ack(w.caller.response(200))
    w.net.advance(40)  # past the transaction's Timer M: the dialog still ACKs
    leg.resend_last()
    again = w.m[1].request("ACK")
    assert again.cseq == first_ack.cseq and again.to.tag == first_ack.to.tag


# ------------------------------------------------------- in-dialog relaying


def test_reinvite_from_caller_is_relayed_to_member_and_answer_comes_back() -> None:
    w = World("linear")
    call, leg, ok = answered_call(w)
    inv1 = leg.invite
    # a new offer that does not hold (a hold is answered here: test_b2bua_hold.py)
    call.reinvite(
        b"v=0\r\no=peer 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
        b"t=0 0\r\nm=audio 10010 RTP/AVP 0\r\na=recvonly\r\n"
    )
    reinv = w.m[1].request("INVITE")
    assert reinv.call_id == inv1.call_id
    assert reinv.from_.tag == inv1.from_.tag and reinv.to.tag == leg.tag
    assert reinv.cseq.number > inv1.cseq.number
    assert reinv.content_type == "application/sdp"
    assert b"a=recvonly" in reinv.body
    w.m[1].respond(
        reinv,
        200,
        to_tag=leg.tag,
        contact=True,
        body=b"v=0\r\no=m1 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
        b"t=0 0\r\nm=audio 27001 RTP/AVP 0\r\na=sendonly\r\n",
    )
    ack = w.m[1].request("ACK")
    assert ack.cseq.number == reinv.cseq.number
    reok = w.caller.response(200)
    assert reok.cseq.number == call.invite_cseq
    assert reok.to.tag == ok.to.tag
    assert b"a=sendonly" in reok.body
    call.ack(reok)
    w.m[1].quiet()


def test_reinvite_sdp_keeps_media_anchored() -> None:
    w = World("linear")
    call, leg, _ok = answered_call(w)
    inv1 = leg.invite
    member_port = sdp_port(inv1.body)
    call.reinvite(
        b"v=0\r\no=peer 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
        b"t=0 0\r\nm=audio 10010 RTP/AVP 0\r\na=sendrecv\r\n"
    )
    reinv = w.m[1].request("INVITE")
    assert sdp_port(reinv.body) == member_port
    ours = parse_sdp(inv1.body).origin
    theirs = parse_sdp(reinv.body).origin
    assert theirs.session_id == ours.session_id


def test_info_from_caller_is_relayed_and_answered() -> None:
    w = World("linear")
    call, leg, ok = answered_call(w)
    inv1 = leg.invite
    call.info(b"Signal=5\r\nDuration=160\r\n")
    info = w.m[1].request("INFO")
    assert info.call_id == inv1.call_id
    assert info.body == b"Signal=5\r\nDuration=160\r\n"
    assert info.content_type == "application/dtmf-relay"
    w.m[1].respond(info, 200, to_tag=info.to.tag or "")
    info_ok = w.caller.response(200, "INFO")
    assert info_ok.cseq.number == call.cseq
    assert info_ok.to.tag == ok.to.tag


def test_info_from_member_is_relayed_to_caller() -> None:
    w = World("linear")
    call, leg, _ok = answered_call(w)
    w.m[1].send(leg.in_dialog("INFO", body=b"x"))
    info = w.caller.request("INFO")
    assert info.call_id == call.call_id
    assert info.to.tag == call.from_tag
    w.caller.respond(info, 200, to_tag=call.from_tag)
    w.m[1].response(200, "INFO")


def test_info_before_bridge_is_answered_locally() -> None:
    w = World("linear", queue={"max_length": 0})
    call = w.call()
    w.m[1].request("INVITE")
    ringing = w.caller.response(180)
    call.confirmed(ringing)
    call.remote_target = "sip:huntgroup@127.0.0.1:5060"
    call.info(b"x")
    # An early dialog (no 200 yet): the request is answered here, never relayed.
    w.caller.response(200, "INFO")
    w.m[1].quiet()
