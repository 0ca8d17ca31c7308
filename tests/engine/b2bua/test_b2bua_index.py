"""The one index of calls and the one timer heap of the B2BUA (engine/b2bua/index.py, context.py).

A call is found through every table while it lasts, and forgotten by all of them in
one step when it ends; a leg still owed a CANCEL outlives it as an orphan until its
INVITE transaction ends. The timer heap keeps one entry per armed timer and skips
the entries that no longer match their timer (the RoutingCore's way).
"""

from __future__ import annotations

from huntgroup.engine.b2bua.calls import CallState, LegState
from huntgroup.engine.b2bua.context import TimerKind
from tests.engine.b2bua.test_b2bua_forward_chains import B_PILOT, chain, refuse
from tests.support.b2bua_peers import (
    CALLER_NUMBER,
    PILOT,
    Network,
    UacCall,
    UasCall,
    make_config,
)

EMPTY = {
    "calls": 0,
    "by_core": 0,
    "by_invite": 0,
    "by_dialog": 0,
    "legs_by_tx": 0,
    "legs_by_call_id": 0,
    "orphans": 0,
    "requests": 0,
}


def call_to_m1(status: int) -> tuple[Network, UacCall, UasCall]:
    """A caller calls the pilot; m1 answers its INVITE with ``status`` (180 or 200)."""
    net = Network(make_config("linear", members=1))
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    m1 = net.phone("m1", 7001, "m1")
    call = caller.invite(PILOT)
    leg = m1.answering(m1.request("INVITE"))
    leg.reply(status)
    return net, call, leg


def ringing_call() -> tuple[Network, UacCall, UasCall]:
    net, call, leg = call_to_m1(180)
    call.phone.response(180)
    return net, call, leg


def test_a_ringing_call_is_found_through_every_table() -> None:
    net, _, _ = ringing_call()
    index = net.b2b.index
    assert index.sizes() == {
        **EMPTY,
        "calls": 1,
        "by_core": 1,
        "by_invite": 1,
        "by_dialog": 1,  # the caller's; the leg's once it answers
        "legs_by_tx": 1,
        "legs_by_call_id": 1,
    }
    (call,) = index.calls.values()
    (leg,) = call.legs.values()
    assert call.state is CallState.EARLY and leg.state is LegState.PROCEEDING
    assert index.by_invite[call.tx] is call
    assert index.by_core[call.core_id] is call
    assert index.legs_by_tx[leg.tx] == (call, leg)
    assert index.legs_by_call_id[leg.invite.call_id] == (call, leg)
    assert list(index.by_dialog.values()) == [(call, None)]


def test_a_cancelled_call_is_forgotten_at_once_and_its_leg_orphaned_until_it_ends() -> None:
    net, call, leg = ringing_call()
    caller, m1 = call.phone, leg.phone
    (record,) = net.b2b.index.calls.values()
    (leg_record,) = record.legs.values()
    call.cancel()
    caller.response(487)
    assert record.state is CallState.ENDED
    assert net.b2b.index.sizes() == {**EMPTY, "orphans": 1}
    assert net.b2b.index.orphans == {leg_record.tx: leg_record}
    cancel = m1.request("CANCEL")
    m1.respond(cancel, 200, "", to_tag=leg.tag)
    leg.reply(487)
    assert net.b2b.index.sizes() == EMPTY


def test_stale_timer_entries_are_skipped_and_dropped() -> None:
    net, call, leg = call_to_m1(200)
    caller, m1 = call.phone, leg.phone
    m1.request("ACK")
    ok = caller.response(200)
    kinds = {entry[2] for entry in net.b2b.timer_heap}
    assert {TimerKind.RETRANSMIT_2XX, TimerKind.SESSION} <= kinds
    call.ack(ok)  # the 2xx retransmissions stop: their entry no longer matches
    head = net.b2b.get_timer()
    assert head is not None
    assert all(
        entry[2] is not TimerKind.RETRANSMIT_2XX or not net.b2b.timer_live(entry)
        for entry in net.b2b.timer_heap
    )
    call.bye()
    caller.response(200, "BYE")
    m1.respond(m1.request("BYE"), 200)
    assert net.b2b.active_calls == 0
    # every entry belongs to the ended call: the next look drops them all
    assert net.b2b.next_timer() is None
    assert net.b2b.timer_heap == []


def test_a_shutdown_timer_of_a_second_begin_shutdown_supersedes_the_first() -> None:
    net = Network(make_config("linear", members=1))
    net.shutdown(30)
    net.shutdown(10)
    assert net.b2b.next_timer() == net.now + 10
    net.advance(10)
    assert net.b2b.shutdown_at is None
    assert net.b2b.next_timer() is None  # the first one's entry is stale


def test_a_call_forwarded_to_our_pilot_keeps_its_one_core_id() -> None:
    """The core follows a forward to one of our pilots under the same id: the call is
    found by it all along, is at the new pilot, and leaves no entry once over."""
    net = Network(chain(5))
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    m1, m2 = net.phone("m1", 7001, "m1"), net.phone("m2", 7002, "m2")
    call = caller.invite(PILOT)
    (record,) = net.b2b.index.calls.values()
    core_id = record.core_id
    assert record.number == PILOT
    refuse(m1)
    leg = m2.answering(m2.request("INVITE"))  # group B rings its member
    assert record.core_id == core_id and record.number == B_PILOT
    assert net.b2b.index.by_core == {core_id: record}
    leg.reply(200)
    m2.request("ACK")
    call.ack(caller.response(200))
    call.bye()
    caller.response(200, "BYE")
    leg.phone.respond(m2.request("BYE"), 200)
    assert net.b2b.index.sizes() == EMPTY
