"""server.limits in the B2BUA: a call beyond them gets 503 and rings nobody."""

from __future__ import annotations

import logging

import pytest

from huntgroup.engine.sip.address import Peer
from tests.engine.b2bua.test_b2bua_lines import register
from tests.support.b2bua_peers import DOMAIN, LINE_A, PASSWORD, PILOT, Network, build, make_config


@pytest.mark.parametrize(
    ("limits", "retry"), [({"max_calls": 1}, "5"), ({"max_call_rate": 1}, "1")]
)
def test_the_b2bua_refuses_new_calls_beyond_the_limits_and_keeps_the_others(
    limits: dict[str, float], retry: str
) -> None:
    config = make_config("linear", members=2)
    config = config.model_copy(
        update={
            "server": config.server.model_copy(
                update={"limits": config.server.limits.model_validate(limits)}
            )
        }
    )
    net = Network(config)
    m1, m2 = net.phone("m1", 7001, "m1"), net.phone("m2", 7002, "m2")
    first_phone, second_phone = (
        net.phone("a", 6001, "0600000001"),
        net.phone("b", 6002, "0600000002"),
    )
    first = first_phone.invite(PILOT)
    m1.request("INVITE")
    second_phone.invite(PILOT)
    refused = second_phone.response(503)
    assert refused.headers.get("Retry-After") == retry
    assert not m2.has("INVITE"), "the refused call rang nobody"
    assert net.b2b.active_calls == 1 and net.b2b.counters.over_limits == 1
    first.cancel()
    first_phone.response(200, "CANCEL")
    net.advance(1.0)  # the first call is gone and a second has passed: room again
    second_phone.invite(PILOT)
    assert m1.has("INVITE") or m2.has("INVITE")
    assert net.b2b.counters.over_limits == 1


# ------------------------------------------- overload and floods (issue 9, point 11)


def limited(**limits: object) -> Network:
    config = make_config("linear", members=2)
    server = config.server.model_copy(
        update={"limits": config.server.limits.model_validate(limits)}
    )
    return Network(config.model_copy(update={"server": server}))


def test_a_lagging_loop_refuses_new_invites_at_once_while_calls_in_progress_go_on() -> None:
    net = limited(max_loop_lag=0.1)
    m1 = net.phone("m1", 7001, "m1")
    caller = net.phone("a", 6001, "0600000001")
    call = caller.invite(PILOT)
    leg = m1.answering(m1.request("INVITE"))
    leg.reply(200, rtp=27001)
    m1.request("ACK")
    call.ack(caller.response(200))
    caller.drop()
    ringing_caller = net.phone("r", 6003, "0600000003")
    ringing = ringing_caller.invite(PILOT)  # rings m2 (m1 is busy)
    assert net.phone("m2", 7002, "m2") is not None
    for i in range(10):  # the driver reports a loop 300 ms late for 1 s
        net.b2b.admission.loop_lag(0.3, now=net.now + i * 0.1)
    net.advance(1.0)
    transactions = len(net.b2b.layer)
    newcomer = net.phone("b", 6002, "0600000002")
    newcomer.invite(PILOT)
    refused = newcomer.response(503)
    assert refused.headers.get("Retry-After") == "1"
    assert len(net.b2b.layer) == transactions, "the 503 is stateless: no transaction kept"
    assert net.b2b.counters.overload_refused == 1
    ringing.retransmit_invite()  # a call taken in before: its retransmission is no newcomer
    assert not ringing_caller.has(503)
    ringing.cancel()  # CANCEL of a call in progress
    ringing_caller.response(200, "CANCEL")
    ringing_caller.response(487)
    call.reinvite(b"")  # in-dialog requests pass: relayed to the member
    reinvite = m1.request("INVITE")
    m1.respond(reinvite, 200, body=b"")
    caller.response(200)
    call.bye()
    caller.response(200, "BYE")
    assert m1.has("BYE")
    assert net.b2b.active_calls == 0
    assert net.b2b.counters.overload_refused == 1


def test_one_source_over_its_invite_rate_gets_503_then_silence_and_others_still_call() -> None:
    net = limited(per_source_invite_rate=1, per_source_invite_burst=2)
    net.phone("m1", 7001, "m1"), net.phone("m2", 7002, "m2")
    flooder = net.phone("f", 6001, "0600000001")
    for _ in range(6):
        flooder.invite(PILOT)
    assert flooder.count(180) + flooder.count(100) >= 2, "the burst is taken in"
    refusals = [m for m in flooder.log if getattr(m.message, "status", 0) == 503]
    assert len(refusals) == 2
    assert all(r.message.headers.get("Retry-After") == "2" for r in refusals)
    assert net.b2b.counters.flood_refused == 2 and net.b2b.counters.flood_dropped == 2
    other = net.phone("o", 6100, "0600000009")
    other.peer = Peer("127.0.0.2", 6100, "UDP")  # another source address
    net.phones[("127.0.0.2", 6100)] = other
    other.invite(PILOT)
    assert not other.has(503) and net.b2b.active_calls == 3, "taken in (queued)"
    net.advance(2.0)  # two tokens back for the flooder
    flooder.drop()
    flooder.invite(PILOT)
    assert not flooder.has(503)


def test_one_source_over_its_register_rate_gets_503() -> None:
    net = limited(per_source_register_rate=1, per_source_register_burst=1)
    phone = net.phone("p", 6001, LINE_A)
    phone.register(LINE_A, call_id="r1@test", cseq=1)
    assert phone.has(401)
    phone.register(LINE_A, call_id="r1@test", cseq=2)
    refused = phone.response(503, "REGISTER")
    assert refused.headers.get("Retry-After") == "1"


def test_shed_invites_are_refused_from_their_bytes_or_parsed_alike() -> None:
    net = limited(max_loop_lag=0.1)
    net.phone("m1", 7001, "m1")
    for i in range(10):
        net.b2b.admission.loop_lag(0.5, now=i * 0.1)
    net.advance(1.0)
    caller = net.phone("a", 6001, "0600000001")
    call = caller.invite(PILOT)  # the quick path, from the bytes
    quick = caller.response(503)
    assert quick.to.tag and quick.to.tag.startswith("shed-")
    assert quick.call_id == call.call_id and quick.headers.get("Retry-After") == "1"
    transactions = len(net.b2b.layer)
    assert call.ack_failure(quick) == [], "its ACK is dropped unparsed"
    assert len(net.b2b.layer) == transactions
    # a folded header line: the quick path steps aside, the parsed path refuses it alike
    folded = caller.invite(PILOT, extra=(("Subject", "a\r\n folded subject"),))
    parsed = caller.response(503)
    assert parsed.call_id == folded.call_id and parsed.headers.get("Retry-After") == "1"
    assert net.b2b.counters.overload_refused == 2
    assert net.b2b.active_calls == 0 and len(net.b2b.layer) == transactions


def test_a_request_from_a_stream_is_shed_after_parsing() -> None:
    from huntgroup.engine.sip.parser import parse_datagram

    net = limited(per_source_invite_rate=1, per_source_invite_burst=1)
    net.phone("m1", 7001, "m1")
    caller = net.phone("a", 6001, "0600000001")
    caller.invite(PILOT)  # takes the only token
    data = build(
        f"INVITE sip:{PILOT}@voip.example.net SIP/2.0",
        [
            ("Via", "SIP/2.0/TCP 127.0.0.1:6001;branch=z9hG4bKtcp1"),
            ("From", "<sip:0600000001@voip.example.net>;tag=t1"),
            ("To", f"<sip:{PILOT}@voip.example.net>"),
            ("Call-ID", "tcp-1@test"),
            ("CSeq", "1 INVITE"),
            ("Contact", "<sip:0600000001@127.0.0.1:6001;transport=tcp>"),
            ("Max-Forwards", "70"),
        ],
    )
    tcp = Peer("127.0.0.1", 6001, "TCP")
    outputs = net.b2b.receive_message(parse_datagram(data), tcp, now=net.now)
    assert len(outputs) == 1 and b" 503 " in outputs[0].data.split(b"\r\n", 1)[0]
    assert outputs[0].destination == tcp


def test_a_shed_503_goes_to_the_real_source_never_to_the_via() -> None:
    net = limited(max_loop_lag=0.1)
    for i in range(10):
        net.b2b.admission.loop_lag(0.5, now=i * 0.1)
    net.advance(1.0)
    phone = net.phone("a", 6001, "0600000001")
    for n, folded in enumerate((False, True)):  # the quick path, then the parsed one
        headers = [
            ("Via", f"SIP/2.0/UDP 192.0.2.99:5999;branch=z9hG4bKvictim{n};rport"),
            ("From", "<sip:0600000001@voip.example.net>;tag=t1"),
            ("To", f"<sip:{PILOT}@voip.example.net>"),
            ("Call-ID", f"victim-{n}@test"),
            ("CSeq", "1 INVITE"),
            ("Max-Forwards", "70"),
        ]
        if folded:
            headers.append(("Subject", "a\r\n folded line"))
        outputs = phone.send(build(f"INVITE sip:{PILOT}@voip.example.net SIP/2.0", headers))
        assert [o.destination for o in outputs] == [phone.peer]
        refused = phone.response(503)
        assert refused.top_via.received == "127.0.0.1" and refused.top_via.rport == 6001
    assert not net.stray


@pytest.mark.parametrize("quick", [True, False], ids=["from-bytes", "parsed"])
def test_a_trusted_peer_has_no_per_source_limit(quick: bool) -> None:
    """A trunk or an SBC carries many callers from one address: the per-source bucket
    that stops a flooder (above) does not apply to ``server.trusted_peers``."""
    config = make_config("linear", members=2)
    server = config.server.model_copy(
        update={
            "limits": config.server.limits.model_validate(
                {"per_source_invite_rate": 1, "per_source_invite_burst": 2}
            ),
            "trusted_peers": ("127.0.0.2",),
        }
    )
    net = Network(config.model_copy(update={"server": server}))
    net.phone("m1", 7001, "m1"), net.phone("m2", 7002, "m2")
    sbc = net.phone("sbc", 6200, "0600000007")
    sbc.peer = Peer("127.0.0.2", 6200, "UDP")
    net.phones[("127.0.0.2", 6200)] = sbc
    extra = () if quick else (("Subject", "a\r\n folded subject"),)  # folded: parsed path
    for _ in range(6):
        sbc.invite(PILOT, extra=extra)
    assert not sbc.has(503)
    assert net.b2b.counters.flood_refused == 0 and net.b2b.counters.flood_dropped == 0
    assert net.b2b.active_calls == 6
    flooder = net.phone("f", 6001, "0600000001")  # an untrusted source: limited as before
    for _ in range(4):
        flooder.invite(PILOT)
    assert flooder.has(503)


# ------------------------------------------------------ review 2: C, D, suspicion 1


def raw(method: str, i: int, host: str, port: int = 5060) -> tuple[bytes, Peer]:
    """A new out-of-dialog INVITE or REGISTER from ``host``:``port`` (no credentials)."""
    shown = f"[{host}]" if ":" in host else host
    number = f"01999{i:05d}"
    ruri = f"sip:{PILOT}@{DOMAIN}" if method == "INVITE" else f"sip:{DOMAIN}"
    to = PILOT if method == "INVITE" else number
    headers = [
        ("Via", f"SIP/2.0/UDP {shown}:{port};branch=z9hG4bKr2{method}{i}"),
        ("Max-Forwards", "70"),
        ("From", f"<sip:{number}@{DOMAIN}>;tag=t{i}"),
        ("To", f"<sip:{to}@{DOMAIN}>"),
        ("Call-ID", f"r2-{method}-{i}@{shown}"),
        ("CSeq", f"1 {method}"),
        ("Contact", f"<sip:{number}@{shown}:{port}>"),
    ]
    return build(f"{method} {ruri} SIP/2.0", headers), Peer(host, port, "UDP")


def flood(net: Network, method: str, hosts: list[str], port: int = 5060) -> int:
    """Each host sends one new request; how many the per-source limits stopped."""
    before = net.b2b.counters.flood_refused + net.b2b.counters.flood_dropped
    for i, host in enumerate(hosts):
        net.b2b.receive_datagram(*raw(method, i, host, port), now=net.now)
    return net.b2b.counters.flood_refused + net.b2b.counters.flood_dropped - before


def test_ipv6_flooders_are_limited_per_64_like_the_connection_caps() -> None:
    """Review 2, C: one host owns a /64; rotating addresses in it does not get a new
    bucket each time (connections.source_of is the key)."""
    net = limited(per_source_invite_rate=1, per_source_invite_burst=1)
    assert flood(net, "INVITE", [f"2001:db8:1:2::{i + 1:x}" for i in range(40)]) == 39
    assert len(net.b2b.source_limits["INVITE"]) == 1
    assert flood(net, "INVITE", ["2001:db8:1:3::1"]) == 0  # another /64


def test_a_flood_from_a_phones_host_does_not_silence_the_registered_phone() -> None:
    """Review 2, D: unauthenticated REGISTERs from another port of the phone's IP (an
    office NAT, a blind UDP spoofer) empty that host's bucket, not the phone's: a
    request from the exact transport address of a live binding has a bucket of its own."""
    net = limited(per_source_register_rate=1, per_source_register_burst=4)
    alice = net.phone("alice", 7101, LINE_A)
    assert register(alice, LINE_A, PASSWORD).status == 200
    assert flood(net, "REGISTER", ["127.0.0.1"] * 40, port=7199) == 40 - 2  # 2 tokens left
    alice.register(LINE_A, call_id="refresh@test", cseq=1)
    assert alice.response(401, "REGISTER")  # answered: the phone's own bucket
    for n in range(4):  # that bucket is limited too, at the same rate
        alice.register(LINE_A, call_id=f"more{n}@test", cseq=1)
    assert alice.has(503)


def test_the_upstreams_registers_are_limited_a_trusted_peers_draw_a_tenfold_bucket() -> None:
    """Review 2, suspicion 1: only INVITE is exempt for the trust domain. The upstream never
    registers and a spoofed UDP source can take its address: its REGISTERs are limited
    like anyone's. An SBC in trusted_peers registers many phones: its own bucket, ten
    times the rate and burst."""
    config = make_config("linear", members=2)
    server = config.server.model_copy(
        update={
            "limits": config.server.limits.model_validate(
                {"per_source_register_rate": 1, "per_source_register_burst": 2}
            ),
            "trusted_peers": ("198.51.100.7",),
            "upstream": "sip:192.0.2.50:5060",
        }
    )
    net = Network(config.model_copy(update={"server": server}))
    assert flood(net, "REGISTER", ["192.0.2.50"] * 30) == 30 - 2
    assert flood(net, "REGISTER", ["198.51.100.7"] * 30) == 30 - 20
    assert flood(net, "INVITE", ["198.51.100.7"] * 30) == 0  # its calls: not limited


def test_one_warning_per_overload_episode_while_a_share_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Refusing a share lets some new calls in: that is no end of the overload (each
    admitted call logged "overload over", then the next refusal "overloaded")."""
    net = limited(max_loop_lag=0.1)
    net.phone("m1", 7001, "m1")
    t = net.now
    for i in range(1, 13):  # 0.6 s of input 120 ms late: a share of new calls is refused
        net.b2b.admission.loop_lag(0.12, now=t + i * 0.05)
    net.advance(0.6)
    assert 0.0 < net.b2b.admission.shedding(now=net.now) < 1.0
    caplog.set_level(logging.WARNING, logger="huntgroup.calls")
    for n in range(8):
        net.phone(f"c{n}", 6100 + n, f"06000001{n:02d}").invite(PILOT)
    assert 0 < net.b2b.counters.overload_refused < 8
    warnings = [r.getMessage() for r in caplog.records]
    assert sum(w.startswith("overloaded") for w in warnings) == 1
    assert not any(w.startswith("overload over") for w in warnings)
