"""Dead calls (issue 9, point 10): session timers (RFC 4028) and the longest call.

A call whose BYE was lost must not keep its member busy and its ports taken
for good: the refresher side refreshes every half interval, the other side
gives up when no refresh came, and ``server.calls.max_duration`` caps any
call. Both end the call on both sides: BYE to the caller and to the member,
member free again, ports released. Time is scripted (``Network.at``).
"""

from __future__ import annotations

import pytest

from huntgroup.config.models import CallsConfig, Config
from huntgroup.engine.b2bua.session_timer import negotiate_as_uac
from huntgroup.engine.sip.message import Request, Response
from huntgroup.engine.sip.parser import parse_datagram
from tests.support.b2bua_peers import (
    CALLER_NUMBER,
    GROUP,
    PILOT,
    Network,
    Phone,
    UacCall,
    make_config,
    member_uri,
    response_bytes,
    sdp,
)


def config(**calls: object) -> Config:
    base = make_config("linear", members=1)
    server = base.server.model_copy(update={"calls": CallsConfig.model_validate(calls)})
    return base.model_copy(update={"server": server})


class World:
    def __init__(self, **calls: object) -> None:
        self.net = Network(config(**calls))
        self.caller = self.net.phone("caller", 6000, CALLER_NUMBER)
        self.m1 = self.net.phone("m1", 7001, "m1")

    def answered(
        self,
        *,
        caller_extra: tuple[tuple[str, str], ...] = (),
        member_extra: tuple[tuple[str, str], ...] = (),
    ) -> tuple[UacCall, Request, Response]:
        """A call to the pilot that m1 answers; returns (caller's call, m1's INVITE, 200)."""
        call = self.caller.invite(PILOT, extra=caller_extra)
        invite = self.m1.request("INVITE")
        data = response_bytes(
            invite,
            200,
            "OK",
            to_tag="m1tag",
            contact=self.m1.contact,
            body=sdp(27001),
            extra=member_extra,
        )
        self.m1.send(data)
        self.m1.request("ACK")
        ok = self.caller.response(200)
        call.ack(ok)
        self.caller.drop()
        self.m1.drop()
        return call, invite, ok

    def member_free(self) -> bool:
        return self.net.b2b.core.is_free(GROUP, member_uri(1), now=self.net.now)

    def assert_ended_on_both_sides(self) -> None:
        for phone in (self.caller, self.m1):
            bye = phone.request("BYE")
            phone.respond(bye, 200)
        assert self.net.b2b.active_calls == 0
        assert self.net.ports_in_use == 0
        assert self.member_free()


def in_dialog_from_member(phone: Phone, invite: Request, method: str, cseq: int) -> bytes:
    """A request m1 sends inside the dialog of ``invite`` (which it answered with tag m1tag)."""
    from tests.support.b2bua_peers import build

    contacts = invite.contacts
    target = str(contacts[0].uri)
    headers = [
        ("Via", phone.via(phone.branch())),
        ("Max-Forwards", "70"),
        ("From", f"{invite.headers.get('To')};tag=m1tag"),
        ("To", invite.headers.get("From") or ""),
        ("Call-ID", invite.call_id),
        ("CSeq", f"{cseq} {method}"),
        ("Supported", "timer"),
        ("Session-Expires", "90;refresher=uac"),
    ]
    return build(f"{method} {target} SIP/2.0", headers)


def test_our_invites_to_members_offer_session_timers() -> None:
    w = World()
    w.caller.invite(PILOT)
    invite = w.m1.request("INVITE")
    assert "timer" in invite.headers.get_all("Supported")
    assert invite.headers.get("Session-Expires") == "1800"
    assert invite.headers.get("Min-SE") == "90"


def test_a_member_that_never_refreshes_gets_the_call_torn_down_at_expiry() -> None:
    w = World()
    w.answered(
        caller_extra=(("Supported", "timer"), ("Session-Expires", "1800")),
        member_extra=(("Session-Expires", "90;refresher=uas"), ("Require", "timer")),
    )
    assert not w.member_free()
    start = w.net.now
    # the member refreshes: we give up 90 - min(32, 30) = 60 s after the last refresh
    w.net.at(start + 59)
    w.caller.quiet()
    w.m1.quiet()
    assert w.net.b2b.active_calls == 1
    w.net.at(start + 61)
    w.assert_ended_on_both_sides()
    assert w.net.b2b.counters.sessions_expired == 1


@pytest.mark.parametrize(
    ("answered", "expected"),
    [
        ("604800;refresher=uas", (1800, False)),
        ("600;refresher=uac", (600, True)),
        ("30;refresher=uas", (90, False)),
        (None, (1800, True)),
    ],
)
def test_a_peer_may_shorten_the_session_we_asked_for_never_lengthen_it(
    answered: str | None, expected: tuple[int, bool]
) -> None:
    """RFC 4028 §9: the answerer may shorten the interval, never lengthen it, so no
    peer stretches the life of a dead call (a week asked for here is cut to ours)."""
    w = World()
    w.caller.invite(PILOT)
    invite = w.m1.request("INVITE")
    extra = () if answered is None else (("Session-Expires", answered),)
    ok = parse_datagram(
        response_bytes(invite, 200, "OK", to_tag="m1tag", contact=w.m1.contact, extra=extra)
    )
    assert isinstance(ok, Response)
    assert negotiate_as_uac(ok, interval=1800) == expected


def test_a_refreshing_member_keeps_its_call() -> None:
    w = World()
    _call, invite, _ok = w.answered(
        caller_extra=(("Supported", "timer"), ("Session-Expires", "1800")),
        member_extra=(("Session-Expires", "90;refresher=uas"), ("Require", "timer")),
    )
    start = w.net.now
    for n in range(1, 8):  # 7 refreshes, 40 s apart: 280 s, well past one interval
        w.net.at(start + 40 * n)
        w.m1.send(in_dialog_from_member(w.m1, invite, "UPDATE", 100 + n))
        answer = w.m1.response(200, "UPDATE")  # answered here: each leg's session is ours
        assert answer.headers.get("Session-Expires") == "90;refresher=uac"
        assert not w.caller.has("UPDATE")
    w.net.at(start + 320)  # 40 s after the last refresh: still well inside 60 s
    assert not w.m1.has("BYE")
    w.caller.drop(lambda m: isinstance(m, Request) and m.method == "INVITE")  # our refreshes
    assert not w.caller.has("BYE")
    assert w.net.b2b.active_calls == 1 and not w.member_free()


def test_we_refresh_peers_without_timer_support_and_a_failed_refresh_ends_the_call() -> None:
    w = World(session_expires=90)
    _call, first_offer, _ok = w.answered()  # neither side speaks of timers: we refresh both
    start = w.net.now
    for n in range(1, 4):
        w.net.at(start + 45 * n)
        for phone in (w.caller, w.m1):
            refresh = phone.request("INVITE")  # no Allow: UPDATE, so a re-INVITE
            assert refresh.headers.get("Session-Expires") == "90;refresher=uac"
            assert refresh.body, "a refresh re-INVITE offers our current SDP"
            phone.respond(refresh, 200, body=sdp(27001 if phone is w.m1 else 10000))
            phone.request("ACK")
        assert phone is w.m1 and refresh.body == first_offer.body, "the SDP did not change"
    assert w.net.b2b.counters.session_refreshes == 6
    assert w.net.b2b.active_calls == 1
    w.net.at(start + 45 * 4)
    w.caller.respond(w.caller.request("INVITE"), 200, body=sdp(10000))
    w.caller.request("ACK")
    w.m1.respond(w.m1.request("INVITE"), 481)  # the member's dialog is gone
    w.assert_ended_on_both_sides()


def test_a_refresh_that_gets_no_answer_ends_the_call() -> None:
    w = World(session_expires=90)
    w.answered()
    start = w.net.now
    w.net.at(start + 45)
    w.caller.respond(w.caller.request("INVITE"), 200, body=sdp(10000))
    w.caller.request("ACK")
    w.m1.request("INVITE")  # the member is gone: nothing comes back
    w.net.at(start + 45 + 33)  # timer B (64 T1 = 32 s)
    w.m1.drop(lambda m: isinstance(m, Request) and m.method == "INVITE")
    w.assert_ended_on_both_sides()


def test_a_caller_asking_for_too_short_a_session_gets_422_with_min_se() -> None:
    w = World(min_se=120, session_expires=1800)
    w.caller.invite(PILOT, extra=(("Supported", "timer"), ("Session-Expires", "100")))
    refused = w.caller.response(422)
    assert refused.headers.get("Min-SE") == "120"
    assert not w.m1.has("INVITE"), "the refused call rang nobody"
    assert w.net.b2b.active_calls == 0


def test_a_caller_without_timer_support_is_raised_to_our_minimum_not_refused() -> None:
    w = World(min_se=120, session_expires=1800)
    _call, _invite, ok = w.answered(caller_extra=(("Session-Expires", "100"),))
    assert ok.headers.get("Session-Expires") == "120;refresher=uas"
    assert ok.headers.get("Require") is None


def test_a_caller_that_refreshes_is_told_so_in_the_200() -> None:
    w = World()
    _call, _invite, ok = w.answered(
        caller_extra=(("Supported", "timer"), ("Session-Expires", "600"))
    )
    assert ok.headers.get("Session-Expires") == "600;refresher=uac"
    assert ok.headers.get("Require") == "timer"


def test_max_duration_ends_an_answered_call_on_both_sides() -> None:
    w = World(max_duration=300)
    w.answered()
    start = w.net.now
    w.net.at(start + 299)
    assert w.net.b2b.active_calls == 1
    w.caller.quiet()
    w.net.at(start + 300)
    w.assert_ended_on_both_sides()
    assert w.net.b2b.counters.max_duration_ended == 1


def test_the_timer_heap_stays_bounded_over_many_calls() -> None:
    w = World(max_duration=3600)
    for _ in range(50):
        call, _invite, _ok = w.answered()
        call.bye()
        w.m1.respond(w.m1.request("BYE"), 200)
        w.caller.drop()
    assert w.net.b2b.active_calls == 0
    assert len(w.net.b2b.timer_heap) <= 64 + 8


def test_a_retransmitted_2xx_to_our_refresh_is_acked_again() -> None:
    w = World(session_expires=90)
    w.answered()
    w.net.at(w.net.now + 45)
    refresh = w.caller.request("INVITE")
    w.m1.drop()
    data = response_bytes(refresh, 200, "OK", contact=w.caller.contact, body=sdp(10000), extra=())
    w.caller.send(data)
    w.caller.request("ACK")
    w.caller.send(data)  # our ACK was lost: the caller sends its 200 again
    assert w.caller.count("ACK") == 2
    assert w.net.b2b.active_calls == 1


def test_a_member_answering_422_is_asked_again_once_with_its_min_se() -> None:
    w = World()
    call = w.caller.invite(PILOT)
    first = w.m1.request("INVITE")
    w.m1.send(response_bytes(first, 422, "Session Interval Too Small", extra=(("Min-SE", "3600"),)))
    w.m1.request("ACK")  # the transaction layer ACKs the 422
    second = w.m1.request("INVITE")
    assert second.call_id == first.call_id and second.cseq.number == 2
    assert second.top_via.branch != first.top_via.branch
    assert second.headers.get("Session-Expires") == "3600"
    assert second.headers.get("Min-SE") == "3600"
    leg = w.m1.answering(second)
    leg.reply(200, rtp=27001)
    w.m1.request("ACK")
    call.ack(w.caller.response(200))
    assert w.net.b2b.active_calls == 1 and not w.member_free()


def test_a_second_422_counts_as_a_refusal() -> None:
    w = World()
    w.caller.invite(PILOT)
    for _ in range(2):
        invite = w.m1.request("INVITE")
        w.m1.send(response_bytes(invite, 422, "Too Small", extra=(("Min-SE", "3600"),)))
        w.m1.drop(lambda m: isinstance(m, Request) and m.method == "ACK")
    assert not w.m1.has("INVITE"), "asked again once only"


def test_a_member_refresh_the_caller_refuses_still_proves_the_member_alive() -> None:
    w = World()
    _call, invite, _ok = w.answered(
        member_extra=(("Session-Expires", "90;refresher=uas"), ("Require", "timer")),
    )
    start = w.net.now
    from tests.support.b2bua_peers import build

    for n in range(1, 5):  # a re-INVITE every 40 s, which the caller refuses each time
        w.net.at(start + 40 * n)
        target = str(invite.contacts[0].uri)
        headers = [
            ("Via", w.m1.via(w.m1.branch())),
            ("From", f"{invite.headers.get('To')};tag=m1tag"),
            ("To", invite.headers.get("From") or ""),
            ("Call-ID", invite.call_id),
            ("CSeq", f"{100 + n} INVITE"),
            ("Contact", w.m1.contact),
            ("Content-Type", "application/sdp"),
        ]
        w.m1.send(build(f"INVITE {target} SIP/2.0", headers, sdp(27001)))
        relayed = w.caller.request("INVITE")
        w.caller.respond(relayed, 488)
        w.caller.drop()
        w.m1.response(488)
        w.m1.drop()
    w.net.at(start + 40 * 4 + 50)  # 50 s after the last: inside 60 s
    assert w.net.b2b.active_calls == 1 and not w.m1.has("BYE")
