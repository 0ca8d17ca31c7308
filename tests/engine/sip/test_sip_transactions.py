"""Transactions and the transaction layer with scripted time (RFC 3261 §17)."""

from __future__ import annotations

import random

import pytest

from huntgroup.engine.sip import (
    AckTimedOut,
    CancelReceived,
    Headers,
    Peer,
    Request,
    RequestReceived,
    Response,
    ResponseReceived,
    SendFailed,
    SendMessage,
    TimerConfig,
    TransactionLayer,
    TransactionOutput,
    TransactionTimedOut,
    TransportFailed,
    TwoXXRetransmitter,
    make_cancel,
    make_response,
    new_branch,
    parse_datagram,
    parse_uri,
)
from huntgroup.errors import ConfigError, LocalProtocolError

UDP_PEER = Peer("192.0.2.10", 5060, "UDP")
TCP_PEER = Peer("192.0.2.10", 5060, "TCP")


def make_request(
    method: str = "INVITE",
    *,
    branch: str = "z9hG4bKabc123",
    transport: str = "UDP",
    sent_by: str = "192.0.2.10:5060",
    cseq: int = 1,
    call_id: str = "call-1@example.com",
) -> Request:
    return Request(
        method=method,
        uri=parse_uri("sip:bob@example.com"),
        headers=Headers(
            [
                ("Via", f"SIP/2.0/{transport} {sent_by};branch={branch}"),
                ("Max-Forwards", "70"),
                ("From", "<sip:alice@example.com>;tag=from1"),
                ("To", "<sip:bob@example.com>"),
                ("Call-ID", call_id),
                ("CSeq", f"{cseq} {method}"),
            ]
        ),
    )


def sends(actions: list[TransactionOutput]) -> list[Request | Response]:
    return [a.message for a in actions if isinstance(a, SendMessage)]


def run_until(layer: TransactionLayer, end: float) -> list[tuple[float, TransactionOutput]]:
    """Fire the layer's timers up to ``end``; return (time, action) pairs."""
    out: list[tuple[float, TransactionOutput]] = []
    while (deadline := layer.get_timer()) is not None and deadline <= end:
        out.extend((deadline, a) for a in layer.handle_timer(now=deadline))
    return out


def send_times(events: list[tuple[float, TransactionOutput]]) -> list[float]:
    return [t for t, a in events if isinstance(a, SendMessage)]


# ---- client INVITE ---------------------------------------------------------


def test_client_invite_timer_a_doubles_until_timer_b() -> None:
    layer = TransactionLayer()
    invite = make_request()
    key, actions = layer.send_request(invite, UDP_PEER, now=0.0)
    assert sends(actions) == [invite]
    events = run_until(layer, 100.0)
    # A: 0.5, 1, 2, 4, 8, 16 after the previous one -> sent at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5
    assert send_times(events) == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    timeouts = [(t, a) for t, a in events if isinstance(a, TransactionTimedOut)]
    assert timeouts == [(32.0, TransactionTimedOut(key, invite, "B"))]
    assert key not in layer and layer.get_timer() is None


def test_client_invite_over_tcp_never_retransmits() -> None:
    layer = TransactionLayer()
    invite = make_request(transport="TCP")
    key, actions = layer.send_request(invite, TCP_PEER, now=0.0)
    assert len(sends(actions)) == 1
    events = run_until(layer, 100.0)
    assert send_times(events) == []
    assert [a for _, a in events] == [TransactionTimedOut(key, invite, "B")]


def test_client_invite_provisional_stops_retransmissions() -> None:
    layer = TransactionLayer()
    invite = make_request()
    key, _ = layer.send_request(invite, UDP_PEER, now=0.0)
    ringing = make_response(invite, 180, to_tag="t1")
    assert layer.receive(ringing, UDP_PEER, now=0.2) == [ResponseReceived(key, ringing, UDP_PEER)]
    assert run_until(layer, 200.0) == []
    assert key in layer  # Proceeding has no timer: the TU decides when to give up


def test_client_invite_non_2xx_generates_ack_and_absorbs_retransmissions() -> None:
    layer = TransactionLayer()
    invite = make_request()
    key, _ = layer.send_request(invite, UDP_PEER, now=0.0)
    busy = make_response(invite, 486, to_tag="callee")
    actions = layer.receive(busy, UDP_PEER, now=0.3)
    assert actions[0] == ResponseReceived(key, busy, UDP_PEER)
    (ack,) = sends(actions)
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert ack.uri == invite.uri
    assert ack.headers.get_all("Via") == invite.headers.get_all("Via")
    assert ack.to.tag == "callee" and ack.from_.tag == "from1"
    assert (ack.cseq.number, ack.cseq.method) == (1, "ACK")
    assert ack.call_id == invite.call_id
    # A retransmitted 486 is not passed up again; the ACK is re-sent.
    again = layer.receive(busy, UDP_PEER, now=1.0)
    assert again == [SendMessage(ack, UDP_PEER, key)]
    # Timer D (32 s) ends the transaction; no INVITE retransmission happened.
    events = run_until(layer, 40.0)
    assert events == []
    assert key not in layer


def test_client_invite_2xx_goes_to_tu_and_retransmissions_too() -> None:
    layer = TransactionLayer()
    invite = make_request()
    key, _ = layer.send_request(invite, UDP_PEER, now=0.0)
    ok = make_response(invite, 200, to_tag="callee")
    assert layer.receive(ok, UDP_PEER, now=0.1) == [ResponseReceived(key, ok, UDP_PEER)]
    assert layer.receive(ok, UDP_PEER, now=0.6) == [ResponseReceived(key, ok, UDP_PEER)]
    assert run_until(layer, 31.0) == []  # no INVITE retransmission after 2xx
    run_until(layer, 32.1)  # timer M, 64*T1 after the first 2xx
    assert key not in layer
    assert layer.receive(ok, UDP_PEER, now=40.0) == [ResponseReceived(None, ok, UDP_PEER)]


def test_client_rejects_ack_and_bad_branch() -> None:
    layer = TransactionLayer()
    with pytest.raises(LocalProtocolError):
        layer.send_request(make_request("ACK"), UDP_PEER, now=0.0)
    with pytest.raises(LocalProtocolError):
        layer.send_request(make_request(branch="old2543"), UDP_PEER, now=0.0)
    layer.send_request(make_request(), UDP_PEER, now=0.0)
    with pytest.raises(LocalProtocolError):
        layer.send_request(make_request(), UDP_PEER, now=0.0)


# ---- client non-INVITE -------------------------------------------------------


def test_client_non_invite_timer_e_is_capped_at_t2() -> None:
    layer = TransactionLayer()
    options = make_request("OPTIONS")
    key, _ = layer.send_request(options, UDP_PEER, now=0.0)
    events = run_until(layer, 100.0)
    gaps = [b - a for a, b in zip([0.0, *send_times(events)], send_times(events), strict=False)]
    assert gaps[:4] == [0.5, 1.0, 2.0, 4.0]
    assert all(g == 4.0 for g in gaps[3:])
    assert send_times(events)[-1] < 32.0
    assert [a for _, a in events if not isinstance(a, SendMessage)] == [
        TransactionTimedOut(key, options, "F")
    ]
    assert [t for t, a in events if isinstance(a, TransactionTimedOut)] == [32.0]


def test_client_non_invite_proceeding_retransmits_every_t2() -> None:
    layer = TransactionLayer()
    bye = make_request("BYE")
    key, _ = layer.send_request(bye, UDP_PEER, now=0.0)
    trying = make_response(bye, 100)
    assert layer.receive(trying, UDP_PEER, now=0.1) == [ResponseReceived(key, trying, UDP_PEER)]
    events = run_until(layer, 12.0)
    assert send_times(events) == [0.5, 4.5, 8.5]
    ok = make_response(bye, 200, to_tag="x")
    assert layer.receive(ok, UDP_PEER, now=9.0) == [ResponseReceived(key, ok, UDP_PEER)]
    assert layer.receive(ok, UDP_PEER, now=9.5) == []  # absorbed in Completed
    events = run_until(layer, 20.0)
    assert events == [] and key not in layer  # timer K = T4


def test_configurable_timers() -> None:
    layer = TransactionLayer(timers=TimerConfig(t1=0.1, t2=0.3, t4=1.0))
    layer.send_request(make_request("MESSAGE"), UDP_PEER, now=0.0)
    events = run_until(layer, 10.0)
    assert send_times(events) == pytest.approx(
        [
            0.1,
            0.3,
            0.6,
            0.9,
            1.2,
            1.5,
            1.8,
            2.1,
            2.4,
            2.7,
            3.0,
            3.3,
            3.6,
            3.9,
            4.2,
            4.5,
            4.8,
            5.1,
            5.4,
            5.7,
            6.0,
            6.3,
        ]
    )
    assert [t for t, a in events if isinstance(a, TransactionTimedOut)] == pytest.approx([6.4])
    with pytest.raises(ConfigError):
        TimerConfig(t1=0)
    with pytest.raises(ConfigError):
        TimerConfig(t1=2.0, t2=1.0)


# ---- server INVITE -----------------------------------------------------------


def receive_invite(
    layer: TransactionLayer, invite: Request, source: Peer = UDP_PEER
) -> tuple[RequestReceived, list[TransactionOutput]]:
    actions = layer.receive(invite, source, now=0.0)
    received = [a for a in actions if isinstance(a, RequestReceived)]
    assert len(received) == 1
    return received[0], actions


def test_server_invite_sends_trying_and_absorbs_retransmissions() -> None:
    layer = TransactionLayer()
    invite = make_request()
    event, actions = receive_invite(layer, invite)
    (trying,) = sends(actions)
    assert isinstance(trying, Response) and trying.status == 100
    assert event.key is not None
    # The retransmitted INVITE does not reach the TU; 100 is resent.
    assert sends(layer.receive(invite, UDP_PEER, now=0.5)) == [trying]
    ringing = make_response(event.request, 180, to_tag="me")
    layer.send_response(event.key, ringing, now=1.0)
    again = layer.receive(invite, UDP_PEER, now=1.5)
    assert again == [SendMessage(ringing, UDP_PEER, event.key)]


def test_server_invite_timer_g_and_ack() -> None:
    layer = TransactionLayer()
    invite = make_request()
    event, _ = receive_invite(layer, invite)
    assert event.key is not None
    busy = make_response(event.request, 486, to_tag="me")
    assert sends(layer.send_response(event.key, busy, now=1.0)) == [busy]
    events = run_until(layer, 9.0)
    # G: 0.5, 1, 2, 4, 4 ... after the response
    assert send_times(events) == [1.5, 2.5, 4.5, 8.5]
    assert sends(layer.receive(invite, UDP_PEER, now=9.1)) == [busy]
    ack = make_request("ACK", cseq=1)
    assert layer.receive(ack, UDP_PEER, now=9.2) == []
    assert run_until(layer, 14.2) == []  # confirmed: no more 486; timer I = T4
    assert event.key not in layer


def test_server_invite_timer_h_without_ack() -> None:
    layer = TransactionLayer()
    event, _ = receive_invite(layer, make_request())
    assert event.key is not None
    layer.send_response(event.key, make_response(event.request, 603, to_tag="me"), now=0.0)
    events = run_until(layer, 60.0)
    timeouts = [(t, a) for t, a in events if isinstance(a, TransactionTimedOut)]
    assert timeouts == [(32.0, TransactionTimedOut(event.key, event.request, "H"))]
    assert max(send_times(events)) < 32.0


def test_server_invite_2xx_is_sent_once_and_retransmissions_absorbed() -> None:
    layer = TransactionLayer()
    invite = make_request()
    event, _ = receive_invite(layer, invite)
    assert event.key is not None
    ok = make_response(event.request, 200, to_tag="me")
    assert sends(layer.send_response(event.key, ok, now=0.1)) == [ok]
    assert run_until(layer, 31.0) == []  # the TU retransmits 2xx, not the transaction
    assert layer.receive(invite, UDP_PEER, now=2.0) == []  # absorbed (RFC 6026 Accepted)
    # The TU's own retransmissions pass through the transaction.
    assert sends(layer.send_response(event.key, ok, now=2.5)) == [ok]
    # The ACK of a 2xx has its own branch: it reaches the TU without a key.
    ack = make_request("ACK", branch="z9hG4bKack2xx")
    (ack_event,) = layer.receive(ack, UDP_PEER, now=3.0)
    assert isinstance(ack_event, RequestReceived) and ack_event.key is None
    run_until(layer, 40.0)
    assert event.key not in layer


def test_server_over_tcp_does_not_retransmit() -> None:
    layer = TransactionLayer()
    invite = make_request(transport="TCP")
    event, _ = receive_invite(layer, invite, TCP_PEER)
    assert event.key is not None
    layer.send_response(event.key, make_response(event.request, 486, to_tag="me"), now=0.0)
    events = run_until(layer, 100.0)
    assert send_times(events) == []
    assert [a.timer for _, a in events if isinstance(a, TransactionTimedOut)] == ["H"]


# ---- server non-INVITE ---------------------------------------------------------


def test_server_non_invite_absorbs_then_resends_final() -> None:
    layer = TransactionLayer()
    options = make_request("OPTIONS")
    (event,) = layer.receive(options, UDP_PEER, now=0.0)
    assert isinstance(event, RequestReceived) and event.key is not None
    assert layer.receive(options, UDP_PEER, now=0.4) == []  # Trying: silent
    ok = make_response(event.request, 200, to_tag="me")
    layer.send_response(event.key, ok, now=0.5)
    assert sends(layer.receive(options, UDP_PEER, now=1.0)) == [ok]
    with pytest.raises(LocalProtocolError):
        layer.send_response(event.key, ok, now=1.1)
    run_until(layer, 32.4)
    assert event.key in layer
    run_until(layer, 32.5)  # timer J = 64*T1
    assert event.key not in layer
    # After J, a late copy is a new request again.
    (late,) = layer.receive(options, UDP_PEER, now=33.0)
    assert isinstance(late, RequestReceived)


# ---- CANCEL -------------------------------------------------------------------


def test_cancel_matches_the_invite_server_transaction() -> None:
    layer = TransactionLayer()
    invite = make_request()
    event, _ = receive_invite(layer, invite)
    cancel = make_cancel(invite)
    (cancel_event,) = layer.receive(cancel, UDP_PEER, now=1.0)
    assert isinstance(cancel_event, CancelReceived)
    assert cancel_event.invite_key == event.key
    assert cancel_event.key != event.key and cancel_event.key.method == "CANCEL"
    # The TU answers both: 200 to the CANCEL, 487 to the INVITE.
    assert event.key is not None
    layer.send_response(cancel_event.key, make_response(cancel_event.request, 200), now=1.0)
    terminated = make_response(event.request, 487, to_tag="me")
    assert sends(layer.send_response(event.key, terminated, now=1.0)) == [terminated]
    # A retransmitted CANCEL is answered by its own transaction.
    assert [
        m.status for m in sends(layer.receive(cancel, UDP_PEER, now=1.5)) if isinstance(m, Response)
    ] == [200]


def test_cancel_without_invite() -> None:
    layer = TransactionLayer()
    cancel = make_cancel(make_request(branch="z9hG4bKnothere"))
    (event,) = layer.receive(cancel, UDP_PEER, now=0.0)
    assert isinstance(event, CancelReceived) and event.invite_key is None


def test_client_cancel_is_a_separate_transaction() -> None:
    layer = TransactionLayer()
    invite = make_request()
    invite_key, _ = layer.send_request(invite, UDP_PEER, now=0.0)
    cancel_key, actions = layer.send_request(make_cancel(invite), UDP_PEER, now=1.0)
    assert cancel_key != invite_key and cancel_key.branch == invite_key.branch
    cancel = sends(actions)[0]
    assert isinstance(cancel, Request)
    ok = make_response(cancel, 200)
    assert layer.receive(ok, UDP_PEER, now=1.1) == [ResponseReceived(cancel_key, ok, UDP_PEER)]
    assert invite_key in layer


# ---- RFC 2543 fallback, transport errors ---------------------------------------


def test_rfc2543_branchless_requests_still_match() -> None:
    layer = TransactionLayer()
    invite = make_request(branch="old1")
    event, _ = receive_invite(layer, invite)
    assert event.key is not None and event.key.branch.startswith("rfc2543:")
    assert layer.receive(invite, UDP_PEER, now=0.5) != []  # retransmission: 100 resent, no event
    assert not any(isinstance(a, RequestReceived) for a in layer.receive(invite, UDP_PEER, now=0.6))
    layer.send_response(event.key, make_response(event.request, 404, to_tag="me"), now=1.0)
    assert layer.receive(make_request("ACK", branch="old1"), UDP_PEER, now=1.1) == []


def test_transport_error_ends_the_transaction() -> None:
    layer = TransactionLayer()
    invite = make_request()
    key, _ = layer.send_request(invite, UDP_PEER, now=0.0)
    assert layer.transport_error(SendFailed(key), now=0.1) == [TransportFailed(key, invite)]
    assert key not in layer and layer.get_timer() is None
    assert layer.transport_error(SendFailed(key), now=0.2) == []


def test_responses_are_routed_per_via_received_and_rport() -> None:
    layer = TransactionLayer()
    invite = make_request(sent_by="10.0.0.5:5060")
    invite = parse_datagram(invite.to_bytes().replace(b";branch=", b";rport;branch="))
    assert isinstance(invite, Request)
    nat = Peer("203.0.113.7", 40001, "UDP")
    actions = layer.receive(invite, nat, now=0.0)
    (trying,) = [a for a in actions if isinstance(a, SendMessage)]
    assert trying.destination == Peer("203.0.113.7", 40001, "UDP")
    via = trying.message.top_via
    assert (via.received, via.rport) == ("203.0.113.7", 40001)


# ---- many at once -------------------------------------------------------------


def test_many_transactions_at_once() -> None:
    rng = random.Random(7)
    layer = TransactionLayer()
    keys = []
    for i in range(500):
        method = "INVITE" if i % 2 else "OPTIONS"
        request = make_request(method, branch=new_branch(rng), call_id=f"c{i}")
        key, _ = layer.send_request(request, UDP_PEER, now=i * 0.01)
        keys.append((key, request))
    server_keys = []
    for i in range(500):
        request = make_request(
            "INVITE", branch=new_branch(rng), call_id=f"s{i}", sent_by="192.0.2.99"
        )
        event, _ = receive_invite(layer, request)
        server_keys.append(event)
    assert len(layer) == 1000
    # Half the client transactions get a final answer at t=1.
    answered = {k for n, (k, r) in enumerate(keys) if n % 4 == 0}
    for key, request in keys:
        if key in answered:
            layer.receive(make_response(request, 404, to_tag="t"), UDP_PEER, now=1.0)
    for event in server_keys:
        assert event.key is not None
        layer.send_response(event.key, make_response(event.request, 200, to_tag="t"), now=1.0)
    events = run_until(layer, 200.0)
    timed_out = {a.key for _, a in events if isinstance(a, TransactionTimedOut)}
    assert timed_out == {k for k, _ in keys} - answered
    times = [t for t, _ in events]
    assert times == sorted(times)
    assert len(layer) == 0 and layer.get_timer() is None


# ---- 2xx retransmission helper -------------------------------------------------


def test_2xx_retransmitter_doubles_to_t2_and_stops_on_ack() -> None:
    invite = make_request()
    ok = make_response(invite, 200, to_tag="me")
    helper = TwoXXRetransmitter(ok, UDP_PEER, now=10.0)
    times = []
    while (deadline := helper.get_timer()) is not None and deadline < 20.0:
        assert helper.handle_timer(now=deadline) == [SendMessage(ok, UDP_PEER)]
        times.append(deadline - 10.0)
    assert times == [0.5, 1.5, 3.5, 7.5]
    ack = make_request("ACK", branch="z9hG4bKother")
    ack = Request(
        ack.method, ack.uri, ack.headers.with_replaced("To", "<sip:bob@example.com>;tag=me")
    )
    assert helper.matches(ack)
    assert not helper.matches(make_request("ACK"))  # no To tag
    helper.ack_received()
    assert helper.get_timer() is None and helper.handle_timer(now=100.0) == []


def test_2xx_retransmitter_gives_up_at_64_t1() -> None:
    ok = make_response(make_request(), 200, to_tag="me")
    helper = TwoXXRetransmitter(ok, UDP_PEER, now=0.0)
    actions: list[SendMessage | AckTimedOut] = []
    while (deadline := helper.get_timer()) is not None:
        actions.extend(helper.handle_timer(now=deadline))
    assert actions[-1] == AckTimedOut(ok)
    assert sum(isinstance(a, SendMessage) for a in actions) == 10  # 0.5..31.5 -> 7.5+4k
    tcp_helper = TwoXXRetransmitter(ok, TCP_PEER, now=0.0)
    assert tcp_helper.get_timer() == 32.0
    assert tcp_helper.handle_timer(now=32.0) == [AckTimedOut(ok)]
