"""Who speaks for our lines: shared addresses, the upstream, forged callers sent out.

Review findings on issue 9 (docs/security.md, "Forged caller identity" and
"Behind a firewall or an SBC"):

- an address several lines, or a trusted peer, send from proves no line;
- the upstream's P-Asserted-Identity is kept but never makes a call internal;
- a call forwarded out never shows the trunk an unverified claim of our numbers.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from huntgroup.config.models import Config
from huntgroup.engine.b2bua.trust import TrustDomain
from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.fields import ContactEntry
from huntgroup.engine.sip.message import Request
from huntgroup.engine.sip.registrar import Registrar
from tests.engine.b2bua.test_b2bua_lines import busy_alice, register, world
from tests.engine.b2bua.test_b2bua_trust import PAI, phone_at, register_contact, with_server
from tests.support.b2bua_peers import (
    CALLER_NUMBER,
    DOMAIN,
    GROUP,
    LINE_A,
    LINE_B,
    PASSWORD,
    PILOT,
    Network,
    Phone,
    digest_authorization,
    make_config,
)

TRUNK_HOST = "192.0.2.50"  # the upstream, on a host of its own
UPSTREAM = f"sip:{TRUNK_HOST}:5060"
OUT = "0999888777"  # a number out through the upstream


def verified_lines(net: Network) -> list[str | None]:
    """The line each call in progress is authenticated as (None: an outside caller)."""
    return [call.verified_line for call in net.b2b.index.calls.values()]


def proxy_credentials(phone: Phone, line: str, ruri: str) -> str:
    """Valid Proxy-Authorization of ``line`` for an INVITE to ``ruri``, from ``phone``."""
    phone.register(line, call_id=f"nonce-{phone.name}@test", cseq=1)
    challenge = phone.response(401, "REGISTER").headers.get_all("WWW-Authenticate")[0]
    return digest_authorization(
        challenge, username=line, password=PASSWORD, method="INVITE", uri=ruri
    )


# ============================================== finding 2: an address shared by many


def test_behind_a_trusted_sbc_a_line_in_from_is_only_a_claim() -> None:
    # /tmp/rev/sbc.py: the SBC relays every phone from its one address. alice's phone
    # registered through it; anybody else behind it (or an outside caller it relays)
    # comes from that same address and writes alice's number in From.
    config = with_server(make_config("linear", members=1), trusted_peers=("127.0.0.1",))
    net, alice, _, _ = world(config)
    register(alice, LINE_A, PASSWORD)
    m1 = net.phone("m1", 7001, "m1")
    alice.invite(PILOT, from_user=LINE_A, display="Forged")
    invite = m1.request("INVITE")
    assert invite.headers.get_all(PAI) == []
    assert verified_lines(net) == [None]  # not internal, LINE_A not marked busy


@pytest.mark.parametrize("proof", ["pai", "credentials"])
def test_behind_a_trusted_sbc_the_line_is_known_by_its_pai_or_its_credentials(
    proof: str,
) -> None:
    config = with_server(make_config("linear", members=1), trusted_peers=("127.0.0.1",))
    net, alice, _, _ = world(config)
    register(alice, LINE_A, PASSWORD)
    m1 = net.phone("m1", 7001, "m1")
    if proof == "pai":
        alice.invite(PILOT, extra=[(PAI, f'"Alice" <sip:{LINE_A}@{DOMAIN}>')])
        expected = [f'"Alice" <sip:{LINE_A}@{DOMAIN}>']
    else:
        credentials = proxy_credentials(alice, LINE_A, f"sip:{PILOT}@{DOMAIN}")
        alice.invite(PILOT, extra=[("Proxy-Authorization", credentials)])
        expected = [f'"Alice Martin" <sip:{LINE_A}@{DOMAIN}>']  # the line's name
    assert m1.request("INVITE").headers.get_all(PAI) == expected
    assert verified_lines(net) == [LINE_A]


@pytest.mark.parametrize("line", [LINE_A, LINE_B])
def test_an_address_two_lines_registered_from_proves_neither(line: str) -> None:
    # An SBC or proxy nobody listed in trusted_peers, or a NAT that maps every phone
    # to one port: LINE_A and LINE_B both registered from alice's address.
    net, alice, _, _ = world(make_config("linear", members=1))
    m1 = net.phone("m1", 7001, "m1")
    register(alice, LINE_A, PASSWORD)
    register(alice, LINE_B, PASSWORD, call_id="reg-b@test")
    alice.invite(PILOT, from_user=line)
    assert m1.request("INVITE").headers.get_all(PAI) == []
    assert verified_lines(net) == [None]


def test_an_address_proves_its_line_again_once_the_other_lines_binding_expired() -> None:
    net, alice, _, _ = world(make_config("linear", members=1))
    m1 = net.phone("m1", 7001, "m1")
    register(alice, LINE_B, PASSWORD, call_id="reg-b@test")  # expires at 3600
    net.advance(1800)
    register(alice, LINE_A, PASSWORD)  # expires at 5400
    alice.invite(PILOT)
    assert m1.request("INVITE").headers.get_all(PAI) == []  # LINE_B still shares it
    net.advance(1801)  # LINE_B's binding is gone: the address is LINE_A's alone
    alice.invite(PILOT, display="Alice")  # the line's name wins over the phone's
    assert m1.request("INVITE").headers.get_all(PAI) == [f'"Alice Martin" <sip:{LINE_A}@{DOMAIN}>']


def test_the_registrar_knows_which_lines_registered_from_an_address() -> None:
    registrar = Registrar(min_expires=60)
    office = Peer("198.51.100.7", 5060, "UDP")
    other = Peer("198.51.100.7", 5062, "UDP")

    def bind(aor: str, uri: str, source: Peer, cseq: int, expires: int = 600) -> None:
        entry = ContactEntry(uri)
        result = registrar.register(
            aor, [entry], call_id=aor, cseq=cseq, now=0.0, expires=expires, source=source
        )
        assert result.ok

    bind("0101", "sip:0101@198.51.100.7", office, 1)
    bind("0102", "sip:0102@198.51.100.7:5062", office, 1, expires=120)
    assert registrar.aors_at(office, now=0.0) == {"0101", "0102"}
    assert registrar.aors_at(Peer("198.51.100.7", 5060, "UDP"), now=0.0) == {"0101", "0102"}
    assert registrar.aors_at(Peer("198.51.100.7", 5060, "TCP"), now=0.0) == set()
    assert registrar.aors_at(office, now=120.0) == {"0101"}  # expired, not yet collected
    bind("0102", "sip:0102@198.51.100.7:5062", other, 2)  # moved to another port
    assert registrar.aors_at(office, now=0.0) == {"0101"}
    assert registrar.aors_at(other, now=0.0) == {"0102"}
    registrar.drop("0101")
    assert registrar.aors_at(office, now=0.0) == set()
    registrar.handle_timer(now=601.0)
    assert registrar.binding_count == 0
    assert registrar._by_source == {}  # bounded: nothing outlives its bindings


_SOURCES = [Peer("198.51.100.7", 5060, "UDP"), Peer("198.51.100.7", 5062, "UDP")]
_OPS = st.lists(
    st.tuples(
        st.sampled_from(["bind", "unbind", "drop", "expire"]),
        st.sampled_from(["0101", "0102", "0103"]),
        st.integers(0, 2),  # contact
        st.integers(0, 1),  # source
        st.integers(0, 400),  # seconds later
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(_OPS)
def test_the_index_by_address_always_matches_the_live_bindings(
    ops: list[tuple[str, str, int, int, int]],
) -> None:
    registrar = Registrar(min_expires=60, max_contacts=2)
    now = 0.0
    for cseq, (op, aor, contact, source, later) in enumerate(ops, start=1):
        now += later
        entry = ContactEntry(f"sip:{aor}@198.51.100.7:{6000 + contact}")
        if op in ("bind", "unbind"):
            expires = 120 if op == "bind" else 0
            registrar.register(
                aor,
                [entry],
                call_id=aor,
                cseq=cseq,
                now=now,
                expires=expires,
                source=_SOURCES[source],
            )
        elif op == "drop":
            registrar.drop(aor)
        else:
            registrar.handle_timer(now=now)
        for where in _SOURCES:
            expected = {
                b.aor
                for a in ("0101", "0102", "0103")
                for b in registrar.contacts(a, now=now)
                if b.source == where
            }
            assert registrar.aors_at(where, now=now) == expected
        index = registrar._by_source.values()
        assert sum(sum(counts.values()) for counts in index) <= registrar.binding_count
    registrar.handle_timer(now=now + 1000)
    assert registrar._by_source == {}  # nothing outlives the bindings


# ============================================== finding 10: the upstream is outside


def trunk_world(config: Config) -> tuple[Network, Phone, Phone]:
    """A world whose upstream is a trunk at TRUNK_HOST; (net, alice, trunk)."""
    net, alice, _, _ = world(with_server(config, upstream=UPSTREAM))
    return net, alice, phone_at(net, "trunk", TRUNK_HOST, 5060, "trunk")


def test_the_upstreams_pai_naming_a_line_is_kept_but_the_call_stays_outside() -> None:
    config = make_config("linear", members=1, member_lines=[LINE_A], hunt_direct_calls=True)
    net, alice, trunk = trunk_world(config)
    m1 = net.phone("m1", 7001, "m1")
    busy_alice(net, alice)
    # a carrier passing a caller's spoofed number, or a datagram spoofed from its address
    trunk.invite(LINE_A, from_user=LINE_B, extra=[(PAI, f"<sip:{LINE_B}@{DOMAIN}>")])
    trunk.response(180)
    invite = m1.request("INVITE")  # hunted into the group like any outside call
    assert invite.headers.get_all(PAI) == [f"<sip:{LINE_B}@{DOMAIN}>"]  # shown to members
    assert not trunk.has(486)
    assert verified_lines(net) == [None, None]  # LINE_B is not marked busy


def test_the_trust_domain_tells_the_upstream_from_the_peers() -> None:
    trust = TrustDomain(["198.51.100.0/24"], UPSTREAM)
    assert trust.trusts(TRUNK_HOST) and not trust.is_peer(TRUNK_HOST)
    assert trust.trusts("198.51.100.9") and trust.is_peer("::ffff:198.51.100.9")
    assert not trust.trusts("203.0.113.1") and not trust.is_peer("203.0.113.1")
    both = TrustDomain([TRUNK_HOST], UPSTREAM)  # one SBC in front of carrier and phones
    assert both.trusts(TRUNK_HOST) and both.is_peer(TRUNK_HOST)
    assert TrustDomain([], UPSTREAM) and not TrustDomain([], UPSTREAM).is_peer(TRUNK_HOST)


def test_a_call_from_the_upstream_is_outside_even_with_a_lines_credentials() -> None:
    config = make_config("linear", members=1, member_lines=[LINE_A], hunt_direct_calls=True)
    net, alice, trunk = trunk_world(config)
    m1 = net.phone("m1", 7001, "m1")
    busy_alice(net, alice)
    credentials = proxy_credentials(trunk, LINE_B, f"sip:{LINE_A}@{DOMAIN}")
    trunk.invite(LINE_A, from_user=LINE_B, extra=[("Proxy-Authorization", credentials)])
    trunk.response(180)
    assert m1.request("INVITE").headers.get_all(PAI) == []  # hunted: an outside call
    assert verified_lines(net) == [None, None]


def test_an_upstream_listed_as_trusted_peer_speaks_for_our_lines() -> None:
    config = make_config("linear", members=1, member_lines=[LINE_A], hunt_direct_calls=True)
    net, alice, trunk = trunk_world(with_server(config, trusted_peers=(TRUNK_HOST,)))
    busy_alice(net, alice)
    call = trunk.invite(LINE_A, extra=[(PAI, f"<sip:{LINE_B}@{DOMAIN}>")])
    call.ack_failure(trunk.response(486))  # internal: hunt_direct_calls does not apply


def test_the_upstream_may_not_register_contacts_elsewhere() -> None:
    net, _, trunk = trunk_world(make_config("linear", members=1))
    assert register_contact(trunk, f"<sip:{LINE_A}@93.184.216.34:5060>").status == 403
    assert register_contact(trunk, f"<sip:{LINE_A}@{TRUNK_HOST}:5070>").status == 200
    assert net.b2b.registrar.binding_count == 1


# ============================================== finding 15: forged callers sent out


def overflowing(**server: object) -> Config:
    """A group that answers, waits 5 s, then overflows to OUT through the upstream."""
    config = make_config(
        "linear", members=0, queue={"max_wait": 5, "overflow_to": OUT, "answer": True}
    )
    return with_server(config, upstream=UPSTREAM, **server)


def sent_out(net: Network, trunk: Phone) -> Request:
    net.advance(6)  # max_wait: the answered caller goes out through the upstream
    invite = trunk.request("INVITE")
    assert str(invite.uri) == f"sip:{OUT}@{TRUNK_HOST}:5060"
    return invite


def test_an_outside_caller_claiming_a_line_is_sent_out_as_the_pilot() -> None:
    net, _, _, caller = world(overflowing())
    trunk = phone_at(net, "trunk", TRUNK_HOST, 5060, "trunk")
    call = caller.invite(PILOT, from_user=LINE_A, display="Alice Martin")
    call.ack(caller.response(200))
    invite = sent_out(net, trunk)
    assert invite.from_.uri.user == PILOT  # type: ignore[union-attr]
    assert invite.from_.display_name == GROUP
    assert invite.headers.get_all(PAI) == []
    assert LINE_A not in invite.to_bytes().decode()


def test_an_outside_caller_keeps_its_own_number_when_sent_out() -> None:
    net, _, _, caller = world(overflowing())
    trunk = phone_at(net, "trunk", TRUNK_HOST, 5060, "trunk")
    call = caller.invite(PILOT, display="Jean Dupont")
    call.ack(caller.response(200))
    invite = sent_out(net, trunk)
    assert invite.from_.uri.user == CALLER_NUMBER  # type: ignore[union-attr]
    assert invite.from_.display_name == "Jean Dupont"


def test_an_authenticated_line_is_sent_out_as_itself() -> None:
    net, alice, _, _ = world(overflowing())
    trunk = phone_at(net, "trunk", TRUNK_HOST, 5060, "trunk")
    register(alice, LINE_A, PASSWORD)
    call = alice.invite(PILOT, display="Alice Martin")
    call.ack(alice.response(200))
    invite = sent_out(net, trunk)
    assert invite.from_.uri.user == LINE_A  # type: ignore[union-attr]
    assert invite.headers.get_all(PAI) == [f'"Alice Martin" <sip:{LINE_A}@{DOMAIN}>']


def test_a_line_a_trusted_peer_asserts_replaces_another_line_in_from() -> None:
    net, _, _, _ = world(overflowing(trusted_peers=("127.0.0.1",)))
    trunk = phone_at(net, "trunk", TRUNK_HOST, 5060, "trunk")
    sbc = net.phone("sbc", 5070, "sbc")
    call = sbc.invite(PILOT, from_user=LINE_A, extra=[(PAI, f"<sip:{LINE_B}@{DOMAIN}>")])
    call.ack(sbc.response(200))
    invite = sent_out(net, trunk)
    assert invite.from_.uri.user == LINE_B  # type: ignore[union-attr]
    assert invite.headers.get_all(PAI) == [f"<sip:{LINE_B}@{DOMAIN}>"]


def test_with_privacy_the_asserted_line_does_not_go_into_from() -> None:
    net, _, _, _ = world(overflowing(trusted_peers=("127.0.0.1",)))
    trunk = phone_at(net, "trunk", TRUNK_HOST, 5060, "trunk")
    sbc = net.phone("sbc", 5070, "sbc")
    extra = [(PAI, f"<sip:{LINE_B}@{DOMAIN}>"), ("Privacy", "id")]
    call = sbc.invite(PILOT, from_user=LINE_A, extra=extra)
    call.ack(sbc.response(200))
    invite = sent_out(net, trunk)
    assert invite.from_.uri.user == PILOT  # type: ignore[union-attr]
    assert invite.headers.get("Privacy") == "id"  # the trunk hides the PAI it still gets


def test_a_claim_sent_out_by_a_line_not_a_group_is_anonymous() -> None:
    # The group overflows to LINE_B (no phone registered), whose forward_no_answer sends
    # the already answered caller out: no pilot forwarded it, so nobody is presented.
    config = make_config(
        "linear",
        members=0,
        lines=[{"number": LINE_B, "forward_no_answer": OUT}],
        queue={"max_wait": 5, "overflow_to": LINE_B, "answer": True},
    )
    net, _, _, caller = world(with_server(config, upstream=UPSTREAM))
    trunk = phone_at(net, "trunk", TRUNK_HOST, 5060, "trunk")
    call = caller.invite(PILOT, from_user=PILOT, display="Support")
    call.ack(caller.response(200))
    invite = sent_out(net, trunk)
    assert str(invite.from_.uri) == "sip:anonymous@anonymous.invalid"
    assert invite.from_.display_name == "Anonymous"
    assert invite.headers.get_all(PAI) == []


def test_an_anonymous_caller_is_shown_to_members_as_rfc_3323_asks() -> None:
    net, _, _, caller = world(make_config("linear", members=1))
    m1 = net.phone("m1", 7001, "m1")
    caller.invite(PILOT, from_user="anonymous", display="Anonymous")
    invite = m1.request("INVITE")
    assert str(invite.from_.uri) == "sip:anonymous@anonymous.invalid"
    assert invite.headers.get_all(PAI) == []


@pytest.mark.parametrize(
    "disguised",
    ["%30102030405", "%30%31%30%32%30%33%30%34%30%35", "01-02-03-04-05", "(01)02.03.04.05"],
)
def test_a_line_disguised_by_escapes_or_separators_is_still_no_caller_id(disguised: str) -> None:
    """RFC 3261 §19.1.4: ``%30`` is ``0``; RFC 3966: ``-.()`` are only visual separators.
    A From naming one of our lines that way is the same claim, and is not sent out."""
    net, _, _, caller = world(overflowing())
    trunk = phone_at(net, "trunk", TRUNK_HOST, 5060, "trunk")
    call = caller.invite(PILOT, from_user=disguised, display="Alice Martin")
    call.ack(caller.response(200))
    invite = sent_out(net, trunk)
    assert invite.from_.uri.user == PILOT  # type: ignore[union-attr]
    assert "Alice Martin" not in invite.to_bytes().decode()


@pytest.mark.parametrize(
    ("written", "sent"), [("06.11.22.33.44", "0611223344"), ("jean.dupont", "jean.dupont")]
)
def test_an_outside_caller_is_sent_out_as_its_number_without_separators(
    written: str, sent: str
) -> None:
    net, _, _, caller = world(overflowing())
    trunk = phone_at(net, "trunk", TRUNK_HOST, 5060, "trunk")
    call = caller.invite(PILOT, from_user=written, display="Jean Dupont")
    call.ack(caller.response(200))
    invite = sent_out(net, trunk)
    assert invite.from_.uri.user == sent  # type: ignore[union-attr]
    assert invite.from_.display_name == "Jean Dupont"
