"""Digest on a hostile network: grammar, replays across nodes, binding to the Request-URI."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from huntgroup.engine.sip.digest import (
    AuthOutcome,
    DigestAuthenticator,
    MemoryNonceCounts,
    parse_credentials,
    uri_matches,
)
from huntgroup.errors import RemoteProtocolError
from tests.engine.sip.test_digest import (
    KEY,
    REALM,
    URI,
    client_authorization,
    lookup,
    make_auth,
    verify,
)

# --------------------------------------------------------------------------- grammar


@pytest.mark.parametrize("param", ["username", "uri", "cnonce", "nonce", "opaque", "realm"])
@pytest.mark.parametrize("bad", ["\udcff", "\udc80", "é", "\x00", "\x7f", "\x1b", "\u2028"])
def test_a_quoted_value_that_is_not_printable_ascii_is_400(param: str, bad: str) -> None:
    header = client_authorization(make_auth().challenge(now=0.0)[0])
    hostile = header.replace(f'{param}="', f'{param}="{bad}', 1)
    assert hostile != header
    with pytest.raises(RemoteProtocolError) as caught:
        parse_credentials(hostile)
    assert caught.value.status == 400


def test_an_escaped_byte_that_is_not_printable_ascii_is_400() -> None:
    with pytest.raises(RemoteProtocolError):
        parse_credentials(
            'Digest username="a\\\udcff", realm="r", nonce="n", uri="u", response="0"'
        )


def _surrogate_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")  # how the SIP parser decodes a header


@st.composite
def mutated_headers(draw: st.DrawFn) -> str:
    """A valid header with a few bytes (any of 0-255) inserted, as the SIP parser decodes it."""
    auth = make_auth()
    header = client_authorization(auth.challenge(now=0.0)[0]).encode()
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(header)))
        header = header[:pos] + draw(st.binary(min_size=1, max_size=4)) + header[pos:]
    return _surrogate_text(header)


def check_digest_text(text: str) -> None:
    """Parsed or refused with a 400; what parses can be verified without raising."""
    try:
        creds = parse_credentials(text)
    except RemoteProtocolError as exc:
        assert exc.status == 400
        return
    for field in (creds.username, creds.realm, creds.nonce, creds.uri, creds.cnonce or ""):
        field.encode("ascii")  # what the hash step does: never fails on what was accepted
    result = make_auth().verify(creds, method="REGISTER", credentials_lookup=lookup, now=1.0)
    assert isinstance(result.outcome, AuthOutcome)


@settings(max_examples=300, deadline=None)
@given(mutated_headers())
def test_mutated_bytes_parse_or_get_400_and_verify_never_raises(text: str) -> None:
    check_digest_text(text)


# --------------------------------------------------------------------------- legacy answers


def test_rfc2069_answers_are_refused_unless_allowed() -> None:
    strict = DigestAuthenticator(REALM, KEY, 300.0)  # the default
    challenge = next(c for c in strict.challenge(now=0.0) if "MD5" in c)
    legacy = client_authorization(challenge, legacy=True)
    assert verify(strict, legacy, now=1.0).outcome is AuthOutcome.UNSUPPORTED
    lenient = make_auth(allow_legacy=True)
    challenge = next(c for c in lenient.challenge(now=0.0) if "MD5" in c)
    assert verify(lenient, client_authorization(challenge, legacy=True), now=1.0).ok


# --------------------------------------------------------------------------- replays


def test_a_shared_nonce_count_store_refuses_a_replay_on_another_node() -> None:
    shared = MemoryNonceCounts(100, 300.0)
    node_a = DigestAuthenticator(REALM, KEY, 300.0, nonce_counts=shared)
    node_b = DigestAuthenticator(REALM, KEY, 300.0, nonce_counts=shared)
    header = client_authorization(node_a.challenge(now=0.0)[0])
    assert verify(node_a, header, now=1.0).ok
    assert verify(node_b, header, now=2.0).outcome is AuthOutcome.NC_REPLAY
    # without sharing, node B could not know: the store is what carries the guarantee
    alone = DigestAuthenticator(REALM, KEY, 300.0)
    assert verify(alone, header, now=2.0).ok


def test_nonce_count_entries_end_with_their_nonce() -> None:
    auth = make_auth()
    for i in range(5):
        assert verify(auth, client_authorization(auth.challenge(now=float(i))[0]), now=i + 0.5).ok
    assert auth.tracked_nonces == 5
    late = auth.challenge(now=400.0)[0]
    assert verify(auth, client_authorization(late), now=400.5).ok
    assert auth.tracked_nonces == 1, "the nonces past their lifetime were forgotten"


def test_a_forgotten_entry_does_not_let_its_nonce_be_replayed() -> None:
    auth = make_auth()
    header = client_authorization(auth.challenge(now=0.0)[0])
    assert verify(auth, header, now=1.0).ok
    auth.nonce_counts.record("x", 400_000, 1, now=400.0)  # time passes, the entry expires
    assert verify(auth, header, now=400.0).outcome is AuthOutcome.STALE_NONCE


# --------------------------------------------------------------------------- unknown users


def test_an_unknown_user_is_unknown_even_with_an_answer_to_the_decoy() -> None:
    auth = make_auth()
    header = client_authorization(auth.challenge(now=0.0)[0], username="0199999999")
    assert verify(auth, header, now=1.0).outcome is AuthOutcome.UNKNOWN_USER


# --------------------------------------------------------------------------- binding


@pytest.mark.parametrize(
    ("credentials", "request_uri", "matches"),
    [
        (URI, URI, True),
        ("sip:0611223344@voip.example.net", "sip:0611223344@VOIP.example.net", True),
        ("sip:0611223344@voip.example.net;user=phone", "sip:0611223344@voip.example.net", True),
        ("sip:%30611223344@voip.example.net", "sip:0611223344@voip.example.net", True),
        ("sip:0611223344@voip.example.net", "sip:0699999999@voip.example.net", False),
        ("sip:0611223344@voip.example.net", "sip:0611223344@other.example.net", False),
        ("sip:0611223344@voip.example.net:5060", "sip:0611223344@voip.example.net", False),
        ("sips:0611223344@voip.example.net", "sip:0611223344@voip.example.net", False),
        ("tel:+33611223344", "tel:+33611223344", True),
        ("tel:+33611223344", "sip:+33611223344@voip.example.net", False),
        ("not a uri", "sip:0611223344@voip.example.net", False),
        ("", "sip:voip.example.net", False),
    ],
)
def test_uri_matches_the_request_target(credentials: str, request_uri: str, matches: bool) -> None:
    assert uri_matches(credentials, request_uri) is matches


OURS = frozenset({"voip.example.net", "192.0.2.5", "2001:db8::5"})


@pytest.mark.parametrize(
    ("credentials", "request_uri", "matches"),
    [
        # an SBC put our address where the phone wrote our domain: still us, same number
        ("sip:0611223344@voip.example.net", "sip:0611223344@192.0.2.5:5060", True),
        ("sip:0611223344@voip.example.net", "sip:0611223344@[2001:db8::5]", True),
        ("sip:voip.example.net", "sip:192.0.2.5", True),
        # never another number, nor a host that is not ours
        ("sip:0699999999@voip.example.net", "sip:0611223344@192.0.2.5:5060", False),
        ("sip:0611223344@evil.example.com", "sip:0611223344@192.0.2.5", False),
        ("sip:0611223344@voip.example.net", "sip:0611223344@198.51.100.1", False),
    ],
)
def test_uri_matches_a_request_uri_rewritten_to_another_of_our_names(
    credentials: str, request_uri: str, matches: bool
) -> None:
    assert uri_matches(credentials, request_uri, our_hosts=OURS) is matches


def test_the_right_answer_for_another_uri_is_a_wrong_answer_if_not_caught_before() -> None:
    """verify() checks the hash over the credentials' own uri: the binding is the
    engine's job (uri_matches), which is why the B2BUA answers 400 before verifying."""
    auth = make_auth()
    header = client_authorization(auth.challenge(now=0.0)[0], uri="sip:elsewhere@x")
    assert verify(auth, header, now=1.0).ok
    assert not uri_matches(parse_credentials(header).uri, URI)
