"""The configuration file as frozen pydantic models.

The key names and defaults are the contract with admins and QA scripts
(DESIGN.md, "The configuration file"): a key left out takes its default, an
unknown key is an error. Models are frozen so that a config can be handed to
the group core as a value; cross-field rules (duplicate pilots, positions,
unknown lines...) are checked by :func:`semantic_problems`, which returns
field paths so that the loader can point at the offending line.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from huntgroup.config.state_url import parse_state_url

Algorithm = Literal["ring_all", "linear", "circular", "round_robin", "least_active"]
WhenEmpty = Literal["wait", "overflow"]
"""What a caller does when no member of the group is available (``queue.when_empty``)."""
ALGORITHMS: tuple[str, ...] = ("ring_all", "linear", "circular", "round_robin", "least_active")

NUMBER_RE = re.compile(r"^\+?[0-9]{2,15}$")
SIP_URI_RE = re.compile(r"^sips?:[^\s<>\"]+$", re.IGNORECASE)
LISTEN_RE = re.compile(r"^(udp|tcp|tls):(\[[0-9a-fA-F:.]+\]|[^:\[\]\s]+):([0-9]{1,5})$")

Path = tuple[str | int, ...]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def _check_number(value: str) -> str:
    if not NUMBER_RE.match(value):
        raise ValueError(f"{value!r} is not a phone number (digits, optional leading +)")
    return value


# The broadest networks ``server.trusted_peers`` accepts: the largest block one
# operator holds (a legacy IPv4 /8 such as 10.0.0.0/8; the smallest IPv6
# allocation a RIR makes to an operator, /32). Anything broader holds other
# people's hosts, and every host of a trusted network may claim any of our lines.
MIN_PEER_PREFIX_V4 = 8
MIN_PEER_PREFIX_V6 = 32

_PeerNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _check_peer(value: str) -> str:
    """A trusted peer: one IP address or a network in CIDR notation, IPv4 or IPv6, no
    broader than /8 (IPv4) or /32 (IPv6); never a catch-all, the unspecified address
    or an IPv4-mapped IPv6 form (sources are judged as IPv4, it would never match)."""
    try:
        network = ipaddress.ip_network(value.strip("[]"))
    except ValueError:
        raise ValueError(
            f"{value!r} is not an IP address or a CIDR network with its host bits zero "
            "(e.g. 192.0.2.10, 198.51.100.0/24, 2001:db8::/32)"
        ) from None
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            ipv4 = ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}")
            _check_peer_size(ipv4, value)  # too broad as IPv4: that message first
            shown = str(ipv4.network_address) if ipv4.prefixlen == 32 else str(ipv4)
            raise ValueError(
                f"{value!r} is an IPv4-mapped IPv6 form, which never matches: sources "
                f"are judged as IPv4. Write {shown}"
            )
    _check_peer_size(network, value)
    return value


def _check_peer_size(network: _PeerNetwork, value: str) -> None:
    """Refuse a catch-all, a network broader than the floor, the unspecified address."""
    if network.prefixlen == 0:
        raise ValueError(
            f"{value!r} is every address: a trusted peer may claim any of our lines and "
            "register contacts anywhere, so the whole Internet cannot be one. List the "
            "addresses of your SBC or proxy (docs/security.md, 'Behind a firewall or an SBC')"
        )
    floor = MIN_PEER_PREFIX_V4 if network.version == 4 else MIN_PEER_PREFIX_V6
    if network.prefixlen < floor:
        raise ValueError(
            f"{value!r} is broader than /{floor}, more than one operator holds, and every "
            "host in a trusted network may claim any of our lines. List the addresses or "
            "the network of your SBC or proxy"
        )
    if network.network_address.is_unspecified:
        raise ValueError(
            f"{value!r} is the unspecified address, which no peer sends from (it does not "
            "mean 'any'). List the addresses of your SBC or proxy"
        )


PeerAddress = Annotated[str, AfterValidator(_check_peer)]


def _check_target(value: str) -> str:
    """A forwarding target: a phone number or a SIP URI."""
    if NUMBER_RE.match(value) or SIP_URI_RE.match(value):
        return value
    raise ValueError(f"{value!r} is neither a phone number nor a sip:/sips: URI")


class MediaConfig(_Model):
    address: str = "127.0.0.1"
    rtp_ports: str = "20000-20999"
    mode: Literal["relay", "direct"] = "relay"

    @field_validator("rtp_ports")
    @classmethod
    def _ports(cls, value: str) -> str:
        m = re.fullmatch(r"([0-9]{1,5})-([0-9]{1,5})", value)
        if not m:
            raise ValueError("expected 'LOW-HIGH', e.g. '20000-20999'")
        low, high = int(m.group(1)), int(m.group(2))
        if not (1024 <= low <= high <= 65535):
            raise ValueError("ports must satisfy 1024 <= LOW <= HIGH <= 65535")
        if (high - low + 1) < 2:
            raise ValueError("the range must hold at least 2 ports (RTP and RTCP)")
        return value

    @property
    def port_range(self) -> tuple[int, int]:
        low, high = self.rtp_ports.split("-")
        return int(low), int(high)

    # RTP hijacking and dead calls (docs/security.md): the window in which a peer behind
    # NAT may latch from its signalling IP, and the silence that ends a relayed call.
    latch_window: float = Field(5.0, ge=0, le=60)
    rtp_timeout: float | None = Field(60.0, ge=0, le=86400)
    # the server's default hold music (null: the built-in music): direct calls put on hold,
    # and groups and lines that name none
    music: str | None = None


class SipTimers(_Model):
    """RFC 3261 timer base values, in seconds."""

    t1: float = Field(0.5, gt=0, le=60)
    t2: float = Field(4.0, gt=0, le=600)
    t4: float = Field(5.0, gt=0, le=600)


class TlsConfig(_Model):
    certificate: str | None = None
    private_key: str | None = None
    ca: str | None = None
    verify_peers: bool = True


class ConnectionsConfig(_Model):
    """TCP and TLS connections (docs/security.md, "Connection exhaustion")."""

    message_timeout: float = Field(20.0, gt=0, le=300)
    idle_timeout: float = Field(3900.0, gt=0, le=86400)
    max_per_source: int = Field(64, ge=1)
    max_total: int | None = Field(None, ge=1)
    outgoing_reserve: int = Field(32, ge=0, le=100_000)

    @model_validator(mode="after")
    def _reserve_fits(self) -> ConnectionsConfig:
        if self.max_total is not None and self.max_total <= self.outgoing_reserve:
            raise ValueError(
                f"max_total ({self.max_total}) must be above outgoing_reserve "
                f"({self.outgoing_reserve}): incoming connections need a place too"
            )
        return self


class LimitsConfig(_Model):
    max_calls: int | None = Field(None, ge=1)
    max_call_rate: float | None = Field(None, gt=0)
    max_internal_forwards: int = Field(5, ge=0, le=50)
    """Forwards to our own numbers one call may follow (a chain at run time); then 483."""
    # overload and floods (docs/security.md, "Overload and floods")
    max_loop_lag: float | None = Field(0.1, gt=0, le=10)
    max_load: float | None = Field(0.98, gt=0, le=1)
    per_source_invite_rate: float | None = Field(50.0, gt=0)
    per_source_invite_burst: int = Field(100, ge=1)
    per_source_register_rate: float | None = Field(50.0, gt=0)
    per_source_register_burst: int = Field(200, ge=1)
    per_source_table: int = Field(16384, ge=16, le=10_000_000)


class AuthConfig(_Model):
    """Digest authentication hardening (docs/security.md)."""

    allow_legacy_digest: bool = False
    failure_window: float = Field(300.0, gt=0, le=86_400)
    max_failures_per_source: int = Field(20, ge=1)
    max_failures_per_line: int = Field(10, ge=1)
    lockout_base: float = Field(60.0, gt=0, le=86_400)
    lockout_max: float = Field(3600.0, gt=0, le=7 * 86_400)
    max_tracked: int = Field(10_000, ge=100, le=10_000_000)

    @model_validator(mode="after")
    def _lockouts(self) -> AuthConfig:
        if self.lockout_max < self.lockout_base:
            raise ValueError("lockout_max must be at least lockout_base")
        return self


class CallsConfig(_Model):
    """Dead calls: session timers (RFC 4028) and the longest call (docs/security.md)."""

    session_expires: int = Field(1800, ge=90, le=86400)
    min_se: int = Field(90, ge=90, le=86400)
    max_duration: float | None = Field(None, gt=0, le=604800)

    @model_validator(mode="after")
    def _min_below(self) -> CallsConfig:
        if self.min_se > self.session_expires:
            raise ValueError("min_se must not exceed session_expires")
        return self


class SubscriptionsConfig(_Model):
    """The dialog event package, RFC 4235 (BLF keys): docs/sip.md, docs/security.md."""

    enabled: bool = True
    max_subscriptions: int = Field(10_000, ge=1, le=1_000_000)
    max_per_line: int = Field(100, ge=1, le=10_000)
    min_expires: int = Field(60, ge=10, le=86_400)
    default_expires: int = Field(600, ge=10, le=86_400)
    max_expires: int = Field(3600, ge=10, le=86_400)
    show_remote: Literal["never", "lines", "all"] = "lines"
    watch_phones: Literal["auto"] | bool = "auto"
    watch_expires: int = Field(600, ge=60, le=86_400)
    watch_retry: float = Field(3600.0, ge=60, le=7 * 86_400)

    @model_validator(mode="after")
    def _expires_order(self) -> SubscriptionsConfig:
        if not self.min_expires <= self.default_expires <= self.max_expires:
            raise ValueError("expires must satisfy min_expires <= default_expires <= max_expires")
        return self


ADMIN_LISTEN_RE = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[^:\[\]\s/]+):([0-9]{1,5})$")
LOOPBACK_NAMES = ("localhost",)


def admin_host_is_loopback(host: str) -> bool:
    """Whether an admin listener on ``host`` (an address or ``localhost``) stays on the
    machine: 127.0.0.0/8 or ::1. Any other name or address may be reachable from outside."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class MetricsConfig(_Model):
    """``/metrics`` on the admin listener (docs/operations.md, "Metrics")."""

    max_member_series: int = Field(2000, ge=0, le=100_000)


class AdminConfig(_Model):
    """The operators' HTTP listener: health, metrics, the JSON API, the wallboard
    (docs/operations.md, docs/security.md "The admin listener")."""

    listen: str | None = None
    token_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    token_file: str | None = Field(None, min_length=1, max_length=4096)
    max_connections: int = Field(64, ge=1, le=10_000)
    # host names a browser may use to reach the listener, beyond loopback and the listen host
    # (docs/security.md "The admin listener": DNS rebinding)
    allowed_hosts: tuple[
        Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.-]+$")], ...
    ] = Field((), max_length=64)
    metrics: MetricsConfig = MetricsConfig()
    # the wallboard's service level: share of the calls answered within this many seconds
    service_level: float = Field(20, gt=0, le=3600)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is None:
            return value
        m = ADMIN_LISTEN_RE.match(value)
        if not m or not (0 <= int(m.group(2)) <= 65535):
            raise ValueError(f"{value!r} is not HOST:PORT (IPv6 in brackets)")
        return value

    @model_validator(mode="after")
    def _token_outside_loopback(self) -> AdminConfig:
        if self.token_env is not None and self.token_file is not None:
            raise ValueError("give the token in token_env or in token_file, not both")
        if self.listen is None or self.token_env is not None or self.token_file is not None:
            return self
        host = self.listen.rsplit(":", 1)[0]
        if not admin_host_is_loopback(host):
            raise ValueError(
                f"listening on {host} needs a token (token_env or token_file): "
                "without one, only a loopback address (127.0.0.1, [::1], localhost) is allowed"
            )
        return self

    @property
    def host_port(self) -> tuple[str, int] | None:
        """The address to listen on, brackets stripped; None when the listener is off."""
        if self.listen is None:
            return None
        host, port = self.listen.rsplit(":", 1)
        return host.strip("[]"), int(port)


class StateAuthConfig(_Model):
    """Credentials of the Redis of ``server.state``: from the environment or a file, never here."""

    username: str | None = Field(None, min_length=1, max_length=256)
    password_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    password_file: str | None = Field(None, min_length=1, max_length=4096)
    sentinel_password_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    sentinel_password_file: str | None = Field(None, min_length=1, max_length=4096)

    @model_validator(mode="after")
    def _one_source(self) -> StateAuthConfig:
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("give the password in password_env or in password_file, not both")
        if self.sentinel_password_env is not None and self.sentinel_password_file is not None:
            raise ValueError(
                "give the sentinels' password in sentinel_password_env or in "
                "sentinel_password_file, not both"
            )
        if self.username is not None and self.password_env is None and self.password_file is None:
            raise ValueError("a username needs a password (password_env or password_file)")
        return self


class StateTlsConfig(_Model):
    """TLS to the Redis of ``server.state`` (``rediss://``, ``rediss+sentinel://``)."""

    ca: str | None = Field(None, min_length=1, max_length=4096)
    certificate: str | None = Field(None, min_length=1, max_length=4096)
    private_key: str | None = Field(None, min_length=1, max_length=4096)
    verify: bool = True

    @model_validator(mode="after")
    def _key_with_certificate(self) -> StateTlsConfig:
        if self.private_key is not None and self.certificate is None:
            raise ValueError("private_key needs its certificate")
        return self


class ServerConfig(_Model):
    listen: tuple[str, ...] = ("udp:0.0.0.0:5060", "tcp:0.0.0.0:5060")
    domain: str = "voip.example.net"
    upstream: str | None = None
    trusted_peers: tuple[PeerAddress, ...] = ()
    media: MediaConfig = MediaConfig()
    state: str = "memory"
    state_auth: StateAuthConfig = StateAuthConfig()
    state_tls: StateTlsConfig = StateTlsConfig()
    timers: SipTimers = SipTimers()
    shutdown_grace: float = Field(30.0, ge=0, le=3600)
    digest_algorithms: tuple[Literal["SHA-256", "MD5"], ...] = ("SHA-256", "MD5")
    tls: TlsConfig = TlsConfig()
    connections: ConnectionsConfig = ConnectionsConfig()
    limits: LimitsConfig = LimitsConfig()
    auth: AuthConfig = AuthConfig()
    calls: CallsConfig = CallsConfig()
    subscriptions: SubscriptionsConfig = SubscriptionsConfig()
    admin: AdminConfig = AdminConfig()

    @field_validator("digest_algorithms")
    @classmethod
    def _algorithms(
        cls, value: tuple[Literal["SHA-256", "MD5"], ...]
    ) -> tuple[Literal["SHA-256", "MD5"], ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError("list SHA-256 and/or MD5, each once, preferred first")
        return value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one listen address is needed")
        for item in value:
            m = LISTEN_RE.match(item)
            if not m or not (0 <= int(m.group(3)) <= 65535):
                raise ValueError(
                    f"{item!r} is not TRANSPORT:HOST:PORT (udp|tcp|tls, IPv6 in brackets)"
                )
        return value

    @field_validator("upstream")
    @classmethod
    def _upstream(cls, value: str | None) -> str | None:
        if value is not None and not SIP_URI_RE.match(value):
            raise ValueError(f"{value!r} is not a sip: URI")
        return value

    @field_validator("state")
    @classmethod
    def _state(cls, value: str) -> str:
        if value != "memory":
            parse_state_url(value)
        return value

    @model_validator(mode="after")
    def _state_tls_needs_tls(self) -> ServerConfig:
        tls = self.state_tls
        asked = tls.ca is not None or tls.certificate is not None or not tls.verify
        if asked and not self.state.startswith("rediss"):
            raise ValueError(
                "server.state_tls is set but server.state is not a rediss:// or "
                "rediss+sentinel:// URL: TLS would not be used"
            )
        return self


MAX_DISPLAY_NAME = 64
"""The longest ``lines[].name`` (characters): it is sent in From and P-Asserted-Identity."""


def _check_display_name(value: str) -> str:
    """A line's name, sent as a SIP display name (a quoted-string, RFC 3261 §25.1): any
    printable text; control characters (CR, LF, TAB, DEL ...) have no place in it."""
    bad = next((c for c in value if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0), None)
    if bad is not None:
        raise ValueError(
            f"the name holds a control character (U+{ord(bad):04X}); a display name is "
            "printable text on one line"
        )
    return value


DisplayName = Annotated[
    str, Field(max_length=MAX_DISPLAY_NAME), AfterValidator(_check_display_name)
]


class LineConfig(_Model):
    number: str
    name: DisplayName = ""
    music: str | None = None  # the line's own hold music (file), for calls it holds
    password: str | None = None
    ha1_md5: str | None = None
    ha1_sha256: str | None = None
    forward_busy: str | None = None
    forward_no_answer: str | None = None
    no_answer_timeout: float = Field(20, gt=0, le=600)

    _n = field_validator("number")(_check_number)

    @field_validator("forward_busy", "forward_no_answer")
    @classmethod
    def _fwd(cls, value: str | None) -> str | None:
        return None if value is None else _check_target(value)

    @field_validator("ha1_md5")
    @classmethod
    def _md5(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9a-fA-F]{32}", value):
            raise ValueError("ha1_md5 must be 32 hexadecimal digits")
        return value

    @field_validator("ha1_sha256")
    @classmethod
    def _sha(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", value):
            raise ValueError("ha1_sha256 must be 64 hexadecimal digits")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> LineConfig:
        if self.password is None and self.ha1_md5 is None and self.ha1_sha256 is None:
            raise ValueError("a line needs 'password', 'ha1_md5' or 'ha1_sha256' to register")
        return self


PROMPT_WORDS: tuple[str, ...] = ("you-are-caller", "in-queue")
"""The words of the position announcement besides numbers: "you are caller number" before
the position, "in the queue" after it."""
PROMPT_NAMES: frozenset[str] = frozenset([*PROMPT_WORDS, *(str(n) for n in range(100))])
"""Every prompt name ``queue.announcements.position.prompts`` may provide: the words, and
the numbers 0 to 99 (a file per number, each said as one)."""
REQUIRED_PROMPTS: tuple[str, ...] = ("you-are-caller", *(str(d) for d in range(10)))
"""The prompts a position announcement cannot do without: any position can be said digit
by digit."""
MIN_ANNOUNCE_EVERY = 1.0
MAX_ANNOUNCE_EVERY = 3600.0


class PeriodicAnnouncement(_Model):
    file: str
    every: float = Field(ge=MIN_ANNOUNCE_EVERY, le=MAX_ANNOUNCE_EVERY)


class PositionAnnouncement(_Model):
    # a directory (resolved by the loader to the mapping), or prompt name -> file
    prompts: str | dict[str, str]
    every: float = Field(ge=MIN_ANNOUNCE_EVERY, le=MAX_ANNOUNCE_EVERY)

    @field_validator("prompts")
    @classmethod
    def _names(cls, value: str | dict[str, str]) -> str | dict[str, str]:
        if isinstance(value, dict):
            unknown = sorted(set(value) - PROMPT_NAMES)
            if unknown:
                raise ValueError(
                    f"unknown prompt name(s) {', '.join(map(repr, unknown[:5]))}: the names "
                    f"are {', '.join(PROMPT_WORDS)} and the numbers 0 to 99"
                )
            missing = [name for name in REQUIRED_PROMPTS if name not in value]
            if missing:
                raise ValueError(f"missing prompt(s) {', '.join(missing)}")
        return value

    def files(self) -> dict[str, str]:
        """Prompt name -> file (empty while ``prompts`` is still a directory: the loader
        turns it into the mapping of the files it holds)."""
        return dict(self.prompts) if isinstance(self.prompts, dict) else {}


class AnnouncementsConfig(_Model):
    greeting: str | None = None
    periodic: PeriodicAnnouncement | None = None
    position: PositionAnnouncement | None = None

    def files(self) -> tuple[str, ...]:
        """Every audio file these announcements name."""
        named = [self.greeting, self.periodic.file if self.periodic else None]
        if self.position is not None:
            named += sorted(self.position.files().values())
        return tuple(f for f in named if f is not None)


class QueueConfig(_Model):
    max_length: int = Field(10, ge=0)
    max_wait: float | None = Field(120, gt=0)
    music: str | None = None
    answer: bool = True
    overflow_to: str | None = None
    when_empty: WhenEmpty = "wait"
    announcements: AnnouncementsConfig = AnnouncementsConfig()

    @field_validator("overflow_to")
    @classmethod
    def _fwd(cls, value: str | None) -> str | None:
        return None if value is None else _check_target(value)


class NoAnswerConfig(_Model):
    forward_to: str | None = None
    after: float | None = Field(None, gt=0)

    @field_validator("forward_to")
    @classmethod
    def _fwd(cls, value: str | None) -> str | None:
        return None if value is None else _check_target(value)

    @model_validator(mode="after")
    def _after_needs_target(self) -> NoAnswerConfig:
        if self.after is not None and self.forward_to is None:
            raise ValueError("'after' needs 'forward_to': where should the call go?")
        return self


class MemberConfig(_Model):
    line: str | None = None
    uri: str | None = None
    position: int = Field(ge=1)
    joined: bool = True

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        if value is not None and not SIP_URI_RE.match(value):
            raise ValueError(f"{value!r} is not a sip: URI")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> MemberConfig:
        if (self.line is None) == (self.uri is None):
            raise ValueError("a member needs exactly one of 'line' or 'uri'")
        return self

    @property
    def key(self) -> str:
        """The member's identity: its line number or its SIP URI."""
        return self.line if self.line is not None else str(self.uri)


class GroupConfig(_Model):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    pilot: str
    algorithm: Algorithm = "round_robin"
    no_answer_timeout: float = Field(15, gt=0, le=600)
    wrap_up: float = Field(0, ge=0, le=3600)
    call_waiting: bool = False
    hunt_direct_calls: bool = False
    pilot_as_caller_id: bool = False
    priority: int = Field(0, ge=-1000, le=1000)
    queue: QueueConfig = QueueConfig()
    no_answer: NoAnswerConfig = NoAnswerConfig()
    members: tuple[MemberConfig, ...] = ()

    _p = field_validator("pilot")(_check_number)

    def ordered_members(self) -> tuple[MemberConfig, ...]:
        return tuple(sorted(self.members, key=lambda m: m.position))


DSN_PASSWORD_RE = re.compile(
    r"(?:^|\s|[?&])password\s*=|^[a-z]+://[^/@\s]*:[^/@\s]*@", re.IGNORECASE
)
"""A password in a libpq DSN: ``password=`` (keyword form) or ``user:secret@`` (URI form)."""


class PostgresRecordsConfig(_Model):
    """``records.postgres``: call records written to PostgreSQL (docs/configuration.md).

    The connection string comes from exactly one of ``dsn`` (no password in it: use
    ``dsn_env``, ``dsn_file`` or libpq's own ~/.pgpass / PGPASSFILE), ``dsn_env`` (the name
    of an environment variable holding it) and ``dsn_file`` (a file holding it)."""

    dsn: str | None = None
    dsn_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    dsn_file: str | None = None
    batch_size: int = Field(200, ge=1, le=10_000)
    max_pending: int = Field(100_000, ge=1, le=10_000_000)
    # the estimated memory of the records waiting (about 1 KiB each + 0.25 KiB per offer)
    max_pending_bytes: int = Field(64 * 1024 * 1024, ge=1024 * 1024, le=16 * 1024**3)
    flush_interval: float = Field(1.0, gt=0, le=60)
    spool: str | None = None  # a file for the records not written at shutdown; None: lost

    @field_validator("dsn")
    @classmethod
    def _no_password(cls, value: str | None) -> str | None:
        if value is not None and DSN_PASSWORD_RE.search(value):
            raise ValueError(
                "a password in records.postgres.dsn: put the DSN in dsn_env or dsn_file, "
                "or the password in ~/.pgpass (PGPASSFILE)"
            )
        return value

    @model_validator(mode="after")
    def _one_source(self) -> PostgresRecordsConfig:
        given = [x for x in (self.dsn, self.dsn_env, self.dsn_file) if x is not None]
        if len(given) != 1:
            raise ValueError("records.postgres needs exactly one of dsn, dsn_env, dsn_file")
        return self


class RecordsConfig(_Model):
    """``records``: where call records go (docs/operations.md, "Call records")."""

    # paths relative to the configuration file's directory
    jsonl: str | None = None  # a JSON-lines file, one object per call; None: none
    queue_log: str | None = None  # an Asterisk queue_log file; None: none
    # lines waiting for a file's writer thread, per file; beyond: dropped, counted
    max_queued_lines: int = Field(10_000, ge=100, le=10_000_000)
    postgres: PostgresRecordsConfig | None = None


class Config(_Model):
    server: ServerConfig = ServerConfig()
    lines: tuple[LineConfig, ...] = ()
    groups: tuple[GroupConfig, ...] = ()
    records: RecordsConfig = RecordsConfig()

    def group(self, name: str) -> GroupConfig:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(name)

    def line(self, number: str) -> LineConfig | None:
        for line in self.lines:
            if line.number == number:
                return line
        return None

    def upstream_line(self, number: str) -> LineConfig | None:
        """The line ``number`` when it may call out through ``server.upstream``."""
        return self.line(number) if self.server.upstream is not None else None


def _duplicates(items: Iterator[tuple[Path, object]], what: str) -> list[tuple[Path, str]]:
    seen: dict[object, Path] = {}
    problems: list[tuple[Path, str]] = []
    for path, value in items:
        if value in seen:
            first = ".".join(str(p) for p in seen[value])
            problems.append((path, f"duplicate {what} {value!r} (first at {first})"))
        else:
            seen[value] = path
    return problems


def semantic_problems(cfg: Config) -> list[tuple[Path, str]]:
    """Cross-field rules that a single field cannot check, as (path, message)."""
    problems: list[tuple[Path, str]] = []
    problems += _duplicates(
        ((("lines", i, "number"), line.number) for i, line in enumerate(cfg.lines)), "line number"
    )
    problems += _duplicates(
        ((("groups", i, "name"), g.name) for i, g in enumerate(cfg.groups)), "group name"
    )
    if cfg.server.tls.certificate is None:
        for i, entry in enumerate(cfg.server.listen):
            if entry.startswith("tls:"):
                problems.append(
                    (("server", "listen", i), "a tls: address needs server.tls.certificate")
                )
    numbers = {line.number for line in cfg.lines}
    problems += _duplicates(
        ((("groups", i, "pilot"), g.pilot) for i, g in enumerate(cfg.groups)), "pilot"
    )
    for i, g in enumerate(cfg.groups):
        if g.pilot in numbers:
            problems.append((("groups", i, "pilot"), f"pilot {g.pilot!r} is also a line number"))
        problems += _duplicates(
            (
                (("groups", i, "members", j, "position"), m.position)
                for j, m in enumerate(g.members)
            ),
            "position",
        )
        problems += _duplicates(
            ((("groups", i, "members", j), m.key) for j, m in enumerate(g.members)), "member"
        )
        for j, m in enumerate(g.members):
            if m.line is not None and m.line not in numbers:
                problems.append(
                    (("groups", i, "members", j, "line"), f"no line {m.line!r} in 'lines'")
                )
    problems += forward_loops(cfg)
    return problems


def forward_edges(cfg: Config) -> dict[object, list[tuple[object, Path]]]:
    """Where each of our numbers may send a call: {number: [(our number, field path)]}.

    The edges are every ``forward_busy`` and ``forward_no_answer`` of a line and
    every ``queue.overflow_to`` and ``no_answer.forward_to`` of a group (from its
    pilot) that names one of our own numbers (a line or a pilot): the B2BUA
    re-routes such a forward internally. Targets elsewhere leave the server.
    """
    ours = {line.number for line in cfg.lines} | {g.pilot for g in cfg.groups}
    edges: dict[object, list[tuple[object, Path]]] = {}

    def edge(source: object, target: object, path: Path) -> None:
        if isinstance(target, str) and target in ours:
            edges.setdefault(source, []).append((target, path))

    for i, line in enumerate(cfg.lines):
        edge(line.number, line.forward_busy, ("lines", i, "forward_busy"))
        edge(line.number, line.forward_no_answer, ("lines", i, "forward_no_answer"))
    for i, g in enumerate(cfg.groups):
        edge(g.pilot, g.queue.overflow_to, ("groups", i, "queue", "overflow_to"))
        edge(g.pilot, g.no_answer.forward_to, ("groups", i, "no_answer", "forward_to"))
    return edges


def forward_loops(cfg: Config) -> list[tuple[Path, str]]:
    """Cycles among the forwards to our own numbers, each reported once at its first edge.

    Whatever the conditions (busy, no answer, queue full), a call could go
    round such a cycle for ever: ``huntgroup check`` refuses it. Depth-first
    search, iterative (a long chain cannot exhaust the stack); every back edge
    is one cycle, printed from the number that comes first in the file.
    """
    edges = forward_edges(cfg)
    numbers: list[object] = [line.number for line in cfg.lines]
    numbers += [g.pilot for g in cfg.groups]
    order = {n: k for k, n in enumerate(numbers)}
    done: set[object] = set()
    seen_cycles: set[tuple[object, ...]] = set()
    problems: list[tuple[Path, str]] = []
    for root in order:
        if root in done:
            continue
        stack: list[tuple[object, int]] = [(root, 0)]  # (node, index of its next edge)
        on_path: dict[object, int] = {root: 0}
        while stack:
            node, index = stack[-1]
            out = edges.get(node, [])
            if index >= len(out):
                stack.pop()
                del on_path[node]
                done.add(node)
                continue
            stack[-1] = (node, index + 1)
            target = out[index][0]
            if target in on_path:
                cycle = [n for n, _ in stack[on_path[target] :]]
                start = min(range(len(cycle)), key=lambda k: order.get(cycle[k], len(order)))
                cycle = cycle[start:] + cycle[:start]
                if tuple(cycle) in seen_cycles:
                    continue
                seen_cycles.add(tuple(cycle))
                after = cycle[1] if len(cycle) > 1 else cycle[0]
                path = next(p for t, p in edges[cycle[0]] if t == after)
                shown = " -> ".join(str(n) for n in [*cycle, cycle[0]])
                problems.append((path, f"forward loop: {shown}"))
            elif target not in done:
                on_path[target] = len(stack)
                stack.append((target, 0))
    return problems
