"""Lines: REGISTER with digest authentication, then calls to a line and through a group."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from huntgroup.config.models import Config
from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.message import Response
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
    parse_challenge,
)


def register(
    phone: Phone,
    number: str,
    password: str,
    *,
    algorithm: str = "SHA-256",
    username: str | None = None,
    call_id: str = "reg-1@test",
    extra: Sequence[tuple[str, str]] = (),
) -> Response:
    """The full REGISTER exchange (``extra`` headers in both REGISTERs); returns the final
    response to the authorised REGISTER."""
    phone.register(number, call_id=call_id, cseq=1, extra=extra)
    challenge = phone.response(401, "REGISTER")
    offered = {
        parse_challenge(v)["algorithm"]: v for v in challenge.headers.get_all("WWW-Authenticate")
    }
    authorization = digest_authorization(
        offered[algorithm],
        username=username or number,
        password=password,
        method="REGISTER",
        uri=f"sip:{DOMAIN}",
    )
    phone.register(number, call_id=call_id, cseq=2, authorization=authorization, extra=extra)
    final = phone.next()
    assert isinstance(final, Response)
    return final


def world(config: Config | None = None) -> tuple[Network, Phone, Phone, Phone]:
    net = Network(config or make_config("linear", members=1, member_lines=[LINE_A]))
    alice = net.phone("alice", 7101, LINE_A)
    bob = net.phone("bob", 7102, LINE_B)
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    return net, alice, bob, caller


def test_register_is_challenged_with_sha256_and_md5() -> None:
    _net, alice, _, _ = world()
    alice.register(LINE_A, call_id="reg@test", cseq=1)
    challenge = alice.response(401, "REGISTER")
    values = challenge.headers.get_all("WWW-Authenticate")
    params = [parse_challenge(v) for v in values]
    assert [p["algorithm"] for p in params] == ["SHA-256", "MD5"]
    for p in params:
        assert p["realm"] == DOMAIN
        assert p["qop"] == "auth"
        assert p["nonce"] and p["opaque"]
    assert params[0]["nonce"] == params[1]["nonce"]
    assert challenge.to.tag
    alice.quiet()


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_register_with_correct_digest_gets_200_with_contact(algorithm: str) -> None:
    net, alice, _, _ = world()
    ok = register(alice, LINE_A, PASSWORD, algorithm=algorithm)
    assert ok.status == 200
    contacts = ok.contacts
    assert [str(c.uri) for c in contacts] == [f"sip:{LINE_A}@127.0.0.1:7101"]
    assert contacts[0].param("expires") == "3600"
    assert net.b2b.registrar.contacts(LINE_A, now=net.now)


def test_register_with_wrong_password_gets_403() -> None:
    net, alice, _, _ = world()
    refused = register(alice, LINE_A, "not-the-password")
    assert refused.status == 403
    assert not net.b2b.registrar.contacts(LINE_A, now=net.now)


def test_register_with_another_lines_credentials_gets_403() -> None:
    net, alice, _, _ = world()
    refused = register(alice, LINE_A, PASSWORD, username=LINE_B)
    assert refused.status == 403
    assert not net.b2b.registrar.contacts(LINE_A, now=net.now)


def test_register_for_unknown_line_is_challenged_then_refused_like_a_line() -> None:
    net, alice, _, _ = world()
    refused = register(alice, "0199999999", PASSWORD)  # 401 first, like a line
    assert refused.status == 403
    assert not net.b2b.registrar.contacts("0199999999", now=net.now)


def test_garbled_authorization_gets_400() -> None:
    _net, alice, _, _ = world()
    alice.register(LINE_A, call_id="r@test", cseq=1, authorization="Digest ,,,=")
    alice.response(400, "REGISTER")


def test_direct_call_rings_the_registered_contact() -> None:
    net, alice, _, caller = world()
    assert register(alice, LINE_A, PASSWORD).status == 200
    call = caller.invite(LINE_A)
    trying = caller.response(100)  # nothing else to say yet: the phone has not rung
    assert trying.to.tag is None and not caller.has(180)
    invite = alice.request("INVITE")
    assert str(invite.uri) == f"sip:{LINE_A}@127.0.0.1:7101"
    assert invite.from_.uri.user == CALLER_NUMBER  # type: ignore[union-attr]
    assert [t.destination for _, t in net.transmits if t.data.startswith(b"INVITE")] == [
        Peer("127.0.0.1", 7101, "UDP")
    ]
    leg = alice.answering(invite)
    leg.reply(180)
    caller.response(180)
    leg.reply(200)
    alice.request("ACK")
    ok = caller.response(200)
    call.ack(ok)
    assert net.relays


def test_pilot_call_rings_the_registered_member_line() -> None:
    _net, alice, _, caller = world(make_config("linear", members=0, member_lines=[LINE_A]))
    register(alice, LINE_A, PASSWORD)
    caller.invite(PILOT)
    caller.response(180)
    invite = alice.request("INVITE")
    assert str(invite.uri) == f"sip:{LINE_A}@127.0.0.1:7101"


def test_unregistered_line_member_is_skipped_at_once() -> None:
    config = make_config("linear", members=0, member_lines=[LINE_B, LINE_A])
    net, alice, bob, caller = world(config)
    register(alice, LINE_A, PASSWORD)
    caller.invite(PILOT)
    alice.request("INVITE")  # LINE_B (position 1) has no contact: LINE_A at once
    assert net.now == 0.0
    bob.quiet()


def test_direct_call_to_unregistered_line_is_refused_at_once() -> None:
    net, _, bob, caller = world()
    call = caller.invite(LINE_B)
    final = caller.response(480)
    call.ack_failure(final)
    bob.quiet()
    assert net.ports_in_use == 0


def test_all_unregistered_pilot_caller_waits_with_music_until_a_line_registers() -> None:
    """Issue 11: a line with no registered phone is unavailable, not free. The caller
    is queued (answered, music) instead of hunting through unreachable lines, and is
    offered to the first line that registers."""
    net, alice, _bob, caller = world(
        make_config("linear", members=0, member_lines=[LINE_A, LINE_B])
    )
    call = caller.invite(PILOT)
    call.ack(caller.response(200))  # queued: answered with the hold music
    assert not alice.inbox
    assert net.b2b.core.queue(GROUP) == [net.b2b.core.call_ids()[0]]
    register(alice, LINE_A, PASSWORD)
    alice.request("INVITE")  # offered at once


def test_all_unregistered_pilot_call_is_released_480_when_empty_overflows() -> None:
    config = make_config(
        "linear", members=0, member_lines=[LINE_A, LINE_B], queue={"when_empty": "overflow"}
    )
    net, _, _bob, caller = world(config)
    caller.invite(PILOT)
    caller.response(480)
    assert net.ports_in_use == 0


# -------------------------------------------------------------- busy lines


def busy_alice(net: Network, alice: Phone) -> None:
    """Register alice and put her on a direct call from another outside caller."""
    register(alice, LINE_A, PASSWORD)
    other = net.phone("other", 6100, "0611111111")
    call = other.invite(LINE_A)
    leg = alice.answering(alice.request("INVITE"))
    leg.reply(200)
    alice.request("ACK")
    call.ack(other.response(200))


def test_direct_call_to_busy_line_follows_forward_busy_with_302() -> None:
    config = make_config(
        "linear", members=1, lines=[{"number": LINE_A, "forward_busy": "0999888777"}]
    )
    net, alice, _, caller = world(config)
    busy_alice(net, alice)
    call = caller.invite(LINE_A)
    moved = caller.response(302)
    assert [str(c.uri) for c in moved.contacts] == [f"sip:0999888777@{DOMAIN}"]
    call.ack_failure(moved)
    alice.quiet()
    assert net.b2b.active_calls == 1


def test_direct_call_to_busy_line_without_forwarding_gets_486() -> None:
    net, alice, _, caller = world()
    busy_alice(net, alice)
    call = caller.invite(LINE_A)
    busy = caller.response(486)
    call.ack_failure(busy)
    alice.quiet()


def test_hunt_direct_calls_distributes_a_busy_lines_call_to_the_group() -> None:
    config = make_config(
        "linear",
        members=1,
        member_lines=[LINE_A],
        hunt_direct_calls=True,
        lines=[{"number": LINE_A, "forward_busy": "0999888777"}],
    )
    net, alice, _, caller = world(config)
    m1 = net.phone("m1", 7001, "m1")
    busy_alice(net, alice)
    call = caller.invite(LINE_A)
    caller.response(180)
    assert not caller.has(302)
    invite = m1.request("INVITE")
    assert invite.from_.uri.user == CALLER_NUMBER  # type: ignore[union-attr]
    leg = m1.answering(invite)
    leg.reply(200)
    m1.request("ACK")
    call.ack(caller.response(200))
    alice.quiet()


def test_hunt_direct_calls_does_not_apply_to_internal_callers() -> None:
    config = make_config(
        "linear",
        members=1,
        member_lines=[LINE_A],
        hunt_direct_calls=True,
    )
    net, alice, bob, _ = world(config)
    m1 = net.phone("m1", 7001, "m1")
    busy_alice(net, alice)
    register(bob, LINE_B, PASSWORD, call_id="reg-bob@test")
    call = bob.invite(LINE_A)  # bob is LINE_B, calling from where it registered: internal
    busy = bob.response(486)
    call.ack_failure(busy)
    m1.quiet()


def test_direct_call_forward_to_own_line_is_rerouted_internally() -> None:
    config = make_config("linear", members=1, lines=[{"number": LINE_A, "forward_busy": LINE_B}])
    net, alice, bob, caller = world(config)
    busy_alice(net, alice)
    register(bob, LINE_B, PASSWORD, call_id="reg-bob@test")
    caller.invite(LINE_A)
    invite = bob.request("INVITE")
    assert str(invite.uri) == f"sip:{LINE_B}@127.0.0.1:7102"
    assert not caller.has(302)


def test_expired_registration_makes_the_line_unreachable() -> None:
    net, alice, _, caller = world()
    alice.register(LINE_A, call_id="short@test", cseq=1)
    challenge = alice.response(401, "REGISTER")
    authorization = digest_authorization(
        challenge.headers.get_all("WWW-Authenticate")[0],
        username=LINE_A,
        password=PASSWORD,
        method="REGISTER",
        uri=f"sip:{DOMAIN}",
    )
    alice.register(LINE_A, call_id="short@test", cseq=2, authorization=authorization, expires=60)
    assert alice.response(200, "REGISTER").contacts[0].param("expires") == "60"
    net.advance(61)
    call = caller.invite(LINE_A)
    final = caller.response(480)
    call.ack_failure(final)
    alice.quiet()


def test_line_with_two_contacts_forks_and_cancels_the_loser() -> None:
    net, alice, _, caller = world()
    desk = net.phone("desk", 7103, LINE_A)
    register(alice, LINE_A, PASSWORD, call_id="reg-alice@test")
    register(desk, LINE_A, PASSWORD, call_id="reg-desk@test")
    call = caller.invite(LINE_A)
    inv_a, inv_d = alice.request("INVITE"), desk.request("INVITE")
    assert inv_a.call_id != inv_d.call_id
    leg_a, leg_d = alice.answering(inv_a), desk.answering(inv_d)
    leg_a.reply(180)
    leg_d.reply(486)  # one phone refuses: the other still rings, the caller waits
    desk.request("ACK")
    assert not caller.has(486) and not caller.has(480)
    leg_a.reply(200)
    alice.request("ACK")
    call.ack(caller.response(200))
    desk.quiet()


def test_forking_cancels_the_other_ringing_contact_on_answer() -> None:
    net, alice, _, caller = world()
    desk = net.phone("desk", 7103, LINE_A)
    register(alice, LINE_A, PASSWORD, call_id="reg-alice@test")
    register(desk, LINE_A, PASSWORD, call_id="reg-desk@test")
    call = caller.invite(LINE_A)
    inv_a, inv_d = alice.request("INVITE"), desk.request("INVITE")
    leg_a, leg_d = alice.answering(inv_a), desk.answering(inv_d)
    leg_a.reply(180)
    leg_d.reply(180)
    leg_d.reply(200)
    desk.request("ACK")
    cancel = alice.request("CANCEL")
    assert cancel.top_via.branch == inv_a.top_via.branch
    call.ack(caller.response(200))


def test_member_on_its_own_outgoing_call_is_not_offered_group_calls() -> None:
    config = make_config("linear", members=0, member_lines=[LINE_A])
    _net, alice, bob, caller = world(config)
    register(alice, LINE_A, PASSWORD, call_id="reg-alice@test")
    register(bob, LINE_B, PASSWORD, call_id="reg-bob@test")
    alice.drop()
    own = alice.invite(LINE_B)  # alice calls bob: alice is on a call
    bob_leg = bob.answering(bob.request("INVITE"))
    bob_leg.reply(200)
    bob.request("ACK")
    own.ack(alice.response(200))
    alice.drop()
    caller.invite(PILOT)
    assert not alice.has("INVITE"), "alice is busy on her own call"
    caller.response(200)  # queued with music instead


def test_registrar_tells_the_core_when_a_line_gains_and_loses_its_contact() -> None:
    """Issue 11: the line is unavailable until it registers, available while it has a
    contact, and unavailable again when its last contact expires (no INVITE is sent to a
    line without contact, so no 'unreachable (no contact)' hunting)."""
    from huntgroup.queue.availability import MemberState

    net, alice, _bob, caller = world(make_config("linear", members=0, member_lines=[LINE_A]))
    core = net.b2b.core
    assert core.member_state(GROUP, LINE_A, now=net.now) is MemberState.UNAVAILABLE
    assert register(alice, LINE_A, PASSWORD).status == 200
    assert core.member_state(GROUP, LINE_A, now=net.now) is MemberState.FREE
    net.advance(3601)  # the binding expires (registrar timer)
    assert core.member_state(GROUP, LINE_A, now=net.now) is MemberState.UNAVAILABLE
    caller.invite(PILOT)
    caller.response(200)  # waits with music: alice is not tried
    assert not alice.has("INVITE")


def test_a_line_added_by_a_reload_is_unavailable_until_it_registers() -> None:
    from huntgroup.queue.availability import MemberState

    net, _alice, _bob, _caller = world(make_config("linear", members=1))
    net.b2b.reload(make_config("linear", members=1, member_lines=[LINE_B]), now=net.now)
    assert net.b2b.core.member_state(GROUP, LINE_B, now=net.now) is MemberState.UNAVAILABLE


def test_a_reload_that_changes_joined_logs_the_member_in_or_out() -> None:
    """Issue 11: SIGHUP applies a changed `joined:` (as `huntgroup diff` reports it)."""
    from huntgroup.config.diff import config_changes
    from huntgroup.queue.availability import MemberState

    net, _alice, _bob, _caller = world(make_config("linear", members=1))
    before = net.b2b.config
    group = before.groups[0]
    member = group.members[0].model_copy(update={"joined": False})
    after = before.model_copy(update={"groups": (group.model_copy(update={"members": (member,)}),)})
    assert config_changes(before, after) == [
        f"group {GROUP}: member {member.key} joined true -> false"
    ]
    net.b2b.reload(after, now=net.now)
    assert net.b2b.core.member_state(GROUP, member.key, now=net.now) is MemberState.LOGGED_OUT
    net.b2b.reload(before, now=net.now)
    assert net.b2b.core.member_state(GROUP, member.key, now=net.now) is MemberState.FREE
