"""Digest replay and binding, enumeration and password guessing (issue 9, points 2 and 3)."""

from __future__ import annotations

import hashlib
import logging

import pytest
from b2bua_peers import (
    DOMAIN,
    HOST,
    LINE_A,
    PASSWORD,
    Network,
    Phone,
    UacCall,
    digest_authorization,
    make_config,
    parse_challenge,
    sdp,
)

from huntgroup.config.models import AuthConfig, Config
from huntgroup.engine.digest import MemoryNonceCounts
from huntgroup.engine.sip.message import Response
from huntgroup.engine.sip.routing import Peer

UNKNOWN = "0199999999"
EXTERNAL = "0611223344"
UPSTREAM_PORT = 7900


def config(**auth: object) -> Config:
    cfg = make_config("linear", members=0, member_lines=[LINE_A])
    server = cfg.server.model_copy(
        update={"upstream": f"sip:{HOST}:{UPSTREAM_PORT}", "auth": AuthConfig(**auth)}  # type: ignore[arg-type]
    )
    return cfg.model_copy(update={"server": server})


def challenge(phone: Phone, number: str, call_id: str) -> Response:
    phone.register(number, call_id=call_id, cseq=1)
    return phone.response(401, "REGISTER")


def answer(resp: Response, number: str, password: str, *, uri: str = f"sip:{DOMAIN}") -> str:
    value = resp.headers.get_all("WWW-Authenticate")[0]
    return digest_authorization(
        value, username=number, password=password, method="REGISTER", uri=uri
    )


def register_with(phone: Phone, number: str, authorization: str, call_id: str) -> Response:
    phone.register(number, call_id=call_id, cseq=2, authorization=authorization)
    final = phone.next()
    assert isinstance(final, Response)
    return final


def shape(response: Response) -> tuple[int, list[str], list[str]]:
    """What a prober can compare: status, header names, challenge parameter names."""
    names = [name.lower() for name, _ in response.headers]
    params = [
        ",".join(
            f"{k}={v if k in ('algorithm', 'qop', 'realm', 'opaque') else '*'}"
            for k, v in parse_challenge(value).items()
        )
        for value in response.headers.get_all("WWW-Authenticate")
        + response.headers.get_all("Proxy-Authenticate")
    ]
    return response.status, names, params


# ------------------------------------------------------------------ point 2


def legacy_authorization(resp: Response, number: str, password: str, uri: str) -> str:
    """An RFC 2069 answer (no qop, no nc) to our MD5 challenge."""
    md5 = next(v for v in resp.headers.get_all("WWW-Authenticate") if "MD5" in v)
    params = parse_challenge(md5)

    def h(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    ha1 = h(f"{number}:{params['realm']}:{password}")
    response = h(f"{ha1}:{params['nonce']}:{h(f'REGISTER:{uri}')}")
    return (
        f'Digest username="{number}", realm="{params["realm"]}", nonce="{params["nonce"]}", '
        f'uri="{uri}", response="{response}", algorithm=MD5, opaque="{params["opaque"]}"'
    )


def test_rfc2069_answers_are_refused_by_default() -> None:
    net = Network(config())
    alice = net.phone("alice", 7101, LINE_A)
    resp = challenge(alice, LINE_A, "l@test")
    legacy = legacy_authorization(resp, LINE_A, PASSWORD, f"sip:{DOMAIN}")
    assert register_with(alice, LINE_A, legacy, "l@test").status == 401
    assert not net.b2b.registrar.contacts(LINE_A, now=net.now)


def test_rfc2069_answers_only_behind_the_setting_which_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="huntgroup"):
        net = Network(config(allow_legacy_digest=True))
    assert any("allow_legacy_digest" in r.getMessage() for r in caplog.records)
    alice = net.phone("alice", 7101, LINE_A)
    resp = challenge(alice, LINE_A, "l@test")
    legacy = legacy_authorization(resp, LINE_A, PASSWORD, f"sip:{DOMAIN}")
    assert register_with(alice, LINE_A, legacy, "l@test").status == 200


def test_a_replayed_register_answer_is_refused() -> None:
    net = Network(config())
    alice = net.phone("alice", 7101, LINE_A)
    authorization = answer(challenge(alice, LINE_A, "r@test"), LINE_A, PASSWORD)
    assert register_with(alice, LINE_A, authorization, "r@test").status == 200
    eve = net.phone("eve", 6666, "eve")  # the same header, sniffed, from elsewhere
    assert register_with(eve, LINE_A, authorization, "r@test").status == 401


def outgoing_challenge(phone: Phone, caller: str) -> Response:
    first = phone.invite(EXTERNAL, from_user=caller)
    resp = phone.response(407)
    first.ack_failure(resp)
    return resp


def proxy_answer(resp: Response, caller: str, password: str, uri: str) -> str:
    value = resp.headers.get_all("Proxy-Authenticate")[0]
    return digest_authorization(value, username=caller, password=password, method="INVITE", uri=uri)


def test_a_replayed_invite_answer_is_refused() -> None:
    net = Network(config())
    upstream = net.phone("upstream", UPSTREAM_PORT, "core")
    alice = net.phone("alice", 7101, LINE_A)
    auth = proxy_answer(
        outgoing_challenge(alice, LINE_A), LINE_A, PASSWORD, f"sip:{EXTERNAL}@{DOMAIN}"
    )
    alice.invite(EXTERNAL, extra=[("Proxy-Authorization", auth)])
    assert upstream.request("INVITE")
    alice.drop()
    alice.invite(EXTERNAL, extra=[("Proxy-Authorization", auth)])
    assert alice.response(407)
    assert not upstream.inbox


def test_an_answer_computed_for_another_request_uri_is_400() -> None:
    net = Network(config())
    upstream = net.phone("upstream", UPSTREAM_PORT, "core")
    alice = net.phone("alice", 7101, LINE_A)
    # right password, right nonce, but the answer was made for a call to 0600000000
    auth = proxy_answer(
        outgoing_challenge(alice, LINE_A), LINE_A, PASSWORD, f"sip:0600000000@{DOMAIN}"
    )
    alice.invite(EXTERNAL, extra=[("Proxy-Authorization", auth)])
    assert alice.response(400)
    assert not upstream.inbox


def test_a_request_uri_rewritten_to_our_address_still_matches_the_answer() -> None:
    """An SBC may put our address where the phone wrote our domain: the number binds."""
    net = Network(config())
    upstream = net.phone("upstream", UPSTREAM_PORT, "core")
    alice = net.phone("alice", 7101, LINE_A)
    resp = outgoing_challenge(alice, LINE_A)
    for number, accepted in (("0600000000", False), (EXTERNAL, True)):
        call = UacCall(
            phone=alice,
            ruri=f"sip:{EXTERNAL}@{HOST}:5060",  # rewritten on the way
            call_id=alice.new_id("call") + "@test",
            from_tag=alice.new_id("tag"),
            from_uri=f"sip:{LINE_A}@{DOMAIN}",
        )
        call.body = sdp(10000)
        auth = proxy_answer(resp, LINE_A, PASSWORD, f"sip:{number}@{DOMAIN}")
        call.cseq = 2 if accepted else 1
        call.send_invite(extra=[("Proxy-Authorization", auth)])
        if accepted:
            assert upstream.request("INVITE")
        else:
            assert alice.response(400)
            assert not upstream.inbox


def test_a_register_answer_for_another_uri_is_400() -> None:
    net = Network(config())
    alice = net.phone("alice", 7101, LINE_A)
    resp = challenge(alice, LINE_A, "u@test")
    authorization = answer(resp, LINE_A, PASSWORD, uri="sip:other.example.net")
    assert register_with(alice, LINE_A, authorization, "u@test").status == 400


# ------------------------------------------------------------------ point 3


def test_register_known_and_unknown_numbers_get_the_same_answers() -> None:
    net = Network(config())
    alice = net.phone("alice", 7101, LINE_A)
    known, unknown = challenge(alice, LINE_A, "k@test"), challenge(alice, UNKNOWN, "u@test")
    assert shape(known) == shape(unknown)
    wrong_known = register_with(alice, LINE_A, answer(known, LINE_A, "guess"), "k@test")
    wrong_unknown = register_with(alice, UNKNOWN, answer(unknown, UNKNOWN, "guess"), "u@test")
    assert shape(wrong_known) == shape(wrong_unknown)
    assert wrong_known.status == 403


def test_outgoing_invite_from_known_and_unknown_callers_get_the_same_answers() -> None:
    net = Network(config())
    alice = net.phone("alice", 7101, LINE_A)
    known, unknown = outgoing_challenge(alice, LINE_A), outgoing_challenge(alice, UNKNOWN)
    assert shape(known) == shape(unknown) and known.status == 407
    uri = f"sip:{EXTERNAL}@{DOMAIN}"
    refused = []
    for caller, resp in ((LINE_A, known), (UNKNOWN, unknown)):
        alice.invite(
            EXTERNAL,
            from_user=caller,
            extra=[("Proxy-Authorization", proxy_answer(resp, caller, "guess", uri))],
        )
        refused.append(alice.response(403))
    assert shape(refused[0]) == shape(refused[1])


def guess(net: Network, phone: Phone, number: str, n: int) -> Response:
    resp = challenge(phone, number, f"g{n}-{phone.name}@test")
    return register_with(
        phone, number, answer(resp, number, f"guess{n}"), f"g{n}-{phone.name}@test"
    )


def test_guessing_one_line_from_many_sources_locks_the_line_then_backs_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    net = Network(config(max_failures_per_line=3, lockout_base=60.0, lockout_max=600.0))
    bots = [net.phone(f"bot{i}", 8000 + i, "x") for i in range(10)]
    with caplog.at_level(logging.WARNING, logger="huntgroup"):
        for n in range(3):
            assert guess(net, bots[n], LINE_A, n).status == 403
    assert any("line 0102030405 locked out for 60 s" in r.getMessage() for r in caplog.records)
    assert net.b2b.counters.auth_lockouts == 1 and net.b2b.counters.auth_failures == 3
    bots[3].register(LINE_A, call_id="after@test", cseq=1)
    locked = bots[3].response(503, "REGISTER")
    assert locked.headers.get("Retry-After") == "60"
    assert not locked.headers.get_all("WWW-Authenticate"), "no challenge while locked out"
    net.advance(61)
    for n in range(4, 7):
        assert guess(net, bots[n], LINE_A, n).status == 403
    bots[7].register(LINE_A, call_id="after2@test", cseq=1)
    assert bots[7].response(503, "REGISTER").headers.get("Retry-After") == "120"  # doubled


def test_lockout_answers_are_the_same_for_known_and_unknown_numbers() -> None:
    net = Network(config(max_failures_per_line=2))
    bots = [net.phone(f"bot{i}", 8000 + i, "x") for i in range(6)]
    for number, (a, b) in ((LINE_A, (0, 1)), (UNKNOWN, (2, 3))):
        guess(net, bots[a], number, a)
        guess(net, bots[b], number, b)
    bots[4].register(LINE_A, call_id="k@test", cseq=1)
    bots[5].register(UNKNOWN, call_id="u@test", cseq=1)
    assert shape(bots[4].response(503, "REGISTER")) == shape(bots[5].response(503, "REGISTER"))


def elsewhere(net: Network, name: str, port: int, host: str = "192.0.2.9") -> Phone:
    """A phone at another host than 127.0.0.1."""
    phone = net.phone(name, port, "x")
    del net.phones[(HOST, port)]
    phone.peer = Peer(host, port, "UDP")
    net.phones[(host, port)] = phone
    return phone


def test_one_source_guessing_many_numbers_is_locked_out() -> None:
    net = Network(config(max_failures_per_source=4, max_failures_per_line=100))
    bot = elsewhere(net, "bot", 8000)
    for n in range(4):
        assert guess(net, bot, f"01000000{n:02d}", n).status == 403
    bot.register(LINE_A, call_id="next@test", cseq=1)
    assert bot.response(503, "REGISTER").headers.get("Retry-After") == "60"
    alice = net.phone("alice", 7101, LINE_A)  # another source is not affected
    assert challenge(alice, LINE_A, "a@test").status == 401


def test_a_registered_phone_keeps_its_line_while_others_are_locked_out() -> None:
    net = Network(config(max_failures_per_line=2))
    alice = net.phone("alice", 7101, LINE_A)
    resp = challenge(alice, LINE_A, "a@test")
    assert register_with(alice, LINE_A, answer(resp, LINE_A, PASSWORD), "a@test").status == 200
    bots = [elsewhere(net, f"bot{i}", 8000 + i) for i in range(3)]
    guess(net, bots[0], LINE_A, 0)
    guess(net, bots[1], LINE_A, 1)
    bots[2].register(LINE_A, call_id="b@test", cseq=1)
    assert bots[2].response(503, "REGISTER")
    resp = challenge(alice, LINE_A, "a2@test")  # the phone's own host is spared
    assert register_with(alice, LINE_A, answer(resp, LINE_A, PASSWORD), "a2@test").status == 200


def test_failure_tables_are_bounded_and_expire_on_time() -> None:
    net = Network(config(max_tracked=100, max_failures_per_source=1000))
    bot = net.phone("bot", 8000, "x")
    for n in range(150):
        guess(net, bot, f"0100{n:06d}", n)
        assert len(net.b2b.guard.lines.entries) <= 100
    assert len(net.b2b.guard) == 101  # 100 numbers (capped) and the one source
    net.advance(net.b2b.guard.forget_after + 1)
    assert len(net.b2b.guard) == 0


def test_a_replay_on_another_node_is_refused_once_the_nonce_counts_are_shared() -> None:
    shared = MemoryNonceCounts(1000, 300.0)
    node_a, node_b = Network(config()), Network(config())  # same secret: same nonces
    for net in (node_a, node_b):
        net.b2b.auth.nonce_counts = shared
    alice = node_a.phone("alice", 7101, LINE_A)
    authorization = answer(challenge(alice, LINE_A, "n@test"), LINE_A, PASSWORD)
    assert register_with(alice, LINE_A, authorization, "n@test").status == 200
    eve = node_b.phone("eve", 6666, "eve")
    assert register_with(eve, LINE_A, authorization, "n@test").status == 401
    assert not node_b.b2b.registrar.contacts(LINE_A, now=node_b.now)
