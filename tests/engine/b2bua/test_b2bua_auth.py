"""Digest replay and binding, enumeration and password guessing (issue 9, points 2 and 3)."""

from __future__ import annotations

import hashlib
import logging

import pytest

from huntgroup.config.models import AuthConfig, Config, LimitsConfig
from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.message import Response
from tests.support.b2bua_peers import (
    DOMAIN,
    HOST,
    LINE_A,
    LINE_B,
    PASSWORD,
    Network,
    Phone,
    UacCall,
    digest_authorization,
    make_config,
    parse_challenge,
    sdp,
)

UNKNOWN = "0199999999"
EXTERNAL = "0611223344"
UPSTREAM_PORT = 7900


# These tests send hundreds of requests from one address in scripted time: the
# per-source flood limits (test_b2bua_limits.py) are off, so only server.auth counts.
NO_FLOOD_LIMITS = LimitsConfig(per_source_invite_rate=None, per_source_register_rate=None)


def config(**auth: object) -> Config:
    cfg = make_config("linear", members=0, member_lines=[LINE_A])
    server = cfg.server.model_copy(
        update={
            "upstream": f"sip:{HOST}:{UPSTREAM_PORT}",
            "auth": AuthConfig(**auth),  # type: ignore[arg-type]
            "limits": NO_FLOOD_LIMITS,
        }
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


def shape(response: Response) -> tuple[int, tuple[str, ...], tuple[str, ...]]:
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
    return response.status, tuple(names), tuple(params)


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
    bot = elsewhere(net, "bot", 8000)  # (127.0.0.1 is the upstream's: a trusted peer)
    for n in range(150):
        guess(net, bot, f"0100{n:06d}", n)
        assert len(net.b2b.guard.lines.entries) <= 100
    assert len(net.b2b.guard) == 101  # 100 numbers (capped) and the one source
    net.advance(net.b2b.guard.forget_after + 1)
    assert len(net.b2b.guard) == 0


# ------------------------------------------- review findings 1, 4, 5 and 9


def plain_config(**auth: object) -> Config:
    """No upstream: 127.0.0.1, where the test phones live, is not a trusted peer."""
    cfg = make_config("linear", members=0, member_lines=[LINE_A])
    server = cfg.server.model_copy(
        update={"auth": AuthConfig(**auth), "limits": NO_FLOOD_LIMITS}  # type: ignore[arg-type]
    )
    return cfg.model_copy(update={"server": server})


def registered(net: Network, phone: Phone, number: str, call_id: str) -> int:
    resp = challenge(phone, number, call_id)
    return register_with(phone, number, answer(resp, number, PASSWORD), call_id).status


def feature_call(phone: Phone, number: str) -> int:
    """*52 with Proxy-Authorization: the final status."""
    first = phone.invite("*52", from_user=number)
    resp = phone.next()
    assert isinstance(resp, Response)
    first.ack_failure(resp)
    if resp.status != 407:
        return resp.status
    auth = proxy_answer(resp, number, PASSWORD, f"sip:*52@{DOMAIN}")
    phone.invite("*52", from_user=number, extra=[("Proxy-Authorization", auth)])
    final = phone.next()
    while isinstance(final, Response) and final.status < 200:
        final = phone.next()
    assert isinstance(final, Response)
    return final.status


def test_guesses_from_a_phones_own_address_do_not_knock_it_offline() -> None:
    """Finding 1: an attacker on the registered phone's IP (office NAT, or a UDP spoofer)
    locks its own source with failures against unknown numbers and other lines; the
    phone's line, registered from that IP, keeps working (key: source and line)."""
    net = Network(plain_config(max_failures_per_source=4, max_failures_per_line=100))
    alice = net.phone("alice", 7101, LINE_A)
    assert registered(net, alice, LINE_A, "a@test") == 200
    attacker = net.phone("attacker", 7199, "x")  # same host, another port
    for n in range(4):
        number = f"01999999{n:02d}" if n % 2 else LINE_B  # unknown numbers, another line
        assert guess(net, attacker, number, n).status == 403
    attacker.register(UNKNOWN, call_id="locked@test", cseq=1)
    assert attacker.response(503, "REGISTER")  # the source is locked for the rest
    attacker.register(LINE_B, call_id="locked2@test", cseq=1)
    assert attacker.response(503, "REGISTER")
    assert registered(net, alice, LINE_A, "a2@test") == 200  # the refresh goes through
    assert feature_call(alice, LINE_A) == 200  # and so do its calls and feature codes
    assert net.b2b.registrar.contacts(LINE_A, now=net.now)


def test_a_guesser_on_the_phones_host_is_held_per_source_and_line() -> None:
    """Guessing the registered line's own password from another port of its host is
    limited like anyone's: the line is locked (for everyone but the phone's own
    address), the host by its own count."""
    net = Network(plain_config(max_failures_per_source=100, max_failures_per_line=3))
    alice = net.phone("alice", 7101, LINE_A)
    assert registered(net, alice, LINE_A, "a@test") == 200
    attacker = net.phone("attacker", 7199, "x")
    for n in range(3):
        assert guess(net, attacker, LINE_A, n).status == 403
    attacker.register(LINE_A, call_id="held@test", cseq=1)
    assert attacker.response(503, "REGISTER").headers.get("Retry-After") == "60"
    other = elsewhere(net, "other", 8100)  # the line itself is locked elsewhere too
    other.register(LINE_A, call_id="o@test", cseq=1)
    assert other.response(503, "REGISTER")
    assert guess(net, attacker, UNKNOWN, 9).status == 403  # the source is not locked


def test_guessing_a_lines_password_from_another_port_of_its_host_cannot_lock_the_phone() -> None:
    """Review 2, A: the exemption is the binding's exact transport address, not its host.
    An attacker on the phone's IP (office NAT, blind UDP spoofer) guessing the line's own
    password locks the line and its host for everyone else; the phone at its exact
    address (host, port, transport) still refreshes, calls and uses feature codes."""
    net = Network(plain_config(max_failures_per_source=3, max_failures_per_line=3))
    alice = net.phone("alice", 7101, LINE_A)
    assert registered(net, alice, LINE_A, "a@test") == 200
    attacker = net.phone("attacker", 7199, "x")  # same host, another port
    for n in range(3):
        assert guess(net, attacker, LINE_A, n).status == 403
    attacker.register(LINE_A, call_id="held@test", cseq=1)
    assert attacker.response(503, "REGISTER")
    attacker.register(UNKNOWN, call_id="held2@test", cseq=1)
    assert attacker.response(503, "REGISTER")  # the host is locked for the rest
    assert not net.b2b.guard.pairs.entries  # nothing counted against the phone's pair
    assert registered(net, alice, LINE_A, "a2@test") == 200
    assert feature_call(alice, LINE_A) == 200


def test_a_trusted_peer_is_exempt_from_the_per_source_limit_not_the_per_line_one() -> None:
    net = Network(config(max_failures_per_source=3, max_failures_per_line=3))
    sbc = net.phone("sbc", 5070, "x")  # 127.0.0.1: the upstream's address, trusted
    for n in range(10):
        assert guess(net, sbc, f"019999{n:04d}", n).status == 403
    for n in range(3):
        assert guess(net, sbc, UNKNOWN, 20 + n).status == 403
    sbc.register(UNKNOWN, call_id="line-locked@test", cseq=1)
    assert sbc.response(503, "REGISTER")  # that number is locked
    assert challenge(sbc, LINE_A, "a@test").status == 401  # the SBC is not


def test_ipv6_guessers_count_per_64_like_the_connection_caps() -> None:
    """Finding 5: one host owns a /64; hopping addresses in it does not reset the count."""
    net = Network(plain_config(max_failures_per_source=4, max_failures_per_line=100))
    for n in range(4):
        bot = elsewhere(net, f"bot{n}", 8000 + n, host=f"2001:db8:1:2::{n + 1:x}")
        assert guess(net, bot, f"01000000{n:02d}", n).status == 403
    same = elsewhere(net, "same", 8010, host="2001:db8:1:2:ffff::9")
    same.register(UNKNOWN, call_id="s@test", cseq=1)
    assert same.response(503, "REGISTER").headers.get("Retry-After") == "60"
    other = elsewhere(net, "other", 8011, host="2001:db8:1:3::1")  # another /64
    assert challenge(other, UNKNOWN, "o@test").status == 401


def ha1(number: str, algorithm: str) -> str:
    name = "sha256" if algorithm == "SHA-256" else "md5"
    return hashlib.new(name, f"{number}:{DOMAIN}:{PASSWORD}".encode()).hexdigest()


def md5_only(number: str) -> dict[str, object]:
    return {"number": number, "password": None, "ha1_md5": ha1(number, "MD5")}


def sha_only(number: str) -> dict[str, object]:
    return {"number": number, "password": None, "ha1_sha256": ha1(number, "SHA-256")}


def test_a_sha256_answer_for_an_md5_only_line_is_a_403_like_an_unknown_number() -> None:
    """Finding 4b: NO_SECRET_FOR_ALGORITHM is answered and counted as a wrong password."""
    net = Network(
        make_config("linear", members=0, lines=[md5_only(LINE_B)]).model_copy(
            update={"server": plain_config().server}
        )
    )
    prober = net.phone("prober", 7200, "x")
    full = challenge(prober, LINE_A, "f@test")  # a password line: SHA-256 is offered
    sha = next(v for v in full.headers.get_all("WWW-Authenticate") if "SHA-256" in v)
    answers = []
    for number in (LINE_B, UNKNOWN):
        auth = digest_authorization(
            sha, username=number, password="guess", method="REGISTER", uri=f"sip:{DOMAIN}"
        )
        answers.append(register_with(prober, number, auth, f"{number}@test"))
    assert [r.status for r in answers] == [403, 403]
    assert shape(answers[0]) == shape(answers[1])
    assert net.b2b.counters.auth_failures == 2
    assert len(net.b2b.guard.lines.entries) == 2


def test_unknown_numbers_are_challenged_like_a_line_drawn_from_the_configured_profiles() -> None:
    """Finding 4a: a line with a single hash is challenged with that algorithm alone; an
    unknown number gets one of the lines' offers, weighted by how many lines have it,
    always the same one for a given number."""
    md5_lines = [f"01020304{n:02d}" for n in range(10, 14)]
    sha_lines = [f"01020304{n:02d}" for n in range(20, 22)]
    cfg = make_config(
        "linear",
        members=0,
        lines=[*(md5_only(n) for n in md5_lines), *(sha_only(n) for n in sha_lines)],
    )  # LINE_A and LINE_B have passwords: weights 2 (both), 4 (MD5 only), 2 (SHA-256 only)
    net = Network(cfg.model_copy(update={"server": plain_config().server}))
    prober = net.phone("prober", 7200, "x")
    known = [challenge(prober, n, f"k{n}@test") for n in [LINE_A, LINE_B, *md5_lines, *sha_lines]]
    known_shapes = [shape(r) for r in known]
    assert len(set(known_shapes)) == 3
    unknown_shapes = []
    for n in range(800):
        number = f"0199{n:06d}"
        unknown_shapes.append(shape(challenge(prober, number, f"u{n}@test")))
    assert set(unknown_shapes) == set(known_shapes)  # nothing a line would not get
    for profile in set(known_shapes):
        weight = known_shapes.count(profile) / len(known_shapes)
        drawn = unknown_shapes.count(profile) / len(unknown_shapes)
        assert abs(drawn - weight) < 0.06, (profile, weight, drawn)
    # a given number always gets the same offer, from this node or one sharing the key
    again = Network(cfg.model_copy(update={"server": plain_config().server}))
    prober2 = again.phone("prober", 7200, "x")
    for n in range(0, 800, 37):
        number = f"0199{n:06d}"
        assert shape(challenge(prober, number, f"r{n}@test")) == unknown_shapes[n]
        assert shape(challenge(prober2, number, f"r{n}@test")) == unknown_shapes[n]


def test_an_answer_accepted_by_one_node_is_refused_on_another_which_rechallenges() -> None:
    """Finding 9: nonces are bound to the node that issued them. Two nodes share the
    secret; an answer node A accepted, replayed to node B, gets 401 stale=true; the
    phone then answers B's own challenge and is registered there."""
    node_a = Network(config(), node_id="node-a")
    node_b = Network(config(), node_id="node-b")
    alice = node_a.phone("alice", 7101, LINE_A)
    authorization = answer(challenge(alice, LINE_A, "n@test"), LINE_A, PASSWORD)
    assert register_with(alice, LINE_A, authorization, "n@test").status == 200
    eve = node_b.phone("eve", 6666, "eve")
    refused = register_with(eve, LINE_A, authorization, "n@test")
    assert refused.status == 401
    assert all("stale=true" in v for v in refused.headers.get_all("WWW-Authenticate"))
    assert not node_b.b2b.registrar.contacts(LINE_A, now=node_b.now)
    assert node_b.b2b.counters.auth_failures == 0  # a right answer: no failure counted
    # the phone moved to node B: it answers B's stale challenge, silently
    bob_side = node_b.phone("alice-b", 7101, LINE_A)
    fresh = answer(refused, LINE_A, PASSWORD)
    assert register_with(bob_side, LINE_A, fresh, "n@test").status == 200
    assert node_b.b2b.registrar.contacts(LINE_A, now=node_b.now)


def test_an_invite_answer_accepted_by_one_node_is_refused_on_another() -> None:
    node_a = Network(config(), node_id="node-a")
    node_b = Network(config(), node_id="node-b")
    upstream_a = node_a.phone("upstream", UPSTREAM_PORT, "core")
    upstream_b = node_b.phone("upstream", UPSTREAM_PORT, "core")
    alice = node_a.phone("alice", 7101, LINE_A)
    uri = f"sip:{EXTERNAL}@{DOMAIN}"
    auth = proxy_answer(outgoing_challenge(alice, LINE_A), LINE_A, PASSWORD, uri)
    alice.invite(EXTERNAL, extra=[("Proxy-Authorization", auth)])
    assert upstream_a.request("INVITE")
    eve = node_b.phone("eve", 7101, LINE_A)
    call = eve.invite(EXTERNAL, extra=[("Proxy-Authorization", auth)])
    stale = eve.response(407)
    call.ack_failure(stale)
    assert all("stale=true" in v for v in stale.headers.get_all("Proxy-Authenticate"))
    assert not upstream_b.inbox
    fresh = proxy_answer(stale, LINE_A, PASSWORD, uri)
    eve.invite(EXTERNAL, extra=[("Proxy-Authorization", fresh)])
    assert upstream_b.request("INVITE")


def test_nonces_age_by_the_wall_clock_the_driver_reads() -> None:
    """The B2BUA reads no clock: a nonce carries the wall time the driver last read.
    A reading a day later than the nonce's makes the answer stale, though the
    monotonic clock moved one second; a challenge issued after it is good."""
    net = Network(config())
    alice = net.phone("alice", 7101, LINE_A)
    old = answer(challenge(alice, LINE_A, "w1@test"), LINE_A, PASSWORD)
    net.at(1.0)
    net.b2b.wall_clock_read(86_400.0, now=1.0)
    refused = register_with(alice, LINE_A, old, "w1@test")
    assert refused.status == 401
    assert all("stale=true" in v for v in refused.headers.get_all("WWW-Authenticate"))
    fresh = answer(refused, LINE_A, PASSWORD)
    assert register_with(alice, LINE_A, fresh, "w2@test").status == 200
