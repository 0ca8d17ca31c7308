"""A line's own calls to other numbers go out through server.upstream, after digest."""

from __future__ import annotations

from huntgroup.config.models import Config
from tests.engine.b2bua.test_b2bua_lines import register
from tests.support.b2bua_peers import (
    CALLER_NUMBER,
    DOMAIN,
    LINE_A,
    PASSWORD,
    PILOT,
    Network,
    digest_authorization,
    make_config,
    parse_challenge,
)

UPSTREAM_PORT = 7900
EXTERNAL = "0611223344"


def upstream_config() -> Config:
    cfg = make_config("linear", members=0, member_lines=[LINE_A])
    server = cfg.server.model_copy(update={"upstream": f"sip:127.0.0.1:{UPSTREAM_PORT}"})
    return cfg.model_copy(update={"server": server})


def authorised_invite(net: Network, alice_port: int = 7101):
    alice = net.phone("alice", alice_port, LINE_A)
    register(alice, LINE_A, PASSWORD)
    alice.drop()
    first = alice.invite(EXTERNAL)
    challenge = alice.response(407)
    offered = {
        parse_challenge(v)["algorithm"]: v for v in challenge.headers.get_all("Proxy-Authenticate")
    }
    first.ack_failure(challenge)
    auth = digest_authorization(
        offered["SHA-256"],
        username=LINE_A,
        password=PASSWORD,
        method="INVITE",
        uri=f"sip:{EXTERNAL}@{DOMAIN}",
    )
    call = alice.invite(EXTERNAL, extra=[("Proxy-Authorization", auth)])
    return alice, call


def test_outgoing_call_is_challenged_then_sent_to_the_upstream() -> None:
    net = Network(upstream_config())
    upstream = net.phone("upstream", UPSTREAM_PORT, "core")
    alice, call = authorised_invite(net)
    invite = upstream.request("INVITE")
    assert str(invite.uri) == f"sip:{EXTERNAL}@127.0.0.1:{UPSTREAM_PORT}"
    assert invite.from_.uri.user == LINE_A  # type: ignore[union-attr]
    leg = upstream.answering(invite)
    leg.reply(180)
    alice.response(180)
    leg.reply(200)
    upstream.request("ACK")
    ok = alice.response(200)
    call.ack(ok)
    assert net.relays, "media is relayed between the line and the upstream"
    call.bye()
    alice.response(200, "BYE")
    assert upstream.request("BYE")


def test_wrong_password_on_an_outgoing_call_is_403() -> None:
    net = Network(upstream_config())
    alice = net.phone("alice", 7101, LINE_A)
    first = alice.invite(EXTERNAL)
    challenge = alice.response(407)
    first.ack_failure(challenge)
    value = challenge.headers.get_all("Proxy-Authenticate")[0]
    auth = digest_authorization(
        value, username=LINE_A, password="wrong", method="INVITE", uri=f"sip:{EXTERNAL}@{DOMAIN}"
    )
    alice.invite(EXTERNAL, extra=[("Proxy-Authorization", auth)])
    alice.response(403)


def test_without_upstream_other_numbers_are_404() -> None:
    net = Network(make_config("linear", members=0, member_lines=[LINE_A]))
    alice = net.phone("alice", 7101, LINE_A)
    alice.invite(EXTERNAL)
    alice.response(404)


def test_a_line_on_an_outgoing_call_is_busy_for_its_group_and_gains_talk_time() -> None:
    net = Network(upstream_config())
    upstream = net.phone("upstream", UPSTREAM_PORT, "core")
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    alice, call = authorised_invite(net)
    leg = upstream.answering(upstream.request("INVITE"))
    leg.reply(200)
    call.ack(alice.response(200))
    net.at(net.now + 30)
    alice.drop()
    caller.invite(PILOT)
    assert not alice.has("INVITE"), "alice is on her own call: not offered"
    caller.response(200)  # queued with music
    call.bye()
    # alice is free again: the queued caller is offered to her
    assert alice.request("INVITE")
    assert net.b2b.core.talk_time("Support", LINE_A, now=net.now) >= 30
