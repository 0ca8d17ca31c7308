"""The location service, with scripted time: RFC 3261 §10.3 behaviour and invariants."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.fields import ContactEntry, parse_contact_values
from huntgroup.engine.sip.registrar import Binding, BindingsExpired, Registrar, binding_key
from huntgroup.errors import RemoteProtocolError

AOR = "0102030405"
PHONE = "sip:0102030405@192.168.1.20:5060"
SOFTPHONE = "sip:0102030405@10.0.0.7:5062;transport=tcp"
NAT = Peer("203.0.113.9", 40123, "UDP")


def entry(uri: str = PHONE, expires: int | None = None, q: float = 1.0) -> ContactEntry:
    return ContactEntry(uri=uri, expires=expires, q=q)


def uris(bindings: list[Binding] | tuple[Binding, ...]) -> list[str]:
    return [b.uri for b in bindings]


# --------------------------------------------------------------------------- add / refresh / remove


def test_add_binding_with_source_and_default_expiry() -> None:
    reg = Registrar()
    result = reg.register(AOR, [entry()], call_id="c1", cseq=1, now=100.0, source=NAT)
    assert result.status == 200 and result.ok and result.changed
    [binding] = reg.contacts(AOR, now=100.0)
    assert binding.uri == PHONE
    assert binding.expires_at == 100.0 + 3600
    assert binding.source == NAT
    assert binding.call_id == "c1" and binding.cseq == 1
    assert result.contact_values == (f"<{PHONE}>;expires=3600",)
    assert reg.binding_count == 1
    assert reg.aors() == [AOR]


def test_expires_header_then_parameter_precedence_and_cap() -> None:
    reg = Registrar(max_expires=1800, default_expires=1800)
    reg.register(
        AOR, [entry(expires=120), entry(SOFTPHONE)], call_id="c", cseq=1, now=0.0, expires=600
    )
    by_uri = {b.uri: b for b in reg.contacts(AOR, now=0.0)}
    assert by_uri[PHONE].expires_at == 120  # the parameter wins
    assert by_uri[SOFTPHONE].expires_at == 600  # the header is the fallback
    reg.register(AOR, [entry(expires=99999)], call_id="c", cseq=2, now=10.0)
    assert {b.uri: b for b in reg.contacts(AOR, now=10.0)}[PHONE].expires_at == 10 + 1800


def test_refresh_moves_expiry_and_is_not_a_change() -> None:
    reg = Registrar()
    reg.register(AOR, [entry(expires=300)], call_id="c", cseq=1, now=0.0)
    result = reg.register(AOR, [entry(expires=300)], call_id="c", cseq=2, now=200.0)
    assert result.ok and not result.changed
    [binding] = reg.contacts(AOR, now=450.0)
    assert binding.expires_at == 500.0 and binding.cseq == 2
    assert reg.contacts(AOR, now=500.0) == []


def test_each_binding_keeps_the_events_its_last_register_advertised() -> None:
    reg = Registrar()
    dialog = frozenset(["dialog"])
    reg.register(AOR, [entry()], call_id="c", cseq=1, now=0.0, events=dialog)
    assert [b.events for b in reg.contacts(AOR, now=1.0)] == [dialog]
    reg.register(AOR, [entry()], call_id="c", cseq=2, now=10.0)  # a refresh without them
    assert [b.events for b in reg.contacts(AOR, now=11.0)] == [frozenset()]


def test_each_binding_keeps_the_path_of_its_last_register_a_new_path_is_a_change() -> None:
    reg = Registrar()
    path = ("<sip:10.0.0.10;lr>",)
    reg.register(AOR, [entry()], call_id="c", cseq=1, now=0.0, path=path)
    assert [b.path for b in reg.contacts(AOR, now=1.0)] == [path]
    same = reg.register(AOR, [entry()], call_id="c", cseq=2, now=10.0, path=path)
    assert same.ok and not same.changed
    other = ("<sip:10.0.0.11;lr>", "<sip:10.0.0.12;lr>")
    moved = reg.register(AOR, [entry()], call_id="c", cseq=3, now=20.0, path=other)
    assert moved.changed and [b.path for b in reg.contacts(AOR, now=21.0)] == [other]
    direct = reg.register(AOR, [entry()], call_id="c", cseq=4, now=30.0)
    assert direct.changed and [b.path for b in reg.contacts(AOR, now=31.0)] == [()]


def test_uri_matching_ignores_case_of_scheme_and_host_not_user() -> None:
    reg = Registrar()
    reg.register(AOR, [entry("sip:alice@Example.COM:5060")], call_id="c", cseq=1, now=0.0)
    reg.register(AOR, [entry("SIP:alice@example.com:5060")], call_id="c", cseq=2, now=1.0)
    assert len(reg.contacts(AOR, now=1.0)) == 1
    reg.register(AOR, [entry("sip:ALICE@example.com:5060")], call_id="c", cseq=3, now=2.0)
    assert len(reg.contacts(AOR, now=2.0)) == 2


def test_expires_zero_removes_one_binding() -> None:
    reg = Registrar()
    reg.register(AOR, [entry(), entry(SOFTPHONE)], call_id="c", cseq=1, now=0.0)
    result = reg.register(AOR, [entry(expires=0)], call_id="c", cseq=2, now=5.0)
    assert result.ok and result.changed
    assert uris(reg.contacts(AOR, now=5.0)) == [SOFTPHONE]
    assert uris(result.bindings) == [SOFTPHONE]
    # removing what is not there is fine and changes nothing
    again = reg.register(AOR, [entry(expires=0)], call_id="c", cseq=3, now=6.0)
    assert again.ok and not again.changed


def test_expires_header_zero_removes_listed_contacts() -> None:
    reg = Registrar()
    reg.register(AOR, [entry(), entry(SOFTPHONE)], call_id="c", cseq=1, now=0.0)
    reg.register(AOR, [entry(SOFTPHONE)], call_id="c", cseq=2, now=1.0, expires=0)
    assert uris(reg.contacts(AOR, now=1.0)) == [PHONE]


def test_query_without_contacts_lists_bindings() -> None:
    reg = Registrar()
    reg.register(AOR, [entry(expires=100)], call_id="c", cseq=1, now=0.0)
    result = reg.register(AOR, [], call_id="other", cseq=1, now=40.0)
    assert result.ok and not result.changed
    assert result.contact_values == (f"<{PHONE}>;expires=60",)


def test_several_contacts_per_line_ordered_by_q_then_recency() -> None:
    reg = Registrar()
    reg.register(AOR, [entry(PHONE, q=0.5)], call_id="a", cseq=1, now=0.0)
    reg.register(AOR, [entry(SOFTPHONE, q=0.5)], call_id="b", cseq=1, now=10.0)
    reg.register(AOR, [entry("sip:desk@192.0.2.4", q=0.9)], call_id="d", cseq=1, now=5.0)
    reg.register(AOR, [entry("sip:old@192.0.2.5")], call_id="e", cseq=1, now=1.0)
    assert uris(reg.contacts(AOR, now=20.0)) == [
        "sip:old@192.0.2.5",
        "sip:desk@192.0.2.4",
        SOFTPHONE,  # same q as PHONE, refreshed more recently
        PHONE,
    ]
    values = reg.register(AOR, [], call_id="x", cseq=1, now=20.0).contact_values
    assert values[1] == "<sip:desk@192.0.2.4>;expires=3585;q=0.9"


def test_instance_id_identifies_the_binding_when_the_phone_moves() -> None:
    reg = Registrar()
    first = ContactEntry(PHONE, instance="urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF")
    moved = ContactEntry(
        "sip:0102030405@192.168.7.7:5060", instance="urn:uuid:00000000-0000-1000-8000-aabbccddeeff"
    )
    reg.register(AOR, [first], call_id="c", cseq=1, now=0.0)
    result = reg.register(AOR, [moved], call_id="c2", cseq=1, now=30.0, source=NAT)
    assert result.changed
    [binding] = reg.contacts(AOR, now=30.0)
    assert binding.uri == moved.uri
    assert binding.instance == moved.instance
    assert binding.source == NAT
    assert '+sip.instance="<urn:uuid:' in result.contact_values[0]


# --------------------------------------------------------------------------- wildcard


def test_wildcard_with_expires_zero_removes_all() -> None:
    reg = Registrar()
    reg.register(AOR, [entry(), entry(SOFTPHONE)], call_id="c", cseq=1, now=0.0)
    reg.register("0607080910", [entry("sip:other@192.0.2.1")], call_id="z", cseq=1, now=0.0)
    [wildcard] = parse_contact_values("*")
    result = reg.register(AOR, [wildcard], call_id="c", cseq=2, now=1.0, expires=0)
    assert result.ok and result.changed and result.bindings == ()
    assert reg.contacts(AOR, now=1.0) == []
    assert len(reg.contacts("0607080910", now=1.0)) == 1
    assert reg.aors() == ["0607080910"]


@pytest.mark.parametrize(
    ("contacts", "expires"),
    [
        (["*", PHONE], 0),  # wildcard with another contact
        (["*"], 60),  # non-zero expiry
        (["*"], None),  # no Expires header: the default applies, not zero
    ],
)
def test_invalid_wildcards_are_400_and_change_nothing(
    contacts: list[str], expires: int | None
) -> None:
    reg = Registrar()
    reg.register(AOR, [entry()], call_id="c", cseq=1, now=0.0)
    parsed = [e for value in contacts for e in parse_contact_values(value)]
    result = reg.register(AOR, parsed, call_id="c", cseq=2, now=1.0, expires=expires)
    assert result.status == 400
    assert uris(reg.contacts(AOR, now=1.0)) == [PHONE]


def test_wildcard_out_of_order_is_refused() -> None:
    reg = Registrar()
    reg.register(AOR, [entry()], call_id="c", cseq=5, now=0.0)
    [wildcard] = parse_contact_values(" * ")
    result = reg.register(AOR, [wildcard], call_id="c", cseq=4, now=1.0, expires=0)
    assert result.status == 500
    assert uris(reg.contacts(AOR, now=1.0)) == [PHONE]


# --------------------------------------------------------------------------- ordering


def test_older_cseq_with_same_call_id_is_refused_atomically() -> None:
    reg = Registrar()
    reg.register(AOR, [entry(expires=300)], call_id="c", cseq=7, now=0.0)
    for stale_cseq in (7, 3):
        result = reg.register(
            AOR, [entry(SOFTPHONE), entry(expires=0)], call_id="c", cseq=stale_cseq, now=1.0
        )
        assert result.status == 500
    # nothing of the refused requests was applied, not even the new SOFTPHONE contact
    [binding] = reg.contacts(AOR, now=1.0)
    assert binding.uri == PHONE and binding.cseq == 7 and binding.expires_at == 300.0


def test_other_call_id_may_update_whatever_its_cseq() -> None:
    reg = Registrar()
    reg.register(AOR, [entry()], call_id="c", cseq=100, now=0.0)
    result = reg.register(AOR, [entry(expires=0)], call_id="rebooted", cseq=1, now=1.0)
    assert result.ok
    assert reg.contacts(AOR, now=1.0) == []


def test_same_contact_twice_in_one_request_last_wins() -> None:
    reg = Registrar()
    result = reg.register(
        AOR, [entry(expires=600), entry(expires=120)], call_id="c", cseq=1, now=0.0
    )
    assert result.ok
    [binding] = reg.contacts(AOR, now=0.0)
    assert binding.expires_at == 120.0


# --------------------------------------------------------------------------- limits


def test_interval_too_brief_is_423_with_min_expires() -> None:
    reg = Registrar(min_expires=60)
    result = reg.register(AOR, [entry(expires=30)], call_id="c", cseq=1, now=0.0)
    assert result.status == 423 and result.min_expires == 60
    assert reg.contacts(AOR, now=0.0) == []
    via_header = reg.register(AOR, [entry()], call_id="c", cseq=2, now=0.0, expires=59)
    assert via_header.status == 423
    assert reg.register(AOR, [entry(expires=60)], call_id="c", cseq=3, now=0.0).ok


def test_negative_expiry_and_bad_q_are_400() -> None:
    reg = Registrar()
    assert reg.register(AOR, [entry()], call_id="c", cseq=1, now=0.0, expires=-1).status == 400
    assert reg.register(AOR, [entry(expires=-5)], call_id="c", cseq=2, now=0.0).status == 400
    assert reg.register(AOR, [entry(q=1.5)], call_id="c", cseq=3, now=0.0).status == 400
    assert reg.binding_count == 0


def test_max_contacts_evicts_least_recently_refreshed() -> None:
    reg = Registrar(max_contacts=2)
    reg.register(AOR, [entry("sip:a@192.0.2.1")], call_id="a", cseq=1, now=0.0)
    reg.register(AOR, [entry("sip:b@192.0.2.2")], call_id="b", cseq=1, now=10.0)
    reg.register(AOR, [entry("sip:a@192.0.2.1")], call_id="a", cseq=2, now=20.0)  # refresh a
    result = reg.register(AOR, [entry("sip:c@192.0.2.3")], call_id="c", cseq=1, now=30.0)
    assert result.ok and result.changed
    assert uris(result.evicted) == ["sip:b@192.0.2.2"]
    assert sorted(uris(reg.contacts(AOR, now=30.0))) == ["sip:a@192.0.2.1", "sip:c@192.0.2.3"]
    assert reg.binding_count == 2


def test_too_many_contacts_in_one_request_is_refused() -> None:
    reg = Registrar(max_contacts=2)
    many = [entry(f"sip:p{i}@192.0.2.{i}") for i in range(3)]
    result = reg.register(AOR, many, call_id="c", cseq=1, now=0.0)
    assert result.status == 403
    assert reg.contacts(AOR, now=0.0) == []


def test_constructor_checks_settings() -> None:
    with pytest.raises(ValueError):
        Registrar(min_expires=0)
    with pytest.raises(ValueError):
        Registrar(min_expires=100, max_expires=50)
    with pytest.raises(ValueError):
        Registrar(default_expires=10, min_expires=60)
    with pytest.raises(ValueError):
        Registrar(max_contacts=0)


# --------------------------------------------------------------------------- expiry


def test_timers_remove_expired_bindings_and_report_empty_lines() -> None:
    reg = Registrar(min_expires=60)
    assert reg.get_timer() is None
    reg.register(
        AOR, [entry(expires=100), entry(SOFTPHONE, expires=200)], call_id="c", cseq=1, now=0.0
    )
    reg.register(
        "0607080910", [entry("sip:x@192.0.2.9", expires=150)], call_id="z", cseq=1, now=0.0
    )
    assert reg.get_timer() == 100.0
    assert reg.handle_timer(now=99.0) == []

    report = reg.handle_timer(now=100.0)
    assert [(r.aor, uris(r.removed), r.remaining) for r in report] == [(AOR, [PHONE], 1)]
    assert reg.get_timer() == 150.0

    report = reg.handle_timer(now=250.0)
    assert [(r.aor, uris(r.removed), r.remaining) for r in report] == [
        (AOR, [SOFTPHONE], 0),
        ("0607080910", ["sip:x@192.0.2.9"], 0),
    ]
    assert all(isinstance(r, BindingsExpired) for r in report)
    assert reg.get_timer() is None
    assert reg.binding_count == 0 and reg.aors() == []


def test_refresh_postpones_the_timer() -> None:
    reg = Registrar()
    reg.register(AOR, [entry(expires=100)], call_id="c", cseq=1, now=0.0)
    reg.register(AOR, [entry(expires=100)], call_id="c", cseq=2, now=90.0)
    assert reg.get_timer() == 190.0
    assert reg.handle_timer(now=100.0) == []
    assert len(reg.contacts(AOR, now=100.0)) == 1


def test_expired_bindings_are_invisible_before_the_timer_runs() -> None:
    reg = Registrar()
    reg.register(AOR, [entry(expires=100)], call_id="c", cseq=1, now=0.0)
    assert reg.contacts(AOR, now=100.0) == []
    # an expired binding does not block a new REGISTER with an old CSeq of the same Call-ID
    assert reg.register(AOR, [entry(expires=100)], call_id="c", cseq=1, now=101.0).ok


def test_register_that_sweeps_a_lapsed_binding_reports_a_change() -> None:
    reg = Registrar()
    reg.register(AOR, [entry(expires=100)], call_id="c", cseq=1, now=0.0)
    result = reg.register(AOR, [entry(SOFTPHONE, expires=0)], call_id="c", cseq=2, now=150.0)
    assert result.ok and result.changed and result.bindings == ()
    assert reg.binding_count == 0 and reg.aors() == []
    assert reg.handle_timer(now=200.0) == []


def test_drop_removes_a_line() -> None:
    reg = Registrar()
    reg.register(AOR, [entry()], call_id="c", cseq=1, now=0.0)
    assert uris(reg.drop(AOR)) == [PHONE]
    assert reg.contacts(AOR, now=0.0) == [] and reg.binding_count == 0
    assert reg.get_timer() is None


def test_timer_heap_stays_bounded_under_frequent_refreshes() -> None:
    reg = Registrar()
    for i in range(1, 2000):
        reg.register(AOR, [entry()], call_id="c", cseq=i, now=float(i))
    assert len(reg._heap) <= 2 * reg.binding_count + 64
    assert reg.get_timer() == 1999.0 + 3600


_Op = tuple[float, str, list[tuple[str, int | None, float]], str, int | None]
_URIS = [f"sip:u{i}@192.0.2.{i}" for i in range(6)]
_OPS = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=400.0),  # time step
        st.sampled_from(["register", "timer", "wildcard", "query"]),
        st.lists(
            st.tuples(
                st.sampled_from(_URIS),
                st.one_of(st.none(), st.integers(min_value=0, max_value=5000)),
                st.sampled_from([0.0, 0.5, 1.0]),
            ),
            max_size=4,
        ),
        st.sampled_from(["c1", "c2"]),
        st.one_of(st.none(), st.integers(min_value=0, max_value=5000)),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(_OPS)
def test_bindings_never_outlive_their_expiry(ops: list[_Op]) -> None:
    reg = Registrar(max_expires=1000, min_expires=30, default_expires=500, max_contacts=4)
    now = 0.0
    cseq = {"c1": 0, "c2": 0}
    for step, kind, raw, call_id, expires in ops:
        now += step
        cseq[call_id] += 1
        if kind == "register":
            contacts = [ContactEntry(uri, exp, q) for uri, exp, q in raw]
            result = reg.register(
                AOR, contacts, call_id=call_id, cseq=cseq[call_id], now=now, expires=expires
            )
            assert result.status in (200, 423)
            if result.ok:
                assert all(b.expires_at > now for b in result.bindings)
        elif kind == "wildcard":
            result = reg.register(
                AOR,
                parse_contact_values("*"),
                call_id=call_id,
                cseq=cseq[call_id],
                now=now,
                expires=0,
            )
            assert result.ok and reg.contacts(AOR, now=now) == []
        elif kind == "timer":
            reg.handle_timer(now=now)
            after = reg.get_timer()
            assert after is None or after > now
        live = reg.contacts(AOR, now=now)
        assert all(b.expires_at > now for b in live)
        assert len(live) <= 4
        for b in live:
            assert 30 - 1e-6 <= b.expires_at - b.registered_at <= 1000 + 1e-6
        timer = reg.get_timer()
        if live:
            assert timer is not None and timer <= min(b.expires_at for b in live)
    # after the last timer, nothing is left that should have gone
    reg.handle_timer(now=now + 1001)
    assert reg.binding_count == 0 and reg.get_timer() is None


# --------------------------------------------------------------------------- Contact values


def test_parse_contact_values_forms() -> None:
    value = (
        '"Alice, desk" <sip:alice@192.0.2.1:5060;transport=tcp>;expires=60;q=0.7;'
        '+sip.instance="<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>";reg-id=1,'
        " sip:bob@192.0.2.2;expires=0 ,Bob Smith <sips:bob@example.com>;Q=1;unknown;x=[2001:db8::1]"
    )
    assert parse_contact_values(value) == [
        ContactEntry(
            "sip:alice@192.0.2.1:5060;transport=tcp",
            expires=60,
            q=0.7,
            instance="urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
        ),
        ContactEntry("sip:bob@192.0.2.2", expires=0),
        ContactEntry("sips:bob@example.com", q=1.0),
    ]
    assert parse_contact_values("*")[0].is_wildcard
    assert parse_contact_values("<tel:+33102030405>") == [ContactEntry("tel:+33102030405")]
    huge = parse_contact_values("<sip:a@b>;expires=99999999999")[0]
    assert huge.expires == 2**32 - 1


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "<sip:a@b",
        "sip:a@b>",
        "<notauri>",
        "<sip:>",
        '"unterminated <sip:a@b>',
        "<sip:a@b>;expires=soon",
        "<sip:a@b>;expires=-1",
        "<sip:a@b>;expires",
        "<sip:a@b>;q=2",
        "<sip:a@b>;q=0.1234",
        "<sip:a@b>;expires=1;expires=2",
        "<sip:a@b>,",
        "<sip:a@b> junk",
        "sip:a@b?subject=x",
        "<sip:a b@c>",
        "<sip:a@b>;+sip.instance",
        '<sip:a@b>;+sip.instance="<>"',
        "Bad\x01Name <sip:a@b>",
        "*, <sip:a@b>",
        "<sip:a@b>;x=[::1",
        "<sip:" + "a" * 9000 + ">",
    ],
)
def test_parse_contact_values_rejects_malformed(value: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_contact_values(value)
    assert info.value.status == 400


_CONTACT_PIECES = st.sampled_from(
    [
        "<",
        ">",
        "sip:",
        "a@b",
        '"',
        "\\",
        ";",
        ",",
        "=",
        "expires",
        "q",
        "0.5",
        "60",
        "*",
        " ",
        "+sip.instance",
        "[",
        "]",
        "tel:1",
        "\t",
        "é",
        "\x00",
        "?",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=120), st.lists(_CONTACT_PIECES, max_size=30).map("".join)))
def test_contact_parser_only_raises_remote_protocol_error(text: str) -> None:
    try:
        entries = parse_contact_values(text)
    except RemoteProtocolError as exc:
        assert exc.status == 400
    else:
        assert entries
        for e in entries:
            assert e.is_wildcard or ":" in e.uri
            assert 0.0 <= e.q <= 1.0
            assert e.expires is None or 0 <= e.expires <= 2**32 - 1


def test_removed_keys_name_what_a_request_removed_and_discard_drops_only_older() -> None:
    reg = Registrar()
    ok = reg.register(AOR, [entry()], call_id="c1", cseq=1, now=0.0)
    assert ok.removed_keys == ()
    (bound,) = ok.bindings
    key = binding_key(bound)
    gone = reg.register(
        AOR, [entry(expires=0), entry("sip:x@192.0.2.9", 0)], call_id="c2", cseq=1, now=5.0
    )
    assert set(gone.removed_keys) == {
        key,
        binding_key(Binding(AOR, "sip:x@192.0.2.9", 0, 1, "", 0, 0)),
    }
    assert reg.register(
        AOR, [ContactEntry("*")], call_id="c2", cseq=2, now=6.0, expires=0
    ).removed_keys == ("*",)
    reg.register(AOR, [entry()], call_id="c3", cseq=1, now=10.0)
    assert reg.discard(AOR, key, older_than=10.0) == ()  # not older: kept
    assert reg.discard(AOR, "*", older_than=10.5)[0].call_id == "c3"
    assert (
        reg.binding_count == 0 and reg.aors() == [] and reg.aors_at(Peer("h", 1), now=11.0) == set()
    )
