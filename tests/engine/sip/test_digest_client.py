"""The client side of Digest (engine/sip/digest.py): parse a challenge, answer it.

The answers are checked against the server side and against the independent
client of ``test_digest.py`` (computed from scratch, not with the module).
"""

from __future__ import annotations

import pytest

from huntgroup.engine.sip.digest import (
    AuthOutcome,
    DigestChallenge,
    authorization,
    compute_ha1,
    parse_challenge,
    parse_credentials,
)
from huntgroup.errors import RemoteProtocolError
from tests.engine.sip.test_digest import (
    PASSWORD,
    REALM,
    URI,
    USER,
    client_authorization,
    lookup,
    make_auth,
)


def test_parse_challenge_reads_our_servers_challenges() -> None:
    sha, md5 = make_auth().challenge(now=0.0, stale=True)
    parsed = parse_challenge(sha)
    assert (parsed.realm, parsed.algorithm, parsed.qop, parsed.stale) == (
        REALM,
        "SHA-256",
        ("auth",),
        True,
    )
    assert parsed.opaque and parsed.nonce
    assert parse_challenge(md5).algorithm == "MD5"
    legacy = parse_challenge('Digest realm="r", nonce="n"')
    assert legacy == DigestChallenge(realm="r", nonce="n")
    assert parse_challenge('digest realm="a\\"b", nonce=n, qop="auth-int, auth"').qop == (
        "auth-int",
        "auth",
    )


@pytest.mark.parametrize(
    "value",
    [
        'Basic realm="r"',
        'Digest nonce="n"',
        'Digest realm="r"',
        'Digest realm="r", nonce="unterminated',
        'Digest realm="r", realm="s", nonce="n"',
        'Digest realm="r\x01", nonce="n"',
        "Digest",
    ],
)
def test_parse_challenge_refuses_malformed(value: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_challenge(value)
    assert info.value.status == 400


@pytest.mark.parametrize("index", [0, 1])
def test_answer_matches_the_independent_client_and_passes(index: int) -> None:
    auth = make_auth()
    challenge = auth.challenge(now=0.0)[index]
    value = authorization(
        parse_challenge(challenge),
        username=USER,
        password=PASSWORD,
        method="REGISTER",
        uri=URI,
        cnonce="0a4f113b",
        nc=7,
    )
    ours = parse_credentials(value)
    theirs = parse_credentials(client_authorization(challenge, cnonce="0a4f113b", nc=7))
    assert ours == theirs
    result = auth.verify(ours, method="REGISTER", credentials_lookup=lookup, now=1.0)
    assert result.outcome is AuthOutcome.OK


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5", "SHA-256-sess", "MD5-sess"])
def test_answer_with_a_stored_ha1(algorithm: str) -> None:
    auth = make_auth(algorithms=(algorithm,))
    [challenge] = auth.challenge(now=0.0)
    ha1 = compute_ha1(algorithm, USER, REALM, PASSWORD)
    value = authorization(
        parse_challenge(challenge),
        username=USER,
        ha1=ha1,
        method="INVITE",
        uri=URI,
        cnonce="c",
    )
    credentials = parse_credentials(value)
    assert credentials.algorithm == algorithm and credentials.nc == "00000001"
    assert auth.verify(credentials, method="INVITE", credentials_lookup=lookup, now=1.0).ok
    assert not auth.verify(credentials, method="BYE", credentials_lookup=lookup, now=1.0).ok


def test_a_challenge_without_qop_gets_an_rfc2069_answer() -> None:
    auth = make_auth()
    md5 = parse_challenge(auth.challenge(now=0.0)[1])
    legacy = DigestChallenge(realm=md5.realm, nonce=md5.nonce, opaque=md5.opaque)
    value = authorization(
        legacy, username=USER, password=PASSWORD, method="REGISTER", uri=URI, cnonce="unused"
    )
    credentials = parse_credentials(value)
    assert (credentials.qop, credentials.nc, credentials.cnonce) == (None, None, None)
    assert auth.verify(credentials, method="REGISTER", credentials_lookup=lookup, now=1.0).ok


def test_values_are_quoted_and_secrets_required() -> None:
    challenge = DigestChallenge(realm='a "quoted" realm', nonce="n", qop=("auth",))
    value = authorization(
        challenge, username='we\\ird"', password="p", method="REGISTER", uri=URI, cnonce="c"
    )
    credentials = parse_credentials(value)
    assert (credentials.username, credentials.realm) == ('we\\ird"', 'a "quoted" realm')
    with pytest.raises(ValueError):
        authorization(challenge, username="u", method="REGISTER", uri=URI, cnonce="c")
    with pytest.raises(ValueError):
        authorization(
            DigestChallenge(realm="r", nonce="n", algorithm="AKAv1-MD5"),
            username="u",
            password="p",
            method="REGISTER",
            uri=URI,
            cnonce="c",
        )
