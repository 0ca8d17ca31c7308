"""``lines[].name`` (the licence name) is the display name of the line's calls.

Internal calls (to another line), group calls (the caller name members see) and
outgoing calls through the upstream show it in From and P-Asserted-Identity,
whatever the phone put in its own From; it is a quoted-string there (RFC 3261
§25.1: backslash and double quote escaped). A line without a name keeps what its
phone says; an outside caller's display name is never replaced.
"""

from __future__ import annotations

from huntgroup.config.models import Config
from huntgroup.engine.sip.fields import parse_name_address
from huntgroup.engine.sip.message import Request
from tests.engine.b2bua.test_b2bua_lines import register
from tests.engine.b2bua.test_b2bua_upstream import (
    EXTERNAL,
    UPSTREAM_PORT,
    authorised_invite,
    upstream_config,
)
from tests.support.b2bua_peers import (
    CALLER_NUMBER,
    LINE_A,
    LINE_B,
    PASSWORD,
    PILOT,
    Network,
    Phone,
    make_config,
)

TRICKY = 'Al "the Boss" \\ Martin'


def world(alice_name: str = "Alice Martin") -> tuple[Network, Phone, Phone]:
    config = make_config(
        "linear", members=1, lines=[{"number": LINE_A, "name": alice_name}], member_lines=[LINE_B]
    )
    net = Network(config)
    alice = net.phone("alice", 7101, LINE_A)
    bob = net.phone("bob", 7102, LINE_B)
    register(alice, LINE_A, PASSWORD, call_id="reg-alice@test")
    register(bob, LINE_B, PASSWORD, call_id="reg-bob@test")
    alice.drop()
    bob.drop()
    return net, alice, bob


def shown(invite: Request, header: str = "From") -> str:
    value = invite.headers.get(header)
    assert value is not None, f"no {header}"
    return parse_name_address(value).display_name or ""


def test_an_internal_call_shows_the_line_name_not_the_phones() -> None:
    _net, alice, bob = world()
    alice.invite(LINE_B, display="alice's phone")
    invite = bob.request("INVITE")
    assert shown(invite) == "Alice Martin"
    assert shown(invite, "P-Asserted-Identity") == "Alice Martin"


def test_members_see_the_line_name_on_a_group_call_from_it() -> None:
    net, alice, _bob = world()
    m1 = net.phone("m1", 7001, "m1")
    alice.invite(PILOT)
    invite = m1.request("INVITE")
    assert shown(invite) == "Alice Martin"
    assert invite.from_.uri.user == LINE_A  # type: ignore[union-attr]


def test_the_name_is_a_quoted_string_with_quotes_and_backslashes_escaped() -> None:
    _net, alice, bob = world(TRICKY)
    alice.invite(LINE_B)
    invite = bob.request("INVITE")
    assert '"Al \\"the Boss\\" \\\\ Martin" <sip:' in (invite.headers.get("From") or "")
    assert shown(invite) == TRICKY
    assert shown(invite, "P-Asserted-Identity") == TRICKY


def test_a_line_without_a_name_keeps_what_its_phone_says() -> None:
    _net, alice, bob = world("")
    alice.invite(LINE_B, display="Front desk")
    assert shown(bob.request("INVITE")) == "Front desk"


def test_an_outside_caller_claiming_a_line_gets_no_line_name() -> None:
    net, _alice, bob = world()
    outside = net.phone("outside", 6000, CALLER_NUMBER)
    outside.invite(LINE_B, from_user=LINE_A, display="Not Alice")  # not authenticated
    invite = bob.request("INVITE")
    assert shown(invite) == "Not Alice"
    assert invite.headers.get("P-Asserted-Identity") is None


def test_an_outgoing_call_shows_the_line_name_to_the_upstream() -> None:
    base = upstream_config()
    lines = tuple(
        line.model_copy(update={"name": TRICKY}) if line.number == LINE_A else line
        for line in base.lines
    )
    config: Config = base.model_copy(update={"lines": lines})
    net = Network(config)
    upstream = net.phone("upstream", UPSTREAM_PORT, "core")
    authorised_invite(net)
    invite = upstream.request("INVITE")
    assert str(invite.uri).startswith(f"sip:{EXTERNAL}@")
    assert shown(invite) == TRICKY
    assert shown(invite, "P-Asserted-Identity") == TRICKY
