"""Trust: forged caller identities, registrations pointing elsewhere, forwarding loops.

Issue 9, points 7, 8 and 9 (docs/security.md): the server asserts an identity
(P-Asserted-Identity) only when it vouches for it, a line registers contacts on
its own host only, and a call follows a bounded number of internal forwards.
"""

from __future__ import annotations

from typing import Any

import pytest

from huntgroup.config.models import Config, GroupConfig, LineConfig, MemberConfig, QueueConfig
from huntgroup.engine.b2bua import B2BUA, core_actions, inbound
from huntgroup.engine.b2bua.context import Context
from huntgroup.engine.b2bua.trust import TrustDomain
from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.message import Request, Response
from huntgroup.engine.sip.registrar import contact_on_source
from tests.engine.b2bua.test_b2bua_lines import busy_alice, register, world
from tests.support.b2bua_peers import (
    CALLER_NUMBER,
    DOMAIN,
    GROUP,
    HOST,
    LINE_A,
    LINE_B,
    PASSWORD,
    PILOT,
    Network,
    Phone,
    build,
    digest_authorization,
    make_config,
)

PAI = "P-Asserted-Identity"


def with_server(config: Config, **server: Any) -> Config:
    return config.model_copy(update={"server": config.server.model_copy(update=server)})


def phone_at(net: Network, name: str, host: str, port: int, user: str) -> Phone:
    """A phone at ``host``:``port`` (not 127.0.0.1): the B2BUA answers its real source."""
    phone = Phone(net, name, port, user)
    phone.peer = Peer(host, port, "UDP")
    net.phones[(host, port)] = phone
    return phone


def tables(b2b: B2BUA) -> dict[str, int]:
    """The size of every per-call table of the B2BUA and its core."""
    return {
        **b2b.index.sizes(),
        "core_calls": len(b2b.core._calls),
        "rtp_ports": b2b.media.ports.in_use,
    }


# ============================================================ point 7: caller identity


def test_a_forged_from_of_a_line_gets_no_asserted_identity() -> None:
    net, alice, _, caller = world(make_config("linear", members=1))
    register(alice, LINE_A, PASSWORD)  # LINE_A is registered, from alice's address
    m1 = net.phone("m1", 7001, "m1")
    caller.invite(PILOT, from_user=LINE_A, display="Alice Martin")  # not from alice's address
    invite = m1.request("INVITE")
    assert invite.headers.get_all(PAI) == []
    assert invite.from_.uri.user == LINE_A  # type: ignore[union-attr]  # shown, not asserted


def test_a_line_calling_from_where_it_registered_is_asserted() -> None:
    net, alice, _, _ = world(make_config("linear", members=1))
    register(alice, LINE_A, PASSWORD)
    m1 = net.phone("m1", 7001, "m1")
    alice.invite(PILOT, display="Alice Martin")
    invite = m1.request("INVITE")
    assert invite.headers.get_all(PAI) == [f'"Alice Martin" <sip:{LINE_A}@{DOMAIN}>']


def test_the_same_host_from_another_port_is_not_the_registered_line() -> None:
    net, alice, _, _ = world(make_config("linear", members=1))
    register(alice, LINE_A, PASSWORD)
    m1 = net.phone("m1", 7001, "m1")
    intruder = net.phone("intruder", 7199, LINE_A)  # same host, another port
    intruder.invite(PILOT)
    assert m1.request("INVITE").headers.get_all(PAI) == []


def test_a_forged_from_of_a_line_counts_as_an_outside_call_for_hunt_direct_calls() -> None:
    config = make_config("linear", members=1, member_lines=[LINE_A], hunt_direct_calls=True)
    net, alice, _, caller = world(config)
    m1 = net.phone("m1", 7001, "m1")
    busy_alice(net, alice)
    caller.invite(LINE_A, from_user=LINE_B)  # claims to be bob, a line of the company
    caller.response(180)
    invite = m1.request("INVITE")  # hunted into the group like any outside call
    assert invite.headers.get_all(PAI) == []
    assert not caller.has(486)


def test_valid_proxy_credentials_on_the_invite_make_the_caller_the_line() -> None:
    config = make_config("linear", members=1, member_lines=[LINE_A], hunt_direct_calls=True)
    net, alice, bob, _ = world(config)
    m1 = net.phone("m1", 7001, "m1")
    busy_alice(net, alice)
    roaming = net.phone("roaming", 7300, LINE_B)  # bob's line, not registered from here
    roaming.register(LINE_B, call_id="nonce@test", cseq=1)
    challenge = roaming.response(401, "REGISTER").headers.get_all("WWW-Authenticate")[0]
    ruri = f"sip:{LINE_A}@{DOMAIN}"
    credentials = digest_authorization(
        challenge, username=LINE_B, password=PASSWORD, method="INVITE", uri=ruri
    )
    call = roaming.invite(LINE_A, extra=[("Proxy-Authorization", credentials)])
    busy = roaming.response(486)  # internal: hunt_direct_calls does not apply
    call.ack_failure(busy)
    m1.quiet()
    bob.quiet()


def test_wrong_proxy_credentials_on_the_invite_are_refused() -> None:
    net, _, _, caller = world(make_config("linear", members=1))
    m1 = net.phone("m1", 7001, "m1")
    caller.register(LINE_B, call_id="nonce@test", cseq=1)
    challenge = caller.response(401, "REGISTER").headers.get_all("WWW-Authenticate")[0]
    credentials = digest_authorization(
        challenge,
        username=LINE_B,
        password="guess",
        method="INVITE",
        uri=f"sip:{PILOT}@{DOMAIN}",
    )
    caller.invite(PILOT, from_user=LINE_B, extra=[("Proxy-Authorization", credentials)])
    assert caller.has(403)
    m1.quiet()


@pytest.mark.parametrize("claimed", [LINE_B, "0699999999"])
def test_credentials_that_do_not_hold_get_the_same_403_for_a_line_or_not(claimed: str) -> None:
    net, _, _, caller = world(make_config("linear", members=1))
    m1 = net.phone("m1", 7001, "m1")
    caller.register(LINE_B, call_id="nonce@test", cseq=1)
    challenge = caller.response(401, "REGISTER").headers.get_all("WWW-Authenticate")[0]
    credentials = digest_authorization(
        challenge, username=claimed, password="guess", method="INVITE", uri=f"sip:{PILOT}@{DOMAIN}"
    )
    caller.invite(PILOT, from_user=claimed, extra=[("Proxy-Authorization", credentials)])
    assert caller.has(403)
    m1.quiet()


def test_credentials_for_another_realm_are_left_to_their_proxy() -> None:
    net, _, _, caller = world(make_config("linear", members=1))
    m1 = net.phone("m1", 7001, "m1")
    foreign = (
        'Digest username="0102030406", realm="trunk.example.net", nonce="abc", '
        'uri="sip:x@trunk.example.net", response="0123456789abcdef0123456789abcdef"'
    )
    caller.invite(PILOT, from_user=LINE_B, extra=[("Proxy-Authorization", foreign)])
    caller.response(180)
    assert m1.request("INVITE").headers.get_all(PAI) == []  # an outside call


def test_a_pai_from_an_untrusted_caller_is_dropped() -> None:
    net, _, _, caller = world(make_config("linear", members=1))
    m1 = net.phone("m1", 7001, "m1")
    forged = f"<sip:{LINE_A}@{DOMAIN}>"
    caller.invite(PILOT, extra=[(PAI, forged), (PAI, f"<tel:{LINE_A}>")])
    invite = m1.request("INVITE")
    assert invite.headers.get_all(PAI) == []
    assert LINE_A not in invite.to_bytes().decode()


def test_a_trusted_peers_pai_is_kept_and_a_line_it_names_is_internal() -> None:
    config = make_config("linear", members=1, member_lines=[LINE_A], hunt_direct_calls=True)
    config = with_server(config, trusted_peers=("127.0.0.0/8",))
    net, alice, _, _ = world(config)
    m1 = net.phone("m1", 7001, "m1")
    sbc = net.phone("sbc", 5070, "sbc")
    sbc.invite(PILOT, extra=[(PAI, f'"Caller" <sip:{CALLER_NUMBER}@sbc.example.net>')])
    invite = m1.request("INVITE")
    assert invite.headers.get_all(PAI) == [f'"Caller" <sip:{CALLER_NUMBER}@sbc.example.net>']
    # a line the trusted peer asserts is an internal caller (hunt_direct_calls skipped)
    busy_alice(net, alice)
    call = sbc.invite(LINE_A, extra=[(PAI, f"<sip:{LINE_B}@{DOMAIN}>"), ("Privacy", "id")])
    busy = sbc.response(486)
    call.ack_failure(busy)


@pytest.mark.parametrize("from_binding", [True, False])
def test_a_trusted_peer_without_pai_is_an_outside_caller(from_binding: bool) -> None:
    config = with_server(make_config("linear", members=1), trusted_peers=(HOST,))
    net, alice, _, caller = world(config)
    register(alice, LINE_A, PASSWORD)
    m1 = net.phone("m1", 7001, "m1")
    if from_binding:
        alice.invite(PILOT)  # from where LINE_A registered, but a peer speaks for many
    else:
        caller.invite(PILOT, from_user=LINE_A)  # a claim only
    assert m1.request("INVITE").headers.get_all(PAI) == []


def test_the_upstream_address_is_trusted_and_its_pai_passed_with_privacy() -> None:
    config = with_server(make_config("linear", members=1), upstream=f"sip:{HOST}:5090")
    net = Network(config)
    m1 = net.phone("m1", 7001, "m1")
    trunk = net.phone("trunk", 5090, "trunk")
    trunk.invite(PILOT, extra=[(PAI, "<tel:+33612345678>"), ("Privacy", "id")])
    invite = m1.request("INVITE")
    assert invite.headers.get_all(PAI) == ["<tel:+33612345678>"]
    assert invite.headers.get("Privacy") == "id"


@pytest.mark.parametrize("authenticated", [True, False])
def test_a_call_forwarded_to_the_upstream_asserts_only_an_authenticated_line(
    authenticated: bool,
) -> None:
    config = make_config(
        "linear", members=0, queue={"max_wait": 5, "overflow_to": "0999888777", "answer": True}
    )
    net, alice, _, caller = world(with_server(config, upstream="sip:192.0.2.50:5090"))
    trunk = phone_at(net, "trunk", "192.0.2.50", 5090, "trunk")
    if authenticated:
        register(alice, LINE_A, PASSWORD)
        call = alice.invite(PILOT)
        call.ack(alice.response(200))
    else:
        call = caller.invite(PILOT, from_user=LINE_A)
        call.ack(caller.response(200))
    net.advance(6)  # max_wait: the answered caller goes out through the upstream
    invite = trunk.request("INVITE")
    assert str(invite.uri) == "sip:0999888777@192.0.2.50:5090"
    expected = [f'"Alice Martin" <sip:{LINE_A}@{DOMAIN}>'] if authenticated else []
    assert invite.headers.get_all(PAI) == expected


def test_a_trusted_peer_passes_at_most_two_valid_identities() -> None:
    config = with_server(make_config("linear", members=1), trusted_peers=(HOST,))
    net = Network(config)
    m1 = net.phone("m1", 7001, "m1")
    sbc = net.phone("sbc", 5070, "sbc")
    values = ["<sip:0611@sbc.test>, <tel:+33611>", "not an address <", "<sip:0622@sbc.test>"]
    sbc.invite(PILOT, extra=[(PAI, v) for v in values])
    assert m1.request("INVITE").headers.get_all(PAI) == ["<sip:0611@sbc.test>", "<tel:+33611>"]


def test_the_pilot_is_asserted_when_shown_instead_of_the_caller() -> None:
    net, _, _, caller = world(make_config("linear", members=1, pilot_as_caller_id=True))
    m1 = net.phone("m1", 7001, "m1")
    caller.invite(PILOT)
    assert m1.request("INVITE").headers.get_all(PAI) == [f'"{GROUP}" <sip:{PILOT}@{DOMAIN}>']


def test_a_forged_from_of_the_pilot_is_not_asserted() -> None:
    net, _, _, caller = world(make_config("linear", members=1))
    m1 = net.phone("m1", 7001, "m1")
    caller.invite(PILOT, from_user=PILOT)
    assert m1.request("INVITE").headers.get_all(PAI) == []


def test_trust_domain_matches_addresses_and_networks_of_both_families() -> None:
    trust = TrustDomain(["192.0.2.10", "198.51.100.0/24", "2001:db8::/32"], "sip:[2001:db8::1]")
    assert trust.trusts("192.0.2.10") and trust.trusts("198.51.100.77")
    assert trust.trusts("2001:db8:1::5") and trust.trusts("[2001:db8::9]")
    assert trust.trusts("::ffff:192.0.2.10")  # a dual-stack socket's view of an IPv4 peer
    assert not trust.trusts("192.0.2.11") and not trust.trusts("2001:db9::1")
    assert not trust.trusts("sbc.example.net")
    upstream = TrustDomain([], "sip:203.0.113.5:5080;transport=tcp")
    assert upstream.trusts("203.0.113.5") and not upstream.trusts("203.0.113.6")
    named = TrustDomain([], "sip:core.example.net")
    assert named.upstream_named and not named and not named.trusts("203.0.113.5")
    assert not TrustDomain([], None).trusts("127.0.0.1")


# ============================================================ point 8: contacts


def register_contact(phone: Phone, contact: str, *, password: str = PASSWORD) -> Response:
    """REGISTER LINE_A from ``phone`` with one ``contact``; the final response."""
    uri = f"sip:{LINE_A}@{DOMAIN}"

    def send(cseq: int, authorization: str | None) -> None:
        headers = [
            ("Via", phone.via(phone.branch())),
            ("Max-Forwards", "70"),
            ("From", f"<{uri}>;tag=reg{cseq}"),
            ("To", f"<{uri}>"),
            ("Call-ID", "contact@test"),
            ("CSeq", f"{cseq} REGISTER"),
            ("Contact", contact),
        ]
        if authorization is not None:
            headers.append(("Authorization", authorization))
        phone.send(build(f"REGISTER sip:{DOMAIN} SIP/2.0", headers))

    send(1, None)
    challenge = phone.response(401, "REGISTER").headers.get_all("WWW-Authenticate")[0]
    send(
        2,
        digest_authorization(
            challenge, username=LINE_A, password=password, method="REGISTER", uri=f"sip:{DOMAIN}"
        ),
    )
    final = phone.next()
    assert isinstance(final, Response)
    return final


@pytest.mark.parametrize(
    "contact",
    [
        "<sip:0102030405@127.0.0.2:5060>",  # another loopback host
        "<sip:premium@93.184.216.34:5060>",  # a trunk somewhere
        "<sip:x@10.0.0.7:6379;transport=tcp>",  # an internal service, from a loopback source
        "<sip:0102030405@phone.example.net>",  # a name: never resolved here
        "<tel:+33899000000>",
        "<sip:0102030405@127.0.0.1:7101>, <sip:0102030405@127.0.0.3:7101>",  # one bad: all
    ],
)
def test_a_contact_off_the_source_host_is_refused(contact: str, caplog: Any) -> None:
    net, alice, _, caller = world(make_config("linear", members=1, member_lines=[LINE_A]))
    final = register_contact(alice, contact)
    assert final.status == 403
    assert net.b2b.registrar.binding_count == 0
    assert "REGISTER from 127.0.0.1:7101 refused (403)" in caplog.text
    caller.invite(PILOT)  # the group's line member is not reachable anywhere
    assert not net.stray or all(t.destination.host == HOST for t in net.stray)


def test_a_contact_on_the_source_host_on_any_port_is_accepted() -> None:
    net, alice, _, _ = world(make_config("linear", members=0, member_lines=[LINE_A]))
    final = register_contact(alice, f"<sip:{LINE_A}@{HOST}:7101>")
    assert final.status == 200
    desk = net.phone("desk", 7555, LINE_A)
    assert register_contact(desk, f"<sip:{LINE_A}@{HOST}:7101;transport=udp>").status == 200


def test_a_private_contact_behind_nat_is_accepted_and_reached_at_the_source() -> None:
    net = Network(make_config("linear", members=0, member_lines=[LINE_A]))
    public = Peer("198.51.100.20", 40123, "UDP")
    nat = Phone(net, "nat", 40123, LINE_A)
    nat.peer = public
    net.phones[(public.host, public.port)] = nat
    final = register_contact(nat, f"<sip:{LINE_A}@192.168.1.20:5060>")
    assert final.status == 200
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    caller.invite(PILOT)
    invite = nat.request("INVITE")  # sent to the NAT's public address, not 192.168.1.20
    assert str(invite.uri) == f"sip:{LINE_A}@192.168.1.20:5060"


def test_a_trusted_peer_may_register_contacts_elsewhere() -> None:
    config = with_server(make_config("linear", members=1), trusted_peers=("127.0.0.1",))
    _net, alice, _, _ = world(config)
    assert register_contact(alice, f"<sip:{LINE_A}@192.0.2.44:5060>").status == 200


def test_unregistering_with_a_wildcard_is_not_a_foreign_contact() -> None:
    net, alice, _, _ = world()
    register(alice, LINE_A, PASSWORD)
    uri = f"sip:{LINE_A}@{DOMAIN}"
    headers = [
        ("Via", alice.via(alice.branch())),
        ("Max-Forwards", "70"),
        ("From", f"<{uri}>;tag=w"),
        ("To", f"<{uri}>"),
        ("Call-ID", "reg-1@test"),
        ("CSeq", "3 REGISTER"),
        ("Contact", "*"),
        ("Expires", "0"),
    ]
    alice.send(build(f"REGISTER sip:{DOMAIN} SIP/2.0", headers))
    challenge = alice.response(401, "REGISTER").headers.get_all("WWW-Authenticate")[0]
    authorization = digest_authorization(
        challenge, username=LINE_A, password=PASSWORD, method="REGISTER", uri=f"sip:{DOMAIN}"
    )
    headers[-1:] = [("Expires", "0"), ("Authorization", authorization)]
    headers[0] = ("Via", alice.via(alice.branch()))
    headers[5] = ("CSeq", "4 REGISTER")
    alice.send(build(f"REGISTER sip:{DOMAIN} SIP/2.0", headers))
    assert alice.response(200, "REGISTER") is not None
    assert net.b2b.registrar.binding_count == 0


@pytest.mark.parametrize(
    ("uri", "source", "allowed"),
    [
        ("sip:a@127.0.0.1:5062", "127.0.0.1", True),
        ("sip:a@127.0.0.2", "127.0.0.1", False),
        ("sip:a@192.168.1.5", "198.51.100.20", True),  # NAT: reached at the source
        ("sip:a@10.0.0.5", "127.0.0.1", False),  # a loopback source is no NAT
        ("sip:a@127.0.0.1", "198.51.100.20", False),  # nor a loopback contact
        ("sip:a@93.184.216.34", "198.51.100.20", False),
        ("sip:a@[2001:db8::1]:5060", "2001:db8:0::1", True),
        ("sip:a@[2001:db8::1]", "::ffff:2001:db8::1", False),
        ("sip:a@192.0.2.1", "::ffff:192.0.2.1", True),
        ("sip:a@pbx.example.net", "pbx.example.net", True),
        ("sip:a@pbx.example.net", "192.0.2.1", False),
        ("tel:+331234", "192.0.2.1", False),
        ("not a uri", "192.0.2.1", False),
    ],
)
def test_contact_on_source(uri: str, source: str, allowed: bool) -> None:
    assert contact_on_source(uri, source) is allowed


# ============================================================ point 9: forwarding loops


def count_routes(monkeypatch: pytest.MonkeyPatch, bound: int = 100) -> list[int]:
    """Count the calls routed to the core (``core_actions.route``); fail (instead of
    hanging) past ``bound``."""
    calls = [0]
    original = core_actions.route

    def counted(ctx: Context, *args: Any) -> None:
        calls[0] += 1
        assert calls[0] <= bound, "_route keeps being called: the forward loop has no bound"
        original(ctx, *args)

    # a new INVITE routes through inbound, a forward through core_actions
    monkeypatch.setattr(core_actions, "route", counted)
    monkeypatch.setattr(inbound, "route", counted)
    return calls


@pytest.mark.native_incompatible(
    "counts core_actions.route by monkeypatching it: compiled callers call the original"
)
def test_a_loop_only_seen_at_run_time_ends_with_482_and_leaves_no_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A busy LINE_A hunts outside calls into the group (hunt_direct_calls); the group's
    # queue is full at once and overflows to LINE_A: the check cannot see it, who is busy
    # decides. Before the fix, one INVITE looped for ever inside one datagram's handling.
    config = make_config(
        "linear",
        members=0,
        member_lines=[LINE_A],
        hunt_direct_calls=True,
        queue={"max_length": 0, "overflow_to": LINE_A},
    )
    net, alice, _, caller = world(config)
    busy_alice(net, alice)
    baseline = tables(net.b2b)
    routes = count_routes(monkeypatch)
    call = caller.invite(LINE_A)
    refused = caller.response(482)
    call.ack_failure(refused)
    assert routes[0] == 1  # LINE_A; its overflow back to LINE_A is refused
    alice.quiet()
    net.advance(64 * 0.5)
    assert tables(net.b2b) == baseline


def lines_chain(*pairs: tuple[str, str | None]) -> tuple[LineConfig, ...]:
    return tuple(
        LineConfig(number=number, password=PASSWORD, forward_no_answer=target)
        for number, target in pairs
    )


@pytest.mark.native_incompatible(
    "counts core_actions.route by monkeypatching it: compiled callers call the original"
)
def test_a_static_loop_that_got_past_the_check_ends_with_482(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two unregistered lines forwarding to each other: refused by `huntgroup check`, but
    # a Config built in code (or any path around the loader) must not hang the server.
    config = Config(lines=lines_chain(("0201", "0202"), ("0202", "0201")))
    net = Network(config)
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    baseline = tables(net.b2b)
    routes = count_routes(monkeypatch)
    call = caller.invite("0201")
    call.ack_failure(caller.response(482))
    assert routes[0] == 2
    net.advance(64 * 0.5)
    assert tables(net.b2b) == baseline


def test_a_chain_of_three_forwards_reaches_its_end() -> None:
    config = Config(
        lines=lines_chain(("0201", "0202"), ("0202", "0203"), ("0203", "0204"), ("0204", None))
    )
    net = Network(config)
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    last = net.phone("last", 7204, "0204")
    register_line(last, "0204")
    call = caller.invite("0201")
    leg = last.answering(last.request("INVITE"))
    leg.reply(200)
    last.request("ACK")
    call.ack(caller.response(200))
    assert net.b2b.active_calls == 1


def test_a_chain_longer_than_max_internal_forwards_ends_with_483() -> None:
    config = Config(
        lines=lines_chain(("0201", "0202"), ("0202", "0203"), ("0203", "0204"), ("0204", None))
    )
    config = with_server(
        config, limits=config.server.limits.model_copy(update={"max_internal_forwards": 2})
    )
    net = Network(config)
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    last = net.phone("last", 7204, "0204")
    register_line(last, "0204")
    baseline = tables(net.b2b)
    call = caller.invite("0201")
    call.ack_failure(caller.response(483))
    last.quiet()
    net.advance(64 * 0.5)
    assert tables(net.b2b) == baseline


def test_a_loop_after_the_caller_was_answered_ends_with_a_bye() -> None:
    # The queue answers (music), then max_wait overflows to the busy line, which hunts
    # back into the group: the caller was answered, so the loop ends with a BYE.
    group = GroupConfig(
        name=GROUP,
        pilot=PILOT,
        hunt_direct_calls=True,
        members=(MemberConfig(line=LINE_A, position=1),),
        queue=QueueConfig(max_length=1, max_wait=5, overflow_to=LINE_A, answer=True),
    )
    base = make_config("linear", members=0, member_lines=[LINE_A])
    config = base.model_copy(update={"groups": (group,)})
    net, alice, _, caller = world(config)
    busy_alice(net, alice)
    baseline = tables(net.b2b)
    call = caller.invite(PILOT)
    call.ack(caller.response(200))  # queued with music
    net.advance(6)  # max_wait: forwarded to LINE_A, busy: back in the queue
    caller.quiet()
    net.advance(12)  # max_wait again: LINE_A a second time is a loop
    bye = caller.request("BYE")
    assert isinstance(bye, Request)
    caller.respond(bye, 200)
    net.advance(64 * 0.5)
    assert tables(net.b2b) == baseline


def register_line(phone: Phone, number: str) -> None:
    assert register(phone, number, PASSWORD, call_id=f"reg-{number}@test").status == 200
