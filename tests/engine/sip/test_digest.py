"""Digest authentication: RFC 7616 vectors, round trips, outcomes, parser robustness."""

from __future__ import annotations

import base64
import hashlib
import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from huntgroup.engine.sip.digest import (
    AuthOutcome,
    AuthResult,
    DigestAuthenticator,
    DigestCredentials,
    DigestSecret,
    compute_ha1,
    compute_response,
    parse_credentials,
    usable_algorithms,
)
from huntgroup.errors import RemoteProtocolError

REALM = "voip.example.net"
KEY = b"0123456789abcdef0123456789abcdef"
USER = "0102030405"
PASSWORD = "s3cret"
URI = "sip:voip.example.net"


# --------------------------------------------------------------------------- an independent client


def _h(algorithm: str, text: str) -> str:
    name = "sha256" if algorithm.upper().startswith("SHA-256") else "md5"
    return hashlib.new(name, text.encode()).hexdigest()


def _challenge_params(value: str) -> dict[str, str]:
    assert value.startswith("Digest ")
    pairs = re.findall(r'([a-z]+)=(?:"([^"]*)"|([^,\s]+))', value[len("Digest ") :])
    return {name: quoted or bare for name, quoted, bare in pairs}


def client_authorization(
    challenge: str,
    *,
    username: str = USER,
    password: str = PASSWORD,
    method: str = "REGISTER",
    uri: str = URI,
    nc: int = 1,
    cnonce: str = "0a4f113b",
    sess: bool = False,
    legacy: bool = False,
) -> str:
    """What a phone would send, computed here from scratch (not with the module)."""
    params = _challenge_params(challenge)
    algorithm = params["algorithm"] + ("-sess" if sess else "")
    ha1 = _h(algorithm, f"{username}:{params['realm']}:{password}")
    if sess:
        ha1 = _h(algorithm, f"{ha1}:{params['nonce']}:{cnonce}")
    ha2 = _h(algorithm, f"{method}:{uri}")
    if legacy:
        response = _h(algorithm, f"{ha1}:{params['nonce']}:{ha2}")
        return (
            f'Digest username="{username}", realm="{params["realm"]}", '
            f'nonce="{params["nonce"]}", uri="{uri}", response="{response}"'
        )
    ncv = f"{nc:08x}"
    response = _h(algorithm, f"{ha1}:{params['nonce']}:{ncv}:{cnonce}:auth:{ha2}")
    return (
        f'Digest username="{username}", realm="{params["realm"]}", nonce="{params["nonce"]}", '
        f'uri="{uri}", response="{response}", algorithm={algorithm}, cnonce="{cnonce}", '
        f'nc={ncv}, qop=auth, opaque="{params["opaque"]}"'
    )


def make_auth(
    *,
    algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
    max_tracked_nonces: int = 10_000,
    allow_legacy: bool = True,
) -> DigestAuthenticator:
    """An authenticator whose nonce salts are a counter (deterministic tests)."""
    counter = itertools.count()

    def entropy(n: int) -> bytes:
        return next(counter).to_bytes(n, "big")

    return DigestAuthenticator(
        REALM,
        KEY,
        300.0,
        algorithms,
        max_tracked_nonces=max_tracked_nonces,
        allow_legacy=allow_legacy,
        entropy=entropy,
    )


ACCOUNTS = {USER: DigestSecret(password=PASSWORD)}


def lookup(username: str) -> DigestSecret | None:
    return ACCOUNTS.get(username)


def verify(
    auth: DigestAuthenticator, header: str, *, now: float, method: str = "REGISTER"
) -> AuthResult:
    return auth.verify(parse_credentials(header), method=method, credentials_lookup=lookup, now=now)


# --------------------------------------------------------------------------- RFC 7616 §3.9.1

RFC_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_example_responses(algorithm: str, expected: str) -> None:
    ha1 = compute_ha1(algorithm, "Mufasa", "http-auth@example.org", "Circle of Life")
    response = compute_response(
        algorithm=algorithm,
        ha1=ha1,
        nonce=RFC_NONCE,
        method="GET",
        uri="/dir/index.html",
        qop="auth",
        nc="00000001",
        cnonce=RFC_CNONCE,
    )
    assert response == expected


def test_rfc7616_example_authorization_parses() -> None:
    header = (
        'Digest username="Mufasa",\r\n realm="http-auth@example.org", uri="/dir/index.html", '
        f'algorithm=SHA-256, nonce="{RFC_NONCE}", nc=00000001, cnonce="{RFC_CNONCE}", '
        "qop=auth, response="
        '"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    ).replace("\r\n", "")
    creds = parse_credentials(header)
    assert creds == DigestCredentials(
        username="Mufasa",
        realm="http-auth@example.org",
        nonce=RFC_NONCE,
        uri="/dir/index.html",
        response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        algorithm="SHA-256",
        cnonce=RFC_CNONCE,
        nc="00000001",
        qop="auth",
        opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS",
    )
    assert creds.nonce_count == 1


def test_rfc3261_md5_example() -> None:
    """The RFC 2069 form (no qop): response = H(HA1:nonce:HA2)."""
    ha1 = compute_ha1("MD5", "bob", "biloxi.com", "zanzibar")
    expected = _h(
        "MD5", f"{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:{_h('MD5', 'INVITE:sip:bob@biloxi.com')}"
    )
    got = compute_response(
        algorithm="MD5",
        ha1=ha1,
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        method="INVITE",
        uri="sip:bob@biloxi.com",
        qop=None,
        nc=None,
        cnonce=None,
    )
    assert got == expected


# --------------------------------------------------------------------------- challenges


def test_challenge_offers_sha256_first_with_qop_and_opaque() -> None:
    auth = make_auth()
    values = auth.challenge(now=1000.0)
    assert len(values) == 2
    first, second = (_challenge_params(v) for v in values)
    assert first["algorithm"] == "SHA-256" and second["algorithm"] == "MD5"
    for params in (first, second):
        assert params["realm"] == REALM
        assert params["qop"] == "auth"
        assert params["opaque"]
        assert "stale" not in params
    assert first["nonce"] == second["nonce"]
    assert auth.challenge(now=1000.0)[0] != values[0]  # a new nonce each time


def test_stale_challenge_says_so() -> None:
    values = make_auth().challenge(now=5.0, stale=True)
    assert all(_challenge_params(v)["stale"] == "true" for v in values)


def test_challenge_narrowed_to_account_algorithms() -> None:
    auth = make_auth()
    md5_only = DigestSecret(ha1_md5=compute_ha1("MD5", USER, REALM, PASSWORD))
    offer = usable_algorithms(md5_only, auth.algorithms)
    assert offer == ("MD5",)
    values = auth.challenge(now=0.0, algorithms=offer)
    assert [_challenge_params(v)["algorithm"] for v in values] == ["MD5"]


def test_constructor_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        DigestAuthenticator(REALM, b"short", 300.0)
    with pytest.raises(ValueError):
        DigestAuthenticator(REALM, KEY, 0.0)
    with pytest.raises(ValueError):
        DigestAuthenticator(REALM, KEY, 300.0, algorithms=("SHA-1",))
    with pytest.raises(ValueError):
        DigestAuthenticator("", KEY, 300.0)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("index", [0, 1])
def test_round_trip_ok(index: int) -> None:
    auth = make_auth()
    challenge = auth.challenge(now=100.0)[index]
    result = verify(auth, client_authorization(challenge), now=110.0)
    assert result.ok, result
    assert result.username == USER
    assert result.algorithm == ("SHA-256", "MD5")[index]


@pytest.mark.parametrize("index", [0, 1])
def test_round_trip_sess_variants(index: int) -> None:
    auth = make_auth(algorithms=("SHA-256-sess", "MD5-sess"))
    challenge = auth.challenge(now=0.0)[index]
    params = _challenge_params(challenge)
    assert params["algorithm"].endswith("-sess")
    # the client derives the -sess algorithm name from the challenge itself
    header = client_authorization(challenge.replace("-sess", ""), sess=True)
    assert verify(auth, header, now=1.0).ok


def test_legacy_rfc2069_md5_accepted_and_sha256_refused() -> None:
    auth = make_auth()
    sha, md5 = auth.challenge(now=0.0)
    assert verify(auth, client_authorization(md5, legacy=True), now=1.0).ok
    legacy_sha = client_authorization(sha, legacy=True) + ", algorithm=SHA-256"
    assert verify(auth, legacy_sha, now=1.0).outcome is AuthOutcome.UNSUPPORTED
    strict = make_auth(allow_legacy=False)
    md5_strict = strict.challenge(now=0.0)[1]
    assert (
        verify(strict, client_authorization(md5_strict, legacy=True), now=1.0).outcome
        is AuthOutcome.UNSUPPORTED
    )


def test_wrong_password() -> None:
    auth = make_auth()
    header = client_authorization(auth.challenge(now=0.0)[0], password="guess")
    result = verify(auth, header, now=1.0)
    assert result.outcome is AuthOutcome.WRONG_PASSWORD
    assert not result.ok


def test_wrong_method_or_uri_fails() -> None:
    auth = make_auth()
    challenge = auth.challenge(now=0.0)[0]
    header = client_authorization(challenge, method="INVITE")
    assert verify(auth, header, now=1.0, method="REGISTER").outcome is AuthOutcome.WRONG_PASSWORD


def test_unknown_user() -> None:
    auth = make_auth()
    header = client_authorization(auth.challenge(now=0.0)[0], username="0999999999")
    assert verify(auth, header, now=1.0).outcome is AuthOutcome.UNKNOWN_USER


def test_realm_mismatch() -> None:
    auth = make_auth()
    challenge = auth.challenge(now=0.0)[0].replace(REALM, "other.example.org")
    assert verify(auth, client_authorization(challenge), now=1.0).outcome is (
        AuthOutcome.REALM_MISMATCH
    )


def test_stale_after_lifetime_with_scripted_time() -> None:
    auth = make_auth()
    challenge = auth.challenge(now=1000.0)[0]
    header = client_authorization(challenge)
    assert verify(auth, header, now=1300.0).ok  # exactly at the lifetime: still fresh
    late = client_authorization(challenge, nc=2)
    result = verify(auth, late, now=1300.5)
    assert result.outcome is AuthOutcome.STALE_NONCE
    assert result.stale
    # a stale nonce with a wrong password is a wrong password, not "stale"
    wrong = client_authorization(challenge, nc=3, password="nope")
    assert verify(auth, wrong, now=1400.0).outcome is AuthOutcome.WRONG_PASSWORD
    # the client retries with the new nonce of a stale=true challenge
    retry = auth.challenge(now=1300.5, stale=True)[0]
    assert verify(auth, client_authorization(retry), now=1301.0).ok


def test_nonce_from_the_future_is_invalid() -> None:
    auth = make_auth()
    header = client_authorization(auth.challenge(now=1000.0)[0])
    assert verify(auth, header, now=900.0).outcome is AuthOutcome.INVALID_NONCE


def _flip(text: str, index: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    replacement = alphabet[(alphabet.index(text[index]) + 1) % len(alphabet)]
    return text[:index] + replacement + text[index + 1 :]


@pytest.mark.parametrize("position", [0, 7, 12, 20, 30, 42])
def test_tampered_nonce_is_invalid(position: int) -> None:
    """Position 42 holds padding bits: a re-spelling of the same bytes must fail too."""
    auth = make_auth()
    challenge = auth.challenge(now=0.0)[0]
    nonce = _challenge_params(challenge)["nonce"]
    tampered = challenge.replace(nonce, _flip(nonce, position))
    # the client answers correctly for the tampered nonce: only the MAC can catch it
    result = verify(auth, client_authorization(tampered), now=1.0)
    assert result.outcome is AuthOutcome.INVALID_NONCE


def test_respelled_nonce_cannot_replay() -> None:
    """A nonce is 42 bytes, 56 base64 characters without padding: no spare bits, so
    no other spelling decodes to the same bytes, and any respelling is refused."""
    auth = make_auth()
    challenge = auth.challenge(now=0.0)[0]
    nonce = _challenge_params(challenge)["nonce"]
    assert len(nonce) == 56 and not nonce.endswith("=")
    assert verify(auth, client_authorization(challenge), now=1.0).ok
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for position in (0, 42, 55):
        spare = alphabet[alphabet.index(nonce[position]) ^ 1]
        respelled = nonce[:position] + spare + nonce[position + 1 :]
        assert base64.urlsafe_b64decode(respelled) != base64.urlsafe_b64decode(nonce)
        replay = client_authorization(challenge.replace(nonce, respelled))
        assert verify(auth, replay, now=2.0).outcome is AuthOutcome.INVALID_NONCE
    padded = client_authorization(challenge.replace(nonce, nonce[:-4] + nonce[-4:-2] + "=="))
    assert verify(auth, padded, now=2.0).outcome is AuthOutcome.INVALID_NONCE


def test_foreign_and_garbage_nonces_are_invalid() -> None:
    auth = make_auth()
    other = DigestAuthenticator(REALM, b"another key, 32 bytes long......", 300.0)
    foreign = client_authorization(other.challenge(now=0.0)[0])
    assert verify(auth, foreign, now=1.0).outcome is AuthOutcome.INVALID_NONCE
    garbage = client_authorization(
        'Digest realm="voip.example.net", nonce="%%%", opaque="x", algorithm=MD5'
    )
    assert verify(auth, garbage, now=1.0).outcome is AuthOutcome.INVALID_NONCE


def test_changed_opaque_is_invalid() -> None:
    auth = make_auth()
    challenge = auth.challenge(now=0.0)[0]
    opaque = _challenge_params(challenge)["opaque"]
    header = client_authorization(challenge).replace(opaque, "0" * len(opaque))
    assert verify(auth, header, now=1.0).outcome is AuthOutcome.INVALID_NONCE


def test_nodes_sharing_the_key_accept_each_others_nonces() -> None:
    node_a = make_auth()
    node_b = DigestAuthenticator(REALM, KEY, 300.0)
    header = client_authorization(node_a.challenge(now=50.0)[0])
    assert verify(node_b, header, now=60.0).ok


# --------------------------------------------------------------------------- replays


def test_replayed_nc_is_refused_and_higher_nc_accepted() -> None:
    auth = make_auth()
    challenge = auth.challenge(now=0.0)[0]
    first = client_authorization(challenge, nc=1)
    assert verify(auth, first, now=1.0).ok
    assert verify(auth, first, now=2.0).outcome is AuthOutcome.NC_REPLAY
    assert verify(auth, client_authorization(challenge, nc=3), now=3.0).ok
    assert verify(auth, client_authorization(challenge, nc=2), now=4.0).outcome is (
        AuthOutcome.NC_REPLAY
    )
    assert verify(auth, client_authorization(challenge, nc=4), now=5.0).ok


def test_replay_table_is_bounded_and_forgotten_nonces_are_not_trusted() -> None:
    auth = make_auth(max_tracked_nonces=3)
    headers = []
    for i in range(5):
        challenge = auth.challenge(now=float(i))[0]
        header = client_authorization(challenge)
        assert verify(auth, header, now=float(i) + 0.5).ok
        headers.append((challenge, header))
        assert auth.tracked_nonces <= 3
    assert auth.tracked_nonces == 3
    # the first nonces were evicted: replaying them must not succeed
    old_challenge, old_header = headers[0]
    assert verify(auth, old_header, now=10.0).outcome is AuthOutcome.STALE_NONCE
    assert verify(auth, client_authorization(old_challenge, nc=9), now=10.0).outcome is (
        AuthOutcome.STALE_NONCE
    )
    # a nonce issued after the eviction is fine
    fresh = auth.challenge(now=11.0)[0]
    assert verify(auth, client_authorization(fresh), now=11.5).ok


def test_unused_nonce_is_accepted_if_not_evicted_and_in_lifetime() -> None:
    auth = make_auth(max_tracked_nonces=2)
    early = auth.challenge(now=0.0)[0]  # issued, not yet answered
    for i in range(1, 4):
        assert verify(auth, client_authorization(auth.challenge(now=float(i))[0]), now=i).ok
    # 'early' was issued before evicted nonces: refused as stale, safe side
    assert verify(auth, client_authorization(early), now=5.0).outcome is AuthOutcome.STALE_NONCE


# --------------------------------------------------------------------------- HA1-only accounts


HA1_ACCOUNTS = {
    "md5only": DigestSecret(ha1_md5=compute_ha1("MD5", "md5only", REALM, "pw1").upper()),
    "shaonly": DigestSecret(ha1_sha256=compute_ha1("SHA-256", "shaonly", REALM, "pw2")),
    "both": DigestSecret(
        ha1_md5=compute_ha1("MD5", "both", REALM, "pw3"),
        ha1_sha256=compute_ha1("SHA-256", "both", REALM, "pw3"),
    ),
}


@pytest.mark.parametrize(
    ("username", "password", "index", "expected"),
    [
        ("md5only", "pw1", 1, AuthOutcome.OK),
        ("md5only", "pw1", 0, AuthOutcome.NO_SECRET_FOR_ALGORITHM),
        ("shaonly", "pw2", 0, AuthOutcome.OK),
        ("shaonly", "pw2", 1, AuthOutcome.NO_SECRET_FOR_ALGORITHM),
        ("both", "pw3", 0, AuthOutcome.OK),
        ("both", "pw3", 1, AuthOutcome.OK),
        ("both", "bad", 1, AuthOutcome.WRONG_PASSWORD),
        ("both", "bad", 0, AuthOutcome.WRONG_PASSWORD),
    ],
)
def test_ha1_only_accounts(username: str, password: str, index: int, expected: AuthOutcome) -> None:
    """index 0 answers the SHA-256 challenge, 1 the MD5 one."""
    auth = make_auth()
    challenge = auth.challenge(now=0.0)[index]
    header = client_authorization(challenge, username=username, password=password)
    result = auth.verify(
        parse_credentials(header),
        method="REGISTER",
        credentials_lookup=HA1_ACCOUNTS.get,
        now=1.0,
    )
    assert result.outcome is expected


def test_line_config_is_a_usable_secret() -> None:
    from huntgroup.config.models import LineConfig

    line = LineConfig(number=USER, ha1_sha256=compute_ha1("SHA-256", USER, REALM, PASSWORD))
    auth = make_auth()
    assert usable_algorithms(line, auth.algorithms) == ("SHA-256",)
    header = client_authorization(auth.challenge(now=0.0)[0])
    result = auth.verify(
        parse_credentials(header),
        method="REGISTER",
        credentials_lookup={USER: line}.get,
        now=1.0,
    )
    assert result.ok


# --------------------------------------------------------------------------- unsupported


def test_unsupported_qop_algorithm_and_userhash() -> None:
    auth = make_auth()
    challenge = auth.challenge(now=0.0)[0]
    header = client_authorization(challenge)
    assert verify(auth, header.replace("qop=auth", "qop=auth-int"), now=1.0).outcome is (
        AuthOutcome.UNSUPPORTED
    )
    sha1 = header.replace("algorithm=SHA-256", "algorithm=SHA-1")
    assert verify(auth, sha1, now=1.0).outcome is AuthOutcome.UNSUPPORTED
    assert verify(auth, header + ", userhash=true", now=1.0).outcome is AuthOutcome.UNSUPPORTED
    md5_only = make_auth(algorithms=("MD5",))
    assert verify(md5_only, header, now=1.0).outcome is AuthOutcome.UNSUPPORTED


# --------------------------------------------------------------------------- parser


def test_parser_handles_escapes_case_and_spacing() -> None:
    header = (
        'digest  USERNAME = "a\\"b\\\\c" ,realm="r, with comma",nonce=n1,'
        ' uri="sip:x", response="ABCDEF", QOP="auth", nc=0000000A, cnonce="c", Algorithm=md5,'
        " extra=ignored"
    )
    creds = parse_credentials(header)
    assert creds.username == 'a"b\\c'
    assert creds.realm == "r, with comma"
    assert creds.nonce == "n1"
    assert creds.response == "abcdef"
    assert creds.qop == "auth"
    assert creds.nc == "0000000a" and creds.nonce_count == 10
    assert creds.algorithm == "md5"
    assert creds.opaque is None and creds.userhash is False


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Digest",
        "Basic dXNlcjpwYXNz",
        'Digest username="u", realm="r", nonce="n", uri="u"',  # no response
        'Digest username="u", realm="r", nonce="n", uri="u", response="zz"',
        'Digest username="u, realm="r", nonce="n", uri="u", response="00"',  # unterminated
        'Digest username="u" realm="r", nonce="n", uri="u", response="00"',  # missing comma
        'Digest username="u", username="v", realm="r", nonce="n", uri="u", response="00"',
        'Digest username="u", realm="r", nonce="n", uri="u", response="00", qop=auth',
        'Digest username="u", realm="r", nonce="n", uri="u", response="00", nc=00000001',
        'Digest username="u", realm="r", nonce="n", uri="u", response="00", qop=auth, '
        'cnonce="c", nc=1',
        'Digest username="u", realm="r", nonce="n", uri="u", response="00", userhash=maybe',
        'Digest username="a\x01b", realm="r", nonce="n", uri="u", response="00"',
        'Digest username="u", realm="r", nonce="n", uri="u", response="00", =x',
        'Digest username="u", realm="r", nonce="n", uri="u", response="00\\',
        'Digestusername="u", realm="r", nonce="n", uri="u", response="00"',
        "Digest " + "a" * 5000,
    ],
)
def test_parser_rejects_malformed(header: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_credentials(header)
    assert info.value.status == 400


_PIECES = st.sampled_from(
    [
        "Digest ",
        "digest",
        "username",
        "realm",
        "nonce",
        "uri",
        "response",
        "qop",
        "nc",
        "cnonce",
        "algorithm",
        "userhash",
        "=",
        ",",
        " ",
        '"',
        "\\",
        "00000001",
        "auth",
        "MD5",
        "abc",
        "\t",
        "\r\n",
        "é",
        "\x00",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=200), st.lists(_PIECES, max_size=40).map("".join)))
def test_parser_only_raises_remote_protocol_error(text: str) -> None:
    try:
        creds = parse_credentials(text)
    except RemoteProtocolError as exc:
        assert exc.status == 400
    else:
        assert isinstance(creds, DigestCredentials)
        assert creds.username is not None and creds.response


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=120), st.lists(_PIECES, max_size=30).map("".join)))
def test_verify_never_raises_on_parsed_garbage(text: str) -> None:
    header = 'Digest username="u", realm="voip.example.net", uri="sip:x", response="00", ' + (
        "nonce=" + '"' + text.replace("\\", "").replace('"', "") + '"'
    )
    try:
        creds = parse_credentials(header)
    except RemoteProtocolError:
        return
    result = make_auth().verify(creds, method="REGISTER", credentials_lookup=lookup, now=0.0)
    assert result.outcome in (AuthOutcome.INVALID_NONCE, AuthOutcome.WRONG_PASSWORD)


# --------------------------------------------------------------------------- node binding


def test_another_nodes_nonce_is_stale_for_a_right_answer_and_counted_when_wrong() -> None:
    """Review finding 9: a nonce is bound to the node that issued it (its tag is in the
    MAC'd part); another node sharing the key answers a right answer as stale."""
    node_a = DigestAuthenticator(REALM, KEY, 300.0, node_id="node-a")
    node_b = DigestAuthenticator(REALM, KEY, 300.0, node_id="node-b")
    challenge = node_a.challenge(now=0.0)[0]
    right = client_authorization(challenge)
    assert verify(node_a, right, now=1.0).ok
    assert verify(node_b, right, now=1.0).outcome is AuthOutcome.STALE_NONCE
    assert len(node_b.nonce_counts) == 0  # B's table never sees A's nonces
    wrong = client_authorization(challenge, password="guess")
    assert verify(node_b, wrong, now=1.0).outcome is AuthOutcome.WRONG_PASSWORD
    unknown = client_authorization(challenge, username="0199999999")
    assert verify(node_b, unknown, now=1.0).outcome is AuthOutcome.UNKNOWN_USER
    # the tag cannot be swapped: it is under the MAC
    nonce = _challenge_params(challenge)["nonce"]
    raw = bytearray(base64.urlsafe_b64decode(nonce))
    raw[16:26] = base64.urlsafe_b64decode(_challenge_params(node_b.challenge(now=0.0)[0])["nonce"])[
        16:26
    ]
    swapped = base64.urlsafe_b64encode(bytes(raw)).decode()
    forged = client_authorization(challenge.replace(nonce, swapped))
    assert verify(node_b, forged, now=1.0).outcome is AuthOutcome.INVALID_NONCE


def test_decoy_offers_follow_the_lines_profiles_and_are_stable() -> None:
    from huntgroup.engine.sip.digest import DecoyAlgorithms

    auth = DigestAuthenticator(REALM, KEY, 300.0)
    lines = [DigestSecret(password="x")] + [DigestSecret(ha1_md5="0" * 32)] * 3
    decoys = DecoyAlgorithms(auth, lines)
    assert decoys.profiles == ((("MD5",), 3), (("SHA-256", "MD5"), 1))
    offers = [decoys.offer(f"0199{n:06d}") for n in range(2000)]
    assert 0.70 < offers.count(("MD5",)) / len(offers) < 0.80
    assert decoys.offer("0199000007") == offers[7]
    other_key = DigestAuthenticator(REALM, b"another key, 32 bytes long......", 300.0)
    again = DecoyAlgorithms(other_key, lines)
    assert [again.offer(f"0199{n:06d}") for n in range(2000)] != offers  # keyed
    assert DecoyAlgorithms(auth, []).offer("0199") == auth.algorithms
