"""Graceful shutdown: new calls refused with 503, remaining calls ended after the grace."""

from __future__ import annotations

from tests.support.b2bua_peers import CALLER_NUMBER, DOMAIN, LINE_A, PILOT, Network, make_config


def test_shutdown_refuses_new_calls_and_ends_active_ones_after_grace() -> None:
    net = Network(make_config("linear", members=2))
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    late = net.phone("late", 6001, "0611111111")
    m1 = net.phone("m1", 7001, "m1")
    m2 = net.phone("m2", 7002, "m2")

    call = caller.invite(PILOT)
    leg = m1.answering(m1.request("INVITE"))
    leg.reply(200)
    m1.request("ACK")
    ok = caller.response(200)
    call.ack(ok)
    caller.drop()

    net.at(5.0)
    net.shutdown(grace=10.0)
    refused_call = late.invite(PILOT)
    refused = late.response(503)
    assert refused.headers.get("Retry-After") == "30"
    refused_call.ack_failure(refused)
    m2.quiet()
    assert net.b2b.active_calls == 1

    # In-dialog traffic still works during the grace period.
    call.info(b"x")
    info = m1.request("INFO")
    m1.respond(info, 200, to_tag=leg.tag)
    caller.response(200, "INFO")

    net.at(14.9)
    caller.quiet()
    m1.quiet()
    net.at(15.0)
    bye_caller = caller.request("BYE")
    assert bye_caller.call_id == call.call_id and bye_caller.from_.tag == ok.to.tag
    bye_member = m1.request("BYE")
    assert bye_member.to.tag == leg.tag
    caller.respond(bye_caller, 200, to_tag=call.from_tag)
    m1.respond(bye_member, 200, to_tag=leg.tag)
    assert net.b2b.active_calls == 0
    assert net.ports_in_use == 0
    net.advance(100)
    caller.quiet()
    m1.quiet()


def test_shutdown_ends_a_ringing_call_with_503_and_cancels_members() -> None:
    net = Network(make_config("ring_all", members=2))
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    m1 = net.phone("m1", 7001, "m1")
    m2 = net.phone("m2", 7002, "m2")
    call = caller.invite(PILOT)
    invs = [m1.request("INVITE"), m2.request("INVITE")]
    for phone, inv in zip((m1, m2), invs, strict=True):
        phone.answering(inv).reply(180)
    net.shutdown(grace=2.0)
    net.at(2.0)
    final = caller.response(503)
    call.ack_failure(final)
    for phone, inv in zip((m1, m2), invs, strict=True):
        cancel = phone.request("CANCEL")
        assert cancel.top_via.branch == inv.top_via.branch
    assert net.ports_in_use == 0


def test_options_refused_but_register_still_answered_while_shutting_down() -> None:
    net = Network(make_config())
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    net.shutdown(grace=30.0)
    caller.simple("OPTIONS", f"sip:{DOMAIN}")
    caller.response(503, "OPTIONS")
    phone = net.phone("a", 6001, LINE_A)
    phone.register(LINE_A, call_id="reg-drain@test", cseq=1)
    phone.response(401, "REGISTER")  # phones keep registering while calls finish


def test_shutdown_with_zero_grace_ends_everything_at_the_next_timer() -> None:
    net = Network(make_config("linear", members=1))
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    m1 = net.phone("m1", 7001, "m1")
    call = caller.invite(PILOT)
    leg = m1.answering(m1.request("INVITE"))
    leg.reply(200)
    call.ack(caller.response(200))
    net.shutdown(grace=0.0)
    net.at(net.now)
    caller.request("BYE")
    m1.request("BYE")
    assert net.b2b.active_calls == 0


def test_a_draining_node_answers_options_with_503_but_calls_in_progress_get_200() -> None:
    """A load balancer's OPTIONS probe takes a draining node out (503 + Retry-After);
    an OPTIONS inside a call in progress still gets 200: that call keeps working."""
    net = Network(make_config("linear", members=1))
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    prober = net.phone("lb", 6100, "lb")
    m1 = net.phone("m1", 7001, "m1")
    call = caller.invite(PILOT)
    leg = m1.answering(m1.request("INVITE"))
    leg.reply(200)
    m1.request("ACK")
    call.ack(caller.response(200))
    caller.drop()

    prober.simple("OPTIONS", f"sip:{DOMAIN}")
    assert prober.response(200, "OPTIONS").headers.get("Retry-After") is None
    net.at(5.0)
    net.shutdown(grace=60.0)
    prober.simple("OPTIONS", f"sip:{DOMAIN}")
    refused = prober.response(503, "OPTIONS")
    assert refused.headers.get("Retry-After") == "30"
    prober.simple("OPTIONS", f"sip:{PILOT}@{DOMAIN}")  # whatever its Request-URI
    prober.response(503, "OPTIONS")

    caller.send(call.in_dialog("OPTIONS"))
    caller.response(200, "OPTIONS")
    assert net.b2b.active_calls == 1
    net.at(65.0)  # the grace is over: the call ends, the node keeps refusing probes
    assert net.b2b.active_calls == 0
    prober.simple("OPTIONS", f"sip:{DOMAIN}")
    prober.response(503, "OPTIONS")
