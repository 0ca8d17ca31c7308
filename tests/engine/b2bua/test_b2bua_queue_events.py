"""Queue events: a group call's Asterisk queue_log events come out of the B2BUA as they
happen, with real positions and ring times (engine/b2bua/call_records.py)."""

from __future__ import annotations

from huntgroup.engine.b2bua.call_records import OfferRecord, QueueEvent
from tests.engine.b2bua import test_b2bua_transfers as transfers
from tests.engine.b2bua.test_b2bua_call_records import EPOCH, M1, M2, World
from tests.support.b2bua_peers import (
    CALLER_NUMBER,
    GROUP,
    LINE_A,
    PILOT,
    Network,
    Phone,
    UacCall,
    member_uri,
)


def lines(w: World) -> list[tuple[float, str, str, tuple[str, ...]]]:
    """The queue events so far: (time, agent, event, data); every one of the group."""
    assert all(e.queue == GROUP for e in w.net.queue_events)
    return [(e.at, e.agent, e.event, e.data) for e in w.net.queue_events]


def queued(w: World, name: str, port: int) -> tuple[Phone, UacCall]:
    """A new caller that waits in the queue, answered with the group's music."""
    phone = w.net.phone(name, port, f"06000000{port % 100:02d}")
    call = phone.invite(PILOT)
    call.ack(phone.response(200))
    return phone, call


def test_an_answered_call_enters_rings_connects_and_completes_each_when_it_happens() -> None:
    w = World(no_answer_timeout=10)
    net = w.net
    call = w.caller.invite(PILOT)
    assert lines(w) == [(EPOCH, "NONE", "ENTERQUEUE", ("", CALLER_NUMBER, "1"))]
    assert net.records == []  # the call is still up: its ENTERQUEUE is out already
    w.m[1].answering(w.m[1].request("INVITE")).reply(180)
    net.advance(10.0)  # m1's ring timeout
    w.m[1].respond(w.m[1].request("CANCEL"), 200)
    assert lines(w)[1:] == [(EPOCH + 10.0, M1, "RINGNOANSWER", ("10000",))]
    leg = w.m[2].answering(w.m[2].request("INVITE"))
    net.advance(3.0)
    leg.reply(200)
    w.m[2].request("ACK")
    call.ack(w.caller.response(200))
    assert lines(w)[2:] == [(EPOCH + 13.0, M2, "CONNECT", ("13", call.call_id, "3"))]
    net.advance(60.0)
    leg.bye()
    w.caller.respond(w.caller.request("BYE"), 200)
    assert lines(w)[3:] == [(EPOCH + 73.0, M2, "COMPLETEAGENT", ("13", "60", "1"))]
    record = w.only()
    assert record.position == 1
    assert record.offers == (
        OfferRecord(M1, EPOCH, "no_answer", EPOCH + 10.0),
        OfferRecord(M2, EPOCH + 10.0, "answered", EPOCH + 13.0),
    )
    assert all(isinstance(e, QueueEvent) for e in net.queue_events)


def test_a_refused_offer_rings_for_as_long_as_it_rang() -> None:
    w = World()
    w.caller.invite(PILOT)
    leg = w.m[1].answering(w.m[1].request("INVITE"))
    leg.reply(180)
    w.net.advance(2.5)
    leg.reply(486)
    assert lines(w)[1:] == [(EPOCH + 2.5, M1, "RINGNOANSWER", ("2500",))]


def test_positions_count_the_callers_ahead_and_move_up_as_they_leave() -> None:
    w = World(members=1)
    net = w.net
    first = w.caller.invite(PILOT)  # rings m1: it waits in the queue, first
    w.m[1].answering(w.m[1].request("INVITE")).reply(180)
    b, in_b = queued(w, "b", 6001)  # nobody free: queued behind the first
    assert lines(w)[-1][2:] == ("ENTERQUEUE", ("", "0600000001", "2"))
    first.cancel()  # the first caller gives up while m1 rings
    w.m[1].respond(w.m[1].request("CANCEL"), 200)
    assert [x[2:] for x in lines(w)[-2:]] == [
        ("RINGCANCELED", ("0",)),
        ("ABANDON", ("1", "1", "0")),
    ]
    # m1 rings for b now; three more callers wait behind it
    w.m[1].answering(w.m[1].request("INVITE")).reply(180)
    net.advance(1.0)
    callers = [queued(w, name, port) for name, port in (("c", 6002), ("d", 6003), ("e", 6004))]
    entered = [x for x in lines(w) if x[2] == "ENTERQUEUE"]
    assert [x[3][2] for x in entered] == ["1", "2", "2", "3", "4"]
    net.advance(5.0)
    d, in_d = callers[1]
    in_d.bye()  # d, third, hangs up: the callers behind it move up
    d.response(200, "BYE")
    assert lines(w)[-1] == (EPOCH + 6.0, "NONE", "ABANDON", ("3", "3", "5"))
    e, in_e = callers[2]
    in_e.bye()
    e.response(200, "BYE")
    assert lines(w)[-1][2:] == ("ABANDON", ("3", "4", "5"))
    del b, in_b
    record = next(r for r in net.records if r.call_id == in_e.call_id)
    assert record.position == 4
    assert len(net.b2b.records.waiting.groups[GROUP]) == 2  # b and c wait still


def test_a_full_queue_writes_full_alone_and_max_wait_an_exit_with_timeout() -> None:
    w = World(members=1, queue={"max_length": 1, "max_wait": 30})
    net = w.net
    first = w.caller.invite(PILOT)
    w.answer(1, first)
    queued(w, "b", 6001)
    full = net.phone("c", 6002, "0600000002")
    full.invite(PILOT)
    assert full.response(486)
    c_events = [e for e in net.queue_events if e.call_id != first.call_id]
    assert [(e.event, e.data) for e in c_events] == [
        ("ENTERQUEUE", ("", "0600000001", "1")),
        ("FULL", ("",)),
    ]
    net.advance(30.0)  # b's max_wait
    assert lines(w)[-1] == (EPOCH + 30.0, "NONE", "EXITWITHTIMEOUT", ("1", "1", "30"))


def events_of(net: Network, call: UacCall) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(queue, agent, event, data) of one call's queue events."""
    return [
        (e.queue, e.agent, e.event, e.data) for e in net.queue_events if e.call_id == call.call_id
    ]


def test_a_blind_transfer_to_another_pilot_ends_the_first_queues_part_and_enters_the_next() -> None:
    t = transfers.World()
    call, leg = t.call_alice()
    t.net.advance(20.0)
    transfers.blind_transfer_to_sales(t, leg)
    transfers.caller_hangs_up_on_m2(t, call)
    assert [x[:3] for x in events_of(t.net, call)] == [
        (GROUP, "NONE", "ENTERQUEUE"),
        (GROUP, LINE_A, "CONNECT"),
        (GROUP, LINE_A, "BLINDTRANSFER"),
        ("Sales", "NONE", "ENTERQUEUE"),
        ("Sales", member_uri(2), "CONNECT"),
        ("Sales", member_uri(2), "COMPLETECALLER"),
    ]
    assert events_of(t.net, call)[2][3] == (transfers.SALES, "", "0", "20", "1")
    assert t.net.b2b.records.waiting.groups == {}


def test_an_attended_transfer_ends_the_queues_part_with_attendedtransfer() -> None:
    t = transfers.World()
    call, leg = t.call_alice()
    transfers.attended_transfer(t, leg)
    transfers.caller_hangs_up_on_m2(t, call)
    assert [x[1:3] for x in events_of(t.net, call)] == [
        ("NONE", "ENTERQUEUE"),
        (LINE_A, "CONNECT"),
        (LINE_A, "ATTENDEDTRANSFER"),
    ]


def test_a_group_nobody_can_take_turns_the_caller_away_with_joinempty() -> None:
    w = World(members=0, member_lines=[LINE_A], queue={"when_empty": "overflow"})
    w.caller.invite(PILOT)  # LINE_A never registered: nobody available
    assert w.caller.response(480)
    assert lines(w) == [(EPOCH, "NONE", "JOINEMPTY", ("",))]
    assert w.only().position is None
