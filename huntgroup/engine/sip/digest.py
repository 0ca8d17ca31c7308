"""Digest access authentication (RFC 3261 §22, RFC 7616, RFC 8760): the
registrar's server side, and the client side a user agent answers with.

Theory of operation
-------------------
This module is sans-I/O: it reads no clock, opens no socket and holds no
message objects. It works on header *values* (the text after
``Authorization:``) and returns values to put in ``WWW-Authenticate``.

1. **Challenge.** :meth:`DigestAuthenticator.challenge` mints one nonce and
   returns one ``WWW-Authenticate`` value per algorithm, most preferred first
   (SHA-256 before MD5, as RFC 8760 §2.4 asks), each with ``qop="auth"`` and
   the same ``opaque``. ``stale=true`` tells the client that its last answer
   was right but its nonce had expired, so it can retry without asking the
   user again.
2. **Parse.** :func:`parse_credentials` turns an ``Authorization`` or
   ``Proxy-Authorization`` value into :class:`DigestCredentials`. Anything
   that does not follow the grammar raises
   :class:`~huntgroup.errors.RemoteProtocolError` (status 400) and nothing
   else.
3. **Verify.** :meth:`DigestAuthenticator.verify` checks the credentials and
   returns an :class:`AuthResult`: every failure is an *outcome*, never an
   exception, so the engine decides between 401 (re-challenge) and 403.
4. **Answer** (client side). :func:`parse_challenge` reads a
   ``WWW-Authenticate`` / ``Proxy-Authenticate`` value and
   :func:`authorization` computes the value a user agent sends back, from a
   password or a stored HA1 (the live simulator's phones and the tests' peers).

Nonces are stateless and self-validating::

    nonce = base64url( issued_ms (8 bytes, signed) || salt (8 bytes) || node (10 bytes)
                       || mac (16 bytes) )
    node  = HMAC-SHA256(secret_key, "huntgroup-node" || node_id)[:10]
    mac   = HMAC-SHA256(secret_key, "huntgroup-nonce" || realm || issued_ms || salt || node)[:16]

A nonce is checked with the key alone, and is bound to the node that issued
it (``node_id``; the tag is keyed, so it does not reveal the node's name).
Several nodes share ``secret_key``; a node that receives a correctly signed
nonce issued by another node treats it like an expired one: a right answer
gets ``stale=true`` with a fresh nonce of its own, and the phone
re-authenticates without a prompt. So each node's replay table only ever
sees its own nonces, and an answer accepted by one node can never be
replayed on another. A nonce older than ``nonce_lifetime`` but correctly
signed is *stale* as well; a nonce with a bad MAC, from another realm, or
from the future (beyond ``clock_skew``) is *invalid*. The ``now`` given to a
node sharing its key with others must be wall-clock time (``time.time()``),
so that their timestamps agree.

Replay protection: for ``qop=auth`` the client counts its uses of a nonce in
``nc``. The authenticator asks a :class:`NonceCounts` store to record each
accepted (nonce, nc): the store refuses a count that is not above the
highest one already accepted for that nonce. The store is an interface (a
store shared by nodes with the same ``node_id`` would plug in there); the
default, :class:`MemoryNonceCounts`, is per node: a FIFO table of at most
``max_tracked_nonces`` entries, each dropped once its nonce is past its
lifetime (it could only be answered as stale by then). When an entry is
evicted *early* (the table is full), the issue time of its nonce raises a
watermark; a nonce that is not in the table and was issued at or before the
watermark is answered as stale (the client re-authenticates with a fresh
nonce) instead of being trusted again.

Invariants:

- memory is bounded: the replay table never holds more than
  ``max_tracked_nonces`` entries;
- a given (nonce, nc) pair is accepted at most once by one authenticator;
- secrets and responses are compared with :func:`hmac.compare_digest`;
- a nonce is accepted only if it carries our MAC and is at most
  ``nonce_lifetime`` seconds old.

Algorithms: ``MD5``, ``MD5-sess``, ``SHA-256``, ``SHA-256-sess``. The legacy
RFC 2069 answer (no ``qop``, no ``cnonce``/``nc``) is accepted for plain
``MD5`` only, when ``allow_legacy`` is set (off by default); it cannot be
protected against replay within the nonce lifetime.

Grammar: every quoted value must be printable US-ASCII (RFC 7616 §4: a
username outside ASCII travels as ``username*`` or ``userhash``, which are not
supported); any other byte (a control character, 0x80-0xFF, an undecodable
byte kept as a surrogate) is a 400, so nothing past the parser can fail on
encoding. An account whose secret is only
``ha1_md5`` can only answer an MD5 challenge (see :func:`usable_algorithms`
to challenge such a user with MD5 only); :class:`DecoyAlgorithms` gives an
unknown username a challenge drawn from the same profiles, so that the
narrowed offer does not tell a line from a number that is none.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
from collections import Counter, OrderedDict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from huntgroup.engine.sip.grammar import (
    WSP,
    is_token,
    quote,
    scan_quoted,
    scan_token,
    skip_ws,
    unquote,
)
from huntgroup.engine.sip.uri import SipUri, TelUri, parse_uri, unescape
from huntgroup.errors import RemoteProtocolError

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "AuthOutcome",
    "AuthResult",
    "CredentialsLookup",
    "DecoyAlgorithms",
    "DigestAuthenticator",
    "DigestChallenge",
    "DigestCredentials",
    "DigestSecret",
    "MemoryNonceCounts",
    "NonceCounts",
    "UserSecret",
    "authorization",
    "compute_ha1",
    "compute_response",
    "parse_auth_params",
    "parse_challenge",
    "parse_credentials",
    "stored_ha1",
    "uri_matches",
    "usable_algorithms",
]

#: Algorithm names (as written on the wire, compared case-insensitively) -> hashlib name.
_HASHES: dict[str, str] = {
    "MD5": "md5",
    "MD5-SESS": "md5",
    "SHA-256": "sha256",
    "SHA-256-SESS": "sha256",
}
SUPPORTED_ALGORITHMS: tuple[str, ...] = ("SHA-256", "SHA-256-sess", "MD5", "MD5-sess")
_CANONICAL: dict[str, str] = {name.upper(): name for name in SUPPORTED_ALGORITHMS}

MAX_HEADER_LENGTH = 4096
_NONCE_TAG = b"huntgroup-nonce"
_OPAQUE_TAG = b"huntgroup-opaque"
_NODE_TAG = b"huntgroup-node"
_DECOY_TAG = b"huntgroup-decoy-algorithms"
_NODE_LENGTH = 10
_NONCE_RAW_LENGTH = 8 + 8 + _NODE_LENGTH + 16  # 42 bytes: 56 base64 characters, no padding


# --------------------------------------------------------------------------- secrets


class UserSecret(Protocol):
    """What the authenticator needs to know about an account.

    A configured line (``LineConfig``) fits this protocol as it is: it has a
    cleartext ``password`` or stored ``ha1_md5`` / ``ha1_sha256`` (hex of
    H(username:realm:password) with the server's realm).
    """

    @property
    def password(self) -> str | None: ...

    @property
    def ha1_md5(self) -> str | None: ...

    @property
    def ha1_sha256(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class DigestSecret:
    """A concrete :class:`UserSecret`: a password, or stored HA1 values."""

    password: str | None = None
    ha1_md5: str | None = None
    ha1_sha256: str | None = None


CredentialsLookup = Callable[[str], UserSecret | None]
"""Gives the secret of a username, or None when there is no such account."""


def _canonical_algorithm(name: str) -> str | None:
    return _CANONICAL.get(name.upper())


def _hash_hex(algorithm: str, data: str) -> str:
    return hashlib.new(_HASHES[algorithm.upper()], data.encode("utf-8")).hexdigest()


def compute_ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """H(username:realm:password) in lower-case hex (the value stored as ha1_*)."""
    return _hash_hex(algorithm, f"{username}:{realm}:{password}")


def stored_ha1(secret: UserSecret, algorithm: str, username: str, realm: str) -> str | None:
    """The (non -sess) HA1 of the account for ``algorithm``, or None when unknown."""
    if secret.password is not None:
        return compute_ha1(algorithm, username, realm, secret.password)
    stored = secret.ha1_sha256 if algorithm.upper().startswith("SHA-256") else secret.ha1_md5
    return stored.lower() if stored is not None else None


def usable_algorithms(secret: UserSecret, offered: Sequence[str]) -> tuple[str, ...]:
    """The algorithms of ``offered`` that this account can answer, in order."""
    usable: list[str] = []
    for name in offered:
        canonical = _canonical_algorithm(name)
        if canonical is None:
            continue
        if secret.password is not None:
            usable.append(canonical)
        elif canonical.upper().startswith("SHA-256"):
            if secret.ha1_sha256 is not None:
                usable.append(canonical)
        elif secret.ha1_md5 is not None:
            usable.append(canonical)
    return tuple(usable)


def compute_response(
    *,
    algorithm: str,
    ha1: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None,
    nc: str | None,
    cnonce: str | None,
) -> str:
    """The request-digest of RFC 7616 §3.4.1 (``qop=auth``) or RFC 2069 (no qop).

    ``ha1`` is H(username:realm:password) in hex; for a ``-sess`` algorithm it
    is turned into H(ha1:nonce:cnonce) here.
    """
    if algorithm.upper().endswith("-SESS"):
        ha1 = _hash_hex(algorithm, f"{ha1}:{nonce}:{cnonce or ''}")
    ha2 = _hash_hex(algorithm, f"{method}:{uri}")
    if qop is None:
        return _hash_hex(algorithm, f"{ha1}:{nonce}:{ha2}")
    return _hash_hex(algorithm, f"{ha1}:{nonce}:{nc or ''}:{cnonce or ''}:{qop}:{ha2}")


# --------------------------------------------------------------------------- parsing

_HEX = frozenset("0123456789abcdefABCDEF")


def _printable(text: str) -> bool:
    """Printable US-ASCII and tabs only (what a quoted Digest value may hold)."""
    return all(" " <= char <= "~" or char == "\t" for char in text)


def _fail(what: str, message: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"malformed Digest {what}: {message}", status=400)


def parse_auth_params(value: str, *, what: str) -> tuple[str, dict[str, str]]:
    """``(scheme, parameters)`` of a ``challenge`` or ``credentials`` value
    (RFC 3261 §25.1, RFC 7616 §3): ``scheme 1*WSP name=value *(, name=value)``.

    Names are lower-cased, values unquoted. A value is a token or a quoted
    string (RFC 3261 rules) holding printable US-ASCII only (RFC 7616 §4);
    empty list elements are tolerated, a parameter given twice is not. Every
    failure is a 400 naming ``what`` ("credentials", "challenge").
    """
    text = value
    n = len(text)
    pos = skip_ws(text, 0)
    end = scan_token(text, pos)
    if end == pos:
        raise _fail(what, f"expected a token at offset {pos}")
    scheme, pos = text[pos:end], end
    if pos >= n or text[pos] not in WSP:
        raise _fail(what, f"expected parameters after {scheme!r}")
    params: dict[str, str] = {}
    while True:
        pos = skip_ws(text, pos)
        if pos >= n:
            break
        if text[pos] == ",":  # tolerate empty list elements
            pos += 1
            continue
        end = scan_token(text, pos)
        if end == pos:
            raise _fail(what, f"expected a token at offset {pos}")
        name, pos = text[pos:end].lower(), skip_ws(text, end)
        if pos >= n or text[pos] != "=":
            raise _fail(what, f"expected '=' after {name!r}")
        pos = skip_ws(text, pos + 1)
        if pos < n and text[pos] == '"':
            try:
                end = scan_quoted(text, pos)
            except RemoteProtocolError as err:
                raise _fail(what, str(err)) from None
            item = unquote(text[pos:end])
            if not _printable(item):
                raise _fail(what, "a quoted string holds a byte that is not printable ASCII")
        else:
            end = scan_token(text, pos)
            if end == pos:
                raise _fail(what, f"expected a token at offset {pos}")
            item = text[pos:end]
        if name in params:
            raise _fail(what, f"duplicate parameter {name!r}")
        params[name] = item
        pos = skip_ws(text, end)
        if pos >= n:
            break
        if text[pos] != ",":
            raise _fail(what, f"expected ',' at offset {pos}")
        pos += 1
    return scheme, params


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """The parameters of a Digest ``Authorization`` value, unquoted."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    cnonce: str | None = None
    nc: str | None = None
    qop: str | None = None
    opaque: str | None = None
    userhash: bool = False

    @property
    def nonce_count(self) -> int | None:
        """``nc`` as an integer (it is 8 hex digits on the wire)."""
        return int(self.nc, 16) if self.nc is not None else None


def parse_credentials(value: str) -> DigestCredentials:
    """Parse a Digest ``Authorization`` / ``Proxy-Authorization`` header value.

    Raises :class:`RemoteProtocolError` (400) for anything malformed: another
    scheme, bad quoting, duplicate or missing parameters, a ``qop`` without
    ``cnonce``/``nc``, an ``nc`` that is not 8 hex digits.
    """
    if len(value) > MAX_HEADER_LENGTH:
        raise RemoteProtocolError("Digest credentials too long", status=400)
    scheme, params = parse_auth_params(value, what="credentials")
    if scheme.lower() != "digest":
        raise _fail("credentials", f"unsupported scheme {scheme!r}")

    def required(name: str) -> str:
        if name not in params:
            raise _fail("credentials", f"missing parameter {name!r}")
        return params[name]

    def optional(name: str) -> str | None:
        return params.get(name)

    username = required("username")
    realm = required("realm")
    nonce = required("nonce")
    uri = required("uri")
    response = required("response").lower()
    if not response or not set(response) <= _HEX:
        raise _fail("credentials", "response is not hexadecimal")
    algorithm = optional("algorithm") or "MD5"
    qop = optional("qop")
    cnonce = optional("cnonce")
    nc = optional("nc")
    if qop is not None:
        if cnonce is None or nc is None:
            raise _fail("credentials", "qop given without cnonce and nc")
        if not qop or not is_token(qop):
            raise _fail("credentials", "qop must be a single token")
    elif cnonce is not None or nc is not None:
        raise _fail("credentials", "cnonce/nc given without qop")
    if nc is not None and (len(nc) != 8 or not set(nc) <= _HEX):
        raise _fail("credentials", "nc must be 8 hexadecimal digits")
    userhash_text = optional("userhash")
    if userhash_text is not None and userhash_text.lower() not in ("true", "false"):
        raise _fail("credentials", "userhash must be true or false")
    return DigestCredentials(
        username=username,
        realm=realm,
        nonce=nonce,
        uri=uri,
        response=response,
        algorithm=algorithm,
        cnonce=cnonce,
        nc=nc.lower() if nc is not None else None,
        qop=qop,
        opaque=optional("opaque"),
        userhash=userhash_text is not None and userhash_text.lower() == "true",
    )


# --------------------------------------------------------------------------- client side


@dataclass(frozen=True, slots=True)
class DigestChallenge:
    """One Digest ``WWW-Authenticate`` / ``Proxy-Authenticate`` challenge, unquoted."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()  # the qop options offered (empty: an RFC 2069 challenge)
    opaque: str | None = None
    stale: bool = False


def parse_challenge(value: str) -> DigestChallenge:
    """Parse a Digest challenge; another scheme or a malformed one is a 400."""
    scheme, params = parse_auth_params(value, what="challenge")
    if scheme.lower() != "digest":
        raise _fail("challenge", f"unsupported scheme {scheme!r}")
    if "realm" not in params or "nonce" not in params:
        raise _fail("challenge", "realm and nonce are required")
    return DigestChallenge(
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=params.get("algorithm", "MD5"),
        qop=tuple(q.strip() for q in params.get("qop", "").split(",") if q.strip()),
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
    )


def authorization(
    challenge: DigestChallenge,
    *,
    username: str,
    method: str,
    uri: str,
    cnonce: str,
    nc: int = 1,
    password: str | None = None,
    ha1: str | None = None,
) -> str:
    """The ``Authorization`` / ``Proxy-Authorization`` value answering ``challenge``
    (the client side of RFC 7616 §3.4, and of RFC 2069 when no ``qop=auth`` is offered).

    The secret is the ``password``, or ``ha1`` = H(username:realm:password) for
    the challenge's algorithm. ``cnonce`` and the nonce count ``nc`` are used
    with ``qop=auth`` only.
    """
    algorithm = challenge.algorithm
    if _canonical_algorithm(algorithm) is None:
        raise ValueError(f"unsupported Digest algorithm {algorithm!r}")
    if ha1 is None:
        if password is None:
            raise ValueError("a Digest answer needs a password or an HA1")
        ha1 = compute_ha1(algorithm, username, challenge.realm, password)
    qop = "auth" if "auth" in challenge.qop else None
    count = f"{nc:08x}" if qop else None
    response = compute_response(
        algorithm=algorithm,
        ha1=ha1,
        nonce=challenge.nonce,
        method=method,
        uri=uri,
        qop=qop,
        nc=count,
        cnonce=cnonce if qop else None,
    )
    parts = [
        f"Digest username={quote(username)}",
        f"realm={quote(challenge.realm)}",
        f"nonce={quote(challenge.nonce)}",
        f"uri={quote(uri)}",
        f'response="{response}"',
        f"algorithm={algorithm}",
    ]
    if qop:
        parts += [f"qop={qop}", f"cnonce={quote(cnonce)}", f"nc={count}"]
    if challenge.opaque is not None:
        parts.append(f"opaque={quote(challenge.opaque)}")
    return ", ".join(parts)


# --------------------------------------------------------------------------- verifying


class AuthOutcome(Enum):
    """What came of checking one set of credentials."""

    OK = "ok"
    WRONG_PASSWORD = "wrong password"
    UNKNOWN_USER = "unknown user"
    STALE_NONCE = "stale nonce"  # right answer, expired nonce: re-challenge with stale=true
    INVALID_NONCE = "invalid nonce"  # not ours, tampered, or opaque changed
    REALM_MISMATCH = "realm mismatch"
    NC_REPLAY = "nonce count replayed"
    UNSUPPORTED = "unsupported algorithm, qop or userhash"
    NO_SECRET_FOR_ALGORITHM = "account has no secret for this algorithm"


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The outcome of :meth:`DigestAuthenticator.verify`.

    Suggested answers: OK -> go on; STALE_NONCE -> 401 with
    ``challenge(stale=True)``; WRONG_PASSWORD, UNKNOWN_USER and
    NO_SECRET_FOR_ALGORITHM -> 403 (answer them alike, so as not to reveal
    which accounts exist: an unknown username answering any algorithm is
    UNKNOWN_USER); every other outcome -> 401 with a fresh challenge.
    """

    outcome: AuthOutcome
    username: str
    algorithm: str

    @property
    def ok(self) -> bool:
        return self.outcome is AuthOutcome.OK

    @property
    def stale(self) -> bool:
        return self.outcome is AuthOutcome.STALE_NONCE


@dataclass(frozen=True, slots=True)
class _Nonce:
    issued_ms: int
    ours: bool  # issued by this node (else by another node sharing the key)


class NonceCounts(Protocol):
    """Where the highest accepted ``nc`` of each nonce is kept (see module doc).

    One store serves every path that verifies credentials (REGISTER, and
    INVITE with ``Proxy-Authorization``). Nonces are bound to their node, so a
    node's store only ever sees its own; a store shared by several processes
    would have to make :meth:`record` atomic across them.
    """

    def record(self, nonce: str, issued_ms: int, count: int, *, now: float) -> AuthOutcome:
        """Accept ``count`` for ``nonce`` (OK), or refuse it: NC_REPLAY when it is
        not above the highest count accepted, STALE_NONCE when the store may
        have forgotten that nonce's history."""
        ...

    def __len__(self) -> int: ...


class MemoryNonceCounts:
    """A per-node :class:`NonceCounts`: bounded, and each entry ends with its nonce.

    Entries are kept in first-use order. An entry is dropped once its nonce is
    older than ``lifetime`` (plus ``clock_skew``): such a nonce is answered as
    stale before its count is looked at. When more than ``max_entries`` are
    in use, the oldest is evicted and raises the watermark (module doc).
    """

    def __init__(self, max_entries: int, lifetime: float, clock_skew: float = 30.0) -> None:
        if max_entries < 1:
            raise ValueError("max_tracked_nonces must be at least 1")
        self.max_entries = max_entries
        self.lifetime = lifetime
        self.clock_skew = clock_skew
        self._seen: OrderedDict[str, tuple[int, int]] = OrderedDict()  # nonce -> (nc, issued)
        self._watermark_ms: int | None = None

    def __len__(self) -> int:
        return len(self._seen)

    def expire(self, *, now: float) -> None:
        """Drop the entries of nonces past their lifetime (oldest first used first)."""
        horizon_ms = (now - self.lifetime - self.clock_skew) * 1000
        while self._seen:
            _, (_, issued_ms) = next(iter(self._seen.items()))
            if issued_ms >= horizon_ms:
                break
            self._seen.popitem(last=False)

    def record(self, nonce: str, issued_ms: int, count: int, *, now: float) -> AuthOutcome:
        self.expire(now=now)
        entry = self._seen.get(nonce)
        if entry is None:
            watermark = self._watermark_ms
            if watermark is not None and issued_ms <= watermark:
                # We may have forgotten this nonce's history: make the client start afresh.
                return AuthOutcome.STALE_NONCE
        elif count <= entry[0]:
            return AuthOutcome.NC_REPLAY
        self._seen[nonce] = (count, issued_ms)
        while len(self._seen) > self.max_entries:
            _, (_, evicted_ms) = self._seen.popitem(last=False)
            previous = self._watermark_ms
            if previous is None or evicted_ms > previous:
                self._watermark_ms = evicted_ms
        return AuthOutcome.OK


def uri_matches(credentials_uri: str, request_uri: str, *, our_hosts: Collection[str] = ()) -> bool:
    """Whether the credentials' ``uri`` designates the Request-URI (RFC 7616 §3.4.6).

    Equal strings match. Otherwise both are parsed as URIs and must have the
    same scheme and user (``%`` escapes resolved), and the same host (case
    does not matter) and port, an omitted port not matching an explicit one
    (RFC 3261 §19.1.4); URI parameters are ignored. A Request-URI rewritten on
    the way (an SBC that puts our address where the phone wrote our domain)
    still matches when both hosts are among ``our_hosts`` (IPv6 without
    brackets, lower case): the user, i.e. the number called, must match
    always. ``tel:`` URIs compare their numbers.
    """
    if credentials_uri == request_uri:
        return True
    try:
        ours, theirs = parse_uri(request_uri), parse_uri(credentials_uri)
    except (RemoteProtocolError, ValueError):
        return False
    if isinstance(ours, SipUri) and isinstance(theirs, SipUri):
        if (ours.scheme.lower(), unescape(ours.user or "")) != (
            theirs.scheme.lower(),
            unescape(theirs.user or ""),
        ):
            return False
        if (ours.host, ours.port) == (theirs.host, theirs.port):
            return True
        return ours.host.strip("[]") in our_hosts and theirs.host.strip("[]") in our_hosts
    if isinstance(ours, TelUri) and isinstance(theirs, TelUri):
        return ours.number == theirs.number
    return False


class DigestAuthenticator:
    """Challenges and verifies Digest credentials for one realm (see module doc)."""

    def __init__(
        self,
        realm: str,
        secret_key: bytes,
        nonce_lifetime: float,
        algorithms: Sequence[str] = ("SHA-256", "MD5"),
        *,
        max_tracked_nonces: int = 10_000,
        clock_skew: float = 30.0,
        allow_legacy: bool = False,
        entropy: Callable[[int], bytes] = secrets.token_bytes,
        nonce_counts: NonceCounts | None = None,
        node_id: str = "",
    ) -> None:
        if not realm or any(ord(c) < 0x20 or ord(c) == 0x7F for c in realm):
            raise ValueError("realm must be a non-empty printable string")
        if len(secret_key) < 16:
            raise ValueError("secret_key must hold at least 16 bytes")
        if nonce_lifetime <= 0:
            raise ValueError("nonce_lifetime must be positive")
        if max_tracked_nonces < 1:
            raise ValueError("max_tracked_nonces must be at least 1")
        canonical: list[str] = []
        for name in algorithms:
            known = _canonical_algorithm(name)
            if known is None:
                raise ValueError(f"unsupported digest algorithm {name!r}")
            if known not in canonical:
                canonical.append(known)
        if not canonical:
            raise ValueError("at least one algorithm is needed")
        self.realm = realm
        self.algorithms: tuple[str, ...] = tuple(canonical)
        self.nonce_lifetime = nonce_lifetime
        self.max_tracked_nonces = max_tracked_nonces
        self.clock_skew = clock_skew
        self.allow_legacy = allow_legacy
        self._key = bytes(secret_key)
        self._entropy = entropy
        self._opaque = hmac.new(
            self._key, _OPAQUE_TAG + realm.encode("utf-8"), hashlib.sha256
        ).hexdigest()[:32]
        if nonce_counts is None:  # (not `or`: an empty store has len() 0)
            nonce_counts = MemoryNonceCounts(max_tracked_nonces, nonce_lifetime, clock_skew)
        self.nonce_counts: NonceCounts = nonce_counts
        # what an unknown username's answer is checked against (so it takes as long)
        self._decoy = hmac.new(self._key, b"huntgroup-decoy", hashlib.sha256).hexdigest()
        self.node_id = node_id
        self._node = hmac.new(
            self._key, _NODE_TAG + node_id.encode("utf-8"), hashlib.sha256
        ).digest()[:_NODE_LENGTH]

    # -- nonces

    def _mac(self, issued: bytes, salt: bytes, node: bytes) -> bytes:
        message = _NONCE_TAG + self.realm.encode("utf-8") + issued + salt + node
        return hmac.new(self._key, message, hashlib.sha256).digest()[:16]

    def make_nonce(self, *, now: float) -> str:
        """A fresh signed nonce, valid for ``nonce_lifetime`` seconds from ``now``."""
        issued = struct.pack(">q", round(now * 1000))
        salt = self._entropy(8)
        if len(salt) != 8:
            raise ValueError("the entropy source must return the number of bytes asked")
        raw = issued + salt + self._node + self._mac(issued, salt, self._node)
        return base64.urlsafe_b64encode(raw).decode("ascii")

    def _open_nonce(self, nonce: str) -> _Nonce | None:
        """The nonce's content if it carries our MAC, else None."""
        if len(nonce) != 56:  # base64 of 42 bytes
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            return None
        if len(raw) != _NONCE_RAW_LENGTH:
            return None
        if base64.urlsafe_b64encode(raw).decode("ascii") != nonce:
            return None  # a non-canonical spelling would dodge the replay table
        issued, salt = raw[:8], raw[8:16]
        node, mac = raw[16 : 16 + _NODE_LENGTH], raw[16 + _NODE_LENGTH :]
        if not hmac.compare_digest(mac, self._mac(issued, salt, node)):
            return None
        ours = hmac.compare_digest(node, self._node)
        return _Nonce(issued_ms=struct.unpack(">q", issued)[0], ours=ours)

    # -- challenge

    def challenge(
        self, *, now: float, stale: bool = False, algorithms: Sequence[str] | None = None
    ) -> list[str]:
        """``WWW-Authenticate`` values: one per algorithm, preferred first, one shared nonce.

        ``algorithms`` narrows the offer (e.g. to :func:`usable_algorithms` of
        a known account); it keeps our order and drops what we do not offer.
        """
        wanted = self.algorithms
        if algorithms is not None:
            asked = {a.upper() for a in algorithms}
            wanted = tuple(a for a in self.algorithms if a.upper() in asked) or self.algorithms
        nonce = self.make_nonce(now=now)
        values = []
        for algorithm in wanted:
            parts = [
                f"Digest realm={quote(self.realm)}",
                f"nonce={quote(nonce)}",
                f"opaque={quote(self._opaque)}",
                f"algorithm={algorithm}",
                'qop="auth"',
            ]
            if stale:
                parts.append("stale=true")
            values.append(", ".join(parts))
        return values

    # -- verify

    def verify(
        self,
        credentials: DigestCredentials,
        *,
        method: str,
        credentials_lookup: CredentialsLookup,
        now: float,
    ) -> AuthResult:
        """Check ``credentials`` sent with a request of ``method`` (see :class:`AuthOutcome`).

        The engine should also check that ``credentials.uri`` designates the
        Request-URI, and that the username is the user of the To header.
        """
        algorithm = _canonical_algorithm(credentials.algorithm)

        def result(outcome: AuthOutcome) -> AuthResult:
            return AuthResult(outcome, credentials.username, algorithm or credentials.algorithm)

        if algorithm is None or algorithm not in self.algorithms:
            return result(AuthOutcome.UNSUPPORTED)
        if credentials.qop is None:
            if not self.allow_legacy or algorithm != "MD5":
                return result(AuthOutcome.UNSUPPORTED)
        elif credentials.qop.lower() != "auth":
            return result(AuthOutcome.UNSUPPORTED)
        if credentials.userhash:
            return result(AuthOutcome.UNSUPPORTED)
        if credentials.realm != self.realm:
            return result(AuthOutcome.REALM_MISMATCH)
        opened = self._open_nonce(credentials.nonce)
        if opened is None:
            return result(AuthOutcome.INVALID_NONCE)
        if credentials.opaque is not None and not hmac.compare_digest(
            credentials.opaque.encode("utf-8"), self._opaque.encode("utf-8")
        ):
            return result(AuthOutcome.INVALID_NONCE)
        age = now - opened.issued_ms / 1000
        if age < -self.clock_skew:
            return result(AuthOutcome.INVALID_NONCE)

        secret = credentials_lookup(credentials.username)
        ha1 = (
            stored_ha1(secret, algorithm, credentials.username, self.realm)
            if secret is not None
            else compute_ha1(algorithm, credentials.username, self.realm, self._decoy)
        )
        if ha1 is None:
            return result(AuthOutcome.NO_SECRET_FOR_ALGORITHM)
        expected = compute_response(
            algorithm=algorithm,
            ha1=ha1,
            nonce=credentials.nonce,
            method=method,
            uri=credentials.uri,
            qop=credentials.qop,
            nc=credentials.nc,
            cnonce=credentials.cnonce,
        )
        right = hmac.compare_digest(expected.encode("ascii"), credentials.response.encode("ascii"))
        if secret is None:  # checked against a decoy all the same, so it takes as long
            return result(AuthOutcome.UNKNOWN_USER)
        if not right:
            return result(AuthOutcome.WRONG_PASSWORD)

        # The answer is right: only now may the nonce be reported stale (RFC 7616 §3.3).
        # Another node's nonce is answered the same way: its replay table is not ours,
        # so the phone gets a nonce of ours and answers it (module doc).
        if age > self.nonce_lifetime or not opened.ours:
            return result(AuthOutcome.STALE_NONCE)
        count = credentials.nonce_count
        if count is not None:
            outcome = self.nonce_counts.record(credentials.nonce, opened.issued_ms, count, now=now)
            if outcome is not AuthOutcome.OK:
                return result(outcome)
        return result(AuthOutcome.OK)

    def decoy_choice(self, username: str, total: int) -> int:
        """A number in ``range(total)`` that depends only on ``username`` and the key."""
        digest = hmac.new(self._key, _DECOY_TAG + username.encode("utf-8"), hashlib.sha256)
        return int.from_bytes(digest.digest()[:8], "big") % total

    @property
    def tracked_nonces(self) -> int:
        """How many nonces the replay table holds now (never above the bound)."""
        return len(self.nonce_counts)


class DecoyAlgorithms:
    """The algorithms to challenge an unknown username with, so that it looks like a line.

    A line with only ``ha1_md5`` (or only ``ha1_sha256``) is challenged with
    the algorithms it can answer (:func:`usable_algorithms`); offering every
    algorithm to a number that is no line would set the lines apart. Each
    configured line has a *profile*, the offer its challenge carries; an
    unknown username gets one of these profiles, picked with the weight of
    the number of lines that have it, by a keyed hash of the username
    (:meth:`DigestAuthenticator.decoy_choice`): the same number always gets
    the same offer, and a prober cannot tell the draw from a line's.

    ``lines`` is kept (compared by identity) so that a caller can tell when
    the configured lines changed and build a new one.
    """

    def __init__(self, auth: DigestAuthenticator, lines: Iterable[UserSecret]) -> None:
        self.auth = auth
        self.lines = lines
        counts: Counter[tuple[str, ...]] = Counter(
            usable_algorithms(line, auth.algorithms) or auth.algorithms for line in lines
        )
        self.profiles: tuple[tuple[tuple[str, ...], int], ...] = tuple(sorted(counts.items()))
        self.total = sum(counts.values())

    def offer(self, username: str) -> tuple[str, ...]:
        """The algorithms to offer ``username``, a number that is no line."""
        if self.total == 0:
            return self.auth.algorithms
        pick = self.auth.decoy_choice(username, self.total)
        for profile, weight in self.profiles:
            if pick < weight:
                return profile
            pick -= weight
        raise AssertionError("unreachable: the weights add up to total")
