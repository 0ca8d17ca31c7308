"""Call records: every call that reaches the B2BUA ends with exactly one record, whatever
ends it, with its times, its offers and its outcome (engine/b2bua/call_records.py)."""

from __future__ import annotations

import pytest

from huntgroup.engine.b2bua import core_actions
from huntgroup.engine.b2bua.call_records import CallRecord, OfferRecord
from tests.engine.b2bua import test_b2bua_transfers as transfers
from tests.engine.b2bua.test_b2bua_feature_codes import dial
from tests.engine.b2bua.test_b2bua_lines import register
from tests.engine.b2bua.test_b2bua_upstream import (
    EXTERNAL,
    UPSTREAM_PORT,
    authorised_invite,
    upstream_config,
)
from tests.support.b2bua_peers import (
    CALLER_NUMBER,
    GROUP,
    LINE_A,
    PASSWORD,
    PILOT,
    Network,
    UacCall,
    UasCall,
    make_config,
    member_uri,
)

EPOCH = 1_800_000_000.0  # the wall clock the driver reads at now = 0
M1, M2 = member_uri(1), member_uri(2)


class World:
    """A caller at :6000, members m1..m3 at :7001..:7003, the wall clock at EPOCH."""

    def __init__(self, algorithm: str = "linear", **group: object) -> None:
        self.net = Network(make_config(algorithm, **group))
        self.net.b2b.wall_clock_read(EPOCH, now=0.0)
        self.caller = self.net.phone("caller", 6000, CALLER_NUMBER)
        self.m = {i: self.net.phone(f"m{i}", 7000 + i, f"m{i}") for i in (1, 2, 3)}

    def answer(self, i: int, call: UacCall) -> UasCall:
        """Member ``i`` answers the INVITE it has; the caller ACKs our 200."""
        leg = self.m[i].answering(self.m[i].request("INVITE"))
        leg.reply(200)
        self.m[i].request("ACK")
        call.ack(self.caller.response(200))
        return leg

    def only(self) -> CallRecord:
        """The one record of the one call, after checking there is exactly one."""
        assert self.net.b2b.active_calls == 0
        assert len(self.net.records) == 1, self.net.records
        return self.net.records[0]


def test_an_answered_group_call_has_its_times_member_and_offer() -> None:
    w = World()
    net = w.net
    call = w.caller.invite(PILOT)
    net.advance(2.0)
    w.answer(1, call)
    net.advance(30.0)
    call.bye()
    w.caller.response(200, "BYE")
    w.m[1].respond(w.m[1].request("BYE"), 200)

    record = w.only()
    assert record == CallRecord(
        call_id=call.call_id,
        node="",
        kind="group",
        group=GROUP,
        pilot=PILOT,
        caller=CALLER_NUMBER,
        callee=PILOT,
        identity=CALLER_NUMBER,
        arrival=EPOCH,
        answer=EPOCH + 2.0,
        end=EPOCH + 32.0,
        wait=2.0,
        talk=30.0,
        member=M1,
        outcome="answered",
        release_code=200,
        offers=(OfferRecord(M1, EPOCH, "answered", EPOCH + 2.0),),
        hangup="caller",
        position=1,
    )


def test_a_member_that_does_not_answer_in_time_is_no_answer_then_the_next_answers() -> None:
    w = World(no_answer_timeout=10)
    net = w.net
    call = w.caller.invite(PILOT)
    w.m[1].answering(w.m[1].request("INVITE")).reply(180)
    net.advance(10.0)  # m1's ring timeout: CANCEL, m2 rung
    w.m[1].respond(w.m[1].request("CANCEL"), 200)
    leg = w.answer(2, call)
    net.advance(5.0)
    leg.bye()  # the member hangs up
    w.caller.respond(w.caller.request("BYE"), 200)
    record = w.only()
    assert record.offers == (
        OfferRecord(M1, EPOCH, "no_answer", EPOCH + 10.0),
        OfferRecord(M2, EPOCH + 10.0, "answered", EPOCH + 10.0),
    )
    assert (record.member, record.outcome, record.hangup) == (M2, "answered", "member")
    assert (record.wait, record.talk) == (10.0, 5.0)


def test_busy_and_declined_offers_end_in_no_answer() -> None:
    w = World()
    call = w.caller.invite(PILOT)
    w.m[1].answering(w.m[1].request("INVITE")).reply(486)
    w.m[2].answering(w.m[2].request("INVITE")).reply(603)
    w.m[3].answering(w.m[3].request("INVITE")).reply(503)
    del call
    record = w.only()
    assert [(x.member, x.result) for x in record.offers] == [
        (M1, "busy"),
        (M2, "declined"),
        (member_uri(3), "unreachable"),
    ]
    assert record.answer is None and record.member is None and record.talk == 0.0


def test_a_caller_that_cancels_while_ringing_abandoned_the_call() -> None:
    w = World()
    net = w.net
    call = w.caller.invite(PILOT)
    w.m[1].answering(w.m[1].request("INVITE")).reply(180)
    net.advance(4.0)
    call.cancel()
    record = w.only()
    assert record.outcome == "abandoned"
    assert record.release_code == 487
    assert record.hangup == "caller"
    assert record.wait == 4.0 and record.end == EPOCH + 4.0
    assert record.offers == (OfferRecord(M1, EPOCH, "cancelled", EPOCH + 4.0),)


def test_a_full_queue_is_queue_full() -> None:
    w = World(members=1, queue={"max_length": 0})
    net = w.net
    first = w.caller.invite(PILOT)
    w.answer(1, first)
    other = net.phone("other", 6001, "0600000001")
    other.invite(PILOT)
    full = other.next()
    assert getattr(full, "status", 0) >= 400
    assert len(net.records) == 1
    record = net.records[0]
    assert record.outcome == "queue_full" and record.caller == "0600000001"
    assert record.release_code == getattr(full, "status", 0)
    assert record.offers == ()


def test_the_queues_max_wait_is_timeout() -> None:
    w = World(members=1, queue={"max_wait": 30})
    net = w.net
    first = w.caller.invite(PILOT)
    w.answer(1, first)
    other = net.phone("other", 6001, "0600000001")
    queued = other.invite(PILOT)
    queued.ack(other.response(200))  # queued with music
    net.advance(30.0)
    other.respond(other.request("BYE"), 200)
    assert len(net.records) == 1
    record = net.records[0]
    assert record.outcome == "timeout"
    assert record.wait == 30.0 and record.answer is None


def test_a_refusal_before_the_core_has_a_record_and_a_challenge_none() -> None:
    w = World()
    net = w.net
    net.shutdown(grace=60)
    w.caller.invite(PILOT)
    assert w.caller.response(503)
    assert len(net.records) == 1
    record = net.records[0]
    assert (record.outcome, record.release_code, record.group, record.pilot) == (
        "refused",
        503,
        GROUP,
        PILOT,
    )
    # a number that is ours nowhere, no upstream: 404, a record
    fresh = World()
    fresh.caller.invite("0999999999")
    assert fresh.caller.response(404)
    assert [(r.kind, r.group, r.outcome, r.release_code) for r in fresh.net.records] == [
        ("direct", None, "refused", 404)
    ]


def test_a_digest_challenge_is_no_record_the_authenticated_retry_is() -> None:
    config = make_config("linear", members=1)
    config = config.model_copy(
        update={"server": config.server.model_copy(update={"upstream": "sip:127.0.0.1:5099"})}
    )
    net = Network(config)
    caller = net.phone("caller", 6000, LINE_A)
    caller.invite("0999999999")  # out through the upstream: a line must authenticate
    assert caller.response(407)
    assert net.records == []


def test_a_drain_ends_calls_in_progress_each_with_its_record() -> None:
    w = World()
    net = w.net
    call = w.caller.invite(PILOT)
    w.answer(1, call)
    net.shutdown(grace=10)
    net.advance(10.0)
    record = w.only()
    assert record.outcome == "answered" and record.hangup == "server"
    assert record.talk == 10.0


def test_a_direct_call_to_a_line_names_the_line_as_member_and_a_busy_line_forwards() -> None:
    config = make_config(
        "linear", members=1, lines=[{"number": LINE_A, "forward_busy": "0999888777"}]
    )
    net = Network(config)
    alice = net.phone("alice", 7101, LINE_A)
    register(alice, LINE_A, PASSWORD)
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    call = caller.invite(LINE_A)
    leg = alice.answering(alice.request("INVITE"))
    leg.reply(200)
    alice.request("ACK")
    call.ack(caller.response(200))
    other = net.phone("other", 6001, "0600000001")
    other.invite(LINE_A)  # alice is busy: forward_busy, 302
    assert other.response(302)
    leg.bye()
    caller.respond(caller.request("BYE"), 200)
    answered, forwarded = sorted(net.records, key=lambda r: r.outcome)
    assert (answered.kind, answered.group, answered.member, answered.callee) == (
        "direct",
        None,
        LINE_A,
        LINE_A,
    )
    assert answered.offers == (OfferRecord(LINE_A, 0.0, "answered", 0.0),)
    assert (forwarded.outcome, forwarded.release_code, forwarded.member) == (
        "forwarded",
        302,
        None,
    )
    assert len(net.records) == 2 and net.b2b.active_calls == 0


@pytest.mark.native_incompatible(
    "monkeypatches core_actions.ring: compiled callers call the original directly"
)
def test_an_internal_error_while_taking_a_call_in_still_ends_with_one_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(core_actions, "ring", broken)
    w = World()
    w.caller.invite(PILOT)
    assert w.caller.response(500)
    record = w.only()
    assert record.outcome == "refused" and record.release_code == 500
    assert record.offers == (OfferRecord(M1, EPOCH, "cancelled", EPOCH),)


def test_an_outgoing_call_answered_and_one_refused_by_the_far_end() -> None:
    net = Network(upstream_config())
    net.b2b.wall_clock_read(EPOCH, now=0.0)
    upstream = net.phone("upstream", UPSTREAM_PORT, "core")
    alice, call = authorised_invite(net)
    leg = upstream.answering(upstream.request("INVITE"))
    net.advance(3.0)
    leg.reply(200)
    upstream.request("ACK")
    call.ack(alice.response(200))
    net.advance(7.0)
    call.bye()
    alice.response(200, "BYE")
    upstream.respond(upstream.request("BYE"), 200)
    assert len(net.records) == 1, "the 407 before the authorised INVITE is no record"
    record = net.records[0]
    assert (record.kind, record.caller, record.callee, record.identity) == (
        "outgoing",
        LINE_A,
        EXTERNAL,
        LINE_A,
    )
    assert (record.outcome, record.wait, record.talk, record.member) == ("answered", 3.0, 7.0, None)

    alice, again = authorised_invite(net, alice_port=7102)
    upstream.answering(upstream.request("INVITE")).reply(486)
    again.ack_failure(alice.response(486))
    refused = net.records[1]
    assert (refused.kind, refused.outcome, refused.release_code) == ("outgoing", "no_answer", 486)


def test_max_duration_hangs_up_an_answered_call_with_its_record() -> None:
    config = make_config("linear")
    server = config.server.model_copy(
        update={"calls": config.server.calls.model_copy(update={"max_duration": 60})}
    )
    net = Network(config.model_copy(update={"server": server}))
    w = World()
    w.net = net
    w.caller = net.phone("caller", 6000, CALLER_NUMBER)
    w.m = {i: net.phone(f"m{i}", 7000 + i, f"m{i}") for i in (1, 2, 3)}
    call = w.caller.invite(PILOT)
    w.answer(1, call)
    net.advance(60.0)
    record = w.only()
    assert (record.outcome, record.hangup, record.talk) == ("answered", "server", 60.0)
    # the server hung up, not the caller: queue_log's COMPLETEAGENT (operations.md)
    assert [e.event for e in net.queue_events][-1] == "COMPLETEAGENT"


def test_a_feature_code_is_a_short_call_answered_by_the_server() -> None:
    net = Network(make_config("linear", members=0, member_lines=[LINE_A]))
    alice = net.phone("alice", 7101, LINE_A)
    register(alice, LINE_A, PASSWORD)
    alice.drop()
    call = dial(alice, "*52")
    call.ack(alice.response(200))
    alice.respond(alice.request("BYE"), 200)
    assert len(net.records) == 1, "the 407 before it is no record"
    record = net.records[0]
    assert (record.kind, record.callee, record.outcome, record.member) == (
        "direct",
        "*52",
        "answered",
        None,
    )
    assert (record.release_code, record.hangup, record.answer) == (200, "server", 0.0)


def test_a_blind_transfer_to_another_pilot_keeps_one_record_with_the_last_group() -> None:
    t = transfers.World()
    call, leg = t.call_alice()
    transfers.blind_transfer_to_sales(t, leg)
    transfers.caller_hangs_up_on_m2(t, call)
    assert t.net.b2b.active_calls == 0
    (record,) = t.net.records
    assert (record.group, record.pilot, record.callee) == ("Sales", transfers.SALES, PILOT)
    assert (record.outcome, record.member) == ("answered", member_uri(2))
    assert [(x.member, x.result) for x in record.offers] == [
        (LINE_A, "answered"),
        (member_uri(2), "answered"),
    ]


def test_an_attended_transfer_ends_the_consultation_calls_record_at_the_join() -> None:
    t = transfers.World()
    call, leg = t.call_alice()
    consultation = transfers.attended_transfer(t, leg)
    (joined,) = t.net.records  # the consultation call ended at the join
    assert (joined.call_id, joined.caller, joined.group) == (consultation.call_id, LINE_A, "Sales")
    assert (joined.outcome, joined.member) == ("answered", member_uri(2))
    transfers.caller_hangs_up_on_m2(t, call)
    assert t.net.b2b.active_calls == 0
    first = t.net.records[1]
    assert (first.call_id, first.caller, first.member, first.outcome) == (
        call.call_id,
        CALLER_NUMBER,
        member_uri(2),
        "answered",
    )
    assert len(t.net.records) == 2


def test_calls_still_up_when_the_driver_stops_get_their_records_as_they_stand() -> None:
    """A bridged call (its BYE unanswered) and a ringing one, when the server stops: one
    record each, answered (200) up to now and refused (503); never a second one."""
    w = World()
    net = w.net
    bridged = w.caller.invite(PILOT)
    w.answer(1, bridged)
    other = net.phone("caller2", 6001, "0699999999")
    other.invite(PILOT)  # m1 talks: m2 rings
    net.advance(20.0)
    net._route(net.b2b.abandon_all(now=net.now))
    assert net.b2b.active_calls == 2  # the calls are not ended: their records are
    by_caller = {r.caller: r for r in net.records}
    assert len(net.records) == 2
    answered, ringing = by_caller[CALLER_NUMBER], by_caller["0699999999"]
    assert (answered.outcome, answered.release_code, answered.hangup) == ("answered", 200, "server")
    assert (answered.end, answered.talk) == (EPOCH + 20.0, 20.0)
    assert (ringing.outcome, ringing.release_code, ringing.answer) == ("refused", 503, None)
    assert ringing.offers[0].member == M2 and ringing.offers[-1].result == "cancelled"
    net._route(net.b2b.abandon_all(now=net.now))
    bridged.bye()  # a late BYE ends the call: no second record
    net.advance(1.0)
    assert len(net.records) == 2
